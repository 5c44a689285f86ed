//! Through the producer and consumer runtime: many senders, large and
//! unusual payloads, isolation of streams, manual acks, graceful shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixture::{
    channel_case, needs_groups, pending, poll_until, receive_one, send_numbered, stream_entries,
    Ledger, SHORT_BLOCK,
};
use crate::capabilities::Ordering;
use crate::consumer::{AckMode, ConsumerContext, HandlerError};
use crate::envelope::{SegmentClass, SegmentLocation};
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};
use crate::{Segments, StreamAddress};

/// The runtime cases, in order.
pub fn runtime_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(twenty_producers_times_100_arrive_exactly_once, needs_groups),
        channel_case!(one_mib_payload, needs_groups),
        channel_case!(unicode_and_binary_segments, needs_groups),
        channel_case!(streams_isolated_by_uri_and_environment, needs_groups),
        channel_case!(manual_ack_leaves_unacked_pending, needs_groups),
        channel_case!(shutdown_finishes_in_flight_and_loses_nothing, needs_groups),
    ]
}

/// 20 tasks send 100 messages each through one producer: each arrives
/// exactly once, and in each task's order where the channel orders streams.
pub async fn twenty_producers_times_100_arrive_exactly_once(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("many-producers")?;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20u32 {
        let producer = producer.clone();
        tasks.spawn(async move {
            for i in 0..100u32 {
                producer
                    .message("sent")
                    .segment("t", &t)?
                    .segment("i", &i)?
                    .send()
                    .await?;
            }
            Ok::<_, crate::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| CaseFailure::new(format!("producer task: {e}")))??;
    }
    let ledger = Ledger::default();
    let l = ledger.clone();
    let stats = h
        .consumer("many-producers")
        .concurrency(1)
        .batch_size(100)
        .stop_after(2000)
        .subscribe_fn(move |ctx: ConsumerContext| {
            let l = l.clone();
            async move {
                l.record("c", &ctx);
                Ok::<(), HandlerError>(())
            }
        })?
        .completion()
        .await?;
    ensure!(stats.handled == 2000, "handled {} of 2000", stats.handled);
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    let ordered = h.channel.capabilities().ordering == Ordering::Stream;
    for (_, ctx) in ledger.contexts() {
        let t: u32 = ctx.segment("t")?;
        let i: u32 = ctx.segment("i")?;
        ensure!(seen.insert((t, i)), "({t}, {i}) arrived twice");
        if ordered {
            if let Some(prev) = last.insert(t, i) {
                ensure!(prev < i, "task {t}: {i} arrived after {prev}");
            }
        }
    }
    ensure!(seen.len() == 2000, "{} distinct of 2000", seen.len());
    Ok(())
}

/// A 1 MiB segment travels through the store, not the stream, and comes back
/// byte for byte.
pub async fn one_mib_payload(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("big")?;
    let blob: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let mut segments = Segments::new();
    segments.insert("blob", blob.clone());
    let receipt = producer.send("upload", 0, segments).await?;
    let got = receive_one(h, "big").await?;
    // The metadata as the stream delivered it.
    let inline: usize = got
        .metadata()
        .segments
        .iter()
        .map(|s| match &s.location {
            SegmentLocation::Inline(b) => b.len(),
            SegmentLocation::Stored { .. } | SegmentLocation::Standard => 0,
        })
        .sum();
    ensure!(
        inline == 0,
        "{inline} payload bytes travelled in the stream"
    );
    let bytes = got.raw_segment("blob").cloned();
    ensure!(
        got.message_id() == receipt.message_id,
        "received another message"
    );
    ensure!(
        bytes.as_deref() == Some(&blob[..]),
        "the 1 MiB segment came back as {:?} bytes",
        bytes.map(|b| b.len())
    );
    Ok(())
}

/// Segment names in any script and values with every byte survive.
pub async fn unicode_and_binary_segments(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("unicode")?;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut segments = Segments::new();
    segments.insert("данные", all_bytes.clone());
    segments.insert("名前", b"\xff\xfe\x00".to_vec());
    segments.insert("emoji🎉 name", Vec::new());
    segments.insert_classed("pérsönal", SegmentClass::PERSONAL, b"\x00\x01".to_vec());
    producer.send("ünïcödé.op", 3, segments.clone()).await?;
    let got = receive_one(h, "unicode").await?;
    ensure!(
        got.operation() == "ünïcödé.op" && got.version() == 3,
        "operation {:?} v{}",
        got.operation(),
        got.version()
    );
    ensure!(
        got.segments() == &segments,
        "segments differ: {:?} vs {:?}",
        got.segments(),
        segments
    );
    Ok(())
}

/// Streams of different uris or environments do not see each other.
pub async fn streams_isolated_by_uri_and_environment(h: &ChannelHarness) -> CaseResult {
    let x = h.uri("iso-x");
    let y = h.uri("iso-y");
    let addresses = [
        (Some("envA"), &x),
        (Some("envB"), &x),
        (None, &x),
        (Some("envA"), &y),
    ];
    for (marker, (env, uri)) in addresses.iter().enumerate() {
        let mut builder = crate::Producer::builder()
            .channel(h.channel.clone())
            .store(h.store.clone())
            .uri(uri.as_str());
        if let Some(env) = env {
            builder = builder.environment(*env);
        }
        builder
            .build()?
            .message("mark")
            .segment("marker", &(marker as u32))?
            .send()
            .await?;
    }
    for (marker, (env, uri)) in addresses.iter().enumerate() {
        let stream = StreamAddress::new(*env, uri)?.stream_key().to_owned();
        let count = stream_entries(h, &stream).await?.len();
        ensure!(
            count == 1,
            "stream {stream:?} holds {count} entries, expected only its own"
        );
        let mut consumer = h
            .consumer("unused")
            .uri(uri.as_str())
            .group("iso2")
            .stop_after(1);
        if let Some(env) = env {
            consumer = consumer.environment(*env);
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        consumer
            .subscribe_fn(move |ctx: ConsumerContext| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ctx.segment::<u32>("marker")?);
                    Ok::<(), HandlerError>(())
                }
            })?
            .completion()
            .await?;
        let seen = seen.lock().unwrap().clone();
        ensure!(
            seen == [marker as u32],
            "stream {stream:?} delivered markers {seen:?}, expected [{marker}]"
        );
    }
    Ok(())
}

/// With manual acknowledgement, only what the handler acked leaves pending.
pub async fn manual_ack_leaves_unacked_pending(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("manual")?;
    send_numbered(&producer, "m", 4).await?;
    h.consumer("manual")
        .ack_mode(AckMode::Manual)
        .no_claim()
        .stop_after(4)
        .subscribe_fn(|ctx: ConsumerContext| async move {
            if ctx.segment::<u32>("i")? % 2 == 0 {
                ctx.ack();
            }
            Ok::<(), HandlerError>(())
        })?
        .completion()
        .await?;
    let pending = pending(h, producer.streams()[0], "default").await?;
    ensure!(
        pending == Some(2),
        "pending {pending:?}, expected the 2 messages not acked"
    );
    Ok(())
}

/// Shutdown stops fetching, lets in-flight handlers finish and acks them; a
/// later consumer of the group handles the rest: every message once.
pub async fn shutdown_finishes_in_flight_and_loses_nothing(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("shutdown")?;
    send_numbered(&producer, "slow", 20).await?;
    let started = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let ledger = Ledger::default();
    let handler = {
        let (started, finished, ledger) = (started.clone(), finished.clone(), ledger.clone());
        move |ctx: ConsumerContext| {
            let (started, finished, ledger) = (started.clone(), finished.clone(), ledger.clone());
            async move {
                started.fetch_add(1, AtomicOrdering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                ledger.record("first", &ctx);
                finished.fetch_add(1, AtomicOrdering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    };
    let lifetime = h
        .consumer("shutdown")
        .group("g")
        .batch_size(4)
        .concurrency(4)
        .block(SHORT_BLOCK)
        .subscribe_fn(handler)?;
    poll_until("a handler to start", || async {
        Ok(started.load(AtomicOrdering::SeqCst) > 0)
    })
    .await?;
    lifetime.shutdown().await?;
    let (s, f) = (
        started.load(AtomicOrdering::SeqCst),
        finished.load(AtomicOrdering::SeqCst),
    );
    ensure!(
        s == f,
        "{s} handlers started but only {f} finished at shutdown"
    );
    ensure!(f < 20, "shutdown did not stop fetching: all {f} handled");
    let stream = producer.streams()[0].to_owned();
    let pending = pending(h, &stream, "g").await?;
    ensure!(
        pending == Some(0),
        "pending {pending:?} after a graceful shutdown"
    );

    let l = ledger.clone();
    h.consumer("shutdown")
        .group("g")
        .block(SHORT_BLOCK)
        .stop_when_empty()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let l = l.clone();
            async move {
                l.record("second", &ctx);
                Ok::<(), HandlerError>(())
            }
        })?
        .completion()
        .await?;
    let mut seen = BTreeSet::new();
    for (who, ctx) in ledger.contexts() {
        let i: u32 = ctx.segment("i")?;
        ensure!(
            seen.insert(i),
            "message {i} handled twice (second time by {who})"
        );
    }
    ensure!(seen.len() == 20, "{} of 20 handled in all", seen.len());
    Ok(())
}
