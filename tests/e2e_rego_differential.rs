//! Differential test of the Rego engine: the seed policy and a few hand-written policies,
//! evaluated by regorus (through [`RegoAuthorizer`], as the authorization layer does) and by
//! other Rego implementations on the same generated inputs, must decide alike.
//!
//! The other engines run in the tools' Python venv, through `tests/clients/rego_differential.py`:
//!
//! - the real Open Policy Agent: OPA's Go library (`github.com/open-policy-agent/opa/v1/rego`)
//!   built as a C shared library, from the PyPI package `opa-golib-python-bindings` (the `opa`
//!   binary itself is in no registry this project can reach);
//! - rego-cpp, Microsoft's independent C++ implementation, from the PyPI package `regopy`.
//!
//! The inputs are every [`S3Operation`] × principals (admin, reader, writer, no group, both
//! groups, near-misses such as `Admin`, `admin `, a Cyrillic `а`, anonymous, JWT claims, an STS
//! session) × bucket and key shapes (no bucket, a bucket with a listing prefix, keys with
//! unicode, `..`, a version id, a copy source), each turned into the policy inputs of its
//! resources by [`S3Request::resources`] and [`AuthzInput::for_resource`] /
//! [`AuthzInput::for_deleted_key`], the calls the layer makes. The document the other engines
//! get is the input's JSON serialisation; the test checks, for every input, that it is the
//! document `RegoAuthorizer` builds itself (a policy returning `input` shows it).
//!
//! A decision is an allow only when the rule is `true`: `false`, undefined, a non-boolean or
//! an evaluation error deny, as in the layer. Engines must agree on allow/deny for every input,
//! except for the two divergences found, each confined to a policy written to show it and
//! counted in the output as `DIVERGENCE`: builtin type errors ([`TYPE_ERROR_POLICY`]) and
//! `lower` of `İ` ([`CASE_FOLD_POLICY`]). Differences in *how* engines deny (`false` against
//! undefined or an error) are printed, not failed. Each policy must allow some inputs and deny
//! others, so the test cannot pass vacuously.
//!
//! Run with `cargo xtask test`, which installs `regopy` and `opa-golib-python-bindings` into
//! `.tools/venv`.

#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use s3_tower::authz::Authorizer as _;
use s3_tower::authz::{
    AuthzError, AuthzInput, DEFAULT_QUERY, Decision, RegoAuthorizer, SEED_POLICY,
};
use s3_tower::core::{
    Addressing, AuthMethod, CopySource, Principal, Query, Resource, S3Operation, S3Request, Session,
};
use serde_json::json;
use support::{ChildGuard, python_client, wait_until};

/// Globs on paths and actions (`glob.match` with and without delimiters).
const GLOB_POLICY: &str = r#"package s3

import rego.v1

default allow := false

# Readers may read anything under data/public/, at any depth.
allow if {
    some g in input.groups
    g == "reader"
    startswith(input.iam_action, "s3:Get")
    is_string(input.path)
    glob.match("data/public/**", ["/"], input.path)
}

# Writers may do any *Object* operation on the keys of one segment in `data`.
allow if {
    "writer" in input.groups
    glob.match("*Object*", [], input.action)
    is_string(input.path)
    glob.match("data/*", ["/"], input.path)
}

# Any authenticated principal may list, by a glob on the IAM action.
allow if {
    input.auth != "anonymous"
    glob.match("s3:List*", [], input.iam_action)
}
"#;

/// Prefixes (`startswith`, `endswith`, `contains`) on keys that may be null (guarded by
/// `is_string`), references through null (`input.source.bucket`).
const PREFIX_POLICY: &str = r#"package s3

import rego.v1

default allow := false

# Readers may read keys under a/ in `data`, unless the key climbs with "..".
allow if {
    input.groups[_] == "reader"
    input.bucket == "data"
    is_string(input.key)
    startswith(input.key, "a/")
    not contains(input.key, "..")
}

# Admins may do everything.
allow if "admin" in input.groups

# JWT users of the eng department may do the *Object actions.
allow if {
    input.auth == "jwt"
    input.claims.department == "eng"
    endswith(input.iam_action, "Object")
}

# The object of a copy must come from the destination's bucket, for writers.
allow if {
    "writer" in input.groups
    input.source.bucket == input.bucket
    startswith(input.source.key, "public/")
}
"#;

/// Iteration over groups and claims (`some x in`, `some i, x in`), upper case, trimming.
const GROUPS_POLICY: &str = r#"package s3

import rego.v1

default allow := false

admin_like if {
    some g in input.groups
    trim_space(g) == "admin"
}

allow if admin_like

# A reader listed first, in any case, may GET and HEAD.
allow if {
    some i, g in input.groups
    i == 0
    upper(g) == "READER"
    input.method in {"GET", "HEAD"}
}

# Groups carried in the claims (null for anonymous principals).
allow if {
    some g in input.claims.groups
    g == "admin"
}

# A session's role, by prefix.
allow if {
    is_string(input.role)
    startswith(input.role, "arn:aws:iam::000000000000:role/ops-")
    count(input.groups) == 0
}
"#;

/// No default: most inputs leave `allow` undefined (a deny). Regexes, `split`, null checks.
const UNDEFINED_POLICY: &str = r#"package s3

import rego.v1

allow if input.groups[_] == "admin"

allow if {
    input.action == "GetObject"
    is_string(input.key)
    regex.match(`^[a-z0-9/._-]+$`, input.key)
    count(split(input.key, "/")) <= 3
}

allow if {
    input.version_id != null
    "reader" in input.groups
}

allow if {
    input.prefix == "public/"
    input.auth in {"sigv4", "presigned"}
}
"#;

/// Builtins given `null` (the key, path and role of many inputs) next to rules that allow: a
/// type error. regorus raises it as an evaluation error (the layer denies), whatever the other
/// rules say; OPA raises it too, except where a rule that allows ended the evaluation first
/// (OPA stops early once a boolean rule is `true`), and then allows; rego-cpp takes the call
/// as undefined and goes on with the other rules.
const TYPE_ERROR_POLICY: &str = r#"package s3

import rego.v1

default allow := false

allow if "admin" in input.groups

allow if {
    input.groups[_] == "reader"
    startswith(input.key, "a/")
}

allow if {
    "writer" in input.groups
    glob.match("data/*", ["/"], input.path)
}

allow if {
    input.auth == "jwt"
    regex.match(`^arn:aws:iam::[0-9]+:role/ops-`, input.role)
}
"#;

/// `lower` on non-ASCII text, in an allow list and a block list. OPA (Go's `unicode.ToLower`,
/// rune by rune) lowers `İ` (U+0130) to `i`; regorus (Rust's `to_lowercase`, Unicode's full
/// mapping) to `i̇` (`i` and U+0307). So under OPA the group `ADMİN` is `admin` and the user
/// `MALLORİ` is blocked; under regorus neither: regorus denies the first and ALLOWS the second.
const CASE_FOLD_POLICY: &str = r#"package s3

import rego.v1

default allow := false

# Admins, in any case.
allow if {
    some g in input.groups
    lower(trim_space(g)) == "admin"
}

# Readers may read, unless their user name is on the block list (in any case).
allow if {
    "reader" in input.groups
    input.action == "GetObject"
    not blocked
}

blocked if lower(input.user) in {"mallori", "eve"}
"#;

/// Whether regorus must decide exactly like the other engine on a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agreement {
    /// Allow/deny alike on every input.
    Exact,
    /// As [`TYPE_ERROR_POLICY`] documents: where they differ, regorus fails (a deny) and the
    /// other engine allows; regorus never allows what the other denies.
    RegorusFailsClosedOnTypeErrors,
    /// As [`CASE_FOLD_POLICY`] documents: they may differ, either way, only on inputs that
    /// hold a `İ` (U+0130).
    LowerOfDottedCapitalI,
}

impl Agreement {
    /// Whether a disagreement (regorus `ours`, the other engine `theirs`) on `input_json` is
    /// one this agreement admits.
    fn admits(self, ours: &Outcome, theirs: &Outcome, input_json: &str) -> bool {
        match self {
            Self::Exact => false,
            Self::RegorusFailsClosedOnTypeErrors => {
                matches!(ours, Outcome::Error(_)) && theirs.allows()
            }
            Self::LowerOfDottedCapitalI => input_json.contains('\u{0130}'),
        }
    }
}

/// The policies compared, as `(name, text, agreement)`; all define `data.s3.allow`.
const POLICIES: &[(&str, &str, Agreement)] = &[
    ("seed.rego", SEED_POLICY, Agreement::Exact),
    ("glob.rego", GLOB_POLICY, Agreement::Exact),
    ("prefix.rego", PREFIX_POLICY, Agreement::Exact),
    ("groups.rego", GROUPS_POLICY, Agreement::Exact),
    ("undefined.rego", UNDEFINED_POLICY, Agreement::Exact),
    (
        "type_error.rego",
        TYPE_ERROR_POLICY,
        Agreement::RegorusFailsClosedOnTypeErrors,
    ),
    (
        "case_fold.rego",
        CASE_FOLD_POLICY,
        Agreement::LowerOfDottedCapitalI,
    ),
];

/// How one engine answered for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    True,
    False,
    Undefined,
    Other(String),
    Error(String),
}

impl Outcome {
    fn allows(&self) -> bool {
        *self == Self::True
    }

    /// The engine's line of `rego_differential.py`.
    fn parse(line: &str) -> Self {
        match line {
            "true" => Self::True,
            "false" => Self::False,
            "undefined" => Self::Undefined,
            _ => {
                if let Some(value) = line.strip_prefix("other ") {
                    Self::Other(value.to_owned())
                } else if let Some(message) = line.strip_prefix("error ") {
                    Self::Error(message.to_owned())
                } else {
                    panic!("unexpected line from rego_differential.py: {line:?}")
                }
            }
        }
    }

    /// What [`RegoAuthorizer`] answered.
    fn of_regorus(result: Result<Decision, AuthzError>) -> Self {
        match result {
            Ok(Decision::Allow) => Self::True,
            Ok(Decision::Deny) => Self::False,
            Err(AuthzError::Engine(message))
                if message.ends_with("is undefined for this input") =>
            {
                Self::Undefined
            }
            Err(AuthzError::Engine(message)) if message.contains("is not a boolean") => {
                Self::Other(message)
            }
            Err(err) => Self::Error(err.to_string()),
        }
    }

    /// The kind, without messages: what "how they deny" compares.
    fn kind(&self) -> &'static str {
        match self {
            Self::True => "true",
            Self::False => "false",
            Self::Undefined => "undefined",
            Self::Other(_) => "other",
            Self::Error(_) => "error",
        }
    }
}

/// The principals: the seed's groups, their combinations and near-misses, and the other
/// authentication methods.
fn principals() -> Vec<Principal> {
    let with = |subject: &str, groups: &[&str], auth: AuthMethod| Principal {
        subject: subject.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: json!({}),
        auth,
        session: None,
    };
    let mut out = vec![
        with("root", &["admin"], AuthMethod::SigV4),
        with("alice", &["reader"], AuthMethod::SigV4),
        with("walt", &["writer"], AuthMethod::SigV4),
        with("nobody", &[], AuthMethod::SigV4),
        with("both", &["admin", "reader"], AuthMethod::Presigned),
        with("both2", &["reader", "admin"], AuthMethod::SigV4),
        with("mallory", &["Admin"], AuthMethod::SigV4),
        with("mallory2", &["admin "], AuthMethod::SigV4),
        with("mallory3", &[" reader", "READER"], AuthMethod::SigV4),
        with(
            "mallory4",
            &["readers", "administrators"],
            AuthMethod::SigV4,
        ),
        // A Cyrillic `а` and a Turkish dotted capital I: lookalikes under case folding.
        with(
            "mallory5",
            &["\u{0430}dmin", "ADM\u{0130}N"],
            AuthMethod::SigV4,
        ),
        with("MALLOR\u{0130}", &["reader"], AuthMethod::SigV4),
        with("EVE", &["reader"], AuthMethod::SigV4),
        with("empty", &[""], AuthMethod::SigV4),
        Principal::anonymous(),
    ];
    let mut jwt = with("jwt-user", &["staff"], AuthMethod::Jwt);
    jwt.claims = json!({"department": "eng", "groups": ["admin"], "n": 1.5, "tags": {"a": null}});
    out.push(jwt);
    let mut jwt_other = with("jwt-other", &[], AuthMethod::Jwt);
    jwt_other.claims = json!({"department": "Eng", "groups": "admin"});
    out.push(jwt_other);
    let mut sts = with("sts", &[], AuthMethod::SigV4);
    sts.session = Some(Session {
        role_arn: "arn:aws:iam::000000000000:role/ops-readonly".to_owned(),
        session_name: "s".to_owned(),
        policy: None,
    });
    out.push(sts);
    out
}

/// The HTTP method of an operation (roughly: only the policies' `input.method` reads it).
fn method_of(op: S3Operation) -> http::Method {
    let name = op.name();
    if matches!(
        op,
        S3Operation::DeleteObjects
            | S3Operation::CreateMultipartUpload
            | S3Operation::CompleteMultipartUpload
            | S3Operation::RestoreObject
            | S3Operation::SelectObjectContent
    ) {
        http::Method::POST
    } else if name.starts_with("Head") {
        http::Method::HEAD
    } else if name.starts_with("Get") || name.starts_with("List") {
        http::Method::GET
    } else if name.starts_with("Delete") || name.starts_with("Abort") {
        http::Method::DELETE
    } else {
        http::Method::PUT
    }
}

/// The requests of `op`: no bucket, a bucket (with a listing prefix), and objects.
fn requests(op: S3Operation) -> Vec<S3Request> {
    let request =
        |bucket: Option<&str>, key: Option<&str>, query: &str| {
            let copy_source = matches!(op, S3Operation::CopyObject | S3Operation::UploadPartCopy)
                .then(|| CopySource {
                    bucket: "data".to_owned(),
                    key: "public/src ✓.csv".to_owned(),
                    version_id: None,
                });
            S3Request {
                operation: op,
                bucket: bucket.map(str::to_owned),
                key: key.map(str::to_owned),
                addressing: Addressing::PathStyle,
                query: Query::parse(query).unwrap(),
                raw_path: match (bucket, key) {
                    (Some(b), Some(k)) => format!("/{b}/{k}"),
                    (Some(b), None) => format!("/{b}"),
                    _ => "/".to_owned(),
                },
                raw_query: (!query.is_empty()).then(|| query.to_owned()),
                copy_source: if key.is_some() { copy_source } else { None },
                unknown_reason: None,
            }
        };
    vec![
        request(None, None, ""),
        request(Some("data"), None, "prefix=public%2F"),
        request(Some("data-archive"), None, ""),
        request(Some("data"), Some("a/b.csv"), ""),
        request(
            Some("data"),
            Some("a/b.csv"),
            "versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        ),
        request(Some("data"), Some("public/reports/2026/q1.csv"), ""),
        request(Some("data"), Some("répertoire/ファイル 🚀.txt"), ""),
        request(Some("data"), Some("a/../public/x"), ""),
        request(Some("data"), Some("../../etc/passwd"), ""),
        request(Some("data-archive"), Some("public/x"), ""),
    ]
}

/// Every policy input of every request of every operation, for every principal, built as
/// the layer builds them; without duplicates, in a stable order.
fn inputs() -> Vec<AuthzInput> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut push = |input: AuthzInput| {
        if seen.insert(serde_json::to_string(&input).unwrap()) {
            out.push(input);
        }
    };
    let principals = principals();
    for op in S3Operation::ALL {
        let method = method_of(*op);
        for s3 in requests(*op) {
            for principal in &principals {
                for (index, access) in s3.resources().iter().enumerate() {
                    if let Resource::ObjectsInBody { bucket } = &access.resource {
                        // The keys a DeleteObjects body would list.
                        for (key, version) in
                            [("a/b.csv", None), ("public/../../x", Some("v1".to_owned()))]
                        {
                            push(AuthzInput::for_deleted_key(
                                principal, &s3, &method, bucket, key, version,
                            ));
                        }
                        continue;
                    }
                    push(AuthzInput::for_resource(
                        principal, &s3, &method, access, index,
                    ));
                }
            }
        }
    }
    out
}

/// regorus' outcomes through `RegoAuthorizer`, as the layer gets them.
fn regorus_outcomes(name: &str, text: &str, inputs: &[AuthzInput]) -> Vec<Outcome> {
    let authz =
        RegoAuthorizer::from_sources([(name.to_owned(), text.to_owned())], DEFAULT_QUERY).unwrap();
    inputs
        .iter()
        .map(|input| Outcome::of_regorus(authz.authorize(input)))
        .collect()
}

/// Checks that the document `RegoAuthorizer` builds for each input (which a policy returning
/// `input` shows in its "not a boolean" error) is the input's JSON, what the other engines get.
fn assert_documents_are_the_json(inputs: &[AuthzInput]) {
    let echo = RegoAuthorizer::from_sources(
        [(
            "echo.rego".to_owned(),
            "package s3\n\nallow := input\n".to_owned(),
        )],
        DEFAULT_QUERY,
    )
    .unwrap();
    for input in inputs {
        let json = regorus::Value::from(serde_json::to_value(input).unwrap());
        let expected =
            format!("policy evaluation failed: {DEFAULT_QUERY} is not a boolean: {json}");
        let err = echo.authorize(input).unwrap_err();
        assert_eq!(err.to_string(), expected, "the document of {input:?}");
    }
}

/// Another engine evaluating every policy on every input, in a child process.
struct OtherEngine {
    name: &'static str,
    child: ChildGuard,
    output: PathBuf,
}

impl OtherEngine {
    /// Starts `rego_differential.py --engine name` on the job and inputs in `dir`.
    fn start(name: &'static str, dir: &Path) -> Self {
        let output = dir.join(format!("{name}.out"));
        let mut cmd = python_client("rego_differential.py");
        cmd.args(["--engine", name])
            .arg("--output")
            .arg(&output)
            .arg(dir.join("job.json"))
            .arg(dir.join("inputs.jsonl"));
        let child = ChildGuard::spawn(name, cmd, &dir.join(format!("{name}.log")));
        Self {
            name,
            child,
            output,
        }
    }

    /// Waits for the engine and returns its outcomes, policy by policy.
    fn outcomes(mut self, inputs: usize) -> Vec<Vec<Outcome>> {
        let mut status = None;
        wait_until(
            &format!("rego_differential.py --engine {}", self.name),
            ENGINE_TIMEOUT,
            || {
                status = self.child.exited();
                status.is_some()
            },
        );
        let log = self.child.log();
        eprint!("{log}");
        assert!(
            status.is_some_and(|s| s.success()),
            "rego_differential.py --engine {} failed ({status:?}):\n{log}",
            self.name
        );
        let text = std::fs::read_to_string(&self.output).unwrap();
        let lines: Vec<Outcome> = text.lines().map(Outcome::parse).collect();
        assert_eq!(
            lines.len(),
            inputs * POLICIES.len(),
            "{} answered {} lines for {} policies × {inputs} inputs",
            self.name,
            lines.len(),
            POLICIES.len()
        );
        lines.chunks(inputs).map(<[Outcome]>::to_vec).collect()
    }
}

/// Compares regorus with `engine` on one policy; returns the disagreements its
/// [`Agreement`] does not admit, as lines.
fn compare(
    engine: &str,
    (name, agreement): (&str, Agreement),
    inputs: &[AuthzInput],
    ours: &[Outcome],
    theirs: &[Outcome],
) -> Vec<String> {
    let mut kinds: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut examples: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let mut admitted = 0;
    let mut failures = Vec::new();
    for ((input, a), b) in inputs.iter().zip(ours).zip(theirs) {
        *kinds.entry((a.kind(), b.kind())).or_default() += 1;
        if a.kind() == b.kind() && a.allows() == b.allows() {
            continue;
        }
        let input_json = serde_json::to_string(input).unwrap();
        examples
            .entry((a.kind(), b.kind()))
            .or_insert_with(|| format!("regorus {a:?}, {engine} {b:?} on {input_json}"));
        if a.allows() == b.allows() {
            continue;
        }
        if agreement.admits(a, b, &input_json) {
            admitted += 1;
        } else {
            failures.push(format!(
                "{name}: regorus {a:?}, {engine} {b:?} on {input_json}"
            ));
        }
    }
    eprintln!("{name}: (regorus, {engine}) outcomes: {kinds:?}");
    for ((a, b), example) in &examples {
        eprintln!("  {name}: regorus {a} where {engine} {b}, e.g. {example}");
    }
    if admitted > 0 {
        eprintln!(
            "  {name}: DIVERGENCE ({agreement:?}): regorus and {engine} decide {admitted} \
             inputs differently"
        );
    }
    failures
}

/// How long the other engines may take for all policies and inputs.
const ENGINE_TIMEOUT: Duration = Duration::from_mins(15);

/// The engines regorus is compared with: the real OPA and rego-cpp.
const ENGINES: &[&str] = &["opa", "regopy"];

/// regorus against the real OPA (its Go library) and rego-cpp, on every policy and input.
#[test]
fn regorus_decides_like_opa_and_rego_cpp() {
    let started = Instant::now();
    let inputs = inputs();
    assert!(inputs.len() > 1000, "only {} inputs", inputs.len());

    let dir = tempfile::tempdir().unwrap();
    let policies: Vec<_> = POLICIES
        .iter()
        .map(|(name, text, _)| json!({"name": name, "modules": [{"name": name, "text": text}]}))
        .collect();
    let job = json!({"query": DEFAULT_QUERY, "policies": policies});
    std::fs::write(
        dir.path().join("job.json"),
        serde_json::to_vec(&job).unwrap(),
    )
    .unwrap();
    let mut lines = String::new();
    for input in &inputs {
        lines.push_str(&serde_json::to_string(input).unwrap());
        lines.push('\n');
    }
    std::fs::write(dir.path().join("inputs.jsonl"), lines).unwrap();
    // The other engines run while regorus decides.
    let engines: Vec<OtherEngine> = ENGINES
        .iter()
        .map(|engine| OtherEngine::start(engine, dir.path()))
        .collect();

    assert_documents_are_the_json(&inputs);
    let ours: Vec<Vec<Outcome>> = POLICIES
        .iter()
        .map(|(name, text, _)| {
            let policy_started = Instant::now();
            let outcomes = regorus_outcomes(name, text, &inputs);
            let allows = outcomes.iter().filter(|o| o.allows()).count();
            eprintln!(
                "{name}: {} inputs, regorus allows {allows} and denies {} ({:.1}s)",
                inputs.len(),
                inputs.len() - allows,
                policy_started.elapsed().as_secs_f64()
            );
            assert!(allows > 0, "{name}: no input is allowed");
            assert!(allows < inputs.len(), "{name}: no input is denied");
            outcomes
        })
        .collect();

    let mut failures = Vec::new();
    for engine in engines {
        let name = engine.name;
        let theirs = engine.outcomes(inputs.len());
        for (((policy, _, agreement), ours), theirs) in POLICIES.iter().zip(&ours).zip(&theirs) {
            failures.extend(compare(name, (policy, *agreement), &inputs, ours, theirs));
        }
    }
    eprintln!(
        "regorus vs {ENGINES:?}: {} policies × {} inputs compared in {:.1}s, {} disagreements \
         beyond the admitted ones",
        POLICIES.len(),
        inputs.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "regorus and the other engines disagree on {} decisions (first 20):\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
