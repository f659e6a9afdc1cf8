//! [`S3Request`]: one parse of an S3 request — operation, bucket, key, addressing style,
//! query — shared by every layer through the request extensions.

use http::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode_str;

use crate::bucket::validate_bucket_name;
use crate::classify::{Target, classify};
use crate::error::{S3Error, S3ErrorCode};
use crate::operation::S3Operation;
use crate::query::{Query, has_malformed_escape};

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// How the request named its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addressing {
    /// `https://endpoint/bucket/key`
    PathStyle,
    /// `https://bucket.endpoint/key` (the endpoint is one of the configured base domains).
    VirtualHosted,
}

/// The object an `x-amz-copy-source` header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// Source bucket.
    pub bucket: String,
    /// Source key, decoded.
    pub key: String,
    /// Source version, when the header names one.
    pub version_id: Option<String>,
}

/// A resource an operation touches, for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The account's bucket list (`ListBuckets`).
    Service,
    /// A bucket; `prefix` is the listing prefix for object listings.
    Bucket {
        /// Bucket name.
        bucket: String,
        /// The `prefix` query parameter of a listing (`None` when absent).
        prefix: Option<String>,
    },
    /// One object.
    Object {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Object version, when the request names one.
        version_id: Option<String>,
    },
    /// The objects listed in the request body (`DeleteObjects`): the authorization layer
    /// reads the body to check each key.
    ObjectsInBody {
        /// Bucket name.
        bucket: String,
    },
}

impl Resource {
    /// The resource's ARN (`arn:aws:s3:::bucket`, `arn:aws:s3:::bucket/key`,
    /// `arn:aws:s3:::bucket/*` for keys in the body, `*` for the service).
    pub fn arn(&self) -> String {
        match self {
            Self::Service => "*".to_owned(),
            Self::Bucket { bucket, .. } => format!("arn:aws:s3:::{bucket}"),
            Self::Object { bucket, key, .. } => Self::object_arn(bucket, key),
            Self::ObjectsInBody { bucket } => format!("arn:aws:s3:::{bucket}/*"),
        }
    }

    /// The ARN of one object, `arn:aws:s3:::bucket/key`: what [`Resource::arn`] gives an
    /// [`Resource::Object`], for keys that are not one (each key of a `DeleteObjects` body).
    pub fn object_arn(bucket: &str, key: &str) -> String {
        format!("arn:aws:s3:::{bucket}/{key}")
    }

    /// The checks an object key named outside the path gets (each key of a `DeleteObjects`
    /// body): at most [`MAX_KEY_LEN`] bytes (`KeyTooLongError`, the error of a long key in
    /// the path) and no dot segment ([`check_key_segments`], `InvalidArgument`).
    pub fn check_object_key(key: &str) -> Result<(), S3Error> {
        check_key_len(key)?;
        check_key_segments(key)
    }
}

/// One resource an operation touches and the IAM action it needs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAccess {
    /// The IAM action (`s3:GetObject`, `s3:GetObjectVersion`, `s3:ListBucket`...).
    pub iam_action: &'static str,
    /// The resource.
    pub resource: Resource,
}

/// An S3 request, parsed once by [`S3RequestLayer`](crate::S3RequestLayer) and stored in
/// the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Request {
    /// The operation.
    pub operation: S3Operation,
    /// The bucket, validated against the naming rules.
    pub bucket: Option<String>,
    /// The object key, percent-decoded exactly once; never normalised (`..`, `//` and
    /// trailing `/` are key bytes).
    pub key: Option<String>,
    /// How the bucket was addressed.
    pub addressing: Addressing,
    /// The decoded query.
    pub query: Query,
    /// The path exactly as sent, for signature checks.
    pub raw_path: String,
    /// The query string exactly as sent (without `?`).
    pub raw_query: Option<String>,
    /// The parsed `x-amz-copy-source` of `CopyObject` and `UploadPartCopy`.
    pub copy_source: Option<CopySource>,
    /// Why the operation is [`S3Operation::Unknown`]; `None` for known operations.
    pub unknown_reason: Option<String>,
}

impl S3Request {
    /// The resources the operation touches, each with its IAM action: the main resource,
    /// plus the copy source of `CopyObject`/`UploadPartCopy`. Empty for `Unknown`.
    pub fn resources(&self) -> Vec<ResourceAccess> {
        use S3Operation as Op;
        let Some(action) = self.operation.iam_action() else {
            return Vec::new();
        };
        let Some(bucket) = self.bucket.clone() else {
            return vec![ResourceAccess {
                iam_action: action,
                resource: Resource::Service,
            }];
        };
        let version_id = self.query.get("versionId").map(str::to_owned);
        let main = match (&self.key, self.operation) {
            (_, Op::DeleteObjects) => ResourceAccess {
                iam_action: action,
                resource: Resource::ObjectsInBody { bucket },
            },
            (Some(key), op) => ResourceAccess {
                iam_action: if version_id.is_some() {
                    versioned_action(op).unwrap_or(action)
                } else {
                    action
                },
                resource: Resource::Object {
                    bucket,
                    key: key.clone(),
                    version_id,
                },
            },
            (None, op) => ResourceAccess {
                iam_action: action,
                resource: Resource::Bucket {
                    bucket,
                    prefix: if op.is_object_listing() {
                        self.query.get("prefix").map(str::to_owned)
                    } else {
                        None
                    },
                },
            },
        };
        let mut out = vec![main];
        if let Some(src) = &self.copy_source {
            out.push(ResourceAccess {
                iam_action: if src.version_id.is_some() {
                    "s3:GetObjectVersion"
                } else {
                    "s3:GetObject"
                },
                resource: Resource::Object {
                    bucket: src.bucket.clone(),
                    key: src.key.clone(),
                    version_id: src.version_id.clone(),
                },
            });
        }
        out
    }

    /// `/bucket/key`, `/bucket` or `/`: the `<Resource>` of error answers.
    pub fn resource_path(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".to_owned(),
        }
    }
}

/// The IAM action of an operation when it names an object version.
fn versioned_action(op: S3Operation) -> Option<&'static str> {
    use S3Operation as Op;
    Some(match op {
        Op::GetObject | Op::HeadObject => "s3:GetObjectVersion",
        Op::DeleteObject => "s3:DeleteObjectVersion",
        Op::GetObjectAcl => "s3:GetObjectVersionAcl",
        Op::PutObjectAcl => "s3:PutObjectVersionAcl",
        Op::GetObjectTagging => "s3:GetObjectVersionTagging",
        Op::PutObjectTagging => "s3:PutObjectVersionTagging",
        Op::DeleteObjectTagging => "s3:DeleteObjectVersionTagging",
        Op::GetObjectAttributes => "s3:GetObjectVersionAttributes",
        _ => return None,
    })
}

/// Parses requests into [`S3Request`]s. Holds the base domains under which buckets are
/// addressed virtual-hosted style (`bucket.s3.example.com`).
#[derive(Debug, Clone, Default)]
pub struct S3RequestParser {
    virtual_host_domains: Vec<String>,
}

impl S3RequestParser {
    /// A parser that only understands path-style addressing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a base domain: a request to `<bucket>.<domain>` addresses `<bucket>`.
    #[must_use]
    pub fn virtual_host_domain(mut self, domain: impl Into<String>) -> Self {
        let domain = domain.into().trim_matches('.').to_ascii_lowercase();
        if !domain.is_empty() {
            self.virtual_host_domains.push(domain);
        }
        self
    }

    /// The configured base domains.
    pub fn virtual_host_domains(&self) -> &[String] {
        &self.virtual_host_domains
    }

    /// Parses a request from its method, URI and headers.
    ///
    /// Errors are the S3 errors the client gets: `InvalidURI`, `InvalidBucketName`,
    /// `InvalidArgument`, `KeyTooLongError`. Unrecognised operations are not errors here:
    /// they parse to [`S3Operation::Unknown`] with a reason, and the layer refuses them.
    pub fn parse(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<S3Request, S3Error> {
        let raw_path = uri.path();
        if !raw_path.starts_with('/') {
            return Err(S3Error::new(
                S3ErrorCode::InvalidURI,
                "the request path must start with '/'",
            ));
        }
        let raw_query = uri.query().map(str::to_owned);
        let query = Query::parse(raw_query.as_deref().unwrap_or(""))?;

        let (addressing, bucket, raw_key) = match self.virtual_host_bucket(uri, headers) {
            Some(bucket) => (Addressing::VirtualHosted, Some(bucket), &raw_path[1..]),
            None => {
                let rest = &raw_path[1..];
                match rest.split_once('/') {
                    Some((bucket, key)) => (Addressing::PathStyle, Some(bucket.to_owned()), key),
                    None => (
                        Addressing::PathStyle,
                        (!rest.is_empty()).then(|| rest.to_owned()),
                        "",
                    ),
                }
            }
        };
        if let Some(bucket) = &bucket {
            if bucket.is_empty() {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidURI,
                    "empty bucket name in the request path",
                ));
            }
            validate_bucket_name(bucket)?;
        }
        let key = if raw_key.is_empty() {
            None
        } else {
            let key = decode_key(raw_key)?;
            check_key_segments(&key)?;
            Some(key)
        };
        let target = match (&bucket, &key) {
            (None, _) => Target::Service,
            (Some(_), None) => Target::Bucket,
            (Some(_), Some(_)) => Target::Object,
        };
        let classified = classify(method, target, &query, headers);
        if classified.operation.is_object_listing()
            && let Some(prefix) = query.get("prefix")
        {
            check_prefix_len(prefix)?;
            check_prefix_segments(prefix)?;
        }
        let copy_source = if matches!(
            classified.operation,
            S3Operation::CopyObject | S3Operation::UploadPartCopy
        ) {
            headers
                .get("x-amz-copy-source")
                .map(|v| parse_copy_source(v.as_bytes()))
                .transpose()?
        } else {
            None
        };
        Ok(S3Request {
            operation: classified.operation,
            bucket,
            key,
            addressing,
            query,
            raw_path: raw_path.to_owned(),
            raw_query,
            copy_source,
            unknown_reason: (classified.operation == S3Operation::Unknown)
                .then_some(classified.reason),
        })
    }

    /// The bucket named by the host, when the host is `<bucket>.<base domain>`.
    fn virtual_host_bucket(&self, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        if self.virtual_host_domains.is_empty() {
            return None;
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str))?;
        let host = strip_port(host).to_ascii_lowercase();
        // `bucket.s3.example.com.` (a fully qualified name) is the same host.
        let host = host.strip_suffix('.').unwrap_or(&host);
        self.virtual_host_domains.iter().find_map(|domain| {
            host.strip_suffix(domain.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .filter(|bucket| !bucket.is_empty())
                .map(str::to_owned)
        })
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: never a virtual-hosted bucket.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Decodes a raw key exactly once: `%XX` escapes become bytes, `+` stays `+`, and the result
/// must be UTF-8 of at most [`MAX_KEY_LEN`] bytes. A `%` not followed by two hex digits is
/// refused (`InvalidURI`), not kept as a literal `%`.
pub fn decode_key(raw: &str) -> Result<String, S3Error> {
    if has_malformed_escape(raw) {
        return Err(S3Error::new(
            S3ErrorCode::InvalidURI,
            "the object key has a malformed percent-escape",
        ));
    }
    let key = percent_decode_str(raw).decode_utf8().map_err(|_| {
        S3Error::new(
            S3ErrorCode::InvalidURI,
            "the object key does not decode to UTF-8",
        )
    })?;
    check_key_len(&key)?;
    Ok(key.into_owned())
}

/// `KeyTooLongError` for a key over [`MAX_KEY_LEN`] bytes.
fn check_key_len(key: &str) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::new(
            S3ErrorCode::KeyTooLongError,
            "Your key is too long: at most 1024 bytes",
        ));
    }
    Ok(())
}

/// Why a key with a dot segment is refused.
const DOT_SEGMENT_KEY: &str = "the object key has a '.' or '..' path segment, which this \
    gateway refuses: a backend storing objects as files or normalising paths could resolve it \
    to another object than the one authorized";

/// Refuses an object key with a dot segment between `/` (or `\`) separators: `../x`,
/// `a/./b`, `a/..`, `a/.`. For S3 such a key is plain bytes, but a backend that stores
/// objects as files or normalises request paths resolves it to another object — or another
/// bucket (`/public/../private/x`) — than the one the policy decided on. A dot segment is
/// also what such a backend may read as one: a segment of only dots and spaces with one or
/// two dots (`.. `, ` ..`, `. .`: Windows drops trailing dots and spaces), and a segment
/// starting with `.;` or `..;` (a servlet path parameter, `..;jsessionid=x`).
/// `InvalidArgument`. Other keys, including `a//b`, `.hidden`, `...` and `a..b`, pass.
pub fn check_key_segments(key: &str) -> Result<(), S3Error> {
    if has_dot_segment(key) {
        return Err(S3Error::new(S3ErrorCode::InvalidArgument, DOT_SEGMENT_KEY));
    }
    Ok(())
}

/// Refuses a listing prefix with a dot segment, by the rule and for the reason of
/// [`check_key_segments`]: a final `.` included (a backend cleaning paths lists the parent
/// for `home/.`). `InvalidArgument`.
pub fn check_prefix_segments(prefix: &str) -> Result<(), S3Error> {
    if has_dot_segment(prefix) {
        return Err(S3Error::new(
            S3ErrorCode::InvalidArgument,
            "the prefix has a '.' or '..' path segment, which this gateway refuses: a backend \
             storing objects as files or normalising paths could list outside the authorized \
             prefix",
        ));
    }
    Ok(())
}

/// A listing prefix longer than a key cannot match any key; refused as the invalid query
/// parameter it is (`InvalidArgument`), before any policy or backend pattern sees it.
fn check_prefix_len(prefix: &str) -> Result<(), S3Error> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(S3Error::new(
            S3ErrorCode::InvalidArgument,
            "the prefix is longer than 1024 bytes, the longest key",
        ));
    }
    Ok(())
}

fn has_dot_segment(value: &str) -> bool {
    value.split(['/', '\\']).any(is_dot_segment)
}

/// `.`, `..`, the same with spaces around or between (`.. `, ` .`, `. .`), or a servlet path
/// parameter on one (`.;x`, `..;x`).
fn is_dot_segment(segment: &str) -> bool {
    if segment.starts_with(".;") || segment.starts_with("..;") {
        return true;
    }
    let dots = segment.bytes().filter(|&b| b == b'.').count();
    (1..=2).contains(&dots) && segment.bytes().all(|b| b == b'.' || b == b' ')
}

/// Parses an `x-amz-copy-source` value: `[/]bucket/key[?versionId=id]`, URL-encoded. A key
/// with a dot segment is refused (see [`check_key_segments`]).
pub fn parse_copy_source(value: &[u8]) -> Result<CopySource, S3Error> {
    let invalid = |why: &str| {
        S3Error::new(
            S3ErrorCode::InvalidArgument,
            format!("invalid x-amz-copy-source: {why}"),
        )
    };
    let value = std::str::from_utf8(value).map_err(|_| invalid("not UTF-8"))?;
    if value.starts_with("arn:") {
        return Err(invalid("access point ARNs are not supported"));
    }
    let (path, version_id) = match value.split_once('?') {
        Some((path, params)) => match params.strip_prefix("versionId=") {
            Some(v) if !v.is_empty() && !v.contains('&') && !has_malformed_escape(v) => {
                let v = percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| invalid("versionId is not UTF-8"))?;
                (path, Some(v.into_owned()))
            }
            _ => return Err(invalid("only a versionId may follow '?'")),
        },
        None => (value, None),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, raw_key) = path
        .split_once('/')
        .ok_or_else(|| invalid("expected bucket/key"))?;
    validate_bucket_name(bucket)?;
    if raw_key.is_empty() {
        return Err(invalid("empty key"));
    }
    let key = decode_key(raw_key).map_err(|err| {
        if err.code() == S3ErrorCode::KeyTooLongError {
            err
        } else {
            invalid("the key is not percent-encoded UTF-8")
        }
    })?;
    if has_dot_segment(&key) {
        return Err(invalid(DOT_SEGMENT_KEY));
    }
    Ok(CopySource {
        bucket: bucket.to_owned(),
        key,
        version_id,
    })
}
