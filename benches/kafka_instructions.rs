//! One loop of the Kafka workload, run on its own so that a profiler sees
//! nothing else: `scripts/bench-instructions` runs it under
//! `valgrind --tool=callgrind` to count the client's instructions per
//! event. The broker is another process (tansu in CI), so its work is not
//! counted: the count is the client's, whatever the broker's speed.
//!
//! Usage: `kafka_instructions <workload> <rounds>` where workload is
//! `setup` (each round's clients and topic, no events), `produce`
//! (event-backbone, payloads in the in-memory store, at most 512 sends in
//! flight), `produce-raw` (rdkafka's `FutureProducer`, records of the same
//! size and headers, at most 512 in flight), `consume` (produced by
//! event-backbone, then read by an event-backbone consumer that fetches
//! the payloads, handles and acknowledges each) or `consume-raw` (the same
//! produce, then rdkafka's `StreamConsumer`, one commit at the end). Each
//! round handles `EVENTS` events on a topic of its own, deleted after it.

mod kafka_workload;

use std::sync::Arc;

use event_backbone::memory::MemoryStore;
use kafka_workload::*;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let which = args.next().unwrap_or_else(|| "produce".to_owned());
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("rounds"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Measured once, outside the counted work's variation: every
        // workload pays it alike.
        let value_len = metadata_len().await;
        for _ in 0..rounds {
            let clients = Clients::new().await;
            let (uri, topic) = clients.stream(&which).await;
            let store = Arc::new(MemoryStore::new());
            match which.as_str() {
                "setup" => {}
                "produce" => produce_with_backbone(&clients.producer(&uri, &store), EVENTS).await,
                "produce-raw" => produce_raw(&clients.raw, &topic, value_len, EVENTS).await,
                "consume" => {
                    produce_with_backbone(&clients.producer(&uri, &store), EVENTS).await;
                    consume_with_backbone(&clients.channel, &uri, &store).await;
                }
                "consume-raw" => {
                    produce_with_backbone(&clients.producer(&uri, &store), EVENTS).await;
                    consume_raw(&topic).await;
                }
                other => panic!(
                    "unknown workload {other:?}: setup, produce, produce-raw, consume or consume-raw"
                ),
            }
            clients.finish(&topic).await;
        }
    });
}
