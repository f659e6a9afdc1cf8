//! [`Upstream`]: the pooled HTTP(S) client that sends signed requests to backends and streams
//! bodies both ways.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pin_project_lite::pin_project;
use rustls::pki_types::CertificateDer;
use s3_core::{RequestId, S3Error, S3ErrorCode};
use tower_service::Service;

use crate::error::ResignError;
use crate::forward::strip_hop_by_hop;

/// A boxed error, as bodies and clients report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Sends requests to backends over a pooled `hyper-util` client with rustls (webpki roots
/// plus any extra CA certificates), and answers transport failures with S3 XML errors:
/// unreachable → `503 ServiceUnavailable`, no answer in time → `504 GatewayTimeout`,
/// broken connection or invalid HTTP → `502 BadGateway`. Backend answers, S3 errors
/// included, pass through unchanged apart from hop-by-hop headers.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, RequestBody>,
    response_timeout: Option<Duration>,
}

/// Builds an [`Upstream`].
#[derive(Debug)]
pub struct UpstreamBuilder {
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for UpstreamBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Some(Duration::from_mins(5)),
            pool_idle_timeout: Duration::from_mins(1),
            pool_max_idle_per_host: 64,
            extra_roots: Vec::new(),
        }
    }
}

impl UpstreamBuilder {
    /// Time allowed to open a TCP connection (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed from sending the request head until the response head arrives (default
    /// 300 s; `None` waits forever). Body transfer is not limited by it.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long idle pooled connections are kept (default 60 s).
    #[must_use]
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Idle connections kept per backend host (default 64).
    #[must_use]
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// Trusts the CA certificates in a PEM file, besides the webpki roots (for backends with
    /// a private CA).
    pub fn add_ca_pem_file(mut self, path: impl AsRef<Path>) -> Result<Self, ResignError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| ResignError::Build(format!("reading CA file {}: {e}", path.display())))?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| {
                ResignError::Build(format!("parsing CA file {}: {e}", path.display()))
            })?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(ResignError::Build(format!(
                "no certificate in CA file {}",
                path.display()
            )));
        }
        Ok(self)
    }

    /// Builds the client.
    pub fn build(self) -> Result<Upstream, ResignError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in self.extra_roots {
            roots
                .add(cert)
                .map_err(|e| ResignError::Build(format!("invalid CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ResignError::Build(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector);
        Ok(Upstream {
            client,
            response_timeout: self.response_timeout,
        })
    }
}

impl Upstream {
    /// A builder with the defaults.
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder::default()
    }

    /// A client with the defaults.
    pub fn new() -> Result<Self, ResignError> {
        Self::builder().build()
    }
}

impl<B> Service<Request<B>> for Upstream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<UpstreamBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let request_id = parts.extensions.get::<RequestId>().cloned();
        let method = parts.method.clone();
        let body = body
            .map_err(|err| Box::new(RequestBodyError(err.into())) as BoxError)
            .boxed_unsync();
        let req = Request::from_parts(parts, body);
        let client = self.client.clone();
        let response_timeout = self.response_timeout;
        Box::pin(async move {
            let sent = client.request(req);
            let result = match response_timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(result) => result,
                    Err(_) => {
                        let err = ResignError::Timeout;
                        tracing::warn!(error = %err, "upstream request failed");
                        return Ok(answer(err.to_s3_error(), request_id, &method));
                    }
                },
                None => sent.await,
            };
            let result = match result {
                Ok(response) => Ok(response),
                Err(err) => {
                    // A request body that failed verification (an authentication layer's
                    // signature or checksum check) aborts the upload: answer with its error.
                    if let Some(refusal) = body_refusal(&err) {
                        tracing::debug!(error = %refusal, "request body refused; upload aborted");
                        return Ok(answer(refusal, request_id, &method));
                    }
                    Err(classify(&err))
                }
            };
            match result {
                Ok(response) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Ok(Response::from_parts(parts, UpstreamBody::incoming(body)))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "upstream request failed");
                    Ok(answer(err.to_s3_error(), request_id, &method))
                }
            }
        })
    }
}

/// The S3 error answer for a request that was not completed upstream.
fn answer(
    mut s3: S3Error,
    request_id: Option<RequestId>,
    method: &http::Method,
) -> Response<UpstreamBody> {
    if let Some(id) = request_id {
        s3 = s3.with_request_id(id.as_str());
    }
    if method == http::Method::HEAD {
        s3.into_head_response()
    } else {
        s3.into_response()
    }
}

/// A failure of the request body (the client's, or a verifying layer's), as opposed to one
/// of the backend connection.
#[derive(Debug)]
struct RequestBodyError(BoxError);

impl std::fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body failed: {}", self.0)
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// The answer for a transport error caused by the request body: the [`S3Error`] a verifying
/// layer failed the body with, or `IncompleteBody` when the client's body broke off.
fn body_refusal(err: &hyper_util::client::legacy::Error) -> Option<S3Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut from_body = false;
    while let Some(cause) = source {
        if let Some(s3) = cause.downcast_ref::<S3Error>() {
            return Some(s3.clone());
        }
        from_body |= cause.is::<RequestBodyError>();
        source = cause.source();
    }
    from_body.then(|| {
        S3Error::new(
            S3ErrorCode::IncompleteBody,
            "The request body ended before the length it declared",
        )
    })
}

fn classify(err: &hyper_util::client::legacy::Error) -> ResignError {
    if err.is_connect() {
        ResignError::Connect
    } else {
        tracing::debug!(error = ?err, "upstream transport error");
        ResignError::Transport
    }
}

pin_project! {
    /// A response body from a backend (streamed) or written by the gateway (an S3 error).
    pub struct UpstreamBody {
        #[pin]
        kind: BodyKind,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind {
        Incoming { #[pin] body: hyper::body::Incoming },
        Full { #[pin] body: Full<Bytes> },
    }
}

impl UpstreamBody {
    fn incoming(body: hyper::body::Incoming) -> Self {
        Self {
            kind: BodyKind::Incoming { body },
        }
    }
}

impl From<Bytes> for UpstreamBody {
    fn from(bytes: Bytes) -> Self {
        Self {
            kind: BodyKind::Full {
                body: Full::new(bytes),
            },
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Incoming { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Full { body } => body.poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Incoming { body } => body.is_end_stream(),
            BodyKind::Full { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Incoming { body } => body.size_hint(),
            BodyKind::Full { body } => body.size_hint(),
        }
    }
}
