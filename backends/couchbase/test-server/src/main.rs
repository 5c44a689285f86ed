//! `eb-couchbase-test-server`: serves a Couchbase KV-protocol endpoint for
//! the tests.
//!
//! ```text
//! eb-couchbase-test-server [--listen 127.0.0.1:11210] --user NAME:PASSWORD
//!     --bucket NAME [--collection SCOPE.COLLECTION]...
//! ```
//!
//! `--collection` adds a named collection to the bucket named before it.

use std::net::SocketAddr;
use std::process::ExitCode;

use event_backbone_couchbase_test_server::{Server, Settings};

fn parse(args: impl Iterator<Item = String>) -> Result<(SocketAddr, Settings), String> {
    let mut listen: SocketAddr = "127.0.0.1:11210".parse().expect("a valid default");
    let mut settings = Settings::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "--user" => {
                let v = value()?;
                let (name, password) = v
                    .split_once(':')
                    // The value is not echoed: it may be a password.
                    .ok_or("--user takes NAME:PASSWORD, and this one has no ':'")?;
                settings = settings.user(name, password);
            }
            "--bucket" => settings = settings.bucket(&value()?),
            "--collection" => {
                let v = value()?;
                let (scope, collection) = v
                    .split_once('.')
                    .ok_or_else(|| format!("--collection takes SCOPE.COLLECTION, got {v:?}"))?;
                if settings.buckets.is_empty() {
                    return Err(format!("--collection {v:?} comes before any --bucket"));
                }
                settings = settings.collection(scope, collection);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if settings.users.is_empty() || settings.buckets.is_empty() {
        return Err("at least one --user and one --bucket are needed".into());
    }
    Ok((listen, settings))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, settings) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("eb-couchbase-test-server: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(listen, settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("eb-couchbase-test-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("eb-couchbase-test-server: listening on {listen}");
    tokio::select! {
        r = server.run() => {
            if let Err(e) = r {
                eprintln!("eb-couchbase-test-server: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> + '_ {
        s.split_whitespace().map(str::to_owned)
    }

    #[test]
    fn arguments_make_the_settings_and_bad_ones_say_why() {
        let (listen, s) = parse(args(
            "--listen 127.0.0.1:9 --user u:p:w --bucket b --collection app.c",
        ))
        .unwrap();
        assert_eq!(listen.port(), 9);
        assert_eq!(s.password_of("u").as_deref(), Some("p:w"));
        assert_eq!(s.collection_id("b", "app", "c"), Ok(8));
        let e = |a| parse(args(a)).unwrap_err();
        assert!(e("--user secret --bucket b").contains("NAME:PASSWORD, and this one has no ':'"));
        assert!(!e("--user secret --bucket b").contains("secret"));
        assert!(e("--user u:p --collection a.b --bucket b").contains("before any --bucket"));
        assert!(e("--user u:p --bucket b --collection ab").contains("SCOPE.COLLECTION"));
        assert!(e("--user u:p").contains("at least one"));
        assert!(e("--bucket").contains("--bucket needs a value"));
        assert!(e("--frobnicate").contains("unknown argument"));
    }
}
