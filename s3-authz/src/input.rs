//! [`AuthzInput`]: the policy input of one resource (the Rego `input` document).

use s3_core::{Principal, Resource, ResourceAccess, S3Request};
use serde::Serialize;

/// The object a copy reads, in the input of the destination's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceObject {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
}

/// What a policy sees about one resource of one request (architecture §7):
///
/// ```json
/// {"user": "alice", "groups": ["reader"], "claims": {}, "role": null,
///  "action": "GetObject", "iam_action": "s3:GetObject", "operation": "GetObject",
///  "bucket": "data", "key": "a/b.csv", "path": "data/a/b.csv", "prefix": null,
///  "version_id": null, "source": null, "method": "GET", "auth": "sigv4",
///  "source_ip": null}
/// ```
///
/// `action` is the operation for its main resource (`GetObject`, `ListObjectsV2`) and the
/// IAM action's name for the others (`GetObject` for the source of a `CopyObject`,
/// `DeleteObject` for each key of a `DeleteObjects`), so a policy on operation names, such as
/// the S3 Sentinel seed policy, reads every resource the way it reads the main one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthzInput {
    /// The principal's subject.
    pub user: String,
    /// The principal's groups.
    pub groups: Vec<String>,
    /// Extra claims of the principal.
    pub claims: serde_json::Value,
    /// The assumed role of temporary credentials.
    pub role: Option<String>,
    /// The action on this resource (see above).
    pub action: String,
    /// The IAM action on this resource (`s3:GetObject`, `s3:ListBucket`...).
    pub iam_action: String,
    /// The request's operation.
    pub operation: String,
    /// The bucket, if the resource is one or is in one.
    pub bucket: Option<String>,
    /// The object key.
    pub key: Option<String>,
    /// `bucket/key` or `bucket`.
    pub path: Option<String>,
    /// The prefix of an object listing.
    pub prefix: Option<String>,
    /// The object version the request names.
    pub version_id: Option<String>,
    /// The object a copy reads (in the input of the destination).
    pub source: Option<SourceObject>,
    /// The HTTP method.
    pub method: String,
    /// How the principal authenticated (`sigv4`, `presigned`, `jwt`, `anonymous`).
    pub auth: &'static str,
    /// The client's IP address, from the request's [`s3_core::ClientAddr`] when the server
    /// records it.
    pub source_ip: Option<String>,
}

impl AuthzInput {
    /// The input for `access`, the `index`-th resource of `s3` (0 is the main one).
    pub fn for_resource(
        principal: &Principal,
        s3: &S3Request,
        method: &http::Method,
        access: &ResourceAccess,
        index: usize,
    ) -> Self {
        let action = if index == 0 {
            s3.operation.name().to_owned()
        } else {
            action_name(access.iam_action).to_owned()
        };
        let mut input = Self::base(principal, s3, method, action, access.iam_action);
        match &access.resource {
            Resource::Service => {}
            Resource::Bucket { bucket, prefix } => {
                input.bucket = Some(bucket.clone());
                input.path = Some(bucket.clone());
                input.prefix.clone_from(prefix);
            }
            Resource::Object {
                bucket,
                key,
                version_id,
            } => input.set_object(bucket, key, version_id.clone()),
            Resource::ObjectsInBody { bucket } => {
                input.bucket = Some(bucket.clone());
                input.path = Some(bucket.clone());
            }
        }
        if index == 0
            && let Some(src) = &s3.copy_source
        {
            input.source = Some(SourceObject {
                bucket: src.bucket.clone(),
                key: src.key.clone(),
            });
        }
        input
    }

    /// The input for one key of a `DeleteObjects` body (`s3:DeleteObject`, or
    /// `s3:DeleteObjectVersion` with a version).
    pub fn for_deleted_key(
        principal: &Principal,
        s3: &S3Request,
        method: &http::Method,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
    ) -> Self {
        let iam_action = if version_id.is_some() {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        let mut input = Self::base(principal, s3, method, "DeleteObject".to_owned(), iam_action);
        input.set_object(bucket, key, version_id);
        input
    }

    /// The resource for audit records and error messages: `bucket/key`, `bucket` or `*`.
    pub fn resource(&self) -> String {
        self.path.clone().unwrap_or_else(|| "*".to_owned())
    }

    fn base(
        principal: &Principal,
        s3: &S3Request,
        method: &http::Method,
        action: String,
        iam_action: &str,
    ) -> Self {
        Self {
            user: principal.subject.clone(),
            groups: principal.groups.clone(),
            claims: principal.claims.clone(),
            role: principal.session.as_ref().map(|s| s.role_arn.clone()),
            action,
            iam_action: iam_action.to_owned(),
            operation: s3.operation.name().to_owned(),
            bucket: None,
            key: None,
            path: None,
            prefix: None,
            version_id: None,
            source: None,
            method: method.as_str().to_owned(),
            auth: principal.auth.as_str(),
            source_ip: None,
        }
    }

    fn set_object(&mut self, bucket: &str, key: &str, version_id: Option<String>) {
        self.bucket = Some(bucket.to_owned());
        self.key = Some(key.to_owned());
        self.path = Some(format!("{bucket}/{key}"));
        self.version_id = version_id;
    }
}

/// The operation name a secondary resource's IAM action stands for: `s3:GetObject` →
/// `GetObject`; a version's action names the operation without version (`GetObject` for
/// `s3:GetObjectVersion`), as the main resource's `action` does — versions show in
/// `iam_action` and `version_id`.
fn action_name(iam_action: &str) -> &str {
    let name = iam_action.strip_prefix("s3:").unwrap_or(iam_action);
    match name {
        "GetObjectVersion" => "GetObject",
        "DeleteObjectVersion" => "DeleteObject",
        other => other,
    }
}
