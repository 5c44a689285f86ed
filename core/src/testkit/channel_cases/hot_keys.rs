//! Keys that hold a consumer up: one whose queue takes longer than the
//! claim's idle time (its messages must not be claimed from the consumer
//! that holds them, by itself or by another member), and one whose first
//! message keeps failing with a long queue behind it (the other keys must
//! go on).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::fixture::{channel_case, needs_groups, pending, poll_until, Runs};
use crate::capabilities::Ordering;
use crate::consumer::{ClaimPolicy, ConsumerContext, HandlerError};
use crate::retry::RetryPolicy;
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};
use crate::Producer;

/// The hot-key cases, in order.
pub fn hot_keys_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(
            hot_key_outliving_the_claim_idle_runs_once_in_order,
            needs_groups
        ),
        channel_case!(poison_key_does_not_stall_the_other_keys, needs_groups),
    ]
}

/// Sends `n` messages of `key`, `i` = 0, 1, ...
async fn send_keyed(producer: &Producer, operation: &str, key: &str, n: u32) -> CaseResult {
    for i in 0..n {
        producer
            .message(operation)
            .partition_key(key)
            .segment("i", &i)?
            .send()
            .await?;
    }
    Ok(())
}

const HOT: u32 = 12;

/// Twelve messages of one key, 250 ms each, with a claim idle of 1.2 s:
/// the key's queue waits in the consumer's hands two and a half times
/// longer than the idle time, while the consumer itself claims every
/// 200 ms and a second member joins and claims too. Each message is
/// handled once, in the order sent, none twice at once.
pub async fn hot_key_outliving_the_claim_idle_runs_once_in_order(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("hot-key")?;
    send_keyed(&producer, "step", "hot", HOT).await?;
    let claim = ClaimPolicy {
        interval: Duration::from_millis(200),
        min_idle: Duration::from_millis(1_200),
    };
    let runs = Runs::default();
    let member = |name: &str| {
        let r = runs.clone();
        h.consumer("hot-key")
            .consumer_name(name)
            .ordering(Ordering::PerKey)
            .concurrency(4)
            .batch_size(32)
            .block(Duration::from_millis(50))
            .claim(claim)
            .subscribe_fn(move |ctx: ConsumerContext| {
                let r = r.clone();
                async move {
                    r.run(&ctx, async {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        Ok(())
                    })
                    .await
                }
            })
    };
    let first = member("first")?;
    poll_until("the first member to start the key", || async {
        Ok(runs.calls() >= 1)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = member("second")?;
    let stream = producer.streams()[0].to_owned();
    poll_until("every message of the key handled", || async {
        Ok(runs.handled() == HOT as usize && pending(h, &stream, "default").await? == Some(0))
    })
    .await?;
    // Long enough for a late claim to show.
    tokio::time::sleep(claim.min_idle).await;
    first.shutdown().await?;
    second.shutdown().await?;
    ensure!(
        runs.overlaps().is_empty()
            && runs.handled_twice().is_empty()
            && runs.calls() == HOT as usize,
        "{} calls for {HOT} messages; handled twice: {:?}; at once: {:?}",
        runs.calls(),
        runs.handled_twice(),
        runs.overlaps()
    );
    let sent_order: Vec<_> = runs.call_list().iter().map(|(id, _)| *id).collect();
    let mut by_id = sent_order.clone();
    // Message ids are time-ordered: sent one after the other, they sort
    // in the order sent.
    by_id.sort_unstable();
    ensure!(
        sent_order == by_id,
        "the key's messages ran out of the order sent"
    );
    Ok(())
}

/// Ten keys of ten messages, 120 ms each (1.2 s a key alone).
const GOOD_KEYS: u32 = 10;
const PER_KEY: u32 = 10;
const WORK: Duration = Duration::from_millis(120);

/// How long the good keys take, from the first handler call to the last
/// good message handled, on the stream `name`, where `poisoned` says
/// whether a poison key with a long queue comes first.
async fn good_keys_time(
    h: &ChannelHarness,
    name: &str,
    poisoned: bool,
) -> Result<Duration, CaseFailure> {
    let producer = h.producer(name)?;
    if poisoned {
        send_keyed(&producer, "bad", "bad", 100).await?;
    }
    for round in 0..PER_KEY {
        for k in 0..GOOD_KEYS {
            producer
                .message("good")
                .partition_key(format!("good-{k}"))
                .segment("i", &round)?
                .send()
                .await?;
        }
    }
    let runs = Runs::default();
    let first_call = Arc::new(OnceLock::<Instant>::new());
    let last_good = Arc::new(Mutex::new(None::<Instant>));
    let (r, f, l) = (runs.clone(), first_call.clone(), last_good.clone());
    let lifetime = h
        .consumer(name)
        .ordering(Ordering::PerKey)
        .retry(RetryPolicy::none())
        .max_deliveries(20)
        .block(Duration::from_millis(50))
        .subscribe_fn(move |ctx: ConsumerContext| {
            let (r, f, l) = (r.clone(), f.clone(), l.clone());
            async move {
                f.get_or_init(Instant::now);
                if ctx.operation() == "bad" {
                    if ctx.segment::<u32>("i")? == 0 {
                        return Err(HandlerError::from("the poison message fails every time"));
                    }
                    return Ok(());
                }
                r.run(&ctx, async {
                    tokio::time::sleep(WORK).await;
                    *l.lock().unwrap() = Some(Instant::now());
                    Ok(())
                })
                .await
            }
        })?;
    let good = (GOOD_KEYS * PER_KEY) as usize;
    poll_until("every good message handled", || async {
        Ok(runs.handled() == good)
    })
    .await?;
    let took = match (first_call.get(), *last_good.lock().unwrap()) {
        (Some(first), Some(last)) => last.duration_since(*first),
        _ => return Err(CaseFailure::new("no handler call was timed")),
    };
    lifetime.shutdown().await?;
    ensure!(
        runs.handled_twice().is_empty(),
        "handled twice: {:?}",
        runs.handled_twice()
    );
    Ok(took)
}

/// A key whose first message always fails, with 99 more of it queued
/// before 100 messages of ten other keys: the other keys finish within
/// twice the time they take on a stream without the poison key (the
/// poison message is still being redelivered then).
pub async fn poison_key_does_not_stall_the_other_keys(h: &ChannelHarness) -> CaseResult {
    let alone = good_keys_time(h, "without-poison", false).await?;
    let poisoned = good_keys_time(h, "with-poison", true).await?;
    ensure!(
        poisoned <= alone * 2,
        "with a poison key first, the other keys took {poisoned:?}, against {alone:?} without \
         it: more than twice as long"
    );
    Ok(())
}
