//! Sends `{{event}}` events on `{{uri}}`.
#![forbid(unsafe_code)]

use event_backbone::Producer;
use {{crate}}_contract::{Backend, Error, {{trait}}Producer, URI};

/// Sends `count` `{{event}}` events, numbered from 1.
pub async fn produce(backend: &Backend, count: u64) -> Result<(), Error> {
    let producer: {{trait}}Producer = Producer::builder()
        .channel(backend.channel.clone())
        .store(backend.store.clone())
        .uri(URI)
        .build_as()?;
    for number in 1..=count {
        let text = format!("hello number {number}");
        let receipt = producer.{{event}}(&number, &text).await?;
        println!("sent {{event}} {number}: entry {}", receipt.entry_id());
    }
    Ok(())
}
