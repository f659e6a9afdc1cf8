//! `prepare_upstream_request` (strip client credentials, rewrite the URI, SigV4-sign) on a
//! typical PutObject, next to a baseline that only clones the request head, so the ratio
//! shows what re-signing costs per request.
//!
//! ```text
//! cargo bench --bench sign
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use s3_tower::core::{S3Operation, S3RequestParser};
use s3_tower::resign::{Backend, BackendAddressing, BackendCredentials, prepare_upstream_request};

/// A PutObject as an SDK sends it: 11 headers, the client's signature among them.
fn put_object() -> Request<()> {
    Request::put("http://gw.example.com:8190/my-bucket/data/2025/01/part-00001.parquet")
        .header("host", "gw.example.com:8190")
        .header("user-agent", "aws-sdk-rust/1.0 os/linux lang/rust/1.95")
        .header("content-type", "application/octet-stream")
        .header("content-length", "1048576")
        .header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
        .header("x-amz-date", "20250101T000000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header(
            "x-amz-security-token",
            "FwoGZXIvYXdzEJr//////////wEaDN9client-session-token",
        )
        .header("x-amz-meta-owner", "team-data")
        .header("expect", "100-continue")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20250101/us-east-1/s3/aws4_request, \
             SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date;\
             x-amz-meta-owner;x-amz-security-token, \
             Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .body(())
        .unwrap()
}

fn bench_sign(c: &mut Criterion) {
    let template = put_object();
    let s3 = S3RequestParser::new()
        .parse(template.method(), template.uri(), template.headers())
        .unwrap();
    assert_eq!(s3.operation, S3Operation::PutObject);
    let backend = Backend::new(
        "backend",
        "http://127.0.0.1:9000",
        "us-east-1",
        BackendAddressing::Path,
        BackendCredentials::from_static("GATEWAYKEY", "gateway-secret", None),
    )
    .unwrap();
    let creds = Credentials::new("GATEWAYKEY", "gateway-secret", None, None, "bench");

    // The signed request must really be signed with the gateway's key.
    let mut check = template.clone();
    prepare_upstream_request(&mut check, &s3, &backend, &creds, SystemTime::now()).unwrap();
    let auth = check.headers()["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=GATEWAYKEY/"),
        "{auth}"
    );
    assert!(check.headers().get("x-amz-security-token").is_none());
    assert_eq!(
        check.uri(),
        "http://127.0.0.1:9000/my-bucket/data/2025/01/part-00001.parquet"
    );

    let mut group = c.benchmark_group("sign_put_object");
    group.bench_function("baseline_clone_head", |b| {
        b.iter(|| black_box(black_box(&template).clone()));
    });
    group.bench_function("clone_and_prepare_upstream_request", |b| {
        b.iter(|| {
            let mut req = black_box(&template).clone();
            prepare_upstream_request(&mut req, &s3, &backend, &creds, SystemTime::now()).unwrap();
            black_box(req)
        });
    });
    group.bench_function("prepare_upstream_request_only", |b| {
        b.iter_batched(
            || template.clone(),
            |mut req| {
                prepare_upstream_request(&mut req, &s3, &backend, &creds, SystemTime::now())
                    .unwrap();
                req
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_sign
}
criterion_main!(benches);
