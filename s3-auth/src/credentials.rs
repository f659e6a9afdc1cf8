//! Where SigV4 secrets come from: the [`CredentialResolver`] trait, and [`StaticCredentials`],
//! the static users of a configuration file.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use s3_core::Principal;
use zeroize::Zeroizing;

use crate::error::AuthError;

/// A secret access key, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret, for deriving a signing key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// What a [`CredentialResolver`] is asked: the access key id of the credential scope and the
/// session token (`X-Amz-Security-Token`) if the request carries one.
#[derive(Debug, Clone, Copy)]
pub struct CredentialRequest<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The session token of temporary credentials.
    pub session_token: Option<&'a str>,
}

/// The secret to verify a signature with, and who signs with it.
#[derive(Debug, Clone)]
pub struct ResolvedCredentials {
    /// The secret access key.
    pub secret: SecretKey,
    /// The principal a request verified with this secret acts as. Its `auth` field is set
    /// by the verifier (`SigV4` or `Presigned`).
    pub principal: Principal,
}

/// The boxed future a [`CredentialResolver`] returns.
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ResolvedCredentials, AuthError>> + Send + 'a>>;

/// Looks up the secret of an access key, asynchronously so that temporary credentials can
/// be unsealed or fetched.
///
/// Answer [`AuthError::UnknownAccessKey`], [`AuthError::InvalidToken`],
/// [`AuthError::ExpiredToken`] or [`AuthError::CredentialsUnavailable`] when there is no
/// secret; the verifier turns those into the S3 errors clients expect.
pub trait CredentialResolver: Send + Sync + 'static {
    /// The credentials for `request`.
    fn resolve<'a>(&'a self, request: CredentialRequest<'a>) -> ResolveFuture<'a>;
}

impl<T: CredentialResolver + ?Sized> CredentialResolver for Arc<T> {
    fn resolve<'a>(&'a self, request: CredentialRequest<'a>) -> ResolveFuture<'a> {
        (**self).resolve(request)
    }
}

/// Where a static user's secret is read from at startup.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The secret itself (for tests and development only: it sits in the configuration).
    Inline(String),
    /// The name of an environment variable holding the secret.
    Env(String),
    /// A file holding the secret (trailing newline ignored), e.g. a mounted Kubernetes secret.
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(..)"),
            Self::Env(var) => f.debug_tuple("Env").field(var).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Why a static user's secret could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretSourceError {
    /// The environment variable is unset, empty or not UTF-8.
    #[error("environment variable {0} is unset or empty")]
    EnvMissing(String),
    /// The file cannot be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The source yields an empty secret.
    #[error("the secret is empty")]
    Empty,
}

impl SecretSource {
    /// Reads the secret.
    pub fn load(&self) -> Result<SecretKey, SecretSourceError> {
        let secret = match self {
            Self::Inline(secret) => secret.clone(),
            Self::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecretSourceError::EnvMissing(var.clone()))?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|source| SecretSourceError::File {
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if secret.is_empty() {
            return Err(SecretSourceError::Empty);
        }
        Ok(SecretKey::new(secret))
    }
}

/// A user with a long-lived access key, as configured.
#[derive(Debug, Clone)]
pub struct StaticUser {
    /// The access key id clients sign with.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: SecretKey,
    /// The principal's subject (user name).
    pub subject: String,
    /// The principal's groups, as the policy sees them.
    pub groups: Vec<String>,
}

/// Static users by access key id: the [`CredentialResolver`] of a configuration file.
///
/// Static keys carry no session token; a request that sends one with a static key is
/// refused with `InvalidToken`, so a token cannot be smuggled past a policy that reads it.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    users: HashMap<String, StaticUser>,
}

/// Two static users share an access key id.
#[derive(Debug, thiserror::Error)]
#[error("access key id {0} is configured twice")]
pub struct DuplicateAccessKey(pub String);

impl StaticCredentials {
    /// The resolver for `users`; access key ids must be unique.
    pub fn new(users: impl IntoIterator<Item = StaticUser>) -> Result<Self, DuplicateAccessKey> {
        let mut map = HashMap::new();
        for user in users {
            if map.contains_key(&user.access_key_id) {
                return Err(DuplicateAccessKey(user.access_key_id));
            }
            map.insert(user.access_key_id.clone(), user);
        }
        Ok(Self { users: map })
    }

    /// How many users are configured.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn lookup(&self, request: CredentialRequest<'_>) -> Result<ResolvedCredentials, AuthError> {
        let user = self
            .users
            .get(request.access_key_id)
            .ok_or(AuthError::UnknownAccessKey)?;
        if request.session_token.is_some() {
            return Err(AuthError::InvalidToken);
        }
        Ok(ResolvedCredentials {
            secret: user.secret.clone(),
            principal: Principal {
                subject: user.subject.clone(),
                groups: user.groups.clone(),
                claims: serde_json::json!({ "access_key_id": user.access_key_id }),
                auth: s3_core::AuthMethod::SigV4,
                session: None,
            },
        })
    }
}

impl CredentialResolver for StaticCredentials {
    fn resolve<'a>(&'a self, request: CredentialRequest<'a>) -> ResolveFuture<'a> {
        let result = self.lookup(request);
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(ak: &str) -> StaticUser {
        StaticUser {
            access_key_id: ak.into(),
            secret: SecretKey::new("secret"),
            subject: "alice".into(),
            groups: vec!["admin".into()],
        }
    }

    #[tokio::test]
    async fn resolves_known_keys_and_refuses_the_rest() {
        let creds = StaticCredentials::new([user("AK1")]).unwrap();
        let ok = creds
            .resolve(CredentialRequest {
                access_key_id: "AK1",
                session_token: None,
            })
            .await
            .unwrap();
        assert_eq!(ok.secret.expose(), "secret");
        assert_eq!(ok.principal.subject, "alice");
        assert_eq!(ok.principal.groups, ["admin"]);
        let unknown = creds
            .resolve(CredentialRequest {
                access_key_id: "AK2",
                session_token: None,
            })
            .await
            .unwrap_err();
        assert_eq!(unknown, AuthError::UnknownAccessKey);
        let token = creds
            .resolve(CredentialRequest {
                access_key_id: "AK1",
                session_token: Some("t"),
            })
            .await
            .unwrap_err();
        assert_eq!(token, AuthError::InvalidToken);
    }

    #[test]
    fn duplicate_access_keys_are_refused() {
        let err = StaticCredentials::new([user("AK1"), user("AK1")]).unwrap_err();
        assert_eq!(err.0, "AK1");
    }

    #[test]
    fn secrets_load_from_file_and_never_print() {
        let dir = std::env::temp_dir().join(format!("s3-auth-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secret = SecretSource::File(path.clone()).load().unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        assert_eq!(format!("{secret:?}"), "SecretKey(..)");
        assert_eq!(
            format!("{:?}", SecretSource::Inline("s3cr3t".into())),
            "Inline(..)"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            SecretSource::File(path).load(),
            Err(SecretSourceError::Empty)
        ));
        assert!(matches!(
            SecretSource::File(dir.join("absent")).load(),
            Err(SecretSourceError::File { .. })
        ));
        assert!(matches!(
            SecretSource::Env("S3_AUTH_TEST_SURELY_UNSET_VARIABLE".into()).load(),
            Err(SecretSourceError::EnvMissing(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
