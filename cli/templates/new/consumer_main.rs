//! `{{name}}-consumer [COUNT]`: handles `{{event}}` events in group
//! `{{group}}`, COUNT of them (default: until stopped). In memory (no
//! backend in the environment), it first sends one itself: the in-memory
//! backend lives in one process.

use {{crate}}_contract::{Backend, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut until = match std::env::args().nth(1) {
        Some(count) => Some(count.parse().map_err(|_| format!("COUNT {count:?} is not a number"))?),
        None => None,
    };
    let backend = Backend::from_env().await?;
    if backend.is_in_memory() {
        println!("in memory: sending one {{event}} here first (to consume what {{name}}-producer sends: {{servers_hint}})");
        {{crate}}_producer::produce(&backend, 1).await?;
        until = Some(1);
    }
    let seen = {{crate}}_consumer::consume(&backend, until).await?;
    println!("done: {} handled", seen.len());
    Ok(())
}
