//! Appending and reading back: order, ids, batch sizes, blocking reads,
//! streams never written.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::fixture::{
    always, append_samples, channel_case, grouped, header_n, needs_groups, needs_replay, read_n,
    sample, stream_ordered, SHORT_BLOCK,
};
use crate::channel::{EntryId, GroupStart, StreamPosition};
use crate::envelope::Metadata;
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};

/// The append cases, in order.
pub fn append_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(append_then_read_in_order, needs_groups),
        channel_case!(append_many_keeps_order_500, needs_replay),
        channel_case!(batch_size_is_respected, needs_groups),
        channel_case!(block_timeout_returns_empty, needs_groups),
        channel_case!(empty_stream_reads_are_empty, always),
    ]
}

/// Appended entries are read back by a group in order, metadata intact.
pub async fn append_then_read_in_order(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("in-order");
    let written: Vec<Metadata> = (0..10).map(|i| sample(&stream, i)).collect();
    let first = h.channel.append(&stream, &written[0]).await?;
    let rest = h.channel.append_many(&stream, &written[1..]).await?;
    ensure!(
        rest.len() == 9,
        "append_many of 9 returned {} ids",
        rest.len()
    );
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let mut read = read_n(h, &stream, "g", "c1", 100).await?;
    ensure!(read.len() == 10, "read {} of 10 entries", read.len());
    let mut appended: Vec<EntryId> = std::iter::once(first).chain(rest).collect();
    if !stream_ordered(h) {
        // Per-key order only: match entries to what was written by id.
        read.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
        let mut pairs: Vec<(EntryId, Metadata)> = appended
            .iter()
            .cloned()
            .zip(written.iter().cloned())
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        appended = pairs.iter().map(|(id, _)| id.clone()).collect();
        let written: Vec<Metadata> = pairs.into_iter().map(|(_, m)| m).collect();
        return check_read(&read, &written, &appended);
    }
    check_read(&read, &written, &appended)
}

fn check_read(read: &[crate::Delivery], written: &[Metadata], ids: &[EntryId]) -> CaseResult {
    for (i, ((d, w), id)) in read.iter().zip(written).zip(ids).enumerate() {
        let got = d
            .entry
            .body
            .as_ref()
            .map_err(|m| CaseFailure::new(format!("entry {i} malformed: {}", m.reason)))?;
        ensure!(got == w, "entry {i} differs:\n got {got:?}\nwant {w:?}");
        ensure!(
            d.entry.id == *id,
            "entry {i} has id {}, append returned {id}",
            d.entry.id
        );
        ensure!(
            d.delivery_count == 1,
            "entry {i} delivery count {} on first delivery",
            d.delivery_count
        );
    }
    Ok(())
}

/// `append_many` of 500 returns 500 distinct ids, in stream order.
pub async fn append_many_keeps_order_500(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("order-500");
    let ids = append_samples(h, &stream, 500).await?;
    let distinct: BTreeSet<&EntryId> = ids.iter().collect();
    ensure!(
        ids.len() == 500 && distinct.len() == 500,
        "{} ids, {} distinct",
        ids.len(),
        distinct.len()
    );
    let mut read = Vec::new();
    let mut from = StreamPosition::Start;
    loop {
        let page = h.channel.read_range(&stream, &from, None, 128).await?;
        let Some(last) = page.last() else { break };
        from = StreamPosition::After(last.id.clone());
        read.extend(page);
        ensure!(read.len() <= 500, "paging returned more than 500 entries");
    }
    ensure!(
        read.len() == 500,
        "replay found {} of 500 entries",
        read.len()
    );
    if !stream_ordered(h) {
        // Paging must still give every entry once.
        let got: BTreeSet<&EntryId> = read.iter().map(|e| &e.id).collect();
        ensure!(
            got == distinct,
            "paging gave other ids than append returned"
        );
        return Ok(());
    }
    for (i, (e, id)) in read.iter().zip(&ids).enumerate() {
        ensure!(
            e.id == *id,
            "position {i}: id {} but append returned {id}",
            e.id
        );
        let n = e.body.as_ref().ok().and_then(header_n);
        ensure!(n == Some(i as u32), "position {i} holds entry {n:?}");
    }
    Ok(())
}

/// A read returns at most `count` entries.
pub async fn batch_size_is_respected(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "batch", 10).await?;
    let mut sizes = Vec::new();
    loop {
        let read = h
            .channel
            .read_group(&stream, "g", "c", 3, SHORT_BLOCK)
            .await?;
        if read.is_empty() {
            break;
        }
        sizes.push(read.len());
    }
    if stream_ordered(h) {
        ensure!(
            sizes == [3, 3, 3, 1],
            "batch sizes {sizes:?}, expected [3, 3, 3, 1]"
        );
    } else {
        // Partitions deliver as they come: no read above 3, 10 in all.
        ensure!(
            sizes.iter().all(|&n| n <= 3) && sizes.iter().sum::<usize>() == 10,
            "batch sizes {sizes:?}, expected reads of at most 3 adding up to 10"
        );
    }
    Ok(())
}

/// A read on a stream with nothing new waits about the block timeout and
/// returns empty; a read that finds an entry appended while it waits
/// returns it.
pub async fn block_timeout_returns_empty(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("block");
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    let start = Instant::now();
    let read = h
        .channel
        .read_group(&stream, "g", "c", 10, Duration::from_millis(300))
        .await?;
    let waited = start.elapsed();
    ensure!(
        read.is_empty(),
        "read {} entries from an empty stream",
        read.len()
    );
    ensure!(
        waited >= Duration::from_millis(200),
        "returned after {waited:?}, before the 300 ms block"
    );
    ensure!(
        waited < Duration::from_secs(10),
        "blocked {waited:?} for a 300 ms timeout"
    );

    let channel = h.channel.clone();
    let s = stream.clone();
    let reader = tokio::spawn(async move {
        channel
            .read_group(&s, "g", "c", 10, Duration::from_secs(10))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    append_samples(h, &stream, 1).await?;
    let woke = reader
        .await
        .map_err(|e| CaseFailure::new(format!("reader task: {e}")))??;
    ensure!(
        woke.len() == 1,
        "a blocked read got {} entries after an append",
        woke.len()
    );
    Ok(())
}

/// Reads of a stream that was never written are empty, not errors.
pub async fn empty_stream_reads_are_empty(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("never-written");
    let caps = h.channel.capabilities();
    if caps.replay {
        let entries = h
            .channel
            .read_range(&stream, &StreamPosition::Start, None, 10)
            .await?;
        ensure!(
            entries.is_empty(),
            "read_range of a new stream returned {}",
            entries.len()
        );
    }
    let info = h.channel.info(&stream).await?;
    ensure!(info.length == 0, "info of a new stream: {info:?}");
    if caps.consumer_groups {
        h.channel
            .ensure_group(&stream, "g", GroupStart::Beginning)
            .await?;
        let read = h
            .channel
            .read_group(&stream, "g", "c", 10, Duration::from_millis(50))
            .await?;
        ensure!(
            read.is_empty(),
            "read_group of a new stream returned {}",
            read.len()
        );
    }
    Ok(())
}
