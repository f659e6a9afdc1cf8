//! Bearer-token verification through `JwtValidator::validate` with the issuer's keys already
//! cached (RS256 with a 2048-bit key, ES256 on P-256), next to a baseline measured in the
//! same run: raw `jsonwebtoken::decode` with the same key and the same `Validation`. Goal:
//! RS256 ≤ 40 µs.
//!
//! The validator fetches the JWKS over HTTP: a tiny in-process server on 127.0.0.1 serves it,
//! and `prefetch()` fills the cache before anything is measured.
//!
//! ```text
//! cargo bench --bench jwt
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use s3_tower::auth::jwt::{IssuerConfig, JwtValidator};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use support::{SigningKey, interleaved, now, serve_jwks};

const AUD: &str = "s3-gateway";
/// The issuer's leeway, also set on the baseline's `Validation`.
const LEEWAY: Duration = Duration::from_mins(1);
/// The goal for an RS256 token.
const RS256_GOAL_MICROS: f64 = 40.0;

/// The `Validation` `JwtValidator` builds for an issuer with one audience.
fn validation(alg: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY.as_secs();
    validation.validate_nbf = true;
    validation.validate_exp = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUD]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation
}

/// What one algorithm is measured on.
struct Case {
    name: &'static str,
    token: String,
    key: DecodingKey,
    validation: Validation,
}

struct Env {
    rt: Runtime,
    validator: JwtValidator,
    cases: Vec<Case>,
}

fn setup() -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [SigningKey::rsa(), SigningKey::ec()];
    let jwks = json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() });
    let issuer = rt.block_on(serve_jwks(jwks));
    let validator = JwtValidator::new([IssuerConfig::new(&issuer)
        .jwks_url(format!("{issuer}/jwks"))
        .audience(AUD)
        .groups_claim("groups")
        .leeway(LEEWAY)])
    .unwrap();
    rt.block_on(validator.prefetch()).unwrap();

    // Valid for the whole run (tokens are signed once).
    let claims = json!({
        "iss": issuer,
        "sub": "alice",
        "aud": AUD,
        "iat": now(),
        "nbf": now() - 10,
        "exp": now() + 3600,
        "groups": ["reader"],
    });
    let cases = keys
        .iter()
        .map(|k| Case {
            name: if k.alg == Algorithm::RS256 {
                "rs256"
            } else {
                "es256"
            },
            token: k.sign(&claims),
            key: DecodingKey::from_jwk(&k.jwk).unwrap(),
            validation: validation(k.alg, &issuer),
        })
        .collect::<Vec<_>>();

    // A benchmark of refusals is worthless: both paths accept each token, and refuse it
    // tampered.
    for case in &cases {
        let principal = rt.block_on(validator.validate(&case.token)).unwrap();
        assert_eq!(principal.subject, "alice");
        assert_eq!(principal.groups, ["reader"]);
        jsonwebtoken::decode::<Value>(&case.token, &case.key, &case.validation).unwrap();
        // The signature's first character changed.
        let at = case.token.rfind('.').unwrap() + 1;
        let flipped = if &case.token[at..=at] == "A" {
            "B"
        } else {
            "A"
        };
        let mut tampered = case.token.clone();
        tampered.replace_range(at..=at, flipped);
        assert!(rt.block_on(validator.validate(&tampered)).is_err());
        assert!(jsonwebtoken::decode::<Value>(&tampered, &case.key, &case.validation).is_err());
    }
    Env {
        rt,
        validator,
        cases,
    }
}

fn bench_jwt(c: &mut Criterion) {
    let env = setup();
    for case in &env.cases {
        let mut group = c.benchmark_group(format!("jwt_{}", case.name));
        group.bench_function("baseline_jsonwebtoken_decode", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Value>(
                        black_box(&case.token),
                        &case.key,
                        &case.validation,
                    )
                    .unwrap(),
                )
            });
        });
        group.bench_function("jwt_validator_validate", |b| {
            b.to_async(&env.rt).iter(|| async {
                black_box(
                    env.validator
                        .validate(black_box(&case.token))
                        .await
                        .unwrap(),
                )
            });
        });
        group.finish();
    }
    summary(&env);
}

/// The medians of both paths per algorithm, measured interleaved, and their ratio.
fn summary(env: &Env) {
    const ITERS: u32 = 200;
    for case in &env.cases {
        let (raw, ours) = interleaved(
            31,
            || {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(
                        jsonwebtoken::decode::<Value>(
                            black_box(&case.token),
                            &case.key,
                            &case.validation,
                        )
                        .unwrap(),
                    );
                }
                start.elapsed() / ITERS
            },
            || {
                env.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..ITERS {
                        black_box(
                            env.validator
                                .validate(black_box(&case.token))
                                .await
                                .unwrap(),
                        );
                    }
                    start.elapsed() / ITERS
                })
            },
        );
        let goal = if case.name == "rs256" {
            let met = ours * 1e6 <= RS256_GOAL_MICROS;
            format!(
                " (goal ≤ {RS256_GOAL_MICROS} µs: {})",
                if met { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        println!(
            "{} verification: JwtValidator::validate {:.2} µs, raw jsonwebtoken::decode {:.2} µs, ratio {:.3}{goal}",
            case.name,
            ours * 1e6,
            raw * 1e6,
            ours / raw,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_jwt
}
criterion_main!(benches);
