//! Classification: which [`S3Operation`] a request is, from its method, target, query and
//! headers — strictly, so that nothing a backend would read differently gets through.
//!
//! A request is [`S3Operation::Unknown`] when its method does not fit its target, when it
//! names more than one sub-resource, or when it carries a query parameter the operation does
//! not take: a backend could read such a parameter as a sub-resource this gateway did not
//! authorize.

use http::{HeaderMap, Method};

use crate::operation::S3Operation;
use crate::query::Query;

/// What the request path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Service,
    Bucket,
    Object,
}

/// The result of classifying a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) operation: S3Operation,
    /// The sub-resource query parameter that selected the operation (`acl`, `uploadId`...).
    subresource: Option<&'static str>,
    /// Why the request is [`S3Operation::Unknown`]; empty otherwise.
    pub(crate) reason: String,
}

impl Classified {
    fn known(operation: S3Operation, subresource: Option<&'static str>) -> Self {
        Self {
            operation,
            subresource,
            reason: String::new(),
        }
    }

    fn unknown(reason: impl Into<String>) -> Self {
        Self {
            operation: S3Operation::Unknown,
            subresource: None,
            reason: reason.into(),
        }
    }
}

/// Query parameters of presigned URLs — SigV4, and the legacy SigV2 form
/// (`AWSAccessKeyId`, `Expires`, `Signature`) that s3cmd and old SDKs still produce — accepted
/// on every operation: the authentication layer checks (or refuses) them, the re-signing
/// layer strips them.
pub const PRESIGN_PARAMS: &[&str] = &[
    "AWSAccessKeyId",
    "Expires",
    "Signature",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The bucket sub-resources, in the order they are looked for.
const BUCKET_SUBRESOURCES: &[&str] = &[
    "list-type",
    "versions",
    "uploads",
    "location",
    "acl",
    "tagging",
    "versioning",
    "policy",
    "policyStatus",
    "cors",
    "lifecycle",
    "encryption",
    "website",
    "logging",
    "notification",
    "replication",
    "ownershipControls",
    "publicAccessBlock",
    "object-lock",
    "accelerate",
    "requestPayment",
    "analytics",
    "metrics",
    "inventory",
    "intelligent-tiering",
    "delete",
];

/// The object sub-resources.
const OBJECT_SUBRESOURCES: &[&str] = &[
    "uploadId",
    "uploads",
    "acl",
    "tagging",
    "retention",
    "legal-hold",
    "attributes",
    "restore",
    "select",
    "torrent",
];

pub(crate) fn classify(
    method: &Method,
    target: Target,
    query: &Query,
    headers: &HeaderMap,
) -> Classified {
    let classified = match target {
        Target::Service => classify_service(method, query),
        Target::Bucket => classify_bucket(method, query, headers),
        Target::Object => classify_object(method, query, headers),
    };
    if classified.operation == S3Operation::Unknown {
        return classified;
    }
    if let Some(reason) = check_params(&classified, query) {
        return Classified::unknown(reason);
    }
    classified
}

fn classify_service(method: &Method, query: &Query) -> Classified {
    if *method == Method::GET {
        Classified::known(S3Operation::ListBuckets, None)
    } else if *method == Method::POST && query.has("Action") {
        Classified::unknown("STS and other query-protocol actions are not S3 operations")
    } else {
        Classified::unknown(format!("{method} on the service endpoint"))
    }
}

/// The one sub-resource of `known` the query names, or `Err` when it names several.
fn subresource(query: &Query, known: &[&'static str]) -> Result<Option<&'static str>, String> {
    let mut found = None;
    for name in known {
        if query.has(name) {
            if let Some(first) = found {
                return Err(format!(
                    "the request names two sub-resources, `{first}` and `{name}`"
                ));
            }
            found = Some(*name);
        }
    }
    Ok(found)
}

fn has_copy_source(headers: &HeaderMap) -> bool {
    headers.contains_key("x-amz-copy-source")
}

fn classify_bucket(method: &Method, query: &Query, headers: &HeaderMap) -> Classified {
    use S3Operation as Op;
    let sub = match subresource(query, BUCKET_SUBRESOURCES) {
        Ok(sub) => sub,
        Err(reason) => return Classified::unknown(reason),
    };
    let has_id = query.has("id");
    let op = match (method.as_str(), sub) {
        ("GET", None) => Op::ListObjects,
        ("GET", Some("list-type")) => {
            if query.get("list-type") == Some("2") {
                Op::ListObjectsV2
            } else {
                return Classified::unknown("list-type other than 2");
            }
        }
        ("GET", Some("versions")) => Op::ListObjectVersions,
        ("GET", Some("uploads")) => Op::ListMultipartUploads,
        ("GET", Some("location")) => Op::GetBucketLocation,
        ("GET", Some("acl")) => Op::GetBucketAcl,
        ("GET", Some("tagging")) => Op::GetBucketTagging,
        ("GET", Some("versioning")) => Op::GetBucketVersioning,
        ("GET", Some("policy")) => Op::GetBucketPolicy,
        ("GET", Some("policyStatus")) => Op::GetBucketPolicyStatus,
        ("GET", Some("cors")) => Op::GetBucketCors,
        ("GET", Some("lifecycle")) => Op::GetBucketLifecycleConfiguration,
        ("GET", Some("encryption")) => Op::GetBucketEncryption,
        ("GET", Some("website")) => Op::GetBucketWebsite,
        ("GET", Some("logging")) => Op::GetBucketLogging,
        ("GET", Some("notification")) => Op::GetBucketNotificationConfiguration,
        ("GET", Some("replication")) => Op::GetBucketReplication,
        ("GET", Some("ownershipControls")) => Op::GetBucketOwnershipControls,
        ("GET", Some("publicAccessBlock")) => Op::GetPublicAccessBlock,
        ("GET", Some("object-lock")) => Op::GetObjectLockConfiguration,
        ("GET", Some("accelerate")) => Op::GetBucketAccelerateConfiguration,
        ("GET", Some("requestPayment")) => Op::GetBucketRequestPayment,
        ("GET", Some("analytics")) if has_id => Op::GetBucketAnalyticsConfiguration,
        ("GET", Some("analytics")) => Op::ListBucketAnalyticsConfigurations,
        ("GET", Some("metrics")) if has_id => Op::GetBucketMetricsConfiguration,
        ("GET", Some("metrics")) => Op::ListBucketMetricsConfigurations,
        ("GET", Some("inventory")) if has_id => Op::GetBucketInventoryConfiguration,
        ("GET", Some("inventory")) => Op::ListBucketInventoryConfigurations,
        ("GET", Some("intelligent-tiering")) if has_id => {
            Op::GetBucketIntelligentTieringConfiguration
        }
        ("GET", Some("intelligent-tiering")) => Op::ListBucketIntelligentTieringConfigurations,

        ("HEAD", None) => Op::HeadBucket,

        ("PUT", _) if has_copy_source(headers) => {
            return Classified::unknown("x-amz-copy-source on a bucket");
        }
        ("PUT", None) => Op::CreateBucket,
        ("PUT", Some("acl")) => Op::PutBucketAcl,
        ("PUT", Some("tagging")) => Op::PutBucketTagging,
        ("PUT", Some("versioning")) => Op::PutBucketVersioning,
        ("PUT", Some("policy")) => Op::PutBucketPolicy,
        ("PUT", Some("cors")) => Op::PutBucketCors,
        ("PUT", Some("lifecycle")) => Op::PutBucketLifecycleConfiguration,
        ("PUT", Some("encryption")) => Op::PutBucketEncryption,
        ("PUT", Some("website")) => Op::PutBucketWebsite,
        ("PUT", Some("logging")) => Op::PutBucketLogging,
        ("PUT", Some("notification")) => Op::PutBucketNotificationConfiguration,
        ("PUT", Some("replication")) => Op::PutBucketReplication,
        ("PUT", Some("ownershipControls")) => Op::PutBucketOwnershipControls,
        ("PUT", Some("publicAccessBlock")) => Op::PutPublicAccessBlock,
        ("PUT", Some("object-lock")) => Op::PutObjectLockConfiguration,
        ("PUT", Some("accelerate")) => Op::PutBucketAccelerateConfiguration,
        ("PUT", Some("requestPayment")) => Op::PutBucketRequestPayment,
        ("PUT", Some("analytics")) => Op::PutBucketAnalyticsConfiguration,
        ("PUT", Some("metrics")) => Op::PutBucketMetricsConfiguration,
        ("PUT", Some("inventory")) => Op::PutBucketInventoryConfiguration,
        ("PUT", Some("intelligent-tiering")) => Op::PutBucketIntelligentTieringConfiguration,

        ("DELETE", None) => Op::DeleteBucket,
        ("DELETE", Some("tagging")) => Op::DeleteBucketTagging,
        ("DELETE", Some("policy")) => Op::DeleteBucketPolicy,
        ("DELETE", Some("cors")) => Op::DeleteBucketCors,
        ("DELETE", Some("lifecycle")) => Op::DeleteBucketLifecycle,
        ("DELETE", Some("encryption")) => Op::DeleteBucketEncryption,
        ("DELETE", Some("website")) => Op::DeleteBucketWebsite,
        ("DELETE", Some("replication")) => Op::DeleteBucketReplication,
        ("DELETE", Some("ownershipControls")) => Op::DeleteBucketOwnershipControls,
        ("DELETE", Some("publicAccessBlock")) => Op::DeletePublicAccessBlock,
        ("DELETE", Some("analytics")) => Op::DeleteBucketAnalyticsConfiguration,
        ("DELETE", Some("metrics")) => Op::DeleteBucketMetricsConfiguration,
        ("DELETE", Some("inventory")) => Op::DeleteBucketInventoryConfiguration,
        ("DELETE", Some("intelligent-tiering")) => Op::DeleteBucketIntelligentTieringConfiguration,

        ("POST", Some("delete")) => Op::DeleteObjects,
        ("POST", None) => {
            return Classified::unknown("browser-form POST uploads (PostObject) are not supported");
        }
        (m, Some(s)) => return Classified::unknown(format!("{m} on bucket sub-resource `{s}`")),
        (m, None) => return Classified::unknown(format!("{m} on a bucket")),
    };
    Classified::known(op, sub)
}

fn classify_object(method: &Method, query: &Query, headers: &HeaderMap) -> Classified {
    use S3Operation as Op;
    let sub = match subresource(query, OBJECT_SUBRESOURCES) {
        Ok(sub) => sub,
        Err(reason) => return Classified::unknown(reason),
    };
    let copy = has_copy_source(headers);
    if copy && *method != Method::PUT {
        return Classified::unknown(format!("x-amz-copy-source on {method}"));
    }
    let op = match (method.as_str(), sub) {
        ("GET", None) => Op::GetObject,
        ("GET", Some("uploadId")) => Op::ListParts,
        ("GET", Some("acl")) => Op::GetObjectAcl,
        ("GET", Some("tagging")) => Op::GetObjectTagging,
        ("GET", Some("retention")) => Op::GetObjectRetention,
        ("GET", Some("legal-hold")) => Op::GetObjectLegalHold,
        ("GET", Some("attributes")) => Op::GetObjectAttributes,
        ("GET", Some("torrent")) => Op::GetObjectTorrent,

        ("HEAD", None) => Op::HeadObject,

        ("PUT", None) if copy => Op::CopyObject,
        ("PUT", None) => Op::PutObject,
        ("PUT", Some("uploadId")) if copy => Op::UploadPartCopy,
        ("PUT", Some("uploadId")) => Op::UploadPart,
        ("PUT", Some(s)) if copy => {
            return Classified::unknown(format!("x-amz-copy-source on sub-resource `{s}`"));
        }
        ("PUT", Some("acl")) => Op::PutObjectAcl,
        ("PUT", Some("tagging")) => Op::PutObjectTagging,
        ("PUT", Some("retention")) => Op::PutObjectRetention,
        ("PUT", Some("legal-hold")) => Op::PutObjectLegalHold,

        ("POST", Some("uploads")) => Op::CreateMultipartUpload,
        ("POST", Some("uploadId")) => Op::CompleteMultipartUpload,
        ("POST", Some("restore")) => Op::RestoreObject,
        ("POST", Some("select")) => {
            if query.get("select-type") == Some("2") {
                Op::SelectObjectContent
            } else {
                return Classified::unknown("select without select-type=2");
            }
        }

        ("DELETE", None) => Op::DeleteObject,
        ("DELETE", Some("uploadId")) => Op::AbortMultipartUpload,
        ("DELETE", Some("tagging")) => Op::DeleteObjectTagging,

        (m, Some(s)) => return Classified::unknown(format!("{m} on object sub-resource `{s}`")),
        (m, None) => return Classified::unknown(format!("{m} on an object")),
    };
    Classified::known(op, sub)
}

const LIST_V1: &[&str] = &["delimiter", "encoding-type", "marker", "max-keys", "prefix"];
const LIST_V2: &[&str] = &[
    "list-type",
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "max-keys",
    "prefix",
    "start-after",
];
const LIST_VERSIONS: &[&str] = &[
    "versions",
    "delimiter",
    "encoding-type",
    "key-marker",
    "max-keys",
    "prefix",
    "version-id-marker",
];
const LIST_UPLOADS: &[&str] = &[
    "uploads",
    "delimiter",
    "encoding-type",
    "key-marker",
    "max-uploads",
    "prefix",
    "upload-id-marker",
];
const LIST_BUCKETS: &[&str] = &[
    "max-buckets",
    "continuation-token",
    "prefix",
    "bucket-region",
];
const GET_OBJECT: &[&str] = &[
    "versionId",
    "partNumber",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
];

/// The query parameters an operation takes besides its sub-resource name. `x-id` (added by
/// the AWS SDKs) and the presign parameters are accepted everywhere.
fn operation_params(op: S3Operation) -> &'static [&'static str] {
    use S3Operation as Op;
    match op {
        Op::ListBuckets => LIST_BUCKETS,
        Op::ListObjects => LIST_V1,
        Op::ListObjectsV2 => LIST_V2,
        Op::ListObjectVersions => LIST_VERSIONS,
        Op::ListMultipartUploads => LIST_UPLOADS,
        Op::GetObject | Op::HeadObject => GET_OBJECT,
        Op::DeleteObject => &["versionId"],
        Op::UploadPart | Op::UploadPartCopy => &["uploadId", "partNumber"],
        Op::CompleteMultipartUpload | Op::AbortMultipartUpload => &["uploadId"],
        Op::ListParts => &["uploadId", "max-parts", "part-number-marker"],
        Op::CreateMultipartUpload => &["uploads"],
        Op::SelectObjectContent => &["select", "select-type"],
        Op::GetObjectAcl
        | Op::PutObjectAcl
        | Op::GetObjectTagging
        | Op::PutObjectTagging
        | Op::DeleteObjectTagging
        | Op::GetObjectRetention
        | Op::PutObjectRetention
        | Op::GetObjectLegalHold
        | Op::PutObjectLegalHold
        | Op::GetObjectAttributes
        | Op::RestoreObject => &["versionId"],
        Op::GetBucketAnalyticsConfiguration
        | Op::PutBucketAnalyticsConfiguration
        | Op::DeleteBucketAnalyticsConfiguration
        | Op::GetBucketMetricsConfiguration
        | Op::PutBucketMetricsConfiguration
        | Op::DeleteBucketMetricsConfiguration
        | Op::GetBucketInventoryConfiguration
        | Op::PutBucketInventoryConfiguration
        | Op::DeleteBucketInventoryConfiguration
        | Op::GetBucketIntelligentTieringConfiguration
        | Op::PutBucketIntelligentTieringConfiguration
        | Op::DeleteBucketIntelligentTieringConfiguration => &["id"],
        Op::ListBucketAnalyticsConfigurations
        | Op::ListBucketMetricsConfigurations
        | Op::ListBucketInventoryConfigurations
        | Op::ListBucketIntelligentTieringConfigurations => &["continuation-token"],
        _ => &[],
    }
}

/// Returns why a parameter is not acceptable for the classified operation, or `None` when
/// all are: the sub-resource that selected it, its own parameters, and those every
/// operation takes.
fn check_params(classified: &Classified, query: &Query) -> Option<String> {
    let op = classified.operation;
    let allowed = operation_params(op);
    for name in query.names() {
        let ok = allowed.contains(&name)
            || classified.subresource == Some(name)
            || name == "x-id"
            || PRESIGN_PARAMS.contains(&name)
            || is_hoisted_header(name);
        if !ok {
            return Some(format!(
                "query parameter `{name}` is not accepted on {}",
                op.name()
            ));
        }
    }
    None
}

/// Presigners hoist `x-amz-*` headers (ACL, metadata, checksums) into the query; S3 reads
/// them like the headers. `x-amz-copy-source` is not accepted there: it would change the
/// operation.
fn is_hoisted_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("x-amz-")
        && !lower.starts_with("x-amz-copy-source")
        && !PRESIGN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &Method, target: Target, query: &str) -> S3Operation {
        classify(
            method,
            target,
            &Query::parse(query).unwrap(),
            &HeaderMap::new(),
        )
        .operation
    }

    #[test]
    fn presign_parameters_of_both_signature_versions_are_accepted() {
        let v4 = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=k&X-Amz-Date=d\
                  &X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s";
        assert_eq!(op(&Method::GET, Target::Object, v4), S3Operation::GetObject);
        let v2 = "AWSAccessKeyId=k&Expires=1795700000&Signature=s";
        assert_eq!(op(&Method::GET, Target::Object, v2), S3Operation::GetObject);
        // Not a presign parameter: refused.
        assert_eq!(
            op(&Method::GET, Target::Object, "AWSAccessKey=k"),
            S3Operation::Unknown
        );
    }
}
