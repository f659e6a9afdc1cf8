//! The body types [`super::EncryptService`] hands inward (requests) and outward (responses).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use pin_project_lite::pin_project;

use crate::body::{BoxError, DecryptBody, EncryptBody};
use crate::plaintext_check::{CheckedBody, SharedOutcome, record_failure};

pin_project! {
    /// A request body going to the backend: the client's as it was, the client's encrypted
    /// while it streams, or a small document the layer rewrote.
    #[project = RequestBodyProj]
    #[allow(missing_docs)] // pin-project-lite takes no attributes on variant fields
    pub enum EncryptRequestBody<B> {
        /// Passed through unchanged.
        Plain {
            #[pin] body: B,
        },
        /// Checked on the plaintext and encrypted; failures are recorded in `outcome`.
        Encrypted {
            #[pin] body: EncryptBody<CheckedBody<B>>,
            outcome: SharedOutcome,
        },
        /// A copy's source read as plaintext, encrypted again or not; failures are
        /// recorded in `outcome`.
        Copied {
            #[pin] body: UnsyncBoxBody<Bytes, BoxError>,
            outcome: SharedOutcome,
        },
        /// A rewritten document (a `CompleteMultipartUpload` body) or nothing.
        Buffered {
            #[pin] body: Full<Bytes>,
        },
    }
}

impl<B> EncryptRequestBody<B> {
    /// An empty body (requests the layer makes itself).
    pub fn empty() -> Self {
        Self::Buffered {
            body: Full::new(Bytes::new()),
        }
    }
}

impl<B> Body for EncryptRequestBody<B>
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
        match self.project() {
            RequestBodyProj::Plain { body } => body.poll_frame(cx).map_err(Into::into),
            RequestBodyProj::Encrypted { body, outcome } => {
                let polled = body.poll_frame(cx);
                if let Poll::Ready(Some(Err(e))) = &polled {
                    record_failure(outcome, e);
                }
                polled
            }
            RequestBodyProj::Copied { body, outcome } => {
                let polled = body.poll_frame(cx);
                if let Poll::Ready(Some(Err(e))) = &polled {
                    record_failure(outcome, e);
                }
                polled
            }
            RequestBodyProj::Buffered { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain { body } => body.is_end_stream(),
            Self::Encrypted { body, .. } => body.is_end_stream(),
            Self::Copied { body, .. } => body.is_end_stream(),
            Self::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain { body } => body.size_hint(),
            Self::Encrypted { body, .. } => body.size_hint(),
            Self::Copied { body, .. } => body.size_hint(),
            Self::Buffered { body } => body.size_hint(),
        }
    }
}

pin_project! {
    /// A response body going to the client: the backend's as it was, decrypted while it
    /// streams, or a document the layer wrote (an error, a rewritten listing).
    #[project = ResponseBodyProj]
    #[allow(missing_docs)] // pin-project-lite takes no attributes on variant fields
    pub enum EncryptResponseBody<B> {
        /// Passed through unchanged.
        Plain {
            #[pin] body: B,
        },
        /// Decrypted; a failure mid-stream is an error, never a clean short body.
        Decrypted {
            #[pin] body: DecryptBody<B>,
            first: Option<Frame<Bytes>>,
        },
        /// Written by the layer.
        Buffered {
            #[pin] body: Full<Bytes>,
        },
    }
}

impl<B> From<Bytes> for EncryptResponseBody<B> {
    fn from(bytes: Bytes) -> Self {
        Self::Buffered {
            body: Full::new(bytes),
        }
    }
}

impl<B> Body for EncryptResponseBody<B>
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
        match self.project() {
            ResponseBodyProj::Plain { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseBodyProj::Decrypted { body, first } => {
                if let Some(frame) = first.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                let polled = body.poll_frame(cx);
                if let Poll::Ready(Some(Err(e))) = &polled {
                    tracing::warn!(error = %e, "decryption failed mid-stream; the response is aborted");
                }
                polled
            }
            ResponseBodyProj::Buffered { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain { body } => body.is_end_stream(),
            Self::Decrypted { body, first } => first.is_none() && body.is_end_stream(),
            Self::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain { body } => body.size_hint(),
            Self::Decrypted { body, first } => {
                let inner = body.size_hint();
                let held = first
                    .as_ref()
                    .and_then(Frame::data_ref)
                    .map_or(0, |data| data.len() as u64);
                let mut hint = SizeHint::new();
                // Upper first: a lower bound may never exceed the upper one.
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + held);
                }
                hint.set_lower(inner.lower() + held);
                hint
            }
            Self::Buffered { body } => body.size_hint(),
        }
    }
}
