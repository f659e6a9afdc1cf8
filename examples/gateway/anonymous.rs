//! Until the authentication layers exist, the gateway's only access rule: anonymous requests
//! are accepted when `auth.allow_anonymous = true` (dev only), every request is refused with
//! `AccessDenied` otherwise.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response};
use s3_tower::core::{Principal, S3Error, S3ErrorCode};
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy)]
pub(crate) struct AnonymousLayer {
    pub(crate) allow: bool,
}

impl<S> Layer<S> for AnonymousLayer {
    type Service = AnonymousService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AnonymousService {
            inner,
            allow: self.allow,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AnonymousService<S> {
    inner: S,
    allow: bool,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AnonymousService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<Bytes>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        if self.allow {
            req.extensions_mut().insert(Principal::anonymous());
            Either::Left(self.inner.call(req))
        } else {
            let err = S3Error::new(
                S3ErrorCode::AccessDenied,
                "Access Denied: this gateway has no authentication configured and anonymous access is off",
            )
            .into_response_for(req.method(), req.extensions());
            Either::Right(ready(Ok(err)))
        }
    }
}
