//! Who made a request: inserted by an authentication layer, read by authorization and audit.

use std::sync::Arc;

use crate::SessionPolicy;

/// How a [`Principal`] was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// No credentials; only where anonymous access is configured.
    Anonymous,
    /// A JWT bearer token.
    Jwt,
    /// An AWS SigV4 `Authorization` header.
    SigV4,
    /// An AWS SigV4 presigned URL.
    Presigned,
}

impl AuthMethod {
    /// The lower-case name used in policy input and logs (`anonymous`, `jwt`, `sigv4`,
    /// `presigned`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Jwt => "jwt",
            Self::SigV4 => "sigv4",
            Self::Presigned => "presigned",
        }
    }
}

/// Temporary-session details of a principal that authenticated with STS-issued credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The assumed role's ARN.
    pub role_arn: String,
    /// The `RoleSessionName` given at `AssumeRoleWithWebIdentity`.
    pub session_name: String,
    /// The session policy that narrows what the role allows, if any, parsed once when the
    /// session's credentials were resolved.
    pub policy: Option<Arc<SessionPolicy>>,
}

/// The authenticated identity behind a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Stable identifier of the user or workload (JWT `sub`, static user name...).
    pub subject: String,
    /// Groups the subject belongs to, as the policy sees them.
    pub groups: Vec<String>,
    /// Extra claims passed to the policy engine.
    pub claims: serde_json::Value,
    /// How the subject authenticated.
    pub auth: AuthMethod,
    /// Set when the request uses temporary STS credentials.
    pub session: Option<Session>,
}

impl Principal {
    /// The principal of an unauthenticated request, used only where anonymous access is
    /// configured.
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            groups: Vec::new(),
            claims: serde_json::Value::Null,
            auth: AuthMethod::Anonymous,
            session: None,
        }
    }
}
