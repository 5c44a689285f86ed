//! The channel, store and stream the command line names, opened through
//! the library's `open_channel` and `open_store`.

use std::sync::Arc;

use event_backbone::privacy::PersonalData;
use event_backbone::{
    open_channel, open_store, EndpointBuilder, KeyValueStore, StreamAddress, StreamChannel,
    StreamInfo,
};

use crate::args::Connection;
use crate::error::{Error, Result};

/// The library's own variables for the Redis endpoint and Kafka brokers.
const REDIS_ENDPOINT_VAR: &str = "REDIS_EVENT_SOURCE_ENDPOINT";
const KAFKA_BROKERS_VAR: &str = "KAFKA_EVENT_SOURCE_BROKERS";

/// Where the channel is: a URL, or the library's own variables (read by
/// the backend's `from_env`, with everything else it reads: the Redis
/// password, Kafka's settings).
enum Named {
    Url(String),
    #[cfg(feature = "redis")]
    RedisEnvironment,
    #[cfg(feature = "kafka")]
    KafkaEnvironment,
}

/// `--channel`, else the library's variables.
fn named(connection: &Connection) -> Result<Named> {
    if let Some(url) = &connection.channel {
        return Ok(Named::Url(url.clone()));
    }
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    #[cfg(feature = "redis")]
    if set(REDIS_ENDPOINT_VAR) {
        return Ok(Named::RedisEnvironment);
    }
    #[cfg(feature = "kafka")]
    if set(KAFKA_BROKERS_VAR) {
        return Ok(Named::KafkaEnvironment);
    }
    let _ = (set, REDIS_ENDPOINT_VAR, KAFKA_BROKERS_VAR);
    Err(Error::NoChannel)
}

/// A Redis connection from the library's variables.
#[cfg(feature = "redis")]
async fn redis_from_env() -> Result<event_backbone::redis::Redis> {
    use event_backbone::redis::{Redis, RedisConfig};
    let config = RedisConfig::from_env().map_err(event_backbone::Error::from)?;
    Ok(Redis::connect(config)
        .await
        .map_err(event_backbone::Error::from)?)
}

/// Opens the channel.
pub async fn channel(connection: &Connection) -> Result<Arc<dyn StreamChannel>> {
    Ok(match named(connection)? {
        Named::Url(url) => open_channel(&url).await?,
        #[cfg(feature = "redis")]
        Named::RedisEnvironment => Arc::new(event_backbone::redis::RedisStreamChannel::new(
            &redis_from_env().await?,
        )),
        #[cfg(feature = "kafka")]
        Named::KafkaEnvironment => {
            use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
            let config = KafkaConfig::from_env().map_err(event_backbone::Error::from)?;
            let kafka = Kafka::connect(config)
                .await
                .map_err(event_backbone::Error::from)?;
            Arc::new(KafkaStreamChannel::new(&kafka))
        }
    })
}

/// Whether a channel's URL names a store too (Redis, PostgreSQL, SQLite):
/// then it is the store when none is given.
pub fn is_store_too(url: &str) -> bool {
    ["redis", "postgres:", "postgresql:", "sqlite:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// Opens the store: `--store`, else the channel's own when it is a store
/// too (Redis, PostgreSQL, SQLite), else none.
pub async fn store(connection: &Connection) -> Result<Option<Arc<dyn KeyValueStore>>> {
    if let Some(url) = &connection.store {
        return Ok(Some(open_store(url).await?));
    }
    Ok(match named(connection)? {
        Named::Url(url) if is_store_too(&url) => Some(open_store(&url).await?),
        Named::Url(_) => None,
        #[cfg(feature = "redis")]
        Named::RedisEnvironment => Some(Arc::new(event_backbone::redis::RedisHashStore::new(
            &redis_from_env().await?,
        ))),
        #[cfg(feature = "kafka")]
        Named::KafkaEnvironment => None,
    })
}

/// The one stream `--uri` and `--environment` name.
pub fn stream(connection: &Connection) -> Result<StreamAddress> {
    match connection.uri.as_slice() {
        [] => Err(Error::NoStream),
        [uri] => Ok(StreamAddress::new(connection.environment.as_deref(), uri)?),
        several => Err(Error::OneStream {
            given: several.len(),
        }),
    }
}

/// Every stream `--uri` (repeated) and `--environment` name.
pub fn streams(connection: &Connection) -> Result<Vec<StreamAddress>> {
    if connection.uri.is_empty() {
        return Err(Error::NoStream);
    }
    let environment = connection.environment.as_deref();
    Ok(connection
        .uri
        .iter()
        .map(|uri| StreamAddress::new(environment, uri))
        .collect::<event_backbone::Result<_>>()?)
}

/// The info of a stream that exists; one that does not (no entry, no
/// group) is refused.
pub async fn existing(
    channel: &Arc<dyn StreamChannel>,
    address: &StreamAddress,
) -> Result<StreamInfo> {
    let info = channel.info(address.stream_key()).await?;
    if info.partitions == 0 {
        return Err(Error::NoSuchStream {
            stream: address.stream_key().to_owned(),
        });
    }
    Ok(info)
}

/// The personal-data settings, from the vault's secrets in the
/// environment, the vault in `store`: when `--personal-data` is given, or
/// `always`.
pub fn personal_data(
    connection: &Connection,
    store: &Arc<dyn KeyValueStore>,
    always: bool,
) -> Result<Option<PersonalData>> {
    if !(connection.personal_data || always) {
        return Ok(None);
    }
    Ok(Some(PersonalData::from_env(store.clone())?))
}

/// A builder of the library's (replay, redrive, ...) on this channel,
/// store and stream, with the personal-data settings if given.
pub fn endpoint<R>(
    builder: EndpointBuilder<R>,
    channel: Arc<dyn StreamChannel>,
    store: Arc<dyn KeyValueStore>,
    address: &StreamAddress,
    personal: Option<&PersonalData>,
) -> EndpointBuilder<R> {
    let mut builder = builder.channel(channel).store(store).uri(address.uri());
    if let Some(environment) = address.environment() {
        builder = builder.environment(environment);
    }
    match personal {
        Some(personal) => builder.personal_data(personal.clone()),
        None => builder,
    }
}
