//! A body of given frames, for unit tests.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// Yields the given data frames one per poll, then ends.
#[derive(Debug)]
pub(crate) struct FramedBody {
    frames: VecDeque<Bytes>,
}

impl FramedBody {
    pub(crate) fn new<T: Into<Bytes>>(frames: impl IntoIterator<Item = T>) -> Self {
        Self {
            frames: frames.into_iter().map(Into::into).collect(),
        }
    }
}

impl Body for FramedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(|b| Ok(Frame::data(b))))
    }
}
