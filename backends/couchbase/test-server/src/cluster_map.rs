//! The configurations GET_CLUSTER_CONFIG answers with: one node (this
//! server) holding every vBucket, no replicas.

use serde_json::{json, Value};

/// vBuckets in a bucket's map, as in Couchbase Server on Linux.
pub const VBUCKETS: usize = 1024;

/// The management (HTTP) port the configurations name. Nothing listens
/// there: the SDKs need a value (the Rust SDK names nodes after it) and
/// use HTTP only when KV bootstrap fails.
pub const MGMT_PORT: u16 = 8091;

/// The cluster-wide configuration (no bucket selected).
pub fn cluster(host: &str, port: u16) -> Value {
    json!({
        "rev": 1,
        "revEpoch": 1,
        "nodesExt": [{"services": {"kv": port, "mgmt": MGMT_PORT}, "thisNode": true, "hostname": host}],
        "clusterCapabilitiesVer": [1, 0],
        "clusterCapabilities": {"n1ql": []},
    })
}

/// The configuration of `bucket`.
pub fn bucket(host: &str, port: u16, bucket: &str) -> Value {
    let mut config = cluster(host, port);
    let extra = json!({
        "name": bucket,
        "uuid": format!("{:032x}", fnv1a(bucket.as_bytes())),
        "nodeLocator": "vbucket",
        "nodes": [{"hostname": format!("{host}:{MGMT_PORT}"), "ports": {"direct": port}}],
        "vBucketServerMap": {
            "hashAlgorithm": "CRC",
            "numReplicas": 0,
            "serverList": [format!("{host}:{port}")],
            "vBucketMap": vec![[0]; VBUCKETS],
        },
        "bucketCapabilitiesVer": "",
        "bucketCapabilities": ["collections", "couchapi", "dcp", "cbhello", "touch", "cccp", "xattr", "nodesExt"],
    });
    let (Value::Object(c), Value::Object(e)) = (&mut config, extra) else {
        unreachable!("both are objects")
    };
    c.extend(e);
    config
}

/// A stable id for a bucket's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_map_puts_every_vbucket_on_this_node() {
        let c = bucket("127.0.0.1", 11210, "b");
        assert_eq!(c["name"], "b");
        assert_eq!(c["nodesExt"][0]["services"]["kv"], 11210);
        assert_eq!(
            c["nodesExt"][0]["services"]["mgmt"], MGMT_PORT,
            "the Rust SDK needs one"
        );
        assert_eq!(c["nodes"][0]["ports"]["direct"], 11210);
        assert_eq!(c["vBucketServerMap"]["serverList"][0], "127.0.0.1:11210");
        let map = c["vBucketServerMap"]["vBucketMap"].as_array().unwrap();
        assert_eq!(map.len(), VBUCKETS);
        assert!(map.iter().all(|v| v == &json!([0])));
        assert!(cluster("127.0.0.1", 1).get("vBucketServerMap").is_none());
    }
}
