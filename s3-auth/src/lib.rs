//! Authenticate S3 requests into an [`s3_core::Principal`].
//!
//! [`SigV4Layer`] verifies AWS Signature Version 4 as every real S3 client sends it: the
//! `Authorization` header, presigned URLs, and aws-chunked streaming uploads with chunk
//! signatures and trailing checksums, verified while the body streams. Secrets come from a
//! [`CredentialResolver`]: static users from configuration here, sealed STS sessions in
//! `s3-sts`.

pub mod checksum;
mod error;
pub mod sigv4;

pub use error::AuthError;
