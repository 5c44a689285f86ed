//! The store suite against a real MongoDB-wire server: every case, by name.
//!
//! The server is `MONGODB_EVENT_SOURCE_URI`, or 127.0.0.1:27017, where
//! `scripts/start-mongodb` starts SecantusDB if nothing answers. A server
//! that cannot be reached fails every case. The channel suite runs on the
//! in-memory channel with its payloads in this store: any store goes with
//! any channel.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone_core::memory::MemoryChannel;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_mongodb::{Mongo, MongoStore, BACKEND};

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    let mongo = Mongo::connect(support::config()).await?;
    Ok(Arc::new(MongoStore::new(&mongo)))
}

fn main() -> ExitCode {
    Conformance::new(BACKEND)
        .store(store)
        .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
        .channel_payloads_in(store)
        .run()
}
