//! A Rego decision with the seed policy through `RegoAuthorizer` (input document built from
//! an `AuthzInput`), against the raw `CompiledPolicy::eval_with_input` on the same input
//! document, prebuilt — measured in the same run. Goal: ≤ 1.3×. And a Cedar decision with the
//! seed policy in Cedar on the same input (goal ≤ 5 µs).
//!
//! ```text
//! cargo bench --bench authz
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, Uri};
use regorus::{Engine, Value};
use s3_tower::authz::{
    Authorizer, AuthzInput, CedarAuthorizer, DEFAULT_QUERY, Decision, RegoAuthorizer, SEED_POLICY,
};
use s3_tower::core::{AuthMethod, Principal, S3RequestParser};

fn reader() -> Principal {
    Principal {
        subject: "bob".to_owned(),
        groups: vec!["reader".to_owned()],
        claims: serde_json::Value::Null,
        auth: AuthMethod::SigV4,
        session: None,
    }
}

/// The input of a reader's GetObject, as the layer builds it.
fn get_object_input(principal: &Principal) -> AuthzInput {
    let mut headers = HeaderMap::new();
    headers.insert("host", "s3.local".parse().unwrap());
    let uri: Uri = "/data/reports/2025/q1.parquet".parse().unwrap();
    let s3 = S3RequestParser::new()
        .parse(&Method::GET, &uri, &headers)
        .unwrap();
    let access = &s3.resources()[0];
    AuthzInput::for_resource(principal, &s3, &Method::GET, access, 0)
}

/// Runs `a` and `b` alternately `rounds` times, `iters` each, and returns the median
/// per-iteration times (a noisy machine affects both alike).
fn interleaved(rounds: usize, iters: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iters {
            a();
        }
        ta.push(start.elapsed().as_secs_f64() / f64::from(iters));
        let start = Instant::now();
        for _ in 0..iters {
            b();
        }
        tb.push(start.elapsed().as_secs_f64() / f64::from(iters));
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta[rounds / 2], tb[rounds / 2])
}

fn bench_rego(c: &mut Criterion) {
    let principal = reader();
    let input = get_object_input(&principal);
    let authorizer = RegoAuthorizer::seed().unwrap();
    assert_eq!(authorizer.authorize(&input).unwrap(), Decision::Allow);

    // The raw engine: the same policy compiled by regorus directly, the input document
    // prebuilt from the same AuthzInput.
    let mut engine = Engine::new();
    engine
        .add_policy("seed.rego".to_owned(), SEED_POLICY.to_owned())
        .unwrap();
    let compiled = engine
        .compile_with_entrypoint(&DEFAULT_QUERY.into())
        .unwrap();
    let document = Value::from(serde_json::to_value(&input).unwrap());
    assert_eq!(
        compiled.eval_with_input(document.clone()).unwrap(),
        Value::Bool(true)
    );

    let mut group = c.benchmark_group("rego_seed_get_object");
    group.bench_function("baseline_compiled_policy_eval_with_input", |b| {
        b.iter(|| {
            black_box(
                compiled
                    .eval_with_input(black_box(&document).clone())
                    .unwrap(),
            )
        });
    });
    group.bench_function("rego_authorizer_authorize", |b| {
        b.iter(|| black_box(authorizer.authorize(black_box(&input)).unwrap()));
    });
    group.bench_function("rego_authorizer_with_input_building", |b| {
        b.iter(|| {
            let input = get_object_input(black_box(&principal));
            black_box(authorizer.authorize(&input).unwrap())
        });
    });
    group.finish();

    // Cedar with the seed policy in Cedar, on the same input (goal ≤ 5 µs).
    let cedar = CedarAuthorizer::seed().unwrap();
    assert_eq!(cedar.authorize(&input).unwrap(), Decision::Allow);
    c.bench_function("cedar_seed_get_object/cedar_authorizer_authorize", |b| {
        b.iter(|| black_box(cedar.authorize(black_box(&input)).unwrap()));
    });

    let (raw, ours) = interleaved(
        41,
        2_000,
        || {
            black_box(
                compiled
                    .eval_with_input(black_box(&document).clone())
                    .unwrap(),
            );
        },
        || {
            black_box(authorizer.authorize(black_box(&input)).unwrap());
        },
    );
    let ratio = ours / raw;
    println!(
        "rego decision: RegoAuthorizer {:.2} µs, raw eval_with_input {:.2} µs, ratio {ratio:.3} (goal ≤ 1.3: {})",
        ours * 1e6,
        raw * 1e6,
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench_rego
}
criterion_main!(benches);
