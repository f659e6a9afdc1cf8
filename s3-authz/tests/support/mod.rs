//! What the engine tests share: the seed policy's reader operations and a policy input.
#![allow(dead_code, clippy::unwrap_used)]

use s3_authz::{Authorizer, AuthzInput, Decision};
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

/// The seed policy's contract, whatever the engine: `admin` may do every operation,
/// `reader` exactly [`READER_OPS`] (any other answer is a deny, not an error), and a user
/// without a group — or with groups that merely resemble the policy's — nothing.
pub(crate) fn assert_seed_contract(authz: &dyn Authorizer) {
    assert!(S3Operation::ALL.len() > 90);
    let mut reader_allowed = Vec::new();
    for op in S3Operation::ALL {
        assert_eq!(
            authz.authorize(&input(&["admin"], *op)).unwrap(),
            Decision::Allow,
            "admin {op}"
        );
        let decision = authz.authorize(&input(&["reader"], *op)).unwrap();
        if decision.is_allow() {
            reader_allowed.push(*op);
        } else {
            assert_eq!(decision, Decision::Deny, "reader {op}");
        }
        for groups in [&[][..], &["Admin", "readers"][..]] {
            assert_eq!(
                authz.authorize(&input(groups, *op)).unwrap(),
                Decision::Deny,
                "{groups:?} {op}"
            );
        }
    }
    assert_eq!(reader_allowed, READER_OPS);
}
