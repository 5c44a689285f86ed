//! The conformance suites against the in-memory backend: every case, by
//! name, in `cargo test`.

use std::process::ExitCode;
use std::sync::Arc;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::testkit::Conformance;
use event_backbone::{KeyValueStore, StreamChannel};

fn main() -> ExitCode {
    Conformance::new("memory")
        .channel(|| async { Ok(Arc::new(MemoryChannel::new()) as Arc<dyn StreamChannel>) })
        .store(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn KeyValueStore>) })
        .run()
}
