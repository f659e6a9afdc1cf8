//! `SigV4Layer` in front of a recording inner service: what reaches the inner service (the
//! principal, the plain body, the rewritten headers) and what is answered instead.
//!
//! Requests are signed with `aws-sigv4`, an implementation independent of the verifier.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use s3_auth::{
    AuthError, CredentialRequest, CredentialResolver, ResolveFuture, SecretKey, SigV4Body,
    SigV4Layer, SigV4Verifier, StaticCredentials, StaticUser,
};
use s3_core::{AuthMethod, Principal, RequestId};
use tower::{ServiceBuilder, ServiceExt};

const AK: &str = "AKIDALICE";
const SK: &str = "alice-secret";

fn users() -> StaticCredentials {
    StaticCredentials::new([StaticUser {
        access_key_id: AK.into(),
        secret: SecretKey::new(SK),
        subject: "alice".into(),
        groups: vec!["admin".into()],
    }])
    .unwrap()
}

/// What the inner service saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    principal: Option<Principal>,
    headers: HeaderMap,
    body: Option<Result<Bytes, String>>,
}

/// Calls `SigV4Layer` (configured by `layer`) with `req`; the inner service drains the body
/// and answers 200.
async fn call(layer: SigV4Layer, req: Request<Full<Bytes>>) -> (Response<Full<Bytes>>, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let service = ServiceBuilder::new().layer(layer).service_fn(
        move |req: Request<SigV4Body<Full<Bytes>>>| {
            let record = Arc::clone(&record);
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .map_err(|e| e.to_string());
                let mut seen = record.lock().unwrap();
                seen.principal = parts.extensions.get::<Principal>().cloned();
                seen.headers = parts.headers;
                seen.body = Some(body);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }
        },
    );
    let response = service.oneshot(req).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    (response, seen)
}

fn settings(location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = location;
    settings.expires_in = expires;
    settings
}

/// Signs `req` as `ak`/`sk` at `time` with `body` as the signable payload.
fn sign_request(
    req: &mut Request<Full<Bytes>>,
    (ak, sk): (&str, &str),
    time: SystemTime,
    body: SignableBody<'_>,
    settings: SigningSettings,
) {
    let identity: Identity = Credentials::new(ak, sk, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    let uri = req.uri().to_string();
    let signable =
        SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), body).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(req);
}

fn request(method: Method, uri: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "s3.local")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// The `<Code>` of an S3 XML error response.
async fn error_code(response: Response<Full<Bytes>>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let start = body.find("<Code>").expect("an S3 error body") + 6;
    let end = body.find("</Code>").unwrap();
    body[start..end].to_owned()
}

#[tokio::test]
async fn signed_request_reaches_the_inner_service_with_its_principal() {
    let mut req = request(
        Method::GET,
        "http://s3.local/bucket/a%20key?list-type=2",
        b"",
    );
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::Bytes(b""),
        settings(SignatureLocation::Headers, None),
    );
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    let principal = seen.principal.unwrap();
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.groups, ["admin"]);
    assert_eq!(principal.auth, AuthMethod::SigV4);
}

#[tokio::test]
async fn presigned_request_is_authenticated_as_presigned() {
    let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::UnsignedPayload,
        settings(SignatureLocation::QueryParams, Some(Duration::from_mins(5))),
    );
    assert!(req.headers().get("authorization").is_none());
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.principal.unwrap().auth, AuthMethod::Presigned);
}

#[tokio::test]
async fn anonymous_requests_need_allow_anonymous() {
    let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
    req.extensions_mut().insert(RequestId::new("req-1"));
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["x-amz-request-id"], "req-1");
    assert_eq!(error_code(response).await, "AccessDenied");
    assert!(
        seen.principal.is_none() && seen.body.is_none(),
        "inner not called"
    );

    let req = request(Method::GET, "http://s3.local/bucket/key", b"");
    let (response, seen) = call(SigV4Layer::new(users()).allow_anonymous(true), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.principal.unwrap(), Principal::anonymous());
}

#[tokio::test]
async fn head_errors_have_no_body() {
    let req = request(Method::HEAD, "http://s3.local/bucket/key", b"");
    let (response, _) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
}

#[tokio::test]
async fn signed_payload_is_verified_and_a_tampered_body_replaces_the_answer() {
    let mut req = request(Method::PUT, "http://s3.local/bucket/key", b"hello");
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::Bytes(b"hello"),
        settings(SignatureLocation::Headers, None),
    );
    let (parts, _) = req.into_parts();
    let good = Request::from_parts(parts.clone(), Full::new(Bytes::from_static(b"hello")));
    let (response, seen) = call(SigV4Layer::new(users()), good).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.body.unwrap().unwrap(), "hello");

    // The signed head replayed with an empty body (`Content-Length: 0` when unsigned).
    let emptied = Request::from_parts(parts.clone(), Full::new(Bytes::new()));
    let (response, seen) = call(SigV4Layer::new(users()), emptied).await;
    assert_eq!(error_code(response).await, "XAmzContentSHA256Mismatch");
    assert!(seen.body.is_none(), "inner not called");

    let tampered = Request::from_parts(parts, Full::new(Bytes::from_static(b"jello")));
    let (response, seen) = call(SigV4Layer::new(users()), tampered).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "XAmzContentSHA256Mismatch");
    let body_error = seen.body.unwrap().unwrap_err();
    assert!(
        body_error.contains("XAmzContentSHA256Mismatch"),
        "{body_error}"
    );
}

#[tokio::test]
async fn refusals_carry_the_exact_code() {
    let now = SystemTime::now();
    let signed = |ak: &str, sk: &str, time: SystemTime| {
        let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
        sign_request(
            &mut req,
            (ak, sk),
            time,
            SignableBody::Bytes(b""),
            settings(SignatureLocation::Headers, None),
        );
        req
    };
    let mut unsigned_header = signed(AK, SK, now);
    unsigned_header
        .headers_mut()
        .insert("x-amz-copy-source", "other/secret".parse().unwrap());
    let mut trailer_without_chunks = request(Method::PUT, "http://s3.local/bucket/key", b"x");
    trailer_without_chunks
        .headers_mut()
        .insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
    sign_request(
        &mut trailer_without_chunks,
        (AK, SK),
        now,
        SignableBody::UnsignedPayload,
        settings(SignatureLocation::Headers, None),
    );
    let mut sigv2 = request(Method::GET, "http://s3.local/bucket/key", b"");
    sigv2.headers_mut().insert(
        "authorization",
        "AWS AKIDALICE:frJIUN8DYpKDtOLCwo//yllqDzg="
            .parse()
            .unwrap(),
    );
    let cases = [
        (
            "wrong secret",
            signed(AK, "not-the-secret", now),
            "SignatureDoesNotMatch",
        ),
        (
            "unknown key",
            signed("AKIDMALLORY", SK, now),
            "InvalidAccessKeyId",
        ),
        (
            "skewed",
            signed(AK, SK, now - Duration::from_mins(20)),
            "RequestTimeTooSkewed",
        ),
        ("unsigned x-amz header", unsigned_header, "AccessDenied"),
        (
            "trailer without aws-chunked",
            trailer_without_chunks,
            "MalformedTrailerError",
        ),
        ("sigv2", sigv2, "InvalidRequest"),
    ];
    for (name, req, code) in cases {
        let (response, seen) = call(SigV4Layer::new(users()), req).await;
        assert_eq!(error_code(response).await, code, "{name}");
        assert!(seen.principal.is_none(), "{name}: inner not called");
    }
}

#[tokio::test]
async fn aws_chunked_requests_reach_the_inner_service_decoded() {
    let encoded = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
    let mut req = request(Method::PUT, "http://s3.local/bucket/key", encoded);
    for (name, value) in [
        ("content-encoding", "aws-chunked, gzip"),
        ("content-length", &encoded.len().to_string()),
        ("x-amz-decoded-content-length", "5"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
    ] {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::StreamingUnsignedPayloadTrailer,
        settings(SignatureLocation::Headers, None),
    );
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.body.unwrap().unwrap(), "hello");
    let headers = &seen.headers;
    assert_eq!(headers["content-length"], "5");
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    for gone in [
        "x-amz-decoded-content-length",
        "x-amz-trailer",
        "x-amz-sdk-checksum-algorithm",
    ] {
        assert!(!headers.contains_key(gone), "{gone} still present");
    }
}

/// A header-signed GET with `edit` applied to the request before signing and `tamper` after.
fn signed_get(
    edit: impl FnOnce(&mut Request<Full<Bytes>>),
    checksum: PayloadChecksumKind,
    tamper: impl FnOnce(&mut Request<Full<Bytes>>),
) -> Request<Full<Bytes>> {
    let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
    edit(&mut req);
    let mut settings = settings(SignatureLocation::Headers, None);
    settings.payload_checksum_kind = checksum;
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::Bytes(b""),
        settings,
    );
    tamper(&mut req);
    req
}

#[tokio::test]
async fn the_verifier_names_the_exact_reason() {
    let sha = PayloadChecksumKind::XAmzSha256;
    let cases: Vec<(&str, Request<Full<Bytes>>, AuthError)> = vec![
        (
            "host not signed",
            signed_get(
                |_| {},
                sha,
                |req| {
                    let auth = req.headers()["authorization"].to_str().unwrap();
                    let auth = auth.replace("SignedHeaders=host;", "SignedHeaders=");
                    req.headers_mut()
                        .insert("authorization", auth.parse().unwrap());
                },
            ),
            AuthError::HostNotSigned,
        ),
        (
            "no x-amz-content-sha256",
            signed_get(|_| {}, PayloadChecksumKind::NoHeader, |_| {}),
            AuthError::MissingContentSha256,
        ),
        (
            "x-amz-content-sha256 neither a hash nor a mode",
            signed_get(
                |req| {
                    req.headers_mut().insert(
                        "x-amz-content-sha256",
                        "STREAMING-SOMETHING".parse().unwrap(),
                    );
                },
                PayloadChecksumKind::NoHeader,
                |_| {},
            ),
            AuthError::InvalidContentSha256,
        ),
        (
            "x-amz-date not a timestamp",
            signed_get(
                |_| {},
                sha,
                |req| {
                    req.headers_mut()
                        .insert("x-amz-date", "2015-08-30T12:36:00Z".parse().unwrap());
                },
            ),
            AuthError::InvalidDate,
        ),
        (
            "no x-amz-date",
            signed_get(
                |_| {},
                sha,
                |req| {
                    req.headers_mut().remove("x-amz-date");
                },
            ),
            AuthError::MissingDate,
        ),
    ];
    let verifier = SigV4Verifier::new(users());
    for (name, req, expected) in cases {
        let (parts, _) = req.into_parts();
        let got = verifier.verify(&parts).await.unwrap_err();
        assert_eq!(got, expected, "{name}");
    }
}

/// An aws-chunked upload signed with `headers` set, answered by the layer.
async fn chunked_upload(headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let encoded = b"5\r\nhello\r\n0\r\n\r\n";
    let mut req = request(Method::PUT, "http://s3.local/bucket/key", encoded);
    req.headers_mut()
        .insert("content-encoding", "aws-chunked".parse().unwrap());
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::StreamingUnsignedPayloadTrailer,
        settings(SignatureLocation::Headers, None),
    );
    call(SigV4Layer::new(users()), req).await.0
}

#[tokio::test]
async fn aws_chunked_uploads_need_their_length_and_a_known_trailer() {
    let response = chunked_upload(&[("x-amz-trailer", "x-amz-checksum-crc32")]).await;
    assert_eq!(response.status(), StatusCode::LENGTH_REQUIRED);
    assert_eq!(error_code(response).await, "MissingContentLength");
    let response = chunked_upload(&[
        ("x-amz-decoded-content-length", "5"),
        ("x-amz-trailer", "x-amz-checksum-md5"),
    ])
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "InvalidRequest");
}

/// A credential store that cannot be reached.
struct Unreachable;

impl CredentialResolver for Unreachable {
    fn resolve<'a>(&'a self, _request: CredentialRequest<'a>) -> ResolveFuture<'a> {
        Box::pin(std::future::ready(Err(AuthError::CredentialsUnavailable(
            "store down".into(),
        ))))
    }
}

#[tokio::test]
async fn an_unreachable_credential_store_fails_closed_with_503() {
    let req = signed_get(|_| {}, PayloadChecksumKind::XAmzSha256, |_| {});
    let (response, seen) = call(SigV4Layer::new(Unreachable), req).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "ServiceUnavailable");
    assert!(seen.principal.is_none(), "inner not called");
}

/// The signature covers the query as the gateway decodes it (`+` is a space): a `%2B` signed
/// by the client cannot be replayed as `+` to mean something else.
#[tokio::test]
async fn a_signed_plus_cannot_be_replayed_as_a_space() {
    let mut req = request(
        Method::GET,
        "http://s3.local/bucket?list-type=2&prefix=a%2Bb",
        b"",
    );
    sign_request(
        &mut req,
        (AK, SK),
        SystemTime::now(),
        SignableBody::Bytes(b""),
        settings(SignatureLocation::Headers, None),
    );
    let (mut parts, _) = req.into_parts();
    let signed = Request::from_parts(parts.clone(), Full::new(Bytes::new()));
    let (response, _) = call(SigV4Layer::new(users()), signed).await;
    assert_eq!(response.status(), StatusCode::OK);
    parts.uri = "http://s3.local/bucket?list-type=2&prefix=a+b"
        .parse()
        .unwrap();
    let replayed = Request::from_parts(parts, Full::new(Bytes::new()));
    let (response, seen) = call(SigV4Layer::new(users()), replayed).await;
    assert_eq!(error_code(response).await, "SignatureDoesNotMatch");
    assert!(seen.principal.is_none());
}

/// A request an outer JWT layer authenticated passes through with that principal; any other
/// principal already present does not bypass verification.
#[tokio::test]
async fn a_principal_from_a_jwt_layer_passes_through() {
    let jwt_principal = Principal {
        subject: "carol".into(),
        groups: vec!["reader".into()],
        claims: serde_json::Value::Null,
        auth: AuthMethod::Jwt,
        session: None,
    };
    let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
    req.headers_mut()
        .insert("authorization", "Bearer eyJhbGciOi.x.y".parse().unwrap());
    req.extensions_mut().insert(jwt_principal.clone());
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.principal.unwrap(), jwt_principal);

    let mut req = request(Method::GET, "http://s3.local/bucket/key", b"");
    req.extensions_mut().insert(Principal::anonymous());
    let (response, seen) = call(SigV4Layer::new(users()), req).await;
    assert_eq!(error_code(response).await, "AccessDenied");
    assert!(seen.principal.is_none());
}
