//! Why encryption, decryption or a key operation failed, and the one place those reasons
//! become S3 errors.

use s3_core::{S3Error, S3ErrorCode};

/// Every reason s3-encrypt refuses or fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    // --- the segment format (format / body / range modules) -----------------------------
    /// Stored bytes that are not a valid v1 segment stream: a header, length or order that
    /// does not fit, a missing or early FINAL segment, data after it.
    #[error("the stored object is not a valid encrypted stream: {0}")]
    Malformed(&'static str),
    /// A segment failed authentication: tampered, reordered, from another object or part,
    /// or decrypted with the wrong key.
    #[error("a segment of the stored object failed authentication")]
    Tampered,
    /// A ciphertext size that no plaintext size encrypts to.
    #[error("invalid encrypted size {0}")]
    InvalidSize(u64),
    /// The plaintext body is not as long as announced.
    #[error("the body is {actual} bytes, {expected} were announced")]
    LengthMismatch {
        /// Announced length.
        expected: u64,
        /// Length read.
        actual: u64,
    },
    /// A range that does not fit the object (`InvalidRange`, 416).
    #[error("the range is not satisfiable")]
    InvalidRange,
    /// A `Range` header this gateway does not serve on encrypted objects (several ranges in
    /// one request): refused clearly (`NotImplemented`, 501) rather than answered partly.
    #[error("unsupported range: {0}")]
    UnsupportedRange(&'static str),

    // --- key-encryption keys (kek module) ------------------------------------------------
    /// The key-encryption key service cannot be reached or failed (503, never plaintext).
    #[error("the key service is unavailable: {0}")]
    KeyServiceUnavailable(String),
    /// The key service refused the operation (permissions, unknown key).
    #[error("the key service refused: {0}")]
    KeyServiceRefused(String),
    /// A wrapped data key that does not unwrap.
    #[error("the object's data key does not unwrap")]
    KeyUnwrap,
    /// A configuration that cannot work (bad key file, missing key name).
    #[error("{0}")]
    Config(String),
}

impl EncryptError {
    /// The S3 error a client receives.
    pub fn to_s3_error(&self) -> S3Error {
        match self {
            Self::InvalidRange => S3Error::new(
                S3ErrorCode::InvalidRange,
                "The requested range is not satisfiable",
            ),
            Self::UnsupportedRange(why) => S3Error::new(S3ErrorCode::NotImplemented, *why),
            Self::LengthMismatch { .. } => S3Error::new(
                S3ErrorCode::IncompleteBody,
                "The request body is not as long as announced",
            ),
            Self::KeyServiceUnavailable(_) => S3Error::new(
                S3ErrorCode::ServiceUnavailable,
                "The key service is unavailable; the object was not stored or read",
            ),
            Self::Malformed(_) | Self::Tampered | Self::InvalidSize(_) | Self::KeyUnwrap => {
                S3Error::new(S3ErrorCode::InternalError, "The object cannot be decrypted")
            }
            // Storing or reading: the gateway's key setup is at fault, not the object.
            Self::KeyServiceRefused(_) | Self::Config(_) => S3Error::new(
                S3ErrorCode::InternalError,
                "The key service refused the operation; the object was not stored or read",
            ),
        }
    }
}
