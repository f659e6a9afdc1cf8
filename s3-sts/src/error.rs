//! Why an STS call or a session token was refused, and the one place those reasons become
//! STS `<ErrorResponse>` codes or SigV4 authentication errors.

use http::StatusCode;
use s3_auth::AuthError;
use s3_core::SessionPolicyError;

use crate::keyring::MAX_SESSION_TOKEN_LEN;

/// Every reason s3-sts refuses a call, a session token or a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StsError {
    // --- the STS call -------------------------------------------------------------------
    /// `Action` is missing or not one this endpoint answers.
    #[error("could not find operation {0}")]
    InvalidAction(String),
    /// `Version` is not `2011-06-15` (AWS answers this as an unknown action too).
    #[error("Could not find operation for version {0} (this endpoint speaks 2011-06-15)")]
    InvalidVersion(String),
    /// A required parameter is missing.
    #[error("the request must contain the parameter {0}")]
    MissingParameter(&'static str),
    /// A parameter breaks its constraint (AWS's "1 validation error detected" message).
    #[error(
        "1 validation error detected: Value at '{parameter}' failed to satisfy constraint: {constraint}"
    )]
    Validation {
        /// The parameter, in AWS's camel case (`roleSessionName`).
        parameter: &'static str,
        /// What it must be.
        constraint: &'static str,
    },
    /// `DurationSeconds` above the role's maximum.
    #[error("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")]
    DurationAboveRoleMaximum,
    /// A parameter this endpoint does not support (`ProviderId`), or a value it refuses.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// The form body or query does not parse (a parameter given twice, bad encoding).
    #[error("{0}")]
    MalformedRequest(String),
    /// The form body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The web identity token fails validation (signature, issuer, audience, format).
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// The web identity token has expired.
    #[error("Token expired: current date/time is later than the token's exp")]
    ExpiredIdentityToken,
    /// The token's claims are rejected (a subject or groups claim missing or malformed).
    #[error("{0}")]
    IdpRejectedClaim(String),
    /// The identity provider's keys cannot be fetched. The reason (URLs, DNS or TLS
    /// errors) is logged, never sent to the caller.
    #[error("the identity provider could not be reached; try again later")]
    IdpCommunication,
    /// No role of that ARN, or the token may not assume it.
    #[error("Not authorized to perform sts:AssumeRoleWithWebIdentity")]
    AccessDenied,
    /// The session policy is not a policy this gateway can evaluate.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// The session policy is longer than 2048 characters once whitespace is removed.
    #[error(
        "Packed policy consumes {0}% of allotted space, please use smaller policy for session."
    )]
    PackedPolicyTooLarge(usize),
    /// The session would not fit in a session token ([`MAX_SESSION_TOKEN_LEN`] characters):
    /// the token's groups and claims plus the role's groups are too many. Answered as
    /// `PackedPolicyTooLarge`, as AWS refuses sessions whose tags or policies do not fit.
    #[error(
        "The session is too large to issue: its groups and claims (from the web identity \
         token and the role) would make a session token longer than {max} characters; \
         reduce the groups the identity provider sends or the role carries.",
        max = MAX_SESSION_TOKEN_LEN
    )]
    SessionTooLarge,
    /// `GetCallerIdentity` failed SigV4 authentication.
    #[error("{0}")]
    Authentication(AuthError),
    /// Sealing the session failed (never expected: the keyring is checked at startup).
    #[error("internal failure: {0}")]
    Internal(String),

    // --- session tokens, when a signed request presents one -----------------------------
    /// The session token is not a token this gateway issued (bad encoding, wrong version).
    #[error("the session token is malformed")]
    SessionTokenMalformed,
    /// The session token was sealed under a key id the keyring does not hold (retired or
    /// from another deployment).
    #[error("the session token was sealed with a key this gateway does not hold")]
    SessionKeyUnknown,
    /// The session token does not open: tampered, or presented with another access key id.
    #[error("the session token is invalid")]
    SessionTokenInvalid,
    /// The session has expired.
    #[error("the session has expired")]
    SessionExpired,
    /// The session's role is no longer configured: removing a role ends its sessions.
    #[error("the session's role is no longer configured")]
    SessionRoleRemoved,

    // --- configuration ------------------------------------------------------------------
    /// A keyring or role setting is unusable.
    #[error("{0}")]
    Config(String),
}

/// How STS names an error: its code, HTTP status and whether the caller (`Sender`) or the
/// service (`Receiver`) is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsErrorCode {
    /// The `<Code>` (`InvalidIdentityToken`, `AccessDenied`...).
    pub code: &'static str,
    /// The HTTP status.
    pub status: StatusCode,
    /// `Sender` or `Receiver`.
    pub fault: &'static str,
}

impl StsErrorCode {
    const fn sender(code: &'static str, status: StatusCode) -> Self {
        Self {
            code,
            status,
            fault: "Sender",
        }
    }
}

impl StsError {
    /// The STS error code an `<ErrorResponse>` carries for this error.
    pub fn code(&self) -> StsErrorCode {
        use StatusCode as S;
        match self {
            Self::InvalidAction(_) | Self::InvalidVersion(_) => {
                StsErrorCode::sender("InvalidAction", S::BAD_REQUEST)
            }
            Self::MissingParameter(_) => StsErrorCode::sender("MissingParameter", S::BAD_REQUEST),
            Self::InvalidParameterValue(_) => {
                StsErrorCode::sender("InvalidParameterValue", S::BAD_REQUEST)
            }
            Self::Validation { .. } | Self::DurationAboveRoleMaximum => {
                StsErrorCode::sender("ValidationError", S::BAD_REQUEST)
            }
            Self::MalformedRequest(_) => {
                StsErrorCode::sender("MalformedQueryString", S::BAD_REQUEST)
            }
            Self::BodyTooLarge(_) => {
                StsErrorCode::sender("RequestEntityTooLarge", S::PAYLOAD_TOO_LARGE)
            }
            Self::InvalidIdentityToken(_) => {
                StsErrorCode::sender("InvalidIdentityToken", S::BAD_REQUEST)
            }
            Self::ExpiredIdentityToken => {
                StsErrorCode::sender("ExpiredTokenException", S::BAD_REQUEST)
            }
            Self::IdpRejectedClaim(_) => StsErrorCode::sender("IDPRejectedClaim", S::FORBIDDEN),
            Self::IdpCommunication => StsErrorCode::sender("IDPCommunicationError", S::BAD_REQUEST),
            Self::AccessDenied => StsErrorCode::sender("AccessDenied", S::FORBIDDEN),
            Self::MalformedPolicyDocument(_) => {
                StsErrorCode::sender("MalformedPolicyDocument", S::BAD_REQUEST)
            }
            Self::PackedPolicyTooLarge(_) | Self::SessionTooLarge => {
                StsErrorCode::sender("PackedPolicyTooLarge", S::BAD_REQUEST)
            }
            Self::Authentication(err) => auth_code(err),
            Self::SessionTokenMalformed
            | Self::SessionKeyUnknown
            | Self::SessionTokenInvalid
            | Self::SessionRoleRemoved => {
                StsErrorCode::sender("InvalidClientTokenId", S::FORBIDDEN)
            }
            Self::SessionExpired => StsErrorCode::sender("ExpiredToken", S::BAD_REQUEST),
            Self::Internal(_) | Self::Config(_) => StsErrorCode {
                code: "InternalFailure",
                status: S::INTERNAL_SERVER_ERROR,
                fault: "Receiver",
            },
        }
    }

    /// The SigV4 authentication error a request signed with a refused session token gets
    /// (`InvalidToken` or `ExpiredToken` as S3 names them).
    pub fn to_auth_error(&self) -> AuthError {
        match self {
            Self::SessionExpired => AuthError::ExpiredToken,
            Self::Authentication(err) => err.clone(),
            _ => AuthError::InvalidToken,
        }
    }
}

impl StsError {
    /// The STS error of a web identity token the JWT validator refused. A failure to reach
    /// the identity provider is logged (at warn) with its reason, which the caller never
    /// sees.
    pub(crate) fn from_identity_token(err: AuthError) -> Self {
        match err {
            AuthError::JwtExpired => Self::ExpiredIdentityToken,
            AuthError::JwksUnavailable(why) => {
                tracing::warn!(
                    target: "s3_tower::sts",
                    reason = %why,
                    "the identity provider's keys could not be fetched"
                );
                Self::IdpCommunication
            }
            AuthError::JwtMissingClaim(_) | AuthError::JwtInvalidClaim(_) => {
                Self::IdpRejectedClaim(err.to_string())
            }
            other => Self::InvalidIdentityToken(other.to_string()),
        }
    }

    /// The STS error of a session policy that does not parse.
    pub(crate) fn from_session_policy(err: SessionPolicyError) -> Self {
        match err {
            SessionPolicyError::TooLarge(percent) => Self::PackedPolicyTooLarge(percent),
            other => Self::MalformedPolicyDocument(other.to_string()),
        }
    }
}

/// The STS code of a failed `GetCallerIdentity` signature check.
fn auth_code(err: &AuthError) -> StsErrorCode {
    use StatusCode as S;
    match err {
        AuthError::AnonymousNotAllowed => {
            StsErrorCode::sender("MissingAuthenticationToken", S::FORBIDDEN)
        }
        AuthError::UnknownAccessKey | AuthError::InvalidToken => {
            StsErrorCode::sender("InvalidClientTokenId", S::FORBIDDEN)
        }
        AuthError::ExpiredToken => StsErrorCode::sender("ExpiredToken", S::BAD_REQUEST),
        AuthError::TimeTooSkewed => StsErrorCode::sender("RequestExpired", S::BAD_REQUEST),
        AuthError::CredentialsUnavailable(_) => StsErrorCode {
            code: "ServiceUnavailable",
            status: S::SERVICE_UNAVAILABLE,
            fault: "Receiver",
        },
        AuthError::SignatureMismatch => StsErrorCode::sender("SignatureDoesNotMatch", S::FORBIDDEN),
        _ => StsErrorCode::sender("IncompleteSignature", S::BAD_REQUEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idp_failures_do_not_reach_the_caller() {
        let err = StsError::from_identity_token(AuthError::JwksUnavailable(
            "GET http://10.1.2.3:8443/realms/main/certs: dns error: no such host".to_owned(),
        ));
        assert_eq!(err, StsError::IdpCommunication);
        assert_eq!(
            err.to_string(),
            "the identity provider could not be reached; try again later"
        );
        assert_eq!(err.code().code, "IDPCommunicationError");
    }

    #[test]
    fn oversized_sessions_are_a_client_error() {
        let code = StsError::SessionTooLarge.code();
        assert_eq!(code.code, "PackedPolicyTooLarge");
        assert_eq!(code.status, StatusCode::BAD_REQUEST);
        assert!(
            StsError::SessionTooLarge
                .to_string()
                .contains(&MAX_SESSION_TOKEN_LEN.to_string())
        );
        assert_eq!(
            StsError::SessionRoleRemoved.to_auth_error(),
            AuthError::InvalidToken
        );
    }
}
