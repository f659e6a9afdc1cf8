//! `SigV4Verifier::verify_with_body_at`, as STS verifies a request whose whole body it has
//! read: the signature covers the SHA-256 of that body, whatever `x-amz-content-sha256` says.
//!
//! Requests are signed with `aws-sigv4`, an implementation independent of the verifier.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_lc_rs::digest::{SHA256, digest};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{Method, Request};
use s3_auth::{AuthError, SecretKey, SigV4Verifier, StaticCredentials, StaticUser};

const AK: &str = "AKIDALICE";
const SK: &str = "alice-secret";
const BODY_A: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
const BODY_B: &[u8] = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15";

fn verifier() -> SigV4Verifier {
    SigV4Verifier::new(
        StaticCredentials::new([StaticUser {
            access_key_id: AK.into(),
            secret: SecretKey::new(SK),
            subject: "alice".into(),
            groups: vec![],
        }])
        .unwrap(),
    )
    .service("sts")
}

fn time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data))
}

/// A form POST to STS signed (service `sts`) over `payload`, with `x-amz-content-sha256`
/// when `checksum` is `XAmzSha256`.
fn signed(payload: SignableBody<'_>, checksum: PayloadChecksumKind) -> http::request::Parts {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("https://sts.local/")
        .header("host", "sts.local")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = checksum;
    let identity: Identity = Credentials::new(AK, SK, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(time())
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
        SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), payload).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req.into_parts().0
}

#[tokio::test]
async fn the_signature_covers_the_body_read() {
    let parts = signed(SignableBody::Bytes(BODY_A), PayloadChecksumKind::NoHeader);
    assert!(!parts.headers.contains_key("x-amz-content-sha256"));
    let verified = verifier()
        .verify_with_body_at(&parts, BODY_A, time())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.principal.subject, "alice");
    // Another body than the one signed.
    assert_eq!(
        verifier()
            .verify_with_body_at(&parts, BODY_B, time())
            .await
            .unwrap_err(),
        AuthError::SignatureMismatch
    );
    assert_eq!(
        verifier()
            .verify_with_body_at(&parts, b"", time())
            .await
            .unwrap_err(),
        AuthError::SignatureMismatch
    );
}

#[tokio::test]
async fn a_content_sha256_header_must_be_the_hash_of_the_body_read() {
    let parts = signed(SignableBody::Bytes(BODY_A), PayloadChecksumKind::XAmzSha256);
    assert_eq!(
        parts.headers["x-amz-content-sha256"].to_str().unwrap(),
        sha256_hex(BODY_A)
    );
    verifier()
        .verify_with_body_at(&parts, BODY_A, time())
        .await
        .unwrap()
        .unwrap();
    // The header (signed, and naming body A) does not match body B.
    assert_eq!(
        verifier()
            .verify_with_body_at(&parts, BODY_B, time())
            .await
            .unwrap_err(),
        AuthError::ContentSha256Mismatch
    );
    // A request signed over body B's hash, sent with body A.
    let parts = signed(
        SignableBody::Precomputed(sha256_hex(BODY_B)),
        PayloadChecksumKind::XAmzSha256,
    );
    assert_eq!(
        verifier()
            .verify_with_body_at(&parts, BODY_A, time())
            .await
            .unwrap_err(),
        AuthError::ContentSha256Mismatch
    );
    assert_eq!(
        AuthError::ContentSha256Mismatch
            .to_s3_error()
            .code()
            .as_str(),
        "XAmzContentSHA256Mismatch"
    );
}

#[tokio::test]
async fn an_unsigned_payload_is_refused() {
    let parts = signed(
        SignableBody::UnsignedPayload,
        PayloadChecksumKind::XAmzSha256,
    );
    assert_eq!(
        parts.headers["x-amz-content-sha256"].to_str().unwrap(),
        "UNSIGNED-PAYLOAD"
    );
    // Whatever the body: it would not be covered by the signature.
    for body in [BODY_A, b""] {
        assert_eq!(
            verifier()
                .verify_with_body_at(&parts, body, time())
                .await
                .unwrap_err(),
            AuthError::InvalidContentSha256
        );
    }
    // The same request passes `verify_at`, which leaves the body to the caller: only
    // `verify_with_body_at` refuses it.
    assert!(
        verifier()
            .verify_at(&parts, time())
            .await
            .unwrap()
            .is_some()
    );
}
