//! Checksums of an upload, verified on the plaintext before its last segment is encrypted
//! (architecture §8a, "Checksums"): `Content-MD5` and one `x-amz-checksum-*` header. The
//! backend only sees ciphertext, so it cannot check them; on a mismatch the body fails
//! before its FINAL segment, the upstream request is aborted and nothing is stored.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use md5::{Digest as _, Md5};
use pin_project_lite::pin_project;
use s3_core::checksum::{ChecksumAlgorithm, Checksummer};

use crate::EncryptError;
use crate::body::BoxError;

/// Request headers about the body's checksums that must not reach the backend with a
/// ciphertext body (their values are of the plaintext).
const CHECKSUM_REQUEST_HEADERS: [&str; 4] = [
    "content-md5",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
];

/// What a client declared about its plaintext.
#[derive(Debug, Clone, Default)]
pub struct PlaintextChecks {
    md5: Option<[u8; 16]>,
    checksum: Option<(ChecksumAlgorithm, String)>,
}

impl PlaintextChecks {
    /// Reads `Content-MD5` and `x-amz-checksum-*` from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, EncryptError> {
        let md5 = match headers.get("content-md5") {
            None => None,
            Some(value) => {
                let raw = BASE64
                    .decode(value.as_bytes())
                    .map_err(|_| EncryptError::InvalidDigest("Content-MD5"))?;
                Some(
                    <[u8; 16]>::try_from(raw.as_slice())
                        .map_err(|_| EncryptError::InvalidDigest("Content-MD5"))?,
                )
            }
        };
        let mut checksum = None;
        for algorithm in ChecksumAlgorithm::ALL {
            if let Some(value) = headers.get(algorithm.header_name()) {
                if checksum.is_some() {
                    return Err(EncryptError::InvalidDigest(
                        "set of checksums (only one x-amz-checksum-* header is allowed)",
                    ));
                }
                let value = value
                    .to_str()
                    .map_err(|_| EncryptError::InvalidDigest("x-amz-checksum-* header"))?;
                checksum = Some((algorithm, value.to_owned()));
            }
        }
        Ok(Self { md5, checksum })
    }

    /// Removes the checksum headers of the plaintext from a request that will carry
    /// ciphertext.
    pub fn strip_request_headers(headers: &mut HeaderMap) {
        for name in CHECKSUM_REQUEST_HEADERS {
            headers.remove(name);
        }
        for algorithm in ChecksumAlgorithm::ALL {
            headers.remove(algorithm.header_name());
        }
    }

    /// Removes the backend's checksum headers (of the ciphertext) from a response.
    pub fn strip_response_headers(headers: &mut HeaderMap) {
        headers.remove("x-amz-checksum-type");
        for algorithm in ChecksumAlgorithm::ALL {
            headers.remove(algorithm.header_name());
        }
    }
}

/// What a [`CheckedBody`] learnt, shared with the layer that answers the request.
#[derive(Debug, Default)]
pub struct BodyOutcome {
    /// Why the upload body failed, if it did because of this crate (a checksum, a length).
    pub failure: Option<EncryptError>,
    /// The verified plaintext checksum to echo in the response, as S3 does.
    pub checksum: Option<(HeaderName, HeaderValue)>,
}

/// A handle on a [`BodyOutcome`].
pub type SharedOutcome = Arc<Mutex<BodyOutcome>>;

/// Records a failure of this crate in `outcome` (the first one wins).
pub fn record_failure(outcome: &SharedOutcome, error: &BoxError) {
    if let Some(e) = error.downcast_ref::<EncryptError>()
        && let Ok(mut slot) = outcome.lock()
        && slot.failure.is_none()
    {
        slot.failure = Some(e.clone());
    }
}

pin_project! {
    /// Passes a plaintext upload body through while computing its checksums; when the body
    /// ends, fails with [`EncryptError::BadDigest`] if one does not match, before the end
    /// is reported (so the encryptor never seals the FINAL segment). Trailers are passed on;
    /// a verified `x-amz-checksum-*` trailer (checked by the authentication layer that
    /// decoded aws-chunked framing) is recorded to echo to the client.
    pub struct CheckedBody<B> {
        #[pin]
        inner: B,
        md5: Option<(Md5, [u8; 16])>,
        checksum: Option<(Checksummer, String)>,
        outcome: SharedOutcome,
        done: bool,
    }
}

impl<B> CheckedBody<B> {
    /// Checks `inner` against `checks`, reporting into `outcome`.
    pub fn new(inner: B, checks: PlaintextChecks, outcome: SharedOutcome) -> Self {
        Self {
            inner,
            md5: checks.md5.map(|expected| (Md5::new(), expected)),
            checksum: checks
                .checksum
                .map(|(algorithm, expected)| (algorithm.hasher(), expected)),
            outcome,
            done: false,
        }
    }
}

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some((md5, _)) = this.md5.as_mut() {
                        md5.update(data);
                    }
                    if let Some((hasher, _)) = this.checksum.as_mut() {
                        hasher.update(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    record_trailer(this.outcome, trailers);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => {
                *this.done = true;
                if let Some((md5, expected)) = this.md5.take()
                    && md5.finalize().as_slice() != expected.as_slice()
                {
                    return Poll::Ready(Some(Err(fail(this.outcome, "Content-MD5"))));
                }
                if let Some((hasher, expected)) = this.checksum.take() {
                    let algorithm = hasher.algorithm();
                    if hasher.finalize_base64() != *expected {
                        return Poll::Ready(Some(Err(fail(this.outcome, "checksum"))));
                    }
                    if let Ok(value) = HeaderValue::from_str(&expected)
                        && let Ok(mut slot) = this.outcome.lock()
                    {
                        slot.checksum =
                            Some((HeaderName::from_static(algorithm.header_name()), value));
                    }
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn record_trailer(outcome: &SharedOutcome, trailers: &HeaderMap) {
    for algorithm in ChecksumAlgorithm::ALL {
        if let Some(value) = trailers.get(algorithm.header_name())
            && let Ok(mut slot) = outcome.lock()
        {
            slot.checksum = Some((
                HeaderName::from_static(algorithm.header_name()),
                value.clone(),
            ));
        }
    }
}

fn fail(outcome: &SharedOutcome, what: &'static str) -> BoxError {
    let error = EncryptError::BadDigest(what);
    if let Ok(mut slot) = outcome.lock() {
        slot.failure = Some(error.clone());
    }
    Box::new(error)
}
