//! `AuthzLayer` in a tower stack: `S3RequestLayer` → a layer inserting the `Principal` →
//! `AuthzLayer` → an inner service recording what reached it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use s3_authz::{
    AllowAll, Authorizer, AuthzBody, AuthzInput, AuthzLayer, Decision, RegoAuthorizer, SourceObject,
};
use s3_core::{
    Addressing, AuthMethod, ClientAddr, Principal, S3Operation, S3Request, S3RequestLayer,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// What the inner service received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    s3: S3Request,
    body: Bytes,
}

/// Records every input the layer asks about, then asks the wrapped authorizer.
struct Recording {
    inner: Arc<dyn Authorizer>,
    inputs: Arc<Mutex<Vec<AuthzInput>>>,
}

impl Authorizer for Recording {
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, s3_authz::AuthzError> {
        self.inputs.lock().unwrap().push(input.clone());
        self.inner.authorize(input)
    }

    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
}

/// One tracing event: its target and fields (strings as sent, other values `Debug`).
#[derive(Debug, Clone)]
struct Event {
    target: String,
    fields: BTreeMap<String, String>,
}

impl Event {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

struct Capture(Arc<Mutex<Vec<Event>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Visitor<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Visitor<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(Event {
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
}

/// The result of one request through the stack.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    /// Requests that reached the inner service.
    inner: Vec<Seen>,
    /// Inputs the authorizer was asked about, in order.
    inputs: Vec<AuthzInput>,
    /// Events with target `s3_tower::audit`.
    audit: Vec<Event>,
}

impl Outcome {
    /// The `<Code>` of an S3 XML error body.
    fn code(&self) -> Option<&str> {
        let start = self.body.find("<Code>")? + "<Code>".len();
        let end = self.body[start..].find("</Code>")? + start;
        Some(&self.body[start..end])
    }

    fn assert_denied(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{self:#?}");
        assert_eq!(self.code(), Some("AccessDenied"), "{self:#?}");
        assert!(
            self.body.contains("<Message>Access Denied</Message>"),
            "{}",
            self.body
        );
        assert!(
            self.inner.is_empty(),
            "the inner service was called: {self:#?}"
        );
        assert_eq!(
            self.headers.get(http::header::CONTENT_TYPE).unwrap(),
            "application/xml"
        );
        assert!(self.headers.contains_key("x-amz-request-id"));
    }

    fn assert_allowed(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:#?}");
        assert_eq!(self.body, "inner");
        assert_eq!(self.inner.len(), 1, "{self:#?}");
    }

    /// Exactly one audit event, with this decision, subject and operation.
    fn assert_audit(&self, decision: &str, subject: Option<&str>, operation: Option<&str>) {
        assert_eq!(self.audit.len(), 1, "{:#?}", self.audit);
        let event = &self.audit[0];
        assert_eq!(event.target, "s3_tower::audit");
        assert_eq!(event.get("decision"), Some(decision), "{event:#?}");
        assert_eq!(event.get("subject"), subject, "{event:#?}");
        assert_eq!(event.get("operation"), operation, "{event:#?}");
        assert_eq!(
            event.get("message"),
            Some("authorization decision"),
            "{event:#?}"
        );
        assert!(event.get("request_id").is_some(), "{event:#?}");
        assert!(event.get("elapsed_us").is_some(), "{event:#?}");
        if decision == "allow" {
            assert_eq!(event.get("reason"), None, "{event:#?}");
        } else {
            assert!(event.get("reason").is_some(), "{event:#?}");
        }
    }

    fn keys_asked(&self) -> Vec<Option<&str>> {
        self.inputs.iter().map(|i| i.key.as_deref()).collect()
    }
}

struct Stack {
    authorizer: Arc<dyn Authorizer>,
    principal: Option<Principal>,
    pass_unknown: bool,
    delete_body_limit: Option<usize>,
}

impl Stack {
    fn new(authorizer: impl Authorizer) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
            principal: None,
            pass_unknown: false,
            delete_body_limit: None,
        }
    }

    fn seed() -> Self {
        Self::new(RegoAuthorizer::seed().unwrap())
    }

    fn policy(text: &str) -> Self {
        Self::new(
            RegoAuthorizer::from_sources(
                [("test.rego".to_owned(), text.to_owned())],
                "data.s3.allow",
            )
            .unwrap(),
        )
    }

    fn principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    fn pass_unknown(mut self) -> Self {
        self.pass_unknown = true;
        self
    }

    fn delete_body_limit(mut self, limit: usize) -> Self {
        self.delete_body_limit = Some(limit);
        self
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Outcome {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inputs = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));

        let mut authz = AuthzLayer::new(Recording {
            inner: Arc::clone(&self.authorizer),
            inputs: Arc::clone(&inputs),
        });
        if let Some(limit) = self.delete_body_limit {
            authz = authz.delete_body_limit(limit);
        }
        let principal = self.principal.clone();
        let inner_seen = Arc::clone(&seen);
        let svc = ServiceBuilder::new()
            .layer(
                S3RequestLayer::new()
                    .virtual_host_domain("s3.local")
                    .pass_unknown(self.pass_unknown),
            )
            .map_request(move |mut req: Request<Full<Bytes>>| {
                if let Some(principal) = &principal {
                    req.extensions_mut().insert(principal.clone());
                }
                req
            })
            .layer(authz)
            .service(service_fn(move |req: Request<AuthzBody<Full<Bytes>>>| {
                let seen = Arc::clone(&inner_seen);
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    seen.lock().unwrap().push(Seen {
                        method: parts.method,
                        s3: parts.extensions.get::<S3Request>().cloned().unwrap(),
                        body,
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }
            }));

        let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&events)));
        let guard = tracing::subscriber::set_default(subscriber);
        let response = svc.oneshot(req).await.unwrap();
        drop(guard);

        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let audit = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target == "s3_tower::audit")
            .cloned()
            .collect();
        Outcome {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
            inner: seen.lock().unwrap().clone(),
            inputs: inputs.lock().unwrap().clone(),
            audit,
        }
    }
}

fn principal(subject: &str, groups: &[&str]) -> Principal {
    Principal {
        subject: subject.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: serde_json::Value::Null,
        auth: AuthMethod::SigV4,
        session: None,
    }
}

fn reader() -> Principal {
    principal("alice", &["reader"])
}

fn admin() -> Principal {
    principal("root", &["admin"])
}

fn nobody() -> Principal {
    principal("eve", &[])
}

/// A path-style request to `s3.local`.
fn request(method: Method, uri: &str) -> Request<Full<Bytes>> {
    request_with_body(method, uri, Bytes::new())
}

fn request_with_body(method: Method, uri: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, "s3.local")
        .body(Full::new(body.into()))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The seed policy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reader_may_get() {
    let out = Stack::seed()
        .principal(reader())
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::GetObject);
    assert_eq!(out.inner[0].method, Method::GET);
    assert_eq!(out.inputs.len(), 1);
    assert_eq!(out.inputs[0].user, "alice");
    assert_eq!(out.inputs[0].auth, "sigv4");
    assert_eq!(out.inputs[0].path.as_deref(), Some("data/a.txt"));
    out.assert_audit("allow", Some("alice"), Some("GetObject"));
    let event = &out.audit[0];
    assert_eq!(event.get("engine"), Some("rego"));
    assert_eq!(event.get("auth"), Some("sigv4"));
    assert_eq!(event.get("resources"), Some("s3:GetObject:data/a.txt"));
}

#[tokio::test]
async fn reader_may_not_put() {
    let out = Stack::seed()
        .principal(reader())
        .send(request_with_body(Method::PUT, "/data/a.txt", "hello"))
        .await;
    out.assert_denied();
    assert!(
        out.body.contains("<Resource>/data/a.txt</Resource>"),
        "{}",
        out.body
    );
    assert_eq!(out.inputs.len(), 1);
    assert_eq!(out.inputs[0].action, "PutObject");
    out.assert_audit("deny", Some("alice"), Some("PutObject"));
    assert_eq!(
        out.audit[0].get("reason"),
        Some("access denied to data/a.txt")
    );
}

#[tokio::test]
async fn admin_may_put_and_the_body_streams_through() {
    let out = Stack::seed()
        .principal(admin())
        .send(request_with_body(Method::PUT, "/data/a.txt", "hello"))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::PutObject);
    assert_eq!(out.inner[0].body, "hello");
    out.assert_audit("allow", Some("root"), Some("PutObject"));
}

#[tokio::test]
async fn a_denied_head_has_no_body() {
    let out = Stack::seed()
        .principal(nobody())
        .send(request(Method::HEAD, "/data/a.txt"))
        .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(out.body, "");
    assert!(out.inner.is_empty());
    assert_eq!(
        out.headers.get(http::header::CONTENT_TYPE).unwrap(),
        "application/xml"
    );
    assert!(out.headers.contains_key("x-amz-request-id"));
    out.assert_audit("deny", Some("eve"), Some("HeadObject"));

    // The same HEAD by a reader is allowed.
    let out = Stack::seed()
        .principal(reader())
        .send(request(Method::HEAD, "/data/a.txt"))
        .await;
    out.assert_allowed();
}

#[tokio::test]
async fn reader_may_list_buckets_but_not_create_one() {
    let stack = Stack::seed().principal(reader());
    let out = stack.send(request(Method::GET, "/")).await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].action, "ListBuckets");
    assert_eq!(out.inputs[0].bucket, None);
    assert_eq!(out.inputs[0].path, None);
    out.assert_audit("allow", Some("alice"), Some("ListBuckets"));
    assert_eq!(out.audit[0].get("resources"), Some("s3:ListAllMyBuckets:*"));

    let out = stack.send(request(Method::PUT, "/newbucket")).await;
    out.assert_denied();
    assert!(
        out.body.contains("<Resource>/newbucket</Resource>"),
        "{}",
        out.body
    );
    out.assert_audit("deny", Some("alice"), Some("CreateBucket"));
}

// ---------------------------------------------------------------------------------------------
// Missing principal, unparsed requests, unknown operations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_principal_is_denied_without_asking_the_policy() {
    let out = Stack::new(AllowAll)
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_denied();
    assert!(out.inputs.is_empty());
    out.assert_audit("deny", None, Some("GetObject"));
    assert_eq!(
        out.audit[0].get("reason"),
        Some("no authenticated principal")
    );
    assert_eq!(out.audit[0].get("engine"), Some("allow-all"));
}

#[tokio::test]
async fn no_s3_request_is_denied() {
    // AuthzLayer without S3RequestLayer in front of it.
    let called = Arc::new(Mutex::new(0_u32));
    let inner_called = Arc::clone(&called);
    let svc = ServiceBuilder::new()
        .map_request(|mut req: Request<Full<Bytes>>| {
            req.extensions_mut().insert(admin());
            req
        })
        .layer(AuthzLayer::new(AllowAll))
        .service(service_fn(move |_req: Request<AuthzBody<Full<Bytes>>>| {
            *inner_called.lock().unwrap() += 1;
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        }));
    let response = svc
        .oneshot(request(Method::GET, "/data/a.txt"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert_eq!(*called.lock().unwrap(), 0);
}

#[tokio::test]
async fn unknown_operations_are_answered_by_s3_request_layer() {
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(request(Method::PATCH, "/data/a.txt"))
        .await;
    assert_eq!(out.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(out.code(), Some("NotImplemented"));
    assert!(out.inner.is_empty());
    assert!(out.inputs.is_empty());
    // AuthzLayer never saw it.
    assert!(out.audit.is_empty(), "{:#?}", out.audit);
}

#[tokio::test]
async fn passed_unknown_operations_are_denied_even_by_allow_all() {
    for stack in [Stack::new(AllowAll), Stack::seed()] {
        let out = stack
            .principal(admin())
            .pass_unknown()
            .send(request(Method::PATCH, "/data/a.txt"))
            .await;
        out.assert_denied();
        assert!(out.inputs.is_empty());
        out.assert_audit("deny", Some("root"), Some("Unknown"));
        assert_eq!(out.audit[0].get("reason"), Some("unknown operation"));
    }
}

// ---------------------------------------------------------------------------------------------
// CopyObject
// ---------------------------------------------------------------------------------------------

/// Writes to `dst` only by copy from bucket `src`; reads only under `public/`.
const COPY_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action == "CopyObject"
    input.bucket == "dst"
    input.source.bucket == "src"
}
allow if {
    input.action == "GetObject"
    startswith(input.key, "public/")
}
"#;

fn copy(source: &str) -> Request<Full<Bytes>> {
    let mut req = request(Method::PUT, "/dst/copy.txt");
    req.headers_mut()
        .insert("x-amz-copy-source", source.parse().unwrap());
    req
}

#[tokio::test]
async fn copy_from_a_denied_source_is_denied() {
    let out = Stack::policy(COPY_POLICY)
        .principal(reader())
        .send(copy("/src/secret/a.txt"))
        .await;
    out.assert_denied();
    // The destination is asked first (and allowed), then the source (denied).
    assert_eq!(out.inputs.len(), 2);
    assert_eq!(out.inputs[0].action, "CopyObject");
    assert_eq!(out.inputs[1].action, "GetObject");
    assert_eq!(out.inputs[1].path.as_deref(), Some("src/secret/a.txt"));
    out.assert_audit("deny", Some("alice"), Some("CopyObject"));
    assert_eq!(
        out.audit[0].get("reason"),
        Some("access denied to src/secret/a.txt")
    );
    assert_eq!(
        out.audit[0].get("resources"),
        Some("s3:PutObject:dst/copy.txt,s3:GetObject:src/secret/a.txt")
    );
}

#[tokio::test]
async fn copy_from_an_allowed_source_is_allowed() {
    let out = Stack::policy(COPY_POLICY)
        .principal(reader())
        .send(copy("src/public/a%20b.txt"))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::CopyObject);
    let [dst, src] = &out.inputs[..] else {
        panic!("{:#?}", out.inputs)
    };
    assert_eq!(dst.action, "CopyObject");
    assert_eq!(dst.iam_action, "s3:PutObject");
    assert_eq!(dst.operation, "CopyObject");
    assert_eq!(dst.bucket.as_deref(), Some("dst"));
    assert_eq!(dst.key.as_deref(), Some("copy.txt"));
    assert_eq!(
        dst.source,
        Some(SourceObject {
            bucket: "src".to_owned(),
            key: "public/a b.txt".to_owned(),
        })
    );
    assert_eq!(src.action, "GetObject");
    assert_eq!(src.iam_action, "s3:GetObject");
    assert_eq!(src.operation, "CopyObject");
    assert_eq!(src.bucket.as_deref(), Some("src"));
    assert_eq!(src.key.as_deref(), Some("public/a b.txt"));
    assert_eq!(src.source, None);
    out.assert_audit("allow", Some("alice"), Some("CopyObject"));
}

#[tokio::test]
async fn the_policy_reads_the_copy_source() {
    // A readable object, but from a bucket the destination rule does not accept: the
    // destination's decision depends on `input.source`.
    let out = Stack::policy(COPY_POLICY)
        .principal(reader())
        .send(copy("/other/public/a.txt"))
        .await;
    out.assert_denied();
    assert_eq!(
        out.inputs.len(),
        1,
        "the source is not asked once the destination is denied"
    );
    assert_eq!(
        out.inputs[0].source.as_ref().map(|s| s.bucket.as_str()),
        Some("other")
    );
    out.assert_audit("deny", Some("alice"), Some("CopyObject"));

    // A plain PutObject to `dst` (no source) is denied by the same rule.
    let out = Stack::policy(COPY_POLICY)
        .principal(reader())
        .send(request_with_body(Method::PUT, "/dst/copy.txt", "x"))
        .await;
    out.assert_denied();
}

#[tokio::test]
async fn a_versioned_copy_source_is_read_as_get_object_with_its_version() {
    let out = Stack::policy(COPY_POLICY)
        .principal(reader())
        .send(copy("/src/public/a.txt?versionId=v1"))
        .await;
    // `action` is the operation without version, as for the main resource; the version
    // shows in `iam_action` and `version_id`.
    out.assert_allowed();
    assert_eq!(out.inputs[1].action, "GetObject");
    assert_eq!(out.inputs[1].iam_action, "s3:GetObjectVersion");
    assert_eq!(out.inputs[1].version_id.as_deref(), Some("v1"));
}

// ---------------------------------------------------------------------------------------------
// DeleteObjects
// ---------------------------------------------------------------------------------------------

/// Deletes anything but keys under `keep/`.
const KEEP_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action in {"DeleteObject", "DeleteObjectVersion"}
    not startswith(input.key, "keep/")
}
"#;

/// Deletes only keys under `tmp/`.
const TMP_ONLY_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action in {"DeleteObject", "DeleteObjectVersion"}
    startswith(input.key, "tmp/")
}
"#;

fn delete_objects(body: &str) -> Request<Full<Bytes>> {
    request_with_body(Method::POST, "/data?delete", body.to_owned())
}

fn delete_body(objects: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>false</Quiet>{objects}</Delete>"
    )
}

#[tokio::test]
async fn one_denied_key_refuses_the_whole_delete() {
    let body = delete_body(
        "<Object><Key>a.txt</Key></Object>\
         <Object><Key>keep/x</Key></Object>\
         <Object><Key>b.txt</Key></Object>",
    );
    let out = Stack::policy(KEEP_POLICY)
        .principal(reader())
        .send(delete_objects(&body))
        .await;
    out.assert_denied();
    assert!(
        out.body.contains("<Resource>/data</Resource>"),
        "{}",
        out.body
    );
    // Asked key by key until the first denial; the bucket itself is not asked.
    assert_eq!(out.keys_asked(), [Some("a.txt"), Some("keep/x")]);
    assert!(out.inputs.iter().all(|i| i.action == "DeleteObject"
        && i.iam_action == "s3:DeleteObject"
        && i.operation == "DeleteObjects"
        && i.method == "POST"
        && i.bucket.as_deref() == Some("data")));
    out.assert_audit("deny", Some("alice"), Some("DeleteObjects"));
    assert_eq!(
        out.audit[0].get("reason"),
        Some("access denied to data/keep/x")
    );
    assert_eq!(
        out.audit[0].get("resources"),
        Some("s3:DeleteObject:data/(keys in body)")
    );
}

#[tokio::test]
async fn an_allowed_delete_reaches_the_inner_service_with_the_same_body() {
    let body = delete_body(
        "<Object><Key>a.txt</Key></Object>\
         <Object><Key>dir/b &amp; c.txt</Key><VersionId>v1</VersionId></Object>",
    );
    let out = Stack::policy(KEEP_POLICY)
        .principal(reader())
        .send(delete_objects(&body))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::DeleteObjects);
    assert_eq!(out.inner[0].method, Method::POST);
    assert_eq!(out.inner[0].body, body.as_bytes());
    assert_eq!(out.keys_asked(), [Some("a.txt"), Some("dir/b & c.txt")]);
    assert_eq!(out.inputs[0].action, "DeleteObject");
    assert_eq!(out.inputs[0].version_id, None);
    assert_eq!(out.inputs[1].action, "DeleteObject");
    assert_eq!(out.inputs[1].iam_action, "s3:DeleteObjectVersion");
    assert_eq!(out.inputs[1].version_id.as_deref(), Some("v1"));
    assert_eq!(out.inputs[1].path.as_deref(), Some("data/dir/b & c.txt"));
    out.assert_audit("allow", Some("alice"), Some("DeleteObjects"));
}

#[tokio::test]
async fn a_malformed_delete_body_is_malformed_xml() {
    for body in [
        "not xml".to_owned(),
        delete_body(""),
        delete_body("<Object></Object>"),
        "<Delete><Object><Key>a</Key></Object>".to_owned(),
        String::new(),
    ] {
        let out = Stack::new(AllowAll)
            .principal(admin())
            .send(delete_objects(&body))
            .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{body}: {out:#?}");
        assert_eq!(out.code(), Some("MalformedXML"), "{body}");
        assert!(out.inner.is_empty());
        assert!(out.inputs.is_empty());
        out.assert_audit("deny", Some("root"), Some("DeleteObjects"));
    }
}

#[tokio::test]
async fn a_delete_key_with_a_dot_segment_refuses_the_batch() {
    for key in ["../other/a", "public/./a", "a/..", "public/%2E%2E/x/.."] {
        // `%2E` is not decoded in XML: only the last key's final `..` is a segment.
        let body = delete_body(&format!(
            "<Object><Key>public/ok</Key></Object><Object><Key>{key}</Key></Object>"
        ));
        let out = Stack::new(AllowAll)
            .principal(admin())
            .send(delete_objects(&body))
            .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{key}: {out:#?}");
        assert_eq!(out.code(), Some("InvalidArgument"), "{key}");
        assert!(out.body.contains("path segment"), "{}", out.body);
        assert!(out.inner.is_empty() && out.inputs.is_empty(), "{key}");
        out.assert_audit("deny", Some("root"), Some("DeleteObjects"));
    }
    // Dots inside names are key bytes.
    let body = delete_body("<Object><Key>a..b/.c/...</Key></Object>");
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(delete_objects(&body))
        .await;
    out.assert_allowed();
    assert_eq!(out.keys_asked(), [Some("a..b/.c/...")]);
}

#[tokio::test]
async fn a_delete_key_over_1024_bytes_refuses_the_batch() {
    // As in a path: `KeyTooLongError`, before any key reaches the policy.
    let long = "k".repeat(s3_core::MAX_KEY_LEN + 1);
    let body = delete_body(&format!(
        "<Object><Key>public/ok</Key></Object><Object><Key>{long}</Key></Object>"
    ));
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(delete_objects(&body))
        .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST, "{out:#?}");
    assert_eq!(out.code(), Some("KeyTooLongError"));
    assert!(out.body.contains("Your key is too long"), "{}", out.body);
    assert!(out.inner.is_empty() && out.inputs.is_empty());
    out.assert_audit("deny", Some("root"), Some("DeleteObjects"));
    // 1024 bytes pass.
    let key = "k".repeat(s3_core::MAX_KEY_LEN);
    let body = delete_body(&format!("<Object><Key>{key}</Key></Object>"));
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(delete_objects(&body))
        .await;
    out.assert_allowed();
    assert_eq!(out.keys_asked(), [Some(key.as_str())]);
}

/// Windows and servlet spellings of a dot segment refuse the batch too.
#[tokio::test]
async fn a_delete_key_with_a_disguised_dot_segment_refuses_the_batch() {
    for key in [
        "public/.. /private/a",
        "public/ ../a",
        "public/. /a",
        "public/..;/a",
        "a/.;x",
    ] {
        let body = delete_body(&format!("<Object><Key>{key}</Key></Object>"));
        let out = Stack::new(AllowAll)
            .principal(admin())
            .send(delete_objects(&body))
            .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{key}: {out:#?}");
        assert_eq!(out.code(), Some("InvalidArgument"), "{key}");
        assert!(out.inner.is_empty() && out.inputs.is_empty(), "{key}");
    }
}

/// `n` `<Object>`s with keys `k0`, `k1`...
fn numbered_objects(n: usize) -> String {
    use std::fmt::Write as _;
    (0..n).fold(String::new(), |mut out, i| {
        let _ = write!(out, "<Object><Key>k{i}</Key></Object>");
        out
    })
}

#[tokio::test]
async fn more_than_1000_keys_is_malformed_xml() {
    let objects = numbered_objects(1001);
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(delete_objects(&delete_body(&objects)))
        .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert_eq!(out.code(), Some("MalformedXML"));
    assert!(out.inputs.is_empty());

    let objects = numbered_objects(1000);
    let out = Stack::new(AllowAll)
        .principal(admin())
        .send(delete_objects(&delete_body(&objects)))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs.len(), 1000);
}

#[tokio::test]
async fn a_delete_body_over_the_limit_is_entity_too_large() {
    let body = delete_body(&"<Object><Key>a.txt</Key></Object>".repeat(5));
    assert!(body.len() > 100);
    let out = Stack::new(AllowAll)
        .principal(admin())
        .delete_body_limit(100)
        .send(delete_objects(&body))
        .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert_eq!(out.code(), Some("EntityTooLarge"));
    assert!(out.inner.is_empty());
    assert!(out.inputs.is_empty());
    out.assert_audit("deny", Some("root"), Some("DeleteObjects"));

    // Exactly at the limit is read.
    let body = "<Delete><Object><Key>a</Key></Object></Delete>";
    let out = Stack::new(AllowAll)
        .principal(admin())
        .delete_body_limit(body.len())
        .send(delete_objects(body))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].body, body);
}

#[tokio::test]
async fn delete_body_keys_are_xml_decoded_once() {
    // Character references and CDATA are the key's characters: `keep/x` spelled otherwise is
    // still `keep/x`.
    for spelled in [
        "<Key>&#107;eep/x</Key>",
        "<Key>keep&#x2F;x</Key>",
        "<Key><![CDATA[keep/x]]></Key>",
    ] {
        let body = delete_body(&format!(
            "<Object><Key>a.txt</Key></Object><Object>{spelled}</Object>"
        ));
        let out = Stack::policy(KEEP_POLICY)
            .principal(reader())
            .send(delete_objects(&body))
            .await;
        out.assert_denied();
        assert_eq!(
            out.keys_asked(),
            [Some("a.txt"), Some("keep/x")],
            "{spelled}"
        );
    }
    // `&amp;#107;` is the literal text `&#107;`, not `k`.
    let body = delete_body("<Object><Key>&amp;#107;eep/x</Key></Object>");
    let out = Stack::policy(KEEP_POLICY)
        .principal(reader())
        .send(delete_objects(&body))
        .await;
    out.assert_allowed();
    assert_eq!(out.keys_asked(), [Some("&#107;eep/x")]);
}

#[tokio::test]
async fn delete_body_keys_keep_their_whitespace() {
    // S3 keys may start or end with spaces and new lines, and the backend deletes ` tmp/a`
    // and `\ntmp/a\n`, neither of which is under `tmp/`: the policy must see them untrimmed
    // (a trimming parser would let a `tmp/`-only policy delete keys outside `tmp/`).
    let body = delete_body("<Object><Key> tmp/a</Key></Object>");
    let out = Stack::policy(TMP_ONLY_POLICY)
        .principal(reader())
        .send(delete_objects(&body))
        .await;
    assert_eq!(out.keys_asked(), [Some(" tmp/a")]);
    out.assert_denied();

    let body = delete_body("<Object><Key>\ntmp/a\n</Key></Object>");
    let out = Stack::policy(TMP_ONLY_POLICY)
        .principal(reader())
        .send(delete_objects(&body))
        .await;
    assert_eq!(out.keys_asked(), [Some("\ntmp/a\n")]);
    out.assert_denied();
}

#[tokio::test]
async fn a_delete_body_cannot_hide_keys_from_the_policy() {
    // Each of these bodies names `etc/passwd` to an XML reader that matches element local
    // names (as Go's encoding/xml, used by MinIO, does) or keeps the last duplicate. The
    // layer refuses them all as malformed, before asking the policy.
    for objects in [
        // A second Key in one Object.
        "<Object><Key>tmp/a</Key><Key>etc/passwd</Key></Object>",
        // A namespace-prefixed Object after a plain one.
        "<Object><Key>tmp/a</Key></Object>\
         <s3:Object xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <s3:Key>etc/passwd</s3:Key></s3:Object>",
        // A namespace-prefixed second Key.
        "<Object xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Key>tmp/a</Key><s3:Key>etc/passwd</s3:Key></Object>",
        // An element inside a Key.
        "<Object><Key>etc/<b/>tmp/a</Key></Object>",
        // Objects that are not consecutive (over-strict: S3 would accept this one, but no
        // SDK sends it).
        "<Object><Key>tmp/a</Key></Object><Quiet>true</Quiet><Object><Key>tmp/b</Key></Object>",
    ] {
        let out = Stack::policy(TMP_ONLY_POLICY)
            .principal(reader())
            .send(delete_objects(&delete_body(objects)))
            .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{objects}: {out:#?}");
        assert_eq!(out.code(), Some("MalformedXML"), "{objects}");
        assert!(out.inputs.is_empty(), "{objects}");
        assert!(out.inner.is_empty(), "{objects}");
    }

    // Comments, processing instructions and CDATA sections split a key's text; the key is
    // the concatenation, as any XML reader sees it.
    for objects in [
        "<Object><Key>etc/<!--x-->tmp/a</Key></Object>",
        "<Object><Key>etc/<?pi x?>tmp/a</Key></Object>",
        "<Object><Key>etc/<![CDATA[tmp/a]]></Key></Object>",
        "<Object><Key><![CDATA[etc/]]>tmp/a</Key></Object>",
    ] {
        let out = Stack::policy(TMP_ONLY_POLICY)
            .principal(reader())
            .send(delete_objects(&delete_body(objects)))
            .await;
        out.assert_denied();
        assert_eq!(out.keys_asked(), [Some("etc/tmp/a")], "{objects}");
    }
}

#[tokio::test]
async fn delete_body_elements_outside_the_schema_are_refused() {
    // Unknown elements are refused, not skipped: a backend parsing them otherwise could
    // delete `etc/passwd` without the policy having seen it.
    for objects in [
        "<Object><Key>tmp/a</Key></Object><Foo><Object><Key>etc/passwd</Key></Object></Foo>",
        "<Object><Key>tmp/a</Key><Foo><Key>etc/passwd</Key></Foo></Object>",
    ] {
        let body = delete_body(objects);
        let out = Stack::policy(TMP_ONLY_POLICY)
            .principal(reader())
            .send(delete_objects(&body))
            .await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{objects}");
        assert_eq!(out.code(), Some("MalformedXML"), "{objects}");
        assert!(out.inner.is_empty(), "{objects}");
        assert!(out.keys_asked().is_empty(), "{objects}");
    }
}

#[tokio::test]
async fn the_sdk_body_layout_is_accepted() {
    // AWS SDKs serialise the objects first, then Quiet, with the S3 namespace.
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Object><Key>tmp/a</Key></Object>\
        <Object><Key>tmp/b</Key><VersionId>3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo</VersionId></Object>\
        <Quiet>true</Quiet></Delete>";
    let out = Stack::policy(TMP_ONLY_POLICY)
        .principal(reader())
        .send(delete_objects(body))
        .await;
    out.assert_allowed();
    assert_eq!(out.keys_asked(), [Some("tmp/a"), Some("tmp/b")]);
    assert_eq!(
        out.inputs[1].version_id.as_deref(),
        Some("3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")
    );
    assert_eq!(out.inner[0].body, body);
}

// ---------------------------------------------------------------------------------------------
// Listings with a prefix
// ---------------------------------------------------------------------------------------------

const PUBLIC_LIST_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action == "ListObjectsV2"
    startswith(input.prefix, "public/")
}
"#;

#[tokio::test]
async fn listing_is_allowed_only_under_the_allowed_prefix() {
    let stack = Stack::policy(PUBLIC_LIST_POLICY).principal(reader());

    let out = stack
        .send(request(
            Method::GET,
            "/data?list-type=2&prefix=public/2024/",
        ))
        .await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::ListObjectsV2);
    assert_eq!(out.inputs.len(), 1);
    assert_eq!(out.inputs[0].prefix.as_deref(), Some("public/2024/"));
    assert_eq!(out.inputs[0].key, None);
    assert_eq!(out.inputs[0].path.as_deref(), Some("data"));
    assert_eq!(out.inputs[0].iam_action, "s3:ListBucket");
    out.assert_audit("allow", Some("alice"), Some("ListObjectsV2"));
    assert_eq!(
        out.audit[0].get("resources"),
        Some("s3:ListBucket:data/public/2024/*")
    );

    // Percent-encoded prefix: decoded once.
    let out = stack
        .send(request(Method::GET, "/data?list-type=2&prefix=public%2Fx"))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].prefix.as_deref(), Some("public/x"));

    let out = stack
        .send(request(Method::GET, "/data?list-type=2&prefix=private/"))
        .await;
    out.assert_denied();
    assert_eq!(out.inputs[0].prefix.as_deref(), Some("private/"));
    out.assert_audit("deny", Some("alice"), Some("ListObjectsV2"));

    let out = stack
        .send(request(Method::GET, "/data?list-type=2&prefix=public%252F"))
        .await;
    out.assert_denied();
    assert_eq!(out.inputs[0].prefix.as_deref(), Some("public%2F"));

    let out = stack
        .send(request(Method::GET, "/data?list-type=2&prefix="))
        .await;
    out.assert_denied();
    assert_eq!(out.inputs[0].prefix.as_deref(), Some(""));

    // No prefix: `input.prefix` is null; regorus reports a type error, which denies.
    let out = stack.send(request(Method::GET, "/data?list-type=2")).await;
    out.assert_denied();
    assert_eq!(out.inputs[0].prefix, None);
    out.assert_audit("deny", Some("alice"), Some("ListObjectsV2"));
    assert!(
        out.audit[0].get("reason").unwrap().contains("startswith"),
        "{:#?}",
        out.audit
    );
}

// ---------------------------------------------------------------------------------------------
// Addressing styles and key encodings
// ---------------------------------------------------------------------------------------------

/// Reads only under `public/`.
const PUBLIC_READ_POLICY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action == "GetObject"
    startswith(input.key, "public/")
}
"#;

#[tokio::test]
async fn virtual_host_and_path_style_name_the_same_object() {
    let stack = Stack::policy(PUBLIC_READ_POLICY).principal(reader());

    let vhost = Request::get("/secret/a.txt")
        .header(http::header::HOST, "data.s3.local")
        .body(Full::default())
        .unwrap();
    let out = stack.send(vhost).await;
    out.assert_denied();
    assert_eq!(out.inputs[0].bucket.as_deref(), Some("data"));
    assert_eq!(out.inputs[0].key.as_deref(), Some("secret/a.txt"));
    assert!(
        out.body.contains("<Resource>/data/secret/a.txt</Resource>"),
        "{}",
        out.body
    );

    let out = stack.send(request(Method::GET, "/data/secret/a.txt")).await;
    out.assert_denied();
    assert_eq!(out.inputs[0].bucket.as_deref(), Some("data"));
    assert_eq!(out.inputs[0].key.as_deref(), Some("secret/a.txt"));

    // Host with a port and upper case, and a fully qualified name.
    for host in ["DATA.S3.LOCAL:9000", "data.s3.local."] {
        let req = Request::get("/secret/a.txt")
            .header(http::header::HOST, host)
            .body(Full::default())
            .unwrap();
        let out = stack.send(req).await;
        out.assert_denied();
        assert_eq!(
            out.inputs[0].path.as_deref(),
            Some("data/secret/a.txt"),
            "{host}"
        );
    }

    // And the allowed object, both ways.
    let vhost = Request::get("/public/a.txt")
        .header(http::header::HOST, "data.s3.local")
        .body(Full::default())
        .unwrap();
    let out = stack.send(vhost).await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.addressing, Addressing::VirtualHosted);
    let out = stack.send(request(Method::GET, "/data/public/a.txt")).await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.addressing, Addressing::PathStyle);
}

#[tokio::test]
async fn keys_are_decoded_exactly_once_and_never_normalised() {
    let stack = Stack::policy(PUBLIC_READ_POLICY).principal(reader());
    for (path, key, allowed) in [
        ("/data/secret%2Fa", "secret/a", false),
        ("/data/public%2Fa", "public/a", true),
        ("/data/public//a", "public//a", true),
        ("/data/public/..a", "public/..a", true),
        // Double encoding: decoded once, `%2F` stays in the key.
        ("/data/secret%252Fa", "secret%2Fa", false),
        ("/data/public%252Fa", "public%2Fa", false),
        ("/data/%70ublic/a", "public/a", true),
        ("/data/public/a+b", "public/a+b", true),
    ] {
        let out = stack.send(request(Method::GET, path)).await;
        assert_eq!(out.keys_asked(), [Some(key)], "{path}");
        assert_eq!(
            out.inputs[0].path.as_deref(),
            Some(format!("data/{key}").as_str())
        );
        if allowed {
            out.assert_allowed();
            assert_eq!(out.inner[0].s3.key.as_deref(), Some(key), "{path}");
            // The raw path is kept for signatures and re-signing.
            assert_eq!(out.inner[0].s3.raw_path, path);
        } else {
            out.assert_denied();
        }
    }

    // A `.` or `..` segment, however spelled, is refused before any policy is asked: the
    // backend might resolve it to another object than the one decided on.
    for path in [
        "/data/public/..%2Fsecret/a",
        "/data/public/%2E%2E/secret/a",
        "/data/public/../secret/a",
        "/data/./public/a",
        "/public/../data/secret/a",
    ] {
        let out = stack.send(request(Method::GET, path)).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(out.code(), Some("InvalidArgument"), "{path}");
        assert!(out.inputs.is_empty() && out.inner.is_empty(), "{path}");
    }

    // The same spellings virtual-host style.
    for (path, key) in [("/secret%2Fa", "secret/a"), ("/secret%252Fa", "secret%2Fa")] {
        let req = Request::get(path)
            .header(http::header::HOST, "data.s3.local")
            .body(Full::default())
            .unwrap();
        let out = stack.send(req).await;
        assert_eq!(out.keys_asked(), [Some(key)], "{path}");
        out.assert_denied();
    }
}

#[tokio::test]
async fn a_malformed_escape_never_reaches_the_policy() {
    let stack = Stack::policy(PUBLIC_READ_POLICY).principal(reader());
    for path in ["/data/public/%zz", "/data/public/%2", "/data/public/%C0%AF"] {
        let out = stack.send(request(Method::GET, path)).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(out.code(), Some("InvalidURI"), "{path}");
        assert!(out.inputs.is_empty());
        assert!(out.inner.is_empty());
        assert!(out.audit.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Engine errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_engine_error_denies() {
    // No default: undefined for everyone but `root`.
    let policy = "package s3\nimport rego.v1\nallow if input.user == \"root\"\n";
    let out = Stack::policy(policy)
        .principal(reader())
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_denied();
    assert_eq!(out.inputs.len(), 1);
    out.assert_audit("deny", Some("alice"), Some("GetObject"));
    let reason = out.audit[0].get("reason").unwrap();
    assert!(reason.contains("undefined"), "{reason}");
    assert!(
        !out.body.contains("undefined"),
        "the client is not told why: {}",
        out.body
    );

    let out = Stack::policy(policy)
        .principal(admin())
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_allowed();

    // A non-boolean result.
    let out = Stack::policy("package s3\nallow := \"true\"\n")
        .principal(admin())
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_denied();
    assert!(
        out.audit[0]
            .get("reason")
            .unwrap()
            .contains("not a boolean"),
        "{:#?}",
        out.audit
    );
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_request_is_one_audit_event() {
    let stack = Stack::seed().principal(reader());
    for (method, uri, decision, operation) in [
        (Method::GET, "/", "allow", "ListBuckets"),
        (Method::GET, "/data?list-type=2", "allow", "ListObjectsV2"),
        (
            Method::GET,
            "/data/a.txt?tagging",
            "allow",
            "GetObjectTagging",
        ),
        (Method::DELETE, "/data/a.txt", "deny", "DeleteObject"),
        (
            Method::PUT,
            "/data/a.txt?tagging",
            "deny",
            "PutObjectTagging",
        ),
        (Method::DELETE, "/data", "deny", "DeleteBucket"),
    ] {
        let out = stack.send(request(method.clone(), uri)).await;
        out.assert_audit(decision, Some("alice"), Some(operation));
        assert_eq!(out.audit[0].get("engine"), Some("rego"), "{method} {uri}");
        assert_eq!(out.audit[0].get("auth"), Some("sigv4"), "{method} {uri}");
        if decision == "allow" {
            out.assert_allowed();
        } else {
            out.assert_denied();
        }
    }
}

#[tokio::test]
async fn the_audit_event_carries_the_request_id() {
    let out = Stack::seed()
        .principal(reader())
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    let header = out
        .headers
        .get("x-amz-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(out.audit[0].get("request_id"), Some(header));
}

// ---------------------------------------------------------------------------------------------
// More resources: UploadPartCopy, sessions, versions, body errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upload_part_copy_is_checked_on_both_sides() {
    let policy = r#"package s3
import rego.v1
default allow := false
allow if {
    input.action == "UploadPartCopy"
    input.source.key == "public/big.bin"
}
allow if {
    input.action == "GetObject"
    startswith(input.key, "public/")
}
"#;
    let stack = Stack::policy(policy).principal(reader());
    let mut req = request(Method::PUT, "/dst/big.bin?partNumber=1&uploadId=u1");
    req.headers_mut()
        .insert("x-amz-copy-source", "/src/public/big.bin".parse().unwrap());
    let out = stack.send(req).await;
    out.assert_allowed();
    assert_eq!(out.inner[0].s3.operation, S3Operation::UploadPartCopy);
    assert_eq!(out.inputs.len(), 2);
    assert_eq!(out.inputs[0].iam_action, "s3:PutObject");
    assert_eq!(out.inputs[1].path.as_deref(), Some("src/public/big.bin"));
    out.assert_audit("allow", Some("alice"), Some("UploadPartCopy"));

    let mut req = request(Method::PUT, "/dst/big.bin?partNumber=1&uploadId=u1");
    req.headers_mut()
        .insert("x-amz-copy-source", "/src/secret/big.bin".parse().unwrap());
    let out = stack.send(req).await;
    out.assert_denied();
}

#[tokio::test]
async fn the_session_role_and_claims_reach_the_policy() {
    let policy = r#"package s3
import rego.v1
default allow := false
allow if {
    input.role == "arn:aws:iam::000000000000:role/readers"
    input.claims.tenant == "t1"
    input.auth == "jwt"
}
"#;
    let mut alice = reader();
    alice.auth = AuthMethod::Jwt;
    alice.claims = serde_json::json!({"tenant": "t1"});
    alice.session = Some(s3_core::Session {
        role_arn: "arn:aws:iam::000000000000:role/readers".to_owned(),
        session_name: "s".to_owned(),
        policy: None,
    });
    let out = Stack::policy(policy)
        .principal(alice.clone())
        .send(request(Method::DELETE, "/data/a.txt"))
        .await;
    out.assert_allowed();
    assert_eq!(
        out.inputs[0].role.as_deref(),
        Some("arn:aws:iam::000000000000:role/readers")
    );
    out.assert_audit("allow", Some("alice"), Some("DeleteObject"));
    assert_eq!(out.audit[0].get("auth"), Some("jwt"));

    alice.session = None;
    let out = Stack::policy(policy)
        .principal(alice)
        .send(request(Method::DELETE, "/data/a.txt"))
        .await;
    out.assert_denied();
}

#[tokio::test]
async fn version_actions_are_the_same_in_a_request_and_a_batch() {
    // `action` names the operation without version both for a DELETE with a versionId and
    // for a versioned key of a DeleteObjects; `iam_action` says `s3:DeleteObjectVersion`.
    let policy = r#"package s3
import rego.v1
default allow := false
allow if input.action == "DeleteObject"
"#;
    let stack = Stack::policy(policy).principal(reader());
    let out = stack
        .send(request(Method::DELETE, "/data/a.txt?versionId=v1"))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].action, "DeleteObject");
    assert_eq!(out.inputs[0].iam_action, "s3:DeleteObjectVersion");
    assert_eq!(out.inputs[0].version_id.as_deref(), Some("v1"));

    let out = stack
        .send(delete_objects(&delete_body(
            "<Object><Key>a.txt</Key><VersionId>v1</VersionId></Object>",
        )))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].action, "DeleteObject");
    assert_eq!(out.inputs[0].iam_action, "s3:DeleteObjectVersion");
}

/// A body that yields `chunk`, then fails.
struct FailingBody {
    chunk: Option<Bytes>,
}

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(match self.chunk.take() {
            Some(chunk) => Ok(http_body::Frame::data(chunk)),
            None => Err(std::io::Error::other("connection reset")),
        }))
    }
}

#[tokio::test]
async fn a_delete_body_that_fails_is_incomplete_body() {
    let called = Arc::new(Mutex::new(0_u32));
    let inner_called = Arc::clone(&called);
    let svc = ServiceBuilder::new()
        .layer(S3RequestLayer::new())
        .map_request(|mut req: Request<FailingBody>| {
            req.extensions_mut().insert(admin());
            req
        })
        .layer(AuthzLayer::new(AllowAll))
        .service(service_fn(move |_req: Request<AuthzBody<FailingBody>>| {
            *inner_called.lock().unwrap() += 1;
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        }));
    let req = Request::post("/data?delete")
        .body(FailingBody {
            chunk: Some(Bytes::from_static(b"<Delete><Object><Key>a</Key>")),
        })
        .unwrap();
    let response = svc.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("<Code>IncompleteBody</Code>"), "{body}");
    assert_eq!(*called.lock().unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// The client's address
// ---------------------------------------------------------------------------------------------

/// Allows only clients in 192.0.2.0/24.
const OFFICE_ONLY: &str = r#"package s3
import rego.v1
default allow := false
allow if {
    is_string(input.source_ip)
    net.cidr_contains("192.0.2.0/24", input.source_ip)
}
"#;

fn from_addr(mut req: Request<Full<Bytes>>, addr: &str) -> Request<Full<Bytes>> {
    req.extensions_mut()
        .insert(ClientAddr::new(addr.parse().unwrap()));
    req
}

#[tokio::test]
async fn source_ip_comes_from_the_client_addr_extension() {
    let stack = Stack::policy(OFFICE_ONLY).principal(reader());

    let out = stack
        .send(from_addr(
            request(Method::GET, "/data/a.txt"),
            "192.0.2.7:50000",
        ))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].source_ip.as_deref(), Some("192.0.2.7"));
    out.assert_audit("allow", Some("alice"), Some("GetObject"));
    assert_eq!(out.audit[0].get("source_ip"), Some("192.0.2.7"));

    // An IPv4 client seen through an IPv6 socket is its IPv4 address.
    let out = stack
        .send(from_addr(
            request(Method::GET, "/data/a.txt"),
            "[::ffff:192.0.2.8]:50000",
        ))
        .await;
    out.assert_allowed();
    assert_eq!(out.inputs[0].source_ip.as_deref(), Some("192.0.2.8"));

    let out = stack
        .send(from_addr(
            request(Method::GET, "/data/a.txt"),
            "198.51.100.1:50000",
        ))
        .await;
    out.assert_denied();
    assert_eq!(out.inputs[0].source_ip.as_deref(), Some("198.51.100.1"));

    // Without the extension the address is unknown (null), and this policy denies.
    let out = stack.send(request(Method::GET, "/data/a.txt")).await;
    out.assert_denied();
    assert_eq!(out.inputs[0].source_ip, None);
    assert_eq!(out.audit[0].get("source_ip"), None);
}

#[tokio::test]
async fn source_ip_reaches_every_resource_of_a_request() {
    let stack = Stack::new(AllowAll).principal(admin());
    let mut copy = request(Method::PUT, "/dst/b.txt");
    copy.headers_mut()
        .insert("x-amz-copy-source", "/src/a.txt".parse().unwrap());
    let out = stack.send(from_addr(copy, "192.0.2.9:1")).await;
    out.assert_allowed();
    assert_eq!(out.inputs.len(), 2);
    assert!(
        out.inputs
            .iter()
            .all(|i| i.source_ip.as_deref() == Some("192.0.2.9")),
        "{:#?}",
        out.inputs
    );

    let body = "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>";
    let out = stack
        .send(from_addr(
            request_with_body(Method::POST, "/data?delete", body),
            "192.0.2.10:1",
        ))
        .await;
    out.assert_allowed();
    assert_eq!(out.keys_asked(), [Some("a"), Some("b")]);
    assert!(
        out.inputs
            .iter()
            .all(|i| i.source_ip.as_deref() == Some("192.0.2.10"))
    );
}

// ---------------------------------------------------------------------------------------------
// Session policies
// ---------------------------------------------------------------------------------------------

/// Alice's home under `data/home/alice/`: list it, read, write and delete in it.
const ALICE_HOME_SESSION: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ListHome", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::data",
         "Condition": {"StringLike": {"s3:prefix": ["home/alice/*", "home/alice"]}}},
        {"Sid": "UseHome", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": "arn:aws:s3:::data/home/alice/*"}
    ]
}"#;

/// `principal` with an STS session narrowed by `policy` (a session policy document).
fn with_session_policy(mut principal: Principal, policy: &str) -> Principal {
    principal.session = Some(s3_core::Session {
        role_arn: "arn:aws:iam::000000000000:role/admins".to_owned(),
        session_name: "alice-laptop".to_owned(),
        policy: Some(Arc::new(s3_core::SessionPolicy::parse(policy).unwrap())),
    });
    principal
}

impl Outcome {
    /// Denied by the session policy: the client sees the usual `AccessDenied`, the audit
    /// event says why.
    fn assert_denied_by_session_policy(&self, resource: &str) {
        self.assert_denied();
        assert_eq!(self.audit.len(), 1, "{:#?}", self.audit);
        assert_eq!(
            self.audit[0].get("reason"),
            Some(format!("access to {resource} denied by the session policy").as_str()),
            "{:#?}",
            self.audit
        );
        assert!(!self.body.contains("session"), "{}", self.body);
    }
}

#[tokio::test]
async fn a_session_policy_narrows_an_admin_to_one_prefix() {
    let stack = Stack::seed().principal(with_session_policy(admin(), ALICE_HOME_SESSION));

    // Inside: allowed, as the seed policy allows an admin everything.
    for req in [
        request(Method::GET, "/data/home/alice/a.txt"),
        request(Method::HEAD, "/data/home/alice/a.txt"),
        request_with_body(Method::PUT, "/data/home/alice/new.txt", "x"),
        request(Method::DELETE, "/data/home/alice/old.txt"),
        request(Method::GET, "/data?list-type=2&prefix=home/alice/"),
        request(
            Method::GET,
            "/data?list-type=2&prefix=home/alice/2025/&delimiter=/",
        ),
        request(Method::GET, "/data?prefix=home/alice"),
    ] {
        let uri = req.uri().clone();
        let out = stack.send(req).await;
        out.assert_allowed();
        out.assert_audit(
            "allow",
            Some("root"),
            Some(out.inner[0].s3.operation.name()),
        );
        assert_eq!(out.inputs.len(), 1, "{uri}");
    }

    // Outside: denied, though the seed policy allowed (it was asked first).
    for (req, resource) in [
        (
            request(Method::GET, "/data/home/bob/a.txt"),
            "data/home/bob/a.txt",
        ),
        (
            request_with_body(Method::PUT, "/data/shared.txt", "x"),
            "data/shared.txt",
        ),
        (
            request(Method::GET, "/other/home/alice/a.txt"),
            "other/home/alice/a.txt",
        ),
        (request(Method::GET, "/data/home/alice"), "data/home/alice"),
        // Actions the session policy does not name, inside the prefix.
        (
            request(Method::GET, "/data/home/alice/a.txt?tagging"),
            "data/home/alice/a.txt",
        ),
        (
            request(Method::GET, "/data/home/alice/a.txt?versionId=v1"),
            "data/home/alice/a.txt",
        ),
        (
            request(Method::GET, "/data?list-type=2&prefix=home/bob/"),
            "data",
        ),
        // Listing without a prefix: s3:prefix is absent, the positive condition fails.
        (request(Method::GET, "/data?list-type=2"), "data"),
        (request(Method::GET, "/"), "*"),
        (request(Method::DELETE, "/data"), "data"),
    ] {
        let out = stack.send(req).await;
        out.assert_denied_by_session_policy(resource);
        assert_eq!(out.inputs.len(), 1, "the policy engine is asked first");
        assert_eq!(out.audit[0].get("decision"), Some("deny"));
    }
}

#[tokio::test]
async fn a_copy_from_outside_the_session_policy_is_denied() {
    let stack = Stack::seed().principal(with_session_policy(admin(), ALICE_HOME_SESSION));

    let mut req = request(Method::PUT, "/data/home/alice/copy.txt");
    req.headers_mut().insert(
        "x-amz-copy-source",
        "/data/home/alice/a.txt".parse().unwrap(),
    );
    stack.send(req).await.assert_allowed();

    // The source is outside: denied after both sides were allowed by the engine.
    let mut req = request(Method::PUT, "/data/home/alice/copy.txt");
    req.headers_mut().insert(
        "x-amz-copy-source",
        "/data/home/bob/secret.txt".parse().unwrap(),
    );
    let out = stack.send(req).await;
    out.assert_denied_by_session_policy("data/home/bob/secret.txt");
    assert_eq!(out.inputs.len(), 2);

    // The destination is outside: denied before the source is asked.
    let mut req = request(Method::PUT, "/data/home/bob/copy.txt");
    req.headers_mut().insert(
        "x-amz-copy-source",
        "/data/home/alice/a.txt".parse().unwrap(),
    );
    let out = stack.send(req).await;
    out.assert_denied_by_session_policy("data/home/bob/copy.txt");
    assert_eq!(out.inputs.len(), 1);
}

#[tokio::test]
async fn one_delete_key_outside_the_session_policy_refuses_the_whole_batch() {
    let stack = Stack::seed().principal(with_session_policy(admin(), ALICE_HOME_SESSION));

    let inside = delete_body(
        "<Object><Key>home/alice/a.txt</Key></Object>\
         <Object><Key>home/alice/b.txt</Key></Object>",
    );
    let out = stack.send(delete_objects(&inside)).await;
    out.assert_allowed();
    assert_eq!(
        out.keys_asked(),
        [Some("home/alice/a.txt"), Some("home/alice/b.txt")]
    );

    let mixed = delete_body(
        "<Object><Key>home/alice/a.txt</Key></Object>\
         <Object><Key>home/bob/b.txt</Key></Object>\
         <Object><Key>home/alice/c.txt</Key></Object>",
    );
    let out = stack.send(delete_objects(&mixed)).await;
    out.assert_denied_by_session_policy("data/home/bob/b.txt");
    assert!(
        out.body.contains("<Resource>/data</Resource>"),
        "{}",
        out.body
    );
    assert_eq!(
        out.keys_asked(),
        [Some("home/alice/a.txt"), Some("home/bob/b.txt")]
    );

    // A versioned key needs s3:DeleteObjectVersion, which the session policy does not grant.
    let versioned =
        delete_body("<Object><Key>home/alice/a.txt</Key><VersionId>v1</VersionId></Object>");
    let out = stack.send(delete_objects(&versioned)).await;
    out.assert_denied_by_session_policy("data/home/alice/a.txt");
}

#[tokio::test]
async fn a_session_policy_cannot_widen_access() {
    const EVERYTHING: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#;
    // The seed policy lets a reader read only; the session policy allows everything.
    let stack = Stack::seed().principal(with_session_policy(reader(), EVERYTHING));
    stack
        .send(request(Method::GET, "/data/a.txt"))
        .await
        .assert_allowed();
    for req in [
        request_with_body(Method::PUT, "/data/a.txt", "x"),
        request(Method::DELETE, "/data/a.txt"),
        request(Method::PUT, "/new-bucket"),
        delete_objects(&delete_body("<Object><Key>a.txt</Key></Object>")),
    ] {
        let out = stack.send(req).await;
        out.assert_denied();
        // Denied by the policy engine, not the session policy.
        let reason = out.audit[0].get("reason").unwrap();
        assert!(reason.starts_with("access denied to "), "{reason}");
    }
    // A nobody stays a nobody.
    let out = Stack::seed()
        .principal(with_session_policy(nobody(), EVERYTHING))
        .send(request(Method::GET, "/data/a.txt"))
        .await;
    out.assert_denied();
    assert_eq!(
        out.audit[0].get("reason"),
        Some("access denied to data/a.txt")
    );
}

#[tokio::test]
async fn a_session_without_a_policy_is_not_narrowed() {
    let mut root = admin();
    root.session = Some(s3_core::Session {
        role_arn: "arn:aws:iam::000000000000:role/admins".to_owned(),
        session_name: "s".to_owned(),
        policy: None,
    });
    let stack = Stack::seed().principal(root);
    stack
        .send(request_with_body(Method::PUT, "/data/shared.txt", "x"))
        .await
        .assert_allowed();
    stack
        .send(delete_objects(&delete_body(
            "<Object><Key>x</Key></Object>",
        )))
        .await
        .assert_allowed();
}

#[tokio::test]
async fn an_explicit_deny_in_the_session_policy_wins() {
    const ALL_BUT_SECRETS: &str = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::data/secret/*"}]}"#;
    let stack = Stack::new(AllowAll).principal(with_session_policy(admin(), ALL_BUT_SECRETS));
    stack
        .send(request(Method::GET, "/data/public/a.txt"))
        .await
        .assert_allowed();
    stack
        .send(request(Method::GET, "/data/secret/a.txt"))
        .await
        .assert_denied_by_session_policy("data/secret/a.txt");
    let out = stack
        .send(delete_objects(&delete_body(
            "<Object><Key>public/a</Key></Object><Object><Key>secret/b</Key></Object>",
        )))
        .await;
    out.assert_denied_by_session_policy("data/secret/b");
}
