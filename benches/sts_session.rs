//! Resolving a request's STS session: `SessionKeyring::open` (base64 decoding, AES-256-GCM
//! opening, claims decoding, expiry check) then `OpenedSession::into_principal` (the session
//! policy parsed once, then found in the keyring's cache), as `SessionCredentials` does per
//! request; next to a baseline measured in the
//! same run: raw aws-lc-rs AES-256-GCM opening of the same ciphertext with the same key,
//! nonce and associated data. Goal: ≤ 2 µs per request, session policy included.
//!
//! ```text
//! cargo bench --bench sts_session
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use s3_tower::sts::{IssuedCredentials, SessionClaims, SessionKey, SessionKeyring};
use serde_json::json;

use support::interleaved;

const KEY: [u8; 32] = [0x5a; 32];
const KEY_ID: &str = "2026-11";
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::demo","arn:aws:s3:::demo/*"]}]}"#;
/// The goal per request.
const GOAL_MICROS: f64 = 2.0;

/// One sealed session, and what the raw baseline needs to open its ciphertext.
struct Case {
    name: &'static str,
    ring: SessionKeyring,
    issued: IssuedCredentials,
    raw_key: LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: Vec<u8>,
    /// Ciphertext and tag.
    sealed: Vec<u8>,
}

impl Case {
    fn new(name: &'static str, policy: Option<&str>) -> Self {
        let ring = SessionKeyring::new(SessionKey::new(KEY_ID, KEY).unwrap(), []).unwrap();
        let now = SystemTime::now();
        let claims = SessionClaims {
            subject: "0b6f3c1e-6a53-4d3e-9b8e-2f1c0d9e8a71".into(),
            groups: vec!["analysts".into(), "readers".into()],
            claims: json!({"iss": "https://idp.example.com/realms/main", "aud": "s3-gateway"}),
            role_arn: "arn:aws:iam::000000000000:role/analyst".into(),
            session_name: "alice-notebook".into(),
            policy: policy.map(str::to_owned),
            issued_at: now,
            expires_at: now + Duration::from_hours(1),
        };
        let issued = ring.seal(&claims).unwrap();
        // The documented layout: version, id length, id, nonce, ciphertext and tag.
        let bytes = URL_SAFE_NO_PAD.decode(&issued.session_token).unwrap();
        let header = 2 + KEY_ID.len();
        let mut aad = bytes[..header].to_vec();
        aad.extend_from_slice(issued.access_key_id.as_bytes());
        let case = Self {
            name,
            ring,
            raw_key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap()),
            nonce: bytes[header..header + NONCE_LEN].try_into().unwrap(),
            aad,
            sealed: bytes[header + NONCE_LEN..].to_vec(),
            issued,
        };
        // Both paths open the token; neither accepts it tampered.
        let principal = case.ours().unwrap();
        assert_eq!(principal.subject, claims.subject);
        assert_eq!(
            principal
                .session
                .unwrap()
                .policy
                .map(|p| p.source().to_owned()),
            claims.policy
        );
        let mut buf = Vec::new();
        assert!(case.raw(&case.sealed, &mut buf).is_some());
        let mut tampered = case.sealed.clone();
        tampered[0] ^= 1;
        assert!(case.raw(&tampered, &mut buf).is_none());
        assert!(
            case.ring
                .open("ASIAOTHERKEYID000000", &case.issued.session_token, now)
                .is_err()
        );
        println!(
            "{name}: session token {} characters",
            case.issued.session_token.len()
        );
        case
    }

    /// What `SessionCredentials` does per request: open, then the principal and the secret.
    fn ours(&self) -> Option<s3_tower::core::Principal> {
        let session = self
            .ring
            .open(
                black_box(&self.issued.access_key_id),
                black_box(&self.issued.session_token),
                SystemTime::now(),
            )
            .ok()?;
        session
            .into_principal()
            .ok()
            .map(|(principal, _)| principal)
    }

    /// Raw AES-256-GCM opening of `sealed` (ciphertext and tag), copied into `buf` first
    /// (opening is in place).
    fn raw(&self, sealed: &[u8], buf: &mut Vec<u8>) -> Option<usize> {
        buf.clear();
        buf.extend_from_slice(black_box(sealed));
        self.raw_key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(&self.aad),
                buf,
            )
            .ok()
            .map(|plain| plain.len())
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case::new("with_policy", Some(POLICY)),
        Case::new("no_policy", None),
    ]
}

fn bench_sessions(c: &mut Criterion) {
    let cases = cases();
    for case in &cases {
        let mut group = c.benchmark_group(format!("sts_session_{}", case.name));
        let mut buf = Vec::with_capacity(case.sealed.len());
        group.bench_function("baseline_aes_256_gcm_open", |b| {
            b.iter(|| black_box(case.raw(&case.sealed, &mut buf).unwrap()));
        });
        group.bench_function("open_and_principal", |b| {
            b.iter(|| black_box(case.ours().unwrap()));
        });
        group.finish();
    }
    summary(&cases);
}

/// The medians of both paths per case, measured interleaved, and their ratio.
fn summary(cases: &[Case]) {
    const ITERS: u32 = 2000;
    for case in cases {
        let mut buf = Vec::with_capacity(case.sealed.len());
        let (raw, ours) = interleaved(
            41,
            || {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(case.raw(&case.sealed, &mut buf).unwrap());
                }
                start.elapsed() / ITERS
            },
            || {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(case.ours().unwrap());
                }
                start.elapsed() / ITERS
            },
        );
        let met = ours * 1e6 <= GOAL_MICROS;
        println!(
            "session {}: open + principal {:.2} µs, raw AES-256-GCM open {:.2} µs, ratio {:.2} (goal ≤ {GOAL_MICROS} µs: {})",
            case.name,
            ours * 1e6,
            raw * 1e6,
            ours / raw,
            if met { "met" } else { "NOT met" },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench_sessions
}
criterion_main!(benches);
