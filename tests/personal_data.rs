//! Personal data: crypto-shredding, erasure and export by data subject, on
//! the in-memory backend and on the real Redis server (`scripts/start-redis`,
//! or `REDIS_EVENT_SOURCE_ENDPOINT`).
//!
//! Every case runs on both: the vault on the same store as the payloads,
//! the stream on the same server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone::memory::{MemoryChannel, MemoryStore};
use event_backbone::privacy::{
    open_segment, sealing_key_id, DataKey, KeyId, KeyVault, MasterKey, PersonalData, StoreKeyVault,
    SubjectHash, SubjectKey, SUBJECT_HEADER,
};
use event_backbone::redis::{Redis, RedisConfig, RedisHashStore, RedisStreamChannel};
use event_backbone::{
    event_contract, Consumer, ConsumerBuilder, ConsumerContext, EndpointBuilder, Error, Fields,
    HandlerError, KeyValueStore, Message, MessageId, Producer, Receiver, Replay, ReplayBuilder,
    SegmentClass, StreamChannel, StreamPosition, SubjectRequests, SubjectRequestsBuilder,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// A postal address (personal data with a default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// City.
    pub city: String,
}

/// Accounts: every event names its data subject.
#[event_contract(event_derive(Debug, Clone, PartialEq))]
pub trait Accounts {
    /// An account was opened.
    async fn opened(
        &self,
        #[subject(pseudonymous)] user: String,
        #[personal] email: String,
        plan: String,
    );
    /// Version 1 adds the address.
    #[event(name = "opened", version = 1)]
    async fn opened_v1(
        &self,
        #[subject(pseudonymous)] user: String,
        #[personal] email: String,
        #[personal] address: Address,
        plan: String,
    );
    /// Money came in; the card is optional personal data.
    async fn topped_up(
        &self,
        #[subject(pseudonymous)] user: String,
        #[personal] card: Option<String>,
        cents: u64,
    );
}

/// Sign-ups: the subject id is an email, sealed like any personal data.
#[event_contract(event_derive(Debug, Clone, PartialEq))]
pub trait Signups {
    /// Someone signed up.
    async fn signed_up(&self, #[subject] email: String, plan: String);
}

/// An exported message: operation, version, (segment, value) pairs.
type Exported = (String, u32, Vec<(String, String)>);

/// One backend to run every case on.
struct Backend {
    name: &'static str,
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    redis: Option<Redis>,
}

impl Backend {
    fn memory() -> Self {
        Self {
            name: "memory",
            channel: Arc::new(MemoryChannel::new()),
            store: Arc::new(MemoryStore::new()),
            redis: None,
        }
    }

    async fn redis() -> Self {
        let endpoint = std::env::var("REDIS_EVENT_SOURCE_ENDPOINT")
            .unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
        let password = std::env::var("REDIS_EVENT_SOURCE_PASS").ok();
        let config = RedisConfig::from_endpoint(&endpoint, password.as_deref()).unwrap();
        let redis = Redis::connect(config)
            .await
            .unwrap_or_else(|e| panic!("{e}; start a server with scripts/start-redis"));
        Self {
            name: "redis",
            channel: Arc::new(RedisStreamChannel::new(&redis)),
            store: Arc::new(RedisHashStore::new(&redis)),
            redis: Some(redis),
        }
    }

    async fn both() -> [Self; 2] {
        [Self::memory(), Self::redis().await]
    }
}

/// A connection of the raw client, to look at what the server holds.
async fn raw_redis() -> redis::aio::MultiplexedConnection {
    let endpoint = std::env::var("REDIS_EVENT_SOURCE_ENDPOINT")
        .unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
    let address = endpoint.trim_start_matches("redis://");
    let url = match std::env::var("REDIS_EVENT_SOURCE_PASS") {
        Ok(password) if !password.is_empty() => format!("redis://:{password}@{address}"),
        _ => format!("redis://{address}"),
    };
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A uri and a vault prefix of their own, so that runs do not meet.
fn fresh(what: &str) -> String {
    format!("{what}.{}", MessageId::new())
}

struct Fixture {
    backend: Backend,
    uri: String,
    master: MasterKey,
    vault: Arc<StoreKeyVault>,
    personal: PersonalData,
}

impl Fixture {
    fn new(backend: Backend, what: &str) -> Self {
        let master = MasterKey::generate();
        // Short cache times keep each erasure's wait short.
        let vault = Arc::new(
            StoreKeyVault::new(backend.store.clone(), master.clone())
                .key_prefix(&fresh("vault"))
                .unwrap()
                .cache_ttl(Duration::from_millis(200))
                .reader_cache_ttl(Duration::from_millis(200)),
        );
        let personal = PersonalData::new(vault.clone(), SubjectKey::generate());
        Self {
            backend,
            uri: fresh(what),
            master,
            vault,
            personal,
        }
    }

    fn producer(&self) -> AccountsProducer {
        Producer::builder()
            .channel(self.backend.channel.clone())
            .store(self.backend.store.clone())
            .personal_data(self.personal.clone())
            .uri(&self.uri)
            .build_as()
            .unwrap()
    }

    /// A builder of any role on this backend, stream and vault.
    fn on<R>(&self, builder: EndpointBuilder<R>) -> EndpointBuilder<R> {
        builder
            .channel(self.backend.channel.clone())
            .store(self.backend.store.clone())
            .personal_data(self.personal.clone())
            .uri(&self.uri)
    }

    fn reader(&self) -> ReplayBuilder {
        self.on(Replay::builder())
    }

    fn consumer(&self) -> ConsumerBuilder {
        self.on(Consumer::builder())
    }

    fn subjects(&self) -> SubjectRequestsBuilder {
        self.on(SubjectRequests::builder())
    }

    async fn messages(&self, reader: ReplayBuilder) -> Vec<Result<Message, Error>> {
        reader.messages().unwrap().collect().await
    }

    /// The raw fields of a message's personal payload key.
    async fn personal_fields(&self, message: &Message) -> Fields {
        let key = message
            .metadata()
            .standard_payload_key(&SegmentClass::PERSONAL);
        self.backend.store.get(&key).await.unwrap().unwrap()
    }

    /// Every key the vault holds, opened with the master key, read from
    /// the store directly (on Redis by `SCAN`, on memory through the vault
    /// for the subjects given).
    async fn every_vault_key(&self, subjects: &[SubjectHash]) -> Vec<DataKey> {
        match &self.backend.redis {
            Some(redis) => {
                let _ = redis;
                let mut connection = raw_redis().await;
                let pattern = format!(
                    "{}:*",
                    self.vault
                        .record_key(&subjects[0])
                        .rsplit_once(':')
                        .unwrap()
                        .0
                );
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pattern)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                let mut out = Vec::new();
                for key in keys {
                    let subject: SubjectHash = key.rsplit_once(':').unwrap().1.parse().unwrap();
                    let fields: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                    for (id, wrapped) in fields {
                        let id: KeyId = id.parse().unwrap();
                        out.push(self.master.unwrap(&subject, id, &wrapped).unwrap());
                    }
                }
                out
            }
            None => self
                .vault
                .opening_keys(subjects)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|k| k.keys().to_vec())
                .collect(),
        }
    }
}

/// Three users open accounts and top up; the second is erased. Consumers,
/// typed replays and receivers show his personal data as gone and everyone
/// else's intact, and what is left of his in the store opens with no key
/// the vault holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_subject_is_gone_everywhere_and_everyone_else_is_intact() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "accounts");
        let producer = f.producer();
        let users = ["ann", "bob", "cy"];
        for (i, user) in users.iter().enumerate() {
            let email = format!("{user}@example.com");
            producer.opened(user, &email, "pro").await.unwrap();
            producer
                .topped_up(user, &Some(format!("card-{user}")), &(100 * (i as u64 + 1)))
                .await
                .unwrap();
        }

        // Before: bob's sealed bytes open with a key the vault holds (the
        // check below can tell).
        let before = f.messages(f.reader()).await;
        let bob_opened = before[2].as_ref().unwrap().clone();
        assert_eq!(
            bob_opened.segment::<String>("email").unwrap(),
            "bob@example.com"
        );
        let bob = f.personal.subject_hash("bob");
        let sealed = f.personal_fields(&bob_opened).await["email"].clone();
        let stream = bob_opened.metadata().stream_key();
        let opens = |keys: &[DataKey]| {
            keys.iter().any(|k| {
                open_segment(k, &bob, &bob_opened.message_id(), &stream, "email", &sealed).is_ok()
            })
        };
        let all: Vec<SubjectHash> = users.iter().map(|u| f.personal.subject_hash(u)).collect();
        assert!(opens(&f.every_vault_key(&all).await), "{}", f.backend.name);

        assert!(f.personal.erase_subject("bob").await.unwrap());
        assert!(
            !f.personal.erase_subject("bob").await.unwrap(),
            "idempotent"
        );

        // The raw bytes are still in the store, and no key opens them.
        assert_eq!(f.personal_fields(&bob_opened).await["email"], sealed);
        let left = f.every_vault_key(&all).await;
        assert_eq!(left.len(), 2, "{}: ann's and cy's keys", f.backend.name);
        assert!(!opens(&left), "{}", f.backend.name);
        assert!(!sealed.windows(3).any(|w| w == b"bob"));

        // A consumer.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        f.consumer()
            .group("audit")
            .concurrency(1)
            .stop_after(6)
            .subscribe_fn(move |ctx: ConsumerContext| {
                let log = log.clone();
                async move {
                    let m = ctx.message();
                    let personal: Option<String> = match m.operation() {
                        "opened" => m.erasable_segment("email").unwrap(),
                        _ => m
                            .erasable_segment::<Option<String>>("card")
                            .unwrap()
                            .flatten(),
                    };
                    log.lock().unwrap().push((
                        m.operation().to_owned(),
                        personal,
                        m.erased_segments()
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>(),
                    ));
                    Ok(())
                }
            })
            .unwrap()
            .completion()
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        let expected = vec![
            (
                "opened".to_owned(),
                Some("ann@example.com".to_owned()),
                vec![],
            ),
            ("topped_up".into(), Some("card-ann".into()), vec![]),
            ("opened".into(), None, vec!["email".to_owned()]),
            ("topped_up".into(), None, vec!["card".into()]),
            ("opened".into(), Some("cy@example.com".into()), vec![]),
            ("topped_up".into(), Some("card-cy".into()), vec![]),
        ];
        assert_eq!(seen, expected, "{}", f.backend.name);

        // A typed replay rebuilds everyone's state: the balances of all,
        // the emails of all but bob.
        let mut emails = BTreeMap::new();
        let mut balances = BTreeMap::new();
        let mut history = f.reader().events::<AccountsEvent>().unwrap();
        while let Some(recorded) = history.next().await {
            let recorded = recorded.unwrap();
            let erased = recorded.erased.clone();
            match recorded.event {
                AccountsEvent::Opened { user, email, .. } => {
                    let expected: &[&str] = if user == "bob" { &["email"] } else { &[] };
                    assert_eq!(erased, expected, "{user}");
                    emails.insert(user, email);
                }
                AccountsEvent::ToppedUp { user, card, cents } => {
                    *balances.entry(user.clone()).or_insert(0) += cents;
                    if user == "bob" {
                        assert_eq!((card, erased), (None, vec!["card".to_owned()]));
                    } else {
                        assert_eq!(card, Some(format!("card-{user}")));
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let emails: Vec<(&str, &str)> = emails
            .iter()
            .map(|(u, e)| (u.as_str(), e.as_str()))
            .collect();
        assert_eq!(
            emails,
            [
                ("ann", "ann@example.com"),
                ("bob", ""),
                ("cy", "cy@example.com")
            ],
            "{}",
            f.backend.name
        );
        assert_eq!(
            balances.into_iter().collect::<Vec<_>>(),
            [
                ("ann".to_owned(), 100),
                ("bob".into(), 200),
                ("cy".into(), 300)
            ]
        );

        // A receiver.
        let receiver = f.on(Receiver::builder()).build().unwrap();
        let found = receiver
            .find(bob_opened.message_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.erased_segments(), ["email"]);
        assert_eq!(found.segment::<String>("plan").unwrap(), "pro");
        let ann = receiver
            .find(before[0].as_ref().unwrap().message_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ann.segment::<String>("email").unwrap(), "ann@example.com");
    }
}

/// The stream carries the subject's hash, never the id, the data keys or
/// their wrapped form; the store holds no personal byte in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_a_hash_and_no_key() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "hashes");
        f.producer()
            .opened("subject-id-4711", "ann@example.com", "pro")
            .await
            .unwrap();
        let entries = f
            .backend
            .channel
            .read_range(&f.uri, &StreamPosition::Start, None, 10)
            .await
            .unwrap();
        let metadata = entries[0].body.as_ref().unwrap();
        let hash = f.personal.subject_hash("subject-id-4711");
        assert_eq!(metadata.subject, Some(hash));
        assert!(!metadata.headers.contains_key(SUBJECT_HEADER));
        let raw = event_backbone::envelope::encode_metadata(metadata);
        let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(b"subject-id-4711"), "{}", f.backend.name);
        assert!(!contains(b"ann@example.com"));
        let key = f.vault.sealing_key(&hash).await.unwrap();
        assert!(!contains(key.expose_bytes()));
        let record = f
            .backend
            .store
            .get(&f.vault.record_key(&hash))
            .await
            .unwrap()
            .unwrap();
        let wrapped = &record[&key.id().to_string()];
        assert!(
            !contains(&wrapped[1..25]),
            "the wrapped key's nonce is not in the stream"
        );
        // The payload holds the sealed email only.
        let message = f.messages(f.reader()).await.remove(0).unwrap();
        let fields = f.personal_fields(&message).await;
        let email = &fields["email"];
        assert_eq!(sealing_key_id(email).unwrap(), key.id());
        assert!(!email.windows(15).any(|w| w == b"ann@example.com"));
        if let Some(redis) = &f.backend.redis {
            // On the server itself: XRANGE gives the entry's raw fields.
            let _ = redis;
            let mut connection = raw_redis().await;
            let dump: redis::Value = redis::cmd("XRANGE")
                .arg(&f.uri)
                .arg("-")
                .arg("+")
                .query_async(&mut connection)
                .await
                .unwrap();
            let text = format!("{dump:?}");
            assert!(!text.contains("subject-id-4711") && !text.contains("ann@example"));
        }
    }
}

/// A sealed segment copied into another message's payload does not open:
/// the associated data binds it to its message, segment and subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_moved_to_another_message_is_refused() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "moved");
        let producer = f.producer();
        producer
            .opened("ann", "ann@example.com", "pro")
            .await
            .unwrap();
        producer
            .opened("ann", "other@example.com", "pro")
            .await
            .unwrap();
        producer
            .opened("bob", "bob@example.com", "pro")
            .await
            .unwrap();
        let messages: Vec<Message> = f
            .messages(f.reader())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let ann_email = f.personal_fields(&messages[0]).await["email"].clone();

        // Into the same subject's other message, and into bob's.
        for target in [&messages[1], &messages[2]] {
            let mut fields = Fields::new();
            fields.insert("email".into(), ann_email.clone());
            let key = target
                .metadata()
                .standard_payload_key(&SegmentClass::PERSONAL);
            f.backend.store.put(&key, &fields, None).await.unwrap();
        }
        let replayed = f.messages(f.reader()).await;
        assert_eq!(
            replayed[0]
                .as_ref()
                .unwrap()
                .segment::<String>("email")
                .unwrap(),
            "ann@example.com"
        );
        for (i, moved) in replayed.iter().enumerate().skip(1) {
            let err = moved.as_ref().unwrap_err();
            assert!(
                matches!(err, Error::Unsealable { segment, .. } if segment == "email"),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&messages[i].message_id().to_string()),
                "{err}"
            );
        }
        // A consumer dead-letters it rather than handing it over.
        let stats = f
            .consumer()
            .group("g")
            .max_deliveries(1)
            .stop_after(3)
            .subscribe_fn(|_ctx: ConsumerContext| async { Ok(()) })
            .unwrap()
            .completion()
            .await
            .unwrap();
        assert_eq!(
            (stats.handled, stats.dead_lettered),
            (1, 2),
            "{}",
            f.backend.name
        );
    }
}

/// A reader without the vault sees sealed segments as sealed (not as
/// erased) and says how to fix it; a typed decode fails rather than
/// inventing a default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_without_the_vault_is_told_so() {
    let f = Fixture::new(Backend::memory(), "novault");
    f.producer()
        .opened("ann", "ann@example.com", "pro")
        .await
        .unwrap();
    let bare = Replay::builder()
        .channel(f.backend.channel.clone())
        .store(f.backend.store.clone())
        .uri(&f.uri);
    let message = f.messages(bare).await.remove(0).unwrap();
    assert_eq!(message.sealed_segments(), ["email"]);
    assert!(message.erased_segments().is_empty());
    assert_eq!(message.segment::<String>("plan").unwrap(), "pro");
    let err = message.segment::<String>("email").unwrap_err();
    assert!(matches!(err, Error::Sealed { .. }), "{err}");
    assert!(err.to_string().contains(".personal_data("), "{err}");
    assert!(message.optional_segment::<String>("email").is_err());
    let typed = Replay::builder()
        .channel(f.backend.channel.clone())
        .store(f.backend.store.clone())
        .uri(&f.uri)
        .events::<AccountsEvent>()
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    assert!(matches!(typed[0], Err(Error::Sealed { .. })), "{typed:?}");
}

/// What a producer refuses: a subject without a vault, personal data
/// without a subject when one is required, the subject header by hand.
#[tokio::test]
async fn a_producer_refuses_what_it_cannot_protect() {
    let f = Fixture::new(Backend::memory(), "refused");
    let bare = Producer::builder()
        .channel(f.backend.channel.clone())
        .store(f.backend.store.clone())
        .uri(&f.uri)
        .build()
        .unwrap();
    let err = bare
        .message("opened")
        .subject("ann")
        .personal("email", "ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SubjectWithoutVault { .. }), "{err}");
    assert!(err.to_string().contains("\"opened\""), "{err}");
    let forged = bare
        .message("opened")
        .header(SUBJECT_HEADER, "00".repeat(16))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(forged, Error::ReservedHeader { .. }), "{forged}");

    let strict = Producer::builder()
        .channel(f.backend.channel.clone())
        .store(f.backend.store.clone())
        .personal_data(f.personal.clone().require_subject())
        .uri(&f.uri)
        .build()
        .unwrap();
    let err = strict
        .message("opened")
        .segment("plan", "pro")
        .unwrap()
        .personal("email", "ann@example.com")
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MissingSubject { ref segment, .. } if segment == "email"),
        "{err}"
    );
    // Without personal data, no subject is needed.
    strict
        .message("ping")
        .segment("n", &1u8)
        .unwrap()
        .send()
        .await
        .unwrap();
    // Nothing refused reached the stream.
    let entries = f
        .backend
        .channel
        .read_range(&f.uri, &StreamPosition::Start, None, 10)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
}

/// The export of a subject is exactly its personal segments, across
/// operations and versions, in stream order, with ids, operations and
/// times; the erased parts are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_returns_exactly_the_subjects_personal_segments() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "export");
        let producer = f.producer();
        producer
            .opened("ann", "ann@old.example", "basic")
            .await
            .unwrap();
        producer
            .opened("bob", "bob@example.com", "pro")
            .await
            .unwrap();
        let home = Address {
            city: "Lyon".into(),
        };
        producer
            .opened_v1("ann", "ann@example.com", &home, "pro")
            .await
            .unwrap();
        producer.topped_up("ann", &None, &5).await.unwrap();
        producer
            .topped_up("bob", &Some("card-b".into()), &7)
            .await
            .unwrap();
        producer
            .topped_up("ann", &Some("card-a".into()), &9)
            .await
            .unwrap();

        let export = f.subjects().page_size(2).export("ann").await.unwrap();
        assert_eq!(export.subject(), Some(f.personal.subject_hash("ann")));
        let got: Vec<Exported> = export
            .messages()
            .iter()
            .map(|m| {
                let segments = m
                    .segments
                    .names()
                    .map(|n| {
                        let value = match n {
                            "address" => m.segment::<Address>(n).unwrap().city,
                            "card" => m.segment::<Option<String>>(n).unwrap().unwrap_or_default(),
                            _ => m.segment::<String>(n).unwrap(),
                        };
                        (n.to_owned(), value)
                    })
                    .collect();
                (m.operation.clone(), m.version, segments)
            })
            .collect();
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            got,
            vec![
                ("opened".to_owned(), 0, vec![s("email", "ann@old.example")]),
                (
                    "opened".into(),
                    1,
                    vec![s("address", "Lyon"), s("email", "ann@example.com")]
                ),
                ("topped_up".into(), 0, vec![s("card", "")]),
                ("topped_up".into(), 0, vec![s("card", "card-a")]),
            ],
            "{}",
            f.backend.name
        );
        let times: Vec<u64> = export.messages().iter().map(|m| m.produced_at_ms).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times[0] > 1_700_000_000_000);
        let ids: BTreeSet<MessageId> = export.messages().iter().map(|m| m.message_id).collect();
        assert_eq!(ids.len(), 4);
        assert!(export.messages().iter().all(|m| m.stream == f.uri));

        // After the subject's erasure, the export finds the messages and
        // names every personal segment as gone.
        let erasure = f.subjects().erase("ann").await.unwrap();
        assert!(erasure.key_erased);
        assert_eq!(erasure.messages, 4);
        assert_eq!(erasure.payload_keys_deleted, 4, "{}", f.backend.name);
        let after = f.subjects().export("ann").await.unwrap();
        assert_eq!(after.messages().len(), 4);
        assert!(after.messages().iter().all(|m| m.segments.is_empty()));
        assert_eq!(after.messages()[1].erased, ["address", "email"]);
        // Bob is untouched.
        let bob = f.subjects().export("bob").await.unwrap();
        assert_eq!(bob.messages().len(), 2);
        assert_eq!(
            bob.messages()[1].segment::<Option<String>>("card").unwrap(),
            Some("card-b".into())
        );
        let again = f.subjects().erase("ann").await.unwrap();
        assert!(!again.key_erased && again.payload_keys_deleted == 0);
        let without = SubjectRequests::builder()
            .channel(f.backend.channel.clone())
            .uri(&f.uri)
            .export("ann")
            .await
            .unwrap_err();
        assert!(without.to_string().contains(".personal_data("), "{without}");
    }
}

/// A dead letter and a fan-out copy share the subject's one key: erasing
/// it shreds every copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_share_one_key_and_are_shredded_with_it() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "copies");
        let mirror_uri = format!("{}.mirror", f.uri);
        let mirror = Producer::builder()
            .channel(f.backend.channel.clone())
            .store(f.backend.store.clone())
            .personal_data(f.personal.clone())
            .uri(&mirror_uri)
            .build()
            .unwrap();
        let both: AccountsProducer = Producer::merge([f.producer().producer().clone(), mirror])
            .unwrap()
            .into();
        both.opened("ann", "ann@example.com", "pro").await.unwrap();
        both.opened("bob", "bob@example.com", "pro").await.unwrap();

        // One key for ann, whatever the number of copies.
        let ann = f.personal.subject_hash("ann");
        let record = f
            .backend
            .store
            .get(&f.vault.record_key(&ann))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.len(), 1);

        // Every message fails: both become dead letters.
        let stats = f
            .consumer()
            .group("failing")
            .concurrency(1)
            .max_deliveries(1)
            .retry(event_backbone::RetryPolicy::none())
            .stop_after(2)
            .subscribe_fn(|_ctx: ConsumerContext| async { Err(HandlerError::from("no")) })
            .unwrap()
            .completion()
            .await
            .unwrap();
        assert_eq!(stats.dead_lettered, 2);
        let dead_letters = || {
            Replay::builder()
                .channel(f.backend.channel.clone())
                .store(f.backend.store.clone())
                .personal_data(f.personal.clone())
                .uri(&f.uri)
                .dead_letters()
        };
        let mirrored = || f.reader().uri(&mirror_uri);
        let emails = |messages: Vec<Result<Message, Error>>| {
            messages
                .into_iter()
                .map(|m| m.unwrap().erasable_segment::<String>("email").unwrap())
                .collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            emails(f.messages(dead_letters()).await),
            [some("ann@example.com"), some("bob@example.com")],
            "{}",
            f.backend.name
        );
        assert_eq!(
            emails(f.messages(mirrored()).await),
            [some("ann@example.com"), some("bob@example.com")]
        );

        f.personal.erase_subject("ann").await.unwrap();
        for reader in [f.reader(), dead_letters(), mirrored()] {
            assert_eq!(
                emails(f.messages(reader).await),
                [None, some("bob@example.com")],
                "{}",
                f.backend.name
            );
        }
    }
}

/// Erasing subjects while a producer and a consumer run loses no one
/// else's message, and a subject who comes back after the erasure gets a
/// new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_while_producing_and_consuming_loses_no_one_else() {
    for backend in Backend::both().await {
        let f = Arc::new(Fixture::new(backend, "busy"));
        const ROUNDS: u64 = 60;
        const USERS: u64 = 20;
        let erased: Vec<String> = (0..USERS).step_by(4).map(|u| format!("user-{u}")).collect();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let consumer = f
            .consumer()
            .group("busy")
            .stop_after(ROUNDS * USERS)
            .subscribe_fn(move |ctx: ConsumerContext| {
                let log = log.clone();
                async move {
                    let m = ctx.message();
                    let user: String = m.segment("user")?;
                    let round: u64 = m.segment("round")?;
                    let email: Option<String> = m.erasable_segment("email")?;
                    log.lock().unwrap().push((user, round, email));
                    Ok(())
                }
            })
            .unwrap();
        // The producer stops at half time until the erasure starts, goes on
        // while it runs, and sends its last round once it is done.
        let (half_tx, half_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let producing = {
            let f = f.clone();
            tokio::spawn(async move {
                let producer = Producer::builder()
                    .channel(f.backend.channel.clone())
                    .store(f.backend.store.clone())
                    .personal_data(f.personal.clone())
                    .uri(&f.uri)
                    .build()
                    .unwrap();
                let (mut half, mut started, mut done) =
                    (Some(half_tx), Some(started_rx), Some(done_rx));
                for round in 0..ROUNDS {
                    if round == ROUNDS / 2 {
                        half.take().unwrap().send(()).unwrap();
                        started.take().unwrap().await.unwrap();
                    }
                    if round == ROUNDS - 1 {
                        done.take().unwrap().await.unwrap();
                    }
                    let sends = (0..USERS).map(|u| {
                        let user = format!("user-{u}");
                        producer
                            .message("seen")
                            .subject(&user)
                            .segment("user", &user)
                            .unwrap()
                            .segment("round", &round)
                            .unwrap()
                            .personal("email", &format!("{user}-{round}@example.com"))
                            .unwrap()
                            .send()
                    });
                    for sent in futures_util::future::join_all(sends).await {
                        sent.unwrap();
                    }
                }
            })
        };
        half_rx.await.unwrap();
        started_tx.send(()).unwrap();
        for user in &erased {
            f.personal.erase_subject(user.as_str()).await.unwrap();
        }
        done_tx.send(()).unwrap();
        producing.await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), consumer.completion())
            .await
            .expect("the consumer finishes")
            .unwrap();

        let received = received.lock().unwrap().clone();
        assert_eq!(received.len() as u64, ROUNDS * USERS, "{}", f.backend.name);
        let mut by_user: BTreeMap<&str, BTreeMap<u64, bool>> = BTreeMap::new();
        for (user, round, email) in &received {
            let expected = format!("{user}-{round}@example.com");
            if let Some(email) = email {
                assert_eq!(email, &expected, "{}", f.backend.name);
            } else {
                assert!(
                    erased.contains(user),
                    "{}: {user} lost round {round}",
                    f.backend.name
                );
            }
            by_user
                .entry(user)
                .or_default()
                .insert(*round, email.is_some());
        }
        assert_eq!(by_user.len() as u64, USERS);
        for (user, rounds) in &by_user {
            assert_eq!(
                rounds.len() as u64,
                ROUNDS,
                "{user}: no duplicates, none missing"
            );
        }
        for user in &erased {
            assert!(
                by_user[user.as_str()][&(ROUNDS - 1)],
                "{user}: sent after the erasure"
            );
        }

        // Replayed now: the erased subjects' messages sealed before the
        // erasure are shredded, the one after it is readable (a new key),
        // and everyone else's are intact.
        let mut replayed: BTreeMap<(String, u64), Option<String>> = BTreeMap::new();
        for message in f.messages(f.reader()).await {
            let m = message.unwrap();
            let key = (
                m.segment::<String>("user").unwrap(),
                m.segment::<u64>("round").unwrap(),
            );
            replayed.insert(key, m.erasable_segment::<String>("email").unwrap());
        }
        assert_eq!(replayed.len() as u64, ROUNDS * USERS);
        for ((user, round), email) in &replayed {
            let readable = email.as_deref() == Some(format!("{user}-{round}@example.com").as_str());
            if !erased.contains(user) || *round == ROUNDS - 1 {
                assert!(
                    readable,
                    "{}: {user} round {round}: {email:?}",
                    f.backend.name
                );
            } else if *round < ROUNDS / 2 {
                assert_eq!(email, &None, "{}: {user} round {round}", f.backend.name);
            } else {
                assert!(
                    readable || email.is_none(),
                    "{user} round {round}: {email:?}"
                );
            }
        }
        let ann = f.personal.subject_hash(&erased[0]);
        assert_eq!(
            f.vault.opening_keys(&[ann]).await.unwrap()[0].keys().len(),
            1,
            "one new key"
        );
    }
}

/// Personal segments routed to a store of their own are sealed there; the
/// vault lives in a third one. An expired personal payload reads as erased,
/// like a shredded one, and the vault's key does not expire with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_routing_and_payload_ttl_keep_working() {
    let channel: Arc<dyn StreamChannel> = Arc::new(MemoryChannel::new());
    let (normal, personal_store, vault_store) = (
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryStore::new()),
    );
    let personal = PersonalData::on_store(
        vault_store.clone(),
        MasterKey::generate(),
        SubjectKey::generate(),
    );
    let producer = |ttl: Option<Duration>| {
        let builder = Producer::builder()
            .channel(channel.clone())
            .store(normal.clone())
            .class_store(SegmentClass::PERSONAL, personal_store.clone())
            .personal_data(personal.clone())
            .uri("routed");
        match ttl {
            Some(ttl) => builder.payload_ttl(ttl),
            None => builder,
        }
        .build_as::<AccountsProducer>()
        .unwrap()
    };
    producer(None)
        .opened("ann", "ann@example.com", "pro")
        .await
        .unwrap();
    // The vault: ann's record and the index bucket that lists her.
    assert_eq!(
        (normal.len(), personal_store.len(), vault_store.len()),
        (1, 1, 2)
    );
    // A message of personal data only, with a short TTL.
    producer(Some(Duration::from_millis(200)))
        .producer()
        .message("note")
        .subject("ann")
        .personal("text", "call back")
        .unwrap()
        .send()
        .await
        .unwrap();
    let reader = || {
        Replay::builder()
            .channel(channel.clone())
            .store(normal.clone())
            .class_store(SegmentClass::PERSONAL, personal_store.clone())
            .personal_data(personal.clone())
            .uri("routed")
    };
    let first: Vec<Message> = reader()
        .messages()
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        first[0].segment::<String>("email").unwrap(),
        "ann@example.com"
    );
    assert_eq!(first[1].segment::<String>("text").unwrap(), "call back");
    let key = first[0]
        .metadata()
        .standard_payload_key(&SegmentClass::PERSONAL);
    let sealed = personal_store.get(&key).await.unwrap().unwrap();
    assert!(
        sealing_key_id(&sealed["email"]).is_ok(),
        "sealed in the personal store"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later: Vec<Message> = reader()
        .messages()
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        later[0].segment::<String>("email").unwrap(),
        "ann@example.com"
    );
    assert_eq!(later[1].erased_segments(), ["text"]);
    assert_eq!(vault_store.len(), 2, "the vault expires nothing");
}

/// Secrets stay out of `Debug` output and errors.
#[test]
fn secrets_are_redacted() {
    let master_hex = "1f".repeat(32);
    let subject_hex = "2e".repeat(32);
    let personal = PersonalData::on_store(
        Arc::new(MemoryStore::new()),
        MasterKey::from_hex(&master_hex).unwrap(),
        SubjectKey::from_hex(&subject_hex).unwrap(),
    );
    let shown = format!("{personal:?}");
    assert!(
        !shown.contains("1f1f") && !shown.contains("2e2e"),
        "{shown}"
    );
    assert!(
        shown.contains("MasterKey(***)") && shown.contains("SubjectKey(***)"),
        "{shown}"
    );
    let key = DataKey::generate();
    let shown = format!("{key:?}");
    let hex: String = key
        .expose_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !shown.contains(&hex) && shown.contains(&key.id().to_string()),
        "{shown}"
    );
    let almost = format!("{}x", &master_hex[..63]);
    let err = MasterKey::from_hex(&almost).unwrap_err().to_string();
    assert!(!err.contains(&master_hex[..20]), "{err}");
    let unset = MasterKey::from_env_var("EB_TEST_NEVER_SET_MASTER_KEY").unwrap_err();
    assert!(
        unset
            .to_string()
            .contains("master key (EB_TEST_NEVER_SET_MASTER_KEY): the variable is not set"),
        "{unset}"
    );
    let message = event_backbone::OutgoingMessage::new("opened");
    let mut with_subject = message.clone();
    with_subject.subject = event_backbone::privacy::Subject::new("ann-the-person");
    assert!(!format!("{with_subject:?}").contains("ann-the-person"));
}

/// Producers and readers in other processes (vaults of their own on the
/// same store, with the same settings) follow an erasure by the time it
/// returns: a message sent after it is sealed with a new key and read, the
/// erased one is read as erased, at once; and a key made after a reader's
/// cached answer is read fresh, never taken for an erased one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_elsewhere_follow_an_erasure_once_it_returns() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "elsewhere");
        let prefix = f.vault.record_key(&f.personal.subject_hash("x"));
        let prefix = prefix.rsplit_once(':').unwrap().0.to_owned();
        let subject_key = SubjectKey::generate();
        let elsewhere = || {
            let vault = StoreKeyVault::new(f.backend.store.clone(), f.master.clone())
                .key_prefix(&prefix)
                .unwrap()
                .cache_ttl(Duration::from_millis(300))
                .reader_cache_ttl(Duration::from_millis(300));
            PersonalData::new(Arc::new(vault), subject_key.clone())
        };
        let producer = |personal: &PersonalData| -> AccountsProducer {
            Producer::builder()
                .channel(f.backend.channel.clone())
                .store(f.backend.store.clone())
                .personal_data(personal.clone())
                .uri(&f.uri)
                .build_as()
                .unwrap()
        };
        let reader = |personal: &PersonalData| {
            Replay::builder()
                .channel(f.backend.channel.clone())
                .store(f.backend.store.clone())
                .personal_data(personal.clone())
                .uri(&f.uri)
        };
        let emails = |messages: Vec<Result<Message, Error>>| {
            messages
                .into_iter()
                .map(|m| m.unwrap().erasable_segment::<String>("email").unwrap())
                .collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_owned());
        let (here, there, eraser) = (elsewhere(), elsewhere(), elsewhere());
        let sender = producer(&here);
        sender
            .opened("ann", "ann@example.com", "pro")
            .await
            .unwrap();
        assert_eq!(
            emails(f.messages(reader(&there)).await),
            [some("ann@example.com")]
        );

        // Erased by a third process. The producer still caches ann's key
        // and the reader her keys, but the erasure returned only once
        // neither may use them.
        assert!(eraser.erase_subject("ann").await.unwrap());
        assert_eq!(
            emails(f.messages(reader(&there)).await),
            [None],
            "{}: a reader elsewhere opened erased data after the erasure returned",
            f.backend.name
        );
        sender
            .opened("ann", "ann@new.example", "pro")
            .await
            .unwrap();
        assert_eq!(
            emails(f.messages(reader(&there)).await),
            [None, some("ann@new.example")],
            "{}: a message sent after the erasure returned was sealed with the erased key",
            f.backend.name
        );

        // A key made after a reader's cached answer is read fresh.
        let cached = elsewhere();
        sender
            .opened("bob", "bob@example.com", "pro")
            .await
            .unwrap();
        assert_eq!(emails(f.messages(reader(&cached)).await).len(), 3);
        producer(&elsewhere())
            .opened("cid", "cid@example.com", "pro")
            .await
            .unwrap();
        assert_eq!(
            emails(f.messages(reader(&cached)).await)[3],
            some("cid@example.com"),
            "{}",
            f.backend.name
        );
    }
}

/// Every key and stream of the Redis server, as bytes: what a person's
/// data must not be found in after their erasure.
async fn everything_on_the_server() -> Vec<(String, Vec<u8>)> {
    let mut connection = raw_redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let mut command = match kind.as_str() {
            "string" => redis::cmd("GET"),
            "hash" => redis::cmd("HGETALL"),
            "stream" => redis::cmd("XRANGE"),
            "list" => redis::cmd("LRANGE"),
            "set" => redis::cmd("SMEMBERS"),
            "zset" => redis::cmd("ZRANGE"),
            _ => continue,
        };
        command.arg(&key);
        match kind.as_str() {
            "stream" => command.arg("-").arg("+"),
            "list" | "zset" => command.arg(0).arg(-1),
            _ => &mut command,
        };
        let value: redis::Value = command
            .query_async(&mut connection)
            .await
            .unwrap_or(redis::Value::Nil);
        let mut bytes = Vec::new();
        flatten(&value, &mut bytes);
        out.push((key, bytes));
    }
    out
}

/// Every byte string inside a reply, one after the other.
fn flatten(value: &redis::Value, out: &mut Vec<u8>) {
    match value {
        redis::Value::BulkString(bytes) => out.extend_from_slice(bytes),
        redis::Value::SimpleString(text) => out.extend_from_slice(text.as_bytes()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            for item in items {
                out.push(b'\n');
                flatten(item, out);
            }
        }
        redis::Value::Map(pairs) => {
            for (k, v) in pairs {
                flatten(k, out);
                out.push(b'\n');
                flatten(v, out);
            }
        }
        _ => {}
    }
}

/// A handler fails with the person's email in its error, and the message
/// is dead-lettered: the dead letter's clear reason and headers do not
/// hold the email, its sealed reason opens with the person's key until
/// the erasure; after it, no key or stream of the Redis server holds the
/// email anywhere, and the sealed reason reads as erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_no_plaintext_after_the_erasure() {
    use event_backbone::consumer::HEADER_DEAD_LETTER_REASON;

    for backend in Backend::both().await {
        let f = Fixture::new(backend, "dead-ann");
        let email = format!("ann.{}@example.com", MessageId::new());
        f.producer().opened("ann", &email, "pro").await.unwrap();
        let stats = f
            .consumer()
            .group("mailer")
            .max_deliveries(1)
            .retry(event_backbone::RetryPolicy::none())
            .stop_after(1)
            .subscribe_fn(|ctx: ConsumerContext| async move {
                let email: String = ctx.message().segment("email")?;
                Err(HandlerError::from(format!("mailbox {email} refused")))
            })
            .unwrap()
            .completion()
            .await
            .unwrap();
        assert_eq!(stats.dead_lettered, 1, "{}", f.backend.name);
        let letters = f.messages(f.reader().dead_letters()).await;
        let letter = letters[0].as_ref().unwrap().metadata().clone();
        let reason = &letter.headers[HEADER_DEAD_LETTER_REASON];
        assert!(
            !reason.contains(&email) && reason.contains("handler failed after 1 deliveries"),
            "{}: the clear reason is {reason:?}",
            f.backend.name
        );
        assert!(
            !format!("{:?}", letter.headers).contains(&email),
            "{}: a header holds the email",
            f.backend.name
        );
        let opened = f.personal.open_dead_letter_reason(&letter).await.unwrap();
        assert_eq!(
            opened.as_deref(),
            Some(format!("mailbox {email} refused").as_str()),
            "{}: the sealed reason does not open with the person's key",
            f.backend.name
        );

        SubjectRequests::builder()
            .channel(f.backend.channel.clone())
            .store(f.backend.store.clone())
            .personal_data(f.personal.clone())
            .uri(&f.uri)
            .erase("ann")
            .await
            .unwrap();
        assert_eq!(
            f.personal.open_dead_letter_reason(&letter).await.unwrap(),
            None,
            "{}: the sealed reason outlived the erasure",
            f.backend.name
        );
        if f.backend.redis.is_some() {
            let found: Vec<String> = everything_on_the_server()
                .await
                .into_iter()
                .filter(|(_, bytes)| bytes.windows(email.len()).any(|w| w == email.as_bytes()))
                .map(|(key, _)| key)
                .collect();
            assert!(
                found.is_empty(),
                "the erased person's email is still on the Redis server, in {found:?}"
            );
        }
    }
}

/// Entries a producer of this stream did not write, appended by hand: one
/// of ann's that pins bob's vault record, one that pins a payload key of
/// another stream, and bob's sealed segment moved in from that stream
/// under this one's name; and in the other stream an entry with ann's
/// hash that names bob's message. Readers refuse the first three (the
/// first two by name, the third because the sealed bytes are bound to
/// their stream), and erasing ann in both streams deletes neither bob's
/// vault record nor his payload (sealed for him, not for her).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_not_trusted_to_name_keys() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "trust");
        let other_uri = format!("{}.other", f.uri);
        let other: AccountsProducer = Producer::builder()
            .channel(f.backend.channel.clone())
            .store(f.backend.store.clone())
            .personal_data(f.personal.clone())
            .uri(&other_uri)
            .build_as()
            .unwrap();
        f.producer()
            .opened("ann", "ann@example.com", "pro")
            .await
            .unwrap();
        other.opened("bob", "bob@example.com", "pro").await.unwrap();
        let ann = f.messages(f.reader()).await.remove(0).unwrap();
        let bob = f
            .messages(f.reader().uri(&other_uri))
            .await
            .remove(0)
            .unwrap();
        let bob_record = f.vault.record_key(&f.personal.subject_hash("bob"));
        let bob_payload = bob.metadata().standard_payload_key(&SegmentClass::PERSONAL);

        let pinned = |key: &str| {
            let mut forged = ann.metadata().clone();
            forged.message_id = MessageId::new();
            for segment in &mut forged.segments {
                if segment.class == SegmentClass::PERSONAL {
                    segment.location = event_backbone::SegmentLocation::Stored {
                        store: "personal".into(),
                        key: key.to_owned(),
                    };
                }
            }
            forged
        };
        let mut moved = bob.metadata().clone();
        moved.uri = f.uri.clone();
        for class in [SegmentClass::NORMAL, SegmentClass::PERSONAL] {
            let key = bob.metadata().standard_payload_key(&class);
            let fields = f.backend.store.get(&key).await.unwrap().unwrap();
            f.backend
                .store
                .put(&moved.standard_payload_key(&class), &fields, None)
                .await
                .unwrap();
        }
        for forged in [pinned(&bob_record), pinned(&bob_payload), moved] {
            f.backend.channel.append(&f.uri, &forged).await.unwrap();
        }

        let read = f.messages(f.reader()).await;
        assert_eq!(read.len(), 4, "{}", f.backend.name);
        assert!(read[0].is_ok(), "{}: {:?}", f.backend.name, read[0]);
        for refused in &read[1..3] {
            assert!(
                matches!(refused, Err(Error::UntrustedEntry { .. })),
                "{}: an entry naming another key was read: {refused:?}",
                f.backend.name
            );
        }
        assert!(
            matches!(&read[3], Err(Error::Unsealable { reason, .. }) if reason.contains("stream")),
            "{}: a sealed segment moved from another stream opened: {:?}",
            f.backend.name,
            read[3]
        );

        // In the other stream, an entry with ann's hash that names bob's
        // message (and so his payload keys).
        let mut claimed = bob.metadata().clone();
        claimed.subject = Some(f.personal.subject_hash("ann"));
        f.backend
            .channel
            .append(&other_uri, &claimed)
            .await
            .unwrap();

        f.subjects().erase("ann").await.unwrap();
        f.subjects().uri(&other_uri).erase("ann").await.unwrap();
        assert!(
            f.backend.store.get(&bob_record).await.unwrap().is_some(),
            "{}: erasing ann deleted bob's vault record",
            f.backend.name
        );
        let bob_again = f.messages(f.reader().uri(&other_uri)).await;
        assert_eq!(
            bob_again[0]
                .as_ref()
                .unwrap()
                .segment::<String>("email")
                .unwrap(),
            "bob@example.com",
            "{}: erasing ann deleted bob's payload",
            f.backend.name
        );
    }
}

/// An export reads each message's personal data by itself: a message
/// whose normal payload expired still gives its personal segments, and
/// one whose personal payload does not open is reported, not the end of
/// the export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_reports_each_unreadable_message_and_goes_on() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "export-each");
        let producer = f.producer();
        for n in 0..3 {
            producer
                .opened("ann", &format!("ann{n}@example.com"), "pro")
                .await
                .unwrap();
        }
        let sent: Vec<Message> = f
            .messages(f.reader())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let store = &f.backend.store;
        store
            .delete(
                &sent[0]
                    .metadata()
                    .standard_payload_key(&SegmentClass::NORMAL),
            )
            .await
            .unwrap();
        let personal = sent[1]
            .metadata()
            .standard_payload_key(&SegmentClass::PERSONAL);
        let mut fields = store.get(&personal).await.unwrap().unwrap();
        let email = fields.get_mut("email").unwrap();
        let mut altered = email.to_vec();
        *altered.last_mut().unwrap() ^= 1;
        *email = altered.into();
        store.put(&personal, &fields, None).await.unwrap();

        let export = f.subjects().export("ann").await.unwrap();
        let emails: Vec<String> = export
            .messages()
            .iter()
            .map(|m| m.segment::<String>("email").unwrap())
            .collect();
        assert_eq!(
            emails,
            ["ann0@example.com", "ann2@example.com"],
            "{}",
            f.backend.name
        );
        let unreadable = export.unreadable();
        assert_eq!(unreadable.len(), 1, "{}: {unreadable:?}", f.backend.name);
        assert_eq!(unreadable[0].message_id, sent[1].message_id());
        assert!(
            unreadable[0].reason.contains("cannot be opened"),
            "{}: {}",
            f.backend.name,
            unreadable[0].reason
        );
    }
}

/// A `#[subject]` parameter is personal data unless the contract says the
/// id is pseudonymous: its value is sealed, never in clear in the stream
/// or the store, and erased with the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_id_is_sealed_unless_pseudonymous() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "signups");
        let email = format!("ann.{}@example.com", MessageId::new());
        let signups: SignupsProducer = f.on(Producer::builder()).build_as().unwrap();
        signups.signed_up(&email, "pro").await.unwrap();
        let message = f.messages(f.reader()).await.remove(0).unwrap();
        let segment = message.metadata().segment("email").unwrap();
        assert_eq!(segment.class, SegmentClass::PERSONAL, "{}", f.backend.name);
        let stored = f.personal_fields(&message).await;
        assert!(
            !stored["email"]
                .windows(email.len())
                .any(|w| w == email.as_bytes()),
            "{}: the subject id is stored in clear",
            f.backend.name
        );
        f.personal.erase_subject(email.as_str()).await.unwrap();
        let mut replay = f.reader().events::<SignupsEvent>().unwrap();
        let recorded = replay.next().await.unwrap().unwrap();
        assert_eq!(
            recorded.event,
            SignupsEvent::SignedUp {
                email: String::new(),
                plan: "pro".into()
            },
            "{}",
            f.backend.name
        );
        assert_eq!(recorded.erased, ["email"]);
    }
}

/// A subject erased long ago who came back, and whose new key was then
/// lost, is not taken for erased: a message produced well after the
/// tombstone with a key the vault lacks is `DataKeyMissing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_that_came_back_is_not_erased_by_a_lost_key() {
    for backend in Backend::both().await {
        let f = Fixture::new(backend, "came-back");
        let producer = f.producer();
        producer
            .opened("ann", "ann@example.com", "pro")
            .await
            .unwrap();
        f.personal.erase_subject("ann").await.unwrap();
        producer
            .opened("ann", "ann@new.example", "pro")
            .await
            .unwrap();
        let ann = f.personal.subject_hash("ann");
        f.backend
            .store
            .delete(&f.vault.record_key(&ann))
            .await
            .unwrap();
        // The same message as the second, produced two minutes after the
        // erasure (as if it had been long ago).
        let second = f.messages(f.reader()).await.remove(1).unwrap();
        let mut later = second.metadata().clone();
        later.produced_at_ms += 120_000;
        f.backend.channel.append(&f.uri, &later).await.unwrap();

        let read = f.messages(f.reader()).await;
        let email = |m: &Result<Message, Error>| -> Option<String> {
            m.as_ref()
                .unwrap()
                .erasable_segment::<String>("email")
                .unwrap()
        };
        assert_eq!(email(&read[0]), None, "{}", f.backend.name);
        // Within a minute of the erasure: taken for concurrent with it.
        assert_eq!(email(&read[1]), None, "{}", f.backend.name);
        assert!(
            matches!(&read[2], Err(Error::DataKeyMissing { .. })),
            "{}: a lost key of a subject that came back was read as erased: {:?}",
            f.backend.name,
            read[2]
        );
    }
}
