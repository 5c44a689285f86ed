//! [`Dynamo`]: an SDK client on DynamoDB, checked at connect.

use std::fmt;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, ProvideCredentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::Client;

use crate::config::DynamoConfig;
use crate::error::{code, Error, Result};

/// The region when neither the configuration nor the AWS chain names one
/// and an endpoint is set (DynamoDB Local takes any).
const LOCAL_REGION: &str = "us-east-1";

/// A connection to DynamoDB: the SDK's client (with its connection pool)
/// and the configuration. Cheap to clone; stores are made from it.
///
/// ```no_run
/// use event_backbone_dynamodb::{Dynamo, DynamoConfig, DynamoStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let dynamo = Dynamo::connect(DynamoConfig::from_env()?).await?;
/// let store = DynamoStore::new(&dynamo);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dynamo {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: DynamoConfig,
}

impl Dynamo {
    /// Builds the client from the AWS chain and the configuration, and
    /// checks that DynamoDB answers (`DescribeTable` of the table; a table
    /// that does not exist yet is fine, [`DynamoStore::ensure_table`]
    /// creates it), so that a wrong endpoint or credentials fail here, with
    /// [`Error::Connect`] ([`Error::NoCredentials`] when the AWS chain finds
    /// none).
    ///
    /// [`DynamoStore::ensure_table`]: crate::DynamoStore::ensure_table
    pub async fn connect(config: DynamoConfig) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(config.operation_timeout)
                .build(),
        );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.expose().to_owned(),
                None,
                None,
                "event-backbone",
            ));
        }
        let shared = loader.load().await;
        // Credentials first: without them the SDK's answer is a long chain
        // of every provider it tried.
        if let Some(provider) = shared.credentials_provider() {
            if let Err(e) = provider.provide_credentials().await {
                let found = !matches!(e, CredentialsError::CredentialsNotLoaded(_));
                return Err(Error::NoCredentials {
                    address: config.address(),
                    what: if found {
                        "AWS credentials could not be loaded"
                    } else {
                        "no AWS credentials found"
                    },
                    reason: e.to_string(),
                });
            }
        }
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
            if shared.region().is_none() {
                builder = builder.region(Region::new(LOCAL_REGION));
            }
        }
        let client = Client::from_conf(builder.build());
        let answer = client
            .describe_table()
            .table_name(config.table_name())
            .send()
            .await;
        match answer {
            Ok(_) => {}
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => {
                return Err(Error::Connect {
                    address: config.address(),
                    message: DisplayErrorContext(&e).to_string(),
                })
            }
        }
        Ok(Self {
            inner: Arc::new(Inner { client, config }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DynamoConfig {
        &self.inner.config
    }

    /// The SDK's client, for what this crate does not do.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl fmt::Debug for Dynamo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dynamo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
