//! One loop of the Redis workload, run on its own so that a profiler sees
//! nothing else: `scripts/bench-instructions` runs it under
//! `valgrind --tool=callgrind` to count the client's instructions per
//! event, which unlike time does not move with the machine's noise.
//!
//! Usage: `redis_instructions <workload> <rounds>` where workload is
//! `produce` (event-backbone, at most 512 sends in flight), `produce-raw`
//! (the same commands by hand, 2 pipelines in flight), `consume`
//! (event-backbone consumer), `consume-raw`, or `produce-personal` and
//! `produce-subject` (the customer as a personal segment, without and with
//! one of 1,000 data subjects named: the cost of sealing). Each round handles
//! `EVENTS` events on a fresh stream; the consume workloads first write
//! them with event-backbone (whose cost is then subtracted by the script,
//! from a `produce` run of the same length).

mod workload;

use event_backbone::redis::RedisBuilderExt;
use workload::*;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let which = args.next().unwrap_or_else(|| "produce".to_owned());
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("rounds"));
    let rt = runtime();
    rt.block_on(async {
        let (redis, mut raw) = connect().await;
        let blob = metadata_blob(&redis, &mut raw).await;
        let personal = event_backbone::privacy::PersonalData::on_store(
            std::sync::Arc::new(event_backbone::redis::RedisHashStore::new(&redis)),
            event_backbone::privacy::MasterKey::generate(),
            event_backbone::privacy::SubjectKey::generate(),
        );
        let personal_producer = |stream: &str| {
            event_backbone::Producer::builder()
                .redis(&redis)
                .personal_data(personal.clone())
                .uri(stream)
                .build()
                .unwrap()
        };
        for _ in 0..rounds {
            let stream = unique("instructions");
            match which.as_str() {
                "produce" => produce_with_backbone(&producer(&redis, &stream), Some(512)).await,
                "produce-raw" => produce_raw(&mut raw, &stream, &blob, 2).await,
                "produce-personal" => produce_personal(&personal_producer(&stream), None).await,
                "produce-subject" => {
                    produce_personal(&personal_producer(&stream), Some(1_000)).await
                }
                "consume" => {
                    produce_with_backbone(&producer(&redis, &stream), Some(512)).await;
                    consume_with_backbone(&redis, &stream).await;
                }
                "consume-raw" => {
                    produce_with_backbone(&producer(&redis, &stream), Some(512)).await;
                    consume_raw(&mut raw, &stream).await;
                }
                other => {
                    panic!(
                        "unknown workload {other:?}: produce, produce-raw, consume, \
                         consume-raw, produce-personal, produce-subject"
                    )
                }
            }
            cleanup_on_server(&mut raw, &stream).await;
        }
        let _ = blob;
    });
}
