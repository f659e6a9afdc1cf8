//! The per-request cost of the authentication + authorization stack as the gateway builds
//! it, in front of an inner service answering 200 at once:
//!
//! - `sigv4_rego`: `S3RequestLayer` → `SigV4Layer` (static user, header-signed GetObject,
//!   `UNSIGNED-PAYLOAD`) → `AuthzLayer` with `RegoAuthorizer::seed()` → inner;
//! - `jwt_rego`: the same with `JwtLayer` before `SigV4Layer`, and an RS256 bearer token (keys
//!   cached, served once by an in-process JWKS endpoint) instead of a signature;
//! - `sigv4_cedar`: `sigv4_rego` with `CedarAuthorizer::seed()`;
//! - `baseline`: the same stack without authentication and authorization (`S3RequestLayer` →
//!   inner), measured in the same run.
//!
//! The requests are signed once, at start: a SigV4 signature stays valid for the allowed
//! clock skew (15 min) and there is no replay cache, so the same request verifies on every
//! iteration (checked before measuring, along with a tampered request being refused).
//!
//! ```text
//! cargo bench --bench stack
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use s3_tower::auth::jwt::{IssuerConfig, JwtLayer, JwtValidator};
use s3_tower::auth::{SecretKey, SigV4Layer, StaticCredentials, StaticUser};
use s3_tower::authz::{Authorizer, AuthzLayer, CedarAuthorizer, RegoAuthorizer};
use s3_tower::core::{Principal, S3RequestLayer};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

use support::{SigningKey, now, serve_jwks};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
const HOST: &str = "s3.local:8190";
const PATH: &str = "/data/reports/2025/q1.parquet";
const AUD: &str = "s3-gateway";

type Stack = BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

/// The inner service: 200 at once, naming the principal the layers found (`x-subject`).
async fn inner<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(principal) = req.extensions().get::<Principal>() {
        response
            .headers_mut()
            .insert("x-subject", principal.subject.parse().unwrap());
    }
    Ok(response)
}

fn users() -> StaticCredentials {
    StaticCredentials::new([StaticUser {
        access_key_id: ACCESS_KEY.into(),
        secret: SecretKey::new(SECRET_KEY),
        subject: "bob".into(),
        groups: vec!["reader".into()],
    }])
    .unwrap()
}

fn baseline() -> Stack {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(S3RequestLayer::new())
            .service_fn(inner),
    )
}

fn authenticated(jwt: Option<JwtLayer>, authorizer: impl Authorizer) -> Stack {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(S3RequestLayer::new())
            .option_layer(jwt)
            .layer(SigV4Layer::new(users()))
            .layer(AuthzLayer::new(authorizer))
            .service_fn(inner),
    )
}

/// The GetObject every variant answers, before authentication.
fn get_object() -> Parts {
    Request::get(PATH)
        .header("host", HOST)
        .header("user-agent", "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// `unsigned` signed now in headers, as an S3 SDK does (`x-amz-content-sha256:
/// UNSIGNED-PAYLOAD`).
fn signed(unsigned: &Parts) -> Parts {
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers = unsigned
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap()));
    let signable = SignableRequest::new(
        unsigned.method.as_str(),
        unsigned.uri.to_string(),
        headers,
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = Request::from_parts(unsigned.clone(), ());
    instructions.apply_to_request_http1x(&mut req);
    req.into_parts().0
}

/// An RS256 bearer token for `bob` in `reader`, and the validator trusting its issuer with
/// the key cached (served once by a JWKS endpoint on 127.0.0.1).
async fn jwt() -> (String, JwtValidator) {
    let key = SigningKey::rsa();
    let issuer = serve_jwks(json!({ "keys": [key.jwk] })).await;
    let validator = JwtValidator::new([IssuerConfig::new(&issuer)
        .jwks_url(format!("{issuer}/jwks"))
        .audience(AUD)
        .groups_claim("groups")])
    .unwrap();
    validator.prefetch().await.unwrap();
    let token = key.sign(&json!({
        "iss": issuer,
        "sub": "bob",
        "aud": AUD,
        "iat": now(),
        "exp": now() + 3600,
        "groups": ["reader"],
    }));
    (token, validator)
}

/// One stack and the request it is measured with.
struct Variant {
    name: &'static str,
    stack: Stack,
    request: Parts,
}

impl Variant {
    async fn call(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let req = Request::from_parts(parts.clone(), Full::new(Bytes::new()));
        self.stack.clone().oneshot(req).await.unwrap()
    }

    /// The mean time of `iters` requests, one after the other.
    async fn batch(&self, iters: u32) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(self.call(black_box(&self.request)).await);
        }
        start.elapsed() / iters
    }
}

fn setup(rt: &Runtime) -> Vec<Variant> {
    let unsigned = get_object();
    let sigv4 = signed(&unsigned);
    let (token, validator) = rt.block_on(jwt());
    let validator = Arc::new(validator);
    let mut bearer = unsigned.clone();
    bearer
        .headers
        .insert("authorization", format!("Bearer {token}").parse().unwrap());

    let variants = vec![
        Variant {
            name: "baseline",
            stack: baseline(),
            request: unsigned.clone(),
        },
        Variant {
            name: "sigv4_rego",
            stack: authenticated(None, RegoAuthorizer::seed().unwrap()),
            request: sigv4.clone(),
        },
        Variant {
            name: "jwt_rego",
            stack: authenticated(
                Some(JwtLayer::new(Arc::clone(&validator))),
                RegoAuthorizer::seed().unwrap(),
            ),
            request: bearer,
        },
        Variant {
            name: "sigv4_cedar",
            stack: authenticated(None, CedarAuthorizer::seed().unwrap()),
            request: sigv4,
        },
    ];

    // A benchmark of refusals is worthless: each variant answers 200, the authenticated ones
    // to bob, twice (the same request verifies again); a tampered request, or a principal
    // the policy does not allow, is refused.
    rt.block_on(async {
        for variant in &variants {
            for _ in 0..2 {
                let response = variant.call(&variant.request).await;
                assert_eq!(response.status(), StatusCode::OK, "{}", variant.name);
                let subject = response.headers().get("x-subject");
                if variant.name == "baseline" {
                    assert!(subject.is_none());
                } else {
                    assert_eq!(subject.unwrap(), "bob", "{}", variant.name);
                }
            }
            if variant.name == "baseline" {
                continue;
            }
            let mut tampered = variant.request.clone();
            let mut auth = tampered.headers["authorization"]
                .to_str()
                .unwrap()
                .to_owned();
            let last = if auth.pop() == Some('0') { '1' } else { '0' };
            auth.push(last);
            tampered
                .headers
                .insert("authorization", auth.parse().unwrap());
            let response = variant.call(&tampered).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{}", variant.name);
        }
        // The policy is consulted: a user in no group is denied.
        let nobody = StaticCredentials::new([StaticUser {
            access_key_id: ACCESS_KEY.into(),
            secret: SecretKey::new(SECRET_KEY),
            subject: "nobody".into(),
            groups: Vec::new(),
        }])
        .unwrap();
        for authorizer in [
            Arc::new(RegoAuthorizer::seed().unwrap()) as Arc<dyn Authorizer>,
            Arc::new(CedarAuthorizer::seed().unwrap()),
        ] {
            let stack = ServiceBuilder::new()
                .layer(S3RequestLayer::new())
                .layer(SigV4Layer::new(nobody.clone()))
                .layer(AuthzLayer::from_arc(authorizer))
                .service_fn(inner);
            let req = Request::from_parts(variants[1].request.clone(), Full::new(Bytes::new()));
            let response = stack.oneshot(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
    });
    variants
}

fn bench_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let variants = setup(&rt);
    let mut group = c.benchmark_group("stack_get_object");
    for variant in &variants {
        group.bench_function(variant.name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(variant.call(black_box(&variant.request)).await) });
        });
    }
    group.finish();
    summary(&rt, &variants);
}

/// Batches of each variant, in turn, the order rotating each round (machine noise hits all
/// alike); prints the median per-request time of each, and its overhead over the baseline.
fn summary(rt: &Runtime, variants: &[Variant]) {
    const ROUNDS: usize = 31;
    const ITERS: u32 = 200;
    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    rt.block_on(async {
        for round in 0..ROUNDS {
            for i in 0..variants.len() {
                let v = (round + i) % variants.len();
                times[v].push(variants[v].batch(ITERS).await);
            }
        }
    });
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_unstable();
            t[ROUNDS / 2].as_secs_f64() * 1e6
        })
        .collect();
    let base = medians[0];
    for (variant, median) in variants.iter().zip(&medians) {
        if variant.name == "baseline" {
            println!("stack {}: {median:.2} µs per request", variant.name);
        } else {
            println!(
                "stack {}: {median:.2} µs per request, {:.2} µs over the baseline ({:.1}×)",
                variant.name,
                median - base,
                median / base
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_stack
}
criterion_main!(benches);
