//! Handles the `{{event}}` events of `{{uri}}` in group `{{group}}`.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::{Consumer, ConsumerContext, HandlerError};
use {{crate}}_contract::{Backend, Error, {{trait}}Consumer, {{trait}}Handler, GROUP, URI};

/// What the handler saw: each event's number and text, in order.
pub type Seen = Arc<Mutex<Vec<(u64, String)>>>;

struct Handler {
    seen: Seen,
}

impl {{trait}}Consumer for Handler {
    async fn {{event}}(
        &self,
        ctx: &ConsumerContext,
        number: u64,
        text: String,
    ) -> Result<(), HandlerError> {
        println!("handled {{event}} {number}: {text} (message {})", ctx.message_id());
        self.seen.lock().expect("seen").push((number, text));
        Ok(())
    }
}

/// Handles events in group `{{group}}` until `until` of them are handled
/// (or for ever); returns what it saw.
pub async fn consume(backend: &Backend, until: Option<u64>) -> Result<Vec<(u64, String)>, Error> {
    let seen = Seen::default();
    let handler = Handler { seen: seen.clone() };
    let consumer = Consumer::builder()
        .channel(backend.channel.clone())
        .store(backend.store.clone())
        .uri(URI)
        .group(GROUP)
        .concurrency(1)
        .block(Duration::from_millis(200));
    let consumer = match until {
        Some(count) => consumer.stop_after(count),
        None => consumer,
    };
    consumer
        .subscribe({{trait}}Handler::new(handler))?
        .completion()
        .await?;
    let seen = seen.lock().expect("seen").clone();
    Ok(seen)
}
