//! Entries of transactions that commit out of order: a reader must never
//! skip an entry that a slower transaction commits after a later one (the
//! classic outbox-relay bug of reading by sequence number alone).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use event_backbone_core::envelope::{encode_metadata, Metadata};
use event_backbone_core::{GroupStart, StreamChannel, StreamPosition};
use event_backbone_postgres::PostgresStreamChannel;
use support::sample;

fn n_of(body: &event_backbone_core::Result<Metadata, event_backbone_core::MalformedEntry>) -> u32 {
    let metadata = body.as_ref().expect("readable metadata");
    metadata.correlation_id.as_deref().unwrap().parse().unwrap()
}

/// Inserts an entry the way the channel does, inside `tx`.
async fn insert_in(tx: &mut sqlx::PgConnection, schema: &str, stream: &str, n: u32) {
    let sql = format!("INSERT INTO \"{schema}\".entries (stream, metadata) VALUES ($1, $2)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(stream)
        .bind(encode_metadata(&sample(stream, n)))
        .execute(tx)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_entry_committed_late_by_an_older_transaction_is_not_skipped() {
    let schema = support::unique_schema("order1");
    let pg = support::postgres(&schema).await;
    let channel = PostgresStreamChannel::new(&pg);
    let stream = support::unique("late");
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let raw = support::raw().await;

    // A begins and appends first, and is slow to commit; B appends after
    // it and commits at once: B's sequence number is the higher.
    let mut a = raw.begin().await.unwrap();
    insert_in(&mut a, &schema, &stream, 1).await;
    channel.append(&stream, &sample(&stream, 2)).await.unwrap();

    let early = channel
        .read_group(&stream, "g", "c", 10, Duration::from_millis(300))
        .await
        .unwrap();
    let replay_early = channel
        .read_range(&stream, &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    a.commit().await.unwrap();

    let mut seen: Vec<u32> = early.iter().map(|d| n_of(&d.entry.body)).collect();
    let later = channel
        .read_group(&stream, "g", "c", 10, Duration::from_secs(5))
        .await
        .unwrap();
    seen.extend(later.iter().map(|d| n_of(&d.entry.body)));
    assert_eq!(
        seen,
        [1, 2],
        "the group read {seen:?} (before A committed: {:?})",
        early
            .iter()
            .map(|d| n_of(&d.entry.body))
            .collect::<Vec<_>>()
    );
    // A replay that paged on past B before A committed would skip A too.
    assert!(
        replay_early.is_empty(),
        "replay read {} entries past an open older transaction",
        replay_early.len()
    );
    let replay: Vec<u32> = channel
        .read_range(&stream, &StreamPosition::Start, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| n_of(&e.body))
        .collect();
    assert_eq!(replay, [1, 2]);
    drop(pg);
    tokio::task::spawn_blocking(move || support::drop_schemas(&[&schema]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_held_back_by_another_transaction_goes_on_soon_after_it_ends() {
    let schema = support::unique_schema("order3");
    // No notification will come: only looking again finds the entry.
    let config = support::config(&schema).poll_interval(Duration::from_secs(30));
    let pg = event_backbone_postgres::Postgres::connect(config)
        .await
        .unwrap();
    let channel = PostgresStreamChannel::new(&pg);
    let stream = support::unique("held");
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let raw = support::raw().await;
    // A transaction that is not a producer's holds the horizon.
    let mut other = raw.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *other)
        .await
        .unwrap();
    channel.append(&stream, &sample(&stream, 1)).await.unwrap();
    let reader = {
        let (channel, stream) = (channel.clone(), stream.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let got = channel
                .read_group(&stream, "g", "c", 10, Duration::from_secs(10))
                .await
                .unwrap();
            (got.len(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.commit().await.unwrap();
    let (got, waited) = reader.await.unwrap();
    assert_eq!(got, 1, "the entry was not read within the block time");
    assert!(
        waited < Duration::from_secs(3),
        "read {waited:?} after the start: it waited for the poll, not the end of the other transaction"
    );
    drop(pg);
    tokio::task::spawn_blocking(move || support::drop_schemas(&[&schema]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_slowly_committing_producers_lose_nothing() {
    const PRODUCERS: u32 = 8;
    const EACH: u32 = 40;
    let schema = support::unique_schema("order2");
    let pg = support::postgres(&schema).await;
    let channel = PostgresStreamChannel::new(&pg);
    let stream = support::unique("concurrent");
    channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await
        .unwrap();
    let raw = support::raw().await;

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (raw, schema, stream) = (raw.clone(), schema.clone(), stream.clone());
        producers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let n = p * EACH + i;
                let mut tx = raw.begin().await.unwrap();
                insert_in(&mut tx, &schema, &stream, n).await;
                // Some commit at once, others after the rest moved on.
                tokio::time::sleep(Duration::from_millis(fastrand_ms(n))).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    let consumer = {
        let channel = channel.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < (PRODUCERS * EACH) as usize && tokio::time::Instant::now() < deadline
            {
                let batch = channel
                    .read_group(&stream, "g", "c", 7, Duration::from_millis(200))
                    .await
                    .unwrap();
                let ids: Vec<_> = batch.iter().map(|d| d.entry.id.clone()).collect();
                seen.extend(batch.iter().map(|d| n_of(&d.entry.body)));
                channel.ack(&stream, "g", &ids).await.unwrap();
            }
            seen
        })
    };
    for p in producers {
        p.await.unwrap();
    }
    let seen = consumer.await.unwrap();
    let distinct: HashSet<u32> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "an entry was delivered twice");
    let missing: Vec<u32> = (0..PRODUCERS * EACH)
        .filter(|n| !distinct.contains(n))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // Each producer's entries in its own order.
    for p in 0..PRODUCERS {
        let mine: Vec<u32> = seen.iter().copied().filter(|n| n / EACH == p).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "producer {p}: {mine:?}"
        );
    }
    drop(pg);
    tokio::task::spawn_blocking(move || support::drop_schemas(&[&schema]))
        .await
        .unwrap();
}

/// 0 to 30 ms, spread over the entries without a random source.
fn fastrand_ms(n: u32) -> u64 {
    u64::from(n.wrapping_mul(2_654_435_761) % 31)
}
