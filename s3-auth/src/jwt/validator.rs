//! [`JwtValidator`]: verify a bearer token against the configured issuers.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use s3_core::{AuthMethod, Principal};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::{IssuerConfig, JwtConfigError};
use super::keys::{HttpFetcher, KeyCache, Lookup};
use crate::error::AuthError;

/// Longest token accepted (bytes).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Verifies JWT bearer tokens from several issuers and maps their claims to a [`Principal`].
///
/// The issuer is chosen by the token's (not yet verified) `iss`; the token is then verified
/// with that issuer's keys and rules: signature, `alg` in the issuer's allow-list and
/// matching the key, `iss`, `aud`, `exp` (required), `nbf`, with the issuer's leeway.
///
/// Cheap to share: clone the `Arc` it is usually held in (see [`super::JwtLayer`]).
pub struct JwtValidator {
    issuers: Vec<Issuer>,
    fetcher: HttpFetcher,
}

struct Issuer {
    config: IssuerConfig,
    cache: KeyCache,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.config).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl JwtValidator {
    /// A validator trusting `issuers`. Keys are fetched on first use; call
    /// [`Self::prefetch`] to fetch them at startup.
    pub fn new(issuers: impl IntoIterator<Item = IssuerConfig>) -> Result<Self, JwtConfigError> {
        Self::with_http_timeout(issuers, Duration::from_secs(10))
    }

    /// Like [`Self::new`], with the time allowed for each discovery or JWKS fetch (default
    /// 10 s).
    pub fn with_http_timeout(
        issuers: impl IntoIterator<Item = IssuerConfig>,
        timeout: Duration,
    ) -> Result<Self, JwtConfigError> {
        let mut list: Vec<Issuer> = Vec::new();
        for config in issuers {
            config.check()?;
            if list.iter().any(|i| i.config.issuer == config.issuer) {
                return Err(JwtConfigError::DuplicateIssuer(config.issuer));
            }
            list.push(Issuer {
                config,
                cache: KeyCache::new(),
            });
        }
        if list.is_empty() {
            return Err(JwtConfigError::NoIssuer);
        }
        check_subject_prefixes(&list)?;
        Ok(Self {
            issuers: list,
            fetcher: HttpFetcher::new(timeout)?,
        })
    }

    /// Fetches every issuer's keys now; the first failure is returned (the other issuers are
    /// still fetched). Optional: keys are otherwise fetched by the first token.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        let mut first = Ok(());
        for issuer in &self.issuers {
            let result = issuer
                .cache
                .lookup("\u{0}prefetch", &issuer.config, &self.fetcher)
                .await;
            if let Err(err) = result
                && first.is_ok()
            {
                first = Err(err);
            }
        }
        first
    }

    /// Starts a task on the current tokio runtime that fetches each issuer's JWKS every
    /// [`IssuerConfig::key_refresh_interval`], replacing the cached keys on success and keeping
    /// them on failure (logged as a warning). The task holds only a weak reference and ends
    /// once the validator is dropped; abort the handle to stop it earlier.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_key_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let intervals: Vec<Duration> = self
            .issuers
            .iter()
            .map(|i| i.config.key_refresh_interval)
            .collect();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut due: Vec<Option<tokio::time::Instant>> = intervals
                .iter()
                .map(|&every| next_refresh(start, every))
                .collect();
            loop {
                let Some(next) = due.iter().flatten().min().copied() else {
                    return;
                };
                tokio::time::sleep_until(next).await;
                let Some(validator) = weak.upgrade() else {
                    return;
                };
                let now = tokio::time::Instant::now();
                for ((issuer, when), &every) in
                    validator.issuers.iter().zip(&mut due).zip(&intervals)
                {
                    if when.is_some_and(|at| at <= now) {
                        // A failure is logged by the cache, which keeps the old keys.
                        let _ = issuer
                            .cache
                            .refresh(&issuer.config, &validator.fetcher)
                            .await;
                        *when = next_refresh(tokio::time::Instant::now(), every);
                    }
                }
            }
        })
    }

    /// Verifies `token` (the part after `Bearer `) and returns its principal.
    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::JwtMalformed("the token is too long"));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthError::JwtMalformed(
                "a JWT has three dot-separated parts",
            ));
        };
        let header: RawHeader = decode_segment(header)
            .ok_or(AuthError::JwtMalformed("the header is not base64url JSON"))?;
        let unverified: Value = decode_segment(payload)
            .ok_or(AuthError::JwtMalformed("the payload is not base64url JSON"))?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::JwtMissingClaim("iss".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or(AuthError::JwtUnknownIssuer)?;
        let config = &issuer.config;

        let alg: Algorithm = header
            .alg
            .parse()
            .ok()
            .filter(|alg| config.algorithms.contains(alg))
            .ok_or_else(|| AuthError::JwtAlgorithmNotAllowed(truncate(&header.alg)))?;
        let kid = header.kid.as_deref().unwrap_or("");
        let key = match issuer.cache.lookup(kid, config, &self.fetcher).await? {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(AuthError::JwtUnknownKey),
        };
        if !key.accepts(alg) {
            return Err(AuthError::JwtKeyMismatch);
        }

        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_issuer(&[&config.issuer]);
        if config.audiences.is_empty() {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "iss"]);
        } else {
            validation.set_audience(&config.audiences);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        }
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| map_error(e.kind()))?
            .claims;
        let principal = map_claims(config, &claims)?;
        tracing::debug!(issuer = %config.issuer, subject = %principal.subject, "bearer token accepted");
        Ok(principal)
    }
}

/// When a refresh every `every` from `from` is next due: `None` (never) for a zero interval
/// or one too long to represent (`Duration::MAX`, meant as never).
fn next_refresh(from: tokio::time::Instant, every: Duration) -> Option<tokio::time::Instant> {
    if every.is_zero() {
        return None;
    }
    from.checked_add(every)
}

/// With several issuers, subject prefixes keep their users apart only if every issuer has
/// one and none starts another: otherwise the main IdP's `partner:alice` is the partner
/// issuer's `alice`. A single issuer, or several without any prefix (told apart by
/// `claims.iss` only), are accepted.
fn check_subject_prefixes(issuers: &[Issuer]) -> Result<(), JwtConfigError> {
    if issuers.len() < 2 || issuers.iter().all(|i| i.config.subject_prefix.is_empty()) {
        return Ok(());
    }
    let prefixed = issuers
        .iter()
        .find(|i| !i.config.subject_prefix.is_empty())
        .map_or("", |i| i.config.issuer.as_str());
    if let Some(bare) = issuers.iter().find(|i| i.config.subject_prefix.is_empty()) {
        return Err(JwtConfigError::SubjectPrefixCollision {
            issuer: bare.config.issuer.clone(),
            other: prefixed.to_owned(),
            reason: "has no subject prefix while another issuer has one".to_owned(),
        });
    }
    for (index, a) in issuers.iter().enumerate() {
        for b in issuers.iter().skip(index + 1) {
            let (pa, pb) = (&a.config.subject_prefix, &b.config.subject_prefix);
            let (short, long) = if pa.len() <= pb.len() { (a, b) } else { (b, a) };
            if long
                .config
                .subject_prefix
                .starts_with(&short.config.subject_prefix)
            {
                return Err(JwtConfigError::SubjectPrefixCollision {
                    issuer: long.config.issuer.clone(),
                    other: short.config.issuer.clone(),
                    reason: format!(
                        "subject prefix {:?} starts with the other's {:?}",
                        long.config.subject_prefix, short.config.subject_prefix
                    ),
                });
            }
        }
    }
    Ok(())
}

fn decode_segment<T: for<'de> Deserialize<'de>>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An attacker-chosen string, cut short before it reaches an error message or a log.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::JwtExpired,
        ErrorKind::ImmatureSignature => AuthError::JwtNotYetValid,
        ErrorKind::InvalidAudience => AuthError::JwtWrongAudience,
        ErrorKind::InvalidIssuer => AuthError::JwtUnknownIssuer,
        ErrorKind::InvalidSignature => AuthError::JwtBadSignature,
        ErrorKind::InvalidAlgorithm => AuthError::JwtKeyMismatch,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::JwtMissingClaim(truncate(claim)),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::JwtInvalidClaim(truncate(claim)),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => {
            AuthError::JwtKeyMismatch
        }
        _ => AuthError::JwtMalformed("the token cannot be decoded"),
    }
}

/// The claim at `path` in `claims`: a key holding a dot itself (`"a.b"`) first, else the
/// dotted path into nested objects (`realm_access.roles`). The rule every claim mapping of
/// s3-tower follows (subject, groups, extra claims, STS role conditions).
pub fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

fn map_claims(config: &IssuerConfig, claims: &Value) -> Result<Principal, AuthError> {
    let subject = match claim_at(claims, &config.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => format!("{}{s}", config.subject_prefix),
        Some(Value::Number(n)) => format!("{}{n}", config.subject_prefix),
        Some(_) => return Err(AuthError::JwtInvalidClaim(config.subject_claim.clone())),
        None => return Err(AuthError::JwtMissingClaim(config.subject_claim.clone())),
    };
    let groups = match config.groups_claim.as_deref() {
        None => Vec::new(),
        Some(path) => match claim_at(claims, path) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AuthError::JwtInvalidClaim(path.to_owned()))?,
            Some(_) => return Err(AuthError::JwtInvalidClaim(path.to_owned())),
        },
    };
    let mut extra = Map::new();
    extra.insert("iss".to_owned(), Value::String(config.issuer.clone()));
    if let Some(aud) = claims.get("aud") {
        extra.insert("aud".to_owned(), aud.clone());
    }
    for path in &config.extra_claims {
        if let Some(value) = claim_at(claims, path) {
            extra.insert(path.clone(), value.clone());
        }
    }
    Ok(Principal {
        subject,
        groups,
        claims: Value::Object(extra),
        auth: AuthMethod::Jwt,
        session: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_claims() {
        let claims = serde_json::json!({"realm_access": {"roles": ["a", "b"]}, "a.b": 1});
        assert_eq!(
            claim_at(&claims, "realm_access.roles"),
            Some(&serde_json::json!(["a", "b"]))
        );
        assert_eq!(claim_at(&claims, "a.b"), Some(&serde_json::json!(1)));
        assert_eq!(claim_at(&claims, "realm_access.x"), None);
    }
}
