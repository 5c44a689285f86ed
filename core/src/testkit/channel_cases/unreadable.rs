//! What a consumer cannot read: a payload key or a vault record that fails
//! for good (that message alone goes to the dead-letter stream), a vault
//! record lost without an erasure (never read as erased), an entry
//! that is not metadata (dead-lettered with its bytes), and an entry of a
//! newer format (left pending for a consumer that reads it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::fixture::{
    channel_case, length, needs_groups, pending, poll_until, quick_redelivery, stream_entries, Runs,
};
use crate::address::{dead_letter_key, payload_key};
use crate::channel::GroupStart;
use crate::consumer::{ConsumerContext, HEADER_DEAD_LETTER_REASON, RAW_SEGMENT};
use crate::envelope::{Metadata, SegmentClass, WIRE_VERSION};
use crate::memory::MemoryStore;
use crate::privacy::{MasterKey, PersonalData, StoreKeyVault, SubjectKey};
use crate::testkit::{ensure, CaseFailure, CaseResult, ChannelCase, ChannelHarness, FaultyStore};

/// The cases about what cannot be read, in order.
pub fn unreadable_cases() -> Vec<ChannelCase> {
    vec![
        channel_case!(
            unreadable_payload_dead_letters_that_message_alone,
            needs_groups
        ),
        channel_case!(
            unreadable_vault_record_dead_letters_those_messages_alone,
            needs_groups
        ),
        channel_case!(lost_vault_record_is_not_taken_for_an_erasure, needs_groups),
        channel_case!(
            malformed_entry_is_dead_lettered_with_its_bytes,
            needs_groups
        ),
        channel_case!(newer_format_is_left_for_a_newer_consumer, needs_groups),
    ]
}

/// The dead letters of a stream, readable.
async fn dead_letters(h: &ChannelHarness, stream: &str) -> Result<Vec<Metadata>, CaseFailure> {
    stream_entries(h, &dead_letter_key(stream))
        .await?
        .into_iter()
        .map(|e| {
            e.body
                .map_err(|m| CaseFailure::new(format!("unreadable dead letter: {}", m.reason)))
        })
        .collect()
}

/// A consumer of stream `name` that records what it handles, until it
/// has handled `handled` messages and dead-lettered `dead` with nothing
/// left pending.
async fn consume(
    h: &ChannelHarness,
    name: &str,
    stream: &str,
    personal: Option<PersonalData>,
    handled: usize,
    dead: u64,
) -> Result<Runs, CaseFailure> {
    consume_with(h, name, stream, personal, handled, dead, |b| b).await
}

/// [`consume`], the consumer's options tuned.
async fn consume_with(
    h: &ChannelHarness,
    name: &str,
    stream: &str,
    personal: Option<PersonalData>,
    handled: usize,
    dead: u64,
    tune: impl FnOnce(crate::ConsumerBuilder) -> crate::ConsumerBuilder,
) -> Result<Runs, CaseFailure> {
    let runs = Runs::default();
    let r = runs.clone();
    let mut builder = tune(
        h.consumer(name)
            .concurrency(4)
            .block(Duration::from_millis(50))
            .no_claim(),
    );
    if let Some(personal) = personal {
        builder = builder.personal_data(personal);
    }
    let lifetime = builder.subscribe_fn(move |ctx: ConsumerContext| {
        let r = r.clone();
        async move { r.run(&ctx, async { Ok(()) }).await }
    })?;
    let dlq = dead_letter_key(stream);
    poll_until(
        "the readable messages handled, the others dead-lettered",
        || async {
            Ok(runs.handled() == handled
                && length(h, &dlq).await? == dead
                && pending(h, stream, "default").await? == Some(0))
        },
    )
    .await?;
    let stats = lifetime.shutdown().await?;
    ensure!(
        stats.dead_lettered == dead && runs.calls() == handled,
        "stats {stats:?}, {} handler calls; expected {handled} handled and {dead} dead-lettered",
        runs.calls()
    );
    Ok(runs)
}

/// One payload key of ten fails every read for good (a key of the wrong
/// type): its message alone is dead-lettered, naming the key, and the
/// nine others of the batch are handled.
pub async fn unreadable_payload_dead_letters_that_message_alone(h: &ChannelHarness) -> CaseResult {
    let store = FaultyStore::wrap(h.store.clone());
    let h = h.on(h.channel.clone(), store.clone());
    let producer = h.producer("bad-payload")?;
    let stream = producer.streams()[0].to_owned();
    let mut broken = None;
    for i in 0..10u32 {
        let receipt = producer.message("work").segment("i", &i)?.send().await?;
        if i == 3 {
            let key = payload_key(
                &stream,
                "work",
                0,
                &SegmentClass::NORMAL,
                &receipt.message_id,
            );
            store.break_key(key.clone());
            broken = Some(key);
        }
    }
    let broken = broken.expect("message 3 was sent");
    consume(&h, "bad-payload", &stream, None, 9, 1).await?;
    ensure!(store.broken_hits() > 0, "the broken key was never read");
    let dead = dead_letters(&h, &stream).await?;
    let reason = dead[0]
        .headers
        .get(HEADER_DEAD_LETTER_REASON)
        .cloned()
        .unwrap_or_default();
    ensure!(
        reason.contains(&broken),
        "the dead letter's reason {reason:?} does not name the key {broken:?}"
    );
    Ok(())
}

/// Ann, bob, cy and dee register twice, each message with their email as
/// personal data.
async fn register_four_subjects_twice(producer: &crate::Producer) -> CaseResult {
    for round in 0..2u32 {
        for user in ["ann", "bob", "cy", "dee"] {
            producer
                .message("registered")
                .subject(user)
                .segment("round", &round)?
                .personal("email", &format!("{user}@example.com"))?
                .send()
                .await?;
        }
    }
    Ok(())
}

/// The vault record of one data subject fails every read for good: that
/// subject's messages alone are dead-lettered, everyone else's handled.
pub async fn unreadable_vault_record_dead_letters_those_messages_alone(
    h: &ChannelHarness,
) -> CaseResult {
    let vault_store = FaultyStore::wrap(Arc::new(MemoryStore::new()));
    let (master, subjects) = (MasterKey::generate(), SubjectKey::generate());
    let settings = || PersonalData::on_store(vault_store.clone(), master.clone(), subjects.clone());
    let producer = crate::Producer::builder()
        .channel(h.channel.clone())
        .store(h.store.clone())
        .uri(h.uri("bad-vault"))
        .personal_data(settings())
        .build()?;
    let stream = producer.streams()[0].to_owned();
    register_four_subjects_twice(&producer).await?;
    let record =
        StoreKeyVault::new(vault_store.clone(), master.clone()).record_key(&subjects.hash("bob"));
    vault_store.break_key(record);
    // A reader of its own: nothing cached from the producer's vault.
    consume(h, "bad-vault", &stream, Some(settings()), 6, 2).await?;
    ensure!(vault_store.broken_hits() > 0, "bob's record was never read");
    Ok(())
}

/// A data subject's vault record deleted behind the library's back (an
/// eviction, a failover before replication, a restored backup) is not an
/// erasure: that subject's messages are never handled as erased, they are
/// redelivered and then dead-lettered with a reason that says what is
/// missing; a subject erased for real is handled without its personal
/// data; everyone else is handled.
pub async fn lost_vault_record_is_not_taken_for_an_erasure(h: &ChannelHarness) -> CaseResult {
    let vault_store: Arc<dyn crate::KeyValueStore> = Arc::new(MemoryStore::new());
    let (master, subjects) = (MasterKey::generate(), SubjectKey::generate());
    let vault = || {
        StoreKeyVault::new(vault_store.clone(), master.clone())
            .cache_ttl(Duration::from_millis(100))
            .reader_cache_ttl(Duration::from_millis(100))
    };
    let settings = || PersonalData::new(Arc::new(vault()), subjects.clone());
    let producer = crate::Producer::builder()
        .channel(h.channel.clone())
        .store(h.store.clone())
        .uri(h.uri("lost-vault"))
        .personal_data(settings())
        .build()?;
    let stream = producer.streams()[0].to_owned();
    register_four_subjects_twice(&producer).await?;
    vault_store
        .delete(&vault().record_key(&subjects.hash("bob")))
        .await?;
    ensure!(
        settings().erase_subject("cy").await?,
        "cy had no key to erase"
    );
    // Six handled (ann, cy erased, dee), bob's two never handled.
    consume_with(h, "lost-vault", &stream, Some(settings()), 6, 2, |b| {
        b.max_deliveries(3).redelivery_backoff(quick_redelivery())
    })
    .await?;
    let dead = dead_letters(h, &stream).await?;
    let bob = subjects.hash("bob");
    for letter in &dead {
        ensure!(
            letter.subject == Some(bob),
            "a message of another subject was dead-lettered: {:?}",
            letter.subject
        );
        let reason = letter
            .headers
            .get(HEADER_DEAD_LETTER_REASON)
            .cloned()
            .unwrap_or_default();
        ensure!(
            reason.contains("does not hold") && reason.contains("no erasure tombstone"),
            "the dead letter's reason does not say the key is missing: {reason:?}"
        );
        let deliveries = letter
            .headers
            .get(crate::consumer::HEADER_DEAD_LETTER_DELIVERIES)
            .cloned()
            .unwrap_or_default();
        ensure!(
            deliveries == "3",
            "dead-lettered after {deliveries} deliveries, expected max_deliveries (3)"
        );
    }
    Ok(())
}

/// An entry whose bytes are not metadata is dead-lettered with those very
/// bytes; the message after it is handled.
pub async fn malformed_entry_is_dead_lettered_with_its_bytes(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("garbage");
    h.channel
        .ensure_group(&stream, "default", GroupStart::Beginning)
        .await?;
    let garbage = Bytes::from_static(b"\x00not metadata\xff");
    h.append_raw(&stream, garbage.clone()).await?;
    h.producer("garbage")?.message("fine").send().await?;
    consume(h, "garbage", &stream, None, 1, 1).await?;
    let dead = dead_letters(h, &stream).await?;
    let raw = dead[0]
        .segments
        .iter()
        .find(|s| s.name == RAW_SEGMENT)
        .map(|s| s.location.clone());
    ensure!(
        matches!(&raw, Some(crate::SegmentLocation::Inline(bytes)) if *bytes == garbage),
        "the dead letter does not carry the entry's bytes: {raw:?}"
    );
    Ok(())
}

/// An entry of a format version newer than this build's (a newer producer
/// during a rolling upgrade) is neither handled nor dead-lettered: it stays
/// pending, for a consumer that reads it; the message after it is handled.
pub async fn newer_format_is_left_for_a_newer_consumer(h: &ChannelHarness) -> CaseResult {
    let stream = h.uri("newer");
    h.channel
        .ensure_group(&stream, "default", GroupStart::Beginning)
        .await?;
    let mut newer = b"EB".to_vec();
    newer.push(WIRE_VERSION + 1);
    newer.extend_from_slice(b"a layout this build does not know");
    h.append_raw(&stream, Bytes::from(newer)).await?;
    h.producer("newer")?.message("fine").send().await?;
    let runs = Runs::default();
    let r = runs.clone();
    let lifetime = h
        .consumer("newer")
        .block(Duration::from_millis(50))
        .no_claim()
        .subscribe_fn(move |ctx: ConsumerContext| {
            let r = r.clone();
            async move { r.run(&ctx, async { Ok(()) }).await }
        })?;
    poll_until("the readable message handled", || async {
        Ok(runs.handled() == 1)
    })
    .await?;
    // Time for a wrong dead letter to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = lifetime.shutdown().await?;
    let dead = length(h, &dead_letter_key(&stream)).await?;
    let left = pending(h, &stream, "default").await?;
    ensure!(
        dead == 0 && stats.dead_lettered == 0,
        "the newer entry was dead-lettered ({dead} dead letters, stats {stats:?})"
    );
    ensure!(
        left == Some(1),
        "{left:?} entries pending; expected the newer one, left for a newer consumer"
    );
    Ok(())
}
