//! The clients of one Kafka cluster, shared by the channels made from it:
//! an idempotent producer, an admin client (topics) and a group-less
//! consumer, the reader (metadata, watermarks, replay, lookups).

use std::fmt;
use std::sync::{Arc, Mutex};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;

use crate::config::KafkaConfig;
use crate::error::{protocol, Error, Result};

/// A connection to one Kafka cluster. Cheap to clone; clones share the
/// clients.
///
/// ```no_run
/// use event_backbone_kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let kafka = Kafka::connect(KafkaConfig::from_env()?).await?;
/// let channel = KafkaStreamChannel::new(&kafka);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Kafka {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Blocking calls, made on the blocking pool one at a time.
    reader: Mutex<BaseConsumer>,
}

impl Kafka {
    /// Creates the clients and checks that a broker answers (within the
    /// request timeout), so that a wrong address fails here, clearly, as
    /// [`Error::Connect`].
    pub async fn connect(config: KafkaConfig) -> Result<Self> {
        // Defaults that a setting of the user's overrides.
        let producer: FutureProducer = config
            .client_config(&[("enable.idempotence", "true")])
            .create()
            .map_err(Error::Client)?;
        let admin: AdminClient<DefaultClientContext> =
            config.client_config(&[]).create().map_err(Error::Client)?;
        let reader: BaseConsumer = config
            .client_config(&[
                ("enable.auto.commit", "false"),
                ("allow.auto.create.topics", "false"),
                ("group.id", "event-backbone-reader"),
            ])
            .create()
            .map_err(Error::Client)?;
        let kafka = Self {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                reader: Mutex::new(reader),
            }),
        };
        let probe = kafka.inner.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let reader = probe.reader.lock().expect("reader");
            // One topic's metadata, not all of them: cheap on a busy cluster.
            reader
                .fetch_metadata(Some("event-backbone.probe"), probe.config.timeout)
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        answered.map_err(|source| Error::Connect {
            address: kafka.inner.config.brokers().to_owned(),
            source,
        })?;
        Ok(kafka)
    }

    /// Connects with [`KafkaConfig::from_env`] (`KAFKA_EVENT_SOURCE_BROKERS`).
    pub async fn from_env() -> Result<Self> {
        Self::connect(KafkaConfig::from_env()?).await
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    pub(crate) fn producer(&self) -> &FutureProducer {
        &self.inner.producer
    }

    pub(crate) fn admin(&self) -> &AdminClient<DefaultClientContext> {
        &self.inner.admin
    }

    /// Runs a blocking call on the group-less reader, off the async threads.
    pub(crate) async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer, &KafkaConfig) -> event_backbone_core::Result<T> + Send + 'static,
    ) -> event_backbone_core::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let reader = inner.reader.lock().expect("reader");
            f(&reader, &inner.config)
        })
        .await
        .map_err(|e| protocol("reading without a group", e.to_string()))?
    }
}

impl fmt::Debug for Kafka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kafka")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
