//! `eb new`: the project it writes builds with this checkout's crates, its
//! tests pass, its consumer handles an event in memory out of the box, and
//! its producer then its consumer, two processes, on the Redis the test
//! command starts (the consumer handles as many as it is told, the rest
//! wait for its group). One slow test: it builds a workspace (in a target
//! directory of its own, kept between runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use predicates::prelude::*;
use support::{eb_on, new_uri};

fn redis_endpoint() -> String {
    std::env::var("REDIS_EVENT_SOURCE_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:6379".to_owned())
}

/// The checkout's root.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is in the checkout")
        .to_owned()
}

/// `cargo ARGS` in `dir`, in a target directory of its own (the running
/// `cargo test` holds its own), without this test's Redis settings unless
/// given.
fn cargo(dir: &Path, args: &[&str], redis: Option<&str>) -> Output {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eb-new-target");
    let mut cargo =
        assert_cmd::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cargo
        .current_dir(dir)
        // A first build of the project's dependencies, on two cores.
        .timeout(std::time::Duration::from_secs(900))
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("REDIS_EVENT_SOURCE_ENDPOINT")
        .env_remove("RUSTFLAGS");
    if let Some(endpoint) = redis {
        cargo.env("REDIS_EVENT_SOURCE_ENDPOINT", endpoint);
    }
    cargo.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_new_project_builds_and_its_producer_then_consumer_handle_the_event() {
    let uri = new_uri("cli-new");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eb-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let project = dir.join("demo-shop");
    // As the README's quickest start: eb built from this checkout takes
    // event-backbone from it.
    eb_on("memory:")
        .args(["new", "demo-shop", "--uri", &uri, "--group", "billing"])
        .args(["--event", "order_placed", "--path"])
        .arg(&project)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "cargo run --bin demo-shop-consumer",
        ));
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let checkout_path = std::fs::canonicalize(checkout()).unwrap();
    assert!(
        manifest.contains(&format!("path = {:?}", checkout_path.to_str().unwrap())),
        "{manifest}"
    );
    for file in [
        "Cargo.toml",
        "README.md",
        "scripts/test",
        "contract/src/lib.rs",
        "producer/src/main.rs",
        "consumer/src/main.rs",
        "consumer/tests/round_trip.rs",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    // Every placeholder filled.
    for file in [
        "Cargo.toml",
        "README.md",
        "scripts/test",
        "contract/Cargo.toml",
        "contract/src/lib.rs",
        "contract/src/backend.rs",
        "producer/Cargo.toml",
        "producer/src/lib.rs",
        "producer/src/main.rs",
        "consumer/Cargo.toml",
        "consumer/src/lib.rs",
        "consumer/src/main.rs",
        "consumer/tests/round_trip.rs",
    ] {
        let text = std::fs::read_to_string(project.join(file)).unwrap();
        assert!(
            !text.contains("{{"),
            "{file} has a placeholder left: {text}"
        );
    }
    let contract = std::fs::read_to_string(project.join("contract/src/lib.rs")).unwrap();
    assert!(contract.contains("pub trait DemoShopEvents"), "{contract}");
    assert!(
        contract.contains("async fn order_placed(&self"),
        "{contract}"
    );
    // Formatted as cargo fmt would.
    let formatted = Command::new("rustfmt")
        .args(["--edition", "2021", "--check"])
        .arg(project.join("consumer/src/lib.rs"))
        .arg(project.join("producer/src/lib.rs"))
        .arg(project.join("contract/src/lib.rs"))
        .output()
        .unwrap();
    assert!(formatted.status.success(), "{}", text(&formatted));
    // The versions this checkout builds with.
    std::fs::copy(checkout().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();

    // Its own test command (no server set: its tests, in memory).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eb-new-target");
    let tested = assert_cmd::Command::new(project.join("scripts/test"))
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("REDIS_EVENT_SOURCE_ENDPOINT")
        .env_remove("RUSTFLAGS")
        .timeout(std::time::Duration::from_secs(900))
        .output()
        .unwrap();
    assert!(tested.status.success(), "{}", text(&tested));
    assert!(text(&tested).contains("what_the_producer_sends_the_consumer_handles"));

    // In memory, out of the box.
    let run = cargo(
        &project,
        &["run", "--quiet", "--bin", "demo-shop-consumer"],
        None,
    );
    assert!(run.status.success(), "{}", text(&run));
    let said = text(&run);
    assert!(
        said.contains("handled order_placed 1: hello number 1") && said.contains("done: 1 handled"),
        "{said}"
    );

    // On Redis: the producer, then the consumer, two processes.
    let endpoint = redis_endpoint();
    let produced = cargo(
        &project,
        &["run", "--quiet", "--bin", "demo-shop-producer", "--", "3"],
        Some(&endpoint),
    );
    assert!(produced.status.success(), "{}", text(&produced));
    let consumed = cargo(
        &project,
        &["run", "--quiet", "--bin", "demo-shop-consumer", "--", "2"],
        Some(&endpoint),
    );
    assert!(consumed.status.success(), "{}", text(&consumed));
    let said = text(&consumed);
    assert!(
        said.contains("handled order_placed 1") && said.contains("handled order_placed 2"),
        "{said}"
    );
    assert!(
        said.contains("done: 2 handled") && !said.contains("order_placed 3"),
        "two of three: {said}"
    );
    // The third waits for the group.
    let url = match endpoint.contains("://") {
        true => endpoint.clone(),
        false => format!("redis://{endpoint}"),
    };
    let info = eb_on(&url)
        .args(["info", "--uri", &uri, "--json"])
        .output()
        .unwrap();
    assert!(info.status.success(), "{info:?}");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let group = &info["groups"][0];
    assert_eq!(
        (&group["name"], &group["lag"]),
        (&"billing".into(), &1.into()),
        "{info}"
    );
    assert_eq!(group["pending"], 0, "{info}");
    // Built for memory only, it compiles too.
    let memory = dir.join("demo-memory");
    eb_on("memory:")
        .args(["new", "demo-memory", "--uri", &uri, "--group", "billing"])
        .args(["--event", "order_placed", "--backend", "memory", "--path"])
        .arg(&memory)
        .assert()
        .success();
    std::fs::copy(checkout().join("Cargo.lock"), memory.join("Cargo.lock")).unwrap();
    let checked = cargo(&memory, &["check", "--workspace", "--all-targets"], None);
    assert!(checked.status.success(), "{}", text(&checked));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_names_and_an_existing_directory_are_usage_errors() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eb-new-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let new = |name: &str, event: &str| {
        let mut eb = eb_on("memory:");
        eb.args([
            "new", name, "--uri", "orders", "--group", "g", "--event", event,
        ])
        .arg("--path")
        .arg(dir.join(name));
        eb
    };
    new("Demo Shop", "order_placed")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected a crate name"));
    new("demo", "type")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a Rust keyword"));
    eb_on("memory:")
        .args([
            "new", "demo", "--uri", "or\"ders", "--group", "g", "--event", "e",
        ])
        .arg("--path")
        .arg(dir.join("demo"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("leave out"));
    std::fs::create_dir_all(dir.join("taken")).unwrap();
    new("taken", "order_placed")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("exists"));
    assert!(!dir.join("demo").exists(), "nothing written on a refusal");
    std::fs::remove_dir_all(&dir).unwrap();
}
