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
//! one of 1,000 data subjects named: the cost of sealing, with the vault's
//! default cache times), `produce-subject-steady` (the same with keys
//! trusted for an hour: the work per message), `consume-personal` and
//! `consume-subject` (reading them back, the customer opened). Each round
//! handles `EVENTS` events on a fresh stream; the consume workloads first
//! write them with event-backbone (whose cost is then subtracted by the
//! script, from a produce run of the same kind and length).
//!
//! Built with the `opentelemetry` feature, `EB_BENCH_TRACE=everything`,
//! `tenth` or `tenth-untimed` runs the workload under an OpenTelemetry
//! layer (every span sampled, or one trace in ten, with and without the
//! layer's busy and idle times), the process's default subscriber, its
//! batch exporter's thread counted too.

mod workload;

use event_backbone::redis::RedisBuilderExt;
use workload::*;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let which = args.next().unwrap_or_else(|| "produce".to_owned());
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("rounds"));
    #[cfg(feature = "opentelemetry")]
    let _traced = traced_from_env();
    let rt = runtime();
    rt.block_on(async {
        let (redis, mut raw) = connect().await;
        let blob = metadata_blob(&redis, &mut raw).await;
        let personal = event_backbone::privacy::PersonalData::on_store(
            std::sync::Arc::new(event_backbone::redis::RedisHashStore::new(&redis)),
            event_backbone::privacy::MasterKey::generate(),
            event_backbone::privacy::SubjectKey::generate(),
        );
        // Keys trusted for an hour: under valgrind, 50 times slower, the
        // default second would have every key read again many times a
        // round, where at native speed a subject in use is read once per
        // half second. This one counts the work per message.
        let steady = event_backbone::privacy::PersonalData::new(
            std::sync::Arc::new(
                event_backbone::privacy::StoreKeyVault::new(
                    std::sync::Arc::new(event_backbone::redis::RedisHashStore::new(&redis)),
                    event_backbone::privacy::MasterKey::generate(),
                )
                .cache_ttl(std::time::Duration::from_secs(3600))
                .reader_cache_ttl(std::time::Duration::from_secs(3600)),
            ),
            event_backbone::privacy::SubjectKey::generate(),
        );
        let producer_with = |stream: &str, personal: &event_backbone::privacy::PersonalData| {
            event_backbone::Producer::builder()
                .redis(&redis)
                .personal_data(personal.clone())
                .uri(stream)
                .build()
                .unwrap()
        };
        let personal_producer = |stream: &str| producer_with(stream, &personal);
        for _ in 0..rounds {
            let stream = unique("instructions");
            match which.as_str() {
                "produce" => produce_with_backbone(&producer(&redis, &stream), Some(512)).await,
                "produce-raw" => produce_raw(&mut raw, &stream, &blob, 2).await,
                "produce-personal" => produce_personal(&personal_producer(&stream), None).await,
                "produce-subject" => {
                    produce_personal(&personal_producer(&stream), Some(1_000)).await
                }
                "produce-subject-steady" => {
                    produce_personal(&producer_with(&stream, &steady), Some(1_000)).await
                }
                "consume-personal" => {
                    produce_personal(&producer_with(&stream, &steady), None).await;
                    consume_personal(&redis, &stream, &steady).await;
                }
                "consume-subject" => {
                    produce_personal(&producer_with(&stream, &steady), Some(1_000)).await;
                    consume_personal(&redis, &stream, &steady).await;
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
                         consume-raw, produce-personal, produce-subject, \
                         produce-subject-steady, consume-personal, consume-subject"
                    )
                }
            }
            cleanup_on_server(&mut raw, &stream).await;
            #[cfg(feature = "opentelemetry")]
            if let Some(traced) = &_traced {
                traced.spans.reset();
            }
        }
        let _ = blob;
    });
}

/// The OpenTelemetry pipeline `EB_BENCH_TRACE` names, the default
/// subscriber of every thread from here on.
#[cfg(feature = "opentelemetry")]
fn traced_from_env() -> Option<workload::traced::Traced> {
    let traced = match std::env::var("EB_BENCH_TRACE").as_deref() {
        Err(_) | Ok("" | "off") => return None,
        Ok("everything") => workload::traced::Traced::everything(),
        Ok("tenth") => workload::traced::Traced::tenth(),
        Ok("tenth-untimed") => workload::traced::Traced::tenth_untimed(),
        Ok(other) => panic!("EB_BENCH_TRACE={other:?}: everything, tenth, tenth-untimed or off"),
    };
    tracing::dispatcher::set_global_default(traced.dispatch.clone())
        .expect("no subscriber before this one");
    Some(traced)
}
