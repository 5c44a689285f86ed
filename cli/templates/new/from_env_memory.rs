    /// In memory (in this process only: the producer and the consumer
    /// binaries each have their own).
    pub async fn from_env() -> Result<Self, Error> {
        Ok(Self::in_memory())
    }
