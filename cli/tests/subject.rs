//! `eb export` and `eb erase` over several streams, against the Redis the
//! test command starts, matching the library's own export and erasure; and
//! `tail --payload` with and without the key vault's secrets.

use std::sync::Arc;

mod support;

use assert_cmd::Command;
use event_backbone::privacy::{MasterKey, PersonalData, SubjectKey};
use event_backbone::{open_channel, open_store, KeyValueStore, Producer, StreamChannel};
use event_backbone::{Codec, SubjectRequests};
use predicates::prelude::*;
use support::{eb_on, new_uri, redis_url};

const MASTER: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const SUBJECT: &str = "0202020202020202020202020202020202020202020202020202020202020202";

/// `eb` on Redis with the vault's secrets in its environment.
fn eb() -> Command {
    let mut eb = eb_on(&redis_url());
    eb.env("EVENT_BACKBONE_MASTER_KEY", MASTER)
        .env("EVENT_BACKBONE_SUBJECT_KEY", SUBJECT);
    eb
}

struct People {
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    personal: PersonalData,
    /// Two streams, each with ann's and bob's messages.
    uris: [String; 2],
}

/// On each of two streams: `registered` for ann and bob (a personal
/// `email`, a normal `plan`), and on the first a `moved` for ann.
async fn people() -> People {
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    let personal = PersonalData::on_store(
        store.clone(),
        MasterKey::from_hex(MASTER).unwrap(),
        SubjectKey::from_hex(SUBJECT).unwrap(),
    );
    // Subjects of their own: the vault is shared by every test on this
    // Redis.
    let uris = [new_uri("cli-people"), new_uri("cli-people")];
    for uri in &uris {
        let producer = Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .personal_data(personal.clone())
            .codec(Codec::Json)
            .uri(uri)
            .build()
            .unwrap();
        for person in ["ann", "bob"] {
            producer
                .message("registered")
                .subject(format!("{person}@{uri}"))
                .personal("email", &format!("{person}@example.com"))
                .unwrap()
                .segment("plan", "gold")
                .unwrap()
                .send()
                .await
                .unwrap();
        }
    }
    let producer = Producer::builder()
        .channel(channel.clone())
        .store(store.clone())
        .personal_data(personal.clone())
        .codec(Codec::Json)
        .uri(&uris[0])
        .build()
        .unwrap();
    producer
        .message("moved")
        .subject(ann(&uris))
        .personal("address", "1 Main St")
        .unwrap()
        .send()
        .await
        .unwrap();
    People {
        channel,
        store,
        personal,
        uris,
    }
}

/// Ann's subject id (the same in both streams).
fn ann(uris: &[String; 2]) -> String {
    format!("ann@{}", uris[0])
}

impl People {
    fn requests(&self, uri: &str) -> event_backbone::SubjectRequestsBuilder {
        SubjectRequests::builder()
            .channel(self.channel.clone())
            .store(self.store.clone())
            .personal_data(self.personal.clone())
            .uri(uri)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_erase_over_several_streams_match_the_librarys() {
    let p = people().await;
    // Ann is in the first stream only under this id; the second has her
    // under another: the export of the first id over both streams finds
    // the first stream's two messages.
    let subject = ann(&p.uris);
    let output = eb()
        .args(["export", "--subject", &subject])
        .args(["--uri", &p.uris[0], "--uri", &p.uris[1]])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let export: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let library = p
        .requests(&p.uris[0])
        .export(subject.as_str())
        .await
        .unwrap();
    assert_eq!(export["messages"].as_array().unwrap().len(), 2, "{export}");
    assert_eq!(library.messages().len(), 2);
    assert_eq!(export["streams"].as_array().unwrap().len(), 2, "{export}");
    for (shown, exported) in export["messages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(library.messages())
    {
        assert_eq!(shown["message_id"], exported.message_id.to_string());
        assert_eq!(shown["entry"], exported.entry_id.to_string());
    }
    assert_eq!(
        export["messages"][0]["segments"]["email"], "ann@example.com",
        "opened: {export}"
    );
    assert_eq!(export["messages"][1]["segments"]["address"], "1 Main St");
    // The id from the standard input, out of the shell's history.
    let piped = eb()
        .args(["export", "--subject", "-", "--uri", &p.uris[0]])
        .write_stdin(format!("{subject}\n"))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    let piped: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(piped["messages"], export["messages"]);
    // Only personal segments, and never the subject's id.
    assert!(export["messages"][0]["segments"].get("plan").is_none());
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&subject));

    // To a file, readable by its owner only.
    let dir = std::env::temp_dir().join(format!("eb-export-{}", event_backbone::MessageId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ann.json");
    eb().args(["export", "--subject", &subject, "--uri", &p.uris[0]])
        .args(["--out", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "exported 2 messages (0 unreadable) from 1 stream to",
        ));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Never over a file that is there (it would keep its permissions).
    eb().args(["export", "--subject", &subject, "--uri", &p.uris[0]])
        .args(["--out", file.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("exists"));
    assert_eq!(written["messages"], export["messages"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();

    eb().args(["erase", "--subject", &subject])
        .args(["--uri", &p.uris[0], "--uri", &p.uris[1]])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "{}: 2 messages of the subject, 2 payload keys deleted",
            p.uris[0]
        )))
        .stdout(predicate::str::contains(format!(
            "{}: 0 messages of the subject, 0 payload keys deleted",
            p.uris[1]
        )))
        .stdout(predicate::str::contains("data keys: erased"));
    // As the library sees it: ann's data gone, bob's there.
    let after = p
        .requests(&p.uris[0])
        .export(subject.as_str())
        .await
        .unwrap();
    assert!(after.messages().iter().all(|m| m.segments.is_empty()));
    let bob = format!("bob@{}", p.uris[0]);
    let bobs = p.requests(&p.uris[0]).export(bob.as_str()).await.unwrap();
    assert_eq!(
        bobs.messages()[0].segment::<String>("email").unwrap(),
        "bob@example.com"
    );
    // A mistyped stream: one line, nothing done.
    eb().args(["erase", "--subject", &subject, "--uri", "test.cli.never"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
    // A second erasure finds no key.
    eb().args(["erase", "--subject", &subject, "--uri", &p.uris[0]])
        .assert()
        .success()
        .stdout(predicate::str::contains("data keys: none found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_opens_sealed_segments_only_with_the_vaults_secrets() {
    let p = people().await;
    let tail = |open: bool| {
        let mut eb = eb();
        eb.args(["tail", "--uri", &p.uris[1], "--payload"]);
        if open {
            eb.arg("--personal-data");
        }
        eb.assert().success()
    };
    tail(false)
        .stdout(predicate::str::contains("email: sealed (personal data;"))
        .stdout(predicate::str::contains(r#"plan (6 bytes): "gold""#))
        .stdout(predicate::str::contains("ann@example.com").not());
    tail(true)
        .stdout(predicate::str::contains(
            r#"email (17 bytes): "ann@example.com""#,
        ))
        .stdout(predicate::str::contains(
            r#"email (17 bytes): "bob@example.com""#,
        ));
    // Without the secrets in the environment: one line naming them.
    eb_on(&redis_url())
        .env_remove("EVENT_BACKBONE_MASTER_KEY")
        .args(["export", "--subject", "x", "--uri", &p.uris[1]])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("EVENT_BACKBONE_MASTER_KEY"));
}
