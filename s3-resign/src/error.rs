//! Errors of the re-signing layer and upstream client, and their S3 error answers.

use s3_core::{S3Error, S3ErrorCode};

/// Everything that can go wrong forwarding a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResignError {
    /// The request did not pass through `S3RequestLayer`.
    #[error("the request was not parsed by S3RequestLayer")]
    NotParsed,
    /// The operation is not a recognised S3 operation.
    #[error("not a supported S3 operation")]
    UnknownOperation,
    /// No backend serves the bucket.
    #[error("no backend serves bucket `{0}`")]
    NoBackend(String),
    /// `ListBuckets` without a default backend.
    #[error("ListBuckets needs a default backend")]
    NoDefaultBackend,
    /// The client sent a body framing that cannot be forwarded as is.
    #[error("{0}")]
    UnsupportedPayload(&'static str),
    /// A header cannot be forwarded (a value that is not visible ASCII).
    #[error("{0}")]
    InvalidHeader(String),
    /// The backend credentials could not be obtained.
    #[error("backend credentials are unavailable: {0}")]
    Credentials(String),
    /// The request could not be signed.
    #[error("signing the upstream request failed: {0}")]
    Signing(String),
    /// The upstream URI or a header could not be built.
    #[error("building the upstream request failed: {0}")]
    Build(String),
    /// The backend could not be connected to.
    #[error("backend unreachable")]
    Connect,
    /// The backend did not answer in time.
    #[error("backend did not answer in time")]
    Timeout,
    /// The backend connection failed mid-request or answered with invalid HTTP.
    #[error("backend connection failed")]
    Transport,
}

impl ResignError {
    /// The S3 error the client gets. Messages never contain credentials.
    pub fn to_s3_error(&self) -> S3Error {
        let code = match self {
            Self::NotParsed | Self::Signing(_) | Self::Build(_) => S3ErrorCode::InternalError,
            Self::UnknownOperation => S3ErrorCode::NotImplemented,
            Self::NoBackend(_) => S3ErrorCode::NoSuchBucket,
            Self::NoDefaultBackend => S3ErrorCode::NotImplemented,
            Self::UnsupportedPayload(_) => S3ErrorCode::InvalidRequest,
            Self::InvalidHeader(_) => S3ErrorCode::InvalidArgument,
            Self::Credentials(_) | Self::Connect => S3ErrorCode::ServiceUnavailable,
            Self::Timeout => S3ErrorCode::GatewayTimeout,
            Self::Transport => S3ErrorCode::BadGateway,
        };
        let message = match self {
            // Internal details stay in the logs.
            Self::NotParsed | Self::Signing(_) | Self::Build(_) => {
                "The gateway could not forward the request".to_owned()
            }
            Self::Credentials(_) => "The gateway's backend credentials are unavailable".to_owned(),
            other => other.to_string(),
        };
        S3Error::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_s3_codes() {
        let cases = [
            (ResignError::Connect, S3ErrorCode::ServiceUnavailable, 503),
            (ResignError::Timeout, S3ErrorCode::GatewayTimeout, 504),
            (ResignError::Transport, S3ErrorCode::BadGateway, 502),
            (
                ResignError::NoBackend("b".into()),
                S3ErrorCode::NoSuchBucket,
                404,
            ),
            (ResignError::NotParsed, S3ErrorCode::InternalError, 500),
        ];
        for (err, code, status) in cases {
            let s3 = err.to_s3_error();
            assert_eq!(s3.code(), code);
            assert_eq!(s3.status().as_u16(), status);
        }
        let secret = ResignError::Credentials("secret detail".into()).to_s3_error();
        assert!(!secret.message().contains("secret detail"));
    }
}
