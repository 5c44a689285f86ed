//! A stream copied into another: every message once, with its payload, in
//! order, marked as a copy; a copy stopped half-way (an append that failed,
//! one that happened but was not acknowledged) continued without a second
//! copy of anything.

use std::sync::Arc;

use bytes::Bytes;
use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::testkit::FaultyChannel;
use event_backbone_core::{
    Codec, CopyTarget, Fields, KeyValueStore, Message, MessageId, Origin, Producer, PutItem,
    Replay, StreamAddress, StreamChannel, StreamCopy, HEADER_COPIED_FROM_ENTRY,
    HEADER_COPIED_FROM_STREAM,
};
use futures_util::TryStreamExt;

struct Setup {
    channel: Arc<MemoryChannel>,
    store: Arc<MemoryStore>,
    to_channel: Arc<FaultyChannel>,
    to_store: Arc<MemoryStore>,
    /// The message ids sent, in order.
    sent: Vec<MessageId>,
}

/// `count` messages on `orders`, each with an `amount` (its number) and an
/// inline-free payload; an empty target channel and store.
async fn orders(count: u32) -> Setup {
    let mut setup = Setup {
        channel: Arc::new(MemoryChannel::new()),
        store: Arc::new(MemoryStore::new()),
        to_channel: FaultyChannel::wrap(Arc::new(MemoryChannel::new())),
        to_store: Arc::new(MemoryStore::new()),
        sent: Vec::new(),
    };
    setup.more(count).await;
    setup
}

impl Setup {
    /// A copy of `orders` into `test:orders-copy` of the setup's target.
    fn copy(&self) -> event_backbone_core::StreamCopyBuilder {
        self.copy_into(self.to_channel.clone(), self.to_store.clone())
    }

    /// A copy of `orders` into `test:orders-copy` on this channel and store.
    fn copy_into(
        &self,
        channel: Arc<dyn StreamChannel>,
        store: Arc<dyn KeyValueStore>,
    ) -> event_backbone_core::StreamCopyBuilder {
        let target = CopyTarget::new(
            channel,
            store,
            StreamAddress::new(Some("test"), "orders-copy").unwrap(),
        );
        StreamCopy::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .uri("orders")
            .page_size(2)
            .to(target)
    }

    /// The target's messages, read back with their payloads.
    async fn copied(&self) -> Vec<Message> {
        Replay::builder()
            .channel(self.to_channel.clone())
            .store(self.to_store.clone())
            .environment("test")
            .uri("orders-copy")
            .messages()
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Every message copied once, in order, with its payload.
    async fn assert_copied_once(&self) {
        let copied = self.copied().await;
        let originals: Vec<MessageId> = copied.iter().map(|m| m.metadata().original_id()).collect();
        assert_eq!(originals, self.sent, "each message once, in order");
        for (n, message) in copied.iter().enumerate() {
            let amount: Option<u32> = message
                .segments()
                .decode("amount", &Codec::Postcard)
                .unwrap();
            assert_eq!(amount, Some(n as u32));
            let note: Option<String> = message.segments().decode("note", &Codec::Postcard).unwrap();
            assert_eq!(note.as_deref(), Some(format!("order {n}").as_str()));
        }
    }
}

#[tokio::test]
async fn every_message_is_copied_once_with_its_payload_and_marked_as_a_copy() {
    let s = orders(5).await;
    let report = s.copy().build().unwrap().run().await.unwrap();
    assert_eq!((report.read, report.copied), (5, 5));
    assert!(report.not_copied.is_empty() && report.resumed_after.is_none());
    s.assert_copied_once().await;

    let copied = s.copied().await;
    let first = copied[0].metadata();
    assert_eq!(
        first.origin,
        Origin::Copy {
            original: s.sent[0]
        }
    );
    assert_ne!(first.message_id, s.sent[0], "a copy has an id of its own");
    assert_eq!((first.operation.as_str(), first.version), ("placed", 2));
    assert_eq!(first.correlation_id.as_deref(), Some("c0"));
    assert_eq!(first.headers[HEADER_COPIED_FROM_STREAM], "orders");
    let source_entries = s
        .channel
        .read_range(
            "orders",
            &event_backbone_core::StreamPosition::Start,
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        first.headers[HEADER_COPIED_FROM_ENTRY],
        source_entries[0].id.as_str()
    );
    // The source is untouched.
    assert_eq!(s.channel.info("orders").await.unwrap().length, 5);
}

#[tokio::test]
async fn a_second_run_copies_only_what_came_since() {
    let s = orders(3).await;
    let copy = s.copy().build().unwrap();
    assert_eq!(copy.run().await.unwrap().copied, 3);
    let report = copy.run().await.unwrap();
    assert_eq!((report.read, report.copied), (0, 0));
    assert!(report.resumed_after.is_some());

    let producer = Producer::builder()
        .channel(s.channel.clone())
        .store(s.store.clone())
        .uri("orders")
        .build()
        .unwrap();
    let mut s = s;
    for n in 3..5u32 {
        let receipt = producer
            .message("placed")
            .segment("amount", &n)
            .unwrap()
            .segment("note", &format!("order {n}"))
            .unwrap()
            .send()
            .await
            .unwrap();
        s.sent.push(receipt.message_id);
    }
    assert_eq!(copy.run().await.unwrap().copied, 2);
    s.assert_copied_once().await;
}

#[tokio::test]
async fn a_copy_stopped_by_a_failed_append_is_continued_without_a_second_copy() {
    let mut s = orders(1).await;
    s.copy().build().unwrap().run().await.unwrap();
    s.more(6).await;
    // The target's appends fail from the second page on.
    let faults = s.to_channel.clone();
    let copy = s
        .copy()
        .on_progress(move |_| faults.appends().start())
        .build()
        .unwrap();
    let stopped = copy.run().await;
    assert!(stopped.is_err(), "the second page's append fails");
    assert_eq!(s.copied().await.len(), 3, "the first page is there");

    s.to_channel.appends().stop();
    let copy = s.copy().build().unwrap();
    let report = copy.run().await.unwrap();
    assert_eq!(report.copied, 4);
    assert!(
        report.resumed_after.is_some() && !report.rescanned,
        "{report:?}"
    );
    s.assert_copied_once().await;
}

#[tokio::test]
async fn a_copy_stopped_after_an_unacknowledged_append_finds_its_copies() {
    let s = orders(5).await;
    let copy = s.copy().build().unwrap();
    assert_eq!(copy.run().await.unwrap().copied, 5);
    // As if the run had appended the first page (two entries) and then
    // stopped before it learnt so: the mark as it was written before that
    // append, with everything appended since in the target.
    let mut fields = Fields::new();
    fields.insert("after".into(), Bytes::new());
    fields.insert("in-flight".into(), Bytes::from_static(b"1"));
    fields.insert("target-after".into(), Bytes::new());
    s.to_store
        .put_many(&[PutItem {
            key: copy.mark_key(),
            fields,
            ttl: None,
        }])
        .await
        .unwrap();
    let report = copy.run().await.unwrap();
    assert_eq!(report.already_copied, 5, "{report:?}");
    assert_eq!(report.copied, 0, "no second copy");
    s.assert_copied_once().await;
}

#[tokio::test]
async fn the_mark_key_names_the_target_and_the_source() {
    let s = orders(1).await;
    let copy = s.copy().build().unwrap();
    assert_eq!(
        copy.mark_key(),
        "test:orders-copy:copy-of:memory:orders:into:memory"
    );
    copy.run().await.unwrap();
    assert!(s.to_store.get(&copy.mark_key()).await.unwrap().is_some());
}

#[tokio::test]
async fn personal_data_is_copied_sealed_into_a_stream_of_the_same_name_only() {
    use event_backbone_core::privacy::{MasterKey, PersonalData, SubjectKey};
    let channel = Arc::new(MemoryChannel::new());
    let store = Arc::new(MemoryStore::new());
    let personal =
        PersonalData::on_store(store.clone(), MasterKey::generate(), SubjectKey::generate());
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .personal_data(personal.clone())
        .uri("users")
        .build()
        .unwrap();
    producer
        .message("registered")
        .subject("ann")
        .personal("email", "ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap();
    let to_channel = Arc::new(MemoryChannel::new());
    let to_store = Arc::new(MemoryStore::new());
    let copy_to = |uri: &str| {
        StreamCopy::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri("users")
            .to(CopyTarget::new(
                to_channel.clone(),
                to_store.clone(),
                StreamAddress::new(None, uri).unwrap(),
            ))
            .build()
            .unwrap()
    };
    // Renamed, it would not open: left behind, with why.
    let renamed = copy_to("people").run().await.unwrap();
    assert_eq!(renamed.copied, 0);
    assert!(renamed.not_copied[0]
        .reason
        .contains("sealed for stream \"users\""));

    // Same name, another channel: copied sealed, opened with the vault.
    assert_eq!(copy_to("users").run().await.unwrap().copied, 1);
    let read: Vec<Message> = Replay::builder()
        .channel(to_channel.clone())
        .store(to_store.clone())
        .class_store(
            event_backbone_core::SegmentClass::personal(),
            to_store.clone(),
        )
        .personal_data(personal)
        .uri("users")
        .messages()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let email: Option<String> = read[0]
        .segments()
        .decode("email", &Codec::Postcard)
        .unwrap();
    assert_eq!(email.as_deref(), Some("ann@example.com"));
}

#[tokio::test]
async fn the_mark_of_another_target_sharing_the_store_is_not_followed() {
    let s = orders(3).await;
    assert_eq!(s.copy().build().unwrap().run().await.unwrap().copied, 3);
    // Another channel of the same kind, its payloads in the same store,
    // the same stream name: the first target's mark is in that store.
    let other = Arc::new(MemoryChannel::new());
    let report = s
        .copy_into(other.clone(), s.to_store.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(report.copied, 3, "every message, not none: {report:?}");
    assert!(report.ignored_mark.unwrap().contains("does not hold"));
    assert_eq!(other.info("test:orders-copy").await.unwrap().length, 3);
}

/// Runs a copy in a task that dies (as a process killed) right after a
/// page's append, once `copied` copies are appended, before it marks the
/// next page.
async fn crash_once_copied(copy: event_backbone_core::StreamCopyBuilder, copied: u64) {
    let copy = copy
        .on_progress(move |report| {
            if report.copied >= copied {
                panic!("killed after a page's append")
            }
        })
        .build()
        .unwrap();
    let died = tokio::spawn(async move { copy.run().await }).await;
    assert!(died.is_err(), "the run died");
}

impl Setup {
    /// `count` more orders, numbered on.
    async fn more(&mut self, count: u32) {
        let producer = Producer::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .uri("orders")
            .build()
            .unwrap();
        let first = self.sent.len() as u32;
        for n in first..first + count {
            let receipt = producer
                .message("placed")
                .version(2)
                .segment("amount", &n)
                .unwrap()
                .segment("note", &format!("order {n}"))
                .unwrap()
                .correlation_id(format!("c{n}"))
                .send()
                .await
                .unwrap();
            self.sent.push(receipt.message_id);
        }
    }

    /// The payload key of the `n`th order.
    async fn payload_key(&self, n: usize) -> String {
        let entries = self
            .channel
            .read_range(
                "orders",
                &event_backbone_core::StreamPosition::Start,
                None,
                100,
            )
            .await
            .unwrap();
        let metadata = entries[n].body.as_ref().unwrap();
        metadata.standard_payload_key(&event_backbone_core::SegmentClass::normal())
    }
}

#[tokio::test]
async fn a_page_appended_in_part_by_two_runs_that_died_is_copied_once() {
    let mut s = orders(5).await;
    s.copy().build().unwrap().run().await.unwrap();
    s.more(10).await;
    // Run A appends five of the ten new ones and dies; run B reads pages
    // of ten: the page it does again holds those five, it appends the
    // other five and dies too.
    crash_once_copied(s.copy().page_size(5), 5).await;
    crash_once_copied(s.copy().page_size(10), 5).await;
    assert_eq!(s.copied().await.len(), 15);

    let report = s.copy().page_size(10).build().unwrap().run().await.unwrap();
    assert!(!report.rescanned, "{report:?}");
    assert_eq!(
        (report.copied, report.already_copied),
        (0, 10),
        "{report:?}"
    );
    s.assert_copied_once().await;
}

#[tokio::test]
async fn a_restart_that_died_is_not_taken_for_a_resume_point() {
    let s = orders(6).await;
    // Two orders' payloads are gone: left behind, then put back.
    let keys = [s.payload_key(1).await, s.payload_key(3).await];
    let mut kept = Vec::new();
    for key in &keys {
        kept.push(s.store.get(key).await.unwrap().unwrap());
        s.store.delete(key).await.unwrap();
    }
    let report = s.copy().build().unwrap().run().await.unwrap();
    assert_eq!((report.copied, report.not_copied.len()), (4, 2));
    for (key, fields) in keys.iter().zip(kept) {
        s.store.put(key, &fields, None).await.unwrap();
    }
    // The restart copies the first, then the second, and dies.
    crash_once_copied(s.copy().restart(), 2).await;
    let report = s.copy().build().unwrap().run().await.unwrap();
    assert!(report.rescanned, "{report:?}");
    assert_eq!((report.copied, report.already_copied), (0, 6), "{report:?}");
    let mut copied: Vec<MessageId> = s
        .copied()
        .await
        .iter()
        .map(|m| m.metadata().original_id())
        .collect();
    copied.sort_unstable();
    let mut sent = s.sent.clone();
    sent.sort_unstable();
    assert_eq!(copied, sent, "each once");
}

#[tokio::test]
async fn a_restart_reads_again_and_skips_what_the_target_holds() {
    let s = orders(4).await;
    s.copy().build().unwrap().run().await.unwrap();
    let report = s.copy().restart().build().unwrap().run().await.unwrap();
    assert_eq!((report.copied, report.already_copied), (0, 4));
    s.assert_copied_once().await;
}

#[tokio::test]
async fn a_copy_onto_its_own_stream_is_refused() {
    let s = orders(1).await;
    let refused = StreamCopy::builder()
        .channel(s.channel.clone())
        .store(s.store.clone())
        .uri("orders")
        .to(CopyTarget::new(
            s.channel.clone(),
            s.store.clone(),
            StreamAddress::new(None, "orders").unwrap(),
        ))
        .build()
        .unwrap_err();
    assert!(
        refused.to_string().contains("the target is the source"),
        "{refused}"
    );
}

#[tokio::test]
async fn segments_in_a_store_the_copy_was_not_given_are_counted() {
    use event_backbone_core::SegmentClass;
    let s = orders(0).await;
    let elsewhere = Arc::new(MemoryStore::new());
    Producer::builder()
        .channel(s.channel.clone())
        .store(s.store.clone())
        .class_store(SegmentClass::custom("audit").unwrap(), elsewhere)
        .uri("orders")
        .build()
        .unwrap()
        .message("placed")
        .classed("who", SegmentClass::custom("audit").unwrap(), "ops")
        .unwrap()
        .send()
        .await
        .unwrap();
    let report = s.copy().build().unwrap().run().await.unwrap();
    assert_eq!(
        (report.copied, report.segments_not_found),
        (1, 1),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_source_made_anew_is_copied_again_not_taken_for_what_was_copied() {
    let s = orders(3).await;
    s.copy().build().unwrap().run().await.unwrap();
    // The same stream name, made anew: its entry ids start over.
    let anew = orders(3).await;
    let report = anew
        .copy_into(s.to_channel.clone(), s.to_store.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!((report.copied, report.already_copied), (3, 0), "{report:?}");
    assert!(report.warnings[0].contains("no longer in"), "{report:?}");
    assert_eq!(s.copied().await.len(), 6);
}
