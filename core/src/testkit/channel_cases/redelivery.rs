//! Failures: a failed handler gets the message again, and what cannot be
//! handled goes to the dead-letter stream.

use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::fixture::{
    channel_case, needs_durable_counts, needs_groups, pending, poll_until, quick_redelivery,
    stream_entries,
};
use crate::address::dead_letter_key;
use crate::consumer::{
    ConsumerContext, Handler, HandlerError, Outcome, HEADER_DEAD_LETTER_ENTRY,
    HEADER_DEAD_LETTER_REASON,
};
use crate::envelope::{Metadata, Origin};
use crate::retry::RetryPolicy;
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};
use crate::Result;

/// The redelivery cases, in order.
pub fn redelivery_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(failed_handler_is_redelivered, needs_groups),
        channel_case!(dead_letter_after_max_deliveries, needs_groups),
        channel_case!(delivery_count_survives_a_restart, needs_durable_counts),
        channel_case!(unknown_operation_is_dead_lettered, needs_groups),
    ]
}

/// A handler that fails is given the message again (delivery count 2) by
/// the same consumer, after its redelivery backoff and without claiming,
/// and then succeeds; nothing is dead-lettered.
pub async fn failed_handler_is_redelivered(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("redeliver")?;
    producer.message("flaky").segment("x", &1u8)?.send().await?;
    let counts = Arc::new(Mutex::new(Vec::new()));
    let c = counts.clone();
    let lifetime = h
        .consumer("redeliver")
        .retry(RetryPolicy::none())
        .block(Duration::from_millis(50))
        .redelivery_backoff(quick_redelivery())
        .no_claim()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(ctx.delivery_count());
                if ctx.delivery_count() < 2 {
                    return Err(HandlerError::from("first delivery fails"));
                }
                Ok(())
            }
        })?;
    let stream = producer.streams()[0].to_owned();
    poll_until("the second delivery to be acked", || async {
        let done = counts.lock().unwrap().len() >= 2;
        let pending = pending(h, &stream, "default").await?;
        Ok(done && pending == Some(0))
    })
    .await?;
    let stats = lifetime.shutdown().await?;
    let counts = counts.lock().unwrap().clone();
    ensure!(
        counts == [1, 2],
        "deliveries seen {counts:?}, expected [1, 2]"
    );
    ensure!(
        stats.dead_lettered == 0,
        "{} dead-lettered",
        stats.dead_lettered
    );
    Ok(())
}

/// After the maximum deliveries (redelivered by the same consumer, without
/// claiming) the message goes to `{stream}:dead-letter` with the reason and
/// the original ids, and the original is acknowledged.
pub async fn dead_letter_after_max_deliveries(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("dlq")?;
    let receipt = producer
        .message("poison")
        .segment("x", &7u32)?
        .send()
        .await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let lifetime = h
        .consumer("dlq")
        .retry(RetryPolicy::none())
        .max_deliveries(2)
        .block(Duration::from_millis(50))
        .redelivery_backoff(quick_redelivery())
        .no_claim()
        .subscribe_fn(move |_ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.fetch_add(1, AtomicOrdering::SeqCst);
                Err::<(), _>(HandlerError::from("always fails"))
            }
        })?;
    let stream = producer.streams()[0].to_owned();
    let dlq = dead_letter_key(&stream);
    poll_until("a dead letter and no pending entry", || async {
        let dead = h.channel.info(&dlq).await?.length;
        let pending = pending(h, &stream, "default").await?;
        Ok(dead == 1 && pending == Some(0))
    })
    .await?;
    let stats = lifetime.shutdown().await?;
    ensure!(
        calls.load(AtomicOrdering::SeqCst) == 2,
        "handler called {} times for max 2 deliveries",
        calls.load(AtomicOrdering::SeqCst)
    );
    ensure!(
        stats.dead_lettered == 1,
        "stats report {} dead letters",
        stats.dead_lettered
    );
    let dead = dead_letters(h, &dlq).await?;
    let m = &dead[0];
    let reason = m
        .headers
        .get(HEADER_DEAD_LETTER_REASON)
        .cloned()
        .unwrap_or_default();
    ensure!(
        reason.contains("always fails") && reason.contains("2 deliveries"),
        "reason {reason:?}"
    );
    ensure!(
        m.headers.get(HEADER_DEAD_LETTER_ENTRY) == Some(&receipt.entry_id().to_string()),
        "entry header {:?}",
        m.headers.get(HEADER_DEAD_LETTER_ENTRY)
    );
    ensure!(
        m.origin
            == Origin::Copy {
                original: receipt.message_id
            },
        "origin {:?}",
        m.origin
    );
    ensure!(m.operation == "poison", "operation {:?}", m.operation);
    Ok(())
}

/// A consumer fails a message twice (deliveries 1 and 2, the second one
/// redelivered in place) and stops; restarted under the same name, it gets
/// the message with delivery count 3.
pub async fn delivery_count_survives_a_restart(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("durable-count")?;
    producer.message("flaky").segment("x", &1u8)?.send().await?;
    let counts = Arc::new(Mutex::new(Vec::new()));
    let c = counts.clone();
    let first = h
        .consumer("durable-count")
        .consumer_name("restarting")
        .retry(RetryPolicy::none())
        .redelivery_backoff(quick_redelivery())
        .max_deliveries(10)
        .block(Duration::from_millis(50))
        .no_claim()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(ctx.delivery_count());
                if ctx.delivery_count() >= 2 {
                    // Fails, and stops before another delivery.
                    ctx.cancel();
                }
                Err::<(), _>(HandlerError::from("fails"))
            }
        })?;
    let stats = first.completion().await?;
    let before = counts.lock().unwrap().clone();
    ensure!(
        before == [1, 2] && stats.redelivered == 1,
        "first run: deliveries {before:?}, {} redelivered; expected [1, 2] and 1",
        stats.redelivered
    );
    let c = counts.clone();
    let second = h
        .consumer("durable-count")
        .consumer_name("restarting")
        .block(Duration::from_millis(50))
        .no_claim()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(ctx.delivery_count());
                Ok(())
            }
        })?;
    let stream = producer.streams()[0].to_owned();
    poll_until("the restarted consumer to handle the message", || async {
        let n = counts.lock().unwrap().len();
        let pending = pending(h, &stream, "default").await?;
        Ok(n >= 3 && pending == Some(0))
    })
    .await?;
    second.shutdown().await?;
    let counts = counts.lock().unwrap().clone();
    ensure!(
        counts == [1, 2, 3],
        "deliveries seen {counts:?}, expected [1, 2, 3]: the restart forgot the count"
    );
    Ok(())
}

async fn dead_letters(h: &ChannelHarness, dlq: &str) -> Result<Vec<Metadata>, CaseFailure> {
    stream_entries(h, dlq)
        .await?
        .into_iter()
        .map(|e| {
            e.body
                .map_err(|m| CaseFailure::new(format!("unreadable dead letter: {}", m.reason)))
        })
        .collect()
}

struct KnowsOnly(&'static str);

#[async_trait]
impl Handler for KnowsOnly {
    async fn handle(&self, ctx: &ConsumerContext) -> Result<Outcome, HandlerError> {
        Ok(if ctx.operation() == self.0 {
            Outcome::Handled
        } else {
            Outcome::Unknown
        })
    }
}

/// A message no handler knows goes to the dead-letter stream with reason
/// `unknown operation`; the known one is handled.
pub async fn unknown_operation_is_dead_lettered(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("unknown")?;
    producer.message("known").send().await?;
    producer.message("mystery").version(4).send().await?;
    let stats = h
        .consumer("unknown")
        .stop_after(2)
        .subscribe(KnowsOnly("known"))?
        .completion()
        .await?;
    ensure!(
        stats.handled == 1 && stats.dead_lettered == 1,
        "stats {stats:?}"
    );
    let dlq = dead_letter_key(producer.streams()[0]);
    let dead = dead_letters(h, &dlq).await?;
    ensure!(dead.len() == 1, "{} dead letters", dead.len());
    let reason = dead[0]
        .headers
        .get(HEADER_DEAD_LETTER_REASON)
        .cloned()
        .unwrap_or_default();
    ensure!(
        reason.contains("unknown operation") && reason.contains("mystery"),
        "reason {reason:?}"
    );
    let pending = pending(h, producer.streams()[0], "default").await?;
    ensure!(pending == Some(0), "pending {pending:?}");
    Ok(())
}
