//! [`SessionPolicy`]: the IAM policy document an STS caller passes to narrow its session.
//!
//! (Work in progress: the statement model and its evaluation are being written; until then
//! every document parses to a policy that allows nothing, which fails closed.)

use std::fmt;

use crate::request::{ResourceAccess, S3Request};

/// Why a session policy document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionPolicyError {
    /// Not a policy document this gateway evaluates.
    #[error("{0}")]
    Malformed(String),
    /// Longer than [`SessionPolicy::MAX_PACKED_LEN`] once whitespace outside strings is
    /// removed; the value is the percentage of the allowed size used.
    #[error("the packed policy uses {0}% of the allowed size")]
    TooLarge(usize),
}

/// A parsed session policy. A request of a session that has one must be allowed by the
/// policy engine **and** by this policy.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    source: String,
}

impl fmt::Debug for SessionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionPolicy").field(&self.source).finish()
    }
}

impl SessionPolicy {
    /// The most characters a packed (minified) session policy may have, as in AWS STS.
    pub const MAX_PACKED_LEN: usize = 2048;

    /// Parses a policy document.
    pub fn parse(document: &str) -> Result<Self, SessionPolicyError> {
        let value: serde_json::Value = serde_json::from_str(document)
            .map_err(|e| SessionPolicyError::Malformed(format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(SessionPolicyError::Malformed(
                "a policy document is a JSON object".to_owned(),
            ));
        }
        Ok(Self {
            source: document.to_owned(),
        })
    }

    /// The document as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the policy allows `access`, one resource of `request`.
    pub fn allows(&self, access: &ResourceAccess, request: &S3Request) -> bool {
        let _ = (access, request);
        false
    }
}
