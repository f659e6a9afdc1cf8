//! Why authentication failed, and the one place those reasons become S3 errors.

use s3_core::{S3Error, S3ErrorCode};

use crate::checksum::ChecksumAlgorithm;

/// Every reason s3-auth refuses a request or aborts its body.
///
/// [`AuthError::to_s3_error`] maps each to the S3 error code and message a client sees; the
/// messages name what was wrong but never echo secrets, signatures or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials, and anonymous access is not configured.
    #[error("anonymous access is not allowed")]
    AnonymousNotAllowed,
    /// An AWS signature version 2 `Authorization` header.
    #[error("signature version 2 is not supported")]
    SigV2,
    /// An AWS signature version 2 presigned URL (`AWSAccessKeyId`, `Expires`, `Signature`).
    #[error("signature version 2 presigned URLs are not supported")]
    SigV2Presigned,
    /// An `Authorization` scheme or `X-Amz-Algorithm` other than `AWS4-HMAC-SHA256`.
    #[error("unsupported authorization algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// Both an `Authorization` header and presigned query parameters.
    #[error("more than one authentication mechanism")]
    MultipleAuthMechanisms,
    /// The `Authorization` header cannot be parsed.
    #[error("malformed Authorization header: {0}")]
    MalformedHeader(&'static str),
    /// The query string cannot be decoded (malformed escape, not UTF-8, a parameter twice).
    #[error("invalid query string: {}", .0.message())]
    InvalidQuery(S3Error),
    /// The presigned query parameters cannot be parsed or are out of range.
    #[error("malformed presigned URL: {0}")]
    MalformedQuery(&'static str),
    /// The credential scope names another service than the one verified here.
    #[error("credential scope names service {found:?}, expected {expected:?}")]
    WrongService {
        /// The service the verifier accepts.
        expected: String,
        /// The service in the scope.
        found: String,
    },
    /// The credential scope names another region than the configured one.
    #[error("credential scope names region {found:?}, expected {expected:?}")]
    WrongRegion {
        /// The configured region.
        expected: String,
        /// The region in the scope.
        found: String,
    },
    /// The date of the credential scope is not the day of the request time.
    #[error("credential scope date does not match the request date")]
    ScopeDateMismatch,
    /// Neither `x-amz-date` nor `Date` gives the request time.
    #[error("the request has no x-amz-date or Date header")]
    MissingDate,
    /// The request time is not a valid `YYYYMMDD'T'HHMMSS'Z'` timestamp.
    #[error("the request time is not a valid ISO 8601 basic timestamp")]
    InvalidDate,
    /// The request time is more than the allowed skew away from the gateway's clock.
    #[error("the request time is too far from the gateway's clock")]
    TimeTooSkewed,
    /// A presigned URL used after `X-Amz-Date + X-Amz-Expires`.
    #[error("the presigned URL has expired")]
    PresignExpired,
    /// A presigned URL whose `X-Amz-Date` is in the future.
    #[error("the presigned URL is not valid yet")]
    PresignNotYetValid,
    /// `host` is not among the signed headers.
    #[error("the host header is not signed")]
    HostNotSigned,
    /// An `x-amz-*` header that the signature does not cover.
    #[error("header {0} is present but not signed")]
    UnsignedHeader(String),
    /// A header named in `SignedHeaders` that the request does not carry.
    #[error("signed header {0} is missing")]
    SignedHeaderMissing(String),
    /// A header auth request without `x-amz-content-sha256`.
    #[error("missing x-amz-content-sha256")]
    MissingContentSha256,
    /// `x-amz-content-sha256` is neither a SHA-256 nor a known payload mode.
    #[error("invalid x-amz-content-sha256")]
    InvalidContentSha256,
    /// The access key id is not known to the credential resolver.
    #[error("unknown access key id")]
    UnknownAccessKey,
    /// The session token is not valid for the access key.
    #[error("invalid session token")]
    InvalidToken,
    /// The session token has expired.
    #[error("the session token has expired")]
    ExpiredToken,
    /// The credential store cannot be reached.
    #[error("credentials cannot be resolved now: {0}")]
    CredentialsUnavailable(String),
    /// The request signature does not match.
    #[error("the request signature does not match")]
    SignatureMismatch,
    /// The body does not hash to the signed `x-amz-content-sha256`.
    #[error("the body does not match x-amz-content-sha256")]
    ContentSha256Mismatch,
    /// An aws-chunked body without `x-amz-decoded-content-length`.
    #[error("missing x-amz-decoded-content-length")]
    MissingDecodedLength,
    /// The aws-chunked framing is broken.
    #[error("malformed aws-chunked body: {0}")]
    MalformedChunk(&'static str),
    /// A chunk header line longer than the decoder accepts.
    #[error("aws-chunked chunk header longer than {0} bytes")]
    ChunkHeaderTooLong(usize),
    /// A chunk signature does not match (tampered, reordered or dropped chunk).
    #[error("aws-chunked chunk signature does not match")]
    ChunkSignatureMismatch,
    /// The trailer signature does not match, or a signed upload's trailer is unsigned.
    #[error("aws-chunked trailer signature does not match or is missing")]
    TrailerSignatureMismatch,
    /// The body ended before its final chunk.
    #[error("the body ended before the final aws-chunked chunk")]
    IncompleteBody,
    /// The decoded payload is longer or shorter than `x-amz-decoded-content-length`.
    #[error(
        "decoded payload length {actual} does not match x-amz-decoded-content-length {declared}"
    )]
    DecodedLengthMismatch {
        /// `x-amz-decoded-content-length`.
        declared: u64,
        /// Bytes actually decoded (so far, when too long).
        actual: u64,
    },
    /// The trailer declared in `x-amz-trailer` is missing, or another one came.
    #[error("malformed aws-chunked trailer: {0}")]
    MalformedTrailer(&'static str),
    /// `x-amz-trailer` names something other than one `x-amz-checksum-*` header.
    #[error("unsupported x-amz-trailer {0:?}")]
    UnsupportedTrailer(String),
    /// The trailing checksum does not match the decoded payload.
    #[error("the {0} checksum does not match the payload")]
    ChecksumMismatch(ChecksumAlgorithm),
    /// A bearer token together with SigV4 credentials (presigned query, or an
    /// `Authorization` header next to a custom bearer header).
    #[error("a bearer token and AWS signature credentials in one request")]
    BearerWithSigV4,
    /// The bearer token is not a well-formed JWT.
    #[error("malformed bearer token: {0}")]
    JwtMalformed(&'static str),
    /// The token's `iss` is not a configured issuer.
    #[error("the bearer token's issuer is not trusted")]
    JwtUnknownIssuer,
    /// The token's `alg` is `none`, HMAC, unknown, or not in the issuer's allow-list.
    #[error("bearer token algorithm {0:?} is not allowed")]
    JwtAlgorithmNotAllowed(String),
    /// The issuer's JWKS has no key with the token's `kid`.
    #[error("the bearer token's signing key is unknown")]
    JwtUnknownKey,
    /// The token's `alg` does not fit the key's type or stated algorithm.
    #[error("the bearer token's algorithm does not match its key")]
    JwtKeyMismatch,
    /// The token's signature does not verify.
    #[error("the bearer token's signature does not verify")]
    JwtBadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("the bearer token is expired")]
    JwtExpired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the bearer token is not valid yet")]
    JwtNotYetValid,
    /// `aud` names none of the configured audiences.
    #[error("the bearer token's audience is not accepted")]
    JwtWrongAudience,
    /// A required claim is missing.
    #[error("the bearer token has no {0} claim")]
    JwtMissingClaim(String),
    /// A claim has the wrong type.
    #[error("the bearer token's {0} claim is invalid")]
    JwtInvalidClaim(String),
    /// The issuer's keys cannot be fetched and the token's key is not cached.
    #[error("the identity provider's keys cannot be fetched: {0}")]
    JwksUnavailable(String),
}

impl AuthError {
    /// The S3 error a client receives for this failure.
    pub fn to_s3_error(&self) -> S3Error {
        use S3ErrorCode as C;
        let (code, message): (S3ErrorCode, String) = match self {
            Self::AnonymousNotAllowed => (
                C::AccessDenied,
                "Anonymous access is not allowed; sign the request with AWS4-HMAC-SHA256".into(),
            ),
            // AWS's exact words: s3cmd (and others) switch to SigV4 when they see them.
            Self::SigV2 => (
                C::InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use \
                 AWS4-HMAC-SHA256."
                    .into(),
            ),
            Self::SigV2Presigned => (
                C::InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use \
                 AWS4-HMAC-SHA256. This presigned URL uses AWS signature version 2; with boto3 \
                 create it with signature_version='s3v4'."
                    .into(),
            ),
            Self::UnsupportedAlgorithm(alg) => (
                C::InvalidRequest,
                format!(
                    "The authorization mechanism {alg:?} is not supported. Please use \
                     AWS4-HMAC-SHA256."
                ),
            ),
            Self::MultipleAuthMechanisms => (
                C::InvalidArgument,
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or \
                 the Authorization header should be specified"
                    .into(),
            ),
            Self::MalformedHeader(why) => (
                C::AuthorizationHeaderMalformed,
                format!("The authorization header is malformed; {why}"),
            ),
            Self::InvalidQuery(err) => return err.clone(),
            Self::MalformedQuery(why) => (
                C::AuthorizationQueryParametersError,
                format!("The presigned URL is malformed; {why}"),
            ),
            Self::WrongService { expected, found } => (
                C::AuthorizationHeaderMalformed,
                format!("The credential scope names service '{found}'; expecting '{expected}'"),
            ),
            Self::WrongRegion { expected, found } => (
                C::AuthorizationHeaderMalformed,
                format!(
                    "The authorization header is malformed; the region '{found}' is wrong; expecting '{expected}'"
                ),
            ),
            Self::ScopeDateMismatch => (
                C::AuthorizationHeaderMalformed,
                "The authorization header is malformed; the credential date does not match the \
                 request date"
                    .into(),
            ),
            Self::MissingDate => (
                C::AccessDenied,
                "AWS authentication requires a valid Date or x-amz-date header".into(),
            ),
            Self::InvalidDate => (
                C::AccessDenied,
                "AWS authentication requires a valid Date or x-amz-date header".into(),
            ),
            Self::TimeTooSkewed => (
                C::RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large.".into(),
            ),
            Self::PresignExpired => (C::AccessDenied, "Request has expired".into()),
            Self::PresignNotYetValid => (C::AccessDenied, "Request is not valid yet".into()),
            Self::HostNotSigned => (C::AccessDenied, "The host header must be signed".into()),
            Self::UnsignedHeader(name) => (
                C::AccessDenied,
                format!("There were headers present in the request which were not signed: {name}"),
            ),
            Self::SignedHeaderMissing(name) => (
                C::AccessDenied,
                format!("The signed header {name} is not present in the request"),
            ),
            Self::MissingContentSha256 => (
                C::InvalidRequest,
                "Missing required header for this request: x-amz-content-sha256".into(),
            ),
            Self::InvalidContentSha256 => (
                C::InvalidArgument,
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* payload mode, or a \
                 valid sha256 value"
                    .into(),
            ),
            Self::UnknownAccessKey => (
                C::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.".into(),
            ),
            Self::InvalidToken => (
                C::InvalidToken,
                "The provided token is malformed or otherwise invalid.".into(),
            ),
            Self::ExpiredToken => (C::ExpiredToken, "The provided token has expired.".into()),
            Self::CredentialsUnavailable(_) => (
                C::ServiceUnavailable,
                "Credentials cannot be verified right now; try again later".into(),
            ),
            Self::SignatureMismatch => (
                C::SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method."
                    .into(),
            ),
            Self::ContentSha256Mismatch => (
                C::XAmzContentSHA256Mismatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ),
            Self::MissingDecodedLength => (
                C::MissingContentLength,
                "aws-chunked uploads need x-amz-decoded-content-length".into(),
            ),
            Self::MalformedChunk(why) => (
                C::InvalidRequest,
                format!("Malformed aws-chunked body: {why}"),
            ),
            Self::ChunkHeaderTooLong(limit) => (
                C::InvalidRequest,
                format!("Malformed aws-chunked body: a chunk header is longer than {limit} bytes"),
            ),
            Self::ChunkSignatureMismatch => (
                C::SignatureDoesNotMatch,
                "The chunk signature we calculated does not match the signature you provided."
                    .into(),
            ),
            Self::TrailerSignatureMismatch => (
                C::SignatureDoesNotMatch,
                "The trailer signature is missing or does not match.".into(),
            ),
            Self::IncompleteBody => (
                C::IncompleteBody,
                "The request body ended before its final aws-chunked chunk".into(),
            ),
            Self::DecodedLengthMismatch { declared, actual } => (
                C::IncompleteBody,
                format!(
                    "The decoded body length {actual} does not match x-amz-decoded-content-length {declared}"
                ),
            ),
            Self::MalformedTrailer(why) => (
                C::MalformedTrailerError,
                format!("The request contained trailing data that was not well-formed: {why}"),
            ),
            Self::UnsupportedTrailer(name) => (
                C::InvalidRequest,
                format!(
                    "Unsupported x-amz-trailer {name:?}; only one x-amz-checksum-* trailer is accepted"
                ),
            ),
            Self::ChecksumMismatch(algorithm) => (
                C::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm.name()
                ),
            ),
            Self::BearerWithSigV4 => (
                C::InvalidRequest,
                "Only one auth mechanism allowed; send either a bearer token or an AWS signature"
                    .into(),
            ),
            Self::JwtMalformed(why) => (
                C::AccessDenied,
                format!("The bearer token is malformed: {why}"),
            ),
            Self::JwtUnknownIssuer => (
                C::AccessDenied,
                "The bearer token's issuer is not trusted".into(),
            ),
            Self::JwtAlgorithmNotAllowed(alg) => (
                C::AccessDenied,
                format!("The bearer token's algorithm {alg:?} is not allowed"),
            ),
            Self::JwtUnknownKey => (
                C::AccessDenied,
                "The bearer token is signed with an unknown key".into(),
            ),
            Self::JwtKeyMismatch => (
                C::AccessDenied,
                "The bearer token's algorithm does not match its signing key".into(),
            ),
            Self::JwtBadSignature => (
                C::AccessDenied,
                "The bearer token's signature is invalid".into(),
            ),
            Self::JwtExpired => (C::AccessDenied, "The bearer token is expired".into()),
            Self::JwtNotYetValid => (C::AccessDenied, "The bearer token is not valid yet".into()),
            Self::JwtWrongAudience => (
                C::AccessDenied,
                "The bearer token is not intended for this service (audience)".into(),
            ),
            Self::JwtMissingClaim(claim) => (
                C::AccessDenied,
                format!("The bearer token has no {claim} claim"),
            ),
            Self::JwtInvalidClaim(claim) => (
                C::AccessDenied,
                format!("The bearer token's {claim} claim is invalid"),
            ),
            Self::JwksUnavailable(_) => (
                C::ServiceUnavailable,
                "The identity provider cannot be reached to verify the bearer token; try again \
                 later"
                    .into(),
            ),
        };
        S3Error::new(code, message)
    }
}
