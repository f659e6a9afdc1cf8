//! `RegoAuthorizer`: the seed policy over every operation, engine errors, policy loading and
//! reloading, custom queries and prefix-restricted policies.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::PathBuf;

use http::{HeaderMap, Method, Uri};
use s3_authz::{Authorizer, AuthzError, AuthzInput, Decision, RegoAuthorizer, SourceObject};
use s3_core::{AuthMethod, Principal, S3Operation, S3RequestParser};
use serde_json::json;

mod support;
use support::{assert_seed_contract, input};

fn principal(subject: &str, groups: &[&str]) -> Principal {
    Principal {
        subject: subject.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: json!({"tenant": "t1"}),
        auth: AuthMethod::Jwt,
        session: None,
    }
}

fn inline(text: &str, query: &str) -> Result<RegoAuthorizer, AuthzError> {
    RegoAuthorizer::from_sources([("test.rego".to_owned(), text.to_owned())], query)
}

#[test]
fn seed_admin_may_do_everything_reader_only_list_and_read_others_nothing() {
    let authz = RegoAuthorizer::seed().unwrap();
    assert_seed_contract(&authz);
    assert_eq!(authz.engine(), "rego");
}

#[test]
fn seed_reader_with_a_second_group_keeps_reader_rights() {
    let authz = RegoAuthorizer::seed().unwrap();
    let get = input(&["staff", "reader"], S3Operation::GetObject);
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    let put = input(&["staff", "reader"], S3Operation::PutObject);
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Deny);
    assert_eq!(authz.engine(), "rego");
}

#[test]
fn for_resource_builds_the_documented_input_from_a_parsed_request() {
    let parser = S3RequestParser::new();
    let uri: Uri = "/data/a/b.csv".parse().unwrap();
    let s3 = parser.parse(&Method::GET, &uri, &HeaderMap::new()).unwrap();
    let resources = s3.resources();
    assert_eq!(resources.len(), 1);
    let reader = principal("alice", &["reader"]);
    let got = AuthzInput::for_resource(&reader, &s3, &Method::GET, &resources[0], 0);
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        json!({
            "user": "alice", "groups": ["reader"], "claims": {"tenant": "t1"}, "role": null,
            "action": "GetObject", "iam_action": "s3:GetObject", "operation": "GetObject",
            "bucket": "data", "key": "a/b.csv", "path": "data/a/b.csv", "prefix": null,
            "version_id": null, "source": null, "method": "GET", "auth": "jwt",
            "source_ip": null
        })
    );
    let authz = RegoAuthorizer::seed().unwrap();
    assert_eq!(authz.authorize(&got).unwrap(), Decision::Allow);

    let s3 = parser.parse(&Method::PUT, &uri, &HeaderMap::new()).unwrap();
    assert_eq!(s3.operation, S3Operation::PutObject);
    let put = AuthzInput::for_resource(&reader, &s3, &Method::PUT, &s3.resources()[0], 0);
    assert_eq!(put.action, "PutObject");
    assert_eq!(put.iam_action, "s3:PutObject");
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Deny);
    let admin = principal("root", &["admin"]);
    let put = AuthzInput::for_resource(&admin, &s3, &Method::PUT, &s3.resources()[0], 0);
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Allow);
}

#[test]
fn for_resource_of_a_copy_names_the_source_in_the_destination_input() {
    let parser = S3RequestParser::new();
    let uri: Uri = "/dst/copy.txt".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-copy-source",
        "/src/public/a%20b.txt".parse().unwrap(),
    );
    let s3 = parser.parse(&Method::PUT, &uri, &headers).unwrap();
    assert_eq!(s3.operation, S3Operation::CopyObject);
    let resources = s3.resources();
    assert_eq!(resources.len(), 2);
    let reader = principal("alice", &["reader"]);
    let dst = AuthzInput::for_resource(&reader, &s3, &Method::PUT, &resources[0], 0);
    let src = AuthzInput::for_resource(&reader, &s3, &Method::PUT, &resources[1], 1);
    assert_eq!(dst.action, "CopyObject");
    assert_eq!(dst.iam_action, "s3:PutObject");
    assert_eq!(dst.path.as_deref(), Some("dst/copy.txt"));
    assert_eq!(
        dst.source,
        Some(SourceObject {
            bucket: "src".to_owned(),
            key: "public/a b.txt".to_owned()
        })
    );
    assert_eq!(src.action, "GetObject");
    assert_eq!(src.iam_action, "s3:GetObject");
    assert_eq!(src.operation, "CopyObject");
    assert_eq!(src.path.as_deref(), Some("src/public/a b.txt"));
    assert_eq!(src.source, None);
    // The seed policy reads the source like a GetObject and the destination like a write.
    let authz = RegoAuthorizer::seed().unwrap();
    assert_eq!(authz.authorize(&src).unwrap(), Decision::Allow);
    assert_eq!(authz.authorize(&dst).unwrap(), Decision::Deny);
}

#[test]
fn an_undefined_result_is_an_engine_error() {
    let authz = inline(
        "package t\nimport rego.v1\nallow if { input.user == \"bob\" }\n",
        "data.t.allow",
    )
    .unwrap();
    let mut bob = input(&[], S3Operation::GetObject);
    bob.user = "bob".to_owned();
    assert_eq!(authz.authorize(&bob).unwrap(), Decision::Allow);
    let err = authz
        .authorize(&input(&[], S3Operation::GetObject))
        .unwrap_err();
    match err {
        AuthzError::Engine(message) => {
            assert!(message.contains("data.t.allow"), "{message}");
            assert!(message.contains("undefined"), "{message}");
        }
        other => panic!("expected an engine error, got {other:?}"),
    }
}

#[test]
fn a_non_boolean_result_is_an_engine_error() {
    for (rule, shown) in [
        ("allow := \"yes\"", "yes"),
        ("allow := 1", "1"),
        ("allow := {\"a\": true}", "a"),
    ] {
        let authz = inline(&format!("package t\n{rule}\n"), "data.t.allow").unwrap();
        match authz.authorize(&input(&["admin"], S3Operation::GetObject)) {
            Err(AuthzError::Engine(message)) => {
                assert!(message.contains("not a boolean"), "{rule}: {message}");
                assert!(message.contains(shown), "{rule}: {message}");
            }
            other => panic!("{rule}: expected an engine error, got {other:?}"),
        }
    }
}

#[test]
fn an_explicit_false_is_a_deny_not_an_error() {
    let authz = inline("package t\nallow := false\n", "data.t.allow").unwrap();
    assert_eq!(
        authz
            .authorize(&input(&["admin"], S3Operation::GetObject))
            .unwrap(),
        Decision::Deny
    );
}

#[test]
fn a_syntax_error_fails_construction_with_the_source_name() {
    let err = RegoAuthorizer::from_sources(
        [(
            "broken.rego".to_owned(),
            "package t\nallow if {\n".to_owned(),
        )],
        "data.t.allow",
    )
    .unwrap_err();
    match err {
        AuthzError::PolicyLoad {
            source_name,
            message,
        } => {
            assert_eq!(source_name, "broken.rego");
            assert!(!message.is_empty());
        }
        other => panic!("expected PolicyLoad, got {other:?}"),
    }
}

#[test]
fn no_policy_at_all_fails_construction() {
    assert!(matches!(
        RegoAuthorizer::from_sources(Vec::<(String, String)>::new(), "data.s3.allow"),
        Err(AuthzError::PolicyLoad { .. })
    ));
    assert!(matches!(
        RegoAuthorizer::from_files(Vec::<PathBuf>::new(), "data.s3.allow"),
        Err(AuthzError::PolicyLoad { .. })
    ));
}

#[test]
fn a_missing_file_fails_construction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.rego");
    match RegoAuthorizer::from_files([path.clone()], "data.s3.allow") {
        Err(AuthzError::PolicyLoad { source_name, .. }) => {
            assert_eq!(source_name, path.display().to_string());
        }
        other => panic!("expected PolicyLoad, got {other:?}"),
    }
}

const READERS_READ: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    "reader" in input.groups
    input.action == "GetObject"
}
"#;

const NOBODY: &str = "package s3\ndefault allow := false\n";

#[test]
fn reload_swaps_in_the_new_policy_and_keeps_the_old_one_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.rego");
    std::fs::write(&path, READERS_READ).unwrap();
    let authz = RegoAuthorizer::from_files([path.clone()], "data.s3.allow").unwrap();
    assert_eq!(authz.files(), std::slice::from_ref(&path));
    let get = input(&["reader"], S3Operation::GetObject);
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);

    // Changing the file changes nothing until reload.
    std::fs::write(&path, NOBODY).unwrap();
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    authz.reload().unwrap();
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Deny);

    // A broken policy is refused and the one in force stays.
    std::fs::write(&path, READERS_READ).unwrap();
    authz.reload().unwrap();
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    std::fs::write(&path, "package s3\nallow if {{{\n").unwrap();
    match authz.reload() {
        Err(AuthzError::PolicyLoad { source_name, .. }) => {
            assert_eq!(source_name, path.display().to_string());
        }
        other => panic!("expected PolicyLoad, got {other:?}"),
    }
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);

    // So does a file that disappeared.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(authz.reload(), Err(AuthzError::PolicyLoad { .. })));
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
}

#[test]
fn reload_of_several_files_reads_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.rego");
    let lib = dir.path().join("lib.rego");
    std::fs::write(
        &main,
        "package s3\nimport rego.v1\ndefault allow := false\nallow if data.lib.ok\n",
    )
    .unwrap();
    std::fs::write(&lib, "package lib\nok := true\n").unwrap();
    let authz = RegoAuthorizer::from_files([main, lib.clone()], "data.s3.allow").unwrap();
    let get = input(&[], S3Operation::GetObject);
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    std::fs::write(&lib, "package lib\nok := false\n").unwrap();
    authz.reload().unwrap();
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Deny);
}

#[test]
fn reload_of_an_inline_policy_keeps_it() {
    let authz = RegoAuthorizer::seed().unwrap();
    assert!(authz.files().is_empty());
    authz.reload().unwrap();
    assert_eq!(
        authz
            .authorize(&input(&["reader"], S3Operation::GetObject))
            .unwrap(),
        Decision::Allow
    );
}

#[test]
fn a_custom_query_is_evaluated() {
    let policy = r#"package custom
import rego.v1
default permit := false
permit if input.user == "alice"
allow := true
"#;
    let authz = inline(policy, "data.custom.permit").unwrap();
    let alice = input(&[], S3Operation::DeleteBucket);
    assert_eq!(authz.authorize(&alice).unwrap(), Decision::Allow);
    let mut bob = alice.clone();
    bob.user = "bob".to_owned();
    assert_eq!(authz.authorize(&bob).unwrap(), Decision::Deny);

    // An entry point the policy does not define is refused when the policy is loaded.
    match inline(policy, "data.s3.allow") {
        Err(AuthzError::PolicyLoad {
            source_name,
            message,
        }) => {
            assert_eq!(source_name, "data.s3.allow");
            assert!(message.contains("not a valid rule path"), "{message}");
        }
        other => panic!("expected PolicyLoad, got {other:?}"),
    }
}

const PREFIX_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action == "ListObjectsV2"
    startswith(input.prefix, "public/")
}
allow if {
    input.action == "GetObject"
    glob.match("public/*", ["/"], input.key)
}
allow if {
    input.action == "HeadObject"
    startswith(input.key, "public/")
}
"#;

#[test]
fn prefix_restricted_listing_with_startswith() {
    let authz = inline(PREFIX_POLICY, "data.s3.allow").unwrap();
    let mut list = input(&[], S3Operation::ListObjectsV2);
    list.key = None;
    list.path = Some("data".to_owned());
    for (prefix, expected) in [
        (Some("public/"), Decision::Allow),
        (Some("public/2024/"), Decision::Allow),
        (Some("public"), Decision::Deny),
        (Some("private/"), Decision::Deny),
        (Some(""), Decision::Deny),
        (Some("Public/"), Decision::Deny),
    ] {
        list.prefix = prefix.map(str::to_owned);
        assert_eq!(authz.authorize(&list).unwrap(), expected, "{prefix:?}");
    }
    // No prefix: `input.prefix` is `null`, and regorus raises a type error for
    // `startswith(null, ..)` (OPA would make the expression undefined): an engine error,
    // which the layer turns into a denial.
    list.prefix = None;
    match authz.authorize(&list) {
        Err(AuthzError::Engine(message)) => {
            assert!(message.contains("startswith"), "{message}");
            assert!(message.contains("null"), "{message}");
        }
        other => panic!("expected an engine error, got {other:?}"),
    }
}

#[test]
fn a_type_error_in_one_rule_fails_the_whole_evaluation() {
    // Another rule that would allow does not help: the evaluation as a whole fails, so an
    // admin is denied ListBuckets (no key: `input.key` is null) under this policy. Policies
    // must guard string builtins (`is_string(input.key)`) or use `object.get`.
    let policy = r#"package s3
import rego.v1
default allow := false
allow if "admin" in input.groups
allow if startswith(input.key, "public/")
"#;
    let authz = inline(policy, "data.s3.allow").unwrap();
    let mut list = input(&["admin"], S3Operation::ListBuckets);
    list.bucket = None;
    list.key = None;
    list.path = None;
    assert!(matches!(authz.authorize(&list), Err(AuthzError::Engine(_))));
    let guarded = r#"package s3
import rego.v1
default allow := false
allow if "admin" in input.groups
allow if {
    is_string(input.key)
    startswith(input.key, "public/")
}
"#;
    let authz = inline(guarded, "data.s3.allow").unwrap();
    assert_eq!(authz.authorize(&list).unwrap(), Decision::Allow);
    list.groups.clear();
    assert_eq!(authz.authorize(&list).unwrap(), Decision::Deny);
}

#[test]
fn key_restricted_reads_with_glob_match_and_startswith() {
    let authz = inline(PREFIX_POLICY, "data.s3.allow").unwrap();
    let mut get = input(&[], S3Operation::GetObject);
    let mut head = input(&[], S3Operation::HeadObject);
    for (key, glob, starts) in [
        ("public/a.txt", Decision::Allow, Decision::Allow),
        // `*` does not cross the `/` delimiter; startswith does not care.
        ("public/a/b.txt", Decision::Deny, Decision::Allow),
        ("secret/a.txt", Decision::Deny, Decision::Deny),
        // Keys are never normalised: this is a key under `public/`.
        ("public/../secret", Decision::Deny, Decision::Allow),
        ("public/..", Decision::Allow, Decision::Allow),
        ("publicx/a", Decision::Deny, Decision::Deny),
    ] {
        get.key = Some(key.to_owned());
        head.key = Some(key.to_owned());
        assert_eq!(authz.authorize(&get).unwrap(), glob, "glob {key}");
        assert_eq!(authz.authorize(&head).unwrap(), starts, "startswith {key}");
    }
}

#[test]
fn evaluate_takes_a_prepared_value() {
    let authz = RegoAuthorizer::seed().unwrap();
    let value = regorus_value(json!({"groups": ["reader"], "action": "GetObject"}));
    assert_eq!(authz.evaluate(value).unwrap(), Decision::Allow);
    let value = regorus_value(json!({"groups": ["reader"], "action": "PutObject"}));
    assert_eq!(authz.evaluate(value).unwrap(), Decision::Deny);
}

fn regorus_value(json: serde_json::Value) -> regorus::Value {
    regorus::Value::from(json)
}
