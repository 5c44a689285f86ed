//! `eb outbox relay`: committed outbox messages on to the channel and
//! store.

use std::io::Write;
use std::time::Duration;

use event_backbone::outbox::{outbox_stream, OutboxRelay, RelayReport};
use event_backbone::{open_channel, open_store, Producer};

use crate::args::{Connection, Relay};
use crate::connect;
use crate::error::{Error, Result};

/// Relays, and says what it did: until interrupted, or with `--once`
/// until the outbox is empty.
pub async fn relay(connection: &Connection, relay: &Relay, out: &mut impl Write) -> Result<()> {
    let streams = connect::streams(connection)?;
    let channel = connect::channel(connection).await?;
    let store = connect::store(connection).await?.ok_or(Error::NoStore {
        command: "outbox relay",
    })?;
    let mut producers = Vec::with_capacity(streams.len());
    for address in &streams {
        let mut builder = Producer::builder()
            .channel(channel.clone())
            .store(store.clone())
            .uri(address.uri());
        if let Some(environment) = address.environment() {
            builder = builder.environment(environment);
        }
        if let Some(seconds) = relay.payload_ttl {
            builder = builder.payload_ttl(Duration::from_secs(seconds));
        }
        producers.push(builder.build()?);
    }
    let producer = Producer::merge(producers)?;
    let outbox = open_channel(&relay.outbox).await?;
    let relaying = OutboxRelay::builder()
        .channel(outbox.clone())
        .store(open_store(&relay.outbox).await?)
        .to(&producer)
        .batch_size(relay.batch_size)
        .build()?;
    let report = if relay.once {
        let mut total = RelayReport::default();
        loop {
            let pass = relaying.relay_once().await?;
            if pass.is_empty() {
                break total;
            }
            total.add(pass);
        }
    } else {
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            interrupted().await;
            stop.cancel();
        });
        // Relayed entries deleted from the outbox as the relay goes.
        let trimming = {
            let (outbox, keys, cancel) = (
                outbox.clone(),
                producer
                    .streams()
                    .iter()
                    .map(|s| outbox_stream(s))
                    .collect::<Vec<_>>(),
                cancel.clone(),
            );
            tokio::spawn(async move {
                while !cancel.is_cancelled() {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(60)) => {
                            let _ = trim(&outbox, &keys).await;
                        }
                    }
                }
            })
        };
        let report = relaying.run(cancel).await;
        trimming.abort();
        report?
    };
    let keys: Vec<String> = producer
        .streams()
        .iter()
        .map(|s| outbox_stream(s))
        .collect();
    let trimmed = trim(&outbox, &keys).await?;
    for (entry, reason) in &report.dead_lettered {
        writeln!(out, "dead-lettered outbox entry {entry}: {reason}")?;
    }
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    writeln!(
        out,
        "relayed {} message{} to {} ({}), {} dead-lettered in the outbox",
        report.relayed,
        plural(report.relayed),
        producer.streams().join(", "),
        channel.backend(),
        report.dead_lettered.len()
    )?;
    if let Some(trimmed) = trimmed {
        writeln!(out, "deleted {trimmed} relayed entries from the outbox")?;
    }
    Ok(())
}

/// Deletes the relayed entries of the outbox streams, where the outbox can
/// (PostgreSQL); `None` elsewhere.
async fn trim(
    outbox: &std::sync::Arc<dyn event_backbone::StreamChannel>,
    streams: &[String],
) -> Result<Option<u64>> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = outbox
        .as_any()
        .and_then(|c| c.downcast_ref::<event_backbone::postgres::PostgresStreamChannel>())
    {
        let mut deleted = 0;
        for stream in streams {
            deleted += pg.delete_acknowledged(stream).await?;
        }
        return Ok(Some(deleted));
    }
    let _ = (outbox, streams);
    Ok(None)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
