//! [`SessionCredentials`]: the `s3_auth::CredentialResolver` that opens session tokens for
//! `SigV4Layer`, and hands long-term access keys to another resolver.

use std::sync::Arc;
use std::time::SystemTime;

use s3_auth::{
    AuthError, CredentialRequest, CredentialResolver, ResolveFuture, ResolvedCredentials,
};

use crate::error::StsError;
use crate::keyring::{SESSION_KEY_PREFIX, SessionKeyring};
use crate::roles::Roles;

/// The resolver of a [`SessionCredentials`] without fallback: every long-term access key is
/// unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl CredentialResolver for NoFallback {
    fn resolve<'a>(&'a self, _request: CredentialRequest<'a>) -> ResolveFuture<'a> {
        Box::pin(std::future::ready(Err(AuthError::UnknownAccessKey)))
    }
}

/// Resolves the credentials of a SigV4 request from its session token, without a database:
///
/// - with a session token (`X-Amz-Security-Token`), the token is opened with the keyring
///   for the request's access key id; its secret verifies the signature and its claims
///   become the [`Principal`](s3_core::Principal) (with its `session`). An expired session
///   is `ExpiredToken`; any other refusal (malformed, unknown key, tampered, another access
///   key id) is `InvalidToken`;
/// - an `ASIA…` access key id without a token is `UnknownAccessKey` (S3's
///   `InvalidAccessKeyId`, which AWS answers when temporary credentials are sent without
///   their token); it never reaches the fallback;
/// - any other access key id goes to the fallback resolver (static users), or is
///   `UnknownAccessKey` without one.
///
/// # Sessions and role changes
///
/// A session carries what its role granted when it was issued: the role's fixed groups
/// and the conditions the token met are sealed into the token, so changing them affects
/// new sessions only. Removing a role, though, ends its sessions at once when the resolver
/// is given the configured roles with [`roles`](Self::roles): a session whose role is no
/// longer among them is refused (`InvalidToken`). Without it, a session lasts until it
/// expires whatever becomes of its role.
#[derive(Debug, Clone)]
pub struct SessionCredentials<F = NoFallback> {
    keyring: Arc<SessionKeyring>,
    roles: Option<Arc<Roles>>,
    fallback: F,
}

impl SessionCredentials {
    /// Session tokens opened with `keyring`, no fallback.
    pub fn new(keyring: Arc<SessionKeyring>) -> Self {
        Self {
            keyring,
            roles: None,
            fallback: NoFallback,
        }
    }
}

impl<F> SessionCredentials<F> {
    /// Long-term access keys (no session token) resolved by `fallback`, e.g.
    /// `s3_auth::StaticCredentials`.
    pub fn fallback<G: CredentialResolver>(self, fallback: G) -> SessionCredentials<G> {
        SessionCredentials {
            keyring: self.keyring,
            roles: self.roles,
            fallback,
        }
    }

    /// Refuses sessions whose role is not in `roles` (the roles the STS endpoint is
    /// configured with), so that removing a role ends its sessions at once rather than at
    /// their expiry. Fixed groups and conditions are sealed at issue time: changing them
    /// affects new sessions only.
    #[must_use]
    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = Some(Arc::new(roles));
        self
    }

    /// The keyring tokens are opened with.
    pub fn keyring(&self) -> &Arc<SessionKeyring> {
        &self.keyring
    }

    /// The credentials of a request with a session token, at `now`.
    fn open(
        &self,
        access_key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<ResolvedCredentials, AuthError> {
        let session = self
            .keyring
            .open(access_key_id, token, now)
            .map_err(|err| err.to_auth_error())?;
        if let Some(roles) = &self.roles
            && roles.get(&session.claims.role_arn).is_none()
        {
            return Err(StsError::SessionRoleRemoved.to_auth_error());
        }
        let (principal, secret) = session
            .into_principal()
            .map_err(|err| err.to_auth_error())?;
        Ok(ResolvedCredentials { secret, principal })
    }
}

impl<F: CredentialResolver> CredentialResolver for SessionCredentials<F> {
    fn resolve<'a>(&'a self, request: CredentialRequest<'a>) -> ResolveFuture<'a> {
        match request.session_token {
            Some(token) => Box::pin(std::future::ready(self.open(
                request.access_key_id,
                token,
                SystemTime::now(),
            ))),
            None if request.access_key_id.starts_with(SESSION_KEY_PREFIX) => {
                Box::pin(std::future::ready(Err(AuthError::UnknownAccessKey)))
            }
            None => self.fallback.resolve(request),
        }
    }
}
