//! The channel, store and stream the command line names, opened through
//! the library's `open_channel` and `open_store`.

use std::sync::Arc;

use event_backbone::{open_channel, open_store, KeyValueStore, StreamAddress, StreamChannel};

use crate::args::Connection;
use crate::error::{Error, Result};

/// The library's own variables for the Redis endpoint and Kafka brokers.
const REDIS_ENDPOINT_VAR: &str = "REDIS_EVENT_SOURCE_ENDPOINT";
const KAFKA_BROKERS_VAR: &str = "KAFKA_EVENT_SOURCE_BROKERS";

/// The channel's URL: `--channel`, else the library's variables.
fn channel_url(connection: &Connection) -> Result<String> {
    if let Some(url) = &connection.channel {
        return Ok(url.clone());
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(endpoint) = var(REDIS_ENDPOINT_VAR) {
        return Ok(with_scheme("redis", endpoint));
    }
    if let Some(brokers) = var(KAFKA_BROKERS_VAR) {
        return Ok(with_scheme("kafka", brokers));
    }
    Err(Error::NoChannel)
}

/// `scheme://address` unless the address has a scheme already.
fn with_scheme(scheme: &str, address: String) -> String {
    if address.contains("://") {
        address
    } else {
        format!("{scheme}://{address}")
    }
}

/// Opens the channel.
pub async fn channel(connection: &Connection) -> Result<Arc<dyn StreamChannel>> {
    Ok(open_channel(&channel_url(connection)?).await?)
}

/// Opens the store: `--store`, else the channel's URL when it names a
/// store too (Redis, memory), else none.
pub async fn store(connection: &Connection) -> Result<Option<Arc<dyn KeyValueStore>>> {
    let url = match &connection.store {
        Some(url) => url.clone(),
        None => {
            let url = channel_url(connection)?;
            if !(url.starts_with("redis") || url.starts_with("memory")) {
                return Ok(None);
            }
            url
        }
    };
    Ok(Some(open_store(&url).await?))
}

/// The stream `--uri` and `--environment` name.
pub fn stream(connection: &Connection) -> Result<StreamAddress> {
    let uri = connection.uri.as_deref().ok_or(Error::NoStream)?;
    Ok(StreamAddress::new(connection.environment.as_deref(), uri)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_the_scheme_it_lacks() {
        assert_eq!(with_scheme("redis", "h:1".into()), "redis://h:1");
        assert_eq!(with_scheme("redis", "rediss://h:1".into()), "rediss://h:1");
    }
}
