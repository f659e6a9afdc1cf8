//! [`JwtLayer`]: authenticate bearer tokens and put the [`Principal`] in the request
//! extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderName, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::validator::JwtValidator;
use crate::error::AuthError;

/// Authenticates `Authorization: Bearer <jwt>` (or a configured header) with a
/// [`JwtValidator`] and inserts the token's [`s3_core::Principal`] (`auth: Jwt`) into the
/// request extensions. The token header is removed before the request goes inward.
///
/// A request without a bearer token passes inward untouched, so a [`crate::SigV4Layer`]
/// inside can authenticate it. A request carrying both a bearer token and SigV4 credentials
/// (a presigned query, or an `Authorization` header next to a custom bearer header) is
/// refused with `400 InvalidRequest`; an invalid token with `403 AccessDenied`; an IdP that
/// cannot be reached for a key not cached with `503 ServiceUnavailable`.
///
/// Place it outside `SigV4Layer`, which must leave requests that already carry a
/// `Principal` alone.
#[derive(Debug, Clone)]
pub struct JwtLayer {
    validator: Arc<JwtValidator>,
    header: HeaderName,
}

impl JwtLayer {
    /// A layer reading `Authorization: Bearer <jwt>`.
    pub fn new(validator: impl Into<Arc<JwtValidator>>) -> Self {
        Self {
            validator: validator.into(),
            header: AUTHORIZATION,
        }
    }

    /// Read the token from `header` instead of `Authorization`; its value is the token,
    /// optionally prefixed with `Bearer `.
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService {
            inner,
            validator: Arc::clone(&self.validator),
            header: self.header.clone(),
        }
    }
}

/// The service of [`JwtLayer`].
#[derive(Debug, Clone)]
pub struct JwtService<S> {
    inner: S,
    validator: Arc<JwtValidator>,
    header: HeaderName,
}

/// The response future of [`JwtService`].
type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtService<S>
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let token = match bearer_token(&parts, &self.header) {
            Ok(Some(token)) => token,
            Ok(None) => return Box::pin(inner.call(Request::from_parts(parts, body))),
            Err(err) => return Box::pin(async move { Ok(refuse(&err, &parts)) }),
        };
        let validator = Arc::clone(&self.validator);
        let header = self.header.clone();
        Box::pin(async move {
            match validator.validate(&token).await {
                Ok(principal) => {
                    parts.headers.remove(&header);
                    parts.extensions.insert(principal);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(err) => Ok(refuse(&err, &parts)),
            }
        })
    }
}

fn refuse<B: From<Bytes>>(err: &AuthError, parts: &Parts) -> Response<B> {
    tracing::debug!(error = %err, method = %parts.method, "bearer token refused");
    err.to_s3_error()
        .into_response_for(&parts.method, &parts.extensions)
}

/// The bearer token of the request, `None` when it has none; refuses a token next to SigV4
/// credentials or given twice.
fn bearer_token(parts: &Parts, header: &HeaderName) -> Result<Option<String>, AuthError> {
    let mut values = parts.headers.get_all(header).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return if *header == AUTHORIZATION {
            Ok(None)
        } else {
            Err(AuthError::JwtMalformed("the token header is not ASCII"))
        };
    };
    let token = match strip_bearer(value) {
        Some(token) => token,
        // Another Authorization scheme (SigV4...): not ours.
        None if *header == AUTHORIZATION => return Ok(None),
        None => value.trim(),
    };
    if values.next().is_some() {
        return Err(AuthError::JwtMalformed("more than one bearer token"));
    }
    if token.is_empty() {
        return Err(AuthError::JwtMalformed("the bearer token is empty"));
    }
    let sigv4_header = *header != AUTHORIZATION && parts.headers.contains_key(AUTHORIZATION);
    if sigv4_header || has_presigned_query(parts.uri.query()) {
        return Err(AuthError::BearerWithSigV4);
    }
    Ok(Some(token.to_owned()))
}

fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Whether the query carries SigV4 (or SigV2) presigned credentials.
fn has_presigned_query(query: Option<&str>) -> bool {
    const NAMES: [&str; 5] = [
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-algorithm",
        "awsaccesskeyid",
        "signature",
    ];
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_query() {
        assert!(has_presigned_query(Some("X-Amz-Signature=abc&x=1")));
        assert!(has_presigned_query(Some("a=1&X-Amz-Credential=abc")));
        assert!(!has_presigned_query(Some("list-type=2&prefix=x")));
        assert!(!has_presigned_query(None));
    }

    #[test]
    fn bearer_scheme() {
        assert_eq!(strip_bearer("Bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("bearer  abc "), Some("abc"));
        assert_eq!(strip_bearer("AWS4-HMAC-SHA256 Credential=x"), None);
        assert_eq!(strip_bearer("Bearer"), None);
    }
}
