//! [`Couchbase`]: a cluster connection and the collection of payloads,
//! checked at connect.

use std::fmt;
use std::sync::Arc;

use couchbase::authenticator::PasswordAuthenticator;
use couchbase::cluster::Cluster;
use couchbase::collection::Collection;
use couchbase::error::ErrorKind;
use couchbase::options::cluster_options::ClusterOptions;

use crate::config::CouchbaseConfig;
use crate::error::{Error, Result};

/// A connection to Couchbase: the SDK's cluster and the configured
/// collection. Cheap to clone; stores are made from it.
///
/// ```no_run
/// use event_backbone_couchbase::{Couchbase, CouchbaseConfig, CouchbaseStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let couchbase = Couchbase::connect(CouchbaseConfig::from_env()?).await?;
/// let store = CouchbaseStore::new(&couchbase);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Couchbase {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    collection: Collection,
    config: CouchbaseConfig,
}

/// The key `connect` reads to check the collection answers.
const PROBE_KEY: &str = "event-backbone:connect-probe";

impl Couchbase {
    /// Connects and reads one key of the collection, so that a wrong
    /// address, password, bucket or collection fails here with
    /// [`Error::Connect`], within the configured connect timeout.
    pub async fn connect(config: CouchbaseConfig) -> Result<Self> {
        if config.bucket.is_empty() {
            return Err(Error::NoBucket);
        }
        let fail = |reason: String| Error::Connect {
            address: config.connstr.clone(),
            keyspace: config.keyspace(),
            reason,
        };
        let options = ClusterOptions::new(
            PasswordAuthenticator::new(config.user.clone(), config.password.expose().to_owned())
                .into(),
        );
        let connecting = async {
            let cluster = Cluster::connect(config.connstr.as_str(), options)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let collection = cluster
                .bucket(config.bucket.clone())
                .scope(config.scope.clone())
                .collection(config.collection.clone());
            match collection.get(PROBE_KEY, None).await {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::DocumentNotFound) => {}
                Err(e) => return Err(fail(e.to_string())),
            }
            Ok((cluster, collection))
        };
        let (cluster, collection) = tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| {
                fail(format!(
                    "no answer within {:?} (is the server up, and are the user, password, bucket and collection right?)",
                    config.connect_timeout
                ))
            })??;
        Ok(Self {
            inner: Arc::new(Inner {
                cluster,
                collection,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CouchbaseConfig {
        &self.inner.config
    }

    /// The SDK's cluster, for what this crate does not do.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The collection of the payloads.
    pub fn collection(&self) -> &Collection {
        &self.inner.collection
    }
}

impl fmt::Debug for Couchbase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Couchbase")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
