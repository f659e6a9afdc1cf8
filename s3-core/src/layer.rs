//! [`S3RequestLayer`]: parse every request once into an [`S3Request`] and refuse what is not
//! S3.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{S3Error, S3ErrorCode};
use crate::operation::S3Operation;
use crate::request::S3RequestParser;
use crate::request_id::{REQUEST_ID_HEADER, RequestId};

/// Parses each request into an [`S3Request`](crate::S3Request) and a
/// [`RequestId`], stores both in the request extensions, and answers malformed and
/// unrecognised requests itself with an S3 XML error (`InvalidURI`, `InvalidBucketName`,
/// `InvalidArgument`, `NotImplemented`...). Every response gets an `x-amz-request-id`, and
/// the responses of parsed requests carry their [`S3Operation`] in their extensions (for
/// metrics and access logs outside this layer) — [`S3Operation::Unknown`] for refused
/// unknown operations, nothing for requests that could not be parsed at all.
///
/// The response body type must be constructible from [`Bytes`] (as `axum::body::Body`,
/// `http_body_util::Full<Bytes>` and the s3-tower bodies are) so the layer can answer
/// errors itself.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use s3_core::{S3Operation, S3Request, S3RequestLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(S3RequestLayer::new().virtual_host_domain("s3.example.com"))
///     .service(service_fn(|req: Request<Full<Bytes>>| async move {
///         let s3 = req.extensions().get::<S3Request>().unwrap();
///         let body = Full::new(Bytes::from_static(s3.operation.name().as_bytes()));
///         Ok::<_, std::convert::Infallible>(Response::new(body))
///     }));
///
/// let req = Request::get("http://photos.s3.example.com/2024/cat.jpg?tagging")
///     .body(Full::default())
///     .unwrap();
/// let resp = svc.clone().oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), StatusCode::OK);
/// assert!(resp.headers().contains_key("x-amz-request-id"));
///
/// // A method S3 does not have on an object: refused, never forwarded.
/// let req = Request::patch("http://localhost/bucket/key").body(Full::default()).unwrap();
/// let resp = svc.oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct S3RequestLayer {
    parser: Arc<S3RequestParser>,
    pass_unknown: bool,
}

impl S3RequestLayer {
    /// A layer with path-style addressing only that refuses unknown operations.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer using `parser` (with its virtual-host base domains).
    pub fn with_parser(parser: S3RequestParser) -> Self {
        Self {
            parser: Arc::new(parser),
            pass_unknown: false,
        }
    }

    /// Adds a base domain for virtual-hosted addressing (`<bucket>.<domain>`).
    #[must_use]
    pub fn virtual_host_domain(self, domain: impl Into<String>) -> Self {
        let parser = (*self.parser).clone().virtual_host_domain(domain);
        Self {
            parser: Arc::new(parser),
            ..self
        }
    }

    /// Lets requests classified [`S3Operation::Unknown`] through to the inner service
    /// instead of answering `NotImplemented`. Only for an inner layer that answers them
    /// itself (an STS endpoint, say); every s3-tower layer still refuses them.
    #[must_use]
    pub fn pass_unknown(mut self, pass: bool) -> Self {
        self.pass_unknown = pass;
        self
    }
}

impl<S> Layer<S> for S3RequestLayer {
    type Service = S3RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        S3RequestService {
            inner,
            parser: Arc::clone(&self.parser),
            pass_unknown: self.pass_unknown,
        }
    }
}

/// The service of [`S3RequestLayer`].
#[derive(Debug, Clone)]
pub struct S3RequestService<S> {
    inner: S,
    parser: Arc<S3RequestParser>,
    pass_unknown: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for S3RequestService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::random);
        req.extensions_mut().insert(request_id.clone());
        let header_id = HeaderValue::from_str(request_id.as_str()).ok();

        let refuse = |err: S3Error| {
            let resource = err
                .resource()
                .map_or_else(|| req.uri().path().to_owned(), str::to_owned);
            let response = err
                .with_resource(resource)
                .into_response_for(req.method(), req.extensions());
            ResponseFuture::error(response)
        };
        let parsed = match self.parser.parse(req.method(), req.uri(), req.headers()) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::debug!(request_id = %request_id, error = %err, "malformed S3 request");
                return refuse(err);
            }
        };
        if parsed.operation == S3Operation::Unknown && !self.pass_unknown {
            let reason = parsed
                .unknown_reason
                .as_deref()
                .unwrap_or("unrecognised request");
            tracing::debug!(request_id = %request_id, reason, "unknown S3 operation refused");
            let mut refused = refuse(
                S3Error::new(
                    S3ErrorCode::NotImplemented,
                    format!("This request is not a supported S3 operation: {reason}"),
                )
                .with_resource(parsed.resource_path()),
            );
            refused.set_operation(S3Operation::Unknown);
            return refused;
        }
        let operation = parsed.operation;
        req.extensions_mut().insert(parsed);
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(req),
                request_id: header_id,
                operation,
            },
        }
    }
}

pin_project! {
    /// The response future of [`S3RequestService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F, request_id: Option<HeaderValue>, operation: S3Operation },
        Error { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn error(response: Response<B>) -> Self {
        Self {
            kind: Kind::Error {
                response: Some(response),
            },
        }
    }

    /// Marks a refusal with the operation it was classified as (for metrics outside).
    fn set_operation(&mut self, operation: S3Operation) {
        if let Kind::Error {
            response: Some(response),
        } = &mut self.kind
        {
            response.extensions_mut().insert(operation);
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                request_id,
                operation,
            } => {
                let mut response = ready!(future.poll(cx))?;
                response.extensions_mut().insert(*operation);
                if let Some(id) = request_id.take() {
                    response
                        .headers_mut()
                        .entry(REQUEST_ID_HEADER)
                        .or_insert(id);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Error { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
