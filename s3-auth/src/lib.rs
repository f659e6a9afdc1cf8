//! Authenticate S3 requests into an [`s3_core::Principal`].
//!
//! [`SigV4Layer`] verifies AWS Signature Version 4 as every real S3 client sends it: the
//! `Authorization` header (with or without spaces after commas), presigned URLs, and
//! aws-chunked streaming uploads with chunk signatures and trailing checksums, verified while
//! the body streams. Secrets come from a [`CredentialResolver`]: [`StaticCredentials`] from
//! configuration here, sealed STS sessions in `s3-sts`.
//!
//! [`JwtLayer`] verifies `Authorization: Bearer <jwt>` tokens from configured OpenID Connect
//! issuers with a [`JwtValidator`] (see [`jwt`]); place it outside `SigV4Layer`.
//!
//! Failures are answered with the S3 XML error a client expects; see [`AuthError`] for every
//! reason and its code. AWS signature version 2 is refused with a message saying so.

/// The S3 additional checksums, shared with s3-encrypt (moved to s3-core).
pub use s3_core::checksum;
mod credentials;
mod error;
pub mod jwt;
pub mod sigv4;

pub use credentials::{
    CredentialRequest, CredentialResolver, DuplicateAccessKey, ResolveFuture, ResolvedCredentials,
    SecretKey, SecretSource, SecretSourceError, StaticCredentials, StaticUser,
};
pub use error::AuthError;
pub use jwt::{IssuerConfig, JwtLayer, JwtService, JwtValidator};
pub use sigv4::{PayloadMode, SigV4Body, SigV4Layer, SigV4Service, SigV4Verifier, VerifiedRequest};
