//! [`ResignLayer`]: route each request to its bucket's backend and re-sign it with the
//! gateway's credentials.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};
use s3_core::{S3Operation, S3Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::backend::BackendRouter;
use crate::error::ResignError;
use crate::forward::prepare_upstream_request;

/// Strips the client's credentials from each request, picks the backend for its bucket, and
/// signs it with SigV4 as the gateway (`UNSIGNED-PAYLOAD`, or
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` passed through with its trailer), then hands it to
/// the inner service — normally [`Upstream`](crate::Upstream).
///
/// Needs the [`S3Request`] that `s3_core::S3RequestLayer` stores in the extensions; without
/// it, or for an unknown operation, the request is refused (fail closed). Bodies are never
/// buffered.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use s3_core::S3RequestLayer;
/// use s3_resign::{Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream};
/// use tower::ServiceBuilder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = Backend::new(
///     "minio",
///     "http://127.0.0.1:9000",
///     "us-east-1",
///     BackendAddressing::Path,
///     BackendCredentials::from_env_vars("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", None)?,
/// )?;
/// let service = ServiceBuilder::new()
///     .layer(S3RequestLayer::new())
///     .layer(ResignLayer::new(BackendRouter::single(backend)))
///     .service(Upstream::new()?);
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResignLayer {
    router: Arc<BackendRouter>,
}

impl ResignLayer {
    /// A layer routing with `router`.
    pub fn new(router: BackendRouter) -> Self {
        Self {
            router: Arc::new(router),
        }
    }
}

impl<S> Layer<S> for ResignLayer {
    type Service = ResignService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResignService {
            inner,
            router: Arc::clone(&self.router),
        }
    }
}

/// The service of [`ResignLayer`].
#[derive(Debug, Clone)]
pub struct ResignService<S> {
    inner: S,
    router: Arc<BackendRouter>,
}

/// The response future of [`ResignService`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResignService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let refuse = |req: &Request<ReqBody>, err: &ResignError, resource: Option<String>| {
            Box::pin(std::future::ready(Ok(refusal(req, err, resource)))) as Self::Future
        };
        let Some(s3) = req.extensions_mut().remove::<S3Request>() else {
            tracing::error!("ResignLayer used without S3RequestLayer; request refused");
            return refuse(&req, &ResignError::NotParsed, None);
        };
        if s3.operation == S3Operation::Unknown {
            return refuse(
                &req,
                &ResignError::UnknownOperation,
                Some(s3.resource_path()),
            );
        }
        let backend = match self.router.backend_for(s3.bucket.as_deref()) {
            Ok(backend) => Arc::clone(backend),
            Err(err) => return refuse(&req, &err, Some(s3.resource_path())),
        };
        // The ready service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let prepared = match backend.credentials().get().await {
                Ok(creds) => {
                    prepare_upstream_request(&mut req, &s3, &backend, &creds, SystemTime::now())
                }
                Err(err) => Err(err),
            };
            if let Err(err) = prepared {
                tracing::warn!(backend = backend.name(), error = %err, "request not forwarded");
                return Ok(refusal(&req, &err, Some(s3.resource_path())));
            }
            tracing::debug!(backend = backend.name(), operation = %s3.operation, "forwarding");
            req.extensions_mut().insert(s3);
            inner.call(req).await
        })
    }
}

/// The S3 error answer to `req` for `err`, naming `resource` when known.
fn refusal<ReqBody, ResBody: From<Bytes>>(
    req: &Request<ReqBody>,
    err: &ResignError,
    resource: Option<String>,
) -> Response<ResBody> {
    let mut s3 = err.to_s3_error();
    if let Some(resource) = resource {
        s3 = s3.with_resource(resource);
    }
    s3.into_response_for(req.method(), req.extensions())
}
