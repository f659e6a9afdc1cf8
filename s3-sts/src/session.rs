//! What a session token holds ([`SessionClaims`]), what issuing one hands out
//! ([`IssuedCredentials`]) and what opening one yields ([`OpenedSession`]); plus the compact
//! JSON form the claims take inside the sealed token.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3_auth::SecretKey;
use s3_core::{AuthMethod, Principal, Session, SessionPolicy};
use serde::{Deserialize, Serialize};

use crate::error::StsError;

/// Who a temporary session acts as, for which role, until when: everything the gateway
/// needs to authenticate and authorize a request signed with the session's credentials,
/// sealed into the session token so that no database holds it.
///
/// Inside a token, times are kept to the second (the sub-second part is dropped when
/// sealing), as STS reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The subject of the web identity (JWT `sub`), the principal's subject.
    pub subject: String,
    /// The groups the principal belongs to (from the token and the role).
    pub groups: Vec<String>,
    /// Extra claims handed to the policy engine (`iss`, `aud`...); `Null` for none.
    pub claims: serde_json::Value,
    /// The assumed role's ARN.
    pub role_arn: String,
    /// The `RoleSessionName`.
    pub session_name: String,
    /// The session policy document exactly as given to `AssumeRoleWithWebIdentity`
    /// (validated there), if any.
    pub policy: Option<String>,
    /// When the credentials were issued.
    pub issued_at: SystemTime,
    /// When the credentials stop being accepted.
    pub expires_at: SystemTime,
}

/// Temporary credentials as `AssumeRoleWithWebIdentity` returns them.
///
/// `Debug` redacts the secret and the session token.
#[derive(Clone)]
pub struct IssuedCredentials {
    /// `ASIA` followed by 16 random base32 characters.
    pub access_key_id: String,
    /// 40 random characters of `[A-Za-z0-9+/]`, as AWS secrets look.
    pub secret_access_key: SecretKey,
    /// The sealed session (URL-safe base64 without padding), sent back by clients as
    /// `X-Amz-Security-Token`.
    pub session_token: String,
    /// The expiry sealed in the token (to the second).
    pub expiration: SystemTime,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &"..")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// A session token that opened: authentic, bound to the access key id it came with, not
/// expired.
///
/// `Debug` redacts the secret (the claims hold none).
#[derive(Clone)]
pub struct OpenedSession {
    /// The sealed claims.
    pub claims: SessionClaims,
    /// The session's secret access key, to verify the request signature with.
    pub secret_access_key: SecretKey,
    /// The keyring's parsed session policies.
    pub(crate) policies: Arc<PolicyCache>,
}

impl fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSession")
            .field("claims", &self.claims)
            .field("secret_access_key", &self.secret_access_key)
            .finish_non_exhaustive()
    }
}

impl OpenedSession {
    /// The principal a request signed with this session acts as; its `auth` is `SigV4`
    /// (the verifier sets the real method) and its `session` names the role, the session
    /// name and the parsed session policy.
    ///
    /// A policy is parsed once and shared by every request that carries the same document
    /// (the keyring keeps them). A policy that no longer parses (it was validated when the
    /// session was issued, so only a change of this gateway's policy grammar can cause it)
    /// refuses the session with [`StsError::SessionTokenInvalid`]: failing closed rather
    /// than dropping it.
    pub fn principal(&self) -> Result<Principal, StsError> {
        self.clone()
            .into_principal()
            .map(|(principal, _)| principal)
    }

    /// [`principal`](Self::principal) and the secret, without copying the claims: what a
    /// credential resolver needs per request.
    pub fn into_principal(self) -> Result<(Principal, SecretKey), StsError> {
        let claims = self.claims;
        let policy = match &claims.policy {
            Some(document) => Some(self.policies.get(document)?),
            None => None,
        };
        let principal = Principal {
            subject: claims.subject,
            groups: claims.groups,
            claims: claims.claims,
            auth: AuthMethod::SigV4,
            session: Some(Session {
                role_arn: claims.role_arn,
                session_name: claims.session_name,
                policy,
            }),
        };
        Ok((principal, self.secret_access_key))
    }
}

/// Parsed session policies by document, so that a session's policy is parsed once rather
/// than at every request (parsing costs more than opening the token). Only documents of
/// authentic tokens enter it; it holds at most [`PolicyCache::CAPACITY`] documents and is
/// emptied when full.
#[derive(Default)]
pub(crate) struct PolicyCache {
    parsed: RwLock<HashMap<Box<str>, Arc<SessionPolicy>>>,
}

impl PolicyCache {
    /// The most documents kept.
    const CAPACITY: usize = 1024;

    /// The parsed `document`.
    fn get(&self, document: &str) -> Result<Arc<SessionPolicy>, StsError> {
        let cached = self
            .parsed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(document)
            .cloned();
        if let Some(policy) = cached {
            return Ok(policy);
        }
        let policy =
            Arc::new(SessionPolicy::parse(document).map_err(|_| StsError::SessionTokenInvalid)?);
        let mut parsed = self.parsed.write().unwrap_or_else(PoisonError::into_inner);
        if parsed.len() >= Self::CAPACITY {
            parsed.clear();
        }
        parsed.insert(document.into(), Arc::clone(&policy));
        Ok(policy)
    }
}

/// The sealed plaintext, written: one-letter names keep tokens short.
#[derive(Serialize)]
pub(crate) struct WireOut<'a> {
    #[serde(rename = "k")]
    secret: &'a str,
    #[serde(rename = "s")]
    subject: &'a str,
    #[serde(rename = "g", skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(rename = "c", skip_serializing_if = "serde_json::Value::is_null")]
    claims: &'a serde_json::Value,
    #[serde(rename = "r")]
    role_arn: &'a str,
    #[serde(rename = "n")]
    session_name: &'a str,
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    #[serde(rename = "i")]
    issued_at: u64,
    #[serde(rename = "e")]
    expires_at: u64,
}

impl<'a> WireOut<'a> {
    /// The wire form of `claims` with `secret`; times before 1970 cannot be sealed.
    pub(crate) fn new(claims: &'a SessionClaims, secret: &'a str) -> Result<Self, StsError> {
        Ok(Self {
            secret,
            subject: &claims.subject,
            groups: &claims.groups,
            claims: &claims.claims,
            role_arn: &claims.role_arn,
            session_name: &claims.session_name,
            policy: claims.policy.as_deref(),
            issued_at: unix_seconds(claims.issued_at)?,
            expires_at: unix_seconds(claims.expires_at)?,
        })
    }

    /// The sealed expiry, to the second.
    pub(crate) fn expiration(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires_at)
    }
}

/// The sealed plaintext, read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireIn {
    #[serde(rename = "k")]
    secret: String,
    #[serde(rename = "s")]
    subject: String,
    #[serde(rename = "g", default)]
    groups: Vec<String>,
    #[serde(rename = "c", default)]
    claims: serde_json::Value,
    #[serde(rename = "r")]
    role_arn: String,
    #[serde(rename = "n")]
    session_name: String,
    #[serde(rename = "p", default)]
    policy: Option<String>,
    #[serde(rename = "i")]
    issued_at: u64,
    #[serde(rename = "e")]
    expires_at: u64,
}

impl WireIn {
    /// The session, refused with [`StsError::SessionExpired`] from `expires_at` on.
    pub(crate) fn into_session(
        self,
        now: SystemTime,
        policies: &Arc<PolicyCache>,
    ) -> Result<OpenedSession, StsError> {
        let secret_access_key = SecretKey::new(self.secret);
        let expires_at = from_unix_seconds(self.expires_at)?;
        if now >= expires_at {
            return Err(StsError::SessionExpired);
        }
        Ok(OpenedSession {
            claims: SessionClaims {
                subject: self.subject,
                groups: self.groups,
                claims: self.claims,
                role_arn: self.role_arn,
                session_name: self.session_name,
                policy: self.policy,
                issued_at: from_unix_seconds(self.issued_at)?,
                expires_at,
            },
            secret_access_key,
            policies: Arc::clone(policies),
        })
    }
}

fn unix_seconds(time: SystemTime) -> Result<u64, StsError> {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| StsError::Internal("a session time before 1970 cannot be sealed".into()))
}

fn from_unix_seconds(secs: u64) -> Result<SystemTime, StsError> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or(StsError::SessionTokenInvalid)
}
