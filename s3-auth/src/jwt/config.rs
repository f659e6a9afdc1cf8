//! [`IssuerConfig`]: what [`super::JwtValidator`] accepts from one issuer.

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

/// The algorithms accepted by default: every asymmetric algorithm jsonwebtoken verifies.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A configuration [`super::JwtValidator::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// No issuer is configured.
    #[error("no JWT issuer is configured")]
    NoIssuer,
    /// The same issuer is configured twice.
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    /// An issuer without audiences, and [`IssuerConfig::allow_any_audience`] is not set.
    #[error("issuer {0:?} has no audience; set audiences or allow_any_audience")]
    NoAudience(String),
    /// An HMAC algorithm in the allow-list: a gateway never holds an IdP's shared secret.
    #[error("issuer {issuer:?}: algorithm {algorithm:?} is not allowed (HMAC)")]
    SymmetricAlgorithm {
        /// The issuer.
        issuer: String,
        /// The refused algorithm.
        algorithm: Algorithm,
    },
    /// An empty algorithm allow-list.
    #[error("issuer {0:?} allows no algorithm")]
    NoAlgorithm(String),
    /// An issuer or JWKS URL that is not an `http(s)://` URL.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// Several issuers, some with a [`IssuerConfig::subject_prefix`], whose subjects could
    /// still collide: every issuer needs a non-empty prefix, and no prefix may start another
    /// (`"partner:"` and `"partner:eu:"`), or one issuer's user could name itself as
    /// another's.
    #[error(
        "issuer {issuer:?} {reason} (issuer {other:?}): with several issuers, subject \
         prefixes keep users apart only if every issuer has a non-empty one and none starts \
         another"
    )]
    SubjectPrefixCollision {
        /// The issuer whose prefix is missing or starts with the other's.
        issuer: String,
        /// The issuer it collides with.
        other: String,
        /// What is wrong.
        reason: String,
    },
}

/// One trusted token issuer (an OpenID Connect provider) and how its claims map to a
/// [`s3_core::Principal`].
///
/// ```
/// use std::time::Duration;
/// use s3_auth::jwt::IssuerConfig;
///
/// let keycloak = IssuerConfig::new("https://sso.example.com/realms/main")
///     .audience("s3-gateway")
///     .groups_claim("realm_access.roles")
///     .extra_claim("email")
///     .leeway(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub(crate) issuer: String,
    pub(crate) jwks_url: Option<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) allow_any_audience: bool,
    pub(crate) leeway: Duration,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) subject_claim: String,
    pub(crate) subject_prefix: String,
    pub(crate) groups_claim: Option<String>,
    pub(crate) extra_claims: Vec<String>,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) key_refresh_interval: Duration,
}

impl IssuerConfig {
    /// An issuer; tokens must carry exactly this `iss`. Its keys are found through
    /// `<issuer>/.well-known/openid-configuration` unless [`Self::jwks_url`] is set.
    ///
    /// Defaults: no audience (set one, or [`Self::allow_any_audience`]), leeway 60 s,
    /// [`DEFAULT_ALGORITHMS`], subject claim `sub`, no groups claim, no extra claims, at most
    /// one JWKS refresh per 30 s on unknown key ids, and a refresh every 10 minutes in the
    /// background once [`super::JwtValidator::spawn_key_refresh`] runs.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: None,
            audiences: Vec::new(),
            allow_any_audience: false,
            leeway: Duration::from_mins(1),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            subject_claim: "sub".to_owned(),
            subject_prefix: String::new(),
            groups_claim: None,
            extra_claims: Vec::new(),
            min_refresh_interval: Duration::from_secs(30),
            key_refresh_interval: Duration::from_mins(10),
        }
    }

    /// The issuer string tokens must carry in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetch keys from this JWKS URL instead of using OIDC discovery.
    #[must_use]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Accept tokens whose `aud` contains `audience` (may be called several times).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Replaces the accepted audiences.
    #[must_use]
    pub fn audiences<I, A>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Do not check `aud` (default off). Any client of the IdP could then use its tokens
    /// here; only for IdPs dedicated to this gateway.
    #[must_use]
    pub fn allow_any_audience(mut self, allow: bool) -> Self {
        self.allow_any_audience = allow;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The accepted signature algorithms (default [`DEFAULT_ALGORITHMS`]). HMAC algorithms
    /// are refused by [`super::JwtValidator::new`]; `none` cannot be expressed.
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// The claim holding the subject (default `sub`); a dotted path reaches into objects.
    #[must_use]
    pub fn subject_claim(mut self, claim: impl Into<String>) -> Self {
        self.subject_claim = claim.into();
        self
    }

    /// Put before every subject from this issuer (default: nothing), so that users of two
    /// issuers cannot collide: with `"partner:"`, the partner IdP's `alice` is
    /// `partner:alice`, never the `alice` of the main IdP. With several issuers, a prefix on
    /// one requires a non-empty prefix on every issuer, none starting another (the main
    /// IdP's `partner:alice` would otherwise be the partner's `alice`):
    /// [`super::JwtValidator::new`] refuses the rest
    /// ([`JwtConfigError::SubjectPrefixCollision`]). Policies can also tell issuers apart by
    /// `claims.iss`, which is always set.
    #[must_use]
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// The claim holding the groups, a string or an array of strings; a dotted path reaches
    /// into objects (`realm_access.roles`). Default: none (no groups).
    #[must_use]
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = Some(claim.into());
        self
    }

    /// A claim (dotted path) copied into [`s3_core::Principal::claims`] under that path, when
    /// the token has it. `iss` and `aud` are always copied.
    #[must_use]
    pub fn extra_claim(mut self, claim: impl Into<String>) -> Self {
        self.extra_claims.push(claim.into());
        self
    }

    /// The shortest time between two JWKS fetches for this issuer (default 30 s).
    #[must_use]
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// How often [`super::JwtValidator::spawn_key_refresh`] fetches this issuer's JWKS
    /// (default 10 minutes), so that keys the issuer adds are known before a token names
    /// them and keys it withdraws stop being accepted. `Duration::ZERO`, or an interval too
    /// long to add to the current time (`Duration::MAX`), turns the background refresh off
    /// for this issuer.
    #[must_use]
    pub fn key_refresh_interval(mut self, interval: Duration) -> Self {
        self.key_refresh_interval = interval;
        self
    }

    pub(crate) fn check(&self) -> Result<(), JwtConfigError> {
        if self.audiences.is_empty() && !self.allow_any_audience {
            return Err(JwtConfigError::NoAudience(self.issuer.clone()));
        }
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithm(self.issuer.clone()));
        }
        if let Some(&algorithm) = self
            .algorithms
            .iter()
            .find(|a| a.family() == AlgorithmFamily::Hmac)
        {
            return Err(JwtConfigError::SymmetricAlgorithm {
                issuer: self.issuer.clone(),
                algorithm,
            });
        }
        check_url(&self.issuer)?;
        if let Some(url) = &self.jwks_url {
            check_url(url)?;
        }
        Ok(())
    }

    /// Where the discovery document is.
    pub(crate) fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

fn check_url(url: &str) -> Result<(), JwtConfigError> {
    let ok = url.parse::<http::Uri>().ok().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
    });
    if ok {
        Ok(())
    } else {
        Err(JwtConfigError::InvalidUrl(url.to_owned()))
    }
}
