//! What the benches share: an IdP's signing keys, a JWKS endpoint on 127.0.0.1, a server
//! for a tower service on 127.0.0.1, and interleaved timing.

#![allow(dead_code)] // each bench uses a different part

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use tokio::net::TcpListener;

/// The error type of the bodies the benches serve.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One signing key, as the IdP holds it, and its public JWK.
pub(crate) struct SigningKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: &'static str,
    pub(crate) key: EncodingKey,
    pub(crate) jwk: Jwk,
}

impl SigningKey {
    /// A fresh RS256 key (2048 bits), kid `rsa-1`.
    pub(crate) fn rsa() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        // A 2048-bit key's PKCS#8 wrapper is a fixed 26 bytes: SEQUENCE, version,
        // rsaEncryption, then the OCTET STRING (long form, two length bytes) holding the
        // PKCS#1 key jsonwebtoken wants.
        let pkcs8 = pkcs8.as_ref();
        assert_eq!(pkcs8[22..24], [0x04, 0x82]);
        let key = EncodingKey::from_rsa_der(&pkcs8[26..]);
        Self::new(Algorithm::RS256, "rsa-1", key)
    }

    /// A fresh ES256 key (P-256), kid `ec-1`.
    pub(crate) fn ec() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::new(
            Algorithm::ES256,
            "ec-1",
            EncodingKey::from_ec_der(pkcs8.as_ref()),
        )
    }

    fn new(alg: Algorithm, kid: &'static str, key: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        Self { alg, kid, key, jwk }
    }

    /// A token with `claims`, naming this key's kid.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// Serves `jwks` (`{"keys": [...]}`) on every path of a server on 127.0.0.1; returns its
/// URL, the issuer.
pub(crate) async fn serve_jwks(jwks: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let body = Bytes::from(jwks.to_string());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            let service = service_fn(move |_: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    issuer
}

/// Serves `service` on a fresh loopback port; returns `http://127.0.0.1:<port>`.
pub(crate) async fn serve<S, B>(service: S) -> String
where
    S: tower::Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Per-iteration times of `rounds` batches of `a` and of `b`, run alternately (which goes
/// first alternates too), so that a noisy machine affects both alike.
pub(crate) fn interleaved_times(
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for i in 0..rounds {
        if i % 2 == 0 {
            ta.push(a());
            tb.push(b());
        } else {
            tb.push(b());
            ta.push(a());
        }
    }
    (ta, tb)
}

/// The medians, in seconds, of [`interleaved_times`].
pub(crate) fn interleaved(
    rounds: usize,
    a: impl FnMut() -> Duration,
    b: impl FnMut() -> Duration,
) -> (f64, f64) {
    let median = |mut times: Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2].as_secs_f64()
    };
    let (ta, tb) = interleaved_times(rounds, a, b);
    (median(ta), median(tb))
}
