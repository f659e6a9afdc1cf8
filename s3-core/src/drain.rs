//! [`DrainBodyLayer`]: when a request is answered without its body having been read (a
//! refusal by any layer, or a body aborted by verification), read and discard the rest of
//! the body before answering, so the client gets to read the answer.
//!
//! Without it, an HTTP/1.1 server that answers early and closes the connection while the
//! client is still sending makes the client's TCP stack see a reset, and the client loses the
//! answer (boto3 reports `ConnectionClosedError` instead of `SignatureDoesNotMatch`), or it
//! reuses a connection the server is about to close.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http::header::{CONNECTION, EXPECT};
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

/// The default most bytes read from an unread body before the answer is sent.
pub const DEFAULT_DRAIN_LIMIT: u64 = 1024 * 1024;

/// The default longest time spent reading an unread body before the answer is sent.
pub const DEFAULT_DRAIN_TIME_LIMIT: Duration = Duration::from_secs(5);

/// Drains the unread rest of a request body (up to a size and a time limit) before sending
/// the answer; past either limit, or when the client waits for `100 Continue`, the answer
/// carries `Connection: close` instead, so the client does not reuse a connection that is
/// closing — and a client trickling its body cannot hold a refused request open.
///
/// Put it outside every layer that may answer without reading the body. It needs bodies that
/// are `Unpin` (hyper's `Incoming` is).
///
/// # Example
///
/// ```
/// use s3_core::{DrainBodyLayer, S3RequestLayer};
/// use tower::ServiceBuilder;
///
/// let layers = ServiceBuilder::new()
///     .layer(DrainBodyLayer::new())
///     .layer(S3RequestLayer::new());
/// # let _ = layers;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DrainBodyLayer {
    limit: u64,
    time_limit: Duration,
}

impl DrainBodyLayer {
    /// A layer draining up to [`DEFAULT_DRAIN_LIMIT`] bytes for at most
    /// [`DEFAULT_DRAIN_TIME_LIMIT`].
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_DRAIN_LIMIT,
            time_limit: DEFAULT_DRAIN_TIME_LIMIT,
        }
    }

    /// The longest time spent reading an unread body before answering.
    #[must_use]
    pub fn time_limit(mut self, time_limit: Duration) -> Self {
        self.time_limit = time_limit;
        self
    }

    /// The most bytes read from an unread body before answering.
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }
}

impl Default for DrainBodyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for DrainBodyLayer {
    type Service = DrainBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainBody {
            inner,
            limit: self.limit,
            time_limit: self.time_limit,
        }
    }
}

/// The service of [`DrainBodyLayer`].
#[derive(Debug, Clone)]
pub struct DrainBody<S> {
    inner: S,
    limit: u64,
    time_limit: Duration,
}

/// Where a [`DrainableBody`] leaves the body it was dropped with unread.
type Leftover<B> = Arc<Mutex<Option<B>>>;

/// A request body that, when dropped before its end, hands the rest back to
/// [`DrainBodyLayer`] to be drained.
#[derive(Debug)]
pub struct DrainableBody<B> {
    inner: Option<B>,
    leftover: Leftover<B>,
    finished: bool,
}

impl<B> Drop for DrainableBody<B> {
    fn drop(&mut self) {
        if !self.finished
            && let Some(body) = self.inner.take()
            && let Ok(mut slot) = self.leftover.lock()
        {
            *slot = Some(body);
        }
    }
}

impl<B> Body for DrainableBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// The response future of [`DrainBody`].
pub type DrainFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for DrainBody<S>
where
    S: Service<Request<DrainableBody<B>>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    B: Body + Unpin + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = DrainFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let leftover: Leftover<B> = Arc::new(Mutex::new(None));
        let waits_for_continue = req.headers().contains_key(EXPECT);
        let req = req.map(|body| DrainableBody {
            finished: body.is_end_stream(),
            inner: Some(body),
            leftover: Arc::clone(&leftover),
        });
        let future = self.inner.call(req);
        let (limit, time_limit) = (self.limit, self.time_limit);
        Box::pin(async move {
            let mut response = future.await?;
            let unread = leftover.lock().ok().and_then(|mut slot| slot.take());
            if let Some(body) = unread {
                // A client waiting for `100 Continue` has not sent its body: reading it would
                // invite it to. Otherwise read what is left, within the limits.
                let drained = !waits_for_continue
                    && tokio::time::timeout(time_limit, drain(body, limit))
                        .await
                        .unwrap_or(false);
                if !drained {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
            }
            Ok(response)
        })
    }
}

/// Reads and discards `body` to its end; false when it is longer than `limit` or fails.
async fn drain<B: Body + Unpin>(mut body: B, limit: u64) -> bool {
    let mut read = 0u64;
    loop {
        match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read += data.remaining() as u64;
                    if read > limit {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    /// Frames of 10 bytes; counts how many were read.
    struct CountedBody {
        frames: VecDeque<Bytes>,
        read: Arc<AtomicUsize>,
    }

    impl Body for CountedBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let frame = self.frames.pop_front();
            if frame.is_some() {
                self.read.fetch_add(1, Ordering::SeqCst);
            }
            Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
        }
    }

    fn request(frames: usize, expect: bool) -> (Request<CountedBody>, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let body = CountedBody {
            frames: (0..frames)
                .map(|_| Bytes::from_static(b"0123456789"))
                .collect(),
            read: Arc::clone(&read),
        };
        let mut builder = Request::builder();
        if expect {
            builder = builder.header(EXPECT, "100-continue");
        }
        (builder.body(body).unwrap(), read)
    }

    /// Calls the layer with an inner service that answers without reading (`refuse`) or
    /// after reading the whole body.
    async fn call(limit: u64, req: Request<CountedBody>, refuse: bool) -> Response<()> {
        ServiceBuilder::new()
            .layer(DrainBodyLayer::new().limit(limit))
            .service_fn(move |req: Request<DrainableBody<CountedBody>>| async move {
                let mut body = req.into_body();
                if !refuse {
                    while poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                        .await
                        .is_some()
                    {}
                }
                Ok::<_, Infallible>(Response::new(()))
            })
            .oneshot(req)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_unread_body_is_drained_before_the_answer() {
        let (req, read) = request(5, false);
        let response = call(100, req, true).await;
        assert_eq!(read.load(Ordering::SeqCst), 5);
        assert!(response.headers().get(CONNECTION).is_none());
    }

    #[tokio::test]
    async fn a_body_beyond_the_limit_closes_the_connection() {
        let (req, read) = request(50, false);
        let response = call(100, req, true).await;
        assert_eq!(read.load(Ordering::SeqCst), 11, "stops just past the limit");
        assert_eq!(response.headers()[CONNECTION], "close");
    }

    #[tokio::test]
    async fn a_client_waiting_for_continue_is_not_asked_for_its_body() {
        let (req, read) = request(5, true);
        let response = call(100, req, true).await;
        assert_eq!(read.load(Ordering::SeqCst), 0);
        assert_eq!(response.headers()[CONNECTION], "close");
    }

    /// A body that sends one frame, then nothing for an hour.
    struct TricklingBody {
        sent: bool,
        read: Arc<AtomicUsize>,
    }

    impl Body for TricklingBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.sent {
                return Poll::Pending;
            }
            self.sent = true;
            self.read.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_drained_for_the_time_limit_only() {
        let read = Arc::new(AtomicUsize::new(0));
        let req = Request::new(TricklingBody {
            sent: false,
            read: Arc::clone(&read),
        });
        let started = tokio::time::Instant::now();
        let response = ServiceBuilder::new()
            .layer(DrainBodyLayer::new().time_limit(Duration::from_secs(2)))
            .service_fn(|_req: Request<DrainableBody<TricklingBody>>| async {
                Ok::<_, Infallible>(Response::new(()))
            })
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(read.load(Ordering::SeqCst), 1);
        assert_eq!(response.headers()[CONNECTION], "close");
    }

    #[tokio::test]
    async fn a_read_body_is_left_alone() {
        let (req, read) = request(5, false);
        let response = call(100, req, false).await;
        assert_eq!(read.load(Ordering::SeqCst), 5);
        assert!(response.headers().get(CONNECTION).is_none());
    }
}
