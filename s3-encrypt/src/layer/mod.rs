//! [`EncryptLayer`]: envelope encryption of object bodies between the client and the backend
//! (architecture §8, §8a). Uploads are encrypted while they stream, downloads decrypted,
//! ranges mapped to whole segments, sizes in HEAD answers and listings rewritten to plaintext
//! sizes, multipart uploads encrypted part by part with the data key carried in the upload
//! id, and operations that would need plaintext at the backend refused.

mod bodies;
mod copy;
mod etag;
mod multipart;
mod object;
mod read;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use s3_core::{S3Operation, S3Request};
use tower_layer::Layer;
use tower_service::Service;

pub use bodies::{EncryptRequestBody, EncryptResponseBody};

use crate::EncryptError;
use crate::body::BoxError;
use crate::envelope::refuse_reserved_metadata;
use crate::policy::{BucketEncryption, EncryptionPolicy};

/// The largest XML document the layer reads whole (listings, `CompleteMultipartUpload`).
const DOCUMENT_LIMIT: usize = 16 * 1024 * 1024;

/// Encrypts and decrypts object bodies for the buckets an [`EncryptionPolicy`] marks.
///
/// Needs the [`S3Request`] that `s3_core::S3RequestLayer` stores in the extensions (without
/// it every request is refused), and bodies already decoded from aws-chunked framing (by
/// `s3_auth::SigV4Layer`); an aws-chunked body that is still framed is refused, never
/// stored as is. Sits inside authorization and outside re-signing:
///
/// ```
/// use std::sync::Arc;
/// use s3_core::S3RequestLayer;
/// use s3_encrypt::{BucketEncryption, EncryptLayer, EncryptionPolicy, LocalKek};
/// use tower::ServiceBuilder;
///
/// let kek = Arc::new(LocalKek::from_bytes(&[7u8; 32]).unwrap());
/// let policy = EncryptionPolicy::new(BucketEncryption::encrypt(kek));
/// // The backend (in a gateway: s3_resign::ResignLayer over its Upstream client).
/// let backend = tower::service_fn(
///     |_req: http::Request<s3_encrypt::EncryptRequestBody<http_body_util::Empty<bytes::Bytes>>>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(
///             http_body_util::Empty::<bytes::Bytes>::new(),
///         ))
///     },
/// );
/// let service = ServiceBuilder::new()
///     .layer(S3RequestLayer::new())
///     .layer(EncryptLayer::new(policy))
///     .service(backend);
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct EncryptLayer {
    policy: Arc<EncryptionPolicy>,
}

impl EncryptLayer {
    /// A layer applying `policy`.
    pub fn new(policy: EncryptionPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// The policy, e.g. to check every KEK at startup.
    pub fn policy(&self) -> &EncryptionPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for EncryptLayer {
    type Service = EncryptService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EncryptService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service made by [`EncryptLayer`].
#[derive(Clone, Debug)]
pub struct EncryptService<S> {
    inner: S,
    policy: Arc<EncryptionPolicy>,
}

/// The future of [`EncryptService`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EncryptService<S>
where
    S: Service<Request<EncryptRequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + Unpin + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<EncryptResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut call = Call {
                inner,
                policy,
                parts,
                bodies: PhantomData,
            };
            call.run(body).await
        })
    }
}

/// The service inside the layer (the backend, e.g. `s3_resign::ResignLayer` over its
/// client), as the layer's internals need it.
pub(crate) trait Backend<ReqBody, ResBody>:
    Service<Request<EncryptRequestBody<ReqBody>>, Response = Response<ResBody>, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<T, ReqBody, ResBody> Backend<ReqBody, ResBody> for T
where
    T: Service<Request<EncryptRequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    T::Future: Send,
{
}

/// A client's request body, as the layer's internals need it.
pub(crate) trait ClientBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ClientBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// A backend's response body, as the layer's internals need it.
pub(crate) trait BackendBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> BackendBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{}

/// One request on its way through the layer.
pub(crate) struct Call<S, ReqBody, ResBody> {
    inner: S,
    policy: Arc<EncryptionPolicy>,
    parts: Parts,
    bodies: PhantomData<fn(ReqBody) -> ResBody>,
}

/// The response type of a [`Call`].
type Answer<R> = Response<EncryptResponseBody<R>>;

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody> {
    fn s3(&self) -> Result<&S3Request, EncryptError> {
        self.parts
            .extensions
            .get::<S3Request>()
            .ok_or(EncryptError::NotParsed)
    }

    fn s3_mut(&mut self) -> Result<&mut S3Request, EncryptError> {
        self.parts
            .extensions
            .get_mut::<S3Request>()
            .ok_or(EncryptError::NotParsed)
    }

    /// The S3 error answer for `error`.
    fn refuse(&self, error: &EncryptError) -> Answer<ResBody> {
        match error {
            EncryptError::KeyServiceUnavailable(why) | EncryptError::KeyServiceRefused(why) => {
                tracing::warn!(reason = %why, "key service failed; request refused");
            }
            EncryptError::Backend(why) => {
                tracing::warn!(reason = %why, "unexpected backend answer");
            }
            EncryptError::NotParsed | EncryptError::Config(_) => {
                tracing::error!(error = %error, "encryption layer misconfigured");
            }
            _ => tracing::debug!(error = %error, "request refused by the encryption layer"),
        }
        let mut s3 = error.to_s3_error();
        if let Ok(request) = self.s3() {
            s3 = s3.with_resource(request.resource_path());
        }
        s3.into_response_for(&self.parts.method, &self.parts.extensions)
    }
}

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody>
where
    S: Backend<ReqBody, ResBody>,
    ReqBody: ClientBody,
    ResBody: BackendBody,
{
    async fn run(&mut self, body: ReqBody) -> Result<Answer<ResBody>, S::Error> {
        match self.route(body).await {
            Ok(Routed::Answer(answer)) => Ok(answer),
            Ok(Routed::Backend(result)) => result,
            Err(error) => Ok(self.refuse(&error)),
        }
    }

    #[allow(clippy::enum_glob_use)]
    async fn route(&mut self, body: ReqBody) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        use S3Operation as Op;
        self.hoist_query_headers()?;
        refuse_reserved_metadata(&self.parts.headers)?;
        etag::map_conditions(&mut self.parts.headers);
        let s3 = self.s3()?;
        let operation = s3.operation;
        let encryption = match &s3.bucket {
            Some(bucket) => self.policy.for_bucket(bucket).clone(),
            None => BucketEncryption::Off,
        };
        if !encryption.is_on() {
            // Objects encrypted before the bucket's encryption was turned off stay readable,
            // and copies of encrypted objects are decrypted, never copied as ciphertext.
            return match operation {
                Op::GetObject => self.get_unencrypted_bucket(&encryption).await,
                Op::HeadObject => self.head_object(&encryption).await,
                Op::CopyObject => self.copy_object(body, &encryption).await,
                Op::UploadPartCopy => self.upload_part_copy(body, &encryption).await,
                _ => Ok(Routed::Backend(self.forward_plain(body).await)),
            };
        }
        match operation {
            Op::PutObject => self.put_object(body, &encryption).await,
            Op::GetObject => self.get_object(&encryption).await,
            Op::HeadObject => self.head_object(&encryption).await,
            Op::CopyObject => self.copy_object(body, &encryption).await,
            Op::CreateMultipartUpload => self.create_upload(&encryption).await,
            Op::UploadPart => self.upload_part(body, &encryption).await,
            Op::CompleteMultipartUpload => self.complete_upload(body).await,
            Op::AbortMultipartUpload => self.abort_upload(body).await,
            Op::ListParts => self.list_parts().await,
            Op::ListObjects | Op::ListObjectsV2 | Op::ListObjectVersions => {
                self.list_objects(operation, &encryption).await
            }
            Op::UploadPartCopy => self.upload_part_copy(body, &encryption).await,
            Op::SelectObjectContent => Err(EncryptError::Unsupported(
                "SelectObjectContent needs plaintext at the backend and is not available on encrypted buckets",
            )),
            Op::GetObjectTorrent => Err(EncryptError::Unsupported(
                "GetObjectTorrent would describe the ciphertext and is not available on encrypted buckets",
            )),
            Op::GetObjectAttributes => Err(EncryptError::Unsupported(
                "GetObjectAttributes would report ciphertext sizes and checksums and is not available on encrypted buckets; use HeadObject",
            )),
            Op::RestoreObject => self.restore_object(body).await,
            _ => Ok(Routed::Backend(self.forward_plain(body).await)),
        }
    }

    /// RestoreObject: an archive restore passes; the legacy `SELECT` restore type would run a
    /// query on the ciphertext and is refused like SelectObjectContent.
    async fn restore_object(
        &mut self,
        body: ReqBody,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let document = read_document(body)
            .await
            .map_err(|_| EncryptError::MalformedXml("The RestoreRequest could not be read"))?;
        if restore_is_select(&document)? {
            return Err(EncryptError::Unsupported(
                "a SELECT restore needs plaintext at the backend and is not available on encrypted buckets",
            ));
        }
        self.parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(document.len()));
        let result = self
            .send(EncryptRequestBody::Buffered {
                body: http_body_util::Full::new(document),
            })
            .await;
        Ok(Routed::Backend(result.map(|response| {
            response.map(|body| EncryptResponseBody::Plain { body })
        })))
    }

    /// Moves `x-amz-*` parameters of the query (where presigned URLs carry headers) into the
    /// headers, so every header rule of the layer (reserved metadata, checksums, directives)
    /// sees them; the backend treats them as headers anyway.
    fn hoist_query_headers(&mut self) -> Result<(), EncryptError> {
        let s3 = self.s3_mut()?;
        let hoisted: Vec<(String, String)> = s3
            .query
            .iter()
            .filter(|(name, _)| {
                name.get(..6)
                    .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
                    && !s3_core::PRESIGN_PARAMS
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(name))
            })
            .map(|(name, value)| (name.to_owned(), value.unwrap_or_default().to_owned()))
            .collect();
        for (name, _) in &hoisted {
            s3.query.remove(name);
        }
        for (name, value) in hoisted {
            let header = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    EncryptError::InvalidArgument(
                        "an x-amz-* query parameter that is not a header name",
                    )
                })?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                EncryptError::InvalidArgument(
                    "an x-amz-* query parameter that is not a header value",
                )
            })?;
            match self.parts.headers.get(&header) {
                Some(existing) if *existing != value => {
                    return Err(EncryptError::InvalidArgument(
                        "an x-amz-* parameter sent both as a header and in the query, with different values",
                    ));
                }
                Some(_) => {}
                None => {
                    self.parts.headers.insert(header, value);
                }
            }
        }
        Ok(())
    }

    /// Forwards the request as it is and passes the response back unchanged.
    async fn forward_plain(&mut self, body: ReqBody) -> Result<Answer<ResBody>, S::Error> {
        let response = self.send(EncryptRequestBody::Plain { body }).await?;
        Ok(response.map(|body| EncryptResponseBody::Plain { body }))
    }

    /// Sends the request (with the current parts) to the backend.
    async fn send(
        &mut self,
        body: EncryptRequestBody<ReqBody>,
    ) -> Result<Response<ResBody>, S::Error> {
        let parts = clone_parts(&self.parts);
        std::future::poll_fn(|cx| self.inner.poll_ready(cx)).await?;
        self.inner.call(Request::from_parts(parts, body)).await
    }

    /// Sends the request with `body` and reads the backend's answer document (an XML
    /// answer the layer rewrites). Any answer but 200, and a failure of the inner service,
    /// are passed on as they are (without envelope headers) in `Err`.
    async fn send_for_document(
        &mut self,
        body: EncryptRequestBody<ReqBody>,
    ) -> Result<Result<(http::response::Parts, Bytes), Routed<ResBody, S::Error>>, EncryptError>
    {
        let response = match self.send(body).await {
            Ok(response) => response,
            Err(e) => return Ok(Err(Routed::Backend(Err(e)))),
        };
        if response.status() != http::StatusCode::OK {
            return Ok(Err(Routed::Answer(object::object_passthrough(response))));
        }
        let (parts, body) = response.into_parts();
        Ok(Ok((parts, read_document(body).await?)))
    }

    /// Sends a request the layer makes itself: `method` on `s3` (bucket, key, query), with
    /// the given headers, an empty body and the original request's other extensions.
    async fn send_own(
        &mut self,
        method: http::Method,
        s3: S3Request,
        headers: http::HeaderMap,
    ) -> Result<Response<ResBody>, S::Error> {
        let request = self.own_request(method, s3, headers);
        std::future::poll_fn(|cx| self.inner.poll_ready(cx)).await?;
        self.inner.call(request).await
    }

    /// The request [`Call::send_own`] sends.
    fn own_request(
        &self,
        method: http::Method,
        s3: S3Request,
        headers: http::HeaderMap,
    ) -> Request<EncryptRequestBody<ReqBody>> {
        let mut parts = clone_parts(&self.parts);
        parts.method = method;
        parts.headers = headers;
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        parts.extensions.insert(s3);
        Request::from_parts(parts, EncryptRequestBody::empty())
    }
}

/// Either an answer the layer made, or the backend's result (whose error is the inner
/// service's, passed on unchanged).
pub(crate) enum Routed<R, E> {
    Answer(Answer<R>),
    Backend(Result<Answer<R>, E>),
}

/// A copy of request parts (method, URI, version, headers, extensions).
fn clone_parts(parts: &Parts) -> Parts {
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone())
        .version(parts.version);
    if let Some(headers) = builder.headers_mut() {
        headers.clone_from(&parts.headers);
    }
    let (mut cloned, ()) = builder
        .body(())
        .unwrap_or_else(|_| Request::new(()))
        .into_parts();
    cloned.extensions = parts.extensions.clone();
    cloned
}

/// Reads a small document body whole (at most [`DOCUMENT_LIMIT`] bytes).
async fn read_document<B>(body: B) -> Result<Bytes, EncryptError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    Limited::new(body, DOCUMENT_LIMIT)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                EncryptError::MalformedXml("the document is larger than the gateway reads")
            } else {
                EncryptError::Backend("a document body could not be read".into())
            }
        })
}

/// Replaces the text of the first `<element>` of a small answer document (the `UploadId` of
/// `InitiateMultipartUploadResult`, the `ETag` of `CopyObjectResult`) with what `new` makes
/// of it (unescaped in, escaped out); every other byte stays.
fn rewrite_element_text(
    document: &[u8],
    element: &str,
    new: impl FnOnce(&str) -> Result<String, EncryptError>,
) -> Result<Vec<u8>, EncryptError> {
    let bad = || EncryptError::Backend(format!("an answer without a valid <{element}>"));
    let text = std::str::from_utf8(document).map_err(|_| bad())?;
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    let start = text.find(&open).ok_or_else(bad)? + open.len();
    let end = start + text[start..].find(&close).ok_or_else(bad)?;
    let old = quick_xml::escape::unescape(&text[start..end]).map_err(|_| bad())?;
    let replacement = new(&old)?;
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..start]);
    out.push_str(&quick_xml::escape::escape(replacement.as_str()));
    out.push_str(&text[end..]);
    Ok(out.into_bytes())
}

/// Whether a `RestoreRequest` asks for the `SELECT` restore type (`RestoreRequest/Type`).
fn restore_is_select(document: &[u8]) -> Result<bool, EncryptError> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let malformed = || EncryptError::MalformedXml("The XML you provided was not well-formed");
    if document.is_empty() {
        return Ok(false);
    }
    let text = std::str::from_utf8(document).map_err(|_| malformed())?;
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    let mut in_type = false;
    loop {
        match reader.read_event().map_err(|_| malformed())? {
            Event::Start(e) => {
                depth += 1;
                in_type = depth == 2 && e.local_name().into_inner() == "Type";
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_type = false;
            }
            Event::Text(t)
                if in_type && t.xml10_content().trim().eq_ignore_ascii_case("SELECT") =>
            {
                return Ok(true);
            }
            Event::Eof => return Ok(false),
            _ => {}
        }
    }
}

/// The `Content-Length` of a message, if it has a valid one.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_restores_are_recognised() {
        let select = br#"<RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Type>SELECT</Type><SelectParameters><Expression>select * from S3Object</Expression></SelectParameters></RestoreRequest>"#;
        assert!(restore_is_select(select).unwrap());
        let archive = b"<RestoreRequest><Days>2</Days><GlacierJobParameters><Tier>Standard</Tier></GlacierJobParameters></RestoreRequest>";
        assert!(!restore_is_select(archive).unwrap());
        assert!(!restore_is_select(b"").unwrap());
        assert!(matches!(
            restore_is_select(b"<RestoreRequest><Days>2</Type>"),
            Err(EncryptError::MalformedXml(_))
        ));
    }
}
