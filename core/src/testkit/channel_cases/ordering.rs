//! Order per key with concurrency: a consumer with `Ordering::PerKey`
//! handles keys concurrently and each key's messages one at a time, in the
//! order sent, also when some of them fail and are delivered again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixture::{channel_case, needs_groups, sample};
use crate::capabilities::Ordering;
use crate::consumer::{ConsumerContext, HandlerError};
use crate::envelope::{Metadata, PARTITION_KEY_HEADER};
use crate::retry::RetryPolicy;
use crate::testkit::{ensure, CaseResult, ChannelCase, ChannelHarness};

/// The ordering cases, in order.
pub fn ordering_cases() -> Vec<ChannelCase> {
    vec![channel_case!(
        per_key_order_holds_with_concurrency_64,
        needs_groups,
        alone: true
    )]
}

/// Per key, the (round, delivery count) of every handler call, in order.
type Calls = HashMap<u32, Vec<(u32, u32)>>;

const KEYS: u32 = 100;
const ROUNDS: u32 = 100;
/// One message in this many fails on its first delivery (200 of the
/// 10,000): each is redelivered, with a durable count on the channel.
const FAIL_EVERY: u32 = 50;

/// 10,000 messages over 100 partition keys, handled with concurrency 64
/// and random handler delays; one message in 50 fails on its first
/// delivery. Each key's messages are handled one at a time, in the order
/// sent, the failed ones holding back the later ones of their key; keys run
/// concurrently.
pub async fn per_key_order_holds_with_concurrency_64(h: &ChannelHarness) -> CaseResult {
    // Round after round, every key once per round, appended in order a
    // thousand at a time, before the consumer starts.
    let stream = h.uri("per-key");
    let all: Vec<Metadata> = (0..ROUNDS)
        .flat_map(|round| (0..KEYS).map(move |k| (round, k)))
        .map(|(round, k)| {
            let mut m = sample(&stream, round * KEYS + k);
            m.operation = "step".to_owned();
            m.headers
                .insert(PARTITION_KEY_HEADER.to_owned(), format!("key-{k}"));
            m.headers.insert("k".to_owned(), k.to_string());
            m.headers.insert("round".to_owned(), round.to_string());
            m
        })
        .collect();
    for chunk in all.chunks(1_000) {
        h.channel.append_many(&stream, chunk).await?;
    }
    let calls: Arc<Mutex<Calls>> = Arc::default();
    let busy: Arc<Mutex<HashMap<u32, bool>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let (running, most_running) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler = {
        let (calls, busy, overlaps) = (calls.clone(), busy.clone(), overlaps.clone());
        let (running, most_running) = (running.clone(), most_running.clone());
        move |ctx: ConsumerContext| {
            let (calls, busy, overlaps) = (calls.clone(), busy.clone(), overlaps.clone());
            let (running, most_running) = (running.clone(), most_running.clone());
            async move {
                let number = |name: &str| -> Result<u32, HandlerError> {
                    let text = ctx.metadata().headers.get(name).ok_or("no such header")?;
                    Ok(text.parse()?)
                };
                let (k, round) = (number("k")?, number("round")?);
                if std::mem::replace(busy.lock().unwrap().entry(k).or_default(), true) {
                    overlaps.fetch_add(1, AtomicOrdering::SeqCst);
                }
                let now = running.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                most_running.fetch_max(now, AtomicOrdering::SeqCst);
                calls
                    .lock()
                    .unwrap()
                    .entry(k)
                    .or_default()
                    .push((round, ctx.delivery_count()));
                tokio::time::sleep(Duration::from_micros(fastrand::u64(0..2_000))).await;
                running.fetch_sub(1, AtomicOrdering::SeqCst);
                busy.lock().unwrap().insert(k, false);
                if (k * ROUNDS + round) % FAIL_EVERY == 7 && ctx.delivery_count() == 1 {
                    return Err(HandlerError::from("fails once"));
                }
                Ok(())
            }
        }
    };
    let stats = h
        .consumer("per-key")
        .concurrency(64)
        .batch_size(128)
        .ordering(Ordering::PerKey)
        .retry(RetryPolicy::none())
        .redelivery_backoff(
            RetryPolicy::none()
                .initial_delay(Duration::from_millis(20))
                .jitter(false),
        )
        .block(Duration::from_millis(100))
        .no_claim()
        .stop_after(u64::from(KEYS * ROUNDS))
        .subscribe_fn(handler)?
        .completion()
        .await?;
    let failing = (0..KEYS * ROUNDS).filter(|n| n % FAIL_EVERY == 7).count() as u64;
    ensure!(
        stats.handled == u64::from(KEYS * ROUNDS) && stats.redelivered == failing,
        "stats {stats:?}: expected {} handled and {failing} redelivered",
        KEYS * ROUNDS
    );
    ensure!(
        overlaps.load(AtomicOrdering::SeqCst) == 0,
        "{} handler calls started while another of the same key ran",
        overlaps.load(AtomicOrdering::SeqCst)
    );
    let calls = calls.lock().unwrap();
    let mut out_of_order = BTreeMap::new();
    for (k, seen) in calls.iter() {
        // Every round, in order; a failed one again (delivery 2) before the
        // next round.
        let mut expected = Vec::new();
        for round in 0..ROUNDS {
            expected.push((round, 1));
            if (k * ROUNDS + round) % FAIL_EVERY == 7 {
                expected.push((round, 2));
            }
        }
        if *seen != expected {
            out_of_order.insert(*k, seen.iter().take(12).cloned().collect::<Vec<_>>());
        }
    }
    ensure!(
        calls.len() == KEYS as usize && out_of_order.is_empty(),
        "{} keys seen; keys out of order (first calls as (round, delivery)): {out_of_order:?}",
        calls.len()
    );
    let most = most_running.load(AtomicOrdering::SeqCst);
    ensure!(
        most >= 8,
        "at most {most} handlers ran at once: keys are not handled concurrently"
    );
    Ok(())
}
