//! What the engine tests share: the seed policy's reader operations and a policy input.
#![allow(dead_code, clippy::unwrap_used)]

use s3_authz::AuthzInput;
use s3_core::S3Operation;
use serde_json::json;

/// The operations the seed policy lets a `reader` perform.
pub(crate) const READER_OPS: &[S3Operation] = &[
    S3Operation::ListBuckets,
    S3Operation::HeadBucket,
    S3Operation::ListObjects,
    S3Operation::ListObjectsV2,
    S3Operation::GetObject,
    S3Operation::HeadObject,
    S3Operation::GetObjectTagging,
];

/// The input of `alice` in `groups` doing `op` on `data/a/b.csv`.
pub(crate) fn input(groups: &[&str], op: S3Operation) -> AuthzInput {
    AuthzInput {
        user: "alice".to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: json!({}),
        role: None,
        action: op.name().to_owned(),
        iam_action: op.iam_action().unwrap().to_owned(),
        operation: op.name().to_owned(),
        bucket: Some("data".to_owned()),
        key: Some("a/b.csv".to_owned()),
        path: Some("data/a/b.csv".to_owned()),
        prefix: None,
        version_id: None,
        source: None,
        method: "GET".to_owned(),
        auth: "sigv4",
        source_ip: None,
    }
}
