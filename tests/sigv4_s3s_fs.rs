//! SigV4 authentication end to end: clients → hyper (HTTP and HTTPS) → `S3RequestLayer` →
//! `SigV4Layer` (two static users) → `ResignLayer` → `Upstream` → s3s-fs, all in process.
//!
//! - aws-sdk-s3 runs the foundation workload as a static user, over HTTP and over HTTPS
//!   (the SDK trusts the test's self-signed certificate through `SSL_CERT_FILE`, so that run
//!   happens in a child process of this test binary).
//! - Hand-built requests, signed by an independent signer (`sigv4_support::sign`, pinned to
//!   the AWS published examples and checked against aws-sigv4), are tampered with after
//!   signing: each refusal is checked for its HTTP status and S3 `<Code>`, and uploads for
//!   leaving no object behind (HEAD through a signed request is 404, no file in s3s-fs).
//! - A recorder between `SigV4Layer` and `ResignLayer` checks that every request reaching
//!   the inner layers carries the `Principal` of the user who signed it.
//! - aws-chunked uploads are encoded chunk by chunk by the test, so that chunks and
//!   trailers can be tampered with, reordered, dropped or cut short.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../examples/gateway/dev_backend.rs"]
mod dev_backend;
mod sigv4_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;
use http::Method;
use s3_tower::core::AuthMethod;

use sigv4_support::chunked::{ChunkedBody, ChunkedUpload, Streaming};
use sigv4_support::client::Scheme;
use sigv4_support::sign::{Checksum, EMPTY_SHA256, RawRequest, Signer, amz_date, object_path};
use sigv4_support::stack::{ALICE, Alpn, BOB, Gateway, TlsIdentity, User};

const MIB: usize = 1024 * 1024;

/// A payload that is not the same byte over and over.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i * 31 % 251).unwrap())
        .collect()
}

fn signer(user: User) -> Signer<'static> {
    Signer::new(user.access_key, user.secret)
}

// ---------------------------------------------------------------------------------------
// Helpers on the gateway: signed requests as alice, presence and absence of objects.
// ---------------------------------------------------------------------------------------

/// Creates `bucket` with a request signed by alice.
async fn create_bucket(gw: &Gateway, bucket: &str) {
    let req = gw
        .request(Scheme::Http, Method::PUT, &format!("/{bucket}"))
        .sign(&signer(ALICE));
    let reply = gw.send(Scheme::Http, req).await;
    assert_eq!(
        reply.status,
        200,
        "create bucket {bucket}: {}",
        reply.text()
    );
}

/// Stores `body` at `bucket/key` with a PUT signed by alice (signed SHA-256 payload).
async fn put_signed(gw: &Gateway, bucket: &str, key: &str, body: &[u8]) {
    let req = gw
        .request(Scheme::Http, Method::PUT, &object_path(bucket, key))
        .body(body.to_vec())
        .sign(&signer(ALICE));
    let reply = gw.send(Scheme::Http, req).await;
    assert_eq!(reply.status, 200, "put {key}: {}", reply.text());
}

/// Asserts that `bucket/key` holds exactly `expected`: through a GET signed by alice, and
/// in s3s-fs's directory.
async fn assert_stored(gw: &Gateway, bucket: &str, key: &str, expected: &[u8], context: &str) {
    let req = gw
        .request(Scheme::Http, Method::GET, &object_path(bucket, key))
        .sign(&signer(ALICE));
    let reply = gw.send(Scheme::Http, req).await;
    assert_eq!(reply.status, 200, "{context}: GET {key}: {}", reply.text());
    assert!(
        reply.body == expected,
        "{context}: GET {key} returned other bytes"
    );
    let file = std::fs::read(gw.object_file(bucket, key)).unwrap();
    assert!(file == expected, "{context}: s3s-fs holds other bytes");
}

/// Asserts that `bucket/key` does not exist: a HEAD signed by alice is 404 and s3s-fs has no
/// file for it.
async fn assert_absent(gw: &Gateway, bucket: &str, key: &str, context: &str) {
    let req = gw
        .request(Scheme::Http, Method::HEAD, &object_path(bucket, key))
        .sign(&signer(ALICE));
    let reply = gw.send(Scheme::Http, req).await;
    assert_eq!(reply.status, 404, "{context}: HEAD {key} after the refusal");
    assert!(
        !gw.object_file(bucket, key).exists(),
        "{context}: s3s-fs has a file for {key}"
    );
}

// ---------------------------------------------------------------------------------------
// The test signer against the AWS published examples.
// ---------------------------------------------------------------------------------------

/// The examples of the AWS documentation ("Authenticating Requests: Using the Authorization
/// Header", "...: Using Query Parameters", "sigv4-streaming", "sigv4-streaming-trailers").
#[test]
fn signer_reproduces_the_aws_published_examples() {
    // 2013-05-24T00:00:00Z
    let time = UNIX_EPOCH + Duration::from_hours(380_376);
    assert_eq!(amz_date(time), "20130524T000000Z");
    let doc = Signer {
        access_key: "AKIAIOSFODNN7EXAMPLE",
        secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        time,
    };

    // GET Object with a Range header.
    let (_, signature) =
        RawRequest::new(Method::GET, "/test.txt", "examplebucket.s3.amazonaws.com")
            .header("range", "bytes=0-9")
            .sign_with(&doc, EMPTY_SHA256);
    assert_eq!(
        signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );

    // Presigned GET, one day.
    let presigned = RawRequest::new(Method::GET, "/test.txt", "examplebucket.s3.amazonaws.com")
        .presign(&doc, 86_400);
    assert!(presigned.path_and_query().ends_with(
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    ));

    // Signed chunks: 64 KiB + 1 KiB of 'a'.
    let payload = vec![b'a'; 66_560];
    let head = RawRequest::new(
        Method::PUT,
        "/examplebucket/chunkObject.txt",
        "s3.amazonaws.com",
    )
    .header("content-length", "66824")
    .header("x-amz-storage-class", "REDUCED_REDUNDANCY");
    let mut upload = ChunkedUpload::new(Streaming::Signed, payload.clone());
    upload.chunk_size = 65_536;
    let (head, body) = upload.build(head, &doc);
    assert!(
        head.header_value("authorization").unwrap().ends_with(
            "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        ),
        "seed signature"
    );
    let headers: Vec<&str> = body.chunks.iter().map(|c| c.header.as_str()).collect();
    assert_eq!(
        headers,
        [
            "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ]
    );
    assert_eq!(body.encode().len(), 66_824);

    // Signed chunks with a signed CRC32C trailer, from the published seed signature.
    let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
    let first = doc.chunk_signature(seed, &payload[..65_536]);
    let second = doc.chunk_signature(&first, &payload[65_536..]);
    let last = doc.chunk_signature(&second, b"");
    assert_eq!(
        [first.as_str(), second.as_str(), last.as_str()],
        [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ]
    );
    let crc32c = Checksum::Crc32c.of(&payload);
    assert_eq!(crc32c, "sOO8/Q==");
    assert_eq!(
        doc.trailer_signature(&last, &[("x-amz-checksum-crc32c", &crc32c)]),
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    );

    // The CRC check values.
    assert_eq!(Checksum::Crc32.of(b"123456789"), "y/Q5Jg==");
    assert_eq!(Checksum::Crc32c.of(b"123456789"), "4waSgw==");
}

/// The test signer and aws-sigv4 (the SDKs' signer) agree on the seed, chunk, trailer,
/// header and presigned signatures of requests like those the tests send.
#[test]
fn signer_agrees_with_aws_sigv4() {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
        SigningSettings, UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    // 2024-03-09T16:00:00Z
    let time = UNIX_EPOCH + Duration::from_hours(475_000);
    let ours = signer(ALICE).at(time);
    let identity = Credentials::new(ALICE.access_key, ALICE.secret, None, None, "test").into();
    let params = |presign: bool| {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        if presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_mins(5));
        } else {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
    };
    let theirs = |req: &RawRequest, body: SignableBody<'_>, presign: bool| {
        let headers = req
            .headers
            .iter()
            .filter(|(n, _)| {
                !["authorization", "x-amz-date", "x-amz-content-sha256"].contains(&n.as_str())
            })
            .map(|(n, v)| (n.as_str(), v.as_str()));
        let uri = format!("http://127.0.0.1:9000{}", req.path_and_query());
        let signable = SignableRequest::new(req.method.as_str(), &uri, headers, body).unwrap();
        sign(signable, &params(presign).into())
            .unwrap()
            .into_parts()
            .1
    };
    let path = object_path("bucket", "a key+%ü!*'()//?#");
    let base = RawRequest::new(Method::PUT, &path, "127.0.0.1:9000")
        .header("content-type", "text/plain")
        .header("x-amz-meta-colour", "blue");

    // A signed SHA-256 payload.
    let body = pattern(10_000);
    let (_, signature) = base
        .clone()
        .body(body.clone())
        .sign_with(&ours, &sigv4_support::sign::sha256_hex(&body));
    assert_eq!(signature, theirs(&base, SignableBody::Bytes(&body), false));

    // A presigned URL.
    let presigned = base.clone().presign(&ours, 300);
    let signature = &presigned.query.last().unwrap().1;
    assert_eq!(
        *signature,
        theirs(&base, SignableBody::UnsignedPayload, true)
    );

    // aws-chunked with signed chunks and a signed CRC32C trailer.
    let mut upload =
        ChunkedUpload::new(Streaming::SignedTrailer(Checksum::Crc32c), pattern(150_000));
    upload.chunk_size = 65_536;
    let (head, body) = upload.build(base.clone(), &ours);
    let mut running = theirs(
        &head,
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER".to_owned()),
        false,
    );
    assert!(
        head.header_value("authorization")
            .unwrap()
            .ends_with(&running)
    );
    for chunk in &body.chunks {
        running = v4::sign_chunk(&chunk.data, &running, &params(false))
            .unwrap()
            .signature()
            .to_owned();
        assert_eq!(
            chunk.header,
            format!("{:x};chunk-signature={running}", chunk.data.len())
        );
    }
    let checksum = Checksum::Crc32c.of(&upload.payload);
    let mut trailers = aws_sdk_s3::config::http::HttpRequest::empty();
    trailers
        .headers_mut()
        .insert("x-amz-checksum-crc32c", checksum.clone());
    let trailer_signature = v4::sign_trailer(trailers.headers(), &running, &params(false))
        .unwrap()
        .signature()
        .to_owned();
    assert_eq!(
        body.trailer,
        [
            format!("x-amz-checksum-crc32c:{checksum}"),
            format!("x-amz-trailer-signature:{trailer_signature}"),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// aws-sdk-s3: the foundation workload over HTTP and HTTPS.
// ---------------------------------------------------------------------------------------

fn sdk(gw: &Gateway, scheme: Scheme, user: User, checksums: RequestChecksumCalculation) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(gw.endpoint(scheme))
        .force_path_style(true)
        .request_checksum_calculation(checksums)
        .credentials_provider(Credentials::new(
            user.access_key,
            user.secret,
            None,
            None,
            "test",
        ))
        .build();
    Client::from_conf(conf)
}

async fn sdk_put(s3: &Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn sdk_get(s3: &Client, bucket: &str, key: &str) -> Bytes {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

/// Keys S3 clients must encode: spaces, `+`, `%`, unicode, `!*'()`, `//`, `?#`.
const SPECIAL_KEYS: &[&str] = &[
    "special/with space",
    "special/plus+sign",
    "special/per%cent%20not-a-space",
    "special/ünïcödé/日本語 ✓",
    "special/!*'()",
    "special/double//slash",
    "special/query?and#hash",
    "special/all of: a+b%c!d*e'f(g)h?i#j//ü",
];

/// A multipart upload of 5 MiB + 5 MiB + 1 MiB, the parts sent concurrently.
async fn sdk_multipart(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let data = pattern(11 * MIB);
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap();
    let part = |number: i32, range: std::ops::Range<usize>| {
        let body = data[range].to_vec();
        async move {
            let sent = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap_or_else(|e| panic!("upload part {number}: {e:?}"));
            CompletedPart::builder()
                .part_number(number)
                .e_tag(sent.e_tag().unwrap())
                .build()
        }
    };
    let (one, two, three) = tokio::join!(
        part(1, 0..5 * MIB),
        part(2, 5 * MIB..10 * MIB),
        part(3, 10 * MIB..11 * MIB)
    );
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(vec![one, two, three]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    data
}

/// The foundation workload through the gateway, as alice (and one listing as bob).
async fn sdk_workload(gw: &Gateway, scheme: Scheme) {
    // The SDK's default checksum behaviour, and signed payloads (no checksum, so the body's
    // SHA-256 is signed in x-amz-content-sha256).
    let alice = sdk(gw, scheme, ALICE, RequestChecksumCalculation::WhenSupported);
    let alice_signed = sdk(gw, scheme, ALICE, RequestChecksumCalculation::WhenRequired);
    let bob = sdk(gw, scheme, BOB, RequestChecksumCalculation::WhenSupported);
    let bucket = "workload";
    alice.create_bucket().bucket(bucket).send().await.unwrap();

    // In-memory bodies are sent with their SHA-256 signed; bodies streamed from a file are
    // sent aws-chunked with a CRC32 trailer when the SDK adds checksums.
    let small = pattern(1000);
    let big = pattern(8 * MIB);
    let files = tempfile::tempdir().unwrap();
    for (name, data) in [("small", &small), ("big", &big)] {
        std::fs::write(files.path().join(name), data).unwrap();
    }
    for (client, prefix) in [(&alice, "default"), (&alice_signed, "signed")] {
        for (name, data) in [("small", &small), ("big", &big)] {
            sdk_put(client, bucket, &format!("{prefix}/{name}"), data).await;
            let key = format!("{prefix}-streamed/{name}");
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(
                    ByteStream::from_path(files.path().join(name))
                        .await
                        .unwrap(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        }
    }
    for prefix in ["default", "signed", "default-streamed", "signed-streamed"] {
        for (name, data) in [("small", &small), ("big", &big)] {
            let key = format!("{prefix}/{name}");
            assert!(sdk_get(&alice, bucket, &key).await == data[..], "GET {key}");
        }
    }

    let ranged = alice
        .get_object()
        .bucket(bucket)
        .key("signed/big")
        .range("bytes=1000000-1000099")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.content_range(),
        Some("bytes 1000000-1000099/8388608")
    );
    assert_eq!(
        ranged.body.collect().await.unwrap().into_bytes(),
        big[1_000_000..1_000_100]
    );
    let head = alice
        .head_object()
        .bucket(bucket)
        .key("default/big")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(8 * 1024 * 1024));

    let listed = alice
        .list_objects_v2()
        .bucket(bucket)
        .prefix("signed/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["signed/big", "signed/small"]);

    alice
        .copy_object()
        .bucket(bucket)
        .key("copy/big")
        .copy_source(format!("{bucket}/default/big"))
        .send()
        .await
        .unwrap();
    assert!(
        sdk_get(&alice, bucket, "copy/big").await == big,
        "GET copy/big"
    );

    let multipart = Box::pin(sdk_multipart(&alice, bucket, "mpu/object")).await;
    assert!(
        sdk_get(&alice, bucket, "mpu/object").await == multipart,
        "GET mpu/object"
    );

    for key in SPECIAL_KEYS {
        sdk_put(&alice, bucket, key, key.as_bytes()).await;
        assert_eq!(sdk_get(&alice, bucket, key).await, key.as_bytes(), "{key}");
        let head = alice
            .head_object()
            .bucket(bucket)
            .key(*key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
        assert_eq!(
            head.content_length(),
            Some(i64::try_from(key.len()).unwrap()),
            "{key}"
        );
    }

    // Presigned GET and PUT, fetched with a plain hyper client.
    let five_minutes = PresigningConfig::expires_in(Duration::from_mins(5)).unwrap();
    let special = SPECIAL_KEYS[SPECIAL_KEYS.len() - 1];
    let get = alice
        .get_object()
        .bucket(bucket)
        .key(special)
        .presigned(five_minutes.clone())
        .await
        .unwrap();
    let headers: Vec<_> = get.headers().collect();
    let reply = gw
        .send_url(scheme, Method::GET, get.uri(), &headers, Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "presigned GET: {}", reply.text());
    assert_eq!(reply.body, special.as_bytes());
    let put = alice
        .put_object()
        .bucket(bucket)
        .key("presigned/put ü+!")
        .presigned(five_minutes)
        .await
        .unwrap();
    let headers: Vec<_> = put.headers().collect();
    let reply = gw
        .send_url(
            scheme,
            Method::PUT,
            put.uri(),
            &headers,
            Bytes::from_static(b"uploaded with a presigned URL"),
        )
        .await;
    assert_eq!(reply.status, 200, "presigned PUT: {}", reply.text());
    assert_eq!(
        sdk_get(&alice, bucket, "presigned/put ü+!").await,
        "uploaded with a presigned URL"
    );

    let delete = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key("default/small")
                .build()
                .unwrap(),
        )
        .objects(
            ObjectIdentifier::builder()
                .key("signed/small")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let deleted = alice
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 2);
    let gone = alice
        .head_object()
        .bucket(bucket)
        .key("default/small")
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_not_found());

    let by_bob = bob
        .list_objects_v2()
        .bucket(bucket)
        .prefix("copy/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = by_bob.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["copy/big"]);

    // Every request reached the inner layers with the principal of its signer.
    let seen = gw.seen();
    for s in &seen {
        let expected = if s.subject.as_deref() == Some("bob") {
            (Method::GET, format!("/{bucket}/"), Some(AuthMethod::SigV4))
        } else {
            assert_eq!(s.subject.as_deref(), Some("alice"), "{s:?}");
            (s.method.clone(), s.path.clone(), s.auth)
        };
        assert_eq!(
            (s.method.clone(), s.path.clone(), s.auth),
            expected,
            "{s:?}"
        );
    }
    let presigned: Vec<_> = seen
        .iter()
        .filter(|s| s.auth == Some(AuthMethod::Presigned))
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(presigned, [Method::GET, Method::PUT]);
    assert_eq!(
        seen.iter()
            .filter(|s| s.subject.as_deref() == Some("bob"))
            .count(),
        1
    );

    // Both payload modes were exercised: the default client streams aws-chunked with a
    // checksum trailer, the other signs the SHA-256 of the body.
    let wire = gw.wire();
    let put = |key: &str| {
        let path = format!("/{bucket}/{key}");
        let w = wire
            .iter()
            .find(|w| w.method == Method::PUT && w.path == path)
            .unwrap();
        (
            w.content_sha256.clone().unwrap_or_default(),
            w.content_encoding.clone(),
            w.trailer.clone(),
        )
    };
    let signed = |data: &[u8]| (sigv4_support::sign::sha256_hex(data), None, None);
    // Over HTTP the SDK signs every chunk and the trailer; over HTTPS it does not.
    let streamed_mode = match scheme {
        Scheme::Http => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        Scheme::Https => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    };
    let some = |s: &str| Some(s.to_owned());
    for (name, data) in [("small", &small), ("big", &big)] {
        assert_eq!(put(&format!("default/{name}")), signed(data));
        assert_eq!(put(&format!("signed/{name}")), signed(data));
        assert_eq!(
            put(&format!("default-streamed/{name}")),
            (
                streamed_mode.to_owned(),
                some("aws-chunked"),
                some("x-amz-checksum-crc32")
            )
        );
        assert_eq!(
            put(&format!("signed-streamed/{name}")),
            ("UNSIGNED-PAYLOAD".to_owned(), None, None)
        );
    }
    eprintln!(
        "{scheme:?}: {} requests, HTTP versions {:?}",
        wire.len(),
        wire.iter()
            .map(|w| w.version)
            .collect::<std::collections::BTreeSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_workload_over_http() {
    let gw = Gateway::start().await;
    Box::pin(sdk_workload(&gw, Scheme::Http)).await;
}

const TLS_CERT_ENV: &str = "SIGV4_S3S_FS_TLS_CERT";
const TLS_KEY_ENV: &str = "SIGV4_S3S_FS_TLS_KEY";
const TLS_ALPN_ENV: &str = "SIGV4_S3S_FS_TLS_ALPN";

/// Runs `sdk_workload_over_https_child` in a child process of this test binary with
/// `SSL_CERT_FILE` naming a fresh self-signed certificate: the SDK's HTTPS client trusts
/// the platform roots, which that variable replaces (setting it in this process would need
/// `unsafe`).
fn run_https_workload(alpn: Alpn) {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsIdentity::generate();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &tls.cert_pem).unwrap();
    std::fs::write(&key, &tls.key_pem).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sdk_workload_over_https_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("SSL_CERT_FILE", &cert)
        .env_remove("SSL_CERT_DIR")
        .env(TLS_CERT_ENV, &cert)
        .env(TLS_KEY_ENV, &key)
        .env(TLS_ALPN_ENV, format!("{alpn:?}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the HTTPS workload ({alpn:?}) failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stderr}");
}

/// The workload over HTTPS with HTTP/1.1.
#[test]
fn sdk_workload_over_https() {
    run_https_workload(Alpn::Http11);
}

/// The workload over HTTPS with the listener offering `h2` as the gateway example's does:
/// the SDK negotiates HTTP/2.
#[test]
fn sdk_workload_over_https_h2() {
    run_https_workload(Alpn::H2AndHttp11);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by sdk_workload_over_https(_h2) with SSL_CERT_FILE set"]
async fn sdk_workload_over_https_child() {
    let (Some(cert), Some(key), Ok(alpn)) = (
        std::env::var_os(TLS_CERT_ENV),
        std::env::var_os(TLS_KEY_ENV),
        std::env::var(TLS_ALPN_ENV),
    ) else {
        eprintln!("only meaningful when started by sdk_workload_over_https(_h2)");
        return;
    };
    let tls = TlsIdentity {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    };
    let alpn = [Alpn::Http11, Alpn::H2AndHttp11]
        .into_iter()
        .find(|a| format!("{a:?}") == alpn)
        .unwrap();
    let gw = Gateway::start_with(tls, alpn).await;
    Box::pin(sdk_workload(&gw, Scheme::Https)).await;
}

/// The SDK sees the S3 error codes of refused signatures, and nothing is stored.
#[tokio::test]
async fn sdk_with_bad_credentials_gets_s3_error_codes() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "creds").await;
    let wrong_secret = User {
        secret: "not-alices-secret",
        ..ALICE
    };
    let unknown = User {
        access_key: "AKIDNOBODY000000000",
        ..ALICE
    };
    for (user, code) in [
        (wrong_secret, "SignatureDoesNotMatch"),
        (unknown, "InvalidAccessKeyId"),
    ] {
        for checksums in [
            RequestChecksumCalculation::WhenSupported,
            RequestChecksumCalculation::WhenRequired,
        ] {
            let s3 = sdk(&gw, Scheme::Http, user, checksums);
            let err = s3
                .put_object()
                .bucket("creds")
                .key("refused")
                .body(ByteStream::from_static(b"refused"))
                .send()
                .await
                .unwrap_err();
            let err = err.into_service_error();
            assert_eq!(err.meta().code(), Some(code), "{checksums:?}: {err:?}");
            assert_absent(&gw, "creds", "refused", code).await;
        }
    }
}

/// Presigned URLs made by the SDK for another time window are refused.
#[tokio::test]
async fn sdk_presigned_urls_outside_their_window_are_refused() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "window").await;
    let s3 = sdk(
        &gw,
        Scheme::Http,
        ALICE,
        RequestChecksumCalculation::WhenSupported,
    );
    let now = SystemTime::now();
    for (name, start) in [
        ("expired", now - Duration::from_hours(2)),
        ("not yet valid", now + Duration::from_hours(1)),
    ] {
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(Duration::from_hours(1))
            .build()
            .unwrap();
        let put = s3
            .put_object()
            .bucket("window")
            .key(name)
            .presigned(config)
            .await
            .unwrap();
        let headers: Vec<_> = put.headers().collect();
        let reply = gw
            .send_url(
                Scheme::Http,
                Method::PUT,
                put.uri(),
                &headers,
                Bytes::from_static(b"too early or too late"),
            )
            .await;
        reply.assert_error(403, "AccessDenied", name);
        assert_absent(&gw, "window", name, name).await;
    }
}

// ---------------------------------------------------------------------------------------
// Hand-signed requests.
// ---------------------------------------------------------------------------------------

/// The positive controls of the negative tests: what the test signer makes is accepted,
/// over HTTP and HTTPS, with the signer's principal.
#[tokio::test]
async fn hand_signed_requests_are_accepted() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "hand").await;
    let alice = signer(ALICE);
    for scheme in Scheme::BOTH {
        let key = format!("{scheme:?}/signed a+b%c");
        let path = object_path("hand", &key);
        let body = Bytes::from(pattern(100_000));
        let put = gw
            .request(scheme, Method::PUT, &path)
            .header("content-type", "application/octet-stream")
            .header("x-amz-meta-colour", "blue")
            .body(body.clone())
            .sign(&signer(BOB));
        let reply = gw.send(scheme, put).await;
        assert_eq!(reply.status, 200, "{scheme:?} signed PUT: {}", reply.text());
        assert_stored(&gw, "hand", &key, &body, "signed PUT").await;

        let key = format!("{scheme:?}/unsigned payload");
        let put = gw
            .request(scheme, Method::PUT, &object_path("hand", &key))
            .body(body.clone())
            .sign_with(&alice, "UNSIGNED-PAYLOAD")
            .0;
        let reply = gw.send(scheme, put).await;
        assert_eq!(
            reply.status,
            200,
            "{scheme:?} unsigned PUT: {}",
            reply.text()
        );
        assert_stored(&gw, "hand", &key, &body, "unsigned-payload PUT").await;

        let get = gw.request(scheme, Method::GET, &path).presign(&alice, 60);
        let reply = gw.send(scheme, get).await;
        assert_eq!(
            reply.status,
            200,
            "{scheme:?} presigned GET: {}",
            reply.text()
        );
        assert_eq!(reply.body, body);

        let list = gw
            .request(scheme, Method::GET, "/hand")
            .query("list-type", "2")
            .query("prefix", &format!("{scheme:?}/"))
            .sign(&alice);
        let reply = gw.send(scheme, list).await;
        assert_eq!(reply.status, 200, "{scheme:?} list: {}", reply.text());
        assert!(reply.text().contains("<Key>"), "{}", reply.text());
    }
    let seen = gw.seen();
    let bob_puts = seen
        .iter()
        .filter(|s| s.method == Method::PUT && s.subject.as_deref() == Some("bob"))
        .count();
    assert_eq!(bob_puts, 2, "{seen:?}");
    let presigned: Vec<_> = seen
        .iter()
        .filter(|s| s.auth == Some(AuthMethod::Presigned))
        .map(|s| format!("{} {}", s.method, s.subject.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(presigned, ["GET alice", "GET alice"], "{seen:?}");
}

/// HTTP/2 over TLS (the listener offers `h2`, as the gateway example's does): signed and
/// presigned requests, `host` taken from the `:authority`.
#[tokio::test]
async fn hand_signed_requests_over_http2() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "http2").await;
    let alice = signer(ALICE);
    let path = object_path("http2", "over h2");
    let body = Bytes::from(pattern(100_000));
    let put = gw
        .request(Scheme::Https, Method::PUT, &path)
        .body(body.clone())
        .sign(&alice);
    let reply = gw.send_h2(put).await;
    assert_eq!(reply.status, 200, "h2 signed PUT: {}", reply.text());
    assert_stored(&gw, "http2", "over h2", &body, "h2 signed PUT").await;
    let get = gw
        .request(Scheme::Https, Method::GET, &path)
        .presign(&alice, 60);
    let reply = gw.send_h2(get).await;
    assert_eq!(reply.status, 200, "h2 presigned GET: {}", reply.text());
    assert_eq!(reply.body, body);
    let refused = gw
        .request(Scheme::Https, Method::PUT, &object_path("http2", "refused"))
        .body(body.clone())
        .sign(&alice)
        .tamper_signature();
    gw.send_h2(refused)
        .await
        .assert_error(403, "SignatureDoesNotMatch", "h2 tampered");
    assert_absent(&gw, "http2", "refused", "h2 tampered").await;
}

/// How a negative case turns the base request (a PUT with a body, unsigned) into what is
/// sent.
type Mutation = fn(RawRequest, &Signer<'static>) -> RawRequest;

const BODY: &[u8] = b"the payload that must not be stored";
const TAMPERED_BODY: &[u8] = b"THE payload that must not be stored";

/// Header and query authentication refused: status, S3 code, and no object.
#[tokio::test]
async fn tampered_and_refused_requests_store_nothing() {
    let cases: &[(&str, Mutation, u16, &str)] = &[
        (
            "wrong secret",
            |r, s| {
                r.sign(&Signer {
                    secret: "not-alices-secret",
                    ..*s
                })
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "unknown access key",
            |r, s| {
                r.sign(&Signer {
                    access_key: "AKIDNOBODY000000000",
                    ..*s
                })
            },
            403,
            "InvalidAccessKeyId",
        ),
        (
            "tampered signature",
            |r, s| r.sign(s).tamper_signature(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered signed x-amz-meta value",
            |r, s| {
                r.header("x-amz-meta-colour", "blue")
                    .sign(s)
                    .header("x-amz-meta-colour", "red")
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered signed content-type",
            |r, s| r.sign(s).header("content-type", "text/html"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered query",
            |r, s| {
                r.query("x-id", "PutObject")
                    .sign(s)
                    .query("x-id", "PutObjecT")
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered path",
            |r, s| {
                let moved = format!("{}-moved", r.path);
                r.sign(s).path(&moved)
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered body, signed sha256",
            |r, s| r.sign(s).body(TAMPERED_BODY),
            400,
            "XAmzContentSHA256Mismatch",
        ),
        (
            "longer body, signed sha256",
            |r, s| r.sign(s).body([BODY, b"!"].concat()),
            400,
            "XAmzContentSHA256Mismatch",
        ),
        (
            "x-amz-content-sha256 changed to UNSIGNED-PAYLOAD after signing",
            |r, s| {
                r.sign(s)
                    .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                    .body(TAMPERED_BODY)
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "session token with a static user's key",
            |r, s| r.header("x-amz-security-token", "FwoGZXIvYXdzE").sign(s),
            400,
            "InvalidToken",
        ),
        (
            "Authorization header and presigned query at once",
            |r, s| {
                let auth = r.clone().sign(s);
                let auth = auth.header_value("authorization").unwrap().to_owned();
                r.presign(s, 300).header("authorization", &auth)
            },
            400,
            "InvalidArgument",
        ),
        (
            "unsigned x-amz-copy-source added after signing",
            |r, s| {
                r.body(Bytes::new())
                    .sign(s)
                    .header("x-amz-copy-source", "/neg/source")
            },
            403,
            "AccessDenied",
        ),
        (
            "unsigned x-amz-meta header",
            |r, s| r.sign(s).header("x-amz-meta-sneaky", "1"),
            403,
            "AccessDenied",
        ),
        (
            "request date 20 min behind",
            |r, s| r.sign(&s.at(s.time - Duration::from_mins(20))),
            403,
            "RequestTimeTooSkewed",
        ),
        (
            "request date 20 min ahead",
            |r, s| r.sign(&s.at(s.time + Duration::from_mins(20))),
            403,
            "RequestTimeTooSkewed",
        ),
        (
            "SigV2 Authorization header",
            |r, s| {
                r.header("date", "Tue, 27 Mar 2007 19:36:42 +0000").header(
                    "authorization",
                    &format!("AWS {}:frJIUN8DYpKDtOLCwo//yllqDzg=", s.access_key),
                )
            },
            400,
            "InvalidRequest",
        ),
        (
            "SigV2 presigned query",
            |r, s| {
                r.query("AWSAccessKeyId", s.access_key)
                    .query("Expires", "4102444800")
                    .query("Signature", "frJIUN8DYpKDtOLCwo//yllqDzg=")
            },
            400,
            "InvalidRequest",
        ),
        ("no credentials", |r, _| r, 403, "AccessDenied"),
        (
            "presigned, expired",
            |r, s| r.presign(&s.at(s.time - Duration::from_hours(2)), 3600),
            403,
            "AccessDenied",
        ),
        (
            "presigned, not yet valid",
            |r, s| r.presign(&s.at(s.time + Duration::from_hours(1)), 3600),
            403,
            "AccessDenied",
        ),
        (
            "presigned, X-Amz-Expires=604801",
            |r, s| r.presign(s, 604_801),
            400,
            "AuthorizationQueryParametersError",
        ),
        (
            "presigned, tampered signature",
            |r, s| r.presign(s, 300).tamper_signature(),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "presigned, X-Amz-Expires raised after signing",
            |r, s| r.presign(s, 300).query("X-Amz-Expires", "3600"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "presigned, wrong secret",
            |r, s| {
                r.presign(
                    &Signer {
                        secret: "not-alices-secret",
                        ..*s
                    },
                    300,
                )
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "presigned, unsigned x-amz-meta header",
            |r, s| r.presign(s, 300).header("x-amz-meta-sneaky", "1"),
            403,
            "AccessDenied",
        ),
    ];

    let gw = Gateway::start().await;
    create_bucket(&gw, "neg").await;
    put_signed(&gw, "neg", "source", b"copy me").await;
    let base = |key: &str| {
        gw.request(Scheme::Http, Method::PUT, &object_path("neg", key))
            .header("content-type", "text/plain")
            .body(BODY)
    };
    // The base request, signed, is accepted.
    let reply = gw
        .send(Scheme::Http, base("control").sign(&signer(ALICE)))
        .await;
    assert_eq!(reply.status, 200, "control: {}", reply.text());
    assert_stored(&gw, "neg", "control", BODY, "control").await;

    for (i, (name, mutate, status, code)) in cases.iter().enumerate() {
        let key = format!("case-{i}");
        let reply = gw
            .send(Scheme::Http, mutate(base(&key), &signer(ALICE)))
            .await;
        reply.assert_error(*status, code, name);
        assert_absent(&gw, "neg", &key, name).await;
        assert_absent(&gw, "neg", &format!("{key}-moved"), name).await;
    }
    // Only the setup, the control and the bodies verified while streaming (refused once the
    // body has been read) got past SigV4Layer's check of the request head.
    let through: Vec<_> = gw
        .seen()
        .iter()
        .filter(|s| s.method == Method::PUT)
        .map(|s| s.path.clone())
        .collect();
    let expected: Vec<String> = ["/neg", "/neg/source", "/neg/control"]
        .map(str::to_owned)
        .into_iter()
        .chain(
            cases
                .iter()
                .enumerate()
                .filter(|(_, case)| case.3 == "XAmzContentSHA256Mismatch")
                .map(|(i, _)| format!("/neg/case-{i}")),
        )
        .collect();
    assert_eq!(through, expected);
}

// ---------------------------------------------------------------------------------------
// aws-chunked uploads built by hand.
// ---------------------------------------------------------------------------------------

/// Sends the aws-chunked PutObject of `upload` to `bucket/key`, its body encoded by
/// `encode` (which may tamper with it first).
async fn chunked_put(
    gw: &Gateway,
    scheme: Scheme,
    bucket: &str,
    key: &str,
    upload: &ChunkedUpload,
    encode: impl FnOnce(ChunkedBody) -> Bytes,
) -> sigv4_support::client::Reply {
    let head = gw.request(scheme, Method::PUT, &object_path(bucket, key));
    let (head, body) = upload.build(head, &signer(ALICE));
    gw.send(scheme, head.body(encode(body))).await
}

/// Valid aws-chunked uploads, over HTTP and HTTPS, store exactly the decoded payload.
#[tokio::test]
async fn aws_chunked_uploads_store_the_decoded_payload() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "chunked").await;
    let payload = Bytes::from(pattern(3 * 64 * 1024 + 1234));
    let mut small_chunks = ChunkedUpload::new(Streaming::Signed, payload.clone());
    small_chunks.chunk_size = 8192;
    let uploads = [
        (
            "signed",
            ChunkedUpload::new(Streaming::Signed, payload.clone()),
        ),
        ("signed, 8 KiB chunks", small_chunks),
        (
            "signed, empty",
            ChunkedUpload::new(Streaming::Signed, Bytes::new()),
        ),
        (
            "signed + CRC32C trailer",
            ChunkedUpload::new(Streaming::SignedTrailer(Checksum::Crc32c), payload.clone()),
        ),
        (
            "signed + CRC32 trailer",
            ChunkedUpload::new(Streaming::SignedTrailer(Checksum::Crc32), payload.clone()),
        ),
        (
            "unsigned + CRC32 trailer",
            ChunkedUpload::new(Streaming::UnsignedTrailer(Checksum::Crc32), payload.clone()),
        ),
        (
            "unsigned + CRC32C trailer",
            ChunkedUpload::new(
                Streaming::UnsignedTrailer(Checksum::Crc32c),
                payload.clone(),
            ),
        ),
    ];
    for scheme in Scheme::BOTH {
        for (name, upload) in &uploads {
            let key = format!("{scheme:?}/{name}");
            let reply = chunked_put(&gw, scheme, "chunked", &key, upload, |b| b.encode()).await;
            assert_eq!(reply.status, 200, "{scheme:?} {name}: {}", reply.text());
            assert_stored(&gw, "chunked", &key, &upload.payload, name).await;
        }
    }
}

type Tamper = fn(ChunkedBody) -> Bytes;

/// Changes the last hex digit of a `...signature=<hex>` line.
fn flip_last_digit(line: &mut String) {
    let last = line.pop().unwrap();
    line.push(if last == '0' { '1' } else { '0' });
}

/// Broken aws-chunked uploads: status, S3 code, and no object.
#[tokio::test]
async fn broken_aws_chunked_uploads_store_nothing() {
    let signed = Streaming::Signed;
    let signed_trailer = Streaming::SignedTrailer(Checksum::Crc32c);
    let unsigned_trailer = Streaming::UnsignedTrailer(Checksum::Crc32);
    // 3 full 64 KiB chunks and a short one, then the final chunk.
    let length = 3 * 64 * 1024 + 1234;
    let cases: &[(&str, Streaming, i64, Tamper, u16, &str)] = &[
        (
            "tampered chunk signature",
            signed,
            0,
            |mut b| {
                flip_last_digit(&mut b.chunks[1].header);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered chunk data",
            signed,
            0,
            |mut b| {
                let mut data = b.chunks[2].data.to_vec();
                data[100] ^= 1;
                b.chunks[2].data = data.into();
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered final chunk signature",
            signed,
            0,
            |mut b| {
                flip_last_digit(&mut b.chunks.last_mut().unwrap().header);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "reordered chunks",
            signed,
            0,
            |mut b| {
                b.chunks.swap(0, 1);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "dropped chunk",
            signed,
            0,
            |mut b| {
                b.chunks.remove(1);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "truncated aws-chunked body",
            signed,
            0,
            |b| {
                let encoded = b.encode();
                encoded.slice(..encoded.len() / 2)
            },
            400,
            "IncompleteBody",
        ),
        (
            "trailer checksum mismatch",
            unsigned_trailer,
            0,
            |mut b| {
                let i = b.trailer_line("x-amz-checksum-crc32:");
                b.trailer[i] = format!("x-amz-checksum-crc32:{}", Checksum::Crc32.of(b"other"));
                b.encode()
            },
            400,
            "BadDigest",
        ),
        (
            "missing trailer",
            unsigned_trailer,
            0,
            |mut b| {
                b.trailer.clear();
                b.encode()
            },
            400,
            "MalformedTrailerError",
        ),
        (
            "missing trailer, signed",
            signed_trailer,
            0,
            |mut b| {
                b.trailer.clear();
                b.encode()
            },
            400,
            "MalformedTrailerError",
        ),
        (
            "unsigned trailer on a signed-trailer upload",
            signed_trailer,
            0,
            |mut b| {
                let i = b.trailer_line("x-amz-trailer-signature:");
                b.trailer.remove(i);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "tampered trailer signature",
            signed_trailer,
            0,
            |mut b| {
                let i = b.trailer_line("x-amz-trailer-signature:");
                flip_last_digit(&mut b.trailer[i]);
                b.encode()
            },
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "x-amz-decoded-content-length larger than the payload",
            signed,
            10,
            |b| b.encode(),
            400,
            "IncompleteBody",
        ),
        (
            "x-amz-decoded-content-length smaller than the payload",
            signed,
            -10,
            |b| b.encode(),
            400,
            "IncompleteBody",
        ),
        (
            "data after the final chunk",
            signed,
            0,
            |b| [b.encode(), Bytes::from_static(b"extra")].concat().into(),
            400,
            "InvalidRequest",
        ),
        (
            "trailer on an upload that declares none",
            signed,
            0,
            |mut b| {
                b.trailer.push(format!(
                    "x-amz-checksum-crc32:{}",
                    Checksum::Crc32.of(&pattern(3 * 64 * 1024 + 1234))
                ));
                b.encode()
            },
            400,
            "MalformedTrailerError",
        ),
        (
            "oversized chunk header line",
            signed,
            0,
            |mut b| {
                b.chunks[0].header.push_str(";x-padding=");
                b.chunks[0].header.push_str(&"a".repeat(5000));
                b.encode()
            },
            400,
            "InvalidRequest",
        ),
    ];

    let gw = Gateway::start().await;
    create_bucket(&gw, "broken").await;
    let payload = Bytes::from(pattern(length));
    for (i, (name, mode, length_delta, tamper, status, code)) in cases.iter().enumerate() {
        let declared = u64::try_from(i64::try_from(length).unwrap() + length_delta).unwrap();
        let upload = ChunkedUpload::new(*mode, payload.clone()).declared_length(declared);
        let key = format!("case-{i}");
        let reply = chunked_put(&gw, Scheme::Http, "broken", &key, &upload, *tamper).await;
        reply.assert_error(*status, code, name);
        assert_absent(&gw, "broken", &key, name).await;
    }
}

/// A client that hangs up in the middle of its body: no object, and if the gateway still
/// answers, it says the body was incomplete.
#[tokio::test]
async fn client_hanging_up_mid_upload_stores_nothing() {
    let gw = Gateway::start().await;
    create_bucket(&gw, "hangup").await;
    let payload = Bytes::from(pattern(200_000));
    let alice = signer(ALICE);

    let chunked = {
        let head = gw.request(Scheme::Http, Method::PUT, &object_path("hangup", "chunked"));
        let (head, body) =
            ChunkedUpload::new(Streaming::Signed, payload.clone()).build(head, &alice);
        head.body(body.encode())
    };
    let plain = gw
        .request(Scheme::Http, Method::PUT, &object_path("hangup", "plain"))
        .body(payload.clone())
        .sign(&alice);
    let mut answers = Vec::new();
    for (key, req) in [("chunked", chunked), ("plain", plain)] {
        let sent = req.body.len() / 2;
        let reply = gw.send_truncated(req, sent).await;
        assert_absent(&gw, "hangup", key, key).await;
        answers.push((key, reply.map(|r| (r.status, r.code()))));
    }
    let expected = Some((400, Some("IncompleteBody".to_owned())));
    for (key, answer) in &answers {
        assert!(
            answer.is_none() || *answer == expected,
            "{key}: answered {answer:?}, expected no answer or {expected:?}; all: {answers:?}"
        );
    }
}
