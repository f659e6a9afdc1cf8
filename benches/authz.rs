//! A Rego decision with the seed policy through `RegoAuthorizer` (input document built from
//! an `AuthzInput`), against the raw `CompiledPolicy::eval_with_input` on the same input
//! document, prebuilt — measured in the same run. Goal: ≤ 1.3×. And a Cedar decision with the
//! seed policy in Cedar on the same input (goal ≤ 5 µs), next to the raw Cedar
//! `Authorizer::is_authorized` on a prebuilt request and entities (its floor).
//!
//! ```text
//! cargo bench --bench authz
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, Uri};
use regorus::{Engine, Value};
use s3_tower::authz::{
    Authorizer, AuthzInput, CedarAuthorizer, DEFAULT_QUERY, Decision, RegoAuthorizer,
    SEED_CEDAR_POLICY, SEED_POLICY,
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

    bench_cedar(c, &input);

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

/// Cedar with the seed policy in Cedar, on the same input (goal ≤ 5 µs), next to its floor
/// measured in the same run: the raw `cedar_policy::Authorizer::is_authorized` on a request
/// and entities prebuilt (schema-validated, as a caller of `cedar-policy` would make them).
fn bench_cedar(c: &mut Criterion, input: &AuthzInput) {
    let cedar = CedarAuthorizer::seed().unwrap();
    assert_eq!(cedar.authorize(input).unwrap(), Decision::Allow);
    let (request, entities, policies) = prebuilt_cedar(input, cedar.schema());
    let raw = cedar_policy::Authorizer::new();
    assert_eq!(
        raw.is_authorized(&request, &policies, &entities).decision(),
        cedar_policy::Decision::Allow
    );

    let mut group = c.benchmark_group("cedar_seed_get_object");
    group.bench_function("baseline_is_authorized_prebuilt", |b| {
        b.iter(|| black_box(raw.is_authorized(black_box(&request), &policies, &entities)));
    });
    group.bench_function("cedar_authorizer_authorize", |b| {
        b.iter(|| black_box(cedar.authorize(black_box(input)).unwrap()));
    });
    group.finish();

    let (floor, ours) = interleaved(
        41,
        2_000,
        || {
            black_box(raw.is_authorized(black_box(&request), &policies, &entities));
        },
        || {
            black_box(cedar.authorize(black_box(input)).unwrap());
        },
    );
    println!(
        "cedar decision: CedarAuthorizer {:.2} µs (goal ≤ 5 µs: {}), raw is_authorized on a prebuilt request {:.2} µs, ratio {:.3}",
        ours * 1e6,
        if ours <= 5e-6 { "met" } else { "NOT met" },
        floor * 1e6,
        ours / floor
    );
}

/// The Cedar request, entities and policies of an object's `input`, made with
/// `cedar-policy` directly and validated against `schema` (which adds the action entities).
fn prebuilt_cedar(input: &AuthzInput, schema: &Schema) -> (Request, Entities, PolicySet) {
    let uid = |ty: &str, id: &str| {
        EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap(), EntityId::new(id))
    };
    let (bucket, key) = (input.bucket.clone().unwrap(), input.key.clone().unwrap());
    let principal = uid("S3::User", &input.user);
    let groups = input.groups.iter().map(|g| uid("S3::Group", g)).collect();
    let object = uid("S3::Object", &format!("{bucket}/{key}"));
    let attrs = HashMap::from([
        (
            "bucket".to_owned(),
            RestrictedExpression::new_string(bucket.clone()),
        ),
        ("key".to_owned(), RestrictedExpression::new_string(key)),
    ]);
    let entities = Entities::from_entities(
        [
            Entity::new_no_attrs(principal.clone(), groups),
            Entity::new(
                object.clone(),
                attrs,
                HashSet::from([uid("S3::Bucket", &bucket)]),
            )
            .unwrap(),
        ],
        Some(schema),
    )
    .unwrap();
    let context = Context::from_pairs(
        [
            ("operation", &input.operation),
            ("iam_action", &input.iam_action),
            ("method", &input.method),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), RestrictedExpression::new_string(v.clone())))
        .chain([(
            "auth".to_owned(),
            RestrictedExpression::new_string(input.auth.to_owned()),
        )]),
    )
    .unwrap();
    let request = Request::new(
        principal,
        uid("S3::Action", &input.action),
        object,
        context,
        Some(schema),
    )
    .unwrap();
    (request, entities, SEED_CEDAR_POLICY.parse().unwrap())
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
