//! The human output of `eb info` and `eb tail`, as a person sees it, in
//! snapshots (`cli/tests/snapshots/`): a change of layout shows in review.
//! Entry ids, message ids, times and the stream's name change from run to
//! run and are replaced by placeholders.

mod support;

use event_backbone::{open_channel, open_store};
use support::{eb_on, new_uri, read_and_ack, redis_url, send_orders};

/// `eb ARGS` on Redis, its standard output.
fn shown(args: &[&str]) -> String {
    let output = eb_on(&redis_url())
        .env("COLUMNS", "100")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// What changes from run to run, as placeholders.
fn settings(uri: &str) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(uri), "[stream]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[time]");
    settings.add_filter(r"\b\d{10,}-\d+\b", "[entry]");
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[id]",
    );
    settings.add_filter(r"(?m)idle \d+(\.\d)?m?s$", "idle [idle]");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | '\\' => {
                format!("\\{c}")
            }
            c => c.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_tail_read_as_they_did() {
    let uri = new_uri("cli-snapshot");
    let channel = open_channel(&redis_url()).await.unwrap();
    let store = open_store(&redis_url()).await.unwrap();
    send_orders(&channel, store, &uri, 3).await;
    read_and_ack(&channel, &uri, 2, 1).await;

    let settings = settings(&uri);
    settings.bind(|| {
        insta::assert_snapshot!("info", shown(&["info", "--uri", &uri]));
        insta::assert_snapshot!("tail", shown(&["tail", "--uri", &uri]));
        insta::assert_snapshot!(
            "tail_payload",
            shown(&["tail", "--uri", &uri, "--payload", "--limit", "2"])
        );
    });
}
