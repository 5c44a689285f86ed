//! The store suite against a real DynamoDB endpoint: every case, by name.
//!
//! The endpoint is `DYNAMODB_EVENT_SOURCE_ENDPOINT`, or 127.0.0.1:8000,
//! where `scripts/start-dynamodb` starts DynamoDB Local if nothing answers
//! (`EB_DYNAMODB_TESTS_ON_AWS=1`: the AWS chain's DynamoDB, a real
//! account). A server that cannot be reached fails every case. The channel
//! suite runs on the in-memory channel with its payloads in this store: any
//! store goes with any channel.

mod support;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use event_backbone_core::memory::MemoryChannel;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_dynamodb::{Dynamo, DynamoStore, BACKEND};
use tokio::sync::OnceCell;

/// A table of this run's own, deleted at the end.
fn table() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| support::table("conformance"))
}

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    // Created once per run (each case has a runtime of its own).
    static CREATED: OnceCell<()> = OnceCell::const_new();
    let dynamo = Dynamo::connect(support::config(table())).await?;
    let store = DynamoStore::new(&dynamo);
    CREATED.get_or_try_init(|| store.ensure_table()).await?;
    Ok(Arc::new(store))
}

fn main() -> ExitCode {
    let code = Conformance::new(BACKEND)
        .store(store)
        .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
        .channel_payloads_in(store)
        .run();
    support::drop_tables(&[table()]);
    code
}
