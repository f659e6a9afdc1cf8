//! JWT bearer authentication against an in-process OIDC provider (discovery + JWKS).

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s3_auth::jwt::{IssuerConfig, JwtConfigError, JwtValidator};
use s3_auth::{AuthError, JwtLayer};
use s3_core::{AuthMethod, Principal};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::{ServiceBuilder, ServiceExt};

const AUD: &str = "s3-gateway";

/// Test keys: RSA and EC P-256, each with its JWK.
struct Keys {
    rsa: EncodingKey,
    rsa_jwk: Jwk,
    rsa_public_der: Vec<u8>,
    ec: EncodingKey,
    ec_jwk: Jwk,
}

/// Reads one DER TLV: (tag, content, rest). Short and long lengths.
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] < 0x80 {
        (usize::from(input[1]), 2)
    } else {
        let n = usize::from(input[1] & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_tlv(pkcs8);
    let (_, _version, rest) = der_tlv(info);
    let (_, _algorithm, rest) = der_tlv(rest);
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa_pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = rsa_pair.as_der().unwrap();
        let rsa = EncodingKey::from_rsa_der(&pkcs8_to_pkcs1(pkcs8.as_ref()));
        let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
        rsa_jwk.common.key_id = Some("rsa-1".into());
        let rsa_public_der = aws_lc_rs::signature::KeyPair::public_key(&rsa_pair)
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec();

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let ec_pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EncodingKey::from_ec_der(ec_pkcs8.as_ref());
        let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
        ec_jwk.common.key_id = Some("ec-1".into());
        Keys {
            rsa,
            rsa_jwk,
            rsa_public_der,
            ec,
            ec_jwk,
        }
    })
}

/// An in-process IdP serving discovery and JWKS; counts JWKS fetches. The JWKS answer is
/// a status and a body, so that it can also fail.
struct Idp {
    issuer: String,
    jwks: Arc<Mutex<(StatusCode, String)>>,
    jwks_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Idp {
    async fn start(jwks: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
        let hits = Arc::clone(&jwks_hits);
        let jwks = Arc::new(Mutex::new((StatusCode::OK, jwks.to_string())));
        let served = Arc::clone(&jwks);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let discovery = discovery.clone();
                let jwks = Arc::clone(&served);
                let hits = Arc::clone(&hits);
                let service = service_fn(move |req: Request<Incoming>| {
                    let body = match req.uri().path() {
                        "/.well-known/openid-configuration" => {
                            Some((StatusCode::OK, discovery.to_string()))
                        }
                        "/jwks" => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            Some(jwks.lock().unwrap().clone())
                        }
                        _ => None,
                    };
                    async move {
                        let response = match body {
                            Some((status, body)) => {
                                let mut r = Response::new(Full::new(Bytes::from(body)));
                                *r.status_mut() = status;
                                r
                            }
                            None => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            issuer,
            jwks,
            jwks_hits,
            task,
        }
    }

    async fn standard() -> Self {
        let k = keys();
        let oct =
            json!({"kty": "oct", "kid": "oct-1", "k": URL_SAFE_NO_PAD.encode(&k.rsa_public_der)});
        Self::start(json!({"keys": [k.rsa_jwk, k.ec_jwk, oct]})).await
    }

    /// Publishes another JWKS from now on (a key rotation at the IdP).
    fn set_jwks(&self, jwks: &Value) {
        *self.jwks.lock().unwrap() = (StatusCode::OK, jwks.to_string());
    }

    /// Answers JWKS fetches with `status` and `body` from now on (a failing IdP).
    fn set_jwks_answer(&self, status: StatusCode, body: &str) {
        *self.jwks.lock().unwrap() = (status, body.to_owned());
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Stops the server and every open connection.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    fn config(&self) -> IssuerConfig {
        IssuerConfig::new(&self.issuer)
            .audience(AUD)
            .groups_claim("realm_access.roles")
            .extra_claim("email")
            .leeway(Duration::from_secs(5))
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "sub": "alice",
        "aud": AUD,
        "exp": now() + 300,
        "iat": now(),
        "email": "alice@example.com",
        "realm_access": {"roles": ["admin", "dev"]},
    })
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, "rsa-1", &keys().rsa, claims)
}

fn validator(configs: impl IntoIterator<Item = IssuerConfig>) -> JwtValidator {
    JwtValidator::with_http_timeout(configs, Duration::from_secs(2)).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_with_nested_groups() {
    let idp = Idp::standard().await;
    let v = validator([idp.config()]);
    let p = v.validate(&rs256(&claims(&idp.issuer))).await.unwrap();
    assert_eq!(p.subject, "alice");
    assert_eq!(p.groups, ["admin", "dev"]);
    assert_eq!(p.auth, AuthMethod::Jwt);
    assert!(p.session.is_none());
    assert_eq!(p.claims["email"], "alice@example.com");
    assert_eq!(p.claims["iss"], json!(idp.issuer));
    assert_eq!(p.claims["aud"], json!(AUD));

    let es = sign(Algorithm::ES256, "ec-1", &keys().ec, &claims(&idp.issuer));
    let p = v.validate(&es).await.unwrap();
    assert_eq!(p.subject, "alice");
    // Both keys came from one JWKS fetch.
    assert_eq!(idp.hits(), 1);

    // A string groups claim and a custom subject claim.
    let v = validator([IssuerConfig::new(&idp.issuer)
        .audience(AUD)
        .subject_claim("email")
        .groups_claim("group")]);
    let mut c = claims(&idp.issuer);
    c["group"] = json!("ops");
    let p = v.validate(&rs256(&c)).await.unwrap();
    assert_eq!(p.subject, "alice@example.com");
    assert_eq!(p.groups, ["ops"]);
    idp.stop().await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let idp = Idp::standard().await;
    let v = validator([idp.config()]);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&idp.issuer).to_string());
    let token = format!("{header}.{payload}.");
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtAlgorithmNotAllowed("none".into())
    );
    assert_eq!(idp.hits(), 0);
    idp.stop().await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let idp = Idp::standard().await;
    let v = validator([idp.config()]);
    let secret = EncodingKey::from_secret(&keys().rsa_public_der);
    for kid in ["rsa-1", "oct-1"] {
        let token = sign(Algorithm::HS256, kid, &secret, &claims(&idp.issuer));
        assert_eq!(
            v.validate(&token).await.unwrap_err(),
            AuthError::JwtAlgorithmNotAllowed("HS256".into())
        );
    }
    // HMAC cannot even be configured.
    let err = JwtValidator::new([idp
        .config()
        .algorithms([Algorithm::RS256, Algorithm::HS256])])
    .unwrap_err();
    assert!(matches!(
        err,
        s3_auth::jwt::JwtConfigError::SymmetricAlgorithm { .. }
    ));
    // The oct key of the JWKS is never a verification key.
    let token = sign(Algorithm::RS256, "oct-1", &keys().rsa, &claims(&idp.issuer));
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtUnknownKey
    );
    // An RS256 token naming the EC key.
    let token = sign(Algorithm::RS256, "ec-1", &keys().rsa, &claims(&idp.issuer));
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtKeyMismatch
    );
    idp.stop().await;
}

#[tokio::test]
async fn wrong_iss_aud_exp_nbf() {
    let idp = Idp::standard().await;
    let v = validator([idp.config()]);

    let mut c = claims(&idp.issuer);
    c["iss"] = json!("https://evil.example.com");
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtUnknownIssuer
    );

    let mut c = claims(&idp.issuer);
    c["aud"] = json!(["other-app"]);
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtWrongAudience
    );

    let mut c = claims(&idp.issuer);
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtMissingClaim("aud".into())
    );

    let mut c = claims(&idp.issuer);
    c["exp"] = json!(now() - 60);
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtExpired
    );
    assert_eq!(
        AuthError::JwtExpired.to_s3_error().message(),
        "The bearer token is expired"
    );
    // Within the leeway (5 s) it is still accepted.
    c["exp"] = json!(now() - 2);
    v.validate(&rs256(&c)).await.unwrap();

    let mut c = claims(&idp.issuer);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtMissingClaim("exp".into())
    );

    let mut c = claims(&idp.issuer);
    c["nbf"] = json!(now() + 120);
    assert_eq!(
        v.validate(&rs256(&c)).await.unwrap_err(),
        AuthError::JwtNotYetValid
    );

    // Tampered payload: the signature no longer verifies.
    let token = rs256(&claims(&idp.issuer));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims(&idp.issuer);
    c["sub"] = json!("root");
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_eq!(
        v.validate(&parts.join(".")).await.unwrap_err(),
        AuthError::JwtBadSignature
    );
    idp.stop().await;
}

#[tokio::test]
async fn unknown_kid_refresh_is_rate_limited() {
    let idp = Idp::standard().await;
    let interval = Duration::from_millis(300);
    let v = validator([idp.config().min_refresh_interval(interval)]);
    let random = |i: usize| {
        sign(
            Algorithm::RS256,
            &format!("random-{i}"),
            &keys().rsa,
            &claims(&idp.issuer),
        )
    };
    v.validate(&rs256(&claims(&idp.issuer))).await.unwrap();
    assert_eq!(idp.hits(), 1);
    // Right after a fetch, a flood of unknown kids does not refetch.
    for i in 0..50 {
        assert_eq!(
            v.validate(&random(i)).await.unwrap_err(),
            AuthError::JwtUnknownKey
        );
    }
    assert_eq!(idp.hits(), 1);
    // Once the interval has passed, one unknown kid refetches, the flood after it does not.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    for i in 50..100 {
        assert_eq!(
            v.validate(&random(i)).await.unwrap_err(),
            AuthError::JwtUnknownKey
        );
    }
    assert_eq!(idp.hits(), 2);
    // Concurrent unknown kids: at most one fetch (single flight + interval).
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let v = Arc::new(v);
    let mut tasks = JoinSet::new();
    for i in 100..150 {
        let v = Arc::clone(&v);
        let token = random(i);
        tasks.spawn(async move { v.validate(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap_err(), AuthError::JwtUnknownKey);
    }
    assert_eq!(idp.hits(), 3);
    // Known keys are served from the cache.
    v.validate(&rs256(&claims(&idp.issuer))).await.unwrap();
    assert_eq!(idp.hits(), 3);
    idp.stop().await;
}

#[tokio::test]
async fn second_idp_not_configured() {
    let idp = Idp::standard().await;
    let other = Idp::standard().await;
    let v = validator([idp.config()]);
    let token = rs256(&claims(&other.issuer));
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtUnknownIssuer
    );
    assert_eq!(other.hits(), 0);

    // Both configured: each token is checked against its own issuer. The same `sub` from two
    // issuers is the same subject, told apart by claims.iss ...
    let v = validator([idp.config(), other.config()]);
    let theirs = v.validate(&token).await.unwrap();
    let ours = v.validate(&rs256(&claims(&idp.issuer))).await.unwrap();
    assert_eq!((idp.hits(), other.hits()), (1, 1));
    assert_eq!(
        (ours.subject.as_str(), theirs.subject.as_str()),
        ("alice", "alice")
    );
    assert_eq!(theirs.claims["iss"], other.issuer.as_str());
    // ... or kept apart by a subject prefix on every issuer.
    let v = validator([
        idp.config().subject_prefix("main:"),
        other.config().subject_prefix("partner:"),
    ]);
    assert_eq!(v.validate(&token).await.unwrap().subject, "partner:alice");
    assert_eq!(
        v.validate(&rs256(&claims(&idp.issuer)))
            .await
            .unwrap()
            .subject,
        "main:alice"
    );
    idp.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn malformed_tokens() {
    let idp = Idp::standard().await;
    let v = validator([idp.config()]);
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig"] {
        assert!(
            matches!(
                v.validate(token).await.unwrap_err(),
                AuthError::JwtMalformed(_)
            ),
            "{token}"
        );
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let token = format!("{header}.not-json.sig");
    assert!(matches!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtMalformed(_)
    ));
    let token = format!(
        "{header}.{}.sig",
        URL_SAFE_NO_PAD.encode(b"{\"sub\":\"x\"}")
    );
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwtMissingClaim("iss".into())
    );
    idp.stop().await;
}

#[tokio::test]
async fn jwks_down_at_start_is_503() {
    // A port with nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let v = validator([IssuerConfig::new(&issuer).audience(AUD)]);
    let err = v.validate(&rs256(&claims(&issuer))).await.unwrap_err();
    assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
    let s3 = err.to_s3_error();
    assert_eq!(s3.code().as_str(), "ServiceUnavailable");
    assert_eq!(s3.code().status(), StatusCode::SERVICE_UNAVAILABLE);
    // Within the refresh interval the failure is remembered, not retried.
    let err = v.validate(&rs256(&claims(&issuer))).await.unwrap_err();
    assert!(matches!(err, AuthError::JwksUnavailable(_)));
    assert!(v.prefetch().await.is_err());
}

#[tokio::test]
async fn cached_keys_survive_the_idp() {
    let idp = Idp::standard().await;
    let issuer = idp.issuer.clone();
    let v = validator([idp.config().min_refresh_interval(Duration::ZERO)]);
    v.prefetch().await.unwrap();
    idp.stop().await;
    let p = v.validate(&rs256(&claims(&issuer))).await.unwrap();
    assert_eq!(p.subject, "alice");
    let es = sign(Algorithm::ES256, "ec-1", &keys().ec, &claims(&issuer));
    v.validate(&es).await.unwrap();
    // An unknown kid cannot be checked while the IdP is down.
    let token = sign(Algorithm::RS256, "rotated", &keys().rsa, &claims(&issuer));
    assert!(matches!(
        v.validate(&token).await.unwrap_err(),
        AuthError::JwksUnavailable(_)
    ));
    // ... and the cached keys still work after that failed refresh.
    v.validate(&rs256(&claims(&issuer))).await.unwrap();
}

#[tokio::test]
async fn background_refresh_follows_the_idp_key_rotation() {
    let idp = Idp::standard().await;
    let issuer = idp.issuer.clone();
    let every = Duration::from_millis(100);
    let v = Arc::new(validator([idp
        .config()
        // Unknown kids never refetch in this test: only the background task does.
        .min_refresh_interval(Duration::from_hours(1))
        .key_refresh_interval(every)]));
    v.prefetch().await.unwrap();
    assert_eq!(idp.hits(), 1);
    let refresh = v.spawn_key_refresh();

    // The IdP rotates: the RSA key is withdrawn, a new EC key id is published.
    let mut rotated = keys().ec_jwk.clone();
    rotated.common.key_id = Some("ec-2".into());
    idp.set_jwks(&json!({ "keys": [rotated] }));
    let fetched = idp.hits();
    wait_for(|| idp.hits() >= fetched + 2).await;

    // The new kid is known (the request path never fetches here) ...
    let es = sign(Algorithm::ES256, "ec-2", &keys().ec, &claims(&issuer));
    assert_eq!(v.validate(&es).await.unwrap().subject, "alice");
    // ... and the withdrawn key is no longer accepted.
    assert_eq!(
        v.validate(&rs256(&claims(&issuer))).await.unwrap_err(),
        AuthError::JwtUnknownKey
    );

    // The IdP goes down: refreshes fail, the cached keys stay in force.
    idp.stop().await;
    tokio::time::sleep(every * 3).await;
    assert_eq!(v.validate(&es).await.unwrap().subject, "alice");

    // The task ends with the validator.
    drop(v);
    tokio::time::timeout(Duration::from_secs(5), refresh)
        .await
        .expect("the refresh task ends once the validator is dropped")
        .unwrap();
}

#[tokio::test]
async fn background_refresh_off_with_a_zero_interval() {
    let idp = Idp::standard().await;
    let v = Arc::new(validator([idp
        .config()
        .key_refresh_interval(Duration::ZERO)]));
    v.prefetch().await.unwrap();
    let refresh = v.spawn_key_refresh();
    // With no issuer to refresh the task ends at once.
    tokio::time::timeout(Duration::from_secs(5), refresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(idp.hits(), 1);
    idp.stop().await;
}

/// A prefix on one issuer only would let the main IdP's `partner:alice` be the partner's
/// `alice`; a prefix starting another's (`p:` and `p:eu:`) collides the same way.
#[test]
fn subject_prefixes_that_can_collide_are_refused() {
    let main = || IssuerConfig::new("https://main.example.com").audience(AUD);
    let partner = || IssuerConfig::new("https://partner.example.com").audience(AUD);
    let third = || IssuerConfig::new("https://third.example.com").audience(AUD);
    let refused = |configs: Vec<IssuerConfig>| JwtValidator::new(configs).unwrap_err();

    let err = refused(vec![main(), partner().subject_prefix("partner:")]);
    assert_eq!(
        err,
        JwtConfigError::SubjectPrefixCollision {
            issuer: "https://main.example.com".to_owned(),
            other: "https://partner.example.com".to_owned(),
            reason: "has no subject prefix while another issuer has one".to_owned(),
        }
    );
    assert_eq!(
        err.to_string(),
        "issuer \"https://main.example.com\" has no subject prefix while another issuer has one \
         (issuer \"https://partner.example.com\"): with several issuers, subject prefixes keep \
         users apart only if every issuer has a non-empty one and none starts another"
    );
    // An empty prefix is no prefix.
    assert!(matches!(
        refused(vec![
            main().subject_prefix(""),
            partner().subject_prefix("p:")
        ]),
        JwtConfigError::SubjectPrefixCollision { .. }
    ));
    assert_eq!(
        refused(vec![
            main().subject_prefix("p:"),
            third().subject_prefix("q:"),
            partner().subject_prefix("p:eu:"),
        ]),
        JwtConfigError::SubjectPrefixCollision {
            issuer: "https://partner.example.com".to_owned(),
            other: "https://main.example.com".to_owned(),
            reason: "subject prefix \"p:eu:\" starts with the other's \"p:\"".to_owned(),
        }
    );
    assert!(matches!(
        refused(vec![
            main().subject_prefix("x:"),
            partner().subject_prefix("x:")
        ]),
        JwtConfigError::SubjectPrefixCollision { .. }
    ));
    // Accepted: one issuer with a prefix, several without, several with distinct ones.
    JwtValidator::new([main().subject_prefix("main:")]).unwrap();
    JwtValidator::new([main(), partner()]).unwrap();
    JwtValidator::new([
        main().subject_prefix("main:"),
        partner().subject_prefix("partner:"),
        third().subject_prefix("third:"),
    ])
    .unwrap();
}

#[tokio::test]
async fn background_refresh_off_with_an_interval_too_long_to_schedule() {
    let idp = Idp::standard().await;
    let v = Arc::new(validator([idp
        .config()
        .key_refresh_interval(Duration::MAX)]));
    v.prefetch().await.unwrap();
    let refresh = v.spawn_key_refresh();
    // `Duration::MAX` cannot be added to now: treated as never, and the task ends at once
    // (it does not panic).
    tokio::time::timeout(Duration::from_secs(5), refresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(idp.hits(), 1);
    v.validate(&rs256(&claims(&idp.issuer))).await.unwrap();
    idp.stop().await;
}

#[tokio::test]
async fn a_failing_background_refresh_keeps_the_cached_keys() {
    let idp = Idp::standard().await;
    let issuer = idp.issuer.clone();
    let v = Arc::new(validator([idp
        .config()
        .min_refresh_interval(Duration::from_hours(1))
        .key_refresh_interval(Duration::from_millis(50))]));
    v.prefetch().await.unwrap();
    let refresh = v.spawn_key_refresh();
    let es = sign(Algorithm::ES256, "ec-1", &keys().ec, &claims(&issuer));
    for (status, body) in [
        (StatusCode::INTERNAL_SERVER_ERROR, r#"{"keys": []}"#),
        (StatusCode::OK, "not json"),
        (StatusCode::OK, r#"{"keys": "#),
        (StatusCode::OK, r#"{"no_keys": []}"#),
    ] {
        idp.set_jwks_answer(status, body);
        let fetched = idp.hits();
        wait_for(|| idp.hits() >= fetched + 2).await;
        assert_eq!(
            v.validate(&rs256(&claims(&issuer))).await.unwrap().subject,
            "alice",
            "{status} {body}"
        );
        assert_eq!(
            v.validate(&es).await.unwrap().subject,
            "alice",
            "{status} {body}"
        );
    }
    refresh.abort();
    idp.stop().await;
}

#[tokio::test]
async fn an_empty_jwks_withdraws_every_key() {
    let idp = Idp::standard().await;
    let issuer = idp.issuer.clone();
    let v = Arc::new(validator([idp
        .config()
        .min_refresh_interval(Duration::from_hours(1))
        .key_refresh_interval(Duration::from_millis(50))]));
    v.prefetch().await.unwrap();
    let refresh = v.spawn_key_refresh();
    idp.set_jwks(&json!({ "keys": [] }));
    let fetched = idp.hits();
    wait_for(|| idp.hits() >= fetched + 2).await;
    let es = sign(Algorithm::ES256, "ec-1", &keys().ec, &claims(&issuer));
    for token in [rs256(&claims(&issuer)), es] {
        assert_eq!(
            v.validate(&token).await.unwrap_err(),
            AuthError::JwtUnknownKey
        );
    }
    refresh.abort();
    idp.stop().await;
}

/// Polls `done` every 10 ms for up to 5 s.
async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn explicit_jwks_url_skips_discovery() {
    let idp = Idp::standard().await;
    // The issuer in tokens differs from the server URL: only jwks_url is fetched.
    let issuer = "https://idp.example.com/realms/main";
    let v = validator([IssuerConfig::new(issuer)
        .jwks_url(format!("{}/jwks", idp.issuer))
        .audience(AUD)]);
    let p = v.validate(&rs256(&claims(issuer))).await.unwrap();
    assert_eq!(p.subject, "alice");
    assert!(p.groups.is_empty());
    idp.stop().await;
}

type Body = Full<Bytes>;

/// The inner service: answers with the principal's subject, or `none`.
fn echo_service() -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<Body>| async move {
        let who = req.extensions().get::<Principal>().map_or_else(
            || "none".to_owned(),
            |p| format!("{}:{}", p.auth.as_str(), p.subject),
        );
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
            "{who}|{auth}"
        )))))
    })
}

async fn call(layer: JwtLayer, req: Request<Body>) -> (StatusCode, String) {
    let service = ServiceBuilder::new().layer(layer).service(echo_service());
    let response = service.oneshot(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn layer() {
    let idp = Idp::standard().await;
    let layer = JwtLayer::new(validator([idp.config()]));
    let token = rs256(&claims(&idp.issuer));

    // Principal inserted; the token is not passed inward.
    let req = Request::get("/bucket/key")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::default())
        .unwrap();
    assert_eq!(
        call(layer.clone(), req).await,
        (StatusCode::OK, "jwt:alice|".into())
    );

    // No token, or a SigV4 header: passed inward untouched.
    let req = Request::get("/bucket/key").body(Body::default()).unwrap();
    assert_eq!(
        call(layer.clone(), req).await,
        (StatusCode::OK, "none|".into())
    );
    let sigv4 = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=abc";
    let req = Request::get("/bucket/key")
        .header("authorization", sigv4)
        .body(Body::default())
        .unwrap();
    assert_eq!(
        call(layer.clone(), req).await,
        (StatusCode::OK, format!("none|{sigv4}"))
    );

    // Bearer header + presigned query.
    let req = Request::get("/bucket/key?X-Amz-Credential=AK%2F20260101&X-Amz-Signature=abc")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::default())
        .unwrap();
    let (status, body) = call(layer.clone(), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
    assert!(body.contains("Only one auth mechanism allowed"), "{body}");

    // A custom bearer header next to a SigV4 Authorization header.
    let custom = layer
        .clone()
        .header(http::HeaderName::from_static("x-auth-token"));
    let req = Request::get("/bucket/key")
        .header("x-auth-token", token.clone())
        .header("authorization", sigv4)
        .body(Body::default())
        .unwrap();
    let (status, body) = call(custom.clone(), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Only one auth mechanism allowed"), "{body}");
    // The custom header alone authenticates.
    let req = Request::get("/bucket/key")
        .header("x-auth-token", token.clone())
        .body(Body::default())
        .unwrap();
    assert_eq!(
        call(custom, req).await,
        (StatusCode::OK, "jwt:alice|".into())
    );

    // An invalid token: 403 AccessDenied, never passed inward.
    let mut c = claims(&idp.issuer);
    c["exp"] = json!(now() - 600);
    let req = Request::get("/bucket/key")
        .header("authorization", format!("Bearer {}", rs256(&c)))
        .body(Body::default())
        .unwrap();
    let (status, body) = call(layer.clone(), req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(body.contains("The bearer token is expired"), "{body}");
    assert!(!body.contains(&token[..20]));
    idp.stop().await;
}

/// JwtLayer outside SigV4Layer: a bearer request reaches the service as the JWT principal;
/// a request without credentials is still refused by SigV4Layer.
#[tokio::test]
async fn jwt_layer_outside_sigv4_layer() {
    use s3_auth::{SigV4Body, SigV4Layer, StaticCredentials};

    let idp = Idp::standard().await;
    let service = ServiceBuilder::new()
        .layer(JwtLayer::new(validator([idp.config()])))
        .layer(SigV4Layer::new(StaticCredentials::new([]).unwrap()))
        .service(tower::service_fn(
            |req: Request<SigV4Body<Body>>| async move {
                let who = req
                    .extensions()
                    .get::<Principal>()
                    .map(|p| format!("{}:{}", p.auth.as_str(), p.subject))
                    .unwrap_or_default();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who))))
            },
        ));
    let token = rs256(&claims(&idp.issuer));
    let req = Request::get("http://s3.local/bucket/key")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::default())
        .unwrap();
    let response = service.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "jwt:alice");

    let req = Request::get("http://s3.local/bucket/key")
        .body(Body::default())
        .unwrap();
    let response = service.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    idp.stop().await;
}
