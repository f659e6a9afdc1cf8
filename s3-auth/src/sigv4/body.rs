//! [`SigV4Body`]: the request body handed inward by [`SigV4Layer`](super::SigV4Layer) — the
//! plain payload, verified while it streams.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use s3_core::S3Error;

use crate::sigv4::chunked::{AwsChunkedBody, BoxError, VerifyError};
use crate::sigv4::payload::Sha256CheckedBody;

/// Where a body records why verification failed, so the layer can answer with that S3 error
/// whatever the inner service made of the aborted body.
pub(crate) type FailureSlot = Arc<OnceLock<S3Error>>;

pin_project! {
    /// The body of an authenticated request: passed through, checked against its signed
    /// SHA-256, or decoded from aws-chunked with every chunk signature and the trailing
    /// checksum verified.
    ///
    /// A verification failure ends the body with a boxed [`S3Error`] (the code the client
    /// must see, e.g. `XAmzContentSHA256Mismatch`), before the final bytes are released.
    pub struct SigV4Body<B> {
        #[pin]
        kind: Kind<B>,
        failure: Option<FailureSlot>,
        request_id: Option<String>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Plain { #[pin] body: B },
        Sha256 { #[pin] body: Sha256CheckedBody<B> },
        Chunked { #[pin] body: AwsChunkedBody<B> },
    }
}

impl<B> SigV4Body<B> {
    /// A body passed through unchanged (unsigned payload, anonymous request).
    pub fn plain(body: B) -> Self {
        Self {
            kind: Kind::Plain { body },
            failure: None,
            request_id: None,
        }
    }

    pub(crate) fn sha256(body: Sha256CheckedBody<B>) -> Self {
        Self {
            kind: Kind::Sha256 { body },
            failure: None,
            request_id: None,
        }
    }

    pub(crate) fn chunked(body: AwsChunkedBody<B>) -> Self {
        Self {
            kind: Kind::Chunked { body },
            failure: None,
            request_id: None,
        }
    }

    pub(crate) fn report_to(mut self, slot: FailureSlot, request_id: Option<String>) -> Self {
        self.failure = Some(slot);
        self.request_id = request_id;
        self
    }
}

impl<B> Body for SigV4Body<B>
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
        let polled = match this.kind.project() {
            KindProj::Plain { body } => {
                return body.poll_frame(cx).map_err(Into::into);
            }
            KindProj::Sha256 { body } => ready!(body.poll_frame(cx)),
            KindProj::Chunked { body } => ready!(body.poll_frame(cx)),
        };
        Poll::Ready(polled.map(|result| {
            result.map_err(|err| match err {
                VerifyError::Inner(err) => err,
                VerifyError::Auth(err) => {
                    tracing::debug!(error = %err, "request body failed verification");
                    let mut s3 = err.to_s3_error();
                    if let Some(id) = this.request_id.as_deref() {
                        s3 = s3.with_request_id(id);
                    }
                    if let Some(slot) = this.failure.as_ref() {
                        let _ = slot.set(s3.clone());
                    }
                    Box::new(s3) as BoxError
                }
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Plain { body } => body.is_end_stream(),
            Kind::Sha256 { body } => body.is_end_stream(),
            Kind::Chunked { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Plain { body } => body.size_hint(),
            Kind::Sha256 { body } => body.size_hint(),
            Kind::Chunked { body } => body.size_hint(),
        }
    }
}
