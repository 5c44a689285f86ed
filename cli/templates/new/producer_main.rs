//! `{{name}}-producer [COUNT]`: sends COUNT (default 1) `{{event}}` events.

use {{crate}}_contract::{Backend, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let count = match std::env::args().nth(1) {
        Some(count) => count.parse().map_err(|_| format!("COUNT {count:?} is not a number"))?,
        None => 1,
    };
    let backend = Backend::from_env().await?;
    if backend.is_in_memory() {
        println!("in memory: the events live as long as this process (to keep them: {{servers_hint}})");
    }
    {{crate}}_producer::produce(&backend, count).await
}
