//! Reading without a group: replay from the start, an entry or a time,
//! and single entries by id (through the channel and the receiver).

use std::time::Duration;

use futures_util::StreamExt;

use super::fixture::{
    append_samples, channel_case, header_n, in_channel_order, needs_get, needs_replay, sample,
    send_numbered,
};
use crate::channel::{EntryId, StreamPosition};
use crate::envelope::Metadata;
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness};

/// The replay cases, in order.
pub fn replay_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(replay_from_start_and_from_id, needs_replay),
        channel_case!(replay_from_a_time, needs_replay),
        channel_case!(get_by_id, needs_get),
    ]
}

/// Replay from the start, from an id (inclusive), after an id, up to an id,
/// with a count; and through the consumer's replay stream.
pub async fn replay_from_start_and_from_id(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("replay");
    append_samples(h, &stream, 10).await?;
    let ns = |entries: &[crate::Entry]| -> Vec<u32> {
        entries
            .iter()
            .filter_map(|e| e.body.as_ref().ok().and_then(header_n))
            .collect()
    };
    // The replay order: append order on a stream-ordered channel; on others
    // whatever order the channel replays in, which positions must respect.
    let all = h
        .channel
        .read_range(&stream, &StreamPosition::Start, None, 100)
        .await?;
    let order = ns(&all);
    ensure!(
        in_channel_order(h, order.clone()) == (0..10).collect::<Vec<_>>(),
        "replay from the start: {order:?}, expected 0 to 9"
    );
    let at = |n: u32| -> &EntryId {
        let i = order.iter().position(|&x| x == n).expect("replayed");
        &all[i].id
    };
    let (n4, n6) = (order[4], order[6]);
    let cases = [
        (
            "from the 5th entry",
            StreamPosition::From(at(n4).clone()),
            None,
            100,
            order[4..].to_vec(),
        ),
        (
            "after the 5th entry",
            StreamPosition::After(at(n4).clone()),
            None,
            100,
            order[5..].to_vec(),
        ),
        (
            "from the 5th to the 7th entry",
            StreamPosition::From(at(n4).clone()),
            Some(at(n6)),
            100,
            order[4..=6].to_vec(),
        ),
        (
            "from the start, count 2",
            StreamPosition::Start,
            None,
            2,
            order[..2].to_vec(),
        ),
    ];
    for (label, from, to, count, expected) in cases {
        let got = ns(&h.channel.read_range(&stream, &from, to, count).await?);
        ensure!(
            got == expected,
            "replay {label}: {got:?}, expected {expected:?}"
        );
    }

    let producer = h.producer("replay-typed")?;
    send_numbered(&producer, "counted", 25).await?;
    let replayed: Vec<_> = h
        .replay("replay-typed")
        .page_size(7)
        .from(StreamPosition::Start)
        .messages()?
        .collect()
        .await;
    let mut got = Vec::new();
    for m in replayed {
        got.push(m?.segment::<u32>("i")?);
    }
    let got = in_channel_order(h, got);
    ensure!(
        got == (0..25).collect::<Vec<_>>(),
        "replay stream gave {got:?}"
    );
    Ok(())
}

/// Replay from a time gives the entries appended at or after it; the
/// receiver finds a message by its message id.
pub async fn replay_from_a_time(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("time");
    append_samples(h, &stream, 3).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let between = crate::clock::now_ms();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later: Vec<Metadata> = (10..13).map(|i| sample(&stream, i)).collect();
    h.channel.append_many(&stream, &later).await?;
    let read = h
        .channel
        .read_range(&stream, &StreamPosition::Time(between), None, 100)
        .await?;
    let ns: Vec<u32> = read
        .iter()
        .filter_map(|e| e.body.as_ref().ok().and_then(header_n))
        .collect();
    let ns = in_channel_order(h, ns);
    ensure!(
        ns == [10, 11, 12],
        "replay from a time between the batches gave {ns:?}"
    );
    let future = crate::clock::now_ms() + 60_000;
    let none = h
        .channel
        .read_range(&stream, &StreamPosition::Time(future), None, 100)
        .await?;
    ensure!(
        none.is_empty(),
        "replay from a future time gave {} entries",
        none.len()
    );

    let producer = h.producer("find")?;
    let mut receipts = Vec::new();
    for i in 0..5u32 {
        receipts.push(producer.message("n").segment("i", &i)?.send().await?);
    }
    let receiver = h.receiver("find").build()?;
    let found = receiver.find(receipts[3].message_id).await?;
    let i = found.map(|m| m.segment::<u32>("i")).transpose()?;
    ensure!(i == Some(3), "find by message id returned {i:?}");
    let missing = receiver.find(crate::MessageId::new()).await?;
    ensure!(
        missing.is_none(),
        "find of an unknown message id returned a message"
    );
    Ok(())
}

/// One entry by id; an id not in the stream is `None`.
pub async fn get_by_id(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("get");
    let ids = append_samples(h, &stream, 3).await?;
    let got = h.channel.get(&stream, &ids[1]).await?;
    let n = got
        .as_ref()
        .and_then(|e| e.body.as_ref().ok())
        .and_then(header_n);
    ensure!(n == Some(1), "get({}) returned entry {n:?}", ids[1]);
    ensure!(
        got.map(|e| e.id) == Some(ids[1].clone()),
        "get returned another id"
    );
    let elsewhere = h.channel.get(&h.uri("get-empty"), &ids[1]).await?;
    ensure!(
        elsewhere.is_none(),
        "an id from another stream was found: {elsewhere:?}"
    );

    let producer = h.producer("get-typed")?;
    let receipt = producer
        .message("one")
        .segment("text", "hello")?
        .send()
        .await?;
    let message = h
        .receiver("get-typed")
        .build()?
        .get(receipt.entry_id())
        .await?;
    let message = message.ok_or_else(|| CaseFailure::new("the receiver found no message"))?;
    ensure!(
        message.message_id() == receipt.message_id,
        "the receiver returned another message"
    );
    let text: String = message.segment("text")?;
    ensure!(text == "hello", "the receiver's payload is {text:?}");
    Ok(())
}
