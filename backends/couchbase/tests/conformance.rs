//! The store suite against a Couchbase KV endpoint: every case, by name.
//!
//! The server is `COUCHBASE_EVENT_SOURCE_CONNSTR` (with `_USER`, `_PASS`,
//! `_BUCKET`), or the project's test server on 127.0.0.1:11210, which
//! `scripts/start-couchbase` starts. A server that cannot be reached fails
//! every case. The channel suite runs on the in-memory channel with its
//! payloads in this store: any store goes with any channel.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone_core::memory::MemoryChannel;
use event_backbone_core::testkit::Conformance;
use event_backbone_core::{KeyValueStore, StreamChannel};
use event_backbone_couchbase::{Couchbase, CouchbaseStore, BACKEND};

async fn store() -> event_backbone_core::Result<Arc<dyn KeyValueStore>> {
    let couchbase = Couchbase::connect(support::config()).await?;
    Ok(Arc::new(CouchbaseStore::new(&couchbase)))
}

fn main() -> ExitCode {
    if std::env::var_os(event_backbone_couchbase::CONNSTR_VAR).is_none() {
        // Said plainly on every run: passing here is not passing on a
        // real Couchbase Server.
        eprintln!(
            "couchbase: NOT RUN AGAINST A REAL COUCHBASE SERVER: this run uses the project's \
             KV test server (backends/couchbase/test-server); set COUCHBASE_EVENT_SOURCE_CONNSTR, \
             _USER, _PASS and _BUCKET to run the same suite against one"
        );
    }
    Conformance::new(BACKEND)
        .store(store)
        .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
        .channel_payloads_in(store)
        .run()
}
