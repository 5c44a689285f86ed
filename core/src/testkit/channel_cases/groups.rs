//! Consumer groups: each group sees every entry, members of one group
//! share them, where a new group starts, and what `info` says of a group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::fixture::{
    append_samples, channel_case, delivered_ns, grouped, header_n, in_channel_order, needs_groups,
    needs_list_streams, needs_parallel_members, pending, poll_until, read_n, sample, send_numbered,
    stream_ordered, Ledger, SHORT_BLOCK,
};
use crate::channel::GroupStart;
use crate::consumer::{ConsumerContext, HandlerError};
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};

/// The groups cases, in order.
pub fn groups_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(two_groups_each_get_every_message, needs_groups),
        channel_case!(
            one_group_splits_1000_without_loss_or_duplicate,
            needs_parallel_members
        ),
        channel_case!(group_from_beginning_vs_latest, needs_groups),
        channel_case!(ensure_group_is_idempotent, needs_groups),
        channel_case!(info_reports_length_and_pending, needs_groups),
        channel_case!(streams_lists_every_written_stream, needs_list_streams),
    ]
}

/// Two groups each receive every entry.
pub async fn two_groups_each_get_every_message(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("two-groups");
    h.channel
        .ensure_group(&stream, "a", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "b", GroupStart::Beginning)
        .await?;
    append_samples(h, &stream, 50).await?;
    for group in ["a", "b"] {
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let read = h
                .channel
                .read_group(&stream, group, "c", 20, SHORT_BLOCK)
                .await?;
            if read.is_empty() {
                break;
            }
            seen.extend(
                read.iter()
                    .filter_map(|d| d.entry.body.as_ref().ok().and_then(header_n)),
            );
        }
        let expected: Vec<u32> = (0..50).collect();
        let seen = in_channel_order(h, seen);
        ensure!(seen == expected, "group {group} saw {seen:?}");
    }
    Ok(())
}

/// Two consumers of one group split 1,000 messages: none lost, none twice,
/// both did some.
pub async fn one_group_splits_1000_without_loss_or_duplicate(h: &ChannelHarness) -> CaseResult {
    let producer = h.producer("split")?;
    let ledger = Ledger::default();
    let mut lifetimes = Vec::new();
    for name in ["first", "second"] {
        let ledger = ledger.clone();
        lifetimes.push(
            h.consumer("split")
                .group("workers")
                .consumer_name(name)
                .batch_size(10)
                .concurrency(1)
                .block(SHORT_BLOCK)
                .subscribe_fn(move |ctx: ConsumerContext| {
                    let ledger = ledger.clone();
                    async move {
                        ledger.record(name, &ctx);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Ok::<(), HandlerError>(())
                    }
                })?,
        );
    }
    send_numbered(&producer, "work", 1000).await?;
    poll_until("1000 messages handled", || async {
        Ok(ledger.len() >= 1000)
    })
    .await?;
    for l in lifetimes {
        l.shutdown().await?;
    }
    let handled = ledger.contexts();
    let mut per_consumer: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (who, ctx) in &handled {
        *per_consumer.entry(who.clone()).or_default() += 1;
        let i: u32 = ctx.segment("i")?;
        ensure!(seen.insert(i), "message {i} handled twice");
    }
    ensure!(
        seen.len() == 1000,
        "handled {} distinct of 1000",
        seen.len()
    );
    ensure!(per_consumer.len() == 2, "only {per_consumer:?} did work");
    Ok(())
}

/// A group from the beginning sees old entries; one from latest only new.
pub async fn group_from_beginning_vs_latest(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("start");
    append_samples(h, &stream, 3).await?;
    h.channel
        .ensure_group(&stream, "early", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "late", GroupStart::Latest)
        .await?;
    let new = vec![sample(&stream, 100), sample(&stream, 101)];
    h.channel.append_many(&stream, &new).await?;
    let early = in_channel_order(
        h,
        delivered_ns(&read_n(h, &stream, "early", "c", 100).await?),
    );
    let late = in_channel_order(
        h,
        delivered_ns(&read_n(h, &stream, "late", "c", 100).await?),
    );
    ensure!(
        early == [0, 1, 2, 100, 101],
        "group from the beginning saw {early:?}"
    );
    ensure!(late == [100, 101], "group from latest saw {late:?}");
    Ok(())
}

/// Ensuring an existing group leaves its position and pending list alone.
pub async fn ensure_group_is_idempotent(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "ensure", 4).await?;
    let first = read_n(h, &stream, "g", "c", 2).await?;
    ensure!(first.len() == 2, "read {} of 2", first.len());
    h.channel
        .ensure_group(&stream, "g", GroupStart::Beginning)
        .await?;
    h.channel
        .ensure_group(&stream, "g", GroupStart::Latest)
        .await?;
    let rest = read_n(h, &stream, "g", "c", 10).await?;
    let ns = delivered_ns(&rest);
    if stream_ordered(h) {
        ensure!(
            ns == [2, 3],
            "after ensure_group again the group read {ns:?}, expected [2, 3]"
        );
    } else {
        let mut all = delivered_ns(&first);
        all.extend(&ns);
        all.sort_unstable();
        ensure!(
            all == [0, 1, 2, 3],
            "after ensure_group again the group read {ns:?} besides {:?}",
            delivered_ns(&first)
        );
    }
    let pending = pending(h, &stream, "g").await?;
    ensure!(pending == Some(4), "pending {pending:?}, expected 4");
    Ok(())
}

/// `info` reports the length, the newest entry (when known), and per group
/// the pending count (and lag, when known); `group_members` (when the
/// backend says) each member with what it holds.
pub async fn info_reports_length_and_pending(h: &ChannelHarness) -> CaseResult {
    let (stream, ids) = grouped(h, "info", 5).await?;
    let read = read_n(h, &stream, "g", "c", 3).await?;
    ensure!(read.len() == 3, "read {} of 3", read.len());
    h.channel
        .ack(&stream, "g", &[read[0].entry.id.clone()])
        .await?;
    let info = h.channel.info(&stream).await?;
    ensure!(info.length == 5, "length {} after 5 appends", info.length);
    ensure!(
        info.partitions >= 1,
        "a stream written to in {} partitions",
        info.partitions
    );
    if let Some(last) = &info.last {
        ensure!(
            Some(last) == ids.last(),
            "newest entry {last}, expected the last appended {:?}",
            ids.last()
        );
    }
    let g = info
        .group("g")
        .ok_or_else(|| CaseFailure::new(format!("group g missing from {info:?}")))?;
    ensure!(
        g.pending == 2,
        "pending {}, expected 2 (3 read, 1 acked)",
        g.pending
    );
    if let Some(lag) = g.lag {
        ensure!(lag == 2, "lag {lag}, expected 2 unread");
    }
    // Members, where the backend says: the one that read, with what it
    // holds; none in a group never made.
    if let Some(members) = h.channel.group_members(&stream, "g").await? {
        let names: Vec<(&str, u64)> = members
            .iter()
            .map(|m| (m.name.as_str(), m.pending))
            .collect();
        ensure!(
            names == [("c", 2)],
            "members {members:?}, expected c holding 2"
        );
        let none = h.channel.group_members(&stream, "never-made").await?;
        ensure!(
            none.as_deref().is_none_or(<[_]>::is_empty),
            "a group never made has members {none:?}"
        );
    }
    let empty = h.channel.info(&h.uri("info-none")).await?;
    ensure!(
        empty.length == 0
            && empty.groups.is_empty()
            && empty.last.is_none()
            && empty.partitions == 0,
        "a stream never written reports {empty:?}"
    );
    Ok(())
}

/// `streams` lists the streams written to, each once, sorted, and not a
/// stream never written.
pub async fn streams_lists_every_written_stream(h: &ChannelHarness) -> CaseResult {
    let written = [h.uri("listed-b"), h.uri("listed-a")];
    for stream in &written {
        append_samples(h, stream, 2).await?;
    }
    let never = h.uri("listed-never");
    let listed = h.channel.streams().await?;
    // The server holds other tests' streams too: name only this case's.
    let ours = |listed: &[String]| -> Vec<String> {
        let prefix = h.uri("listed");
        let prefix = &prefix[..prefix.len() - "listed".len()];
        listed
            .iter()
            .filter(|s| s.contains(prefix))
            .cloned()
            .collect()
    };
    for stream in &written {
        let found = listed.iter().filter(|s| *s == stream).count();
        ensure!(
            found == 1,
            "{stream:?} listed {found} times, among {:?}",
            ours(&listed)
        );
    }
    ensure!(!listed.contains(&never), "{never:?} listed, never written");
    if let Some(w) = listed.windows(2).find(|w| w[0] >= w[1]) {
        return Err(CaseFailure::new(format!(
            "streams not sorted and distinct: {:?} before {:?}",
            w[0], w[1]
        )));
    }
    Ok(())
}
