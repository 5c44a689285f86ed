//! `eb-redis-consume`: consume a stream on Redis and print each message.
//!
//! ```text
//! eb-redis-consume --uri hello.event-sourcing [--url redis://host:port]
//!                  [--environment prod] [--group default]
//!                  [--name consumer-1] [--batch 64] [--concurrency 16]
//!                  [--handle-ms 0] [--stop-after N] [--ledger FILE]
//! ```
//!
//! The server is `--url`, else `REDIS_EVENT_SOURCE_ENDPOINT` (and
//! `REDIS_EVENT_SOURCE_PASS`), else 127.0.0.1:6379. Each handled message prints one line
//! `<entry id> <message id> <operation>`; with `--ledger` the line is also
//! appended (and flushed) to the file before the message is acknowledged.
//! The crash-recovery test kills this process with SIGKILL mid-batch.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{Consumer, ConsumerContext, HandlerError};
use event_backbone_redis::{Redis, RedisBuilderExt, RedisConfig, ENDPOINT_VAR};

/// The server when neither `--url` nor the variable names one.
const LOCAL: &str = "redis://127.0.0.1:6379";

struct Args {
    uri: String,
    url: Option<String>,
    environment: Option<String>,
    group: String,
    name: Option<String>,
    batch: usize,
    concurrency: usize,
    handle_ms: u64,
    stop_after: Option<u64>,
    ledger: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        uri: String::new(),
        url: None,
        environment: None,
        group: "default".into(),
        name: None,
        batch: 64,
        concurrency: 16,
        handle_ms: 0,
        stop_after: None,
        ledger: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--uri" => args.uri = value()?,
            "--url" => args.url = Some(value()?),
            "--environment" => args.environment = Some(value()?),
            "--group" => args.group = value()?,
            "--name" => args.name = Some(value()?),
            "--batch" => args.batch = number(value()?)? as usize,
            "--concurrency" => args.concurrency = number(value()?)? as usize,
            "--handle-ms" => args.handle_ms = number(value()?)?,
            "--stop-after" => args.stop_after = Some(number(value()?)?),
            "--ledger" => args.ledger = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.uri.is_empty() {
        return Err("--uri is required".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse() {
        Ok(a) => a,
        Err(why) => {
            eprintln!("{why}\nusage: eb-redis-consume --uri URI [--url redis://host:port] [--environment E] [--group G] [--name N] [--batch N] [--concurrency N] [--handle-ms MS] [--stop-after N] [--ledger FILE]");
            std::process::exit(2);
        }
    };
    let config = match &args.url {
        Some(url) => RedisConfig::from_url(url)?,
        None if std::env::var_os(ENDPOINT_VAR).is_some() => RedisConfig::from_env()?,
        None => RedisConfig::from_url(LOCAL)?,
    };
    let redis = Redis::connect(config).await?;
    let ledger = match &args.ledger {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ))),
        None => None,
    };
    let mut builder = Consumer::builder()
        .redis(&redis)
        .uri(&args.uri)
        .group(&args.group)
        .batch_size(args.batch)
        .concurrency(args.concurrency);
    if let Some(env) = &args.environment {
        builder = builder.environment(env);
    }
    if let Some(name) = &args.name {
        builder = builder.consumer_name(name);
    }
    if let Some(n) = args.stop_after {
        builder = builder.stop_after(n);
    }
    let handle = Duration::from_millis(args.handle_ms);
    let lifetime = builder.subscribe_fn(move |ctx: ConsumerContext| {
        let ledger = ledger.clone();
        async move {
            tokio::time::sleep(handle).await;
            let line = format!(
                "{} {} {}\n",
                ctx.entry_id(),
                ctx.message_id(),
                ctx.operation()
            );
            if let Some(ledger) = ledger {
                let mut file = ledger.lock().unwrap();
                file.write_all(line.as_bytes())?;
                file.flush()?;
            }
            print!("{line}");
            Ok::<(), HandlerError>(())
        }
    })?;
    let stats = lifetime.completion().await?;
    eprintln!("{stats:?}");
    Ok(())
}
