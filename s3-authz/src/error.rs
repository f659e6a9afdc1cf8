//! Why authorization failed, and the one place those reasons become S3 errors.

use s3_core::{S3Error, S3ErrorCode};

/// Every reason s3-authz refuses a request or cannot load a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// No `Principal` in the request extensions: no authentication layer ran.
    #[error("no authenticated principal")]
    MissingPrincipal,
    /// No `S3Request` in the request extensions: `S3RequestLayer` did not run.
    #[error("the request was not parsed by S3RequestLayer")]
    NotParsed,
    /// An operation the gateway does not recognise.
    #[error("unknown operation")]
    UnknownOperation,
    /// The policy denied a resource.
    #[error("access denied to {resource}")]
    Denied {
        /// The resource, as `bucket/key`, `bucket` or `*`.
        resource: String,
    },
    /// The policy engine allowed a resource, but the session policy of the principal's STS
    /// session does not (architecture §6: a session policy can only narrow what the role
    /// allows). Distinct from [`AuthzError::Denied`] in audit events only; the client sees
    /// the same `AccessDenied`.
    #[error("access to {resource} denied by the session policy")]
    SessionPolicyDenied {
        /// The resource, as `bucket/key`, `bucket` or `*`.
        resource: String,
    },
    /// The engine failed or its result is not a boolean.
    #[error("policy evaluation failed: {0}")]
    Engine(String),
    /// A policy file cannot be read, parsed or compiled.
    #[error("cannot load policy {source_name}: {message}")]
    PolicyLoad {
        /// The file or source name.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// A `DeleteObjects` body larger than the limit.
    #[error("DeleteObjects body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// A `DeleteObjects` body that is not the expected XML.
    #[error("malformed DeleteObjects body: {0}")]
    MalformedXml(String),
    /// A `DeleteObjects` key the gateway refuses to forward: longer than 1024 bytes
    /// (`KeyTooLongError`) or with a dot segment (`InvalidArgument`, see
    /// [`s3_core::check_key_segments`]).
    #[error("refused DeleteObjects key: {}", .0.message())]
    InvalidKey(S3Error),
    /// The request body failed while it was read.
    #[error("the request body could not be read")]
    BodyRead,
}

impl AuthzError {
    /// The S3 error a client receives. Every denial is `403 AccessDenied`; the message never
    /// says which rule denied.
    pub fn to_s3_error(&self) -> S3Error {
        match self {
            Self::BodyTooLarge(limit) => S3Error::new(
                S3ErrorCode::EntityTooLarge,
                format!("The DeleteObjects body is larger than {limit} bytes"),
            ),
            Self::MalformedXml(_) => S3Error::new(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ),
            Self::InvalidKey(err) => err.clone(),
            Self::BodyRead => S3Error::new(
                S3ErrorCode::IncompleteBody,
                "The request body could not be read",
            ),
            Self::MissingPrincipal
            | Self::NotParsed
            | Self::UnknownOperation
            | Self::Denied { .. }
            | Self::SessionPolicyDenied { .. }
            | Self::Engine(_)
            | Self::PolicyLoad { .. } => S3Error::new(S3ErrorCode::AccessDenied, "Access Denied"),
        }
    }
}
