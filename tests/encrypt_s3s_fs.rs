//! Envelope encryption end to end: aws-sdk-s3 → hyper → `S3RequestLayer` → `SigV4Layer`
//! (one static user) → `EncryptLayer` → `ResignLayer` → `Upstream` → s3s-fs, all in process.
//!
//! Buckets: `enc` and `enc2` are encrypted (the policy's default, a local KEK), `plain*` is not
//! encrypted, `legacy` is encrypted but serves objects stored without encryption as they are.
//!
//! What is at rest is read from s3s-fs's directory: `<root>/<bucket>/<key>` holds the stored
//! bytes, `<root>/.bucket-<b64>.object-<b64>.metadata.json` the user metadata (the envelope).
//! Plaintexts come from a counter-based generator, so "the plaintext is at rest" is checked by
//! looking for any 32-byte window of the plaintext in the stored file.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../examples/gateway/dev_backend.rs"]
mod dev_backend;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, CsvInput, CsvOutput, ExpressionType,
    InputSerialization, MetadataDirective, ObjectAttributes, OutputSerialization,
};
use base64::Engine as _;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use s3_tower::auth::{SecretKey, SigV4Layer, StaticCredentials, StaticUser};
use s3_tower::core::S3RequestLayer;
use s3_tower::encrypt::{
    BucketEncryption, EncryptLayer, EncryptionPolicy, LocalKek, SEGMENT_SIZE, encrypted_size,
};
use s3_tower::resign::{
    Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use dev_backend::DevBackend;

const ACCESS_KEY: &str = "AKIDCAROL0000000003";
const SECRET: &str = "carol/Secret+Key=000000000000000000003";
const KIB64: usize = SEGMENT_SIZE;
/// One stored segment: 16 bytes of header, 64 KiB of payload, 16 bytes of tag.
const STORED_SEGMENT: usize = SEGMENT_SIZE + 32;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The stack.
// ---------------------------------------------------------------------------------------

struct Gateway {
    addr: SocketAddr,
    /// The s3s-fs root.
    root: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _backend: DevBackend,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fs");
        let backend = DevBackend::start(&root, "BACKENDKEY", "backend-secret")
            .await
            .unwrap();
        let router = BackendRouter::single(
            Backend::new(
                "fs",
                &backend.endpoint,
                "us-east-1",
                BackendAddressing::Path,
                BackendCredentials::from_static("BACKENDKEY", "backend-secret", None),
            )
            .unwrap(),
        );
        let users = StaticCredentials::new([StaticUser {
            access_key_id: ACCESS_KEY.to_owned(),
            secret: SecretKey::new(SECRET),
            subject: "carol".to_owned(),
            groups: Vec::new(),
        }])
        .unwrap();
        let kek = Arc::new(LocalKek::from_bytes(&[0x5a; 32]).unwrap());
        let policy = EncryptionPolicy::new(BucketEncryption::encrypt(kek.clone()))
            .bucket("plain*", BucketEncryption::Off)
            .bucket(
                "legacy",
                BucketEncryption::encrypt(kek).allow_plaintext_reads(true),
            );
        let service = ServiceBuilder::new()
            .layer(S3RequestLayer::new())
            .layer(SigV4Layer::new(users))
            .layer(EncryptLayer::new(policy))
            .layer(ResignLayer::new(router))
            .service(Upstream::new().unwrap());

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            root,
            task,
            _backend: backend,
            _dir: dir,
        }
    }

    /// The SDK as the static user: path style, no retries (every answer is the first one).
    fn client(&self) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", self.addr))
            .force_path_style(true)
            .retry_config(RetryConfig::disabled())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET, None, None, "test"))
            .build();
        Client::from_conf(conf)
    }

    /// Starts the stack and creates `buckets` through it.
    async fn with_buckets(buckets: &[&str]) -> (Self, Client) {
        let gw = Self::start().await;
        let s3 = gw.client();
        for bucket in buckets {
            s3.create_bucket()
                .bucket(*bucket)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
        }
        (gw, s3)
    }

    /// Where s3s-fs keeps the bytes of `bucket/key`.
    fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Where s3s-fs keeps the metadata of `bucket/key`.
    fn metadata_file(&self, bucket: &str, key: &str) -> PathBuf {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        self.root.join(format!(
            ".bucket-{}.object-{}.metadata.json",
            enc(bucket),
            enc(key)
        ))
    }

    fn stored(&self, bucket: &str, key: &str) -> Vec<u8> {
        std::fs::read(self.object_file(bucket, key)).unwrap()
    }

    /// The stored user metadata of `bucket/key` (names without `x-amz-meta-`).
    fn stored_metadata(&self, bucket: &str, key: &str) -> serde_json::Value {
        let text = std::fs::read(self.metadata_file(bucket, key)).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    fn write_metadata(&self, bucket: &str, key: &str, value: &serde_json::Value) {
        std::fs::write(
            self.metadata_file(bucket, key),
            serde_json::to_vec(value).unwrap(),
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Plaintexts, and looking for them at rest.
// ---------------------------------------------------------------------------------------

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` bytes that never repeat a 32-byte window (a counter-based generator; `seed`
/// separates plaintexts from each other).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut counter = 0u64;
    while out.len() < len {
        out.extend_from_slice(&splitmix64((seed << 40) ^ counter).to_le_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Whether any 32-byte window of `plain` occurs anywhere in `stored`.
///
/// A common window `plain[p..p+32]` contains the 8-aligned word at `q = ceil8(p)`, so every
/// position of `stored` whose word is an aligned word of `plain` is extended both ways.
fn leaks_plaintext(stored: &[u8], plain: &[u8]) -> bool {
    const W: usize = 32;
    if plain.len() < W || stored.len() < W {
        return false;
    }
    let mut words: HashMap<u64, Vec<usize>> = HashMap::new();
    for q in (0..=plain.len() - 8).step_by(8) {
        words.entry(word(plain, q)).or_default().push(q);
    }
    for i in 0..=stored.len() - 8 {
        let Some(positions) = words.get(&word(stored, i)) else {
            continue;
        };
        for &q in positions {
            let mut back = 0;
            while back < i.min(q) && back < W && stored[i - back - 1] == plain[q - back - 1] {
                back += 1;
            }
            let mut forward = 8;
            while back + forward < W
                && i + forward < stored.len()
                && q + forward < plain.len()
                && stored[i + forward] == plain[q + forward]
            {
                forward += 1;
            }
            if back + forward >= W {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// SDK helpers.
// ---------------------------------------------------------------------------------------

async fn put(s3: &Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

/// The status and S3 error code of a request that must fail.
fn refused<T, E>(result: Result<T, SdkError<E, HttpResponse>>, context: &str) -> (u16, String)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let Err(err) = result else {
        panic!("{context}: the request succeeded");
    };
    let Some(response) = err.raw_response() else {
        panic!("{context}: no response: {err:?}");
    };
    let status = response.status().as_u16();
    (status, err.code().unwrap_or("").to_owned())
}

/// A GET that was answered with a body.
#[derive(Debug)]
struct Got {
    body: Bytes,
    content_range: Option<String>,
    content_length: Option<i64>,
}

/// How a GET failed.
#[derive(Debug, PartialEq, Eq)]
enum Failed {
    /// An error answer.
    Status(u16, String),
    /// An answer whose body broke off.
    Body(String),
}

async fn get(s3: &Client, bucket: &str, key: &str, range: Option<&str>) -> Result<Got, Failed> {
    let output = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(str::to_owned))
        .send()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(err) => {
            let status = err.raw_response().map_or(0, |r| r.status().as_u16());
            if status == 0 {
                return Err(Failed::Body(format!("{err:?}")));
            }
            return Err(Failed::Status(status, err.code().unwrap_or("").to_owned()));
        }
    };
    let content_range = output.content_range().map(str::to_owned);
    let content_length = output.content_length();
    match output.body.collect().await {
        Ok(body) => Ok(Got {
            body: body.into_bytes(),
            content_range,
            content_length,
        }),
        Err(e) => Err(Failed::Body(format!("{e:?}"))),
    }
}

async fn get_ok(s3: &Client, bucket: &str, key: &str) -> Bytes {
    get(s3, bucket, key, None)
        .await
        .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"))
        .body
}

/// A GET that must not deliver a complete body.
async fn get_fails(s3: &Client, bucket: &str, key: &str, range: Option<&str>) -> Failed {
    match get(s3, bucket, key, range).await {
        Ok(got) => panic!(
            "GET {bucket}/{key} {range:?} delivered a full body of {} bytes",
            got.body.len()
        ),
        Err(failed) => failed,
    }
}

async fn head_status(s3: &Client, bucket: &str, key: &str) -> u16 {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => 200,
        Err(err) => match err.raw_response() {
            Some(response) => response.status().as_u16(),
            None => panic!("HEAD {bucket}/{key}: no response: {err:?}"),
        },
    }
}

/// Asserts that `bucket/key` does not exist: HEAD is 404 and s3s-fs has no file or metadata.
async fn assert_nothing_stored(gw: &Gateway, s3: &Client, bucket: &str, key: &str, ctx: &str) {
    assert_eq!(head_status(s3, bucket, key).await, 404, "{ctx}: HEAD");
    assert!(!gw.object_file(bucket, key).exists(), "{ctx}: file stored");
    assert!(
        !gw.metadata_file(bucket, key).exists(),
        "{ctx}: metadata stored"
    );
}

/// Asserts the HEAD of an encrypted object: plaintext length, user metadata as the client
/// set it, no envelope, no checksums of the ciphertext.
async fn assert_head(s3: &Client, bucket: &str, key: &str, len: usize, meta: &[(&str, &str)]) {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {bucket}/{key}: {e:?}"));
    assert_eq!(
        head.content_length(),
        Some(i64::try_from(len).unwrap()),
        "HEAD {key} length"
    );
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert!(
        metadata.keys().all(|k| !k.starts_with("s3t-")),
        "HEAD {key} shows the envelope: {metadata:?}"
    );
    for (name, value) in meta {
        assert_eq!(
            metadata.get(*name).map(String::as_str),
            Some(*value),
            "HEAD {key} metadata {name}"
        );
    }
    assert_eq!(
        (
            head.checksum_crc32(),
            head.checksum_crc32_c(),
            head.checksum_crc64_nvme(),
            head.checksum_sha1(),
            head.checksum_sha256(),
        ),
        (None, None, None, None, None),
        "HEAD {key} shows checksums"
    );
}

/// The sizes ListObjectsV2 and ListObjects (v1) report for `bucket`, by key (they must agree).
async fn listed_sizes(s3: &Client, bucket: &str) -> HashMap<String, i64> {
    let v2 = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let v1 = s3.list_objects().bucket(bucket).send().await.unwrap();
    let sizes = |objects: &[aws_sdk_s3::types::Object]| -> HashMap<String, i64> {
        objects
            .iter()
            .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
            .collect()
    };
    let (v2, v1) = (sizes(v2.contents()), sizes(v1.contents()));
    assert_eq!(v2, v1, "ListObjectsV2 and ListObjects disagree");
    v2
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. Round trips.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_store_ciphertext_and_answer_plaintext_sizes() {
    let (gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let sizes = [0, 1, KIB64 - 1, KIB64, KIB64 + 1, 3 * KIB64, MIB + 17];
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("obj-{len}");
        let plain = pattern(len, i as u64 + 1);
        s3.put_object()
            .bucket("enc")
            .key(&key)
            .metadata("colour", "blue")
            .metadata("owner", "carol")
            .body(ByteStream::from(plain.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));

        assert!(get_ok(&s3, "enc", &key).await == plain, "GET {key}");
        let stored = gw.stored("enc", &key);
        assert_eq!(
            stored.len() as u64,
            encrypted_size(len as u64),
            "stored size of {key}"
        );
        if len >= 32 {
            assert!(
                !leaks_plaintext(&stored, &plain),
                "{key}: plaintext at rest"
            );
        } else if len > 0 {
            assert_ne!(&stored[..len], &plain[..], "{key}: plaintext at rest");
        }
        assert_head(
            &s3,
            "enc",
            &key,
            len,
            &[("colour", "blue"), ("owner", "carol")],
        )
        .await;
        // The envelope is at rest, next to the client's metadata.
        let meta = gw.stored_metadata("enc", &key);
        let user = &meta["user_metadata"];
        assert_eq!(user["s3t-v"], "1", "{key}: envelope at rest: {meta}");
        assert_eq!(user["colour"], "blue", "{key}: {meta}");
    }
    let listed = listed_sizes(&s3, "enc").await;
    assert_eq!(listed.len(), sizes.len());
    for len in sizes {
        assert_eq!(listed[&format!("obj-{len}")], as_i64(len), "listed size");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Ranges.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn ranges_answer_plaintext_slices() {
    let (_gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let n = 3 * KIB64 + 100;
    let plain = pattern(n, 7);
    put(&s3, "enc", "r", &plain).await;

    let last_byte = format!("bytes={}-{}", n - 1, n - 1);
    let cases: [(&str, usize, usize); 9] = [
        ("bytes=0-0", 0, 0),
        ("bytes=0-65535", 0, 65_535),
        ("bytes=65535-65536", 65_535, 65_536),
        ("bytes=65536-65537", 65_536, 65_537),
        ("bytes=131071-131073", 131_071, 131_073),
        (&last_byte, n - 1, n - 1),
        ("bytes=-10", n - 10, n - 1),
        ("bytes=-1000000", 0, n - 1),
        ("bytes=196608-", 196_608, n - 1),
    ];
    for (range, first, last) in cases {
        let got = get(&s3, "enc", "r", Some(range))
            .await
            .unwrap_or_else(|e| panic!("{range}: {e:?}"));
        assert!(got.body == plain[first..=last], "{range}: body");
        assert_eq!(
            got.content_range.as_deref(),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "{range}: Content-Range"
        );
        assert_eq!(
            got.content_length,
            Some(as_i64(last - first + 1)),
            "{range}: Content-Length"
        );
    }

    assert_eq!(
        get(&s3, "enc", "r", Some("bytes=999999-"))
            .await
            .unwrap_err(),
        Failed::Status(416, "InvalidRange".into()),
        "range beyond the end"
    );
    assert_eq!(
        get(&s3, "enc", "r", Some("bytes=0-1,5-6"))
            .await
            .unwrap_err(),
        Failed::Status(501, "NotImplemented".into()),
        "several ranges"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Multipart uploads.
// ---------------------------------------------------------------------------------------

async fn create_upload(s3: &Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned()
}

async fn upload_part(s3: &Client, key: &str, id: &str, number: i32, body: &[u8]) -> CompletedPart {
    let out = s3
        .upload_part()
        .bucket("enc")
        .key(key)
        .upload_id(id)
        .part_number(number)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {number}: {e:?}"));
    CompletedPart::builder()
        .part_number(number)
        .e_tag(out.e_tag().unwrap())
        .build()
}

async fn complete(
    s3: &Client,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
        HttpResponse,
    >,
> {
    s3.complete_multipart_upload()
        .bucket("enc")
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_parts_in_parallel_and_reverse_order() {
    let (gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let sizes = [5 * MIB, 5 * MIB, MIB + 3];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| pattern(len, 100 + i as u64))
        .collect();
    let whole: Vec<u8> = parts.concat();
    let n = whole.len();
    let id = create_upload(&s3, "enc", "mp").await;

    let (p3, p2, p1) = tokio::join!(
        upload_part(&s3, "mp", &id, 3, &parts[2]),
        upload_part(&s3, "mp", &id, 2, &parts[1]),
        upload_part(&s3, "mp", &id, 1, &parts[0]),
    );

    let listed = s3
        .list_parts()
        .bucket("enc")
        .key("mp")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.upload_id(), Some(id.as_str()), "ListParts UploadId");
    // s3s-fs lists parts in directory order, not by number: sorted here.
    let mut listed_sizes: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    listed_sizes.sort_unstable();
    assert_eq!(
        listed_sizes,
        vec![
            (1, as_i64(sizes[0])),
            (2, as_i64(sizes[1])),
            (3, as_i64(sizes[2]))
        ],
        "ListParts sizes"
    );

    complete(&s3, "mp", &id, vec![p1, p2, p3])
        .await
        .unwrap_or_else(|e| panic!("complete: {e:?}"));

    assert!(get_ok(&s3, "enc", "mp").await == whole, "GET whole");
    let five = 5 * MIB;
    let ten = 10 * MIB;
    for (range, first, last) in [
        (
            format!("bytes={}-{}", five - 1, five + 1),
            five - 1,
            five + 1,
        ),
        (format!("bytes={}-", ten - 5), ten - 5, n - 1),
        ("bytes=-100".to_owned(), n - 100, n - 1),
    ] {
        let got = get(&s3, "enc", "mp", Some(&range))
            .await
            .unwrap_or_else(|e| panic!("{range}: {e:?}"));
        assert!(got.body == whole[first..=last], "{range}: body");
        assert_eq!(
            got.content_range.as_deref(),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "{range}: Content-Range"
        );
        assert_eq!(got.content_length, Some(as_i64(last - first + 1)));
    }
    assert_head(&s3, "enc", "mp", n, &[]).await;
    assert_eq!(listed_sizes_of(&s3, "mp").await, as_i64(n));
    let stored = gw.stored("enc", "mp");
    assert!(!leaks_plaintext(&stored, &whole), "plaintext at rest");
}

async fn listed_sizes_of(s3: &Client, key: &str) -> i64 {
    listed_sizes(s3, "enc").await[key]
}

/// s3s-fs's files of the backend upload `backend_id` (its record and its parts).
fn upload_files(gw: &Gateway, backend_id: &str) -> Vec<String> {
    std::fs::read_dir(&gw.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(backend_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_refusals() {
    let (gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let id = create_upload(&s3, "enc", "m").await;
    let other = create_upload(&s3, "enc", "m").await;
    let p1 = upload_part(&s3, "m", &id, 1, &pattern(1000, 1)).await;
    let p2 = upload_part(&s3, "m", &id, 2, &pattern(1000, 2)).await;
    let p3 = upload_part(&s3, "m", &id, 3, &pattern(1000, 3)).await;

    let (status, code) = refused(
        complete(&s3, "m", &id, vec![p2.clone(), p1.clone()]).await,
        "parts out of order",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidPartOrder"));
    let (status, code) = refused(
        complete(&s3, "m", &id, vec![p1.clone(), p3.clone()]).await,
        "a gap",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidPart"));

    // Non-final parts that are not whole segments would make sizes inexact.
    let (status, code) = refused(
        complete(&s3, "m", &id, vec![p1.clone(), p2.clone(), p3.clone()]).await,
        "parts of 1000 bytes",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidPart"));

    // The backend's id alone carries no data key.
    let (backend_id, token) = id.rsplit_once('.').unwrap();
    assert!(
        upload_files(&gw, backend_id).len() >= 4,
        "the upload's record and three parts: {:?}",
        upload_files(&gw, backend_id)
    );
    let (status, code) = refused(
        s3.upload_part()
            .bucket("enc")
            .key("m")
            .upload_id(backend_id)
            .part_number(1)
            .body(ByteStream::from_static(b"bare"))
            .send()
            .await,
        "bare backend id",
    );
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));
    // The token moved onto another upload.
    let (other_backend, _) = other.rsplit_once('.').unwrap();
    let (status, code) = refused(
        s3.upload_part()
            .bucket("enc")
            .key("m")
            .upload_id(format!("{other_backend}.{token}"))
            .part_number(1)
            .body(ByteStream::from_static(b"moved"))
            .send()
            .await,
        "moved token",
    );
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));

    // Abort with the id the client was given.
    s3.abort_multipart_upload()
        .bucket("enc")
        .key("m")
        .upload_id(&id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("abort: {e:?}"));
    // s3s-fs forgets the upload (its parts and record are gone) and answers AccessDenied
    // for an upload it does not know.
    assert!(
        upload_files(&gw, backend_id).is_empty(),
        "parts left after abort: {:?}",
        upload_files(&gw, backend_id)
    );
    // (s3s-fs lists no parts for an upload it does not know, so the layer's size check
    // finds part 1 missing.)
    let (status, code) = refused(
        complete(&s3, "m", &id, vec![p1, p2, p3]).await,
        "complete after abort",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidPart"));
    assert_nothing_stored(&gw, &s3, "enc", "m", "aborted upload").await;
    s3.abort_multipart_upload()
        .bucket("enc")
        .key("m")
        .upload_id(&other)
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// 4. Damage at rest.
// ---------------------------------------------------------------------------------------

const DAMAGED_LEN: usize = 3 * KIB64 + 100;

async fn damaged_setup() -> (Gateway, Client, Vec<u8>) {
    let (gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let plain = pattern(DAMAGED_LEN, 11);
    put(&s3, "enc", "d", &plain).await;
    assert!(get_ok(&s3, "enc", "d").await == plain);
    (gw, s3, plain)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_fails_the_reads_of_its_segment_only() {
    let (gw, s3, plain) = damaged_setup().await;
    let path = gw.object_file("enc", "d");
    let mut stored = gw.stored("enc", "d");
    // A payload byte of segment 1 (plaintext 65536..131071).
    stored[STORED_SEGMENT + 16 + 100] ^= 0x01;
    std::fs::write(&path, &stored).unwrap();

    let whole = get_fails(&s3, "enc", "d", None).await;
    eprintln!("flipped byte, whole GET: {whole:?}");
    let ranged = get_fails(&s3, "enc", "d", Some("bytes=65600-65700")).await;
    eprintln!("flipped byte, ranged GET of segment 1: {ranged:?}");
    let spanning = get_fails(&s3, "enc", "d", Some("bytes=65530-65540")).await;
    eprintln!("flipped byte, ranged GET across segments 0 and 1: {spanning:?}");
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=131072-131200", 131_072, 131_200),
        ("bytes=-50", DAMAGED_LEN - 50, DAMAGED_LEN - 1),
    ] {
        let got = get(&s3, "enc", "d", Some(range))
            .await
            .unwrap_or_else(|e| panic!("{range} (untouched segment): {e:?}"));
        assert!(got.body == plain[first..=last], "{range}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_object_one_segment_short_is_refused() {
    let (gw, s3, _) = damaged_setup().await;
    let path = gw.object_file("enc", "d");
    let stored = gw.stored("enc", "d");
    std::fs::write(&path, &stored[..stored.len() - STORED_SEGMENT]).unwrap();

    // The stored size no longer matches the envelope's: HEAD and GET are refused up front.
    assert_eq!(head_status(&s3, "enc", "d").await, 500, "HEAD");
    assert_eq!(
        get_fails(&s3, "enc", "d", None).await,
        Failed::Status(500, "InternalError".into()),
        "GET"
    );
    assert_eq!(
        get_fails(&s3, "enc", "d", Some("bytes=0-9")).await,
        Failed::Status(500, "InternalError".into()),
        "ranged GET"
    );
    let listed = listed_sizes(&s3, "enc").await;
    eprintln!("truncated: listed size {} (was {DAMAGED_LEN})", listed["d"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn swapped_segments_fail_the_read() {
    let (gw, s3, _) = damaged_setup().await;
    let path = gw.object_file("enc", "d");
    let mut stored = gw.stored("enc", "d");
    let (first, rest) = stored.split_at_mut(STORED_SEGMENT);
    first.swap_with_slice(&mut rest[..STORED_SEGMENT]);
    std::fs::write(&path, &stored).unwrap();

    let whole = get_fails(&s3, "enc", "d", None).await;
    eprintln!("swapped segments, whole GET: {whole:?}");
    let ranged = get_fails(&s3, "enc", "d", Some("bytes=10-20")).await;
    eprintln!("swapped segments, ranged GET of segment 0: {ranged:?}");
    get_fails(&s3, "enc", "d", Some("bytes=65540-65550")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_objects_wrapped_key_fails_the_read() {
    let (gw, s3, _) = damaged_setup().await;
    put(&s3, "enc", "other", &pattern(DAMAGED_LEN, 12)).await;
    let other = gw.stored_metadata("enc", "other");
    let mut meta = gw.stored_metadata("enc", "d");
    assert_ne!(meta["user_metadata"]["s3t-key"], serde_json::Value::Null);
    meta["user_metadata"]["s3t-key"] = other["user_metadata"]["s3t-key"].clone();
    gw.write_metadata("enc", "d", &meta);

    let failed = get_fails(&s3, "enc", "d", None).await;
    eprintln!("another object's wrapped key, GET: {failed:?}");
    get_fails(&s3, "enc", "d", Some("bytes=0-9")).await;
}

/// As the brief expects: a data key that opens no segment is an error answer (500), not a
/// 200 whose body breaks off.
#[tokio::test(flavor = "multi_thread")]

async fn another_objects_wrapped_key_is_a_500() {
    let (gw, s3, _) = damaged_setup().await;
    put(&s3, "enc", "other", &pattern(DAMAGED_LEN, 12)).await;
    let other = gw.stored_metadata("enc", "other");
    let mut meta = gw.stored_metadata("enc", "d");
    meta["user_metadata"]["s3t-key"] = other["user_metadata"]["s3t-key"].clone();
    gw.write_metadata("enc", "d", &meta);
    assert_eq!(
        get_fails(&s3, "enc", "d", None).await,
        Failed::Status(500, "InternalError".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envelope_without_its_version_is_a_500() {
    let (gw, s3, _) = damaged_setup().await;
    let mut meta = gw.stored_metadata("enc", "d");
    meta["user_metadata"]
        .as_object_mut()
        .unwrap()
        .remove("s3t-v")
        .unwrap();
    gw.write_metadata("enc", "d", &meta);
    assert_eq!(
        get_fails(&s3, "enc", "d", None).await,
        Failed::Status(500, "InternalError".into()),
        "GET"
    );
    assert_eq!(
        get_fails(&s3, "enc", "d", Some("bytes=0-9")).await,
        Failed::Status(500, "InternalError".into()),
        "ranged GET"
    );
    assert_eq!(head_status(&s3, "enc", "d").await, 500, "HEAD");
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_stored_without_encryption() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "legacy"]).await;
    let plain = pattern(KIB64 + 5, 21);
    std::fs::write(gw.object_file("enc", "old"), &plain).unwrap();
    std::fs::write(gw.object_file("legacy", "old"), &plain).unwrap();

    assert_eq!(
        get_fails(&s3, "enc", "old", None).await,
        Failed::Status(403, "InvalidObjectState".into()),
        "GET in an encrypted bucket"
    );
    assert_eq!(
        get_fails(&s3, "enc", "old", Some("bytes=0-9")).await,
        Failed::Status(403, "InvalidObjectState".into()),
        "ranged GET in an encrypted bucket"
    );
    assert_eq!(head_status(&s3, "enc", "old").await, 403, "HEAD");

    assert!(get_ok(&s3, "legacy", "old").await == plain, "legacy GET");
    let got = get(&s3, "legacy", "old", Some("bytes=10-19"))
        .await
        .unwrap();
    assert!(got.body == plain[10..20], "legacy ranged GET");
    assert_eq!(
        got.content_range.as_deref(),
        Some(format!("bytes 10-19/{}", plain.len()).as_str())
    );
    let head = s3
        .head_object()
        .bucket("legacy")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(as_i64(plain.len())));
    // New objects in the legacy bucket are encrypted.
    let fresh = pattern(5000, 22);
    put(&s3, "legacy", "new", &fresh).await;
    assert!(get_ok(&s3, "legacy", "new").await == fresh);
    assert_eq!(
        gw.stored("legacy", "new").len() as u64,
        encrypted_size(5000)
    );
}

/// ListObjects in a bucket that serves plaintext objects: their sizes must be reported as
/// stored, like HEAD does.
#[tokio::test(flavor = "multi_thread")]

async fn listings_of_plaintext_objects_keep_their_sizes() {
    let (gw, s3) = Gateway::with_buckets(&["legacy"]).await;
    let plain = pattern(KIB64 + 5, 23);
    std::fs::write(gw.object_file("legacy", "old"), &plain).unwrap();
    let head = s3
        .head_object()
        .bucket("legacy")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(as_i64(plain.len())), "HEAD");
    assert_eq!(
        listed_sizes(&s3, "legacy").await["old"],
        as_i64(plain.len()),
        "listed size"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Refusals of client requests.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn client_requests_the_layer_refuses() {
    let (gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let plain = pattern(3000, 31);

    let (status, code) = refused(
        s3.put_object()
            .bucket("enc")
            .key("meta")
            .metadata("s3t-x", "1")
            .body(ByteStream::from(plain.clone()))
            .send()
            .await,
        "reserved metadata",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
    assert_nothing_stored(&gw, &s3, "enc", "meta", "reserved metadata").await;

    let (status, code) = refused(
        s3.put_object()
            .bucket("enc")
            .key("md5")
            .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
            .body(ByteStream::from(plain.clone()))
            .send()
            .await,
        "wrong Content-MD5",
    );
    assert_eq!((status, code.as_str()), (400, "BadDigest"));
    assert_nothing_stored(&gw, &s3, "enc", "md5", "wrong Content-MD5").await;

    let (status, code) = refused(
        s3.put_object()
            .bucket("enc")
            .key("crc")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from(plain.clone()))
            .send()
            .await,
        "wrong x-amz-checksum-crc32",
    );
    assert_eq!((status, code.as_str()), (400, "BadDigest"));
    assert_nothing_stored(&gw, &s3, "enc", "crc", "wrong crc32").await;

    put(&s3, "enc", "src", &plain).await;
    let (status, code) = refused(
        s3.select_object_content()
            .bucket("enc")
            .key("src")
            .expression("SELECT * FROM S3Object")
            .expression_type(ExpressionType::Sql)
            .input_serialization(
                InputSerialization::builder()
                    .csv(CsvInput::builder().build())
                    .build(),
            )
            .output_serialization(
                OutputSerialization::builder()
                    .csv(CsvOutput::builder().build())
                    .build(),
            )
            .send()
            .await,
        "SelectObjectContent",
    );
    assert_eq!((status, code.as_str()), (501, "NotImplemented"));
    let (status, code) = refused(
        s3.get_object_attributes()
            .bucket("enc")
            .key("src")
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
            .await,
        "GetObjectAttributes",
    );
    assert_eq!((status, code.as_str()), (501, "NotImplemented"));
}

// ---------------------------------------------------------------------------------------
// 6. Copies.
// ---------------------------------------------------------------------------------------

/// UploadPartCopy re-encrypts the source under the upload's data key and part number.
#[tokio::test(flavor = "multi_thread")]
async fn upload_part_copy_re_encrypts_the_source() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "plain"]).await;
    let first = pattern(5 * MIB, 61);
    let second = pattern(3 * KIB64 + 11, 62);
    put(&s3, "enc", "src", &first).await;
    put(&s3, "plain", "src", &second).await;

    let id = create_upload(&s3, "enc", "upc").await;
    let mut parts = Vec::new();
    for (number, source, range) in [
        (1, "enc/src", None),
        // A range of an unencrypted source, crossing segment boundaries.
        (2, "plain/src", Some("bytes=65530-131083")),
    ] {
        let out = s3
            .upload_part_copy()
            .bucket("enc")
            .key("upc")
            .upload_id(&id)
            .part_number(number)
            .copy_source(source)
            .set_copy_source_range(range.map(str::to_owned))
            .send()
            .await
            .unwrap_or_else(|e| panic!("UploadPartCopy {number}: {e:?}"));
        let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_owned();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("enc")
        .key("upc")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let mut sizes: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![(1, as_i64(first.len())), (2, 65_554)]);
    complete(&s3, "upc", &id, parts)
        .await
        .unwrap_or_else(|e| panic!("complete: {e:?}"));

    let mut whole = first.clone();
    whole.extend_from_slice(&second[65_530..=131_083]);
    assert!(get_ok(&s3, "enc", "upc").await == whole, "GET");
    let n = whole.len();
    let got = get(&s3, "enc", "upc", Some("bytes=1048570-1048590"))
        .await
        .unwrap();
    assert!(
        got.body == whole[1_048_570..=1_048_590],
        "range across the parts"
    );
    assert_eq!(
        got.content_range.as_deref(),
        Some(format!("bytes 1048570-1048590/{n}").as_str())
    );
    assert_head(&s3, "enc", "upc", n, &[]).await;
    let stored = gw.stored("enc", "upc");
    assert!(!leaks_plaintext(&stored, &first), "part 1 at rest");
    assert!(!leaks_plaintext(&stored, &second), "part 2 at rest");
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_keep_the_envelope() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "plain"]).await;
    let plain = pattern(2 * KIB64 + 9, 41);
    s3.put_object()
        .bucket("enc")
        .key("src")
        .metadata("colour", "blue")
        .body(ByteStream::from(plain.clone()))
        .send()
        .await
        .unwrap();

    s3.copy_object()
        .bucket("enc")
        .key("copy")
        .copy_source("enc/src")
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy: {e:?}"));
    assert!(get_ok(&s3, "enc", "copy").await == plain, "COPY reads back");
    // Same KEK, no binding: a server-side copy of the ciphertext and its envelope.
    assert!(
        gw.stored("enc", "copy") == gw.stored("enc", "src"),
        "the copy holds the source's ciphertext"
    );
    assert_head(&s3, "enc", "copy", plain.len(), &[("colour", "blue")]).await;
    let got = get(&s3, "enc", "copy", Some("bytes=65530-65545"))
        .await
        .unwrap();
    assert!(got.body == plain[65_530..=65_545], "ranged GET of the copy");

    s3.copy_object()
        .bucket("enc")
        .key("replaced")
        .copy_source("enc/src")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("shape", "round")
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy REPLACE: {e:?}"));
    assert!(
        get_ok(&s3, "enc", "replaced").await == plain,
        "REPLACE reads back"
    );
    assert_head(&s3, "enc", "replaced", plain.len(), &[("shape", "round")]).await;
    let head = s3
        .head_object()
        .bucket("enc")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert!(
        !head.metadata().unwrap().contains_key("colour"),
        "REPLACE dropped the old metadata"
    );
    let stored = gw.stored("enc", "replaced");
    assert!(!leaks_plaintext(&stored, &plain), "plaintext at rest");

    // Out of the encrypted bucket: the gateway decrypts and stores plaintext.
    s3.copy_object()
        .bucket("plain")
        .key("out")
        .copy_source("enc/src")
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy to the plain bucket: {e:?}"));
    assert!(
        gw.stored("plain", "out") == plain,
        "plaintext in the plain bucket"
    );
    assert!(get_ok(&s3, "plain", "out").await == plain);
    let head = s3
        .head_object()
        .bucket("plain")
        .key("out")
        .send()
        .await
        .unwrap();
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(
        metadata.get("colour").map(String::as_str),
        Some("blue"),
        "{metadata:?}"
    );
    assert!(
        metadata.keys().all(|k| !k.starts_with("s3t-")),
        "the envelope went to the plain bucket: {metadata:?}"
    );
    let meta = gw.stored_metadata("plain", "out");
    assert!(
        !meta.to_string().contains("s3t-"),
        "the envelope is at rest in the plain bucket: {meta}"
    );

    // Into the encrypted bucket: the gateway encrypts.
    s3.copy_object()
        .bucket("enc")
        .key("back")
        .copy_source("plain/out")
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy from the plain bucket: {e:?}"));
    assert!(get_ok(&s3, "enc", "back").await == plain);
    let stored = gw.stored("enc", "back");
    assert_eq!(stored.len() as u64, encrypted_size(plain.len() as u64));
    assert!(!leaks_plaintext(&stored, &plain), "plaintext at rest");
    assert_head(&s3, "enc", "back", plain.len(), &[("colour", "blue")]).await;
}

// ---------------------------------------------------------------------------------------
// 7. A bucket without encryption.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_bucket_stores_plaintext() {
    let (gw, s3) = Gateway::with_buckets(&["plain", "plain-two"]).await;
    for (bucket, len) in [("plain", KIB64 + 3), ("plain-two", 1000)] {
        let plain = pattern(len, 51);
        put(&s3, bucket, "p", &plain).await;
        let stored = gw.stored(bucket, "p");
        assert!(stored == plain, "{bucket}: stored as is");
        // The detector the other tests rely on finds plaintext where it is.
        assert!(leaks_plaintext(&stored, &plain));
        assert!(leaks_plaintext(&stored[100..200], &plain));
        assert!(get_ok(&s3, bucket, "p").await == plain);
        assert_eq!(listed_sizes(&s3, bucket).await["p"], as_i64(len));
    }
    // And a reserved metadata name is refused there too.
    let (status, code) = refused(
        s3.put_object()
            .bucket("plain")
            .key("meta")
            .metadata("s3t-v", "1")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "reserved metadata in a plain bucket",
    );
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
}

#[test]
fn the_detector_finds_windows_at_any_offset() {
    let plain = pattern(4096, 3);
    for offset in [0, 1, 7, 8, 9, 1000, 4064] {
        let mut stored = pattern(500, 4);
        stored.extend_from_slice(&plain[offset..offset + 32]);
        stored.extend_from_slice(&pattern(500, 5));
        assert!(leaks_plaintext(&stored, &plain), "offset {offset}");
        // 31 bytes, between bytes that differ from the plaintext's neighbours.
        let mut short = vec![plain.get(offset.wrapping_sub(1)).map_or(0, |b| !b)];
        short.extend_from_slice(&plain[offset..offset + 31]);
        short.push(!plain[offset + 31]);
        assert!(!leaks_plaintext(&short, &plain), "31 bytes at {offset}");
    }
}

/// Objects stored while a bucket was encrypted stay readable once its rule says `Off`: GET
/// (whole and ranged) and HEAD find the envelope and decrypt; an envelope whose KEK is not
/// configured is refused (500), never served as ciphertext.
#[tokio::test(flavor = "multi_thread")]
async fn encrypted_objects_in_a_bucket_without_encryption() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "plain"]).await;
    let plain = pattern(KIB64 + 300, 51);
    put(&s3, "enc", "moved", &plain).await;
    // The bucket's rule was turned off after the object was written: here, its stored files
    // are moved into the unencrypted bucket.
    std::fs::copy(
        gw.object_file("enc", "moved"),
        gw.object_file("plain", "moved"),
    )
    .unwrap();
    std::fs::copy(
        gw.metadata_file("enc", "moved"),
        gw.metadata_file("plain", "moved"),
    )
    .unwrap();
    assert!(get_ok(&s3, "plain", "moved").await == plain, "whole GET");
    let got = get(&s3, "plain", "moved", Some("bytes=65530-65545"))
        .await
        .unwrap();
    assert!(got.body == plain[65_530..=65_545], "ranged GET");
    assert_eq!(
        got.content_range.as_deref(),
        Some(format!("bytes 65530-65545/{}", plain.len()).as_str())
    );
    let head = s3
        .head_object()
        .bucket("plain")
        .key("moved")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(as_i64(plain.len())));
    assert!(
        head.metadata()
            .is_none_or(|m| m.keys().all(|k| !k.starts_with("s3t-"))),
        "no envelope shown"
    );

    // An envelope naming a KEK the gateway does not have: refused, not served as it is.
    let mut meta = gw.stored_metadata("plain", "moved");
    meta["user_metadata"]["s3t-kek"] = serde_json::json!("local:0000000000000000");
    gw.write_metadata("plain", "moved", &meta);
    assert_eq!(
        get_fails(&s3, "plain", "moved", None).await,
        Failed::Status(500, "InternalError".into())
    );
}

/// Appends `param` to the query of a request before the SDK signs it (presigned URLs carry
/// headers in the query this way).
fn with_query_param(
    param: &'static str,
) -> impl Fn(&mut aws_sdk_s3::config::http::HttpRequest) + Send + Sync + 'static {
    move |req| {
        let uri = req.uri().to_owned();
        let separator = if uri.contains('?') { '&' } else { '?' };
        req.set_uri(format!("{uri}{separator}{param}")).unwrap();
    }
}

/// `x-amz-*` parameters in the query are headers to the backend, so they get the rules of
/// headers: reserved metadata refused, checksums verified on the plaintext, directives
/// obeyed with the envelope kept.
#[tokio::test(flavor = "multi_thread")]
async fn x_amz_parameters_in_the_query_follow_the_header_rules() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "plain"]).await;
    let body = pattern(1000, 61);
    for bucket in ["enc", "plain"] {
        let result = s3
            .put_object()
            .bucket(bucket)
            .key("forged")
            .body(ByteStream::from(body.clone()))
            .customize()
            .mutate_request(with_query_param("x-amz-meta-s3t-v=1"))
            .send()
            .await;
        assert_eq!(
            refused(result, "s3t metadata in the query"),
            (400, "InvalidArgument".to_owned()),
            "{bucket}"
        );
        assert_nothing_stored(&gw, &s3, bucket, "forged", "s3t metadata in the query").await;
    }

    let result = s3
        .put_object()
        .bucket("enc")
        .key("bad-crc")
        .body(ByteStream::from(body.clone()))
        .customize()
        // No checksum of the SDK's own, only the one in the query.
        .config_override(
            aws_sdk_s3::config::Config::builder().request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            ),
        )
        .mutate_request(with_query_param("x-amz-checksum-crc32=AAAAAA%3D%3D"))
        .send()
        .await;
    assert_eq!(
        refused(result, "a wrong checksum in the query"),
        (400, "BadDigest".to_owned())
    );
    assert_nothing_stored(&gw, &s3, "enc", "bad-crc", "a wrong checksum in the query").await;

    // A REPLACE directive in the query: the copy gets the new metadata and keeps its envelope.
    put(&s3, "enc", "src", &body).await;
    s3.copy_object()
        .bucket("enc")
        .key("replaced")
        .copy_source("enc/src")
        .customize()
        .mutate_request(with_query_param(
            "x-amz-metadata-directive=REPLACE&x-amz-meta-shape=round",
        ))
        .send()
        .await
        .unwrap();
    assert!(get_ok(&s3, "enc", "replaced").await == body);
    assert_head(&s3, "enc", "replaced", body.len(), &[("shape", "round")]).await;
}

/// A copy is decided by how the source object is stored, not by its bucket's rule: a
/// plaintext object of a bucket that allows plaintext reads, copied into an encrypted bucket
/// with the same KEK, is encrypted on the way (whatever the metadata directive).
#[tokio::test(flavor = "multi_thread")]
async fn copies_of_plaintext_objects_into_encrypted_buckets_are_encrypted() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "legacy"]).await;
    let plain = pattern(2 * KIB64 + 3, 71);
    std::fs::write(gw.object_file("legacy", "old"), &plain).unwrap();
    for (key, directive) in [
        ("copied", aws_sdk_s3::types::MetadataDirective::Copy),
        ("replaced", aws_sdk_s3::types::MetadataDirective::Replace),
    ] {
        s3.copy_object()
            .bucket("enc")
            .key(key)
            .copy_source("legacy/old")
            .metadata_directive(directive)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {key}: {e:?}"));
        let stored = gw.stored("enc", key);
        assert_eq!(
            stored.len() as u64,
            encrypted_size(plain.len() as u64),
            "{key} at rest"
        );
        assert!(
            !leaks_plaintext(&stored, &plain),
            "{key}: plaintext at rest"
        );
        assert!(get_ok(&s3, "enc", key).await == plain, "{key} reads back");
    }
}

/// In a bucket without encryption, a copy of an object that still carries an envelope is
/// decrypted by the gateway: the copy never holds ciphertext without its envelope.
#[tokio::test(flavor = "multi_thread")]
async fn copies_of_encrypted_objects_in_a_bucket_without_encryption_are_decrypted() {
    let (gw, s3) = Gateway::with_buckets(&["enc", "plain"]).await;
    let plain = pattern(KIB64 + 77, 81);
    put(&s3, "enc", "moved", &plain).await;
    std::fs::copy(
        gw.object_file("enc", "moved"),
        gw.object_file("plain", "moved"),
    )
    .unwrap();
    std::fs::copy(
        gw.metadata_file("enc", "moved"),
        gw.metadata_file("plain", "moved"),
    )
    .unwrap();
    s3.copy_object()
        .bucket("plain")
        .key("copy")
        .copy_source("plain/moved")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
    assert!(gw.stored("plain", "copy") == plain, "plaintext at rest");
    assert!(get_ok(&s3, "plain", "copy").await == plain);
}

/// Encrypted objects show MD5-shaped ETags with `-0` (the backend's is the ciphertext's
/// MD5, which clients such as rclone and s3cmd would take for the content's): in PUT, HEAD,
/// GET and UploadPart answers alike; a copy conditioned on the shown ETag works, one on
/// another ETag fails; a part's shown ETag completes the upload.
#[tokio::test(flavor = "multi_thread")]
async fn etags_of_encrypted_objects_are_not_md5_shaped() {
    let (_gw, s3) = Gateway::with_buckets(&["enc"]).await;
    let body = pattern(KIB64 + 1, 91);
    let put = s3
        .put_object()
        .bucket("enc")
        .key("e")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with("-0\"") && etag.len() == 36,
        "{etag}"
    );
    let head = s3
        .head_object()
        .bucket("enc")
        .key("e")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()), "HEAD");
    let got = s3.get_object().bucket("enc").key("e").send().await.unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()), "GET");
    // (s3s-fs lists no ETags; the listing rewrite is tested in s3-encrypt's listing tests.)

    s3.copy_object()
        .bucket("enc")
        .key("copy")
        .copy_source("enc/e")
        .copy_source_if_match(&etag)
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy if-match the shown ETag: {e:?}"));
    let other = format!("\"{}-0\"", "0".repeat(32));
    let result = s3
        .copy_object()
        .bucket("enc")
        .key("copy2")
        .copy_source("enc/e")
        .copy_source_if_match(&other)
        .send()
        .await;
    assert_eq!(
        refused(result, "copy if-match another ETag"),
        (412, "PreconditionFailed".to_owned())
    );

    let id = create_upload(&s3, "enc", "mp").await;
    let part = upload_part(&s3, "mp", &id, 1, &body).await;
    let part_etag = part.e_tag().unwrap().to_owned();
    assert!(part_etag.ends_with("-0\""), "part ETag {part_etag}");
    // (s3s-fs lists parts without ETags.)
    complete(&s3, "mp", &id, vec![part]).await.unwrap();
    assert!(get_ok(&s3, "enc", "mp").await == body);
}

/// A `SELECT` restore would run a query on the ciphertext: refused like SelectObjectContent.
#[tokio::test(flavor = "multi_thread")]
async fn select_restores_are_refused() {
    let (_gw, s3) = Gateway::with_buckets(&["enc"]).await;
    put(&s3, "enc", "r", b"a,b\n1,2\n").await;
    let request = aws_sdk_s3::types::RestoreRequest::builder()
        .r#type(aws_sdk_s3::types::RestoreRequestType::Select)
        .select_parameters(
            aws_sdk_s3::types::SelectParameters::builder()
                .input_serialization(
                    aws_sdk_s3::types::InputSerialization::builder()
                        .csv(aws_sdk_s3::types::CsvInput::builder().build())
                        .build(),
                )
                .expression_type(aws_sdk_s3::types::ExpressionType::Sql)
                .expression("select * from S3Object")
                .output_serialization(
                    aws_sdk_s3::types::OutputSerialization::builder()
                        .csv(aws_sdk_s3::types::CsvOutput::builder().build())
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build();
    let result = s3
        .restore_object()
        .bucket("enc")
        .key("r")
        .restore_request(request)
        .send()
        .await;
    assert_eq!(
        refused(result, "SELECT restore"),
        (501, "NotImplemented".to_owned())
    );
}
