//! [`SigV4Layer`]: authenticate each request with AWS Signature Version 4 and put its
//! [`Principal`] in the request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Body;
use s3_core::{AuthMethod, Principal, RequestId};
use tower_layer::Layer;
use tower_service::Service;

use crate::credentials::CredentialResolver;
use crate::error::AuthError;
use crate::sigv4::body::{FailureSlot, SigV4Body};
use crate::sigv4::chunked::{AwsChunkedBody, BoxError};
use crate::sigv4::payload::Sha256CheckedBody;
use crate::sigv4::signing::EMPTY_SHA256;
use crate::sigv4::verifier::{PayloadMode, SigV4Verifier, VerifiedRequest};

/// Authenticates requests signed with AWS SigV4 — `Authorization` header or presigned URL —
/// and inserts the signer's [`Principal`] into the request extensions.
///
/// The body handed inward is a [`SigV4Body`]: the plain payload, verified while it streams
/// (signed SHA-256, or aws-chunked decoded with every chunk signature and trailing checksum
/// checked). Headers of an aws-chunked request are rewritten to describe the decoded payload
/// (`Content-Length` from `x-amz-decoded-content-length`, `aws-chunked` removed from
/// `Content-Encoding`, `x-amz-content-sha256: UNSIGNED-PAYLOAD`).
///
/// Anything else is answered with the S3 XML error clients expect (`SignatureDoesNotMatch`,
/// `InvalidAccessKeyId`, `RequestTimeTooSkewed`, `AccessDenied`...). Requests without
/// credentials are refused unless [`SigV4Layer::allow_anonymous`] is set. If the body fails
/// verification after the inner service was called, the response is replaced by that error.
/// A request an outer JWT layer already authenticated (a `Principal` with
/// [`AuthMethod::Jwt`]) passes through unchanged.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use s3_auth::{SecretKey, SigV4Body, SigV4Layer, StaticCredentials, StaticUser};
/// use s3_core::Principal;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = StaticCredentials::new([StaticUser {
///     access_key_id: "AKIAEXAMPLE".into(),
///     secret: SecretKey::new("secret"),
///     subject: "alice".into(),
///     groups: vec!["admin".into()],
/// }])?;
/// let service = ServiceBuilder::new()
///     .layer(SigV4Layer::new(users))
///     .service_fn(|req: Request<SigV4Body<Full<Bytes>>>| async move {
///         let who = req.extensions().get::<Principal>().map(|p| p.subject.clone());
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
///     });
/// // An unsigned request is refused with an S3 XML error.
/// let response = service
///     .oneshot(Request::new(Full::new(Bytes::new())))
///     .await?;
/// assert_eq!(response.status(), 403);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SigV4Layer {
    verifier: Arc<SigV4Verifier>,
    allow_anonymous: bool,
}

impl SigV4Layer {
    /// A layer verifying S3 signatures with secrets from `resolver`.
    pub fn new(resolver: impl CredentialResolver) -> Self {
        Self::with_verifier(SigV4Verifier::new(resolver))
    }

    /// A layer using a configured verifier (region, skew, service).
    pub fn with_verifier(verifier: SigV4Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            allow_anonymous: false,
        }
    }

    /// Lets requests without any credentials through as [`Principal::anonymous`] (default
    /// off). Meant for development and public buckets behind an authorization policy.
    #[must_use]
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Only accept signatures scoped to `region`.
    #[must_use]
    pub fn region(self, region: impl Into<String>) -> Self {
        self.map_verifier(|v| v.region(region))
    }

    /// The allowed clock skew (default 15 minutes).
    #[must_use]
    pub fn max_skew(self, skew: Duration) -> Self {
        self.map_verifier(|v| v.max_skew(skew))
    }

    fn map_verifier(mut self, f: impl FnOnce(SigV4Verifier) -> SigV4Verifier) -> Self {
        let verifier = Arc::unwrap_or_clone(self.verifier);
        self.verifier = Arc::new(f(verifier));
        self
    }
}

impl<S> Layer<S> for SigV4Layer {
    type Service = SigV4Service<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SigV4Service {
            inner,
            verifier: Arc::clone(&self.verifier),
            allow_anonymous: self.allow_anonymous,
        }
    }
}

/// The service of [`SigV4Layer`].
#[derive(Debug, Clone)]
pub struct SigV4Service<S> {
    inner: S,
    verifier: Arc<SigV4Verifier>,
    allow_anonymous: bool,
}

/// The response future of [`SigV4Service`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SigV4Service<S>
where
    S: Service<Request<SigV4Body<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = Arc::clone(&self.verifier);
        let allow_anonymous = self.allow_anonymous;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let slot: FailureSlot = Arc::new(OnceLock::new());
            let (principal, body) = match authenticate(
                &verifier,
                allow_anonymous,
                &mut parts,
                body,
                &slot,
            )
            .await
            {
                Ok(authenticated) => authenticated,
                Err(err) => {
                    tracing::debug!(error = %err, method = %parts.method, "request not authenticated");
                    return Ok(err
                        .to_s3_error()
                        .into_response_for(&parts.method, &parts.extensions));
                }
            };
            let method = parts.method.clone();
            let request_id = parts.extensions.get::<RequestId>().cloned();
            parts.extensions.insert(principal);
            let response = inner.call(Request::from_parts(parts, body)).await?;
            if let Some(failure) = slot.get() {
                let mut extensions = http::Extensions::new();
                if let Some(id) = request_id {
                    extensions.insert(id);
                }
                return Ok(failure.clone().into_response_for(&method, &extensions));
            }
            Ok(response)
        })
    }
}

/// Verifies the head of the request and wraps its body.
async fn authenticate<B: Body>(
    verifier: &SigV4Verifier,
    allow_anonymous: bool,
    parts: &mut Parts,
    body: B,
    slot: &FailureSlot,
) -> Result<(Principal, SigV4Body<B>), AuthError> {
    // A bearer token verified by a JWT layer outside this one: nothing to do here (that
    // layer refuses requests that also carry a SigV4 signature).
    if let Some(principal) = parts.extensions.get::<Principal>()
        && principal.auth == AuthMethod::Jwt
    {
        return Ok((principal.clone(), SigV4Body::plain(body)));
    }
    let Some(verified) = verifier.verify(parts).await? else {
        if allow_anonymous {
            return Ok((Principal::anonymous(), SigV4Body::plain(body)));
        }
        return Err(AuthError::AnonymousNotAllowed);
    };
    let body = wrap_body(&verified, &mut parts.headers, body)?;
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|id| id.as_str().to_owned());
    Ok((
        verified.principal,
        body.report_to(Arc::clone(slot), request_id),
    ))
}

/// The verifying body for `verified`'s payload mode; rewrites the headers of an aws-chunked
/// request to describe the decoded payload.
fn wrap_body<B: Body>(
    verified: &VerifiedRequest,
    headers: &mut HeaderMap,
    body: B,
) -> Result<SigV4Body<B>, AuthError> {
    // Also refuses `x-amz-trailer` on a payload mode that has no trailer.
    let chunked = verified.chunked_config(headers)?;
    match (&verified.payload, chunked) {
        (_, Some(config)) => {
            describe_decoded_payload(headers, config.decoded_length, config.trailer.is_some());
            Ok(SigV4Body::chunked(AwsChunkedBody::new(body, config)))
        }
        // An empty body may never be polled (an HTTP/1 client sends nothing for
        // `Content-Length: 0`): check its hash now, not while it streams.
        (PayloadMode::Sha256(hash), None)
            if body.is_end_stream() || body.size_hint().exact() == Some(0) =>
        {
            if hash == EMPTY_SHA256 {
                Ok(SigV4Body::plain(body))
            } else {
                Err(AuthError::ContentSha256Mismatch)
            }
        }
        (PayloadMode::Sha256(hash), None) => {
            Ok(SigV4Body::sha256(Sha256CheckedBody::new(body, hash)))
        }
        (PayloadMode::Unsigned, None) => Ok(SigV4Body::plain(body)),
        // `chunked_config` answers `Some` for every streaming mode.
        (_, None) => Err(AuthError::MissingDecodedLength),
    }
}

/// Makes the headers of an aws-chunked request describe the decoded payload handed inward.
fn describe_decoded_payload(headers: &mut HeaderMap, decoded_length: u64, had_trailer: bool) {
    headers.insert(CONTENT_LENGTH, HeaderValue::from(decoded_length));
    headers.remove(TRANSFER_ENCODING);
    headers.remove("x-amz-decoded-content-length");
    headers.remove("x-amz-trailer");
    if had_trailer {
        // The checksum it announced was verified here and is not forwarded as a header.
        headers.remove("x-amz-sdk-checksum-algorithm");
    }
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    let remaining: Vec<String> = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("aws-chunked"))
        .map(str::to_owned)
        .collect();
    headers.remove(CONTENT_ENCODING);
    if !remaining.is_empty()
        && let Ok(value) = HeaderValue::from_str(&remaining.join(","))
    {
        headers.insert(CONTENT_ENCODING, value);
    }
}
