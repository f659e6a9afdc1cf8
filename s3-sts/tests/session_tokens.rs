//! Sealed session tokens: round trip, forgeries (random, bit flips, truncation, versions),
//! key rotation, expiry, binding to the access key id, credential formats, redaction; then
//! `SigV4Layer` with `SessionCredentials` in a tower stack, requests signed by `aws-sigv4`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use data_encoding::BASE64URL_NOPAD;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use s3_auth::{
    AuthError, CredentialRequest, CredentialResolver, SecretKey, SigV4Body, SigV4Layer,
    StaticCredentials, StaticUser,
};
use s3_core::{AuthMethod, Principal};
use s3_sts::{
    IssuedCredentials, MAX_SESSION_TOKEN_LEN, Role, Roles, SessionClaims, SessionCredentials,
    SessionKey, SessionKeyring, StsError,
};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

const KEY_A: [u8; 32] = [0xA1; 32];
const KEY_B: [u8; 32] = [0xB2; 32];
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::demo/*"}]}"#;

fn ring(current: (&str, [u8; 32]), previous: &[(&str, [u8; 32])]) -> SessionKeyring {
    SessionKeyring::new(
        SessionKey::new(current.0, current.1).unwrap(),
        previous
            .iter()
            .map(|(id, key)| SessionKey::new(*id, *key).unwrap()),
    )
    .unwrap()
}

fn ring_a() -> SessionKeyring {
    ring(("key-a", KEY_A), &[])
}

/// A session issued now (to the second) for one hour.
fn claims() -> SessionClaims {
    let now = UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    SessionClaims {
        subject: "0b6f3c1e-6a53-4d3e-9b8e-2f1c0d9e8a71".into(),
        groups: vec!["analysts".into(), "readers".into()],
        claims: json!({"iss": "https://idp.example.com/realms/main", "aud": "s3-gateway"}),
        role_arn: "arn:aws:iam::000000000000:role/analyst".into(),
        session_name: "alice-notebook".into(),
        policy: Some(POLICY.into()),
        issued_at: now,
        expires_at: now + Duration::from_hours(1),
    }
}

fn decode(token: &str) -> Vec<u8> {
    BASE64URL_NOPAD.decode(token.as_bytes()).unwrap()
}

fn encode(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// Where the ciphertext starts in a token sealed by `key-a` (version, length, 5-byte id,
/// 12-byte nonce).
const BODY_START: usize = 2 + 5 + 12;

fn open_err(ring: &SessionKeyring, akid: &str, token: &str) -> StsError {
    ring.open(akid, token, SystemTime::now()).unwrap_err()
}

// --- sealing and opening ---------------------------------------------------------------

#[test]
fn round_trip_yields_claims_secret_and_principal() {
    let ring = ring_a();
    let claims = claims();
    let issued = ring.seal(&claims).unwrap();
    assert_eq!(issued.expiration, claims.expires_at);
    let opened = ring
        .open(
            &issued.access_key_id,
            &issued.session_token,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(opened.claims, claims);
    assert_eq!(
        opened.secret_access_key.expose(),
        issued.secret_access_key.expose()
    );

    let principal = opened.principal().unwrap();
    let (moved, secret) = opened.clone().into_principal().unwrap();
    assert_eq!(moved, principal);
    assert_eq!(secret.expose(), issued.secret_access_key.expose());
    assert_eq!(principal.subject, claims.subject);
    assert_eq!(principal.groups, claims.groups);
    assert_eq!(principal.claims, claims.claims);
    assert_eq!(principal.auth, AuthMethod::SigV4);
    let session = principal.session.unwrap();
    assert_eq!(session.role_arn, claims.role_arn);
    assert_eq!(session.session_name, claims.session_name);
    let policy = session.policy.unwrap();
    assert_eq!(policy.source(), POLICY);

    // The policy is parsed once per document: another session with the same policy, opened
    // later, shares it.
    let other = ring.seal(&claims).unwrap();
    let again = ring
        .open(
            &other.access_key_id,
            &other.session_token,
            SystemTime::now(),
        )
        .unwrap()
        .principal()
        .unwrap();
    assert!(Arc::ptr_eq(
        &again.session.unwrap().policy.unwrap(),
        &policy
    ));
}

#[test]
fn minimal_session_round_trips_and_sub_seconds_are_dropped() {
    let ring = ring_a();
    let issued_at = UNIX_EPOCH + Duration::new(2_000_000_000, 999_999_999);
    let claims = SessionClaims {
        subject: "s".into(),
        groups: Vec::new(),
        claims: serde_json::Value::Null,
        role_arn: "arn:aws:iam::000000000000:role/r".into(),
        session_name: "n".into(),
        policy: None,
        issued_at,
        expires_at: issued_at + Duration::from_mins(15),
    };
    let issued = ring.seal(&claims).unwrap();
    assert_eq!(
        issued.expiration,
        UNIX_EPOCH + Duration::from_secs(2_000_000_900)
    );
    let opened = ring
        .open(&issued.access_key_id, &issued.session_token, issued_at)
        .unwrap();
    assert_eq!(
        opened.claims.issued_at,
        UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    );
    assert_eq!(opened.claims.groups, Vec::<String>::new());
    assert_eq!(opened.claims.claims, serde_json::Value::Null);
    let principal = opened.principal().unwrap();
    assert_eq!(principal.session.unwrap().policy, None);
}

#[test]
fn typical_token_is_short() {
    let issued = ring_a().seal(&claims()).unwrap();
    let len = issued.session_token.len();
    println!("typical session token: {len} characters");
    assert!(len < 700, "{len} characters");
    assert!(
        issued
            .session_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let bytes = decode(&issued.session_token);
    assert_eq!(bytes[0], 1, "version");
    assert_eq!(&bytes[1..7], b"\x05key-a");
}

#[test]
fn a_policy_that_no_longer_parses_refuses_the_session() {
    let ring = ring_a();
    let mut claims = claims();
    claims.policy = Some("not a policy".into());
    let issued = ring.seal(&claims).unwrap();
    let opened = ring
        .open(
            &issued.access_key_id,
            &issued.session_token,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        opened.principal().unwrap_err(),
        StsError::SessionTokenInvalid
    );
}

#[test]
fn oversized_sessions_are_not_sealed() {
    let mut claims = claims();
    claims.groups = (0..1000).map(|i| format!("group-{i}")).collect();
    assert_eq!(
        ring_a().seal(&claims).unwrap_err(),
        StsError::SessionTooLarge
    );
}

// --- forgeries -----------------------------------------------------------------------

#[test]
fn random_bytes_are_refused() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let akid = &issued.access_key_id;
    for len in [0, 1, 2, 10, 40, 200, 600] {
        let mut bytes = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        if let Some(first) = bytes.first_mut() {
            *first = if *first == 1 { 2 } else { *first };
        }
        assert_eq!(
            open_err(&ring, akid, &encode(&bytes)),
            StsError::SessionTokenMalformed,
            "{len} random bytes"
        );
        // With a valid header (version 1, key-a) the random rest fails authentication,
        // unless it is too short to hold a nonce and a tag.
        let mut forged = b"\x01\x05key-a".to_vec();
        forged.extend_from_slice(&bytes);
        let expected = if forged.len() < BODY_START + 16 {
            StsError::SessionTokenMalformed
        } else {
            StsError::SessionTokenInvalid
        };
        assert_eq!(
            open_err(&ring, akid, &encode(&forged)),
            expected,
            "header + {len}"
        );
    }
    for not_base64 in ["", "not a token!", "====", "a", "abc+/def", "abc=", "é"] {
        assert_eq!(
            open_err(&ring, akid, not_base64),
            StsError::SessionTokenMalformed,
            "{not_base64:?}"
        );
    }
    // The issued token in standard base64 padding is not the token.
    assert_eq!(
        open_err(&ring, akid, &format!("{}=", issued.session_token)),
        StsError::SessionTokenMalformed
    );
}

#[test]
fn every_flipped_bit_is_refused() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let bytes = decode(&issued.session_token);
    for pos in 0..bytes.len() {
        for bit in 0..8 {
            let mut forged = bytes.clone();
            forged[pos] ^= 1 << bit;
            let expected = match pos {
                0 => StsError::SessionTokenMalformed,
                1 => match forged[1] {
                    0 | 33.. => StsError::SessionTokenMalformed,
                    _ => StsError::SessionKeyUnknown,
                },
                2..7 => StsError::SessionKeyUnknown,
                _ => StsError::SessionTokenInvalid,
            };
            assert_eq!(
                open_err(&ring, &issued.access_key_id, &encode(&forged)),
                expected,
                "byte {pos} bit {bit}"
            );
        }
    }
}

#[test]
fn truncated_tokens_are_refused() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let bytes = decode(&issued.session_token);
    for len in (0..bytes.len()).rev() {
        let expected = if len < BODY_START + 16 {
            StsError::SessionTokenMalformed
        } else {
            StsError::SessionTokenInvalid
        };
        assert_eq!(
            open_err(&ring, &issued.access_key_id, &encode(&bytes[..len])),
            expected,
            "{len} of {} bytes",
            bytes.len()
        );
    }
    // Cut in the text: a length of 4n+1 characters is no base64; others fail to open.
    let token = &issued.session_token;
    let cut = (token.len() - 3..token.len()).find(|n| n % 4 == 1).unwrap();
    assert_eq!(
        open_err(&ring, &issued.access_key_id, &token[..cut]),
        StsError::SessionTokenMalformed
    );
}

#[test]
fn other_versions_are_malformed() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let mut bytes = decode(&issued.session_token);
    for version in [0, 2, 0x7f, 0xff] {
        bytes[0] = version;
        assert_eq!(
            open_err(&ring, &issued.access_key_id, &encode(&bytes)),
            StsError::SessionTokenMalformed,
            "version {version}"
        );
    }
}

#[test]
fn oversized_tokens_are_malformed_before_decoding() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let mut token = issued.session_token.clone();
    while token.len() <= MAX_SESSION_TOKEN_LEN {
        token.push('A');
    }
    assert_eq!(
        open_err(&ring, &issued.access_key_id, &token),
        StsError::SessionTokenMalformed
    );
}

#[test]
fn a_token_opens_only_with_its_access_key_id() {
    let ring = ring_a();
    let issued = ring.seal(&claims()).unwrap();
    let other = ring.seal(&claims()).unwrap();
    let lower = issued.access_key_id.to_lowercase();
    let longer = format!("{}A", issued.access_key_id);
    for akid in [
        other.access_key_id.as_str(),
        lower.as_str(),
        longer.as_str(),
        &issued.access_key_id[..19],
        "",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert_eq!(
            open_err(&ring, akid, &issued.session_token),
            StsError::SessionTokenInvalid,
            "{akid}"
        );
    }
}

// --- keys ------------------------------------------------------------------------------

#[test]
fn retired_keys_are_unknown_and_previous_keys_still_open() {
    let old = ring(("key-a", KEY_A), &[]);
    let issued = old.seal(&claims()).unwrap();

    // Rotation: key-b is current, key-a previous. Old tokens open; new ones use key-b.
    let rotated = ring(("key-b", KEY_B), &[("key-a", KEY_A)]);
    assert_eq!(rotated.current_id(), "key-b");
    let opened = rotated
        .open(
            &issued.access_key_id,
            &issued.session_token,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(opened.claims, claims());
    let fresh = rotated.seal(&claims()).unwrap();
    assert_eq!(&decode(&fresh.session_token)[1..7], b"\x05key-b");
    assert_eq!(
        open_err(&old, &fresh.access_key_id, &fresh.session_token),
        StsError::SessionKeyUnknown
    );

    // Retired: key-a is gone.
    let retired = ring(("key-b", KEY_B), &[]);
    assert_eq!(
        open_err(&retired, &issued.access_key_id, &issued.session_token),
        StsError::SessionKeyUnknown
    );
    // Another deployment with a key of the same id but other bytes: not authentic.
    let impostor = ring(("key-a", KEY_B), &[]);
    assert_eq!(
        open_err(&impostor, &issued.access_key_id, &issued.session_token),
        StsError::SessionTokenInvalid
    );
}

#[test]
fn key_ids_and_encodings_are_checked() {
    for id in ["", "a b", "é", "key/1", &"k".repeat(33)] {
        assert!(
            matches!(SessionKey::new(id, KEY_A), Err(StsError::Config(_))),
            "{id:?}"
        );
    }
    assert!(SessionKey::new("K_-9".repeat(8), KEY_A).is_ok());

    let standard = data_encoding::BASE64.encode(&[0xFB; 32]);
    assert!(standard.contains('+') && standard.ends_with('='));
    let url = data_encoding::BASE64URL.encode(&[0xFB; 32]);
    let url_nopad = data_encoding::BASE64URL_NOPAD.encode(&[0xFB; 32]);
    let token_of = |key: SessionKey| {
        let ring = SessionKeyring::new(key, []).unwrap();
        let issued = ring.seal(&claims()).unwrap();
        (ring, issued)
    };
    let (_, issued) = token_of(SessionKey::new("k", [0xFB; 32]).unwrap());
    for encoded in [
        standard.clone(),
        format!("{standard}\n"),
        url,
        url_nopad,
        standard.trim_end_matches('=').to_owned(),
    ] {
        let key = SessionKey::from_base64("k", &encoded).unwrap();
        assert_eq!(key.to_base64().as_str(), standard);
        let ring = SessionKeyring::new(key, []).unwrap();
        assert!(
            ring.open(
                &issued.access_key_id,
                &issued.session_token,
                SystemTime::now()
            )
            .is_ok()
        );
    }
    for bad in [
        data_encoding::BASE64.encode(&[1; 31]),
        data_encoding::BASE64.encode(&[1; 33]),
        "not base64!".into(),
        String::new(),
    ] {
        assert!(
            matches!(SessionKey::from_base64("k", &bad), Err(StsError::Config(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        SessionKey::from_base64("bad id", &standard),
        Err(StsError::Config(_))
    ));

    let generated = SessionKey::generate("gen").unwrap();
    let again = SessionKey::from_base64("gen", &generated.to_base64()).unwrap();
    let (ring1, issued) = token_of(generated);
    let ring2 = SessionKeyring::new(again, []).unwrap();
    assert!(
        ring2
            .open(
                &issued.access_key_id,
                &issued.session_token,
                SystemTime::now()
            )
            .is_ok()
    );
    assert_eq!(ring1.current_id(), "gen");
    assert_ne!(
        SessionKey::generate("g").unwrap().to_base64().as_str(),
        SessionKey::generate("g").unwrap().to_base64().as_str()
    );

    let duplicate = SessionKeyring::new(
        SessionKey::new("a", KEY_A).unwrap(),
        [
            SessionKey::new("b", KEY_B).unwrap(),
            SessionKey::new("a", KEY_B).unwrap(),
        ],
    );
    assert!(matches!(duplicate, Err(StsError::Config(_))));
}

// --- expiry ----------------------------------------------------------------------------

#[test]
fn expired_sessions_are_refused() {
    let ring = ring_a();
    let mut claims = claims();
    claims.issued_at -= Duration::from_hours(2);
    claims.expires_at = claims.issued_at + Duration::from_hours(1);
    let issued = ring.seal(&claims).unwrap();
    assert_eq!(
        open_err(&ring, &issued.access_key_id, &issued.session_token),
        StsError::SessionExpired
    );

    // The boundary: valid until the second before `expires_at`.
    let fresh = ring.seal(&self::claims()).unwrap();
    let open_at = |at| ring.open(&fresh.access_key_id, &fresh.session_token, at);
    assert!(open_at(fresh.expiration - Duration::from_secs(1)).is_ok());
    assert_eq!(
        open_at(fresh.expiration).unwrap_err(),
        StsError::SessionExpired
    );
}

// --- credentials -----------------------------------------------------------------------

#[test]
fn access_key_ids_and_secrets_look_like_aws_and_are_unique() {
    let ring = ring_a();
    let claims = claims();
    let (mut akids, mut secrets, mut tokens) = (HashSet::new(), HashSet::new(), HashSet::new());
    for _ in 0..5000 {
        let issued = ring.seal(&claims).unwrap();
        let akid = &issued.access_key_id;
        assert_eq!(akid.len(), 20, "{akid}");
        assert!(akid.starts_with("ASIA"), "{akid}");
        assert!(
            akid[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{akid}"
        );
        let secret = issued.secret_access_key.expose();
        assert_eq!(secret.len(), 40);
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        );
        assert!(akids.insert(akid.clone()));
        assert!(secrets.insert(secret.to_owned()));
        assert!(tokens.insert(issued.session_token.clone()));
    }
}

#[test]
fn debug_output_never_shows_secrets_tokens_or_keys() {
    let key_b64 = data_encoding::BASE64.encode(&KEY_A);
    let key = SessionKey::from_base64("key-a", &key_b64).unwrap();
    let key_debug = format!("{key:?}");
    let ring = SessionKeyring::new(key, [SessionKey::new("key-b", KEY_B).unwrap()]).unwrap();
    let issued = ring.seal(&claims()).unwrap();
    let opened = ring
        .open(
            &issued.access_key_id,
            &issued.session_token,
            SystemTime::now(),
        )
        .unwrap();
    let secret = issued.secret_access_key.expose().to_owned();
    let outputs = [
        key_debug,
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{issued:?}"),
        format!("{issued:#?}"),
        format!("{opened:?}"),
        format!("{opened:#?}"),
        format!("{:?}", SessionCredentials::new(Arc::new(ring))),
    ];
    let key_bytes_debug = format!("{:?}", KEY_A.as_slice());
    for out in &outputs {
        assert!(!out.contains(&secret), "{out}");
        assert!(!out.contains(&issued.session_token), "{out}");
        assert!(!out.contains(&key_b64), "{out}");
        assert!(!out.contains("161, 161"), "{out}");
        assert!(!out.contains(&key_bytes_debug), "{out}");
    }
    assert!(outputs[0].contains("key-a"));
    assert!(outputs[1].contains("key-a") && outputs[1].contains("key-b"));
    assert!(outputs[3].contains(&issued.access_key_id));
}

// --- the resolver ----------------------------------------------------------------------

const STATIC_AK: &str = "AKIDALICE";
const STATIC_SK: &str = "alice-secret";

fn users() -> StaticCredentials {
    StaticCredentials::new([
        StaticUser {
            access_key_id: STATIC_AK.into(),
            secret: SecretKey::new(STATIC_SK),
            subject: "alice".into(),
            groups: vec!["admin".into()],
        },
        // A static key with the session prefix is never consulted without a token.
        StaticUser {
            access_key_id: "ASIASTATICUSER".into(),
            secret: SecretKey::new("s"),
            subject: "odd".into(),
            groups: Vec::new(),
        },
    ])
    .unwrap()
}

async fn resolve(
    resolver: &(impl CredentialResolver + ?Sized),
    access_key_id: &str,
    session_token: Option<&str>,
) -> Result<s3_auth::ResolvedCredentials, AuthError> {
    resolver
        .resolve(CredentialRequest {
            access_key_id,
            session_token,
        })
        .await
}

#[tokio::test]
async fn resolver_routes_tokens_sessions_and_long_term_keys() {
    let ring = Arc::new(ring_a());
    let issued = ring.seal(&claims()).unwrap();
    let mut expired_claims = claims();
    expired_claims.expires_at = expired_claims.issued_at - Duration::from_secs(1);
    let expired = ring.seal(&expired_claims).unwrap();

    let bare = SessionCredentials::new(Arc::clone(&ring));
    let with_users = SessionCredentials::new(Arc::clone(&ring)).fallback(users());
    for resolver in [&bare as &dyn CredentialResolver, &with_users] {
        let ok = resolve(resolver, &issued.access_key_id, Some(&issued.session_token))
            .await
            .unwrap();
        assert_eq!(ok.secret.expose(), issued.secret_access_key.expose());
        assert_eq!(ok.principal.subject, claims().subject);
        assert!(ok.principal.session.is_some());

        let err = |akid: &'static str, token: Option<&'static str>| async move {
            resolve(resolver, akid, token).await.unwrap_err()
        };
        assert_eq!(
            resolve(resolver, &issued.access_key_id, None)
                .await
                .unwrap_err(),
            AuthError::UnknownAccessKey
        );
        assert_eq!(
            err("ASIASTATICUSER", None).await,
            AuthError::UnknownAccessKey
        );
        assert_eq!(
            err(STATIC_AK, Some("garbage")).await,
            AuthError::InvalidToken
        );
        assert_eq!(
            resolve(resolver, STATIC_AK, Some(&issued.session_token))
                .await
                .unwrap_err(),
            AuthError::InvalidToken
        );
        assert_eq!(
            resolve(
                resolver,
                &expired.access_key_id,
                Some(&expired.session_token)
            )
            .await
            .unwrap_err(),
            AuthError::ExpiredToken
        );
        assert_eq!(
            resolve(
                resolver,
                &expired.access_key_id,
                Some(&issued.session_token)
            )
            .await
            .unwrap_err(),
            AuthError::InvalidToken
        );
    }
    assert_eq!(
        resolve(&bare, STATIC_AK, None).await.unwrap_err(),
        AuthError::UnknownAccessKey
    );
    let alice = resolve(&with_users, STATIC_AK, None).await.unwrap();
    assert_eq!(alice.principal.subject, "alice");
    assert_eq!(alice.principal.session, None);
    assert_eq!(
        resolve(&with_users, "AKIDNOBODY", None).await.unwrap_err(),
        AuthError::UnknownAccessKey
    );
}

#[tokio::test]
async fn removing_a_role_ends_its_sessions() {
    let ring = Arc::new(ring_a());
    let role_a = claims().role_arn;
    let role_b = "arn:aws:iam::000000000000:role/other";
    let issued = ring.seal(&claims()).unwrap();
    let token = Some(issued.session_token.as_str());
    let roles = |arns: &[&str]| Roles::new(arns.iter().map(|a| Role::new(*a).unwrap())).unwrap();

    let without_a = SessionCredentials::new(Arc::clone(&ring)).roles(roles(&[role_b]));
    assert_eq!(
        resolve(&without_a, &issued.access_key_id, token)
            .await
            .unwrap_err(),
        AuthError::InvalidToken
    );
    let no_roles = SessionCredentials::new(Arc::clone(&ring))
        .roles(roles(&[]))
        .fallback(users());
    assert_eq!(
        resolve(&no_roles, &issued.access_key_id, token)
            .await
            .unwrap_err(),
        AuthError::InvalidToken
    );
    // Long-term keys are not sessions of a role.
    assert!(resolve(&no_roles, STATIC_AK, None).await.is_ok());

    let with_a = SessionCredentials::new(Arc::clone(&ring))
        .roles(roles(&[&role_a, role_b]))
        .fallback(users());
    let ok = resolve(&with_a, &issued.access_key_id, token)
        .await
        .unwrap();
    assert_eq!(ok.principal.session.unwrap().role_arn, role_a);
}

// --- end to end: SigV4Layer + SessionCredentials ----------------------------------------

/// Calls `SigV4Layer` over `SessionCredentials` (static users as fallback) with `req`; the
/// inner service records the principal and answers 200.
async fn call(
    ring: &Arc<SessionKeyring>,
    req: Request<Full<Bytes>>,
) -> (Response<Full<Bytes>>, Option<Principal>) {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let resolver = SessionCredentials::new(Arc::clone(ring)).fallback(users());
    let service = ServiceBuilder::new()
        .layer(SigV4Layer::new(resolver))
        .service_fn(move |req: Request<SigV4Body<Full<Bytes>>>| {
            let record = Arc::clone(&record);
            async move {
                *record.lock().unwrap() = req.extensions().get::<Principal>().cloned();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }
        });
    let response = service.oneshot(req).await.unwrap();
    let principal = seen.lock().unwrap().clone();
    (response, principal)
}

/// A GET signed by `aws-sigv4` as `ak`/`sk` with `token`, in headers or presigned.
fn signed_get(ak: &str, sk: &str, token: Option<&str>, presigned: bool) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("http://s3.local/demo/docs/readme.md")
        .header("host", "s3.local")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    if presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_mins(5));
    }
    let identity: Identity =
        Credentials::new(ak, sk, token.map(str::to_owned), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = req.uri().to_string();
    let body = if presigned {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(b"")
    };
    let signable =
        SignableRequest::new("GET", &uri, [("host", "s3.local")].into_iter(), body).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

fn signed_with(issued: &IssuedCredentials, presigned: bool) -> Request<Full<Bytes>> {
    signed_get(
        &issued.access_key_id,
        issued.secret_access_key.expose(),
        Some(&issued.session_token),
        presigned,
    )
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
async fn issued_credentials_sign_requests_through_sigv4_layer() {
    let ring = Arc::new(ring_a());
    let claims = claims();
    let issued = ring.seal(&claims).unwrap();

    for presigned in [false, true] {
        let req = signed_with(&issued, presigned);
        assert_eq!(
            req.headers().contains_key("x-amz-security-token"),
            !presigned
        );
        let (response, principal) = call(&ring, req).await;
        assert_eq!(response.status(), StatusCode::OK, "presigned {presigned}");
        let principal = principal.unwrap();
        assert_eq!(principal.subject, claims.subject);
        assert_eq!(principal.groups, claims.groups);
        assert_eq!(
            principal.auth,
            if presigned {
                AuthMethod::Presigned
            } else {
                AuthMethod::SigV4
            }
        );
        let session = principal.session.unwrap();
        assert_eq!(session.role_arn, claims.role_arn);
        assert_eq!(session.session_name, claims.session_name);
        assert_eq!(session.policy.unwrap().source(), POLICY);
    }
}

#[tokio::test]
async fn refused_session_requests_get_the_s3_codes() {
    let ring = Arc::new(ring_a());
    let issued = ring.seal(&claims()).unwrap();
    let other = ring.seal(&claims()).unwrap();
    let mut expired_claims = claims();
    expired_claims.issued_at -= Duration::from_hours(2);
    expired_claims.expires_at = expired_claims.issued_at + Duration::from_hours(1);
    let expired = ring.seal(&expired_claims).unwrap();

    let cases = [
        (
            "wrong secret",
            signed_get(
                &issued.access_key_id,
                other.secret_access_key.expose(),
                Some(&issued.session_token),
                false,
            ),
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
        ),
        (
            "another session's token",
            signed_get(
                &issued.access_key_id,
                issued.secret_access_key.expose(),
                Some(&other.session_token),
                false,
            ),
            StatusCode::BAD_REQUEST,
            "InvalidToken",
        ),
        (
            "forged token",
            signed_get(
                &issued.access_key_id,
                issued.secret_access_key.expose(),
                Some("AQVrZXktYQ"),
                false,
            ),
            StatusCode::BAD_REQUEST,
            "InvalidToken",
        ),
        (
            "expired",
            signed_with(&expired, false),
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
        ),
        (
            "expired, presigned",
            signed_with(&expired, true),
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
        ),
        (
            "no token",
            signed_get(
                &issued.access_key_id,
                issued.secret_access_key.expose(),
                None,
                false,
            ),
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
        ),
    ];
    for (what, req, status, code) in cases {
        let (response, principal) = call(&ring, req).await;
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(error_code(response).await, code, "{what}");
        assert!(principal.is_none(), "{what}: inner service called");
    }
}

#[tokio::test]
async fn static_users_still_sign_through_the_fallback() {
    let ring = Arc::new(ring_a());
    let (response, principal) = call(&ring, signed_get(STATIC_AK, STATIC_SK, None, false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let principal = principal.unwrap();
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.session, None);

    let (response, _) = call(&ring, signed_get(STATIC_AK, "wrong", None, false)).await;
    assert_eq!(error_code(response).await, "SignatureDoesNotMatch");
    let (response, _) = call(&ring, signed_get("AKIDNOBODY", "x", None, false)).await;
    assert_eq!(error_code(response).await, "InvalidAccessKeyId");
}

// --- properties ------------------------------------------------------------------------

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_opens(token in ".{0,400}") {
        let ring = ring_a();
        proptest::prop_assert!(ring.open("ASIAAAAAAAAAAAAAAAAA", &token, SystemTime::now()).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_open(
        rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
    ) {
        let ring = ring_a();
        let mut bytes = b"\x01\x05key-a".to_vec();
        bytes.extend_from_slice(&rest);
        let err = ring
            .open("ASIAAAAAAAAAAAAAAAAA", &encode(&bytes), SystemTime::now())
            .unwrap_err();
        let expected = if bytes.len() < BODY_START + 16 {
            StsError::SessionTokenMalformed
        } else {
            StsError::SessionTokenInvalid
        };
        proptest::prop_assert_eq!(err, expected);
    }
}

#[test]
fn session_claims_serialize() {
    let claims = claims();
    let json = serde_json::to_string(&claims).unwrap();
    assert_eq!(
        serde_json::from_str::<SessionClaims>(&json).unwrap(),
        claims
    );
}
