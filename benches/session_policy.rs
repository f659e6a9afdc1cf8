//! A session policy decision: `SessionPolicy::allows` of a typical 4-statement policy (a
//! listing condition on `s3:prefix`, read/write in a home prefix, a shared read-only prefix,
//! an explicit Deny) on one resource, as `AuthzLayer` asks it for each resource of a session
//! request. Goal: well under 1 µs.
//!
//! Baseline, in the same run and interleaved: the Rego decision of the seed policy on the same
//! GetObject through `RegoAuthorizer::authorize`, which the layer pays for the same resource
//! before it asks the session policy. The ratio is the share a session policy adds to the
//! authorization of a resource; an absolute floor alone (a string compare) would say nothing
//! about whether the cost matters next to the rest of the path.
//!
//! ```text
//! cargo bench --bench session_policy
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, Uri};
use s3_tower::authz::{Authorizer, AuthzInput, Decision, RegoAuthorizer};
use s3_tower::core::{AuthMethod, Principal, S3Request, S3RequestParser, SessionPolicy};

use support::interleaved;

/// The goal for one decision, in seconds.
const GOAL: f64 = 1e-6;
/// Decisions per timed batch of the interleaved summary.
const ITERS: u32 = 2_000;

/// Four statements, as a home-directory session policy is usually written.
const POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ListHome", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::data",
         "Condition": {"StringLike": {"s3:prefix": ["home/alice/*", "home/alice"]}}},
        {"Sid": "UseHome", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": "arn:aws:s3:::data/home/alice/*"},
        {"Sid": "ReadShared", "Effect": "Allow", "Action": "s3:Get*",
         "Resource": ["arn:aws:s3:::data/shared/*", "arn:aws:s3:::public/*"]},
        {"Sid": "KeepArchive", "Effect": "Deny", "Action": ["s3:Delete*", "s3:Put*"],
         "Resource": "arn:aws:s3:::data/home/alice/archive/*"}
    ]
}"#;

fn parse(method: &Method, uri: &str) -> S3Request {
    let mut headers = HeaderMap::new();
    headers.insert("host", "s3.local".parse().unwrap());
    S3RequestParser::new()
        .parse(method, &uri.parse::<Uri>().unwrap(), &headers)
        .unwrap()
}

fn reader() -> Principal {
    Principal {
        subject: "alice".to_owned(),
        groups: vec!["reader".to_owned()],
        claims: serde_json::Value::Null,
        auth: AuthMethod::SigV4,
        session: None,
    }
}

/// One request and the expected session policy decision on its main resource.
struct Case {
    name: &'static str,
    request: S3Request,
    allowed: bool,
}

fn cases() -> Vec<Case> {
    let case = |name, method, uri, allowed| Case {
        name,
        request: parse(&method, uri),
        allowed,
    };
    vec![
        case(
            "get_object_allowed",
            Method::GET,
            "/data/home/alice/reports/2025/q1.parquet",
            true,
        ),
        case(
            "list_objects_v2_prefix_allowed",
            Method::GET,
            "/data?list-type=2&prefix=home/alice/reports/&delimiter=/",
            true,
        ),
        case(
            "put_object_denied_explicitly",
            Method::PUT,
            "/data/home/alice/archive/2024.tar",
            false,
        ),
        case(
            "get_object_denied_no_match",
            Method::GET,
            "/data/home/bob/reports/2025/q1.parquet",
            false,
        ),
    ]
}

fn decide(policy: &SessionPolicy, request: &S3Request) -> bool {
    let access = &request.resources()[0];
    policy.allows(access, request)
}

fn bench_session_policy(c: &mut Criterion) {
    let policy = SessionPolicy::parse(POLICY).unwrap();
    let cases = cases();
    let accesses: Vec<_> = cases.iter().map(|c| c.request.resources()).collect();
    for case in &cases {
        assert_eq!(
            decide(&policy, &case.request),
            case.allowed,
            "{}",
            case.name
        );
    }

    let mut group = c.benchmark_group("session_policy");
    for (case, access) in cases.iter().zip(&accesses) {
        group.bench_function(case.name, |b| {
            b.iter(|| black_box(policy.allows(black_box(&access[0]), black_box(&case.request))));
        });
    }
    group.bench_function("parse", |b| {
        b.iter(|| black_box(SessionPolicy::parse(black_box(POLICY)).unwrap()));
    });

    // The baseline: the seed policy's Rego decision on the first case's GetObject.
    let principal = reader();
    let get = &cases[0].request;
    let input = AuthzInput::for_resource(&principal, get, &Method::GET, &accesses[0][0], 0);
    let rego = RegoAuthorizer::seed().unwrap();
    assert_eq!(rego.authorize(&input).unwrap(), Decision::Allow);
    group.bench_function("baseline_rego_seed_get_object", |b| {
        b.iter(|| black_box(rego.authorize(black_box(&input)).unwrap()));
    });
    group.finish();

    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..ITERS {
            f();
        }
        start.elapsed() / ITERS
    };
    for (case, access) in cases.iter().zip(&accesses) {
        let (session, baseline) = interleaved(
            41,
            || {
                time(&mut || {
                    black_box(policy.allows(black_box(&access[0]), black_box(&case.request)));
                })
            },
            || {
                time(&mut || {
                    black_box(rego.authorize(black_box(&input)).unwrap());
                })
            },
        );
        println!(
            "session policy {}: {:.0} ns (goal < 1 µs: {}); Rego seed decision {:.2} µs; ratio {:.3}",
            case.name,
            session * 1e9,
            if session < GOAL { "met" } else { "NOT met" },
            baseline * 1e6,
            session / baseline,
        );
    }
    worst_case();
}

/// The worst cases a session's owner can write within the 2,048 packed characters, against a
/// 1,024-byte key (the longest) that almost matches every pattern at every position. Printed,
/// no goal: they bound what one crafted policy costs per resource, and a `DeleteObjects`
/// asks per key, up to 1,000 keys.
///
/// - one long `?` pattern (the automaton path);
/// - the same without `?` (the linear path);
/// - as many 36-char `?` patterns as fit (automaton, after both ends are checked);
/// - as many short `?` patterns as fit, closed by a literal (refused by the end check);
/// - as many short `?` patterns open at both ends as fit (`arn:*:*:*:*:*?b*`: each a full
///   pass of the automaton over the key): the worst per key, also timed over a
///   1,000-key `DeleteObjects`.
fn worst_case() {
    let key = "a".repeat(1_024);
    let request = parse(&Method::GET, &format!("/data/{key}"));
    let access = &request.resources()[0];
    let many = |pattern: &str| {
        let quoted = format!("\"{pattern}\"");
        let count = (1_950 / (quoted.len() + 1)).max(1);
        (vec![quoted; count].join(","), count)
    };
    let long = format!("arn:aws:s3:::data/*?{}b", "a".repeat(500));
    let under = format!("arn:aws:s3:::data/*?{}b", "a".repeat(14));
    let open = "arn:*:*:*:*:*?b*";
    let policy_of = |resources: &str, action: &str| {
        SessionPolicy::parse(&format!(
            r#"{{"Statement": {{"Effect": "Allow", "Action": "{action}", "Resource": [{resources}]}}}}"#
        ))
        .unwrap()
    };
    for (name, (resources, count)) in [
        ("one 521-char ? pattern", many(&long)),
        ("one 520-char * pattern", many(&long.replacen('?', "", 1))),
        ("36-char ? patterns", many(&under)),
        ("short ? patterns", many("arn:*:s3:::*?b")),
        ("short open ? patterns", many(open)),
    ] {
        let policy = policy_of(&resources, "s3:GetObject");
        assert!(!policy.allows(access, &request));
        let mut times: Vec<Duration> = (0..11)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..10 {
                    black_box(policy.allows(black_box(access), black_box(&request)));
                }
                start.elapsed() / 10
            })
            .collect();
        times.sort_unstable();
        println!(
            "session policy worst case, {name} (x{count}), 1,024-byte key: {:.1} µs",
            times[times.len() / 2].as_secs_f64() * 1e6
        );
    }

    // A `DeleteObjects` of 1,000 keys of 1,024 bytes, each decided against the worst policy.
    let (resources, count) = many(open);
    let policy = policy_of(&resources, "s3:DeleteObject");
    let batch = parse(&Method::POST, "/data?delete");
    let arns: Vec<String> = (0..1_000)
        .map(|i| format!("arn:aws:s3:::data/{i:04}{}", "a".repeat(1_020)))
        .collect();
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for arn in &arns {
                assert!(!policy.allows_arn("s3:DeleteObject", black_box(arn), &batch));
            }
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    println!(
        "session policy worst case, DeleteObjects of 1,000 1,024-byte keys, short open ? \
         patterns (x{count}): {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1e3
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench_session_policy
}
criterion_main!(benches);
