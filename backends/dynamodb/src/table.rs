//! Creating the table for development: the key schema, on-demand billing
//! and TTL, waited for until active.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use event_backbone_core::{Error as CoreError, Result};

use crate::error::{backend, code};
use crate::item::{EXPIRES_AT, KEY, SORT};
use crate::BACKEND;

/// How long `ensure` waits for a new table to become active.
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

pub(crate) async fn ensure(client: &Client, table: &str) -> Result<()> {
    let action = || format!("creating table {table:?}");
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition(KEY))
        .attribute_definitions(definition(SORT))
        .key_schema(key(KEY, KeyType::Hash))
        .key_schema(key(SORT, KeyType::Range))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if code(&e) == Some("ResourceInUseException") => {}
        Err(e) => return Err(backend(action(), e)),
    }
    let description = wait_active(client, table).await?;
    check_schema(table, &description)?;
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| backend(format!("reading the TTL of table {table:?}"), e))?;
    let on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !on {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(|e| CoreError::permanent(BACKEND, action(), e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| backend(format!("enabling TTL on table {table:?}"), e))?;
    }
    Ok(())
}

async fn wait_active(client: &Client, table: &str) -> Result<TableDescription> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WITHIN;
    loop {
        let answer = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend(format!("describing table {table:?}"), e))?;
        if let Some(t) = answer.table {
            if t.table_status() == Some(&TableStatus::Active) {
                return Ok(t);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CoreError::transient(
                BACKEND,
                format!("creating table {table:?}"),
                format!("not active after {ACTIVE_WITHIN:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An existing table must have the store's key schema.
fn check_schema(table: &str, t: &TableDescription) -> Result<()> {
    let schema: Vec<(&str, &KeyType)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    let expected = [(KEY, &KeyType::Hash), (SORT, &KeyType::Range)];
    let strings = t.attribute_definitions().iter().all(|d| {
        ![KEY, SORT].contains(&d.attribute_name()) || d.attribute_type() == &ScalarAttributeType::S
    });
    if schema.len() == 2 && expected.iter().all(|e| schema.contains(e)) && strings {
        return Ok(());
    }
    Err(CoreError::permanent(
        BACKEND,
        format!("using table {table:?}"),
        format!(
            "its key schema is {schema:?}; the store needs partition key {KEY:?} (string) and \
             sort key {SORT:?} (string): use another table, or see the README for the definition"
        ),
    ))
}

fn definition(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type are set")
}
