//! The pending list: acknowledged entries leave it, unacknowledged ones are
//! claimed by another member once idle long enough.

use std::time::Duration;

use super::fixture::{
    channel_case, grouped, needs_claim, needs_groups, pending, read_n, SHORT_BLOCK,
};
use crate::channel::EntryId;
use crate::testkit::{ensure, CaseResult, ChannelCase, ChannelHarness};

/// The pending cases, in order.
pub fn pending_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(ack_removes_from_pending, needs_groups),
        channel_case!(unacked_entry_is_claimed_after_min_idle, needs_claim),
    ]
}

/// Acknowledged entries leave the pending list; others stay.
pub async fn ack_removes_from_pending(h: &ChannelHarness) -> CaseResult {
    let (stream, _) = grouped(h, "ack", 5).await?;
    let read = read_n(h, &stream, "g", "c", 5).await?;
    ensure!(read.len() == 5, "read {} of 5", read.len());
    let before = pending(h, &stream, "g").await?;
    ensure!(
        before == Some(5),
        "pending {before:?} after reading 5, expected 5"
    );
    let ids: Vec<EntryId> = read.iter().take(3).map(|d| d.entry.id.clone()).collect();
    h.channel.ack(&stream, "g", &ids).await?;
    let after = pending(h, &stream, "g").await?;
    ensure!(
        after == Some(2),
        "pending {after:?} after acking 3 of 5, expected 2"
    );
    h.channel.ack(&stream, "g", &ids).await?;
    let twice = pending(h, &stream, "g").await?;
    ensure!(
        twice == Some(2),
        "acking again changed pending to {twice:?}"
    );
    let next = h
        .channel
        .read_group(&stream, "g", "c", 10, SHORT_BLOCK)
        .await?;
    ensure!(
        next.is_empty(),
        "acked or pending entries were delivered again as new: {}",
        next.len()
    );
    Ok(())
}

/// An entry read but not acknowledged is claimed by another member only
/// after `min_idle`, with delivery count 2.
pub async fn unacked_entry_is_claimed_after_min_idle(h: &ChannelHarness) -> CaseResult {
    let (stream, ids) = grouped(h, "claim", 1).await?;
    let first = h
        .channel
        .read_group(&stream, "g", "crashed", 10, SHORT_BLOCK)
        .await?;
    ensure!(first.len() == 1, "read {} entries, expected 1", first.len());
    let min_idle = Duration::from_millis(500);
    let early = h
        .channel
        .claim_stale(&stream, "g", "rescuer", min_idle, 10)
        .await?;
    ensure!(
        early.is_empty(),
        "claimed {} entries before min idle",
        early.len()
    );
    tokio::time::sleep(min_idle + Duration::from_millis(200)).await;
    let claimed = h
        .channel
        .claim_stale(&stream, "g", "rescuer", min_idle, 10)
        .await?;
    ensure!(
        claimed.len() == 1,
        "claimed {} entries after min idle, expected 1",
        claimed.len()
    );
    ensure!(
        claimed[0].entry.id == ids[0],
        "claimed {} instead of {}",
        claimed[0].entry.id,
        ids[0]
    );
    ensure!(
        claimed[0].delivery_count == 2,
        "delivery count {} after one claim, expected 2",
        claimed[0].delivery_count
    );
    ensure!(claimed[0].entry.body.is_ok(), "claimed entry is unreadable");
    let again = h
        .channel
        .claim_stale(&stream, "g", "third", min_idle, 10)
        .await?;
    ensure!(
        again.is_empty(),
        "the claim did not reset the idle time: claimed again at once"
    );
    h.channel.ack(&stream, "g", &[ids[0].clone()]).await?;
    let pending = pending(h, &stream, "g").await?;
    ensure!(
        pending == Some(0),
        "pending {pending:?} after the rescuer's ack"
    );
    Ok(())
}
