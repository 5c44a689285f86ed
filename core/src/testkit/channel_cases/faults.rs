//! Faults: the payload store away for longer than the backend retries, a
//! dead-letter append, a redelivery count or acknowledgements failing for a
//! while. Each time every message is handled once the fault is over,
//! without a restart and without the claim, and none twice.

use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fixture::{
    channel_case, length, needs_groups, pending, poll_until, quick_backend_retry, quick_redelivery,
    send_numbered, Runs,
};
use crate::address::dead_letter_key;
use crate::consumer::{ClaimPolicy, ConsumerContext, HandlerError};
use crate::retry::RetryPolicy;
use crate::testkit::{ensure, CaseResult, ChannelCase, ChannelHarness, FaultyChannel, FaultyStore};

/// The fault cases, in order.
pub fn faults_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(store_outage_is_recovered_without_a_restart, needs_groups),
        channel_case!(failed_dead_letter_append_is_tried_again, needs_groups),
        channel_case!(failed_redelivery_count_is_tried_again, needs_groups),
        channel_case!(ack_outage_is_tried_again_without_redelivery, needs_groups),
        channel_case!(
            read_outage_loses_nothing_and_counts_no_delivery,
            needs_groups
        ),
    ]
}

/// How soon after a fault ends its messages must be settled.
const RECOVERY: Duration = Duration::from_secs(10);

/// A claim that would only take entries after the case is over: recovery
/// must not wait for it.
fn distant_claim() -> ClaimPolicy {
    ClaimPolicy {
        interval: Duration::from_millis(200),
        min_idle: Duration::from_secs(90),
    }
}

/// Waits until a fault has failed `calls` calls, so that the consumer has
/// run into it several times over its backend retries.
async fn hit(what: &str, fault: &crate::testkit::Fault, calls: u64) -> CaseResult {
    poll_until(what, || async { Ok(fault.hits() >= calls) }).await
}

/// The payload store fails every read for longer than the consumer's
/// backend retry (several rounds of it); once it is back, every message is
/// handled within seconds, by the consumer that was running all along,
/// each once, none twice at once, with no claim to rescue them.
pub async fn store_outage_is_recovered_without_a_restart(h: &ChannelHarness) -> CaseResult {
    let store = FaultyStore::wrap(h.store.clone());
    let h = h.on(h.channel.clone(), store.clone());
    let producer = h.producer("store-outage")?;
    send_numbered(&producer, "work", 40).await?;
    store.reads().start();
    let runs = Runs::default();
    let r = runs.clone();
    let lifetime = h
        .consumer("store-outage")
        .backend_retry(quick_backend_retry())
        .concurrency(4)
        .batch_size(10)
        .block(Duration::from_millis(50))
        .claim(distant_claim())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move { r.run(&ctx, async { Ok(()) }).await }
        })?;
    hit("the consumer to run into the outage", store.reads(), 6).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.reads().stop();
    let back = Instant::now();
    let stream = producer.streams()[0].to_owned();
    poll_until("every message handled after the outage", || async {
        Ok(runs.handled() == 40 && pending(&h, &stream, "default").await? == Some(0))
    })
    .await?;
    let took = back.elapsed();
    let stats = lifetime.shutdown().await?;
    ensure!(
        took <= RECOVERY,
        "the messages were settled {took:?} after the store came back; expected within \
         {RECOVERY:?} (without a restart or the claim)"
    );
    ensure!(
        runs.overlaps().is_empty() && runs.handled_twice().is_empty(),
        "handled twice: {:?}; at once: {:?}",
        runs.handled_twice(),
        runs.overlaps()
    );
    ensure!(stats.dead_lettered == 0, "stats {stats:?}");
    Ok(())
}

/// A message reaches `max_deliveries` while appends to the dead-letter
/// stream fail, for longer than the backend retry: it is dead-lettered
/// once they work again, without a restart, with its handler run no more
/// than its deliveries allow; the others are handled meanwhile.
pub async fn failed_dead_letter_append_is_tried_again(h: &ChannelHarness) -> CaseResult {
    let channel = FaultyChannel::wrap(h.channel.clone());
    let h = h.on(channel.clone(), h.store.clone());
    let producer = h.producer("dead-letter-outage")?;
    producer.message("poison").send().await?;
    send_numbered(&producer, "fine", 3).await?;
    channel.dead_letter_appends().start();
    let poison_calls = Arc::new(AtomicU32::new(0));
    let runs = Runs::default();
    let (p, r) = (poison_calls.clone(), runs.clone());
    let lifetime = h
        .consumer("dead-letter-outage")
        .backend_retry(quick_backend_retry())
        .retry(RetryPolicy::none())
        .max_deliveries(1)
        .block(Duration::from_millis(50))
        .claim(distant_claim())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let (p, r) = (p.clone(), r.clone());
            async move {
                if ctx.operation() == "poison" {
                    p.fetch_add(1, AtomicOrdering::SeqCst);
                    return Err(HandlerError::from("poison"));
                }
                r.run(&ctx, async { Ok(()) }).await
            }
        })?;
    hit(
        "the consumer to fail appending the dead letter",
        channel.dead_letter_appends(),
        3,
    )
    .await?;
    // Longer than the backend retry.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let handled_meanwhile = runs.handled();
    channel.dead_letter_appends().stop();
    let back = Instant::now();
    let stream = producer.streams()[0].to_owned();
    let dlq = dead_letter_key(&stream);
    poll_until("the dead letter once appends work", || async {
        Ok(length(&h, &dlq).await? == 1 && pending(&h, &stream, "default").await? == Some(0))
    })
    .await?;
    let took = back.elapsed();
    let stats = lifetime.shutdown().await?;
    ensure!(
        took <= RECOVERY,
        "dead-lettered {took:?} after appends worked again; expected within {RECOVERY:?}"
    );
    ensure!(
        handled_meanwhile == 3,
        "{handled_meanwhile} of the 3 other messages were handled while the dead-letter \
         stream was away"
    );
    let calls = poison_calls.load(AtomicOrdering::SeqCst);
    ensure!(
        calls == 1 && stats.dead_lettered == 1,
        "the poison message's handler ran {calls} times for 1 delivery; stats {stats:?}"
    );
    Ok(())
}

/// A handler fails while counting redeliveries fails, for longer than the
/// backend retry: the message is delivered again once counting works, and
/// handled, without a restart.
pub async fn failed_redelivery_count_is_tried_again(h: &ChannelHarness) -> CaseResult {
    let channel = FaultyChannel::wrap(h.channel.clone());
    let h = h.on(channel.clone(), h.store.clone());
    let producer = h.producer("count-outage")?;
    producer.message("flaky").send().await?;
    channel.redeliveries().start();
    let runs = Runs::default();
    let r = runs.clone();
    let lifetime = h
        .consumer("count-outage")
        .backend_retry(quick_backend_retry())
        .retry(RetryPolicy::none())
        .redelivery_backoff(quick_redelivery())
        .block(Duration::from_millis(50))
        .claim(distant_claim())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move {
                r.run(&ctx, async {
                    if ctx.delivery_count() < 2 {
                        return Err(HandlerError::from("the first delivery fails"));
                    }
                    Ok(())
                })
                .await
            }
        })?;
    hit(
        "the consumer to fail counting the redelivery",
        channel.redeliveries(),
        3,
    )
    .await?;
    // Longer than the backend retry.
    tokio::time::sleep(Duration::from_millis(500)).await;
    channel.redeliveries().stop();
    let back = Instant::now();
    let stream = producer.streams()[0].to_owned();
    poll_until("the second delivery to be handled", || async {
        Ok(runs.handled() == 1 && pending(&h, &stream, "default").await? == Some(0))
    })
    .await?;
    let took = back.elapsed();
    lifetime.shutdown().await?;
    ensure!(
        took <= RECOVERY,
        "handled {took:?} after counting worked again; expected within {RECOVERY:?}"
    );
    let counts: Vec<u32> = runs.call_list().iter().map(|(_, n)| *n).collect();
    ensure!(
        counts == [1, 2],
        "delivery counts seen {counts:?}, expected [1, 2]"
    );
    Ok(())
}

/// Acknowledgements fail for longer than the backend retry, and longer
/// than the claim's idle time: once they work again, every message is
/// acknowledged, none handled again (its own claim does not take what
/// waits for its acknowledgement).
pub async fn ack_outage_is_tried_again_without_redelivery(h: &ChannelHarness) -> CaseResult {
    let channel = FaultyChannel::wrap(h.channel.clone());
    let h = h.on(channel.clone(), h.store.clone());
    let producer = h.producer("ack-outage")?;
    send_numbered(&producer, "work", 20).await?;
    channel.acks().start();
    let runs = Runs::default();
    let r = runs.clone();
    let idle = Duration::from_millis(600);
    let lifetime = h
        .consumer("ack-outage")
        .backend_retry(quick_backend_retry())
        .block(Duration::from_millis(50))
        .claim(ClaimPolicy {
            interval: Duration::from_millis(100),
            min_idle: idle,
        })
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move { r.run(&ctx, async { Ok(()) }).await }
        })?;
    poll_until("every message handled", || async {
        Ok(runs.handled() == 20)
    })
    .await?;
    hit("acknowledgements to fail", channel.acks(), 3).await?;
    // Past the claim's idle time, twice over.
    tokio::time::sleep(idle * 2).await;
    channel.acks().stop();
    let back = Instant::now();
    let stream = producer.streams()[0].to_owned();
    poll_until("every entry acknowledged", || async {
        Ok(pending(&h, &stream, "default").await? == Some(0))
    })
    .await?;
    let took = back.elapsed();
    lifetime.shutdown().await?;
    ensure!(
        took <= RECOVERY,
        "acknowledged {took:?} after acknowledgements worked again; expected within {RECOVERY:?}"
    );
    ensure!(
        runs.calls() == 20 && runs.handled_twice().is_empty(),
        "{} handler calls for 20 messages; handled twice: {:?}",
        runs.calls(),
        runs.handled_twice()
    );
    Ok(())
}

/// Reads of the group fail for a while, as a connection that drops would
/// make them, while the consumer holds a key's queue (each message failing
/// once): every message is handled, and its second delivery is counted 2.
/// A consumer that took back its own pending entries while it still held
/// them would count deliveries that never happened, and send messages to
/// the dead-letter stream early.
pub async fn read_outage_loses_nothing_and_counts_no_delivery(h: &ChannelHarness) -> CaseResult {
    let channel = FaultyChannel::wrap(h.channel.clone());
    let h = h.on(channel.clone(), h.store.clone());
    let producer = h.producer("read-outage")?;
    for i in 0..10u32 {
        producer
            .message("step")
            .partition_key("one-key")
            .segment("i", &i)?
            .send()
            .await?;
    }
    let runs = Runs::default();
    let r = runs.clone();
    let lifetime = h
        .consumer("read-outage")
        .ordering(crate::Ordering::PerKey)
        .backend_retry(quick_backend_retry())
        .retry(RetryPolicy::none())
        .redelivery_backoff(quick_redelivery())
        .block(Duration::from_millis(50))
        .claim(distant_claim())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move {
                r.run(&ctx, async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if ctx.delivery_count() < 2 {
                        return Err(HandlerError::from("the first delivery fails"));
                    }
                    Ok(())
                })
                .await
            }
        })?;
    poll_until("the key's first message to start", || async {
        Ok(runs.calls() >= 1)
    })
    .await?;
    channel.reads().start();
    hit("reads to fail", channel.reads(), 3).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    channel.reads().stop();
    let stream = producer.streams()[0].to_owned();
    poll_until("every message handled", || async {
        Ok(runs.handled() == 10 && pending(&h, &stream, "default").await? == Some(0))
    })
    .await?;
    let stats = lifetime.shutdown().await?;
    let counts: Vec<u32> = runs.call_list().iter().map(|(_, n)| *n).collect();
    ensure!(
        counts.chunks(2).all(|pair| pair == [1, 2]) && counts.len() == 20,
        "delivery counts {counts:?}: expected 1 then 2 for each of the 10 messages"
    );
    ensure!(stats.dead_lettered == 0, "stats {stats:?}");
    Ok(())
}
