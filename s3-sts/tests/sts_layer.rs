//! `StsLayer` served over HTTP in process and called by the real AWS SDK for Rust
//! (`aws-sdk-sts`): the SDK must parse every answer and error the layer writes. The identity
//! provider is an in-process JWKS endpoint with an ES256 key made per run (a test fixture:
//! the gateway's end-to-end tests use a real OIDC issuer, OpenBao).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use aws_sdk_sts::config::{Credentials, Region};
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s3_auth::jwt::{IssuerConfig, JwtValidator};
use s3_auth::{SecretKey, SigV4Verifier, StaticCredentials, StaticUser};
use s3_sts::{
    ClaimCondition, Role, Roles, SessionCredentials, SessionKey, SessionKeyring, StsLayer,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

const AUD: &str = "s3-gateway";
const ROLE: &str = "arn:aws:iam::123456789012:role/analytics";
const STRICT_ROLE: &str = "arn:aws:iam::123456789012:role/data-eng-only";
/// A role whose fixed groups do not fit in a session token.
const BLOATED_ROLE: &str = "arn:aws:iam::123456789012:role/bloated";
const STATIC_AK: &str = "AKIASTATICEXAMPLE001";
const STATIC_SK: &str = "static-secret-static-secret-static-secre";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The identity provider: an ES256 key and its JWKS served on 127.0.0.1.
struct Idp {
    issuer: String,
    key: EncodingKey,
}

impl Idp {
    async fn start() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("k1".to_owned());
        let body = Bytes::from(json!({ "keys": [jwk] }).to_string());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_: Request<Incoming>| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { issuer, key }
    }

    fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    fn claims(&self, sub: &str, groups: &[&str]) -> Value {
        json!({
            "iss": self.issuer, "sub": sub, "aud": AUD, "iat": now(), "exp": now() + 600,
            "groups": groups,
        })
    }
}

/// The STS endpoint, with a stand-in S3 service behind it answering `s3`.
struct Endpoint {
    addr: SocketAddr,
    idp: Idp,
}

async fn endpoint() -> Endpoint {
    let idp = Idp::start().await;
    let validator = Arc::new(
        JwtValidator::new([IssuerConfig::new(&idp.issuer)
            .jwks_url(format!("{}/jwks", idp.issuer))
            .audience(AUD)
            .groups_claim("groups")
            // The principal's subject is `sso:<sub>`; SubjectFromWebIdentityToken stays `sub`.
            .subject_prefix("sso:")])
        .unwrap(),
    );
    let roles = Roles::new([
        Role::new(ROLE).unwrap().group("analytics"),
        Role::new(STRICT_ROLE)
            .unwrap()
            .condition(ClaimCondition::equals("groups", "data-eng")),
        (0..1000).fold(Role::new(BLOATED_ROLE).unwrap(), |role, i| {
            role.group(format!("a-rather-long-fixed-group-name-{i:04}"))
        }),
    ])
    .unwrap();
    let keyring = Arc::new(SessionKeyring::new(SessionKey::generate("k1").unwrap(), []).unwrap());
    let resolver = SessionCredentials::new(Arc::clone(&keyring)).fallback(
        StaticCredentials::new([StaticUser {
            access_key_id: STATIC_AK.to_owned(),
            secret: SecretKey::new(STATIC_SK),
            subject: "alice".to_owned(),
            groups: vec![],
        }])
        .unwrap(),
    );
    let layer = StsLayer::new(validator, roles, keyring)
        .caller_identity(SigV4Verifier::new(resolver))
        .account_id("123456789012")
        .body_limit(32 * 1024);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"s3"))))
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Endpoint { addr, idp }
}

impl Endpoint {
    /// An SDK client without credentials (AssumeRoleWithWebIdentity is unsigned).
    fn anonymous_client(&self) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", self.addr))
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    fn client(&self, credentials: Credentials) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .region(Region::new("eu-central-1"))
            .endpoint_url(format!("http://{}", self.addr))
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    async fn assume(
        &self,
        role: &str,
        token: &str,
        policy: Option<&str>,
        duration: Option<i32>,
    ) -> Result<
        aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
        AssumeRoleWithWebIdentityError,
    > {
        self.anonymous_client()
            .assume_role_with_web_identity()
            .role_arn(role)
            .role_session_name("etl-run")
            .web_identity_token(token)
            .set_policy(policy.map(str::to_owned))
            .set_duration_seconds(duration)
            .send()
            .await
            .map_err(aws_sdk_sts::error::SdkError::into_service_error)
    }

    async fn raw(&self, request: Request<Full<Bytes>>) -> (StatusCode, String) {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let mut request = request;
        *request.uri_mut() = format!("http://{}{}", self.addr, request.uri())
            .parse()
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn form(pairs: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let body = form_body(pairs);
    Request::post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[tokio::test]
async fn the_sdk_assumes_a_role_and_signs_with_the_session() {
    let sts = endpoint().await;
    let token = sts.idp.token(&sts.idp.claims("etl-bot", &["data-eng"]));
    let out = sts.assume(ROLE, &token, None, Some(900)).await.unwrap();
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::123456789012:assumed-role/analytics/etl-run"
    );
    assert!(user.assumed_role_id().starts_with("AROA"));
    assert!(user.assumed_role_id().ends_with(":etl-run"));
    assert_eq!(out.subject_from_web_identity_token(), Some("etl-bot"));
    assert_eq!(out.audience(), Some(AUD));
    assert_eq!(out.provider(), Some(sts.idp.issuer.as_str()));
    let creds = out.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert_eq!(creds.access_key_id().len(), 20);
    assert_eq!(creds.secret_access_key().len(), 40);
    let expires = creds.expiration().secs().cast_unsigned();
    let expected = now() + 900;
    assert!(expires.abs_diff(expected) <= 2, "{expires} vs {expected}");

    // The session's own credentials sign GetCallerIdentity.
    let session = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "sts",
    );
    let me = sts
        .client(session)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::123456789012:assumed-role/analytics/etl-run")
    );
    assert_eq!(me.account(), Some("123456789012"));
    assert_eq!(me.user_id(), Some(user.assumed_role_id()));

    // So do static users (the fallback resolver).
    let me = sts
        .client(Credentials::new(STATIC_AK, STATIC_SK, None, None, "static"))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::123456789012:user/alice"));

    // Wrong secret, another session's token, no signature.
    let err = sts
        .client(Credentials::new(STATIC_AK, "wrong", None, None, "static"))
        .get_caller_identity()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    let other = sts.assume(ROLE, &token, None, None).await.unwrap();
    let swapped = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(other.credentials().unwrap().session_token().to_owned()),
        None,
        "sts",
    );
    let err = sts
        .client(swapped)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    let (status, body) = sts
        .raw(form(&[
            ("Action", "GetCallerIdentity"),
            ("Version", "2011-06-15"),
        ]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{body}"
    );
}

#[tokio::test]
async fn the_sdk_reads_every_refusal_as_its_typed_error() {
    let sts = endpoint().await;
    let good = sts.idp.token(&sts.idp.claims("etl-bot", &["analysts"]));

    // A role the token's claims do not satisfy, and one that does not exist.
    for role in [STRICT_ROLE, "arn:aws:iam::123456789012:role/nope"] {
        let err = sts.assume(role, &good, None, None).await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"), "{role}");
        assert_eq!(
            err.message(),
            Some("Not authorized to perform sts:AssumeRoleWithWebIdentity")
        );
    }
    // Tokens: expired, tampered, another audience, missing subject.
    let mut expired = sts.idp.claims("etl-bot", &[]);
    expired["exp"] = json!(now() - 3600);
    let err = sts
        .assume(ROLE, &sts.idp.token(&expired), None, None)
        .await
        .unwrap_err();
    assert!(err.is_expired_token_exception(), "{err:?}");
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let err = sts.assume(ROLE, &tampered, None, None).await.unwrap_err();
    assert!(err.is_invalid_identity_token_exception(), "{err:?}");
    let mut other_aud = sts.idp.claims("etl-bot", &[]);
    other_aud["aud"] = json!("someone-else");
    let err = sts
        .assume(ROLE, &sts.idp.token(&other_aud), None, None)
        .await
        .unwrap_err();
    assert!(err.is_invalid_identity_token_exception(), "{err:?}");
    let mut no_sub = sts.idp.claims("etl-bot", &[]);
    no_sub.as_object_mut().unwrap().remove("sub");
    let err = sts
        .assume(ROLE, &sts.idp.token(&no_sub), None, None)
        .await
        .unwrap_err();
    assert!(err.is_idp_rejected_claim_exception(), "{err:?}");

    // Session policies.
    let err = sts
        .assume(ROLE, &good, Some("not json"), None)
        .await
        .unwrap_err();
    assert!(err.is_malformed_policy_document_exception(), "{err:?}");
    // Longer than the Policy parameter allows (2048 characters), whitespace included:
    // refused before parsing.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
    let padded = format!("{policy}{}", " ".repeat(3000 - policy.len()));
    assert_eq!(padded.len(), 3000);
    let huge = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
        "b".repeat(2100)
    );
    for policy in [&padded, &huge] {
        let err = sts
            .assume(ROLE, &good, Some(policy), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
        assert_eq!(
            err.message(),
            Some(
                "1 validation error detected: Value at 'policy' failed to satisfy constraint: \
                 Member must have length less than or equal to 2048"
            )
        );
    }
    let err = sts
        .assume(ROLE, &good, Some("{\"Version\":\"\u{2028}\"}"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
    assert!(
        err.message()
            .unwrap()
            .contains("regular expression pattern"),
        "{err:?}"
    );

    // A session that does not fit in a session token (the role's 1000 groups).
    let err = sts
        .assume(BLOATED_ROLE, &good, None, None)
        .await
        .unwrap_err();
    assert!(err.is_packed_policy_too_large_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("too large"), "{err:?}");
    let (status, body) = sts
        .raw(form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", BLOATED_ROLE),
            ("RoleSessionName", "etl-run"),
            ("WebIdentityToken", &good),
        ]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("<Code>PackedPolicyTooLarge</Code>"), "{body}");

    // Durations: out of AWS's range, and over the role's maximum (one hour).
    for (duration, message) in [
        (899, "durationSeconds"),
        (43_201, "durationSeconds"),
        (7200, "MaxSessionDuration"),
    ] {
        let err = sts
            .assume(ROLE, &good, None, Some(duration))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ValidationError"), "{duration}");
        assert!(err.message().unwrap().contains(message), "{err:?}");
    }
}

#[tokio::test]
async fn malformed_calls_get_aws_error_documents() {
    let sts = endpoint().await;
    let token = sts.idp.token(&sts.idp.claims("etl-bot", &[]));
    let base = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", ROLE),
        ("RoleSessionName", "etl-run"),
        ("WebIdentityToken", token.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)], without: &str| {
        let mut pairs: Vec<(&str, &str)> = base
            .iter()
            .copied()
            .filter(|(n, _)| *n != without)
            .collect();
        pairs.extend_from_slice(extra);
        form_body(&pairs)
    };
    let post = |body: String| {
        Request::post("/")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (with(&[], ""), StatusCode::OK, "<AccessKeyId>ASIA"),
        (
            with(&[], "WebIdentityToken"),
            StatusCode::BAD_REQUEST,
            "<Code>MissingParameter</Code>",
        ),
        (
            with(&[("RoleSessionName", "x")], "RoleSessionName"),
            StatusCode::BAD_REQUEST,
            "<Code>ValidationError</Code>",
        ),
        (
            with(&[("RoleSessionName", "a b")], "RoleSessionName"),
            StatusCode::BAD_REQUEST,
            "<Code>ValidationError</Code>",
        ),
        (
            with(&[("Version", "2012-01-01")], "Version"),
            StatusCode::BAD_REQUEST,
            "<Code>InvalidAction</Code>",
        ),
        (
            with(&[("Action", "AssumeRole")], "Action"),
            StatusCode::BAD_REQUEST,
            "<Code>InvalidAction</Code>",
        ),
        (
            with(&[("ProviderId", "www.amazon.com")], ""),
            StatusCode::BAD_REQUEST,
            "<Code>InvalidParameterValue</Code>",
        ),
        (
            with(&[("RoleSessionName", "again")], ""),
            StatusCode::BAD_REQUEST,
            "<Code>MalformedQueryString</Code>",
        ),
        (
            with(&[("Junk", "x".repeat(40 * 1024).leak())], ""),
            StatusCode::PAYLOAD_TOO_LARGE,
            "<Code>RequestEntityTooLarge</Code>",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, text) = sts.raw(post(body)).await;
        assert_eq!(got, status, "{text}");
        assert!(text.contains(needle), "{needle}: {text}");
        assert!(
            text.contains("xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""),
            "{text}"
        );
    }
    // The query form, as MinIO accepts it.
    let query = with(&[], "");
    let (status, text) = sts
        .raw(
            Request::get(format!("/?{query}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Anything else is not STS's: the inner service answers.
    let (status, text) = sts
        .raw(Request::get("/bucket/key").body(Full::default()).unwrap())
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "s3"));
    // DeleteObjects on a virtual-hosted bucket (`POST /?delete`), even with a form content
    // type, is S3's.
    let (status, text) = sts
        .raw(
            Request::post("/?delete")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from_static(b"<Delete></Delete>")))
                .unwrap(),
        )
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "s3"));
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_not_described_to_the_caller() {
    use tower::ServiceExt as _;

    let idp = Idp::start().await;
    // Nothing listens on port 1: fetching the keys fails.
    let issuer = "http://127.0.0.1:1/realms/internal";
    let validator = Arc::new(
        JwtValidator::new([IssuerConfig::new(issuer)
            .jwks_url("http://127.0.0.1:1/realms/internal/certs")
            .audience(AUD)])
        .unwrap(),
    );
    let keyring = Arc::new(SessionKeyring::new(SessionKey::generate("k1").unwrap(), []).unwrap());
    let roles = Roles::new([Role::new(ROLE).unwrap()]).unwrap();
    let service = ServiceBuilder::new()
        .layer(StsLayer::new(validator, roles, keyring))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"s3"))))
        });
    let mut claims = idp.claims("etl-bot", &[]);
    claims["iss"] = json!(issuer);
    let token = idp.token(&claims);
    let response = service
        .oneshot(form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "etl-run"),
            ("WebIdentityToken", &token),
        ]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("<Code>IDPCommunicationError</Code>"),
        "{body}"
    );
    assert!(
        body.contains(
            "<Message>the identity provider could not be reached; try again later</Message>"
        ),
        "{body}"
    );
    assert!(
        !body.contains("127.0.0.1") && !body.contains("certs"),
        "{body}"
    );
}

#[tokio::test]
async fn responses_say_which_call_they_answer() {
    use s3_sts::StsCall;
    use tower::ServiceExt as _;

    let validator = Arc::new(
        JwtValidator::new([IssuerConfig::new("https://idp.example").audience(AUD)]).unwrap(),
    );
    let keyring = Arc::new(SessionKeyring::new(SessionKey::generate("k1").unwrap(), []).unwrap());
    let resolver = SessionCredentials::new(Arc::clone(&keyring));
    let service = ServiceBuilder::new()
        .layer(
            StsLayer::new(validator, Roles::new([]).unwrap(), keyring)
                .caller_identity(SigV4Verifier::new(resolver)),
        )
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"s3"))))
        });
    let call = |pairs: &[(&str, &str)]| {
        let service = service.clone();
        let request = form(pairs);
        async move {
            let response = service.oneshot(request).await.unwrap();
            response.extensions().get::<StsCall>().copied()
        }
    };
    assert_eq!(
        call(&[("Action", "Nope"), ("Version", "2011-06-15")]).await,
        Some(StsCall {
            action: "Unknown",
            error_code: Some("InvalidAction")
        })
    );
    assert_eq!(
        call(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]).await,
        Some(StsCall {
            action: "GetCallerIdentity",
            error_code: Some("MissingAuthenticationToken")
        })
    );
    let s3 = service
        .clone()
        .oneshot(Request::get("/bucket/key").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert!(s3.extensions().get::<StsCall>().is_none());
}
