//! One `AssumeRoleWithWebIdentity` call through `StsLayer` (form parsing, RS256 token
//! verification with the issuer's keys cached, role check, sealing, XML), next to the token
//! verification alone (`JwtValidator::validate`) measured in the same run. Goal: the call is
//! dominated by the token verification.
//!
//! ```text
//! cargo bench --bench sts_assume_role
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use s3_tower::auth::jwt::{IssuerConfig, JwtValidator};
use s3_tower::sts::{Role, Roles, SessionKey, SessionKeyring, StsLayer};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use support::{SigningKey, interleaved, now, serve_jwks};

const AUD: &str = "s3-gateway";
const ROLE: &str = "arn:aws:iam::000000000000:role/analytics";

type Sts = BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

struct Env {
    rt: Runtime,
    validator: Arc<JwtValidator>,
    sts: Sts,
    token: String,
    form: Bytes,
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::rsa();
    let issuer = rt.block_on(serve_jwks(json!({ "keys": [key.jwk] })));
    let validator = Arc::new(
        JwtValidator::new([IssuerConfig::new(&issuer)
            .jwks_url(format!("{issuer}/jwks"))
            .audience(AUD)
            .groups_claim("groups")])
        .unwrap(),
    );
    rt.block_on(validator.prefetch()).unwrap();
    let token = key.sign(&json!({
        "iss": issuer, "sub": "etl", "aud": AUD, "iat": now(), "exp": now() + 3600,
        "groups": ["data-eng"],
    }));
    let roles = Roles::new([Role::new(ROLE).unwrap().issuer(&issuer)]).unwrap();
    let keyring = Arc::new(SessionKeyring::new(SessionKey::generate("k1").unwrap(), []).unwrap());
    let sts = ServiceBuilder::new()
        .layer(StsLayer::new(Arc::clone(&validator), roles, keyring))
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"s3"))))
        }));
    let form = Bytes::from(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", ROLE)
            .append_pair("RoleSessionName", "bench")
            .append_pair("WebIdentityToken", &token)
            .finish(),
    );
    let env = Env {
        rt,
        validator,
        sts: BoxCloneService::new(sts),
        token,
        form,
    };
    // A benchmark of refusals is worthless: the call issues credentials.
    let (status, body) = env.rt.block_on(call(&env));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<AccessKeyId>ASIA"), "{body}");
    env
}

fn request(form: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Full::new(form.clone()))
        .unwrap()
}

async fn call(env: &Env) -> (StatusCode, String) {
    let response = env.sts.clone().oneshot(request(&env.form)).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn bench_sts(c: &mut Criterion) {
    let env = setup();
    let mut group = c.benchmark_group("sts_assume_role_with_web_identity");
    group.bench_function("baseline_jwt_validator_validate", |b| {
        b.to_async(&env.rt)
            .iter(|| async { black_box(env.validator.validate(&env.token).await.unwrap()) });
    });
    group.bench_function("sts_layer_call", |b| {
        b.to_async(&env.rt).iter(|| async {
            let response = env.sts.clone().oneshot(request(&env.form)).await.unwrap();
            black_box(response.into_body().collect().await.unwrap().to_bytes())
        });
    });
    group.finish();
    summary(&env);
}

fn summary(env: &Env) {
    const ITERS: u32 = 100;
    let (jwt, sts) = interleaved(
        21,
        || {
            env.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(env.validator.validate(&env.token).await.unwrap());
                }
                start.elapsed() / ITERS
            })
        },
        || {
            env.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..ITERS {
                    let response = env.sts.clone().oneshot(request(&env.form)).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap().to_bytes());
                }
                start.elapsed() / ITERS
            })
        },
    );
    println!(
        "AssumeRoleWithWebIdentity: {:.2} µs per call, of which the RS256 token verification \
         alone takes {:.2} µs ({:.0}% of the call)",
        sts * 1e6,
        jwt * 1e6,
        jwt / sts * 100.0
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_sts
}
criterion_main!(benches);
