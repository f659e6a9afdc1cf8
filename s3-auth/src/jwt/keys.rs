//! Per-issuer JWKS cache: keys by `kid`, refetched on an unknown `kid` at most once per
//! `min_refresh_interval` and on demand by the background refresh, kept while the IdP is
//! unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use super::config::{IssuerConfig, JwtConfigError};
use crate::error::AuthError;

/// Largest discovery document or JWKS accepted.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// The HTTP client fetching discovery documents and JWKS.
#[derive(Clone, Debug)]
pub(crate) struct HttpFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpFetcher {
    pub(crate) fn new(timeout: Duration) -> Result<Self, JwtConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JwtConfigError::HttpClient(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// GETs `url` and parses its JSON body.
    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let request = Request::get(url)
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| format!("invalid URL {url}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("GET {url}: status {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(|e| format!("GET {url}: {e}"))
        };
        let body = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("GET {url}: no answer within {:?}", self.timeout))??;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: invalid JSON: {e}"))
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// A verification key from the JWKS.
#[derive(Clone)]
pub(crate) struct CachedKey {
    pub(crate) key: DecodingKey,
    pub(crate) family: AlgorithmFamily,
    /// The JWK's `alg`, when it states one.
    pub(crate) algorithm: Option<Algorithm>,
}

impl CachedKey {
    /// Whether a token signed with `alg` may be verified with this key.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.algorithm.is_none_or(|a| a == alg)
    }
}

#[derive(Default)]
struct CacheState {
    /// Keys by `kid`; keys without a `kid` are stored under `""`.
    keys: HashMap<String, Arc<CachedKey>>,
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
}

/// How a key lookup ended.
pub(crate) enum Lookup {
    Found(Arc<CachedKey>),
    /// The JWKS was fetched (or recently fetched) successfully and has no such key.
    Unknown,
}

/// The key cache of one issuer.
pub(crate) struct KeyCache {
    state: Mutex<CacheState>,
    /// Single flight: one fetch at a time per issuer.
    refresh: tokio::sync::Mutex<()>,
}

impl KeyCache {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(CacheState::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: &str) -> Option<Arc<CachedKey>> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.keys.get(kid).cloned()
    }

    /// The key `kid` (`""` for a token without `kid`), fetching the JWKS when it is not
    /// cached and the last fetch is older than the configured interval.
    pub(crate) async fn lookup(
        &self,
        kid: &str,
        config: &IssuerConfig,
        fetcher: &HttpFetcher,
    ) -> Result<Lookup, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(Lookup::Found(key));
        }
        let _flight = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(Lookup::Found(key));
        }
        {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = state
                .last_attempt
                .is_some_and(|at| at.elapsed() < config.min_refresh_interval);
            if recent {
                return match &state.last_error {
                    Some(error) => Err(AuthError::JwksUnavailable(error.clone())),
                    None => Ok(Lookup::Unknown),
                };
            }
        }
        self.fetch_and_store(config, fetcher).await?;
        Ok(self.cached(kid).map_or(Lookup::Unknown, Lookup::Found))
    }

    /// Fetches the JWKS now, whatever the time of the last fetch, and replaces the cached
    /// keys with it: a key the issuer no longer publishes stops being accepted. On failure
    /// the cached keys stay in force.
    pub(crate) async fn refresh(
        &self,
        config: &IssuerConfig,
        fetcher: &HttpFetcher,
    ) -> Result<(), AuthError> {
        let _flight = self.refresh.lock().await;
        self.fetch_and_store(config, fetcher).await
    }

    /// Fetches and stores the keys; the caller holds the single-flight lock.
    async fn fetch_and_store(
        &self,
        config: &IssuerConfig,
        fetcher: &HttpFetcher,
    ) -> Result<(), AuthError> {
        let jwks_uri = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.last_attempt = Some(Instant::now());
            state.jwks_uri.clone()
        };
        let result = self.fetch(jwks_uri, config, fetcher).await;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((uri, keys)) => {
                tracing::debug!(issuer = %config.issuer, keys = keys.len(), "JWKS refreshed");
                state.jwks_uri = Some(uri);
                state.keys = keys;
                state.last_error = None;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(issuer = %config.issuer, %error, "JWKS refresh failed; keeping cached keys");
                // The JWKS may have moved: ask the discovery document again next time.
                state.jwks_uri = None;
                state.last_error = Some(error.clone());
                Err(AuthError::JwksUnavailable(error))
            }
        }
    }

    async fn fetch(
        &self,
        known_uri: Option<String>,
        config: &IssuerConfig,
        fetcher: &HttpFetcher,
    ) -> Result<(String, HashMap<String, Arc<CachedKey>>), String> {
        let uri = match known_uri.or_else(|| config.jwks_url.clone()) {
            Some(uri) => uri,
            None => {
                let discovery: Discovery = fetcher.get_json(&config.discovery_url()).await?;
                if discovery.issuer != config.issuer {
                    return Err(format!(
                        "the discovery document names issuer {:?}, expected {:?}",
                        discovery.issuer, config.issuer
                    ));
                }
                discovery.jwks_uri
            }
        };
        let jwks: RawJwks = fetcher.get_json(&uri).await?;
        Ok((uri, parse_keys(jwks.keys)))
    }
}

/// The usable signature keys of a JWKS; `oct` keys, encryption keys and keys that do not
/// parse are skipped.
fn parse_keys(keys: Vec<serde_json::Value>) -> HashMap<String, Arc<CachedKey>> {
    let mut out = HashMap::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
            // Symmetric keys have no business in a public JWKS; never verify with one.
            _ => continue,
        };
        let algorithm = match jwk.common.key_algorithm {
            None => None,
            Some(alg) => match key_algorithm(alg) {
                Some(alg) if alg.family() == family => Some(alg),
                _ => continue,
            },
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        out.insert(
            kid,
            Arc::new(CachedKey {
                key,
                family,
                algorithm,
            }),
        );
    }
    out
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
