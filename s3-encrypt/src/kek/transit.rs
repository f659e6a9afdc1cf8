//! [`TransitKek`]: a key-encryption key in OpenBao/Vault Transit.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{DataKey, KekFuture, KeyContext, KeyEncryptionKey, WrappedKey};
use crate::error::EncryptError;

/// Largest response accepted from the key service.
const MAX_RESPONSE: usize = 256 * 1024;
/// A login token is replaced when less than this share of its lifetime is left.
const RENEW_WHEN_LEFT: f64 = 0.25;

/// How a [`TransitKek`] authenticates.
#[derive(Clone)]
pub enum TransitAuth {
    /// A token sent as `X-Vault-Token` as is (a periodic or long-lived token; it is not
    /// renewed).
    Token(String),
    /// AppRole login (`POST /v1/auth/<mount>/login`); the token is replaced by a new login
    /// before it expires, and once when the service says it is no longer valid.
    AppRole {
        /// The auth mount, usually `approle`.
        mount: String,
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: String,
    },
}

impl fmt::Debug for TransitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(..)"),
            Self::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for TransitAuth {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        match self {
            Self::Token(token) => token.zeroize(),
            Self::AppRole { secret_id, .. } => secret_id.zeroize(),
        }
    }
}

/// Where a [`TransitKek`]'s key is and how to reach it.
#[derive(Debug, Clone)]
pub struct TransitConfig {
    /// The server, e.g. `https://bao.example.eu:8200` (no `/v1`).
    pub address: String,
    /// The Transit mount path, usually `transit`.
    pub mount: String,
    /// The key's name.
    pub key: String,
    /// How to authenticate.
    pub auth: TransitAuth,
    /// The namespace (`X-Vault-Namespace`), if any.
    pub namespace: Option<String>,
    /// How long one request (connect included) may take.
    pub timeout: Duration,
    /// PEM certificates trusted for `https://` besides the public web roots (a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// Accept a plain `http://` address on another machine (refused by default: the token
    /// and the data keys would travel in the clear). Loopback addresses are always allowed.
    pub allow_insecure_http: bool,
}

impl TransitConfig {
    /// `address`, mount `transit`, `key`, `auth`, no namespace, a 10 s timeout.
    pub fn new(address: impl Into<String>, key: impl Into<String>, auth: TransitAuth) -> Self {
        Self {
            address: address.into(),
            mount: "transit".to_owned(),
            key: key.into(),
            auth,
            namespace: None,
            timeout: Duration::from_secs(10),
            ca_pem: None,
            allow_insecure_http: false,
        }
    }
}

/// A login token and when to replace it.
struct LoginToken {
    token: Zeroizing<String>,
    renew_at: Option<Instant>,
}

/// Whether the key is derived (takes a context), as found by [`KeyEncryptionKey::check`].
const DERIVED_UNKNOWN: u8 = 0;
const DERIVED_YES: u8 = 1;
const DERIVED_NO: u8 = 2;

/// A key-encryption key held in OpenBao/Vault Transit: data keys come from
/// `POST /v1/<mount>/datakey/plaintext/<key>` and are unwrapped with
/// `POST /v1/<mount>/decrypt/<key>`; the KEK never leaves the key service.
///
/// Wrapped keys are Transit ciphertexts, `vault:vN:<base64>`, which name the key version, so
/// data keys wrapped before a rotation still unwrap. A [`KeyContext`] other than
/// [`KeyContext::None`] is sent as the `context` of a derived key (`derived=true`): Transit
/// derives a key per context, and only the same context unwraps. A non-derived key ignores a
/// context, so once [`KeyEncryptionKey::check`] has found the key not derived, a binding is
/// refused rather than silently not enforced.
///
/// Unreachable, timed-out or failing (5xx) service: [`EncryptError::KeyServiceUnavailable`];
/// refused (4xx): [`EncryptError::KeyServiceRefused`], or [`EncryptError::KeyUnwrap`] for a
/// ciphertext that does not decrypt. Requests are not retried, except one new AppRole login
/// when the token was refused.
pub struct TransitKek {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `<address>/v1/`.
    base: String,
    mount: String,
    key: String,
    namespace: Option<String>,
    auth: TransitAuth,
    timeout: Duration,
    name: String,
    token: tokio::sync::Mutex<Option<Arc<LoginToken>>>,
    derived: AtomicU8,
}

impl fmt::Debug for TransitKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitKek")
            .field("base", &self.base)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DataResponse<T> {
    data: T,
}

#[derive(Deserialize)]
struct DataKeyData {
    plaintext: String,
    ciphertext: String,
}

#[derive(Deserialize)]
struct DecryptData {
    plaintext: String,
}

#[derive(Deserialize)]
struct LoginResponse {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    errors: Vec<String>,
}

/// How a call failed.
enum CallError {
    /// Not reached, timed out, or 5xx.
    Unavailable(String),
    /// A 4xx answer: status, the whole message (for logs and errors), and only the
    /// service's own `errors` (for telling causes apart: the URL and key names are not in it).
    Refused(StatusCode, String, String),
}

impl TransitKek {
    /// A Transit KEK for `config`. Nothing is contacted yet: call
    /// [`KeyEncryptionKey::check`] at startup.
    pub fn new(config: TransitConfig) -> Result<Self, EncryptError> {
        let TransitConfig {
            address,
            mount,
            key,
            auth,
            namespace,
            timeout,
            ca_pem,
            allow_insecure_http,
        } = config;
        let address = address.trim_end_matches('/');
        let uri: http::Uri = address
            .parse()
            .map_err(|e| EncryptError::Config(format!("invalid Transit address {address}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(EncryptError::Config(format!(
                "the Transit address {address} must be an http:// or https:// URL"
            )));
        }
        super::check_transport("Transit address", &uri, allow_insecure_http)?;
        let mount = mount.trim_matches('/').to_owned();
        if mount.is_empty() || !valid_path(&mount) {
            return Err(EncryptError::Config(format!(
                "invalid Transit mount {mount:?}"
            )));
        }
        if key.is_empty() || !valid_path(&key) || key.contains('/') {
            return Err(EncryptError::Config(format!(
                "invalid Transit key name {key:?}"
            )));
        }
        match &auth {
            TransitAuth::Token(token) if token.is_empty() => {
                return Err(EncryptError::Config(
                    "the Transit token is empty".to_owned(),
                ));
            }
            TransitAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } if mount.is_empty() || role_id.is_empty() || secret_id.is_empty() => {
                return Err(EncryptError::Config(
                    "AppRole needs a mount, a role id and a secret id".to_owned(),
                ));
            }
            _ => {}
        }
        if timeout.is_zero() {
            return Err(EncryptError::Config(
                "the Transit timeout must be positive".to_owned(),
            ));
        }
        let client = http_client(timeout, ca_pem.as_deref())?;
        let name = match &namespace {
            Some(ns) => format!("transit:{}/{mount}/{key}", ns.trim_matches('/')),
            None => format!("transit:{mount}/{key}"),
        };
        let token = match &auth {
            TransitAuth::Token(token) => Some(Arc::new(LoginToken {
                token: Zeroizing::new(token.clone()),
                renew_at: None,
            })),
            TransitAuth::AppRole { .. } => None,
        };
        Ok(Self {
            client,
            base: format!("{address}/v1/"),
            mount,
            key,
            namespace,
            auth,
            timeout,
            name,
            token: tokio::sync::Mutex::new(token),
            derived: AtomicU8::new(DERIVED_UNKNOWN),
        })
    }

    /// One request: `POST <base><path>` with `body`, as `token` if given.
    async fn send(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let url = format!("{}{path}", self.base);
        let payload = Zeroizing::new(serde_json::to_vec(body).unwrap_or_default());
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            let mut value = http::HeaderValue::from_str(token).map_err(|_| {
                CallError::Refused(
                    StatusCode::BAD_REQUEST,
                    "invalid token".into(),
                    String::new(),
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header("x-vault-token", value);
        }
        if let Some(ns) = &self.namespace {
            builder = builder.header("x-vault-namespace", ns.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(&payload)))
            .map_err(|e| CallError::Unavailable(format!("invalid request to {url}: {e}")))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    CallError::Unavailable(format!("POST {url}: {}", error_chain(&e)))
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| CallError::Unavailable(format!("POST {url}: {e}")))?
                .to_bytes();
            let body = Zeroizing::new(Vec::from(body));
            if status.is_success() {
                Ok(body)
            } else {
                let errors = serde_json::from_slice::<ErrorResponse>(&body)
                    .map(|e| e.errors.join("; "))
                    .unwrap_or_default();
                let message = if errors.is_empty() {
                    format!("POST {url}: {status}")
                } else {
                    format!("POST {url}: {status}: {errors}")
                };
                // 429 (rate limited) and 412 (a standby not yet caught up) pass: unavailable.
                let passing = matches!(status.as_u16(), 412 | 429);
                if status.is_client_error() && !passing {
                    Err(CallError::Refused(status, message, errors))
                } else {
                    Err(CallError::Unavailable(message))
                }
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                CallError::Unavailable(format!("POST {url}: no answer within {:?}", self.timeout))
            })?
    }

    /// The token to send: the static one, or a fresh AppRole login.
    async fn token(&self, force_login: bool) -> Result<Arc<LoginToken>, EncryptError> {
        let mut slot = self.token.lock().await;
        if let Some(current) = slot.as_ref()
            && !force_login
            && current.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(Arc::clone(current));
        }
        let TransitAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.auth
        else {
            // A static token: nothing to log in with.
            return slot
                .as_ref()
                .map(Arc::clone)
                .ok_or_else(|| EncryptError::Config("no Transit token".to_owned()));
        };
        let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id });
        let path = format!("auth/{}/login", mount.trim_matches('/'));
        let started = Instant::now();
        let response = self.send(&path, &body, None).await.map_err(|e| match e {
            CallError::Unavailable(m) => EncryptError::KeyServiceUnavailable(m),
            CallError::Refused(_, m, _) => {
                EncryptError::KeyServiceRefused(format!("AppRole login refused: {m}"))
            }
        })?;
        let login: LoginResponse = serde_json::from_slice(&response).map_err(|e| {
            EncryptError::KeyServiceUnavailable(format!("invalid AppRole login response: {e}"))
        })?;
        let token = Zeroizing::new(login.auth.client_token);
        let renew_at = (login.auth.lease_duration > 0).then(|| {
            #[allow(clippy::cast_precision_loss)]
            let lifetime = login.auth.lease_duration as f64;
            started + Duration::from_secs_f64(lifetime * (1.0 - RENEW_WHEN_LEFT))
        });
        tracing::debug!(
            mount = %mount,
            lease_seconds = login.auth.lease_duration,
            "logged in to Transit with AppRole"
        );
        let fresh = Arc::new(LoginToken { token, renew_at });
        *slot = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// `POST <mount>/<op>/<key>` as the current token; with AppRole, once more after a new
    /// login when the token is refused (403).
    async fn call(
        &self,
        op: &str,
        body: &serde_json::Value,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let path = format!("{}/{op}/{}", self.mount, self.key);
        let login = |force| async move {
            self.token(force).await.map_err(|e| match e {
                EncryptError::KeyServiceRefused(m) => {
                    CallError::Refused(StatusCode::FORBIDDEN, m, String::new())
                }
                other => CallError::Unavailable(other.to_string()),
            })
        };
        let token = login(false).await?;
        match self.send(&path, body, Some(&token.token)).await {
            Err(CallError::Refused(StatusCode::FORBIDDEN, _, _))
                if matches!(self.auth, TransitAuth::AppRole { .. }) =>
            {
                let token = login(true).await?;
                self.send(&path, body, Some(&token.token)).await
            }
            other => other,
        }
    }

    /// The `context` field for `context`. Transit silently ignores a context for a key that
    /// is not derived, so a binding on such a key is refused; whether the key is derived is
    /// found out once (by [`KeyEncryptionKey::check`], or here on first use).
    async fn context_field(&self, context: &KeyContext) -> Result<Option<String>, EncryptError> {
        if context.is_none() {
            return Ok(None);
        }
        if self.derived.load(Ordering::Relaxed) == DERIVED_UNKNOWN {
            self.probe().await?;
        }
        if self.derived.load(Ordering::Relaxed) == DERIVED_NO {
            return Err(EncryptError::Config(format!(
                "the Transit key {}/{} is not derived, so it cannot bind data keys to a \
                 bucket or object: create it with derived=true, or configure no binding",
                self.mount, self.key
            )));
        }
        Ok(Some(STANDARD.encode(context.to_bytes())))
    }

    async fn datakey(&self, context: Option<&str>) -> Result<(DataKey, WrappedKey), EncryptError> {
        let mut body = serde_json::json!({ "bits": 256 });
        if let Some(context) = context {
            body["context"] = context.into();
        }
        let response = self
            .call("datakey/plaintext", &body)
            .await
            .map_err(|e| match e {
                CallError::Unavailable(m) => EncryptError::KeyServiceUnavailable(m),
                CallError::Refused(_, m, _) => EncryptError::KeyServiceRefused(m),
            })?;
        let parsed: DataResponse<DataKeyData> =
            serde_json::from_slice(&response).map_err(|_| {
                EncryptError::KeyServiceUnavailable("invalid Transit datakey response".to_owned())
            })?;
        let plaintext = Zeroizing::new(parsed.data.plaintext);
        let bytes = Zeroizing::new(STANDARD.decode(plaintext.as_bytes()).map_err(|_| {
            EncryptError::KeyServiceUnavailable("invalid Transit datakey response".to_owned())
        })?);
        let data_key = super::data_key_from_slice(&bytes, "Transit")?;
        if vault_version(&parsed.data.ciphertext).is_none() {
            return Err(EncryptError::KeyServiceUnavailable(
                "Transit returned a ciphertext that is not vault:vN:...".to_owned(),
            ));
        }
        Ok((data_key, WrappedKey::new(parsed.data.ciphertext)))
    }

    async fn decrypt(
        &self,
        wrapped: &WrappedKey,
        context: Option<&str>,
    ) -> Result<DataKey, EncryptError> {
        if vault_version(wrapped.as_str()).is_none() {
            return Err(EncryptError::KeyUnwrap);
        }
        let mut body = serde_json::json!({ "ciphertext": wrapped.as_str() });
        if let Some(context) = context {
            body["context"] = context.into();
        }
        let response = self.call("decrypt", &body).await.map_err(|e| match e {
            CallError::Unavailable(m) => EncryptError::KeyServiceUnavailable(m),
            // Transit answers 400 for a ciphertext that does not decrypt (tampered, another
            // key, another context), and for a key it does not have.
            CallError::Refused(StatusCode::BAD_REQUEST, m, errors)
                if !errors.contains("not found") && !errors.contains("missing") =>
            {
                tracing::debug!(kek = %self.name, reason = %m, "Transit did not decrypt a data key");
                EncryptError::KeyUnwrap
            }
            CallError::Refused(_, m, _) => EncryptError::KeyServiceRefused(m),
        })?;
        let parsed: DataResponse<DecryptData> =
            serde_json::from_slice(&response).map_err(|_| {
                EncryptError::KeyServiceUnavailable("invalid Transit decrypt response".to_owned())
            })?;
        let plaintext = Zeroizing::new(parsed.data.plaintext);
        let bytes = Zeroizing::new(
            STANDARD
                .decode(plaintext.as_bytes())
                .map_err(|_| EncryptError::KeyUnwrap)?,
        );
        super::data_key_from_slice(&bytes, "Transit").map_err(|_| EncryptError::KeyUnwrap)
    }

    /// Makes a data key with a probe context, unwraps it (both permissions work), and unwraps
    /// it with another context: that succeeds only when the key is not derived.
    async fn probe(&self) -> Result<(), EncryptError> {
        let probe = STANDARD.encode(KeyContext::bucket("s3t-startup-check").to_bytes());
        let (data_key, wrapped) = self.datakey(Some(&probe)).await?;
        let back = self.decrypt(&wrapped, Some(&probe)).await?;
        if back.as_bytes() != data_key.as_bytes() {
            return Err(EncryptError::Config(
                "Transit decrypted a data key to other bytes".to_owned(),
            ));
        }
        let other = STANDARD.encode(KeyContext::bucket("s3t-startup-check-other").to_bytes());
        let derived = match self.decrypt(&wrapped, Some(&other)).await {
            Ok(_) => DERIVED_NO,
            Err(EncryptError::KeyUnwrap) => DERIVED_YES,
            Err(e) => return Err(e),
        };
        self.derived.store(derived, Ordering::Relaxed);
        tracing::info!(
            kek = %self.name,
            derived = derived == DERIVED_YES,
            "Transit key checked"
        );
        Ok(())
    }
}

impl KeyEncryptionKey for TransitKek {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(async move {
            let context = self.context_field(context).await?;
            self.datakey(context.as_deref()).await
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey> {
        Box::pin(async move {
            let context = self.context_field(context).await?;
            self.decrypt(wrapped, context.as_deref()).await
        })
    }

    fn check(&self) -> KekFuture<'_, ()> {
        Box::pin(async move {
            let what = format!(
                "startup check of the Transit key {}/{} at {}",
                self.mount,
                self.key,
                self.base.trim_end_matches("/v1/")
            );
            self.probe().await.map_err(|e| match e {
                EncryptError::KeyServiceUnavailable(m) => {
                    EncryptError::KeyServiceUnavailable(format!("{what}: {m}"))
                }
                EncryptError::KeyServiceRefused(m) => {
                    EncryptError::KeyServiceRefused(format!("{what}: {m}"))
                }
                EncryptError::KeyUnwrap => EncryptError::Config(format!(
                    "{what}: a data key it made does not decrypt again"
                )),
                EncryptError::Config(m) => EncryptError::Config(format!("{what}: {m}")),
                other => other,
            })
        })
    }
}

/// The key version of a Transit ciphertext `vault:vN:<data>`.
fn vault_version(ciphertext: &str) -> Option<u32> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (version, data) = rest.split_once(':')?;
    if data.is_empty() || version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse().ok()
}

/// A mount or key name that can go into a URL path as is.
fn valid_path(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !s
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
}

/// The HTTP(S) client: webpki roots, aws-lc-rs, connect timeout.
fn http_client(
    timeout: Duration,
    ca_pem: Option<&[u8]>,
) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, EncryptError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                EncryptError::Config(format!("invalid Transit CA certificate PEM: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                EncryptError::Config(format!("invalid Transit CA certificate: {e}"))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(EncryptError::Config(
                "the Transit CA PEM holds no certificate".to_owned(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EncryptError::Config(format!("TLS for Transit: {e}")))?
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
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// An error and its sources, one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(vault_version("vault:v1:abc"), Some(1));
        assert_eq!(vault_version("vault:v12:abc"), Some(12));
        assert_eq!(vault_version("vault:v:abc"), None);
        assert_eq!(vault_version("vault:v1:"), None);
        assert_eq!(vault_version("vault:1:abc"), None);
        assert_eq!(vault_version("s3t-local:v1:x:y"), None);
    }

    #[test]
    fn plain_http_is_only_for_this_machine_unless_allowed() {
        let token = || TransitAuth::Token("t".into());
        assert!(TransitKek::new(TransitConfig::new("http://localhost:8200", "k", token())).is_ok());
        let mut config = TransitConfig::new("http://bao.example.eu:8200", "k", token());
        let Err(EncryptError::Config(message)) = TransitKek::new(config.clone()) else {
            panic!("plain http to another machine accepted");
        };
        assert!(message.contains("in the clear"), "{message}");
        config.allow_insecure_http = true;
        assert!(TransitKek::new(config).is_ok());
    }

    #[test]
    fn config_is_validated() {
        let ok = TransitConfig::new("http://127.0.0.1:8200", "k", TransitAuth::Token("t".into()));
        assert!(TransitKek::new(ok.clone()).is_ok());
        for bad in [
            TransitConfig {
                address: "ftp://x".into(),
                ..ok.clone()
            },
            TransitConfig {
                key: "a/../b".into(),
                ..ok.clone()
            },
            TransitConfig {
                key: String::new(),
                ..ok.clone()
            },
            TransitConfig {
                auth: TransitAuth::Token(String::new()),
                ..ok.clone()
            },
            TransitConfig {
                ca_pem: Some(b"not a certificate".to_vec()),
                ..ok.clone()
            },
        ] {
            assert!(matches!(TransitKek::new(bad), Err(EncryptError::Config(_))));
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let auth = TransitAuth::AppRole {
            mount: "approle".into(),
            role_id: "role".into(),
            secret_id: "very-secret-id".into(),
        };
        let kek = TransitKek::new(TransitConfig::new("http://127.0.0.1:1", "k", auth))
            .expect("valid config");
        assert!(!format!("{kek:?}").contains("very-secret-id"));
        let kek = TransitKek::new(TransitConfig::new(
            "http://127.0.0.1:1",
            "k",
            TransitAuth::Token("hvs.secret-token".into()),
        ))
        .expect("valid config");
        assert!(!format!("{kek:?}").contains("secret-token"));
    }
}
