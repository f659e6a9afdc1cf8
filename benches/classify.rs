//! `S3RequestParser::parse` on the request shapes a gateway sees most.
//!
//! ```text
//! cargo bench --bench classify
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri};
use s3_tower::core::{Addressing, S3Operation, S3RequestParser};

/// One request to parse: its method, URI and headers, and what it must parse to.
struct Shape {
    name: &'static str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    expected: S3Operation,
}

/// Headers a typical SDK request carries besides the ones that matter to the parser.
fn sdk_headers(host: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(host).unwrap());
    h.insert(
        "user-agent",
        HeaderValue::from_static("aws-sdk-rust/1.0 os/linux lang/rust/1.95"),
    );
    h.insert("x-amz-date", HeaderValue::from_static("20250101T000000Z"));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
    );
    h
}

fn shape(
    name: &'static str,
    method: Method,
    uri: &str,
    headers: HeaderMap,
    expected: S3Operation,
) -> Shape {
    Shape {
        name,
        method,
        uri: uri.parse().unwrap(),
        headers,
        expected,
    }
}

fn shapes() -> Vec<Shape> {
    let path_host = "gw.example.com:8190";
    let mut put = sdk_headers(path_host);
    put.insert("content-length", HeaderValue::from_static("1048576"));
    put.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    let mut copy = sdk_headers(path_host);
    copy.insert(
        "x-amz-copy-source",
        HeaderValue::from_static(
            "/src-bucket/photos/2024/%C3%A9t%C3%A9%20cat.jpg?versionId=3HL4kqtJlcpXroDTDmJ",
        ),
    );
    let mut part = sdk_headers(path_host);
    part.insert("content-length", HeaderValue::from_static("5242880"));
    vec![
        shape(
            "get_object_path_encoded_key",
            Method::GET,
            "http://gw.example.com:8190/my-bucket/photos/2024/%C3%A9t%C3%A9%20cat%2B1.jpg",
            sdk_headers(path_host),
            S3Operation::GetObject,
        ),
        shape(
            "put_object",
            Method::PUT,
            "http://gw.example.com:8190/my-bucket/data/part-00001.parquet",
            put,
            S3Operation::PutObject,
        ),
        shape(
            "list_objects_v2",
            Method::GET,
            "http://gw.example.com:8190/my-bucket?list-type=2&prefix=photos%2F2024%2F&delimiter=%2F&encoding-type=url&max-keys=1000",
            sdk_headers(path_host),
            S3Operation::ListObjectsV2,
        ),
        shape(
            "copy_object",
            Method::PUT,
            "http://gw.example.com:8190/dst-bucket/photos/copy.jpg",
            copy,
            S3Operation::CopyObject,
        ),
        shape(
            "upload_part",
            Method::PUT,
            "http://gw.example.com:8190/my-bucket/big/video.mp4?partNumber=7&uploadId=VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA",
            part,
            S3Operation::UploadPart,
        ),
        shape(
            "get_object_virtual_hosted",
            Method::GET,
            "/photos/2024/cat.jpg",
            sdk_headers("my-bucket.s3.example.com"),
            S3Operation::GetObject,
        ),
        shape(
            "unknown",
            Method::PATCH,
            "http://gw.example.com:8190/my-bucket/some/key",
            sdk_headers(path_host),
            S3Operation::Unknown,
        ),
    ]
}

fn bench_parse(c: &mut Criterion) {
    let parser = S3RequestParser::new().virtual_host_domain("s3.example.com");
    let shapes = shapes();
    // A benchmark that measures errors or the wrong path is worthless: check every shape.
    for s in &shapes {
        let parsed = parser.parse(&s.method, &s.uri, &s.headers).unwrap();
        assert_eq!(parsed.operation, s.expected, "{}", s.name);
        if s.name == "get_object_virtual_hosted" {
            assert_eq!(parsed.addressing, Addressing::VirtualHosted);
            assert_eq!(parsed.bucket.as_deref(), Some("my-bucket"));
        }
        if s.name == "copy_object" {
            assert!(parsed.copy_source.is_some());
        }
    }

    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(1));
    for s in &shapes {
        group.bench_function(s.name, |b| {
            b.iter(|| {
                black_box(parser.parse(
                    black_box(&s.method),
                    black_box(&s.uri),
                    black_box(&s.headers),
                ))
            });
        });
    }
    group.throughput(Throughput::Elements(shapes.len() as u64));
    group.bench_function("all_shapes", |b| {
        b.iter(|| {
            for s in &shapes {
                let _ = black_box(parser.parse(
                    black_box(&s.method),
                    black_box(&s.uri),
                    black_box(&s.headers),
                ));
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_parse
}
criterion_main!(benches);
