//! End-to-end cost of envelope encryption: PUT and GET of a 64 MiB object from a hyper client
//! through the gateway stack to an in-process s3s-fs server, plain
//! (`S3RequestLayer` → `ResignLayer` → `Upstream` → s3s-fs) next to encrypted
//! (`S3RequestLayer` → `EncryptLayer` → `ResignLayer` → `Upstream` → s3s-fs). Client requests
//! are unsigned plain bodies with a `Content-Length` (`x-amz-content-sha256: UNSIGNED-PAYLOAD`;
//! no authentication layer, and `EncryptLayer` refuses aws-chunked bodies); the gateway
//! re-signs them for s3s-fs. The s3s-fs data directory is on `/dev/shm` when there is one, so
//! that disk speed does not dominate.
//!
//! Once at startup: the GET of each variant returns the bytes PUT, the plain object is stored
//! as is and the encrypted one is stored as ciphertext of the encrypted size.
//!
//! After criterion, both variants are timed again, interleaved (plain, encrypted, encrypted,
//! plain, ...) so machine noise hits both alike, and `ratio encrypted/plain throughput` lines
//! are printed. Then the process's peak RSS (`VmHWM`, reset through `/proc/self/clear_refs`)
//! is measured during a 1 MiB and a 1 GiB upload, and a 1 MiB and a 1 GiB download, through
//! the encrypted stack: the 1 GiB body is generated (one 1 MiB `Bytes` sent 1024 times) and
//! the download is discarded as it arrives, so the bench itself holds no large buffer and the
//! peak shows whether the stack streams.
//!
//! ```text
//! cargo bench --bench encrypt_e2e
//! ```

#![allow(clippy::unwrap_used, missing_docs)]
// Sizes here are small and exact in f64.
#![allow(clippy::cast_precision_loss)]

#[path = "../examples/gateway/dev_backend.rs"]
mod dev_backend;
mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use http::{Method, Request, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s3_tower::core::S3RequestLayer;
use s3_tower::encrypt::{
    BucketEncryption, EncryptLayer, EncryptionPolicy, LocalKek, encrypted_size,
};
use s3_tower::resign::{
    Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream,
};
use tokio::runtime::Runtime;
use tower::ServiceBuilder;

use crate::dev_backend::DevBackend;
use crate::support::{interleaved, serve};

const ACCESS_KEY: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key-0123456789abcdefghijklmn";
const MIB: usize = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;
/// The object size of the throughput part.
const SIZE: usize = 64 * MIB;
/// The frames request bodies are sent in.
const FRAME: usize = MIB;
/// The object the benchmarks write and read.
const KEY: &str = "object-64MiB";
/// Rounds of the interleaved timing, per operation.
const ROUNDS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Plain,
    Encrypted,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Plain => "plain",
            Via::Encrypted => "encrypted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Put,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Put => "PUT",
        }
    }
}

/// A request body of `total` bytes, sent as `FRAME`-sized slices of `source`, from its start
/// again whenever it runs out: the 64 MiB payload once, or one 1 MiB buffer 1024 times for
/// 1 GiB without a 1 GiB buffer anywhere.
struct Cycle {
    source: Bytes,
    total: u64,
    sent: u64,
}

impl Cycle {
    fn new(source: Bytes, total: u64) -> Self {
        assert!(!source.is_empty());
        Self {
            source,
            total,
            sent: 0,
        }
    }
}

impl Body for Cycle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.total - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = self.source.len() as u64;
        let at = usize::try_from(self.sent % len).unwrap();
        let n = usize::try_from(left.min(len - at as u64).min(FRAME as u64)).unwrap();
        let frame = self.source.slice(at..at + n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

/// Everything the benchmarks share.
struct Env {
    rt: Runtime,
    ctx: Ctx,
    /// The s3s-fs root: `<root>/<bucket>/<key>` holds what is stored.
    root: PathBuf,
    _dev: DevBackend,
    _dir: tempfile::TempDir,
}

/// What a request needs; cheap to clone into each benchmark future.
#[derive(Clone)]
struct Ctx {
    client: Client<HttpConnector, Cycle>,
    /// `http://127.0.0.1:<port>` of the plain gateway.
    plain: String,
    /// `http://127.0.0.1:<port>` of the encrypting gateway.
    encrypted: String,
    /// The 64 MiB plaintext.
    payload: Bytes,
}

impl Ctx {
    /// `<gateway>/<bucket>/<key>`; each variant has its own bucket, named after it.
    fn url(&self, via: Via, key: &str) -> String {
        let base = match via {
            Via::Plain => &self.plain,
            Via::Encrypted => &self.encrypted,
        };
        format!("{base}/{}/{key}", via.name())
    }

    /// One unsigned request; panics unless the answer is `expect`.
    async fn send(
        &self,
        method: Method,
        url: String,
        body: Cycle,
        expect: StatusCode,
    ) -> http::Response<Incoming> {
        let len = body.total;
        let req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("user-agent", "s3-tower-bench")
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status();
        if status != expect {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            panic!(
                "{method} {url}: status {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        resp
    }

    /// PUT of `total` bytes cycling through `source`.
    async fn put(&self, via: Via, key: &str, source: Bytes, total: u64) {
        let resp = self
            .send(
                Method::PUT,
                self.url(via, key),
                Cycle::new(source, total),
                StatusCode::OK,
            )
            .await;
        drain(resp.into_body()).await;
    }

    /// GET, the body read to its end and discarded; returns its length.
    async fn get(&self, via: Via, key: &str) -> u64 {
        let resp = self
            .send(Method::GET, self.url(via, key), empty(), StatusCode::OK)
            .await;
        drain(resp.into_body()).await
    }

    async fn delete(&self, via: Via, key: &str) {
        let resp = self
            .send(
                Method::DELETE,
                self.url(via, key),
                empty(),
                StatusCode::NO_CONTENT,
            )
            .await;
        drain(resp.into_body()).await;
    }

    /// One benchmark iteration: the 64 MiB object written or read.
    async fn run(&self, op: Op, via: Via) {
        match op {
            Op::Put => {
                self.put(via, KEY, self.payload.clone(), SIZE as u64).await;
            }
            Op::Get => {
                let n = self.get(via, KEY).await;
                assert_eq!(n, SIZE as u64, "{via:?} GET: short body");
            }
        }
    }
}

fn empty() -> Cycle {
    Cycle {
        source: Bytes::from_static(b"-"),
        total: 0,
        sent: 0,
    }
}

/// Reads a body to the end without keeping it; returns its length.
async fn drain(mut body: Incoming) -> u64 {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len() as u64;
        }
    }
    n
}

fn payload(size: usize) -> Bytes {
    // Not periodic at any power of two, so a misplaced segment would not read back equal.
    (0..size)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("s3-tower-bench-")
            .tempdir_in(shm)
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    println!(
        "s3s-fs data directory: {} ({})",
        dir.path().display(),
        if shm.is_dir() {
            "tmpfs /dev/shm"
        } else {
            "no /dev/shm: a temporary directory on disk"
        }
    );
    let root = dir.path().join("buckets");
    let (dev, ctx) = rt.block_on(async {
        let dev = DevBackend::start(&root, ACCESS_KEY, SECRET_KEY)
            .await
            .unwrap();
        let router = || {
            BackendRouter::single(
                Backend::new(
                    "fs",
                    &dev.endpoint,
                    "us-east-1",
                    BackendAddressing::Path,
                    BackendCredentials::from_static(ACCESS_KEY, SECRET_KEY, None),
                )
                .unwrap(),
            )
        };
        let plain = serve(
            ServiceBuilder::new()
                .layer(S3RequestLayer::new())
                .layer(ResignLayer::new(router()))
                .service(Upstream::new().unwrap()),
        )
        .await;
        let kek = Arc::new(LocalKek::from_bytes(&[7; 32]).unwrap());
        let encrypted = serve(
            ServiceBuilder::new()
                .layer(S3RequestLayer::new())
                .layer(EncryptLayer::new(EncryptionPolicy::new(
                    BucketEncryption::encrypt(kek),
                )))
                .layer(ResignLayer::new(router()))
                .service(Upstream::new().unwrap()),
        )
        .await;

        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(http);
        let ctx = Ctx {
            client,
            plain,
            encrypted,
            payload: payload(SIZE),
        };
        for via in [Via::Plain, Via::Encrypted] {
            // CreateBucket through the variant's own gateway (forwarded as is by both).
            let base = match via {
                Via::Plain => &ctx.plain,
                Via::Encrypted => &ctx.encrypted,
            };
            let resp = ctx
                .send(
                    Method::PUT,
                    format!("{base}/{}", via.name()),
                    empty(),
                    StatusCode::OK,
                )
                .await;
            drain(resp.into_body()).await;
        }
        (dev, ctx)
    });
    let env = Env {
        rt,
        ctx,
        root,
        _dev: dev,
        _dir: dir,
    };
    verify(&env);
    env
}

/// Once: each variant's GET returns the bytes PUT; the plain object is stored as is, the
/// encrypted one as something else of the encrypted size.
fn verify(env: &Env) {
    let ctx = &env.ctx;
    env.rt.block_on(async {
        for via in [Via::Plain, Via::Encrypted] {
            ctx.run(Op::Put, via).await;
            let resp = ctx
                .send(Method::GET, ctx.url(via, KEY), empty(), StatusCode::OK)
                .await;
            assert_eq!(
                resp.headers()[header::CONTENT_LENGTH],
                SIZE.to_string().as_str(),
                "{via:?} GET Content-Length"
            );
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(
                body == ctx.payload,
                "{via:?} GET does not return the PUT bytes"
            );
        }
    });
    let stored = |via: Via| std::fs::read(env.root.join(via.name()).join(KEY)).unwrap();
    let plain = stored(Via::Plain);
    assert!(plain == ctx.payload, "the plain object is not stored as is");
    let encrypted = stored(Via::Encrypted);
    assert_eq!(
        encrypted.len() as u64,
        encrypted_size(SIZE as u64),
        "the encrypted object's stored size"
    );
    assert!(
        encrypted != ctx.payload.as_ref(),
        "the encrypted object is stored as plaintext"
    );
    // No 64-byte run of plaintext at its own offset either (a stronger "not plaintext").
    let leaked = (0..SIZE)
        .step_by(64 * 1024 + 7)
        .filter(|&at| at + 64 <= encrypted.len())
        .any(|at| encrypted[at..at + 64] == ctx.payload[at..at + 64]);
    assert!(!leaked, "plaintext found in the stored encrypted object");
    println!(
        "verified: GET returns the PUT bytes (plain and encrypted); plain stored as is; \
         encrypted stored as {} bytes of ciphertext (plaintext {SIZE})",
        encrypted.len()
    );
}

fn bench_e2e(c: &mut Criterion, env: &Env) {
    for op in [Op::Put, Op::Get] {
        let mut group =
            c.benchmark_group(format!("encrypt_e2e_{}_64MiB", op.name().to_lowercase()));
        group
            .throughput(Throughput::Bytes(SIZE as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10);
        for via in [Via::Plain, Via::Encrypted] {
            group.bench_function(via.name(), |b| {
                b.to_async(&env.rt).iter(|| {
                    let ctx = env.ctx.clone();
                    async move { ctx.run(op, via).await }
                });
            });
        }
        group.finish();
    }
}

/// Times the two variants alternately and prints their throughput ratio (medians).
fn ratio_summary(env: &Env) {
    println!(
        "\nInterleaved timing (plain and encrypted alternating, same run, {ROUNDS} rounds, medians):"
    );
    for op in [Op::Put, Op::Get] {
        let time = |via: Via| {
            let ctx = &env.ctx;
            move || {
                env.rt.block_on(async {
                    let start = Instant::now();
                    ctx.run(op, via).await;
                    start.elapsed()
                })
            }
        };
        // Warm-up.
        for _ in 0..2 {
            time(Via::Plain)();
            time(Via::Encrypted)();
        }
        let (plain, encrypted) = interleaved(ROUNDS, time(Via::Plain), time(Via::Encrypted));
        let gbps = |secs: f64| SIZE as f64 / secs / 1e9;
        println!(
            "ratio encrypted/plain throughput {} 64MiB: {:.2} (plain {:.2} GB/s, encrypted {:.2} GB/s)",
            op.name(),
            plain / encrypted,
            gbps(plain),
            gbps(encrypted),
        );
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resets the peak RSS to the current RSS; false when `/proc/self/clear_refs` refuses.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak RSS while `f` runs: with a reset, `VmHWM` after it; without, how much `VmHWM`
/// grew (0 when the earlier peak was higher).
fn peak_during(env: &Env, label: &str, f: impl std::future::Future<Output = ()>) -> f64 {
    let reset = reset_peak();
    let before = status_bytes("VmHWM:").unwrap();
    let rss_before = status_bytes("VmRSS:").unwrap();
    let start = Instant::now();
    env.rt.block_on(f);
    let elapsed = start.elapsed();
    let after = status_bytes("VmHWM:").unwrap();
    let mib = |b: u64| b as f64 / MIB as f64;
    let peak = if reset {
        mib(after)
    } else {
        mib(after.saturating_sub(before))
    };
    println!(
        "  {label}: {:.2} s; RSS before {:.1} MiB, {} {peak:.1} MiB",
        elapsed.as_secs_f64(),
        mib(rss_before),
        if reset { "peak RSS" } else { "VmHWM grew by" },
    );
    peak
}

/// Peak RSS during 1 MiB and 1 GiB uploads and downloads through the encrypting gateway.
fn memory_summary(env: &Env) {
    let ctx = &env.ctx;
    let reset = reset_peak();
    if reset {
        println!("\nPeak RSS (VmHWM reset through /proc/self/clear_refs before each transfer):");
    } else {
        println!(
            "\nPeak RSS: /proc/self/clear_refs is not writable; reporting how much VmHWM grew \
             during each transfer (absolute deltas) instead:"
        );
    }
    let chunk = ctx.payload.slice(..MIB);
    let small = "rss-1MiB";
    let large = "rss-1GiB";
    let put_small = peak_during(env, "PUT 1 MiB", async {
        ctx.put(Via::Encrypted, small, chunk.clone(), MIB as u64)
            .await;
    });
    let put_large = peak_during(env, "PUT 1 GiB (1 MiB buffer sent 1024 times)", async {
        ctx.put(Via::Encrypted, large, chunk.clone(), GIB).await;
    });
    let get_small = peak_during(env, "GET 1 MiB", async {
        assert_eq!(ctx.get(Via::Encrypted, small).await, MIB as u64);
    });
    let get_large = peak_during(env, "GET 1 GiB (discarded as it arrives)", async {
        assert_eq!(ctx.get(Via::Encrypted, large).await, GIB);
    });
    let stored = std::fs::metadata(env.root.join(Via::Encrypted.name()).join(large))
        .unwrap()
        .len();
    assert_eq!(
        stored,
        encrypted_size(GIB),
        "the 1 GiB object's stored size"
    );
    env.rt.block_on(async {
        ctx.delete(Via::Encrypted, small).await;
        ctx.delete(Via::Encrypted, large).await;
    });
    let what = if reset { "peak RSS" } else { "VmHWM growth" };
    for (op, x, y) in [
        ("upload", put_small, put_large),
        ("download", get_small, get_large),
    ] {
        println!(
            "{what} 1 MiB {op}: {x:.1} MiB; 1 GiB {op}: {y:.1} MiB; ratio Y/X {:.2}",
            if x > 0.0 { y / x } else { f64::NAN },
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
    let started = Instant::now();
    let env = setup();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    bench_e2e(&mut c, &env);
    c.final_summary();
    if bench_mode {
        ratio_summary(&env);
        memory_summary(&env);
    }
    println!("\ntotal: {:.1} s", started.elapsed().as_secs_f64());
}
