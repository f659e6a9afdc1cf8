//! `CedarAuthorizer`: the generated schema, the seed policy over every operation (decisions
//! identical to the Rego seed), action groups, context and resource attributes, schema
//! validation at load, reloading, and `AuthzLayer` with Cedar.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use s3_authz::{
    Authorizer, AuthzBody, AuthzError, AuthzInput, AuthzLayer, CEDAR_SCHEMA, CedarAuthorizer,
    Decision, RegoAuthorizer, SourceObject,
};
use s3_core::{AuthMethod, Principal, S3Operation, S3RequestLayer, S3RequestParser};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

mod support;
use support::{assert_seed_contract, input};

/// `input` on a bucket (no key), with a listing prefix.
fn bucket_input(groups: &[&str], op: S3Operation, prefix: Option<&str>) -> AuthzInput {
    let mut i = input(groups, op);
    i.key = None;
    i.path = Some("data".to_owned());
    i.prefix = prefix.map(str::to_owned);
    i
}

/// `input` on the service (`ListBuckets`-like: no bucket).
fn service_input(groups: &[&str], op: S3Operation) -> AuthzInput {
    let mut i = input(groups, op);
    i.bucket = None;
    i.key = None;
    i.path = None;
    i
}

fn principal(subject: &str, groups: &[&str]) -> Principal {
    Principal {
        subject: subject.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: json!({"tenant": "t1"}),
        auth: AuthMethod::Jwt,
        session: None,
    }
}

fn inline(text: &str) -> Result<CedarAuthorizer, AuthzError> {
    CedarAuthorizer::from_sources([("test.cedar".to_owned(), text.to_owned())])
}

fn expect_policy_load(result: Result<CedarAuthorizer, AuthzError>) -> (String, String) {
    match result {
        Err(AuthzError::PolicyLoad {
            source_name,
            message,
        }) => (source_name, message),
        other => panic!("expected PolicyLoad, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

/// `policies/s3.cedarschema` is the generated schema. Run with `UPDATE_CEDAR_SCHEMA=1` to
/// rewrite it after adding operations.
#[test]
fn the_schema_file_is_the_generated_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/s3.cedarschema");
    if std::env::var_os("UPDATE_CEDAR_SCHEMA").is_some() {
        std::fs::write(&path, CEDAR_SCHEMA.as_str()).unwrap();
    }
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        file, *CEDAR_SCHEMA,
        "policies/s3.cedarschema is stale: run the test with UPDATE_CEDAR_SCHEMA=1"
    );
}

#[test]
fn the_schema_has_one_action_per_operation() {
    let authz = CedarAuthorizer::seed().unwrap();
    let schema = authz.schema();
    let actions: Vec<String> = schema
        .actions()
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    for op in S3Operation::ALL {
        assert!(actions.iter().any(|a| a == op.name()), "{op}");
    }
    assert!(!actions.iter().any(|a| a == "Unknown"));
    // Plus the three groups.
    assert_eq!(actions.len(), S3Operation::ALL.len() + 3, "{actions:?}");
}

#[test]
fn action_groups_follow_the_iam_verb() {
    let authz = inline(
        r#"permit (principal in S3::Group::"r", action in S3::Action::"read", resource);
permit (principal in S3::Group::"w", action in S3::Action::"write", resource);
permit (principal in S3::Group::"l", action in S3::Action::"list", resource);"#,
    )
    .unwrap();
    let mut list = Vec::new();
    for op in S3Operation::ALL {
        let verb = op.iam_action().unwrap().strip_prefix("s3:").unwrap();
        let group = if verb.starts_with("List") {
            "l"
        } else if verb.starts_with("Get") {
            "r"
        } else {
            "w"
        };
        for g in ["r", "w", "l"] {
            let expected = if g == group {
                Decision::Allow
            } else {
                Decision::Deny
            };
            assert_eq!(
                authz.authorize(&input(&[g], *op)).unwrap(),
                expected,
                "{op} in {g}"
            );
        }
        if group == "l" {
            list.push(*op);
        }
    }
    assert_eq!(
        list,
        [
            S3Operation::ListBuckets,
            S3Operation::HeadBucket,
            S3Operation::ListObjects,
            S3Operation::ListObjectsV2,
            S3Operation::ListObjectVersions,
            S3Operation::ListMultipartUploads,
            S3Operation::ListParts,
        ]
    );
    // Spot checks of the rule.
    let read = |op| authz.authorize(&input(&["r"], op)).unwrap();
    assert_eq!(read(S3Operation::HeadObject), Decision::Allow);
    assert_eq!(read(S3Operation::SelectObjectContent), Decision::Allow);
    assert_eq!(read(S3Operation::GetBucketPolicy), Decision::Allow);
    assert_eq!(read(S3Operation::PutObject), Decision::Deny);
    let write = |op| authz.authorize(&input(&["w"], op)).unwrap();
    assert_eq!(write(S3Operation::CopyObject), Decision::Allow);
    assert_eq!(write(S3Operation::DeleteObjects), Decision::Allow);
    assert_eq!(write(S3Operation::RestoreObject), Decision::Allow);
    assert_eq!(write(S3Operation::GetObject), Decision::Deny);
}

// ---------------------------------------------------------------------------------------------
// The seed policy
// ---------------------------------------------------------------------------------------------

#[test]
fn seed_admin_may_do_everything_reader_only_list_and_read_others_nothing() {
    let authz = CedarAuthorizer::seed().unwrap();
    assert_seed_contract(&authz);
    assert_eq!(authz.engine(), "cedar");
}

/// Both seed policies decide identically for every operation, group set and resource shape.
#[test]
fn seed_decisions_are_identical_to_the_rego_seed() {
    let cedar = CedarAuthorizer::seed().unwrap();
    let rego = RegoAuthorizer::seed().unwrap();
    let group_sets: &[&[&str]] = &[
        &["admin"],
        &["reader"],
        &[],
        &["Admin", "readers"],
        &["staff", "reader"],
        &["reader", "admin"],
    ];
    let mut compared = 0;
    for op in S3Operation::ALL {
        for groups in group_sets {
            for i in [
                input(groups, *op),
                bucket_input(groups, *op, Some("p/")),
                service_input(groups, *op),
            ] {
                assert_eq!(
                    cedar.authorize(&i).unwrap(),
                    rego.authorize(&i).unwrap(),
                    "{op} {groups:?} {:?}",
                    i.path
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, S3Operation::ALL.len() * group_sets.len() * 3);
}

#[test]
fn seed_decides_on_inputs_built_from_parsed_requests() {
    let parser = S3RequestParser::new();
    let cedar = CedarAuthorizer::seed().unwrap();
    let rego = RegoAuthorizer::seed().unwrap();
    let reader = principal("alice", &["reader"]);
    for (method, uri, expected) in [
        (Method::GET, "/", Decision::Allow),
        (
            Method::GET,
            "/data?list-type=2&prefix=a%2F",
            Decision::Allow,
        ),
        (Method::GET, "/data/a/b.csv", Decision::Allow),
        (Method::GET, "/data/a/b.csv?versionId=v1", Decision::Allow),
        (Method::PUT, "/data/a/b.csv", Decision::Deny),
        (Method::PUT, "/data", Decision::Deny),
        (Method::DELETE, "/data/a/b.csv", Decision::Deny),
    ] {
        let uri: Uri = uri.parse().unwrap();
        let s3 = parser.parse(&method, &uri, &HeaderMap::new()).unwrap();
        let resources = s3.resources();
        let i = AuthzInput::for_resource(&reader, &s3, &method, &resources[0], 0);
        assert_eq!(cedar.authorize(&i).unwrap(), expected, "{method} {uri}");
        assert_eq!(rego.authorize(&i).unwrap(), expected, "{method} {uri}");
    }
}

// ---------------------------------------------------------------------------------------------
// Policies on context and resources
// ---------------------------------------------------------------------------------------------

const PREFIX_POLICY: &str = r#"
permit (principal, action == S3::Action::"ListObjectsV2", resource == S3::Bucket::"data")
when { context has prefix && context.prefix like "public/*" };

permit (principal, action == S3::Action::"GetObject", resource is S3::Object in S3::Bucket::"data")
when { resource.key like "public/*" };
"#;

#[test]
fn prefix_restricted_listing_with_context_prefix() {
    let authz = inline(PREFIX_POLICY).unwrap();
    for (prefix, expected) in [
        (Some("public/"), Decision::Allow),
        (Some("public/2024/"), Decision::Allow),
        (Some("public"), Decision::Deny),
        (Some("private/"), Decision::Deny),
        (Some(""), Decision::Deny),
        (Some("Public/"), Decision::Deny),
        // No prefix: `context has prefix` is false, a plain deny (no error, unlike Rego's
        // `startswith(null, ..)`).
        (None, Decision::Deny),
    ] {
        let list = bucket_input(&[], S3Operation::ListObjectsV2, prefix);
        assert_eq!(authz.authorize(&list).unwrap(), expected, "{prefix:?}");
    }
    // Another bucket is not `data`.
    let mut other = bucket_input(&[], S3Operation::ListObjectsV2, Some("public/"));
    other.bucket = Some("other".to_owned());
    assert_eq!(authz.authorize(&other).unwrap(), Decision::Deny);
}

#[test]
fn key_restricted_reads_with_the_object_key_attribute() {
    let authz = inline(PREFIX_POLICY).unwrap();
    let mut get = input(&[], S3Operation::GetObject);
    for (key, expected) in [
        ("public/a.txt", Decision::Allow),
        // Cedar's `*` crosses `/`.
        ("public/a/b.txt", Decision::Allow),
        ("public/../secret", Decision::Allow),
        ("secret/a.txt", Decision::Deny),
        ("publicx/a", Decision::Deny),
    ] {
        get.key = Some(key.to_owned());
        assert_eq!(authz.authorize(&get).unwrap(), expected, "{key}");
    }
    // A bucket resource never matches `resource is S3::Object`.
    let bucket = bucket_input(&[], S3Operation::GetObject, None);
    assert_eq!(authz.authorize(&bucket).unwrap(), Decision::Deny);
}

const COPY_POLICY: &str = r#"
// Readers may read anything under public/ in bucket src.
permit (principal in S3::Group::"reader", action == S3::Action::"GetObject", resource in S3::Bucket::"src")
when { resource is S3::Object && resource.key like "public/*" };

// Readers may copy into bucket dst, but only from bucket src.
permit (principal in S3::Group::"reader", action == S3::Action::"CopyObject", resource in S3::Bucket::"dst")
when { context has source_bucket && context.source_bucket == "src" };
"#;

fn copy_inputs(source: &str) -> (AuthzInput, AuthzInput) {
    let parser = S3RequestParser::new();
    let uri: Uri = "/dst/copy.txt".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-copy-source", source.parse().unwrap());
    let s3 = parser.parse(&Method::PUT, &uri, &headers).unwrap();
    assert_eq!(s3.operation, S3Operation::CopyObject);
    let resources = s3.resources();
    let reader = principal("alice", &["reader"]);
    (
        AuthzInput::for_resource(&reader, &s3, &Method::PUT, &resources[0], 0),
        AuthzInput::for_resource(&reader, &s3, &Method::PUT, &resources[1], 1),
    )
}

#[test]
fn copy_source_policy_with_context_source_bucket() {
    let authz = inline(COPY_POLICY).unwrap();

    let (dst, src) = copy_inputs("/src/public/a%20b.txt");
    assert_eq!(
        dst.source,
        Some(SourceObject {
            bucket: "src".to_owned(),
            key: "public/a b.txt".to_owned()
        })
    );
    assert_eq!(authz.authorize(&dst).unwrap(), Decision::Allow);
    assert_eq!(authz.authorize(&src).unwrap(), Decision::Allow);

    // A source outside public/: the destination is fine, the source read is not.
    let (dst, src) = copy_inputs("/src/secret/a.txt");
    assert_eq!(authz.authorize(&dst).unwrap(), Decision::Allow);
    assert_eq!(authz.authorize(&src).unwrap(), Decision::Deny);

    // A source in another bucket: the destination's decision reads `source_bucket`.
    let (dst, _) = copy_inputs("/other/public/a.txt");
    assert_eq!(authz.authorize(&dst).unwrap(), Decision::Deny);

    // A plain PutObject has no source: denied.
    let mut put = input(&["reader"], S3Operation::CopyObject);
    put.bucket = Some("dst".to_owned());
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Deny);
}

#[test]
fn context_carries_auth_iam_action_version_and_source_ip() {
    let authz = inline(
        r#"permit (principal == S3::User::"alice", action in S3::Action::"read", resource)
when {
    context.auth == "jwt" &&
    context.iam_action == "s3:GetObjectVersion" &&
    context has version_id && context.version_id == "v1" &&
    context has source_ip && context.source_ip == "192.0.2.1"
};"#,
    )
    .unwrap();
    let mut get = input(&[], S3Operation::GetObject);
    get.auth = "jwt";
    get.iam_action = "s3:GetObjectVersion".to_owned();
    get.version_id = Some("v1".to_owned());
    get.source_ip = Some("192.0.2.1".to_owned());
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    for change in 0..4 {
        let mut other = get.clone();
        match change {
            0 => other.auth = "sigv4",
            1 => other.version_id = None,
            2 => other.source_ip = None,
            _ => other.user = "bob".to_owned(),
        }
        assert_eq!(authz.authorize(&other).unwrap(), Decision::Deny, "{change}");
    }
}

#[test]
fn forbid_overrides_permit() {
    let authz = inline(
        r#"permit (principal in S3::Group::"admin", action, resource);
forbid (principal, action in S3::Action::"write", resource in S3::Bucket::"archive");"#,
    )
    .unwrap();
    let mut put = input(&["admin"], S3Operation::PutObject);
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Allow);
    put.bucket = Some("archive".to_owned());
    assert_eq!(authz.authorize(&put).unwrap(), Decision::Deny);
    let mut get = input(&["admin"], S3Operation::GetObject);
    get.bucket = Some("archive".to_owned());
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
}

#[test]
fn list_buckets_is_asked_about_the_service_bucket() {
    let authz = inline(r#"permit (principal, action, resource == S3::Bucket::"*");"#).unwrap();
    assert_eq!(
        authz
            .authorize(&service_input(&[], S3Operation::ListBuckets))
            .unwrap(),
        Decision::Allow
    );
    assert_eq!(
        authz
            .authorize(&bucket_input(&[], S3Operation::HeadBucket, None))
            .unwrap(),
        Decision::Deny
    );
}

#[test]
fn an_action_the_schema_does_not_know_is_an_engine_error() {
    let authz = CedarAuthorizer::seed().unwrap();
    let mut unknown = input(&["admin"], S3Operation::GetObject);
    unknown.action = "Unknown".to_owned();
    assert!(matches!(
        authz.authorize(&unknown),
        Err(AuthzError::Engine(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Loading and reloading
// ---------------------------------------------------------------------------------------------

#[test]
fn policies_failing_schema_validation_are_refused() {
    for (policy, expected) in [
        // An optional context attribute read without `has`.
        (
            r#"permit (principal, action, resource) when { context.prefix like "a*" };"#,
            "prefix",
        ),
        // An action that is not an operation.
        (
            r#"permit (principal, action == S3::Action::"Frobnicate", resource);"#,
            "Frobnicate",
        ),
        // An entity type the schema does not have.
        (
            r#"permit (principal in S3::Team::"ops", action, resource);"#,
            "Team",
        ),
        // A context attribute the schema does not have.
        (
            r#"permit (principal, action, resource) when { context.tenant == "t1" };"#,
            "tenant",
        ),
        // `key` is an attribute of objects only.
        (
            r#"permit (principal, action, resource) when { resource.key == "a" };"#,
            "key",
        ),
        // A type error.
        (
            "permit (principal, action, resource) when { context.auth == 1 };",
            "Long",
        ),
    ] {
        let (source_name, message) = expect_policy_load(inline(policy));
        assert_eq!(source_name, "test.cedar", "{policy}");
        assert!(message.contains(expected), "{policy}: {message}");
        // The validator reports a mistake once per action: those collapse into one.
        assert!(message.len() < 300, "{policy}: {message}");
    }
}

#[test]
fn a_syntax_error_fails_construction_with_the_source_name() {
    let (source_name, message) = expect_policy_load(CedarAuthorizer::from_sources([
        (
            "ok.cedar".to_owned(),
            "permit (principal, action, resource);".to_owned(),
        ),
        (
            "broken.cedar".to_owned(),
            "permit (principal, action;\nforbid (principal) when { 1 + };".to_owned(),
        ),
    ]));
    assert_eq!(source_name, "broken.cedar");
    // Every parse error of the file, not only the first.
    assert_eq!(
        message, "unexpected token `;`; unexpected token `}`",
        "{message}"
    );
}

#[test]
fn templates_are_refused() {
    let (_, message) = expect_policy_load(inline(
        "permit (principal == ?principal, action, resource);",
    ));
    assert!(message.contains("template"), "{message}");
}

#[test]
fn no_policy_at_all_fails_construction() {
    expect_policy_load(CedarAuthorizer::from_sources(Vec::<(String, String)>::new()));
    expect_policy_load(CedarAuthorizer::from_files(Vec::<PathBuf>::new()));
}

#[test]
fn a_missing_file_fails_construction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.cedar");
    let (source_name, _) = expect_policy_load(CedarAuthorizer::from_files([path.clone()]));
    assert_eq!(source_name, path.display().to_string());
}

#[test]
fn an_empty_policy_set_denies_everything() {
    let authz = inline("// nothing\n").unwrap();
    assert_eq!(
        authz
            .authorize(&input(&["admin"], S3Operation::GetObject))
            .unwrap(),
        Decision::Deny
    );
}

const READERS_READ: &str =
    r#"permit (principal in S3::Group::"reader", action == S3::Action::"GetObject", resource);"#;

const NOBODY: &str = "// no policy: everything is denied\n";

#[test]
fn reload_swaps_in_the_new_policy_and_keeps_the_old_one_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.cedar");
    std::fs::write(&path, READERS_READ).unwrap();
    let authz = CedarAuthorizer::from_files([path.clone()]).unwrap();
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
    std::fs::write(&path, "permit (principal, action,\n").unwrap();
    let source_name = match authz.reload() {
        Err(AuthzError::PolicyLoad { source_name, .. }) => source_name,
        other => panic!("expected PolicyLoad, got {other:?}"),
    };
    assert_eq!(source_name, path.display().to_string());
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);

    // So does a policy that parses but fails validation.
    std::fs::write(
        &path,
        r#"permit (principal, action == S3::Action::"GetObjects", resource);"#,
    )
    .unwrap();
    assert!(matches!(authz.reload(), Err(AuthzError::PolicyLoad { .. })));
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);

    // And a file that disappeared.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(authz.reload(), Err(AuthzError::PolicyLoad { .. })));
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
}

#[test]
fn several_files_are_one_policy_set() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.cedar");
    let b = dir.path().join("b.cedar");
    // Both files' policies get the same default id (`policy0`): ids are made unique per file.
    std::fs::write(&a, READERS_READ).unwrap();
    std::fs::write(
        &b,
        r#"forbid (principal, action, resource in S3::Bucket::"secret");"#,
    )
    .unwrap();
    let authz = CedarAuthorizer::from_files([a, b.clone()]).unwrap();
    let mut get = input(&["reader"], S3Operation::GetObject);
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
    get.bucket = Some("secret".to_owned());
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Deny);
    std::fs::write(&b, NOBODY).unwrap();
    authz.reload().unwrap();
    assert_eq!(authz.authorize(&get).unwrap(), Decision::Allow);
}

#[test]
fn reload_of_an_inline_policy_keeps_it() {
    let authz = CedarAuthorizer::seed().unwrap();
    assert!(authz.files().is_empty());
    authz.reload().unwrap();
    assert_eq!(
        authz
            .authorize(&input(&["reader"], S3Operation::GetObject))
            .unwrap(),
        Decision::Allow
    );
}

// ---------------------------------------------------------------------------------------------
// AuthzLayer with Cedar
// ---------------------------------------------------------------------------------------------

/// `S3RequestLayer` → principal → `AuthzLayer(CedarAuthorizer::seed())` → an inner service
/// answering `inner`; returns the status and body.
async fn send_seed(principal: Principal, req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let svc = ServiceBuilder::new()
        .layer(S3RequestLayer::new().virtual_host_domain("s3.local"))
        .map_request(move |mut req: Request<Full<Bytes>>| {
            req.extensions_mut().insert(principal.clone());
            req
        })
        .layer(AuthzLayer::new(CedarAuthorizer::seed().unwrap()))
        .service(service_fn(
            |req: Request<AuthzBody<Full<Bytes>>>| async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, Bytes::from_static(b"hello"));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            },
        ));
    let response = svc.oneshot(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn put(uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header(http::header::HOST, "s3.local")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap()
}

#[tokio::test]
async fn the_layer_with_cedar_denies_a_reader_put() {
    let (status, body) = send_seed(principal("alice", &["reader"]), put("/data/a.txt")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(body.contains("<Resource>/data/a.txt</Resource>"), "{body}");
}

#[tokio::test]
async fn the_layer_with_cedar_lets_an_admin_put() {
    let (status, body) = send_seed(principal("root", &["admin"]), put("/data/a.txt")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "inner");
}
