//! [`AuthzLayer`]: authorize every resource a request touches before it goes inward.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use pin_project_lite::pin_project;
use s3_core::{ClientAddr, Principal, RequestId, Resource, S3Operation, S3Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::authorizer::{Authorizer, Decision};
use crate::delete_objects;
use crate::error::AuthzError;
use crate::input::AuthzInput;

/// The largest `DeleteObjects` body read by default: 1,000 keys of 1,024 bytes with their XML.
pub const DEFAULT_DELETE_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Authorizes each resource of each request with an [`Authorizer`]; refuses with
/// `403 AccessDenied` unless all are allowed.
///
/// Needs the `Principal` of an authentication layer and the `S3Request` of
/// `S3RequestLayer` in the extensions; without either, and for `Unknown` operations, it
/// denies. `CopyObject`/`UploadPartCopy` are checked as a read of the source and a write of the
/// destination; listings with their prefix; `DeleteObjects` key by key — its XML body is read
/// (up to a limit) and the **whole request is refused** when any key is denied, so a batch
/// either runs as sent or not at all. When the principal's STS session carries a session
/// policy ([`s3_core::SessionPolicy`]), every resource, each `DeleteObjects` key included,
/// must also be allowed by it: it can only narrow what the authorizer allows. Every decision
/// is logged as an audit event (target `s3_tower::audit`), whose `reason` says whether the
/// policy or the session policy denied.
///
/// # Example
///
/// ```
/// use s3_authz::{AuthzLayer, RegoAuthorizer};
/// use s3_core::S3RequestLayer;
/// use tower::ServiceBuilder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layers = ServiceBuilder::new()
///     .layer(S3RequestLayer::new())
///     // ... an authentication layer inserting the Principal ...
///     .layer(AuthzLayer::new(RegoAuthorizer::seed()?));
/// # let _ = layers;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AuthzLayer {
    authorizer: Arc<dyn Authorizer>,
    delete_body_limit: usize,
}

impl std::fmt::Debug for AuthzLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzLayer")
            .field("engine", &self.authorizer.engine())
            .field("delete_body_limit", &self.delete_body_limit)
            .finish()
    }
}

impl AuthzLayer {
    /// A layer asking `authorizer`.
    pub fn new(authorizer: impl Authorizer) -> Self {
        Self::from_arc(Arc::new(authorizer))
    }

    /// A layer sharing `authorizer` (for example with a reload task).
    pub fn from_arc(authorizer: Arc<dyn Authorizer>) -> Self {
        Self {
            authorizer,
            delete_body_limit: DEFAULT_DELETE_BODY_LIMIT,
        }
    }

    /// The largest `DeleteObjects` body read (default [`DEFAULT_DELETE_BODY_LIMIT`]).
    #[must_use]
    pub fn delete_body_limit(mut self, limit: usize) -> Self {
        self.delete_body_limit = limit;
        self
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = AuthzService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthzService {
            inner,
            authorizer: Arc::clone(&self.authorizer),
            delete_body_limit: self.delete_body_limit,
        }
    }
}

/// The service of [`AuthzLayer`].
#[derive(Clone)]
pub struct AuthzService<S> {
    inner: S,
    authorizer: Arc<dyn Authorizer>,
    delete_body_limit: usize,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AuthzService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzService")
            .field("inner", &self.inner)
            .field("engine", &self.authorizer.engine())
            .finish_non_exhaustive()
    }
}

/// The response future of [`AuthzService`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthzService<S>
where
    S: Service<Request<AuthzBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
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
        let authorizer = Arc::clone(&self.authorizer);
        let limit = self.delete_body_limit;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let started = Instant::now();
            match authorize(authorizer.as_ref(), &parts, body, limit).await {
                Ok(body) => {
                    audit(&parts, authorizer.engine(), Decision::Allow, None, started);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(err) => {
                    audit(
                        &parts,
                        authorizer.engine(),
                        Decision::Deny,
                        Some(&err),
                        started,
                    );
                    let mut s3 = err.to_s3_error();
                    if let Some(s3_request) = parts.extensions.get::<S3Request>() {
                        s3 = s3.with_resource(s3_request.resource_path());
                    }
                    Ok(s3.into_response_for(&parts.method, &parts.extensions))
                }
            }
        })
    }
}

/// Authorizes every resource of the request; returns the body to hand inward.
async fn authorize<B>(
    authorizer: &dyn Authorizer,
    parts: &Parts,
    body: B,
    limit: usize,
) -> Result<AuthzBody<B>, AuthzError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let principal = parts
        .extensions
        .get::<Principal>()
        .ok_or(AuthzError::MissingPrincipal)?;
    let s3 = parts
        .extensions
        .get::<S3Request>()
        .ok_or(AuthzError::NotParsed)?;
    if s3.operation == S3Operation::Unknown {
        return Err(AuthzError::UnknownOperation);
    }
    let resources = s3.resources();
    if resources.is_empty() {
        return Err(AuthzError::UnknownOperation);
    }
    let source_ip = parts
        .extensions
        .get::<ClientAddr>()
        .map(|addr| addr.ip().to_string());
    // A session policy narrows what the engine allows: each resource (each key of a
    // `DeleteObjects`) must be allowed by both.
    let session_policy = principal
        .session
        .as_ref()
        .and_then(|session| session.policy.as_deref());
    let mut deleted_from = None;
    for (index, access) in resources.iter().enumerate() {
        if let Resource::ObjectsInBody { bucket } = &access.resource {
            deleted_from = Some(bucket);
            continue;
        }
        let mut input = AuthzInput::for_resource(principal, s3, &parts.method, access, index);
        input.source_ip.clone_from(&source_ip);
        require_allow(authorizer, &input)?;
        if let Some(policy) = session_policy
            && !policy.allows(access, s3)
        {
            return Err(AuthzError::SessionPolicyDenied {
                resource: input.resource(),
            });
        }
    }
    let Some(bucket) = deleted_from else {
        return Ok(AuthzBody::streaming(body));
    };
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                AuthzError::BodyTooLarge(limit)
            } else {
                AuthzError::BodyRead
            }
        })?
        .to_bytes();
    for (key, version_id) in delete_objects::parse(&bytes)? {
        let mut input =
            AuthzInput::for_deleted_key(principal, s3, &parts.method, bucket, &key, version_id);
        input.source_ip.clone_from(&source_ip);
        require_allow(authorizer, &input)?;
        if let Some(policy) = session_policy
            && !policy.allows_arn(&input.iam_action, &Resource::object_arn(bucket, &key), s3)
        {
            return Err(AuthzError::SessionPolicyDenied {
                resource: input.resource(),
            });
        }
    }
    Ok(AuthzBody::buffered(bytes))
}

/// `Ok` when `authorizer` allows `input`; an engine error denies.
fn require_allow(authorizer: &dyn Authorizer, input: &AuthzInput) -> Result<(), AuthzError> {
    match authorizer.authorize(input) {
        Ok(Decision::Allow) => Ok(()),
        Ok(Decision::Deny) => Err(AuthzError::Denied {
            resource: input.resource(),
        }),
        Err(err) => {
            tracing::warn!(engine = authorizer.engine(), error = %err, "policy evaluation failed; denied");
            Err(err)
        }
    }
}

/// One audit record per request: who, what, on which resources, the decision and the time
/// the decision took.
fn audit(
    parts: &Parts,
    engine: &'static str,
    decision: Decision,
    error: Option<&AuthzError>,
    started: Instant,
) {
    let principal = parts.extensions.get::<Principal>();
    let s3 = parts.extensions.get::<S3Request>();
    let resources = s3.map(|s3| {
        s3.resources()
            .iter()
            .map(|r| format!("{}:{}", r.iam_action, describe(&r.resource)))
            .collect::<Vec<_>>()
            .join(",")
    });
    tracing::info!(
        target: "s3_tower::audit",
        request_id = parts.extensions.get::<RequestId>().map(RequestId::as_str),
        subject = principal.map(|p| p.subject.as_str()),
        auth = principal.map(|p| p.auth.as_str()),
        source_ip = parts.extensions.get::<ClientAddr>().map(|a| tracing::field::display(a.ip())),
        operation = s3.map(|s| s.operation.name()),
        resources,
        decision = decision.as_str(),
        reason = error.map(tracing::field::display),
        engine,
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "authorization decision"
    );
}

fn describe(resource: &Resource) -> String {
    match resource {
        Resource::Service => "*".to_owned(),
        Resource::Bucket { bucket, prefix } => match prefix {
            Some(prefix) => format!("{bucket}/{prefix}*"),
            None => bucket.clone(),
        },
        Resource::Object { bucket, key, .. } => format!("{bucket}/{key}"),
        Resource::ObjectsInBody { bucket } => format!("{bucket}/(keys in body)"),
    }
}

pin_project! {
    /// The body handed inward: the request's own, streaming, or — for `DeleteObjects`, whose
    /// keys had to be read — the bytes read.
    pub struct AuthzBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Streaming { #[pin] body: B },
        Buffered { #[pin] body: Full<Bytes> },
    }
}

impl<B> AuthzBody<B> {
    fn streaming(body: B) -> Self {
        Self {
            kind: Kind::Streaming { body },
        }
    }

    fn buffered(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Buffered {
                body: Full::new(bytes),
            },
        }
    }
}

impl<B> Body for AuthzBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Streaming { body } => body.poll_frame(cx),
            KindProj::Buffered { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Streaming { body } => body.is_end_stream(),
            Kind::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Streaming { body } => body.size_hint(),
            Kind::Buffered { body } => body.size_hint(),
        }
    }
}
