//! SigV4 verification (`s3-auth`), each next to a baseline measured in the same run:
//!
//! - `header_verify`: `SigV4Verifier::verify_at` on a header-signed GET as an SDK sends it,
//!   next to the client-side cost of signing it with `aws_sigv4::http_request::sign`.
//! - `presign_verify`: the same for a presigned GET URL (`X-Amz-Expires=3600`).
//! - `chunked_throughput`: an 8 MiB upload pushed through `SigV4Layer` into a service that
//!   drains the body, fed in 16 KiB frames: aws-chunked with a signature per 64 KiB chunk,
//!   aws-chunked unsigned with a CRC32 trailer, a signed hex SHA-256 payload, and (the
//!   layer's floor) `UNSIGNED-PAYLOAD`; next to plain SHA-256 over the same bytes in the same
//!   frames.
//!
//! After criterion, the variants of each group are timed again, interleaved (one, the other,
//! the other, the one, ...) so machine noise hits both alike, and the `ratio` lines are printed
//! with the goals of the issue: at most 5 µs per header verification, decoding + verification
//! at least 0.8× the throughput of raw SHA-256.
//!
//! ```text
//! cargo bench --bench sigv4
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningInstructions, SigningParams, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use s3_tower::auth::checksum::ChecksumAlgorithm;
use s3_tower::auth::{
    SecretKey, SigV4Body, SigV4Layer, SigV4Verifier, StaticCredentials, StaticUser,
};
use s3_tower::core::{AuthMethod, Principal};
use tokio::runtime::Runtime;

use support::interleaved_times;
use tower::{Service, ServiceBuilder, ServiceExt};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
const HOST: &str = "gw.example.com:8190";
/// A 30-character object key.
const KEY: &str = "photos/2025/01/img_000042.jpeg";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The upload size of `chunked_throughput`.
const PAYLOAD_SIZE: usize = 8 * MIB;
/// The aws-chunked chunk size (the AWS SDKs' default).
const CHUNK_SIZE: usize = 64 * KIB;
/// The size of the frames the body arrives in (a typical socket read).
const FRAME_SIZE: usize = 16 * KIB;
/// The issue's goals.
const HEADER_GOAL: Duration = Duration::from_micros(5);
const THROUGHPUT_GOAL: f64 = 0.8;

/// The time the header and presigned requests are signed at (2025-01-01T00:00:00Z) and
/// verified at.
fn signing_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_hours(482_136)
}

fn users() -> StaticCredentials {
    StaticCredentials::new([StaticUser {
        access_key_id: ACCESS_KEY.into(),
        secret: SecretKey::new(SECRET_KEY),
        subject: "alice".into(),
        groups: vec!["admin".into()],
    }])
    .unwrap()
}

/// The settings an S3 client signs with: the path as sent, `x-amz-content-sha256`.
fn settings(location: SignatureLocation, expires_in: Option<Duration>) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = location;
    settings.expires_in = expires_in;
    settings
}

/// What a client does to sign a request head: `aws_sigv4::http_request::sign` over its
/// method, URI and headers.
fn sign_head(
    parts: &Parts,
    body: SignableBody<'_>,
    params: &SigningParams<'_>,
) -> (SigningInstructions, String) {
    let uri = parts.uri.to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap()));
    let signable = SignableRequest::new(parts.method.as_str(), uri, headers, body).unwrap();
    sign(signable, params).unwrap().into_parts()
}

/// A request head signed at `time`, and its signature (the seed of aws-chunked chunks).
fn signed(
    unsigned: &Parts,
    time: SystemTime,
    body: SignableBody<'_>,
    settings: SigningSettings,
) -> (Parts, String) {
    let (instructions, signature) =
        with_client_params(time, settings, |params| sign_head(unsigned, body, params));
    let mut req = Request::from_parts(unsigned.clone(), ());
    instructions.apply_to_request_http1x(&mut req);
    (req.into_parts().0, signature)
}

/// A ListObjectsV2-style GET as an SDK sends it, before signing (the signer adds
/// `x-amz-date`, `x-amz-content-sha256` and the signature).
fn get_head() -> Parts {
    Request::get(format!(
        "http://{HOST}/my-bucket/{KEY}?list-type=2&prefix=a/b"
    ))
    .header("host", HOST)
    .header("user-agent", "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0")
    .body(())
    .unwrap()
    .into_parts()
    .0
}

/// A request body yielding `data` in frames of at most `FRAME_SIZE` bytes, as hyper hands
/// the reads of a socket inward.
struct Frames {
    data: Bytes,
}

impl Frames {
    fn new(data: Bytes) -> Self {
        Self { data }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = FRAME_SIZE.min(self.data.len());
        Poll::Ready(Some(Ok(Frame::data(self.data.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// How many payload bytes the inner service read.
#[derive(Debug, Clone, Copy)]
struct Drained(usize);

/// The inner service: reads the body to the end, counting bytes; 200 when the request came
/// authenticated and the body verified, 500 otherwise.
async fn drain(req: Request<SigV4Body<Frames>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let authenticated = req
        .extensions()
        .get::<Principal>()
        .is_some_and(|p| p.subject == "alice");
    let mut body = req.into_body();
    let mut n = 0;
    let mut ok = authenticated;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    n += data.len();
                }
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    if !ok {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response.extensions_mut().insert(Drained(n));
    Ok(response)
}

/// One upload through the layer; panics unless it is answered 200 with the whole payload
/// drained.
async fn upload<S>(service: &S, upload: &Upload) -> usize
where
    S: Service<Request<Frames>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    let (status, n) = try_upload(service, &upload.parts, upload.body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{}", upload.name);
    assert_eq!(n, PAYLOAD_SIZE, "{}: short body", upload.name);
    n
}

/// The status and the drained length of one request through the layer.
async fn try_upload<S>(service: &S, parts: &Parts, body: Bytes) -> (StatusCode, usize)
where
    S: Service<Request<Frames>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    let req = Request::from_parts(parts.clone(), Frames::new(body));
    let response = service.clone().oneshot(req).await.unwrap();
    let n = response.extensions().get::<Drained>().map_or(0, |d| d.0);
    (response.status(), n)
}

/// The baseline: SHA-256 of the payload, read from the same 16 KiB frames.
///
/// `ChecksumAlgorithm::Sha256` is a running `aws_lc_rs::digest` SHA-256 context, the one the
/// verifier hashes chunks and signed payloads with (aws-lc-rs is no dev-dependency of this
/// package).
async fn sha256_frames(payload: &Bytes) -> String {
    let mut body = Frames::new(payload.clone());
    let mut hash = ChecksumAlgorithm::Sha256.hasher();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            hash.update(&data);
        }
    }
    hash.finalize_base64()
}

/// An upload request: its signed head and its encoded body.
struct Upload {
    name: &'static str,
    parts: Parts,
    body: Bytes,
}

/// The head of an 8 MiB PutObject before signing.
fn put_head(content_length: usize, extra: &[(&str, String)]) -> Parts {
    let mut builder = Request::put(format!("http://{HOST}/my-bucket/{KEY}"))
        .header("host", HOST)
        .header("user-agent", "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0")
        .header("content-type", "application/octet-stream")
        .header("content-length", content_length.to_string());
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// The heads of aws-chunked requests.
fn chunked_headers(trailer: Option<ChecksumAlgorithm>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length", PAYLOAD_SIZE.to_string()),
    ];
    if let Some(algorithm) = trailer {
        headers.push(("x-amz-trailer", algorithm.header_name().to_owned()));
        headers.push(("x-amz-sdk-checksum-algorithm", algorithm.name().to_owned()));
    }
    headers
}

/// The length of a chunk header line with its CRLF.
fn chunk_header_len(size: usize, signed: bool) -> usize {
    let signature = if signed {
        ";chunk-signature=".len() + 64
    } else {
        0
    };
    format!("{size:x}").len() + signature + 2
}

/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every 64 KiB chunk signed, chained from the seed
/// signature with `aws_sigv4::sign::v4::sign_chunk`.
fn streaming_signed(payload: &Bytes, time: SystemTime) -> Upload {
    let chunks: Vec<Bytes> = (0..payload.len())
        .step_by(CHUNK_SIZE)
        .map(|start| payload.slice(start..(start + CHUNK_SIZE).min(payload.len())))
        .collect();
    let encoded_len = chunks
        .iter()
        .map(|c| chunk_header_len(c.len(), true) + c.len() + 2)
        .sum::<usize>()
        + chunk_header_len(0, true)
        + 2;
    let unsigned = put_head(encoded_len, &chunked_headers(None));
    let (parts, seed) = signed(
        &unsigned,
        time,
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
        header_settings(),
    );

    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(header_settings())
        .build()
        .unwrap();
    let mut previous = seed;
    let mut body = Vec::with_capacity(encoded_len);
    for chunk in chunks.iter().chain([&Bytes::new()]) {
        let signature = v4::sign_chunk(chunk, &previous, &params)
            .unwrap()
            .signature()
            .to_owned();
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        if !chunk.is_empty() {
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        previous = signature;
    }
    body.extend_from_slice(b"\r\n");
    assert_eq!(body.len(), encoded_len);
    Upload {
        name: "streaming_signed_64KiB_chunks",
        parts,
        body: body.into(),
    }
}

/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with an `x-amz-checksum-crc32` trailer.
fn streaming_unsigned_trailer(payload: &Bytes, time: SystemTime) -> Upload {
    let algorithm = ChecksumAlgorithm::Crc32;
    let mut crc = algorithm.hasher();
    crc.update(payload);
    let trailer = format!("{}:{}\r\n", algorithm.header_name(), crc.finalize_base64());
    let mut body = Vec::with_capacity(payload.len() + payload.len() / CHUNK_SIZE * 16 + 64);
    for chunk in payload.chunks(CHUNK_SIZE) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    body.extend_from_slice(trailer.as_bytes());
    body.extend_from_slice(b"\r\n");
    let unsigned = put_head(body.len(), &chunked_headers(Some(algorithm)));
    let (parts, _) = signed(
        &unsigned,
        time,
        SignableBody::StreamingUnsignedPayloadTrailer,
        header_settings(),
    );
    Upload {
        name: "streaming_unsigned_trailer_crc32",
        parts,
        body: body.into(),
    }
}

/// A plain body signed with its hex SHA-256 in `x-amz-content-sha256` (computed by
/// aws-sigv4).
fn signed_sha256(payload: &Bytes, time: SystemTime) -> Upload {
    let (parts, _) = signed(
        &put_head(payload.len(), &[]),
        time,
        SignableBody::Bytes(payload),
        header_settings(),
    );
    let hash = parts.headers["x-amz-content-sha256"].to_str().unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    Upload {
        name: "signed_sha256_payload",
        parts,
        body: payload.clone(),
    }
}

/// `UNSIGNED-PAYLOAD`: the body passes through unchecked (the layer's floor).
fn unsigned_payload(payload: &Bytes, time: SystemTime) -> Upload {
    let (parts, _) = signed(
        &put_head(payload.len(), &[]),
        time,
        SignableBody::UnsignedPayload,
        header_settings(),
    );
    Upload {
        name: "unsigned_payload",
        parts,
        body: payload.clone(),
    }
}

/// A copy of `body` with one byte flipped in the middle.
fn tampered(body: &Bytes) -> Bytes {
    let mut bytes = body.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    bytes.into()
}

/// A signed request head to verify, and how the client signs it.
struct Head {
    /// The criterion group.
    name: &'static str,
    signed: Parts,
    settings: fn() -> SigningSettings,
    body: fn() -> SignableBody<'static>,
}

/// Everything the benchmarks share.
struct Env {
    rt: Runtime,
    verifier: SigV4Verifier,
    /// When the heads are signed and verified.
    time: SystemTime,
    /// The GET before signing: what the client signs in the baselines.
    get_unsigned: Parts,
    /// `header_verify` and `presign_verify`.
    heads: [Head; 2],
    payload: Bytes,
    uploads: Vec<Upload>,
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verifier = SigV4Verifier::new(users());
    let time = signing_time();

    let get_unsigned = get_head();
    let head = |name, settings: fn() -> SigningSettings, body: fn() -> SignableBody<'static>| {
        let (signed, _) = signed(&get_unsigned, time, body(), settings());
        Head {
            name,
            signed,
            settings,
            body,
        }
    };
    let heads = [
        head("header_verify", header_settings, || {
            SignableBody::Bytes(b"")
        }),
        head("presign_verify", presign_settings, || {
            SignableBody::UnsignedPayload
        }),
    ];
    let [get_signed, presign_signed] = [&heads[0].signed, &heads[1].signed];

    // A benchmark that measures refusals or the wrong path is worthless: check each shape.
    assert_eq!(
        get_signed.headers["x-amz-content-sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(get_signed.headers.contains_key("authorization"));
    let query = presign_signed.uri.query().unwrap();
    assert!(query.contains("X-Amz-Expires=3600"), "{query}");
    assert!(!presign_signed.headers.contains_key("authorization"));
    rt.block_on(async {
        let verified = verifier.verify_at(get_signed, time).await.unwrap().unwrap();
        assert_eq!(verified.principal.auth, AuthMethod::SigV4);
        assert_eq!(verified.principal.subject, "alice");
        let verified = verifier
            .verify_at(presign_signed, time + Duration::from_mins(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(verified.principal.auth, AuthMethod::Presigned);
        let mut wrong = get_signed.clone();
        let mut auth = wrong.headers["authorization"].to_str().unwrap().to_owned();
        let last = if auth.pop() == Some('0') { '1' } else { '0' };
        auth.push(last);
        wrong.headers.insert("authorization", auth.parse().unwrap());
        assert!(verifier.verify_at(&wrong, time).await.is_err());
    });

    let payload: Bytes = (0..PAYLOAD_SIZE)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect::<Vec<u8>>()
        .into();
    // The layer verifies against the clock: sign now, and allow a day of skew so that long
    // runs (`--measurement-time 600`) still verify.
    let now = SystemTime::now();
    let uploads = vec![
        streaming_signed(&payload, now),
        streaming_unsigned_trailer(&payload, now),
        signed_sha256(&payload, now),
        unsigned_payload(&payload, now),
    ];
    let service = layered();
    rt.block_on(async {
        for upload in &uploads {
            self::upload(&service, upload).await;
            // Verification really runs: a flipped byte is refused (except without a signed
            // payload).
            let (status, _) = try_upload(&service, &upload.parts, tampered(&upload.body)).await;
            if upload.name == "unsigned_payload" {
                assert_eq!(status, StatusCode::OK);
            } else {
                assert!(
                    status.is_client_error(),
                    "{}: tampered body got {status}",
                    upload.name
                );
            }
        }
        let mut whole = ChecksumAlgorithm::Sha256.hasher();
        whole.update(&payload);
        assert_eq!(sha256_frames(&payload).await, whole.finalize_base64());
    });

    Env {
        rt,
        verifier,
        time,
        get_unsigned,
        heads,
        payload,
        uploads,
    }
}

/// `SigV4Layer` in front of [`drain`].
fn layered()
-> impl Service<Request<Frames>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(SigV4Layer::new(users()).max_skew(Duration::from_hours(24)))
        .service_fn(drain)
}

/// Calls `f` with the client's signing parameters for `settings` at `time`.
fn with_client_params<R>(
    time: SystemTime,
    settings: SigningSettings,
    f: impl FnOnce(&SigningParams<'_>) -> R,
) -> R {
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    f(&params)
}

fn header_settings() -> SigningSettings {
    settings(SignatureLocation::Headers, None)
}

fn presign_settings() -> SigningSettings {
    settings(
        SignatureLocation::QueryParams,
        Some(Duration::from_hours(1)),
    )
}

fn bench_head(c: &mut Criterion, env: &Env, head: &Head) {
    let mut group = c.benchmark_group(head.name);
    group.throughput(Throughput::Elements(1));
    with_client_params(env.time, (head.settings)(), |params| {
        group.bench_function("baseline_aws_sigv4_sign", |b| {
            b.iter(|| {
                black_box(sign_head(
                    black_box(&env.get_unsigned),
                    (head.body)(),
                    params,
                ))
            });
        });
    });
    group.bench_function("verify_at", |b| {
        b.to_async(&env.rt).iter(|| async {
            black_box(
                env.verifier
                    .verify_at(black_box(&head.signed), env.time)
                    .await,
            )
        });
    });
    group.finish();
}

fn bench_chunked(c: &mut Criterion, env: &Env) {
    let service = layered();
    let mut group = c.benchmark_group("chunked_throughput");
    group
        .throughput(Throughput::Bytes(PAYLOAD_SIZE as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);
    group.bench_function("baseline_sha256_16KiB_frames", |b| {
        b.to_async(&env.rt)
            .iter(|| async { black_box(sha256_frames(&env.payload).await) });
    });
    for upload in &env.uploads {
        group.bench_function(upload.name, |b| {
            b.to_async(&env.rt)
                .iter(|| async { black_box(self::upload(&service, upload).await) });
        });
    }
    group.finish();
}

/// Mean and median.
fn stats(mut times: Vec<Duration>) -> (Duration, Duration) {
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    times.sort_unstable();
    (mean, times[times.len() / 2])
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib_per_s(d: Duration) -> f64 {
    f64::from(u32::try_from(PAYLOAD_SIZE).unwrap())
        / d.as_secs_f64()
        / f64::from(u32::try_from(MIB).unwrap())
}

/// Times the verification of `signed` against signing it, interleaved, and prints the ratio.
fn head_summary(env: &Env, head: &Head) {
    const BATCH: u32 = 200;
    const ROUNDS: usize = 200;
    let name = head.name;
    let (sign, verify) = with_client_params(env.time, (head.settings)(), |params| {
        interleaved_times(
            ROUNDS,
            || {
                let start = Instant::now();
                for _ in 0..BATCH {
                    black_box(sign_head(
                        black_box(&env.get_unsigned),
                        (head.body)(),
                        params,
                    ));
                }
                start.elapsed() / BATCH
            },
            || {
                env.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..BATCH {
                        black_box(
                            env.verifier
                                .verify_at(black_box(&head.signed), env.time)
                                .await
                                .unwrap(),
                        );
                    }
                    start.elapsed() / BATCH
                })
            },
        )
    });
    let (sign_mean, sign_median) = stats(sign);
    let (verify_mean, verify_median) = stats(verify);
    println!(
        "{name}: verify_at {:.2} µs/op (median {:.2}), aws-sigv4 sign {:.2} µs/op (median {:.2})",
        micros(verify_mean),
        micros(verify_median),
        micros(sign_mean),
        micros(sign_median),
    );
    println!(
        "ratio (verify/sign time) {name}: {:.3} (mean), {:.3} (median); goal verify_at ≤ {} µs: {}",
        verify_mean.as_secs_f64() / sign_mean.as_secs_f64(),
        verify_median.as_secs_f64() / sign_median.as_secs_f64(),
        HEADER_GOAL.as_micros(),
        if verify_median <= HEADER_GOAL {
            "met"
        } else {
            "NOT met"
        },
    );
}

/// Times each upload against raw SHA-256, interleaved, and prints the throughput ratios.
fn chunked_summary(env: &Env) {
    const ROUNDS: usize = 30;
    let service = layered();
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    for upload in &env.uploads {
        // Warm-up.
        env.rt.block_on(async {
            for _ in 0..3 {
                self::upload(&service, upload).await;
                sha256_frames(&env.payload).await;
            }
        });
        let (baseline, layer) = interleaved_times(
            ROUNDS,
            || {
                time(&mut || {
                    black_box(env.rt.block_on(sha256_frames(&env.payload)));
                })
            },
            || {
                time(&mut || {
                    black_box(env.rt.block_on(self::upload(&service, upload)));
                })
            },
        );
        let (base_mean, base_median) = stats(baseline);
        let (mean, median) = stats(layer);
        println!(
            "chunked_throughput {}: {:.0} MiB/s (median {:.0}), raw sha256 {:.0} MiB/s (median {:.0})",
            upload.name,
            mib_per_s(mean),
            mib_per_s(median),
            mib_per_s(base_mean),
            mib_per_s(base_median),
        );
        let ratio_mean = base_mean.as_secs_f64() / mean.as_secs_f64();
        let ratio_median = base_median.as_secs_f64() / median.as_secs_f64();
        let goal = if upload.name == "unsigned_payload" {
            "(no verification: the layer's floor)".to_owned()
        } else {
            format!(
                "goal ≥ {THROUGHPUT_GOAL}: {}",
                if ratio_median >= THROUGHPUT_GOAL {
                    "met"
                } else {
                    "NOT met"
                }
            )
        };
        println!(
            "ratio ({}/raw sha256 throughput): {ratio_mean:.3} (mean), {ratio_median:.3} (median); {goal}",
            upload.name,
        );
    }
}

fn main() {
    let bench_mode = {
        let args: Vec<String> = std::env::args().collect();
        args.iter().any(|a| a == "--bench")
            && !args
                .iter()
                .any(|a| a == "--test" || a == "--list" || a == "--profile-time")
    };
    let env = setup();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    for head in &env.heads {
        bench_head(&mut c, &env, head);
    }
    bench_chunked(&mut c, &env);
    c.final_summary();
    if bench_mode {
        println!("\nInterleaved timing (each variant next to its baseline, same run):");
        for head in &env.heads {
            head_summary(&env, head);
        }
        chunked_summary(&env);
    }
}
