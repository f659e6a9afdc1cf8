//! aws-chunked bodies (`Content-Encoding: aws-chunked`), decoded while streaming.
//!
//! STUB: the interface below is fixed; the implementation is being written.

use bytes::Bytes;

use crate::checksum::ChecksumAlgorithm;
use crate::error::AuthError;
use crate::sigv4::signing::{SigningKey, SigningScope};

/// A boxed error from the wrapped body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a verified body stopped: the client's body failed, or verification refused it.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The wrapped body failed (client disconnect, read error).
    Inner(BoxError),
    /// The payload failed verification.
    Auth(AuthError),
}

/// The signing context of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)`: each chunk's
/// signature chains from the previous one, starting at the request (seed) signature.
#[derive(Debug, Clone)]
pub(crate) struct ChunkSigning {
    pub(crate) key: SigningKey,
    pub(crate) scope: SigningScope,
    pub(crate) seed_signature: String,
}

/// What an aws-chunked body must satisfy.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedConfig {
    /// `Some` for the signed-chunk modes; `None` for `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
    pub(crate) signing: Option<ChunkSigning>,
    /// Whether the trailer carries `x-amz-trailer-signature` (`...-PAYLOAD-TRAILER` signed mode).
    pub(crate) trailer_signed: bool,
    /// The checksum trailer named by `x-amz-trailer`, if any.
    pub(crate) trailer: Option<ChecksumAlgorithm>,
    /// `x-amz-decoded-content-length`.
    pub(crate) decoded_length: u64,
}

#[allow(dead_code)]
fn _interface(_: Bytes) {}
