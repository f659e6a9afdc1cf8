//! Request classification checked against the request shapes real S3 clients send.
//!
//! `fixtures/client_requests.json` holds requests captured from boto3, the AWS CLI, the AWS
//! SDK for JavaScript v3 and the AWS SDK for Rust (path-style, virtual-hosted and presigned
//! URLs) against a recording server; each entry names the operation the SDK called, the
//! bucket and key the caller passed and, for copies, the copy source. Signatures and dates are
//! placeholders; everything else is as sent. Operations the SDKs have and s3-core does not
//! model are in the fixture too, as `Unknown`.
//!
//! The rest of the file is hand-written tables of what must be refused, and with which code.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use s3_core::{
    Addressing, CopySource, REQUEST_ID_HEADER, RequestId, Resource, ResourceAccess, S3ErrorCode,
    S3Operation, S3Request, S3RequestLayer, S3RequestParser,
};
use serde::Deserialize;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The base domain the captures used for virtual-hosted addressing.
const DOMAIN: &str = "s3.localhost";

const FIXTURE: &str = include_str!("fixtures/client_requests.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    client: String,
    addressing: String,
    operation: String,
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    bucket: Option<String>,
    key: Option<String>,
    #[serde(default)]
    copy_source: Option<ExpectedCopySource>,
    /// The error code, for a shape the parser refuses.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedCopySource {
    bucket: String,
    key: String,
    version_id: Option<String>,
}

impl Shape {
    fn uri(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                // Copy sources may hold raw UTF-8 (the Rust SDK does not encode them).
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        map
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(self.method.as_str())
            .uri(self.uri())
            .body(Full::default())
            .unwrap();
        *req.headers_mut() = self.headers();
        req
    }

    fn expected_operation(&self) -> S3Operation {
        if self.operation == "Unknown" {
            return S3Operation::Unknown;
        }
        *S3Operation::ALL
            .iter()
            .find(|op| op.name() == self.operation)
            .unwrap_or_else(|| panic!("fixture names no S3Operation: {}", self.operation))
    }

    fn describe(&self) -> String {
        format!(
            "[{} {}] {} {} (host {:?})",
            self.client,
            self.operation,
            self.method,
            self.uri(),
            self.headers.get("host")
        )
    }
}

fn shapes() -> Vec<Shape> {
    serde_json::from_str(FIXTURE).unwrap()
}

fn parser() -> S3RequestParser {
    S3RequestParser::new().virtual_host_domain(DOMAIN)
}

/// Checks one captured shape; returns what did not match.
fn check_shape(shape: &Shape) -> Result<(), String> {
    let method = Method::from_bytes(shape.method.as_bytes()).unwrap();
    let uri: Uri = shape.uri().parse().map_err(|e| format!("bad URI: {e}"))?;
    let headers = shape.headers();
    let parsed = match (parser().parse(&method, &uri, &headers), &shape.error) {
        (Ok(parsed), None) => parsed,
        (Err(e), Some(code)) if e.code().as_str() == code => return Ok(()),
        (Err(e), _) => return Err(format!("refused with {}: {}", e.code(), e.message())),
        (Ok(parsed), Some(code)) => {
            return Err(format!("accepted as {}, expected {code}", parsed.operation));
        }
    };

    let mut problems = Vec::new();
    let expected_op = shape.expected_operation();
    if parsed.operation != expected_op {
        problems.push(format!(
            "operation {} (reason {:?}), expected {}",
            parsed.operation, parsed.unknown_reason, expected_op
        ));
    }
    if (parsed.operation == S3Operation::Unknown) != parsed.unknown_reason.is_some() {
        problems.push(format!("unknown_reason {:?}", parsed.unknown_reason));
    }
    let addressing = match shape.addressing.as_str() {
        "path" => Addressing::PathStyle,
        "virtual" => Addressing::VirtualHosted,
        other => panic!("bad addressing {other}"),
    };
    if parsed.addressing != addressing {
        problems.push(format!("addressing {:?}", parsed.addressing));
    }
    if parsed.bucket != shape.bucket {
        problems.push(format!(
            "bucket {:?}, expected {:?}",
            parsed.bucket, shape.bucket
        ));
    }
    if parsed.key != shape.key {
        problems.push(format!("key {:?}, expected {:?}", parsed.key, shape.key));
    }
    if parsed.raw_path != shape.path {
        problems.push(format!("raw_path {:?}", parsed.raw_path));
    }
    let raw_query = (!shape.query.is_empty()).then(|| shape.query.clone());
    if parsed.raw_query != raw_query {
        problems.push(format!("raw_query {:?}", parsed.raw_query));
    }
    let expected_copy = shape.copy_source.as_ref().map(|c| CopySource {
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        version_id: c.version_id.clone(),
    });
    if parsed.copy_source != expected_copy {
        problems.push(format!(
            "copy_source {:?}, expected {:?}",
            parsed.copy_source, expected_copy
        ));
    }
    if addressing == Addressing::PathStyle {
        // A path-style request means the same to a parser without virtual-host domains.
        match S3RequestParser::new().parse(&method, &uri, &headers) {
            Ok(plain) if plain == parsed => {}
            other => problems.push(format!("path-only parser disagrees: {other:?}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn captured_client_requests_classify_as_the_operation_the_sdk_called() {
    let shapes = shapes();
    let failures: Vec<String> = shapes
        .iter()
        .filter_map(|s| {
            check_shape(s)
                .err()
                .map(|e| format!("{}: {e}", s.describe()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} captured requests misclassified:\n{}",
        failures.len(),
        shapes.len(),
        failures.join("\n")
    );
}

#[test]
fn the_fixture_covers_every_operation_client_and_addressing_style() {
    let shapes = shapes();
    assert!(
        shapes.len() < 200,
        "keep the fixture small: {}",
        shapes.len()
    );
    let covered: BTreeSet<S3Operation> = shapes.iter().map(Shape::expected_operation).collect();
    let missing: Vec<&str> = S3Operation::ALL
        .iter()
        .filter(|op| !covered.contains(op))
        .map(|op| op.name())
        .collect();
    assert!(missing.is_empty(), "no captured request for {missing:?}");
    assert!(covered.contains(&S3Operation::Unknown));

    for client in ["boto3-", "awscli-", "aws-sdk-js-v3-", "aws-sdk-rust-s3-"] {
        for addressing in ["path", "virtual"] {
            assert!(
                shapes
                    .iter()
                    .any(|s| s.client.starts_with(client) && s.addressing == addressing),
                "no {addressing} request from {client}"
            );
        }
    }
    assert!(shapes.iter().any(|s| s.client.ends_with("presigned-url")));
    // Every refused real-client request says why.
    for s in shapes
        .iter()
        .filter(|s| s.operation == "Unknown" || s.error.is_some())
    {
        assert!(s.note.is_some(), "{}", s.describe());
    }
}

#[test]
fn a_sanity_check_of_the_fixture_checker() {
    // The table test must fail when the classifier disagrees with the fixture.
    let mut shape: Shape = serde_json::from_str(
        r#"{"client": "t", "addressing": "path", "operation": "GetObjectAcl", "method": "GET",
            "path": "/src-bucket/k.txt", "query": "acl", "headers": {}, "bucket": "src-bucket",
            "key": "k.txt"}"#,
    )
    .unwrap();
    assert_eq!(check_shape(&shape), Ok(()));
    shape.operation = "GetObject".into();
    assert!(
        check_shape(&shape)
            .unwrap_err()
            .contains("operation GetObjectAcl")
    );
    shape.operation = "GetObjectAcl".into();
    shape.key = Some("k".into());
    assert!(check_shape(&shape).unwrap_err().contains("key"));
}

// ---------------------------------------------------------------------------------------
// Errors: exact codes.
// ---------------------------------------------------------------------------------------

fn parse(method: &str, uri: &str, headers: Headers<'_>) -> Result<S3Request, S3ErrorCode> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    parser()
        .parse(
            &Method::from_bytes(method.as_bytes()).unwrap(),
            &uri.parse::<Uri>().unwrap(),
            &map,
        )
        .map_err(|e| e.code())
}

/// Header name and raw value pairs.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

fn assert_error_table(table: &[(&str, &str, Headers<'_>, S3ErrorCode)]) {
    let failures: Vec<String> = table
        .iter()
        .filter_map(|(method, uri, headers, code)| {
            let got = parse(method, uri, headers);
            (got.as_ref().err() != Some(code))
                .then(|| format!("{method} {uri} {headers:?}: expected {code}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const NO_HEADERS: &[(&str, &[u8])] = &[];
const VHOST: &[(&str, &[u8])] = &[("host", b"src-bucket.s3.localhost")];

#[test]
fn malformed_percent_encoding_is_invalid_uri() {
    use S3ErrorCode::InvalidURI;
    assert_error_table(&[
        // Not an escape at all.
        ("GET", "/bucket/%zz", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/a%2", NO_HEADERS, InvalidURI),
        ("PUT", "/bucket/%", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/a%g1b", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/dir/%%41", NO_HEADERS, InvalidURI),
        ("GET", "/%zz", VHOST, InvalidURI),
        // Escapes that are not UTF-8.
        ("GET", "/bucket/%ff%fe", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/a%C3", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/%C0%AF", NO_HEADERS, InvalidURI),
        ("GET", "/bucket/%ED%A0%80", NO_HEADERS, InvalidURI),
        ("GET", "/%ff", VHOST, InvalidURI),
        // In the query.
        ("GET", "/bucket?prefix=%ff", NO_HEADERS, InvalidURI),
        ("GET", "/bucket?prefix=%zz", NO_HEADERS, InvalidURI),
        (
            "GET",
            "/bucket?list-type=2&prefix=a%",
            NO_HEADERS,
            InvalidURI,
        ),
        ("GET", "/bucket?pre%fix=a", NO_HEADERS, InvalidURI),
        (
            "GET",
            "/bucket/key?versionId=%E2%82",
            NO_HEADERS,
            InvalidURI,
        ),
        // An empty bucket segment.
        ("GET", "//key", NO_HEADERS, InvalidURI),
        // A target that is not a path (`OPTIONS *`).
        ("OPTIONS", "*", NO_HEADERS, InvalidURI),
    ]);
    // Well-formed escapes of the same characters are fine.
    let ok = parse("GET", "/bucket/%25zz%2Bx%20y", NO_HEADERS).unwrap();
    assert_eq!(ok.key.as_deref(), Some("%zz+x y"));
}

#[test]
fn invalid_bucket_names_are_invalid_bucket_name() {
    use S3ErrorCode::InvalidBucketName;
    assert_error_table(&[
        ("GET", "/ab/key", NO_HEADERS, InvalidBucketName),
        ("PUT", "/ab", NO_HEADERS, InvalidBucketName),
        ("GET", "/Bad_Bucket/x", NO_HEADERS, InvalidBucketName),
        ("GET", "/MyBucket", NO_HEADERS, InvalidBucketName),
        ("GET", "/my_bucket/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/-bucket/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/bucket-/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/my..bucket/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/192.168.1.1/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/xn--bucket/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/bucket--ol-s3/k", NO_HEADERS, InvalidBucketName),
        (
            "GET",
            "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/k",
            NO_HEADERS,
            InvalidBucketName,
        ),
        // A bucket is never percent-decoded: an escape in it is an invalid name.
        ("GET", "/buck%65t/k", NO_HEADERS, InvalidBucketName),
        ("GET", "/bucket%2Fkey", NO_HEADERS, InvalidBucketName),
        // Virtual-hosted.
        (
            "GET",
            "/k",
            &[("host", b"Bad_Bucket.s3.localhost")],
            InvalidBucketName,
        ),
        (
            "GET",
            "/k",
            &[("host", b"ab.s3.localhost:9000")],
            InvalidBucketName,
        ),
        (
            "GET",
            "/",
            &[("host", b"a..b.s3.localhost")],
            InvalidBucketName,
        ),
        // The copy source bucket.
        (
            "PUT",
            "/bucket/k",
            &[("x-amz-copy-source", b"Bad_Bucket/k")],
            InvalidBucketName,
        ),
    ]);
}

#[test]
fn duplicate_query_parameters_are_invalid_argument() {
    use S3ErrorCode::InvalidArgument;
    assert_error_table(&[
        (
            "GET",
            "/bucket?prefix=a&prefix=b",
            NO_HEADERS,
            InvalidArgument,
        ),
        (
            "GET",
            "/bucket?list-type=2&list-type=2",
            NO_HEADERS,
            InvalidArgument,
        ),
        ("GET", "/bucket?acl&acl", NO_HEADERS, InvalidArgument),
        (
            "GET",
            "/bucket/k?versionId=a&versionId=b",
            NO_HEADERS,
            InvalidArgument,
        ),
        (
            "PUT",
            "/bucket/k?partNumber=1&uploadId=u&partNumber=2",
            NO_HEADERS,
            InvalidArgument,
        ),
        (
            "DELETE",
            "/bucket/k?uploadId=a&uploadId=",
            NO_HEADERS,
            InvalidArgument,
        ),
        // The same name once decoded.
        (
            "GET",
            "/bucket?prefix=a&pre%66ix=b",
            NO_HEADERS,
            InvalidArgument,
        ),
        (
            "GET",
            "/bucket?list-type=2&list%2Dtype=1",
            NO_HEADERS,
            InvalidArgument,
        ),
        (
            "GET",
            "/bucket/k?X-Amz-Signature=a&X-Amz-Signature=b",
            NO_HEADERS,
            InvalidArgument,
        ),
        // An empty parameter name.
        ("GET", "/bucket?=v", NO_HEADERS, InvalidArgument),
    ]);
}

#[test]
fn bad_copy_sources_are_invalid_argument() {
    let values: &[&[u8]] = &[
        b"no-slash",
        b"/no-slash",
        b"bucket/",
        b"/bucket/",
        b"",
        b"arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/k",
        b"bucket/key?versionId=",
        b"bucket/key?versionid=v1",
        b"bucket/key?partNumber=1",
        b"bucket/key?versionId=v1&x=y",
        b"bucket/key?versionId=%ff",
        b"bucket/key\xff",
        b"bucket/%ff%fe",
        b"bucket/%zz",
        b"bucket/a%2",
    ];
    let mut failures = Vec::new();
    for value in values {
        for uri in ["/dst-bucket/k", "/dst-bucket/k?partNumber=1&uploadId=u"] {
            let got = parse("PUT", uri, &[("x-amz-copy-source", value)]);
            if got.as_ref().err() != Some(&S3ErrorCode::InvalidArgument) {
                failures.push(format!(
                    "PUT {uri} x-amz-copy-source: {:?}: {got:?}",
                    String::from_utf8_lossy(value)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn keys_longer_than_1024_bytes_are_key_too_long() {
    let long = "k".repeat(1025);
    let at_limit = "k".repeat(1024);
    let encoded_long = "%41".repeat(1025);
    // 341 three-byte characters and two bytes: 1025 bytes in 343 characters.
    let multibyte = format!("{}ab", "%E6%97%A5".repeat(341));
    let cases = [
        ("GET", format!("/bucket/{long}"), NO_HEADERS),
        ("PUT", format!("/bucket/{encoded_long}"), NO_HEADERS),
        ("GET", format!("/bucket/{multibyte}"), NO_HEADERS),
        ("HEAD", format!("/{long}"), VHOST),
    ];
    for (method, uri, headers) in &cases {
        assert_eq!(
            parse(method, uri, headers).unwrap_err(),
            S3ErrorCode::KeyTooLongError,
            "{method} {}",
            &uri[..40]
        );
    }
    let copy_long = format!("src-bucket/{long}");
    assert_eq!(
        parse(
            "PUT",
            "/bucket/k",
            &[("x-amz-copy-source", copy_long.as_bytes())]
        )
        .unwrap_err(),
        S3ErrorCode::KeyTooLongError
    );
    // 1024 bytes is allowed, however it is spelled.
    let ok = parse("GET", &format!("/bucket/{at_limit}"), NO_HEADERS).unwrap();
    assert_eq!(ok.key.as_deref().map(str::len), Some(1024));
    let ok = parse(
        "GET",
        &format!("/bucket/{}", "%41".repeat(1024)),
        NO_HEADERS,
    )
    .unwrap();
    assert_eq!(ok.key, Some("A".repeat(1024)));
    let ok = parse(
        "GET",
        &format!("/bucket/{}a", "%E6%97%A5".repeat(341)),
        NO_HEADERS,
    )
    .unwrap();
    assert_eq!(ok.key.as_deref().map(str::len), Some(1024));
}

type HostCase<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    Addressing,
    Option<&'a str>,
    Option<&'a str>,
);

#[test]
fn the_bucket_comes_from_the_host_only_under_a_configured_domain() {
    let table: &[HostCase] = &[
        // (uri, host header, method, addressing, bucket, key)
        (
            "/abc/key",
            Some("src-bucket.s3.localhost"),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("abc/key"),
        ),
        (
            "/abc/key",
            Some("src-bucket.s3.localhost:9000"),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("abc/key"),
        ),
        (
            "/abc/key",
            Some("SRC-Bucket.S3.LocalHost"),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("abc/key"),
        ),
        // A fully qualified host name (trailing dot) is the same host: the bucket is not
        // taken from the path.
        (
            "/abc/key",
            Some("src-bucket.s3.localhost."),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("abc/key"),
        ),
        (
            "/abc/key",
            Some("src-bucket.s3.localhost.:9000"),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("abc/key"),
        ),
        (
            "/",
            Some("my.dotted-bucket.s3.localhost"),
            "GET",
            Addressing::VirtualHosted,
            Some("my.dotted-bucket"),
            None,
        ),
        (
            "//a",
            Some("src-bucket.s3.localhost"),
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("/a"),
        ),
        // Absolute-form / HTTP/2: the authority is in the URI.
        (
            "http://src-bucket.s3.localhost:9000/a",
            None,
            "GET",
            Addressing::VirtualHosted,
            Some("src-bucket"),
            Some("a"),
        ),
        // The endpoint itself and other hosts: path-style.
        (
            "/abc/key",
            Some("s3.localhost"),
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
        (
            "/abc/key",
            Some("s3.localhost."),
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
        (
            "/abc/key",
            Some("src-bucket.s3.localhost.evil.example"),
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
        (
            "/abc/key",
            Some("src-bucket-s3.localhost"),
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
        (
            "/abc/key",
            Some("[::1]:9000"),
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
        (
            "/abc/key",
            None,
            "GET",
            Addressing::PathStyle,
            Some("abc"),
            Some("key"),
        ),
    ];
    for (uri, host, method, addressing, bucket, key) in table {
        let headers: Vec<(&str, &[u8])> = host.iter().map(|h| ("host", h.as_bytes())).collect();
        let what = format!("{uri} host {host:?}");
        let r = parse(method, uri, &headers).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.addressing, *addressing, "{what}");
        assert_eq!(r.bucket.as_deref(), *bucket, "{what}");
        assert_eq!(r.key.as_deref(), *key, "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// Requests that parse but are no S3 operation s3-core knows: `Unknown`, with a reason.
// ---------------------------------------------------------------------------------------

fn assert_unknown_table(table: &[(&str, &str, Headers<'_>)]) {
    let failures: Vec<String> = table
        .iter()
        .filter_map(|(method, uri, headers)| match parse(method, uri, headers) {
            Ok(r) if r.operation == S3Operation::Unknown && r.unknown_reason.is_some() => None,
            other => Some(format!("{method} {uri} {headers:?}: {other:?}")),
        })
        .collect();
    assert!(failures.is_empty(), "not Unknown:\n{}", failures.join("\n"));
}

#[test]
fn unknown_sub_resources_are_unknown() {
    assert_unknown_table(&[
        ("GET", "/bucket?unknownsubresource", NO_HEADERS),
        ("PUT", "/bucket/key?unknownsubresource", NO_HEADERS),
        ("GET", "/bucket?session", NO_HEADERS),
        ("GET", "/bucket?metadataTable", NO_HEADERS),
        ("PUT", "/bucket?abac", NO_HEADERS),
        ("PUT", "/bucket/key?renameObject", NO_HEADERS),
        ("PUT", "/bucket/key?encryption", NO_HEADERS),
        ("GET", "/bucket/key?annotation", NO_HEADERS),
        // Sub-resource names are case-sensitive.
        ("GET", "/bucket?ACL", NO_HEADERS),
        ("GET", "/bucket/key?Tagging", NO_HEADERS),
        // A bucket sub-resource on an object and the other way round.
        ("GET", "/bucket/key?policy", NO_HEADERS),
        ("GET", "/bucket/key?versioning", NO_HEADERS),
        ("GET", "/bucket?retention", NO_HEADERS),
        ("POST", "/bucket?restore", NO_HEADERS),
        ("GET", "/?acl", NO_HEADERS),
    ]);
}

#[test]
fn parameters_an_operation_does_not_take_are_unknown() {
    assert_unknown_table(&[
        ("GET", "/bucket/key?prefix=a", NO_HEADERS),
        ("PUT", "/bucket/key?versionId=v1", NO_HEADERS),
        ("PUT", "/bucket/key?partNumber=1", NO_HEADERS),
        ("DELETE", "/bucket/key?partNumber=1", NO_HEADERS),
        ("GET", "/bucket?acl&prefix=a", NO_HEADERS),
        ("GET", "/bucket?list-type=2&marker=m", NO_HEADERS),
        ("GET", "/bucket?marker=m&start-after=s", NO_HEADERS),
        ("GET", "/bucket?max-uploads=1", NO_HEADERS),
        ("GET", "/bucket?versions&max-uploads=1", NO_HEADERS),
        ("POST", "/bucket?delete&prefix=a", NO_HEADERS),
        ("PUT", "/bucket?versioning&versionId=v", NO_HEADERS),
        ("GET", "/bucket?analytics&prefix=a", NO_HEADERS),
        ("GET", "/?max-directory-buckets=5", NO_HEADERS),
        ("POST", "/bucket/key?uploads&partNumber=1", NO_HEADERS),
        (
            "GET",
            "/bucket/key?x-amz-signature=lower-case-presign-param",
            NO_HEADERS,
        ),
    ]);
}

#[test]
fn two_sub_resources_are_unknown() {
    assert_unknown_table(&[
        ("GET", "/bucket?acl&policy", NO_HEADERS),
        ("GET", "/bucket?versions&uploads", NO_HEADERS),
        ("GET", "/bucket?list-type=2&versions", NO_HEADERS),
        ("PUT", "/bucket?tagging&cors", NO_HEADERS),
        ("POST", "/bucket?delete&uploads", NO_HEADERS),
        ("GET", "/bucket/key?acl&tagging", NO_HEADERS),
        ("PUT", "/bucket/key?uploadId=u&partNumber=1&acl", NO_HEADERS),
        ("POST", "/bucket/key?uploads&uploadId=u", NO_HEADERS),
        ("DELETE", "/bucket/key?uploadId=u&tagging", NO_HEADERS),
        (
            "POST",
            "/bucket/key?restore&select&select-type=2",
            NO_HEADERS,
        ),
    ]);
}

#[test]
fn methods_s3_does_not_have_on_the_target_are_unknown() {
    assert_unknown_table(&[
        ("PATCH", "/bucket/key", NO_HEADERS),
        ("PATCH", "/bucket", NO_HEADERS),
        ("PATCH", "/", NO_HEADERS),
        ("OPTIONS", "/bucket/key", NO_HEADERS),
        ("OPTIONS", "/bucket", NO_HEADERS),
        ("OPTIONS", "/", NO_HEADERS),
        ("TRACE", "/bucket/key", NO_HEADERS),
        ("PUT", "/", NO_HEADERS),
        ("DELETE", "/", NO_HEADERS),
        ("HEAD", "/", NO_HEADERS),
        ("POST", "/?Action=AssumeRole", NO_HEADERS),
        ("POST", "/bucket/key", NO_HEADERS),
        ("POST", "/bucket/key?acl", NO_HEADERS),
        ("DELETE", "/bucket?acl", NO_HEADERS),
        ("DELETE", "/bucket?versioning", NO_HEADERS),
        ("HEAD", "/bucket?acl", NO_HEADERS),
        ("HEAD", "/bucket/key?tagging", NO_HEADERS),
        ("GET", "/bucket/key?uploads", NO_HEADERS),
        ("GET", "/bucket/key?restore", NO_HEADERS),
        ("PUT", "/bucket?location", NO_HEADERS),
        ("PUT", "/bucket?list-type=2", NO_HEADERS),
        ("GET", "/bucket?delete", NO_HEADERS),
        ("PATCH", "/key", VHOST),
    ]);
}

#[test]
fn copy_source_outside_copy_operations_is_unknown() {
    let cs: &[(&str, &[u8])] = &[("x-amz-copy-source", b"src-bucket/k")];
    assert_unknown_table(&[
        // As a query parameter (a presigner would hoist it there): never.
        (
            "PUT",
            "/bucket/key?x-amz-copy-source=src-bucket%2Fk",
            NO_HEADERS,
        ),
        (
            "PUT",
            "/bucket/key?X-Amz-Copy-Source=src-bucket%2Fk",
            NO_HEADERS,
        ),
        (
            "PUT",
            "/bucket/key?partNumber=1&uploadId=u&x-amz-copy-source=src-bucket%2Fk",
            NO_HEADERS,
        ),
        (
            "PUT",
            "/bucket/key?partNumber=1&uploadId=u&x-amz-copy-source-range=bytes%3D0-1",
            NO_HEADERS,
        ),
        // As a header on anything but PUT object / PUT part.
        ("GET", "/bucket/key", cs),
        ("HEAD", "/bucket/key", cs),
        ("DELETE", "/bucket/key", cs),
        ("POST", "/bucket/key?uploads", cs),
        ("PUT", "/bucket", cs),
        ("PUT", "/bucket?acl", cs),
        ("PUT", "/bucket/key?acl", cs),
        ("PUT", "/bucket/key?tagging", cs),
    ]);
    // Other hoisted x-amz-* headers are accepted (JS SDK v3 presigned PUTs carry them).
    let ok = parse(
        "PUT",
        "/bucket/key?x-amz-acl=private&x-amz-meta-a=b&x-id=PutObject",
        NO_HEADERS,
    )
    .unwrap();
    assert_eq!(ok.operation, S3Operation::PutObject);
}

#[test]
fn form_uploads_and_list_type_1_are_unknown() {
    let form: &[(&str, &[u8])] = &[(
        "content-type",
        b"multipart/form-data; boundary=----WebKitFormBoundary",
    )];
    assert_unknown_table(&[
        ("POST", "/bucket", form),
        ("POST", "/bucket", NO_HEADERS),
        ("POST", "/bucket/", form),
        ("POST", "/", &[("host", b"src-bucket.s3.localhost")]),
        ("GET", "/bucket?list-type=1", NO_HEADERS),
        ("GET", "/bucket?list-type", NO_HEADERS),
        ("GET", "/bucket?list-type=3", NO_HEADERS),
        ("GET", "/bucket?list-type=2%20", NO_HEADERS),
        ("POST", "/bucket/key?select", NO_HEADERS),
        ("POST", "/bucket/key?select&select-type=1", NO_HEADERS),
    ]);
    let r = parse("POST", "/bucket", form).unwrap();
    assert!(r.unknown_reason.unwrap().contains("PostObject"));
}

// ---------------------------------------------------------------------------------------
// The resources each operation touches.
// ---------------------------------------------------------------------------------------

fn object(bucket: &str, key: &str, version_id: Option<&str>) -> Resource {
    Resource::Object {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.map(Into::into),
    }
}

fn access(iam_action: &'static str, resource: Resource) -> ResourceAccess {
    ResourceAccess {
        iam_action,
        resource,
    }
}

#[test]
fn copy_object_needs_put_on_the_destination_and_get_on_the_source() {
    // boto3's CopyObject with a space and a plus in the source key.
    let r = parse(
        "PUT",
        "/dst-bucket/copied/a%20b%2Bc.txt",
        &[("x-amz-copy-source", b"src-bucket/dir/a%20b%2Bc.txt")],
    )
    .unwrap();
    assert_eq!(r.operation, S3Operation::CopyObject);
    assert_eq!(
        r.resources(),
        vec![
            access(
                "s3:PutObject",
                object("dst-bucket", "copied/a b+c.txt", None)
            ),
            access("s3:GetObject", object("src-bucket", "dir/a b+c.txt", None)),
        ]
    );
    assert_eq!(
        r.resources()[1].resource.arn(),
        "arn:aws:s3:::src-bucket/dir/a b+c.txt"
    );

    // A source version needs s3:GetObjectVersion; the leading '/' is optional.
    let r = parse(
        "PUT",
        "/k",
        &[
            ("host", b"dst-bucket.s3.localhost"),
            (
                "x-amz-copy-source",
                b"/src-bucket/%C3%BC/..x%2Fy?versionId=3HL4kqtJ%2Bv",
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        r.resources(),
        vec![
            access("s3:PutObject", object("dst-bucket", "k", None)),
            access(
                "s3:GetObjectVersion",
                object("src-bucket", "\u{fc}/..x/y", Some("3HL4kqtJ+v"))
            ),
        ]
    );

    // UploadPartCopy: the same pair.
    let r = parse(
        "PUT",
        "/dst-bucket/big?partNumber=2&uploadId=u",
        &[("x-amz-copy-source", b"src-bucket/part?versionId=v9")],
    )
    .unwrap();
    assert_eq!(r.operation, S3Operation::UploadPartCopy);
    assert_eq!(
        r.resources(),
        vec![
            access("s3:PutObject", object("dst-bucket", "big", None)),
            access(
                "s3:GetObjectVersion",
                object("src-bucket", "part", Some("v9"))
            ),
        ]
    );
}

#[test]
fn delete_objects_names_the_keys_in_the_body() {
    let r = parse("POST", "/src-bucket/?delete=", NO_HEADERS).unwrap();
    assert_eq!(r.operation, S3Operation::DeleteObjects);
    let res = r.resources();
    assert_eq!(
        res,
        vec![access(
            "s3:DeleteObject",
            Resource::ObjectsInBody {
                bucket: "src-bucket".into()
            }
        )]
    );
    assert_eq!(res[0].resource.arn(), "arn:aws:s3:::src-bucket/*");
}

#[test]
fn object_listings_carry_their_decoded_prefix() {
    let r = parse(
        "GET",
        "/src-bucket?list-type=2&prefix=photos%2F2024%2Fa%20b%2Bc&delimiter=%2F&encoding-type=url",
        NO_HEADERS,
    )
    .unwrap();
    assert_eq!(r.operation, S3Operation::ListObjectsV2);
    let bucket_with = |prefix: Option<&str>| Resource::Bucket {
        bucket: "src-bucket".into(),
        prefix: prefix.map(Into::into),
    };
    assert_eq!(
        r.resources(),
        vec![access(
            "s3:ListBucket",
            bucket_with(Some("photos/2024/a b+c"))
        )]
    );
    assert_eq!(r.resources()[0].resource.arn(), "arn:aws:s3:::src-bucket");
    // No prefix: None, not Some("").
    let r = parse("GET", "/?list-type=2", VHOST).unwrap();
    assert_eq!(
        r.resources(),
        vec![access("s3:ListBucket", bucket_with(None))]
    );
    // An empty prefix (the CLI's `aws s3 ls s3://bucket`) is Some("").
    let r = parse(
        "GET",
        "/src-bucket?list-type=2&prefix=&delimiter=%2F",
        NO_HEADERS,
    )
    .unwrap();
    assert_eq!(
        r.resources(),
        vec![access("s3:ListBucket", bucket_with(Some("")))]
    );
    // Versions and uploads listings too.
    let r = parse("GET", "/src-bucket?versions&prefix=p%2F", NO_HEADERS).unwrap();
    assert_eq!(
        r.resources(),
        vec![access("s3:ListBucketVersions", bucket_with(Some("p/")))]
    );
    let r = parse("GET", "/src-bucket?uploads&prefix=p%2F", NO_HEADERS).unwrap();
    assert_eq!(
        r.resources(),
        vec![access(
            "s3:ListBucketMultipartUploads",
            bucket_with(Some("p/"))
        )]
    );
}

#[test]
fn a_version_id_selects_the_versioned_action() {
    let table = [
        ("GET", "/b-1/k?versionId=v1", "s3:GetObjectVersion"),
        (
            "HEAD",
            "/b-1/k?versionId=v1&partNumber=2",
            "s3:GetObjectVersion",
        ),
        ("DELETE", "/b-1/k?versionId=v1", "s3:DeleteObjectVersion"),
        ("GET", "/b-1/k?acl&versionId=v1", "s3:GetObjectVersionAcl"),
        ("PUT", "/b-1/k?acl&versionId=v1", "s3:PutObjectVersionAcl"),
        (
            "GET",
            "/b-1/k?tagging&versionId=v1",
            "s3:GetObjectVersionTagging",
        ),
        (
            "PUT",
            "/b-1/k?tagging&versionId=v1",
            "s3:PutObjectVersionTagging",
        ),
        (
            "DELETE",
            "/b-1/k?tagging&versionId=v1",
            "s3:DeleteObjectVersionTagging",
        ),
        (
            "GET",
            "/b-1/k?attributes&versionId=v1",
            "s3:GetObjectVersionAttributes",
        ),
        // No versioned action: the operation's own.
        ("POST", "/b-1/k?restore&versionId=v1", "s3:RestoreObject"),
        (
            "GET",
            "/b-1/k?retention&versionId=v1",
            "s3:GetObjectRetention",
        ),
        // Without a version id: the plain action.
        ("GET", "/b-1/k", "s3:GetObject"),
        ("DELETE", "/b-1/k", "s3:DeleteObject"),
    ];
    for (method, uri, action) in table {
        let r = parse(method, uri, NO_HEADERS).unwrap();
        let res = r.resources();
        assert_eq!(res.len(), 1, "{method} {uri}");
        assert_eq!(res[0].iam_action, action, "{method} {uri}");
        let version = r.query.get("versionId");
        assert_eq!(
            res[0].resource,
            object("b-1", "k", version),
            "{method} {uri}"
        );
    }
}

#[test]
fn list_buckets_is_the_service_and_unknown_touches_nothing() {
    let r = parse("GET", "/?x-id=ListBuckets", NO_HEADERS).unwrap();
    assert_eq!(r.operation, S3Operation::ListBuckets);
    assert_eq!(
        r.resources(),
        vec![access("s3:ListAllMyBuckets", Resource::Service)]
    );
    assert_eq!(Resource::Service.arn(), "*");
    assert_eq!(r.resource_path(), "/");

    let r = parse("PATCH", "/bucket/key", NO_HEADERS).unwrap();
    assert_eq!(r.operation, S3Operation::Unknown);
    assert!(r.resources().is_empty());
}

// ---------------------------------------------------------------------------------------
// The layer, end to end.
// ---------------------------------------------------------------------------------------

type Body = Full<Bytes>;

/// The layer around an inner service that echoes the operation it saw and counts calls.
fn service(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(S3RequestLayer::new().virtual_host_domain(DOMAIN))
        .service(service_fn(move |req: Request<Body>| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let s3 = req.extensions().get::<S3Request>().unwrap();
                let id = req.extensions().get::<RequestId>().unwrap();
                let mut resp = Response::new(Full::new(Bytes::from(format!(
                    "{} {} {:?} {:?}",
                    id.as_str(),
                    s3.operation,
                    s3.bucket,
                    s3.key
                ))));
                resp.headers_mut()
                    .insert("x-inner", HeaderValue::from_static("yes"));
                Ok::<_, Infallible>(resp)
            }
        }))
}

async fn call(req: Request<Body>) -> (Response<Body>, String, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let resp = service(Arc::clone(&calls)).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (
        Response::from_parts(parts, Full::new(bytes)),
        text,
        calls.load(Ordering::SeqCst),
    )
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::default())
        .unwrap()
}

fn request_id(resp: &Response<Body>) -> String {
    resp.headers()
        .get(REQUEST_ID_HEADER)
        .expect("x-amz-request-id header")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn unknown_operations_get_501_not_implemented_xml() {
    let (resp, body, calls) = call(request("PATCH", "/src-bucket/a%20b")).await;
    assert_eq!(calls, 0, "an unknown operation reached the inner service");
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    assert_eq!(resp.headers()["content-type"], "application/xml");
    let id = request_id(&resp);
    assert_eq!(id.len(), 16);
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(body.contains("<Code>NotImplemented</Code>"), "{body}");
    assert!(
        body.contains("<Resource>/src-bucket/a b</Resource>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{body}"
    );
    assert!(!resp.headers().contains_key("x-inner"));

    // Refused real-client shapes from the fixture get the same answer.
    for shape in shapes().iter().filter(|s| s.operation == "Unknown") {
        let (resp, body, calls) = call(shape.request()).await;
        assert_eq!(calls, 0, "{}", shape.describe());
        assert_eq!(
            resp.status(),
            StatusCode::NOT_IMPLEMENTED,
            "{}",
            shape.describe()
        );
        assert!(
            body.contains("<Code>NotImplemented</Code>"),
            "{}",
            shape.describe()
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_their_error_code_with_a_request_id() {
    let table = [
        ("GET", "/bucket/%zz", StatusCode::BAD_REQUEST, "InvalidURI"),
        (
            "GET",
            "/Bad_Bucket/x",
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
        ),
        (
            "GET",
            "/bucket?prefix=a&prefix=b",
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
        ),
        (
            "GET",
            "/?acl&policy",
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
        ),
    ];
    for (method, uri, status, code) in table {
        let (resp, body, calls) = call(request(method, uri)).await;
        assert_eq!(calls, 0, "{uri}");
        assert_eq!(resp.status(), status, "{uri}");
        assert!(
            body.contains(&format!("<Code>{code}</Code>")),
            "{uri}: {body}"
        );
        let id = request_id(&resp);
        assert!(
            body.contains(&format!("<RequestId>{id}</RequestId>")),
            "{body}"
        );
    }
    // Refused real-client shapes from the fixture.
    for shape in shapes().iter().filter(|s| s.error.is_some()) {
        let code = shape.error.as_deref().unwrap();
        let (resp, body, calls) = call(shape.request()).await;
        assert_eq!(calls, 0, "{}", shape.describe());
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            shape.describe()
        );
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    }
    let long = format!("/bucket/{}", "k".repeat(1025));
    let (resp, body, _) = call(request("PUT", &long)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>KeyTooLongError</Code>"), "{body}");
}

#[tokio::test]
async fn head_errors_have_an_empty_body() {
    for (uri, status) in [
        ("/bucket?acl", StatusCode::NOT_IMPLEMENTED),
        ("/bucket/key?tagging", StatusCode::NOT_IMPLEMENTED),
        ("/Bad_Bucket/key", StatusCode::BAD_REQUEST),
        ("/bucket/%ff", StatusCode::BAD_REQUEST),
    ] {
        let (resp, body, calls) = call(request("HEAD", uri)).await;
        assert_eq!(calls, 0, "{uri}");
        assert_eq!(resp.status(), status, "{uri}");
        assert!(body.is_empty(), "HEAD {uri} got a body: {body}");
        assert!(resp.headers().contains_key(REQUEST_ID_HEADER), "{uri}");
    }
    // The same errors on GET do have a body.
    let (_, body, _) = call(request("GET", "/Bad_Bucket/key")).await;
    assert!(body.contains("<Code>InvalidBucketName</Code>"), "{body}");
}

#[tokio::test]
async fn known_operations_reach_the_inner_service_with_the_parsed_request() {
    let mut req = request("GET", "/photos/a%20b%2Bc.jpg?versionId=v1");
    req.headers_mut().insert(
        "host",
        HeaderValue::from_static("src-bucket.s3.localhost:9000"),
    );
    let (resp, body, calls) = call(req).await;
    assert_eq!(calls, 1);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-inner"], "yes");
    let id = request_id(&resp);
    assert_eq!(
        body,
        format!("{id} GetObject Some(\"src-bucket\") Some(\"photos/a b+c.jpg\")")
    );

    // A request id already in the extensions is kept.
    let mut req = request("GET", "/");
    req.extensions_mut().insert(RequestId::new("OUTER-ID"));
    let (resp, body, _) = call(req).await;
    assert_eq!(request_id(&resp), "OUTER-ID");
    assert_eq!(body, "OUTER-ID ListBuckets None None");

    // Every known captured shape goes through, as its operation.
    for shape in shapes()
        .iter()
        .filter(|s| s.operation != "Unknown" && s.error.is_none())
    {
        let (resp, body, calls) = call(shape.request()).await;
        assert_eq!(calls, 1, "{}", shape.describe());
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}: {body}",
            shape.describe()
        );
        let id = request_id(&resp);
        assert_eq!(
            body,
            format!(
                "{id} {} {:?} {:?}",
                shape.operation, shape.bucket, shape.key
            ),
            "{}",
            shape.describe()
        );
    }
}
