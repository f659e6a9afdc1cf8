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

    // --- requests and stored objects (layer) -----------------------------------------------
    /// A client tried to set `x-amz-meta-s3t-*`, which holds the envelope.
    #[error("metadata names starting with s3t- are reserved for the encryption envelope")]
    ReservedMetadata,
    /// User metadata plus the envelope exceed S3's 2 KiB.
    #[error("user metadata and the encryption envelope exceed 2 KiB")]
    MetadataTooLarge,
    /// An object without envelope metadata in a bucket that does not serve plaintext.
    #[error("the object is not encrypted and this bucket serves only encrypted objects")]
    NotEncrypted,
    /// Envelope metadata that is incomplete or names an unknown version or algorithm.
    #[error("the object's encryption metadata is invalid: {0}")]
    InvalidEnvelope(&'static str),
    /// An operation that cannot work on ciphertext (it would need plaintext server-side).
    #[error("{0}")]
    Unsupported(&'static str),
    /// An upload without a known length.
    #[error("the upload has no Content-Length")]
    MissingLength,
    /// A single upload larger than S3 allows (5 GiB).
    #[error("the upload is larger than allowed")]
    TooLarge,
    /// A `Content-MD5` that is not the base64 of 16 bytes, or an `x-amz-checksum-*` header
    /// that is not valid base64 of its algorithm's length.
    #[error("invalid {0}")]
    InvalidDigest(&'static str),
    /// The plaintext does not match the checksum the client sent; nothing was stored.
    #[error("the body does not match its {0}")]
    BadDigest(&'static str),
    /// A request whose framing this layer cannot encrypt (an aws-chunked body no
    /// authentication layer decoded).
    #[error("{0}")]
    UnsupportedEncoding(&'static str),
    /// An upload id the gateway did not issue (or one from `ListMultipartUploads`, which
    /// carries no data key) where the data key is needed.
    #[error("the upload id is not one this gateway issued for uploading parts")]
    UnknownUpload,
    /// A multipart upload the gateway cannot complete so that sizes and ranges stay exact.
    #[error("{0}")]
    InvalidPart(String),
    /// Part numbers of a `CompleteMultipartUpload` not in ascending order.
    #[error("the parts are not in ascending order")]
    InvalidPartOrder,
    /// A request body the layer reads (an XML document) that is malformed or too large.
    #[error("{0}")]
    MalformedXml(&'static str),
    /// The backend answered something the layer cannot use.
    #[error("the backend answered unexpectedly: {0}")]
    Backend(String),
    /// A request parameter the layer cannot accept.
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// The layer runs without `s3_core::S3RequestLayer` in front of it.
    #[error("EncryptLayer needs S3RequestLayer in front of it")]
    NotParsed,
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
            Self::ReservedMetadata => S3Error::new(
                S3ErrorCode::InvalidArgument,
                "Metadata names starting with s3t- are reserved by the gateway",
            ),
            Self::MetadataTooLarge => S3Error::new(
                S3ErrorCode::MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size (the gateway's encryption envelope counts against it)",
            ),
            Self::NotEncrypted => S3Error::new(
                S3ErrorCode::InvalidObjectState,
                "The object is stored without encryption and this bucket serves only encrypted objects",
            ),
            Self::InvalidEnvelope(_) => {
                S3Error::new(S3ErrorCode::InternalError, "The object cannot be decrypted")
            }
            Self::Unsupported(why) | Self::UnsupportedEncoding(why) => {
                S3Error::new(S3ErrorCode::NotImplemented, *why)
            }
            Self::MissingLength => S3Error::new(
                S3ErrorCode::MissingContentLength,
                "You must provide the Content-Length HTTP header",
            ),
            Self::TooLarge => S3Error::new(
                S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed size",
            ),
            Self::InvalidDigest(what) => S3Error::new(
                S3ErrorCode::InvalidDigest,
                format!("The {what} you specified is not valid"),
            ),
            Self::BadDigest(what) => S3Error::new(
                S3ErrorCode::BadDigest,
                format!("The {what} you specified did not match the body; nothing was stored"),
            ),
            Self::UnknownUpload => S3Error::new(
                S3ErrorCode::NoSuchUpload,
                "The upload id is not one this gateway issued (ids from ListMultipartUploads can only list or abort)",
            ),
            Self::InvalidPart(why) => S3Error::new(S3ErrorCode::InvalidPart, why.clone()),
            Self::InvalidPartOrder => S3Error::new(
                S3ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order",
            ),
            Self::MalformedXml(why) => S3Error::new(S3ErrorCode::MalformedXML, *why),
            Self::InvalidArgument(why) => S3Error::new(S3ErrorCode::InvalidArgument, *why),
            Self::Backend(_) => {
                S3Error::new(S3ErrorCode::BadGateway, "The backend answered unexpectedly")
            }
            Self::NotParsed => {
                S3Error::new(S3ErrorCode::InternalError, "The gateway is misconfigured")
            }
        }
    }
}
