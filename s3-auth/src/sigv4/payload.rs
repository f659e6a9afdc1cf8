//! A body checked against its signed `x-amz-content-sha256` while it streams.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aws_lc_rs::digest;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::sigv4::chunked::{BoxError, VerifyError};

pin_project! {
    /// Passes the body through while hashing it, and fails with
    /// [`AuthError::ContentSha256Mismatch`] when the hash differs from the signed one.
    ///
    /// The most recent data frame is held back until the hash is verified, so a receiver
    /// never sees the complete body of a request that fails verification.
    pub(crate) struct Sha256CheckedBody<B> {
        #[pin]
        inner: B,
        expected: [u8; 32],
        hasher: Option<digest::Context>,
        held: Option<Bytes>,
        done: bool,
    }
}

impl<B> Sha256CheckedBody<B> {
    /// Checks `inner` against `expected_hex` (64 lower-case hex digits, already validated).
    pub(crate) fn new(inner: B, expected_hex: &str) -> Self {
        let mut expected = [0u8; 32];
        // Validated by the verifier; an invalid value leaves zeros, which no body matches.
        let _ = hex::decode_to_slice(expected_hex, &mut expected);
        Self {
            inner,
            expected,
            hasher: Some(digest::Context::new(&digest::SHA256)),
            held: None,
            done: false,
        }
    }
}

impl<B> Body for Sha256CheckedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = VerifyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, VerifyError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers of a plain body carry nothing we verify; they are dropped.
                    if let Ok(data) = frame.into_data() {
                        if let Some(hasher) = this.hasher.as_mut() {
                            hasher.update(&data);
                        }
                        if data.is_empty() {
                            continue;
                        }
                        if let Some(previous) = this.held.replace(data) {
                            return Poll::Ready(Some(Ok(Frame::data(previous))));
                        }
                    }
                }
                Some(Err(err)) => {
                    *this.done = true;
                    this.held.take();
                    return Poll::Ready(Some(Err(VerifyError::Inner(err.into()))));
                }
                None => {
                    *this.done = true;
                    let Some(hasher) = this.hasher.take() else {
                        return Poll::Ready(None);
                    };
                    let actual = hasher.finish();
                    if !bool::from(actual.as_ref().ct_eq(this.expected.as_slice())) {
                        this.held.take();
                        return Poll::Ready(Some(Err(VerifyError::Auth(
                            AuthError::ContentSha256Mismatch,
                        ))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let held = self.held.as_ref().map_or(0, |b| b.len() as u64);
        hint.set_lower(hint.lower() + held);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::signing::sha256_hex;
    use crate::sigv4::test_body::FramedBody;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn matching_body_passes_through() {
        let body = Sha256CheckedBody::new(
            FramedBody::new(["hello ", "", "world"]),
            &sha256_hex(b"hello world"),
        );
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello world");
    }

    #[tokio::test]
    async fn mismatch_fails_before_the_last_frame_is_released() {
        let mut body = Sha256CheckedBody::new(
            FramedBody::new(["hello ", "world"]),
            &sha256_hex(b"hello there"),
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "hello ");
        match body.frame().await.unwrap() {
            Err(VerifyError::Auth(AuthError::ContentSha256Mismatch)) => {}
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn empty_hash_refuses_a_body() {
        let mut body =
            Sha256CheckedBody::new(FramedBody::new(["x"]), crate::sigv4::signing::EMPTY_SHA256);
        assert!(matches!(
            body.frame().await.unwrap(),
            Err(VerifyError::Auth(AuthError::ContentSha256Mismatch))
        ));
    }
}
