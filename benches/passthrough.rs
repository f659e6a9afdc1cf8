//! End-to-end pass-through: GET and PUT of 1 KiB and 1 MiB objects sent straight to an
//! in-process s3s-fs server (signed by the client) and through the gateway stack
//! (`S3RequestLayer` → `ResignLayer` → `Upstream`, unsigned client requests re-signed by the
//! gateway), measured in the same criterion group per (operation, size).
//!
//! After criterion, both variants of each (operation, size) are timed again, interleaved
//! (direct, gateway, gateway, direct, ...) so machine noise hits both alike, and the
//! `ratio (gateway/direct throughput)` lines are printed.
//!
//! ```text
//! cargo bench --bench passthrough
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../examples/gateway/dev_backend.rs"]
mod dev_backend;
mod support;

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s3_tower::core::{S3RequestLayer, S3RequestParser};
use s3_tower::resign::{
    Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream,
    prepare_upstream_request,
};
use tokio::runtime::Runtime;
use tower::ServiceBuilder;

use crate::dev_backend::DevBackend;

const BUCKET: &str = "bench";
const ACCESS_KEY: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key-0123456789abcdefghijklmn";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    Gateway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Put,
}

/// Everything the benchmarks share: the runtime, both servers, one pooled client.
struct Env {
    rt: Runtime,
    ctx: Ctx,
    _dev: DevBackend,
    _dir: tempfile::TempDir,
}

/// What a request needs; cheap to clone into each benchmark future.
#[derive(Clone)]
struct Ctx {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://127.0.0.1:<s3s-fs port>`
    direct: String,
    /// `http://127.0.0.1:<gateway port>`
    gateway: String,
    /// s3s-fs as a backend, to sign direct requests as a client SDK would.
    signer: std::sync::Arc<Backend>,
    creds: Credentials,
    parser: std::sync::Arc<S3RequestParser>,
    payload_1k: Bytes,
    payload_1m: Bytes,
}

impl Ctx {
    fn payload(&self, size: usize) -> Bytes {
        match size {
            KIB => self.payload_1k.clone(),
            MIB => self.payload_1m.clone(),
            _ => unreachable!("sizes are 1 KiB and 1 MiB"),
        }
    }

    /// One request, answered 200 with its body read to the end (panics otherwise); returns
    /// the response body length.
    async fn send(&self, via: Via, method: Method, key: &str, body: Bytes) -> usize {
        let base = match via {
            Via::Direct => &self.direct,
            Via::Gateway => &self.gateway,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{base}/{BUCKET}/{key}"))
            .header("user-agent", "s3-tower-bench")
            .body(Full::new(body))
            .unwrap();
        if via == Via::Direct {
            // s3s checks SigV4: sign as the client would (the gateway path signs in the
            // gateway).
            let s3 = self
                .parser
                .parse(req.method(), req.uri(), req.headers())
                .unwrap();
            prepare_upstream_request(&mut req, &s3, &self.signer, &self.creds, SystemTime::now())
                .unwrap();
        }
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status();
        if status != StatusCode::OK {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            panic!(
                "{via:?} {key}: status {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        drain(resp.into_body()).await
    }

    async fn run(&self, op: Op, via: Via, size: usize) {
        let key = object_key(op, size);
        match op {
            Op::Get => {
                let n = self.send(via, Method::GET, &key, Bytes::new()).await;
                assert_eq!(n, size, "{via:?} GET {key}: short body");
            }
            Op::Put => {
                self.send(via, Method::PUT, &key, self.payload(size)).await;
            }
        }
    }
}

/// Reads a body to the end without concatenating it; returns its length.
async fn drain(mut body: Incoming) -> usize {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len();
        }
    }
    n
}

fn size_name(size: usize) -> &'static str {
    if size == KIB { "1KiB" } else { "1MiB" }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Get => "get",
        Op::Put => "put",
    }
}

fn object_key(op: Op, size: usize) -> String {
    format!("{}-{}", op_name(op), size_name(size))
}

fn payload(size: usize) -> Bytes {
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
    let dir = tempfile::tempdir().unwrap();
    let (dev, ctx) = rt.block_on(async {
        let dev = DevBackend::start(&dir.path().join("buckets"), ACCESS_KEY, SECRET_KEY)
            .await
            .unwrap();

        let backend = Backend::new(
            "fs",
            &dev.endpoint,
            "us-east-1",
            BackendAddressing::Path,
            BackendCredentials::from_static(ACCESS_KEY, SECRET_KEY, None),
        )
        .unwrap();
        let service = ServiceBuilder::new()
            .layer(S3RequestLayer::new())
            .layer(ResignLayer::new(BackendRouter::single(backend)))
            .service(Upstream::new().unwrap());
        let gateway = support::serve(service).await;

        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(http);
        let signer = Backend::new(
            "s3s-fs",
            &dev.endpoint,
            "us-east-1",
            BackendAddressing::Path,
            BackendCredentials::from_static(ACCESS_KEY, SECRET_KEY, None),
        )
        .unwrap();
        let ctx = Ctx {
            client,
            direct: dev.endpoint.clone(),
            gateway,
            signer: std::sync::Arc::new(signer),
            creds: Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench"),
            parser: std::sync::Arc::new(S3RequestParser::new()),
            payload_1k: payload(KIB),
            payload_1m: payload(MIB),
        };

        // CreateBucket (PUT /bucket), then the objects the GETs read, through both paths
        // once so both connections are open before measuring.
        let mut req = Request::put(format!("{}/{BUCKET}", ctx.direct))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let s3 = ctx
            .parser
            .parse(req.method(), req.uri(), req.headers())
            .unwrap();
        prepare_upstream_request(&mut req, &s3, &ctx.signer, &ctx.creds, SystemTime::now())
            .unwrap();
        let resp = ctx.client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "CreateBucket");
        drain(resp.into_body()).await;
        for size in [KIB, MIB] {
            let key = object_key(Op::Get, size);
            ctx.send(Via::Direct, Method::PUT, &key, ctx.payload(size))
                .await;
            for via in [Via::Direct, Via::Gateway] {
                ctx.run(Op::Put, via, size).await;
                ctx.run(Op::Get, via, size).await;
            }
        }
        (dev, ctx)
    });
    Env {
        rt,
        ctx,
        _dev: dev,
        _dir: dir,
    }
}

const CASES: [(Op, usize); 4] = [
    (Op::Get, KIB),
    (Op::Put, KIB),
    (Op::Get, MIB),
    (Op::Put, MIB),
];

fn bench_passthrough(c: &mut Criterion, env: &Env) {
    for (op, size) in CASES {
        let mut group =
            c.benchmark_group(format!("passthrough_{}_{}", op_name(op), size_name(size)));
        group.throughput(Throughput::Bytes(size as u64));
        for via in [Via::Direct, Via::Gateway] {
            let name = match via {
                Via::Direct => "direct",
                Via::Gateway => "gateway",
            };
            group.bench_function(name, |b| {
                b.to_async(&env.rt).iter(|| {
                    let ctx = env.ctx.clone();
                    async move { ctx.run(op, via, size).await }
                });
            });
        }
        group.finish();
    }
}

/// Times `iters` requests of each variant, alternating which goes first, and prints the
/// throughput ratio gateway/direct (total time and median).
fn ratio_summary(env: &Env) {
    println!("\nInterleaved timing (direct and gateway alternating, same run):");
    for (op, size) in CASES {
        let iters = if size == KIB { 200 } else { 50 };
        let (direct, gateway) = env.rt.block_on(async {
            let ctx = &env.ctx;
            // Warm-up.
            for _ in 0..5 {
                ctx.run(op, Via::Direct, size).await;
                ctx.run(op, Via::Gateway, size).await;
            }
            let mut direct = Vec::with_capacity(iters);
            let mut gateway = Vec::with_capacity(iters);
            for i in 0..iters {
                let order = if i % 2 == 0 {
                    [Via::Direct, Via::Gateway]
                } else {
                    [Via::Gateway, Via::Direct]
                };
                for via in order {
                    let start = Instant::now();
                    ctx.run(op, via, size).await;
                    let elapsed = start.elapsed();
                    match via {
                        Via::Direct => direct.push(elapsed),
                        Via::Gateway => gateway.push(elapsed),
                    }
                }
            }
            (direct, gateway)
        });
        let total = |v: &[Duration]| v.iter().sum::<Duration>();
        let median = |v: &mut Vec<Duration>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let (dt, gt) = (total(&direct), total(&gateway));
        let (mut direct, mut gateway) = (direct, gateway);
        let (dm, gm) = (median(&mut direct), median(&mut gateway));
        #[allow(clippy::cast_precision_loss)]
        let mib_per_s = |t: Duration| (size * iters) as f64 / t.as_secs_f64() / MIB as f64;
        println!(
            "{} {}: {iters} iterations each: direct {:.1} µs/op ({:.2} MiB/s, median {:.1} µs), \
             gateway {:.1} µs/op ({:.2} MiB/s, median {:.1} µs)",
            op_name(op).to_uppercase(),
            size_name(size),
            dt.as_secs_f64() * 1e6 / f64::from(u32::try_from(iters).unwrap()),
            mib_per_s(dt),
            dm.as_secs_f64() * 1e6,
            gt.as_secs_f64() * 1e6 / f64::from(u32::try_from(iters).unwrap()),
            mib_per_s(gt),
            gm.as_secs_f64() * 1e6,
        );
        println!(
            "ratio (gateway/direct throughput) {} {}: {:.3} (mean), {:.3} (median)",
            op_name(op).to_uppercase(),
            size_name(size),
            dt.as_secs_f64() / gt.as_secs_f64(),
            dm.as_secs_f64() / gm.as_secs_f64(),
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
        .measurement_time(Duration::from_secs(4))
        .sample_size(20)
        .configure_from_args();
    bench_passthrough(&mut c, &env);
    c.final_summary();
    if bench_mode {
        ratio_summary(&env);
    }
}
