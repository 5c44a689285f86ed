//! Opening a channel or a store from a URL, by its scheme: for a command
//! line or a configuration file that names the backend at run time.
//!
//! | scheme | channel | store | feature |
//! |---|---|---|---|
//! | `memory:` | a new `MemoryChannel` | a new `MemoryStore` | none |
//! | `redis://`, `rediss://` | `RedisStreamChannel` | `RedisHashStore` | `redis` (`rediss` also the `tls` feature of `event-backbone-redis`) |
//! | `redis+cluster://h1:p1,h2:p2`, `rediss+cluster://` | the same, on a Redis Cluster | the same | `redis` |
//! | `kafka://` | `KafkaStreamChannel` | none: Kafka is a stream | `kafka` |
//! | `mongodb://`, `mongodb+srv://` | none | `MongoStore` | `mongodb` |
//! | `dynamodb://TABLE` | none | `DynamoStore` | `dynamodb` |
//! | `couchbase://HOST/BUCKET`, `couchbases://` | none | `CouchbaseStore` | `couchbase` |
//! | `postgres://`, `postgresql://` | `PostgresStreamChannel` | `PostgresStore` | `postgres` |
//! | `sqlite:PATH` | `SqliteStreamChannel` | `SqliteStore` | `sqlite` |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> event_backbone::Result<()> {
//! let channel = event_backbone::open_channel("memory:").await?;
//! let store = event_backbone::open_store("memory:").await?;
//! assert_eq!((channel.backend(), store.backend()), ("memory", "memory"));
//!
//! let unknown = event_backbone::open_store("carrier-pigeon://coop").await.unwrap_err();
//! assert!(unknown.to_string().contains("carrier-pigeon"));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use event_backbone_core::memory::{MemoryChannel, MemoryStore};
use event_backbone_core::{Error, KeyValueStore, Result, StreamChannel};

/// A scheme this crate knows: the feature that brings it, and whether it
/// names a channel, a store, or both.
struct Scheme {
    name: &'static str,
    feature: Option<&'static str>,
    /// Whether this build has it.
    enabled: bool,
    channel: bool,
    store: bool,
}

const SCHEMES: [Scheme; 14] = [
    Scheme {
        name: "memory",
        feature: None,
        enabled: true,
        channel: true,
        store: true,
    },
    Scheme {
        name: "redis",
        feature: Some("redis"),
        enabled: cfg!(feature = "redis"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "rediss",
        feature: Some("redis"),
        enabled: cfg!(feature = "redis"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "redis+cluster",
        feature: Some("redis"),
        enabled: cfg!(feature = "redis"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "rediss+cluster",
        feature: Some("redis"),
        enabled: cfg!(feature = "redis"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "kafka",
        feature: Some("kafka"),
        enabled: cfg!(feature = "kafka"),
        channel: true,
        store: false,
    },
    Scheme {
        name: "mongodb",
        feature: Some("mongodb"),
        enabled: cfg!(feature = "mongodb"),
        channel: false,
        store: true,
    },
    Scheme {
        name: "mongodb+srv",
        feature: Some("mongodb"),
        enabled: cfg!(feature = "mongodb"),
        channel: false,
        store: true,
    },
    Scheme {
        name: "dynamodb",
        feature: Some("dynamodb"),
        enabled: cfg!(feature = "dynamodb"),
        channel: false,
        store: true,
    },
    Scheme {
        name: "couchbase",
        feature: Some("couchbase"),
        enabled: cfg!(feature = "couchbase"),
        channel: false,
        store: true,
    },
    Scheme {
        name: "couchbases",
        feature: Some("couchbase"),
        enabled: cfg!(feature = "couchbase"),
        channel: false,
        store: true,
    },
    Scheme {
        name: "postgres",
        feature: Some("postgres"),
        enabled: cfg!(feature = "postgres"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "postgresql",
        feature: Some("postgres"),
        enabled: cfg!(feature = "postgres"),
        channel: true,
        store: true,
    },
    Scheme {
        name: "sqlite",
        feature: Some("sqlite"),
        enabled: cfg!(feature = "sqlite"),
        channel: true,
        store: true,
    },
];

/// Opens (connects to) the stream channel a URL names, by its scheme:
///
/// | scheme | channel | store ([`open_store`]) | feature |
/// |---|---|---|---|
/// | `memory:` | a new `MemoryChannel` | a new `MemoryStore` | none |
/// | `redis://`, `rediss://` | `RedisStreamChannel` | `RedisHashStore` | `redis` (`rediss` also the `tls` feature of `event-backbone-redis`) |
/// | `redis+cluster://h1:p1,h2:p2`, `rediss+cluster://` | the same, on a Redis Cluster (several seed nodes) | the same | `redis` |
/// | `…?partitions=N` on any Redis URL | each stream in `N` partitions (`RedisStreamChannel::partitions`) | ignored | `redis` |
/// | `kafka://` | `KafkaStreamChannel` | none: Kafka is a stream | `kafka` |
/// | `mongodb://`, `mongodb+srv://` | none: MongoDB is a store | `MongoStore` (the string's database, collection `payloads`) | `mongodb` |
/// | `dynamodb://TABLE?region=…&endpoint=…` | none: DynamoDB is a store | `DynamoStore` (the table must exist; credentials from the AWS chain) | `dynamodb` |
/// | `couchbase://HOST/BUCKET[/SCOPE/COLLECTION]`, `couchbases://` | none: Couchbase is a store | `CouchbaseStore` (user and password from `COUCHBASE_EVENT_SOURCE_USER` and `_PASS`) | `couchbase` |
/// | `postgres://user@host/db[?schema=NAME]`, `postgresql://` | `PostgresStreamChannel` | `PostgresStore` (table `payloads`) | `postgres` |
/// | `sqlite:PATH` (`sqlite://PATH`) | `SqliteStreamChannel` in the file (made when missing) | `SqliteStore` in the same file | `sqlite` |
///
/// A backend whose feature is not enabled, or a scheme that names no
/// stream, is an [`Error::Config`] that says which.
pub async fn open_channel(url: &str) -> Result<Arc<dyn StreamChannel>> {
    match scheme(url, "channel")? {
        "memory" => Ok(Arc::new(MemoryChannel::new())),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            let (url, partitions) = partitions_of(url)?;
            let config = event_backbone_redis::RedisConfig::from_url(&url)?;
            let redis = event_backbone_redis::Redis::connect(config).await?;
            let channel = event_backbone_redis::RedisStreamChannel::new(&redis);
            Ok(Arc::new(match partitions {
                Some(n) => channel.partitions(n)?,
                None => channel,
            }))
        }
        #[cfg(feature = "kafka")]
        "kafka" => {
            let config = event_backbone_kafka::KafkaConfig::from_url(url)?;
            let kafka = event_backbone_kafka::Kafka::connect(config).await?;
            Ok(Arc::new(event_backbone_kafka::KafkaStreamChannel::new(
                &kafka,
            )))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            event_backbone_postgres::PostgresStreamChannel::new(&postgres(url).await?),
        )),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(event_backbone_sqlite::SqliteStreamChannel::new(
            &sqlite(url).await?,
        ))),
        other => Err(cannot_open("channel", other, |s| s.channel)),
    }
}

/// Opens (connects to) the key-value store a URL names, by its scheme (the
/// table is at [`open_channel`]). A backend whose feature is not enabled, or
/// a scheme that names no store, is an [`Error::Config`] that says which.
pub async fn open_store(url: &str) -> Result<Arc<dyn KeyValueStore>> {
    match scheme(url, "store")? {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            // The channel's partitions say nothing to the store.
            let (url, _) = partitions_of(url)?;
            let config = event_backbone_redis::RedisConfig::from_url(&url)?;
            let redis = event_backbone_redis::Redis::connect(config).await?;
            Ok(Arc::new(event_backbone_redis::RedisHashStore::new(&redis)))
        }
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => {
            let config = event_backbone_mongodb::MongoConfig::from_url(url)?;
            let mongo = event_backbone_mongodb::Mongo::connect(config).await?;
            Ok(Arc::new(event_backbone_mongodb::MongoStore::new(&mongo)))
        }
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            let config = event_backbone_dynamodb::DynamoConfig::from_url(url)?;
            let dynamo = event_backbone_dynamodb::Dynamo::connect(config).await?;
            Ok(Arc::new(event_backbone_dynamodb::DynamoStore::new(&dynamo)))
        }
        #[cfg(feature = "couchbase")]
        "couchbase" | "couchbases" => {
            let config = event_backbone_couchbase::CouchbaseConfig::from_store_url(url)?;
            let couchbase = event_backbone_couchbase::Couchbase::connect(config).await?;
            Ok(Arc::new(event_backbone_couchbase::CouchbaseStore::new(
                &couchbase,
            )))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(event_backbone_postgres::PostgresStore::new(
            &postgres(url).await?,
        ))),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(event_backbone_sqlite::SqliteStore::new(
            &sqlite(url).await?,
        ))),
        other => Err(cannot_open("store", other, |s| s.store)),
    }
}

/// Connects to PostgreSQL: the URL's `schema=NAME` parameter (the
/// backend's own, taken out before sqlx reads the rest) names the schema.
#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<event_backbone_postgres::Postgres> {
    let (url, schema) = take_parameter(url, "schema");
    let mut config = event_backbone_postgres::PostgresConfig::from_url(&url)?;
    if let Some(schema) = schema {
        config = config.schema(&schema)?;
    }
    Ok(event_backbone_postgres::Postgres::connect(config).await?)
}

/// Opens a SQLite file.
#[cfg(feature = "sqlite")]
async fn sqlite(url: &str) -> Result<event_backbone_sqlite::Sqlite> {
    let config = event_backbone_sqlite::SqliteConfig::from_url(url)?;
    Ok(event_backbone_sqlite::Sqlite::open(config).await?)
}

/// A URL without its query parameter `name`, and that parameter's value.
#[cfg(feature = "postgres")]
fn take_parameter(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    match rest.is_empty() {
        true => (base.to_owned(), value),
        false => (format!("{base}?{}", rest.join("&")), value),
    }
}

/// A Redis URL without its `partitions=N` query parameter, and `N`: the
/// channel's partitions (`RedisStreamChannel::partitions`), which the
/// connection does not know of.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn partitions_of(url: &str) -> Result<(String, Option<u16>)> {
    // The query follows the host: a password (before the last `@`) may
    // hold a `?` of its own.
    let host_at = url.rfind('@').map_or(0, |at| at + 1);
    let Some(mark) = url[host_at..].find('?') else {
        return Ok((url.to_owned(), None));
    };
    let (address, query) = (&url[..host_at + mark], &url[host_at + mark + 1..]);
    let mut partitions = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("partitions=") {
            Some(n) => {
                partitions = Some(n.parse::<u16>().map_err(|_| Error::Config {
                    what: "channel",
                    reason: format!(
                        "partitions={n:?} in the URL: expected a number of partitions, 1 to 1024"
                    ),
                })?)
            }
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        address.to_owned()
    } else {
        format!("{address}?{}", kept.join("&"))
    };
    Ok((url, partitions))
}

/// The scheme of a URL: `scheme://...`, or a bare `scheme:` (`memory:`).
fn scheme<'a>(url: &'a str, what: &'static str) -> Result<&'a str> {
    let valid = |scheme: &str| {
        scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    };
    match url.split_once(':') {
        // `sqlite:` takes a path: `sqlite:events.db`.
        Some((scheme, rest))
            if valid(scheme)
                && (rest.is_empty() || rest.starts_with("//") || scheme == "sqlite") =>
        {
            Ok(scheme)
        }
        _ => Err(Error::Config {
            what,
            reason: format!(
                "{:?} is not a URL: expected scheme://..., e.g. redis://127.0.0.1:6379",
                event_backbone_core::config::redact_url(url)
            ),
        }),
    }
}

/// Why this build cannot open `scheme` as a `what`.
fn cannot_open(what: &'static str, scheme: &str, names: fn(&Scheme) -> bool) -> Error {
    let reason = match SCHEMES.iter().find(|s| s.name == scheme) {
        Some(s) if !names(s) => {
            let other = if what == "store" { "stream" } else { "store" };
            format!("{scheme}:// names a {other}, not a {what}")
        }
        Some(Scheme {
            feature: Some(feature),
            ..
        }) => format!("{scheme}:// needs the `{feature}` feature of event-backbone"),
        _ => {
            let here: Vec<String> = SCHEMES
                .iter()
                .filter(|s| names(s) && s.enabled)
                .map(|s| format!("{}://", s.name))
                .collect();
            format!(
                "no backend for {scheme}://; this build opens a {what} from {}",
                here.join(", ")
            )
        }
    };
    Error::Config { what, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_come_out_of_the_url() {
        assert_eq!(
            partitions_of("redis://h:1/0?partitions=4&protocol=resp3").unwrap(),
            ("redis://h:1/0?protocol=resp3".to_owned(), Some(4))
        );
        assert_eq!(
            partitions_of("redis://h:1?partitions=8").unwrap(),
            ("redis://h:1".to_owned(), Some(8))
        );
        assert_eq!(
            partitions_of("redis://h").unwrap(),
            ("redis://h".to_owned(), None)
        );
        assert_eq!(
            partitions_of("redis://:p?w&x@h:1?partitions=2").unwrap(),
            ("redis://:p?w&x@h:1".to_owned(), Some(2)),
            "a password's ? is not the query's"
        );
        let bad = partitions_of("redis://h?partitions=many")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("\"many\"") && bad.contains("number of partitions"),
            "{bad}"
        );
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_schema_comes_out_of_a_postgres_url() {
        assert_eq!(
            take_parameter("postgres://u@h/db?sslmode=prefer&schema=shop", "schema"),
            (
                "postgres://u@h/db?sslmode=prefer".to_owned(),
                Some("shop".to_owned())
            )
        );
        assert_eq!(
            take_parameter("postgres://u@h/db?schema=shop", "schema"),
            ("postgres://u@h/db".to_owned(), Some("shop".to_owned()))
        );
        assert_eq!(
            take_parameter("postgres://u@h/db", "schema"),
            ("postgres://u@h/db".to_owned(), None)
        );
    }

    #[tokio::test]
    async fn schemes_name_what_they_open_and_say_what_is_missing() {
        let not_a_url = open_channel("127.0.0.1:6379")
            .await
            .unwrap_err()
            .to_string();
        assert!(not_a_url.contains("not a URL"), "{not_a_url}");
        let kafka_store = open_store("kafka://k:9092").await.unwrap_err().to_string();
        assert!(
            kafka_store.contains("names a stream, not a store"),
            "{kafka_store}"
        );
        let unknown = open_channel("nats://n:4222").await.unwrap_err().to_string();
        assert!(
            unknown.contains("nats://") && unknown.contains("memory://"),
            "{unknown}"
        );
        if !cfg!(feature = "redis") {
            let off = open_store("redis://:pw@h:1").await.unwrap_err().to_string();
            assert!(off.contains("`redis` feature"), "{off}");
            assert!(!off.contains("pw"), "{off}");
        }
        if !cfg!(feature = "sqlite") {
            let off = open_channel("sqlite:events.db")
                .await
                .unwrap_err()
                .to_string();
            assert!(off.contains("`sqlite` feature"), "{off}");
        }
        if !cfg!(feature = "kafka") {
            let off = open_channel("kafka://k:9092")
                .await
                .unwrap_err()
                .to_string();
            assert!(off.contains("`kafka` feature"), "{off}");
        }
    }
}
