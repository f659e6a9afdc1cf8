//! The [`Authorizer`] trait and its trivial implementations.

use crate::error::AuthzError;
use crate::input::AuthzInput;

/// What an [`Authorizer`] decided about one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The policy allows it.
    Allow,
    /// The policy denies it (or does not allow it).
    Deny,
}

impl Decision {
    /// Whether the decision allows.
    pub fn is_allow(self) -> bool {
        self == Self::Allow
    }

    /// `allow` or `deny`, for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// A policy engine deciding about one resource at a time.
///
/// It is called synchronously on the request path: embedded engines answer in microseconds.
/// An error is a denial (fail closed); the layer logs it.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `input`.
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, AuthzError>;

    /// The engine's name in audit records (`rego`, `cedar`...).
    fn engine(&self) -> &'static str;
}

impl<T: Authorizer + ?Sized> Authorizer for std::sync::Arc<T> {
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, AuthzError> {
        (**self).authorize(input)
    }

    fn engine(&self) -> &'static str {
        (**self).engine()
    }
}

/// Allows everything: for tests and for stacks that authorize elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _input: &AuthzInput) -> Result<Decision, AuthzError> {
        Ok(Decision::Allow)
    }

    fn engine(&self) -> &'static str {
        "allow-all"
    }
}

/// Denies everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl Authorizer for DenyAll {
    fn authorize(&self, _input: &AuthzInput) -> Result<Decision, AuthzError> {
        Ok(Decision::Deny)
    }

    fn engine(&self) -> &'static str {
        "deny-all"
    }
}
