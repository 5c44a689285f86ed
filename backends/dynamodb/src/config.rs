//! How to reach DynamoDB: the table, and where the AWS chain does not
//! decide, the endpoint, region and credentials.

use std::fmt;
use std::time::Duration;

use event_backbone_core::config::{env_var, Secret};

use crate::error::{Error, Result};

/// Environment variable naming the table of payloads.
pub const TABLE_VAR: &str = "DYNAMODB_EVENT_SOURCE_TABLE";
/// Environment variable overriding the endpoint (DynamoDB Local, a VPC
/// endpoint); the SDK's own `AWS_ENDPOINT_URL_DYNAMODB` works too.
pub const ENDPOINT_VAR: &str = "DYNAMODB_EVENT_SOURCE_ENDPOINT";
/// The table of payloads unless another is set.
pub const DEFAULT_TABLE: &str = "event_backbone_payloads";

/// Which table, and how to reach it. Region and credentials come from the
/// standard AWS chain (`AWS_REGION`, `AWS_PROFILE`, `AWS_ACCESS_KEY_ID`,
/// web identity, instance roles, ...) unless set here; the endpoint from
/// [`ENDPOINT_VAR`], `AWS_ENDPOINT_URL_DYNAMODB` or the region.
///
/// The secret access key never appears in `Debug` output, errors or logs.
///
/// ```
/// use std::time::Duration;
/// use event_backbone_dynamodb::DynamoConfig;
/// let config = DynamoConfig::from_url("dynamodb://shop_payloads?region=eu-west-1")?
///     .endpoint("http://127.0.0.1:8000")?
///     .credentials("AKIDLOCAL", "s3cret")
///     .operation_timeout(Duration::from_secs(5));
/// assert_eq!(config.table_name(), "shop_payloads");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), event_backbone_dynamodb::Error>(())
/// ```
#[derive(Clone)]
pub struct DynamoConfig {
    table: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) credentials: Option<(String, Secret)>,
    pub(crate) operation_timeout: Duration,
    pub(crate) concurrency: usize,
    pub(crate) batch_deadline: Duration,
    pub(crate) consistent_reads: bool,
}

impl DynamoConfig {
    /// The table `table`, everything else from the AWS chain.
    pub fn new(table: &str) -> Result<Self> {
        Ok(Self {
            table: check_table(table)?,
            endpoint: None,
            region: None,
            credentials: None,
            operation_timeout: Duration::from_secs(10),
            concurrency: 16,
            batch_deadline: Duration::from_secs(10),
            consistent_reads: true,
        })
    }

    /// From `dynamodb://TABLE[?region=REGION&endpoint=URL]`: the table,
    /// and optionally the region and an endpoint (`http://127.0.0.1:8000`
    /// for DynamoDB Local). `dynamodb://` alone is [`DEFAULT_TABLE`].
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidAddress {
            address: url.to_owned(),
            reason,
        };
        let rest = url.strip_prefix("dynamodb://").ok_or_else(|| {
            invalid("expected dynamodb://TABLE[?region=REGION&endpoint=URL]".to_owned())
        })?;
        let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
        if table.contains('@') || table.contains('/') {
            return Err(invalid(
                "the part after dynamodb:// is a table name; credentials come from the AWS chain or DynamoConfig::credentials".to_owned(),
            ));
        }
        let mut config = Self::new(if table.is_empty() {
            DEFAULT_TABLE
        } else {
            table
        })?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "region" if !value.is_empty() => config.region = Some(value.to_owned()),
                "endpoint" => config = config.endpoint(value)?,
                other => {
                    return Err(invalid(format!(
                    "unknown setting {other:?} (or no value); expected region=... or endpoint=..."
                )))
                }
            }
        }
        Ok(config)
    }

    /// From the environment: the table from [`TABLE_VAR`] (else
    /// [`DEFAULT_TABLE`]), the endpoint from [`ENDPOINT_VAR`] if set;
    /// region and credentials from the AWS chain. No variable is required:
    /// the AWS chain alone names a real DynamoDB.
    pub fn from_env() -> Result<Self> {
        let table = env_var(TABLE_VAR).unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        let config = Self::new(&table)?;
        match env_var(ENDPOINT_VAR) {
            Some(endpoint) => config.endpoint(&endpoint),
            None => Ok(config),
        }
    }

    /// The table of payloads.
    pub fn table(mut self, name: &str) -> Result<Self> {
        self.table = check_table(name)?;
        Ok(self)
    }

    /// Sends requests to `url` (`http://host:port` or `https://host`)
    /// instead of the region's endpoint.
    pub fn endpoint(mut self, url: &str) -> Result<Self> {
        let ok = ["http://", "https://"]
            .iter()
            .any(|s| url.strip_prefix(s).is_some_and(|h| !h.is_empty()));
        if !ok || url.contains('@') {
            return Err(Error::InvalidAddress {
                address: url.to_owned(),
                reason: "an endpoint is http://host:port or https://host, without credentials"
                    .to_owned(),
            });
        }
        self.endpoint = Some(url.to_owned());
        Ok(self)
    }

    /// The region (default: the AWS chain's; `us-east-1` when it has none
    /// and an endpoint is set, as DynamoDB Local takes any).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials instead of the AWS chain's.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<Secret>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// How long one request may take, retries by the SDK included
    /// (default 10 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Requests one batch call has in flight at once (default 16).
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// How long a batch keeps retrying what DynamoDB left unprocessed
    /// (throttling) before it fails with a transient error naming what was
    /// left (default 10 s).
    pub fn batch_deadline(mut self, deadline: Duration) -> Self {
        self.batch_deadline = deadline;
        self
    }

    /// Whether reads are strongly consistent (default true: a consumer
    /// reads a payload right after the producer wrote it; eventually
    /// consistent reads cost half and may miss it).
    pub fn consistent_reads(mut self, yes: bool) -> Self {
        self.consistent_reads = yes;
        self
    }

    /// The table of payloads.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Where requests go: the endpoint if set, else `the AWS chain`.
    pub fn address(&self) -> String {
        match (&self.endpoint, &self.region) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => format!("DynamoDB in {r}"),
            (None, None) => "DynamoDB (region from the AWS chain)".to_owned(),
        }
    }
}

fn check_table(name: &str) -> Result<String> {
    let ok = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "3 to 255 characters among a-z, A-Z, 0-9, _, - and .",
        })
    }
}

impl fmt::Debug for DynamoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoConfig")
            .field("table", &self.table)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, secret)| (id, secret)),
            )
            .field("operation_timeout", &self.operation_timeout)
            .field("concurrency", &self.concurrency)
            .field("batch_deadline", &self.batch_deadline)
            .field("consistent_reads", &self.consistent_reads)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_table_region_and_endpoint() {
        let c = DynamoConfig::from_url(
            "dynamodb://orders.payloads?region=eu-west-1&endpoint=http://127.0.0.1:8000",
        )
        .unwrap();
        assert_eq!(c.table_name(), "orders.payloads");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.address(), "http://127.0.0.1:8000");
        assert_eq!(
            DynamoConfig::from_url("dynamodb://").unwrap().table_name(),
            DEFAULT_TABLE
        );
    }

    #[test]
    fn bad_urls_and_names_say_what_is_expected() {
        for (bad, expected) in [
            ("redis://t", "expected dynamodb://TABLE"),
            (
                "dynamodb://id:key@table",
                "credentials come from the AWS chain",
            ),
            ("dynamodb://tab?color=red", "unknown setting \"color\""),
            (
                "dynamodb://table?endpoint=localhost:8000",
                "http://host:port",
            ),
            ("dynamodb://ab", "3 to 255 characters"),
            ("dynamodb://a b c", "\"a b c\""),
        ] {
            let err = DynamoConfig::from_url(bad).unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = DynamoConfig::new("payloads")
            .unwrap()
            .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI");
        let debug = format!("{c:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
        assert!(
            debug.contains("AKIDEXAMPLE") && debug.contains("***"),
            "{debug}"
        );
    }

    #[test]
    fn from_env_reads_table_and_endpoint() {
        // The only test of this binary that touches the variables.
        std::env::remove_var(TABLE_VAR);
        std::env::remove_var(ENDPOINT_VAR);
        let c = DynamoConfig::from_env().unwrap();
        assert_eq!(c.table_name(), DEFAULT_TABLE);
        assert_eq!(c.endpoint, None);
        std::env::set_var(TABLE_VAR, " events ");
        std::env::set_var(ENDPOINT_VAR, "http://dynamo:8000");
        let c = DynamoConfig::from_env();
        std::env::set_var(ENDPOINT_VAR, "dynamo:8000");
        let bad = DynamoConfig::from_env().unwrap_err().to_string();
        std::env::remove_var(TABLE_VAR);
        std::env::remove_var(ENDPOINT_VAR);
        let c = c.unwrap();
        assert_eq!(c.table_name(), "events");
        assert_eq!(c.endpoint.as_deref(), Some("http://dynamo:8000"));
        assert!(bad.contains("\"dynamo:8000\""), "{bad}");
    }
}
