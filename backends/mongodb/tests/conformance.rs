//! The store suite against a real MongoDB-wire server: every case, by name.
//!
//! The server is `MONGODB_EVENT_SOURCE_URI`, or 127.0.0.1:27017, where
//! `scripts/start-mongodb` starts SecantusDB if nothing answers. A server
//! that cannot be reached fails every case. The channel suite runs on the
//! in-memory channel with its payloads in this store: any store goes with
//! any channel.

mod support;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use event_backbone_core::memory::MemoryChannel;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_mongodb::{Mongo, MongoStore, BACKEND};

/// A collection of this run's own, dropped at the end: the server does not
/// grow from run to run.
fn collection() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| support::unique("conformance").replace('.', "_"))
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    let mongo = Mongo::connect(support::config()).await?;
    Ok(Arc::new(MongoStore::with_collection(&mongo, collection())?))
}

fn main() -> ExitCode {
    let code = Conformance::new(BACKEND)
        .store(store)
        .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
        .channel_payloads_in(store)
        .run();
    support::drop_collections(&[collection()]);
    code
}
