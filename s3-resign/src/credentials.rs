//! The gateway's own credentials for a backend: static, from the environment, or from the
//! AWS default credential chain, cached and refreshed before they expire.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::error::ResignError;

/// How long before expiry cached credentials are refreshed.
const REFRESH_MARGIN: Duration = Duration::from_mins(5);

/// A backend's credentials, shared by every request to it.
///
/// Temporary credentials (web identity, container or instance metadata) are fetched once and
/// reused until five minutes before they expire; then the next request refreshes them (one
/// fetch at a time). If a refresh fails while the old credentials are still valid, they are
/// used and the failure is logged; once expired, requests fail with `ServiceUnavailable`.
#[derive(Clone)]
pub struct BackendCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SharedCredentialsProvider,
    cached: RwLock<Option<Credentials>>,
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for BackendCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        f.debug_struct("BackendCredentials").finish_non_exhaustive()
    }
}

impl BackendCredentials {
    /// Fixed credentials.
    pub fn from_static(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        let creds = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "s3-tower-static",
        );
        Self::from_provider(SharedCredentialsProvider::new(creds))
    }

    /// Credentials read once from environment variables (for example `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    pub fn from_env_vars(
        access_key_id_var: &str,
        secret_access_key_var: &str,
        session_token_var: Option<&str>,
    ) -> Result<Self, ResignError> {
        let read = |name: &str| match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(value),
            Ok(_) => Err(ResignError::Credentials(format!(
                "environment variable {name} is empty"
            ))),
            Err(_) => Err(ResignError::Credentials(format!(
                "environment variable {name} is not set"
            ))),
        };
        let token = match session_token_var {
            Some(name) => std::env::var(name).ok().filter(|t| !t.is_empty()),
            None => None,
        };
        Ok(Self::from_static(
            read(access_key_id_var)?,
            read(secret_access_key_var)?,
            token,
        ))
    }

    /// Any credentials provider (the AWS default chain, a custom one).
    pub fn from_provider(provider: SharedCredentialsProvider) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider,
                cached: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The AWS default credential chain: environment, profiles, web identity (EKS IRSA),
    /// ECS/EKS container credentials, EC2 instance metadata.
    #[cfg(feature = "aws-config")]
    pub async fn default_chain() -> Self {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .build()
            .await;
        Self::from_provider(SharedCredentialsProvider::new(chain))
    }

    fn fresh_cached(&self, now: SystemTime) -> Option<Credentials> {
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.as_ref().filter(|c| is_fresh(c, now)).cloned()
    }

    /// Current credentials, refreshed when they are about to expire.
    pub async fn get(&self) -> Result<Credentials, ResignError> {
        if let Some(creds) = self.fresh_cached(SystemTime::now()) {
            return Ok(creds);
        }
        let _guard = self.inner.refresh.lock().await;
        let now = SystemTime::now();
        if let Some(creds) = self.fresh_cached(now) {
            return Ok(creds);
        }
        match self.inner.provider.provide_credentials().await {
            Ok(creds) => {
                *self
                    .inner
                    .cached
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(creds.clone());
                Ok(creds)
            }
            Err(err) => {
                let stale = self
                    .inner
                    .cached
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .filter(|c| c.expiry().is_none_or(|exp| exp > now));
                if let Some(creds) = stale {
                    tracing::warn!(error = %err, "refreshing backend credentials failed; using the current ones until they expire");
                    Ok(creds)
                } else {
                    tracing::error!(error = %err, "backend credentials unavailable");
                    Err(ResignError::Credentials(err.to_string()))
                }
            }
        }
    }
}

fn is_fresh(creds: &Credentials, now: SystemTime) -> bool {
    creds.expiry().is_none_or(|exp| {
        exp.duration_since(now)
            .is_ok_and(|left| left > REFRESH_MARGIN)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        fail_after: usize,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let result = if n >= self.fail_after {
                Err(aws_credential_types::provider::error::CredentialsError::not_loaded("down"))
            } else {
                Ok(Credentials::new(
                    format!("AK{n}"),
                    "secret",
                    Some("token".into()),
                    Some(SystemTime::now() + self.lifetime),
                    "test",
                ))
            };
            aws_credential_types::provider::future::ProvideCredentials::ready(result)
        }
    }

    #[tokio::test]
    async fn long_lived_credentials_are_fetched_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let creds = BackendCredentials::from_provider(SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            lifetime: Duration::from_hours(1),
            fail_after: usize::MAX,
        }));
        for _ in 0..5 {
            assert_eq!(creds.get().await.unwrap().access_key_id(), "AK0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_refreshed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let creds = BackendCredentials::from_provider(SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            lifetime: Duration::from_mins(1), // inside the refresh margin
            fail_after: usize::MAX,
        }));
        assert_eq!(creds.get().await.unwrap().access_key_id(), "AK0");
        assert_eq!(creds.get().await.unwrap().access_key_id(), "AK1");
    }

    #[tokio::test]
    async fn failed_refresh_keeps_valid_credentials_then_fails_closed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let creds = BackendCredentials::from_provider(SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            lifetime: Duration::from_mins(1),
            fail_after: 1,
        }));
        assert_eq!(creds.get().await.unwrap().access_key_id(), "AK0");
        // Refresh fails, the old credentials are still valid for 60 s.
        assert_eq!(creds.get().await.unwrap().access_key_id(), "AK0");

        let expired = BackendCredentials::from_provider(SharedCredentialsProvider::new(Counting {
            calls: Arc::new(AtomicUsize::new(0)),
            lifetime: Duration::from_hours(1),
            fail_after: 0,
        }));
        assert!(matches!(
            expired.get().await,
            Err(ResignError::Credentials(_))
        ));
    }

    #[test]
    fn env_credentials_need_both_variables() {
        let err = BackendCredentials::from_env_vars(
            "S3_TOWER_TEST_SURELY_UNSET_AK",
            "S3_TOWER_TEST_SURELY_UNSET_SK",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("S3_TOWER_TEST_SURELY_UNSET_AK"));
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let creds = BackendCredentials::from_static("AKID", "very-secret", None);
        assert!(!format!("{creds:?}").contains("very-secret"));
    }
}
