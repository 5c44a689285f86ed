    /// Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is set (with
    /// `REDIS_EVENT_SOURCE_PASS` if it needs one), else in memory.
    pub async fn from_env() -> Result<Self, Error> {
        use event_backbone::redis::{Redis, RedisHashStore, RedisStreamChannel};
        if std::env::var_os("REDIS_EVENT_SOURCE_ENDPOINT").is_none() {
            return Ok(Self::in_memory());
        }
        let redis = Redis::from_env().await?;
        Ok(Self {
            channel: Arc::new(RedisStreamChannel::new(&redis)),
            store: Arc::new(RedisHashStore::new(&redis)),
        })
    }
