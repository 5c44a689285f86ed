    /// Kafka and Redis when `KAFKA_EVENT_SOURCE_BROKERS` and
    /// `REDIS_EVENT_SOURCE_ENDPOINT` are set, else in memory.
    pub async fn from_env() -> Result<Self, Error> {
        use event_backbone::kafka::{Kafka, KafkaConfig, KafkaStreamChannel};
        use event_backbone::redis::{Redis, RedisHashStore};
        let set = |name: &str| std::env::var_os(name).is_some();
        if !set("KAFKA_EVENT_SOURCE_BROKERS") {
            return Ok(Self::in_memory());
        }
        if !set("REDIS_EVENT_SOURCE_ENDPOINT") {
            return Err("Kafka carries the stream; set REDIS_EVENT_SOURCE_ENDPOINT for the payload store".into());
        }
        let kafka = Kafka::connect(KafkaConfig::from_env()?).await?;
        let redis = Redis::from_env().await?;
        Ok(Self {
            channel: Arc::new(KafkaStreamChannel::new(&kafka)),
            store: Arc::new(RedisHashStore::new(&redis)),
        })
    }
