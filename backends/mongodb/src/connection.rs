//! [`Mongo`]: a client on a MongoDB deployment, checked at connect.

use std::fmt;
use std::sync::Arc;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::config::MongoConfig;
use crate::error::{Error, Result};

/// A connection to MongoDB: the driver's client (with its pool) and the
/// configuration. Cheap to clone; stores are made from it.
///
/// ```no_run
/// use event_backbone_mongodb::{Mongo, MongoConfig, MongoStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mongo = Mongo::connect(MongoConfig::from_env()?).await?;
/// let store = MongoStore::new(&mongo);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Mongo {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: MongoConfig,
}

impl Mongo {
    /// Connects and checks that the server answers (`ping`), so that a
    /// wrong address or password fails here, with [`Error::Connect`].
    pub async fn connect(config: MongoConfig) -> Result<Self> {
        let address = config.address();
        let mut options =
            ClientOptions::parse(config.url())
                .await
                .map_err(|e| Error::InvalidAddress {
                    address: address.clone(),
                    reason: e.to_string().replace(config.url(), &address),
                })?;
        options.app_name = Some(config.app_name.clone());
        options.server_selection_timeout = Some(config.server_selection_timeout);
        if let Some(t) = config.connect_timeout {
            options.connect_timeout = Some(t);
        }
        if let Some(n) = config.max_pool_size {
            options.max_pool_size = Some(n);
        }
        let client = Client::with_options(options).map_err(|e| Error::InvalidAddress {
            address: address.clone(),
            reason: e.to_string(),
        })?;
        client
            .database(config.database_name())
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|source| Error::Connect { address, source })?;
        Ok(Self {
            inner: Arc::new(Inner { client, config }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MongoConfig {
        &self.inner.config
    }

    /// The driver's client, for what this crate does not do.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The configured database.
    pub fn database(&self) -> Database {
        self.inner
            .client
            .database(self.inner.config.database_name())
    }
}

impl fmt::Debug for Mongo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mongo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
