//! Reading an object as plaintext — whole, by part or by range — for GetObject and for
//! copies the gateway re-encrypts.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::Body;
use s3_core::{S3Operation, S3Request};

use super::object::{plaintext_headers, stored_layout};
use super::{Backend, BackendBody, Call, ClientBody, EncryptResponseBody, content_length};
use crate::EncryptError;
use crate::body::{BoxError, DecryptBody, Window};
use crate::envelope::{Envelope, StoredLayout};
use crate::format::{
    DataKey, ENCRYPTED_SEGMENT_SIZE, SEGMENT_SIZE, StreamKey, multipart_plaintext_size,
    plaintext_size,
};
use crate::policy::EncryptionPolicy;
use crate::range::{ByteRange, RangePlan};

/// What reading an object gave.
#[allow(clippy::large_enum_variant)] // made once per request and matched at once
pub(super) enum Opened<R> {
    /// Plaintext: response parts already describing it (length, range, no envelope), the
    /// body, and its length.
    Plaintext {
        parts: http::response::Parts,
        body: EncryptResponseBody<R>,
        length: u64,
    },
    /// The backend's answer as it is: an error, a "not modified", or an object stored
    /// without encryption in a bucket that serves those.
    Backend(Response<R>),
}

/// Where and how to read.
pub(super) struct ReadTarget {
    /// The object (GetObject, with `versionId` / `partNumber` in its query).
    pub s3: S3Request,
    /// Headers for the backend (conditionals, SSE-C keys, ...), without `Range`.
    pub headers: HeaderMap,
    /// The plaintext range, if any.
    pub range: Option<ByteRange>,
    /// The `Range` header value as the client sent it (for objects stored as plaintext).
    pub raw_range: Option<HeaderValue>,
    /// Whether objects without an envelope are served as they are.
    pub allow_plaintext: bool,
}

/// The envelope of a backend answer about an object and its data key; `None` for an object
/// stored without encryption that may be served as it is.
async fn open_envelope(
    policy: Arc<EncryptionPolicy>,
    headers: &HeaderMap,
    allow_plaintext: bool,
    bucket: &str,
    key: &str,
) -> Result<Option<(Envelope, DataKey)>, EncryptError> {
    let Some(envelope) = Envelope::from_headers(headers)? else {
        return if allow_plaintext {
            Ok(None)
        } else {
            Err(EncryptError::NotEncrypted)
        };
    };
    let kek = policy.kek(&envelope.kek)?;
    let dek = kek
        .unwrap(&envelope.wrapped, &envelope.binding.context(bucket, key))
        .await?;
    Ok(Some((envelope, dek)))
}

/// A failure of a read: the layer's error, or the inner service's (passed on).
pub(super) enum ReadError<E> {
    Encrypt(EncryptError),
    Inner(E),
}

impl<E> From<EncryptError> for ReadError<E> {
    fn from(e: EncryptError) -> Self {
        Self::Encrypt(e)
    }
}

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody>
where
    S: Backend<ReqBody, ResBody>,
    ReqBody: ClientBody,
    ResBody: BackendBody,
{
    /// Reads `target` as plaintext.
    pub(super) async fn read_object(
        &mut self,
        target: ReadTarget,
    ) -> Result<Opened<ResBody>, ReadError<S::Error>> {
        let Some(range) = target.range else {
            return self.read_whole(target).await;
        };
        // A ranged read needs the stored size and the envelope first.
        let mut head = target.s3.clone();
        head.operation = S3Operation::HeadObject;
        // The read's own headers: its conditions, and what the backend needs to answer for
        // the object at all (an SSE-C key, the request payer).
        let head_response = self
            .send_own(Method::HEAD, head, target.headers.clone())
            .await
            .map_err(ReadError::Inner)?;
        if head_response.status() != StatusCode::OK {
            // Not found, not modified, precondition failed...: the GET itself answers, with
            // the backend's error document.
            return self.read_whole(target).await;
        }
        let stored = content_length(head_response.headers())
            .ok_or_else(|| EncryptError::Backend("HEAD without Content-Length".into()))?;
        let etag = head_response.headers().get(header::ETAG).cloned();
        let (bucket, key) = bucket_key(&target.s3)?;
        let Some((envelope, dek)) = open_envelope(
            Arc::clone(&self.policy),
            head_response.headers(),
            target.allow_plaintext,
            &bucket,
            &key,
        )
        .await?
        else {
            let mut headers = target.headers;
            if let Some(raw) = target.raw_range {
                headers.insert(header::RANGE, raw);
            }
            let response = self
                .send_own(Method::GET, target.s3, headers)
                .await
                .map_err(ReadError::Inner)?;
            return Ok(Opened::Backend(response));
        };
        let plan = RangePlan::new(stored_layout(&envelope, stored)?, range)?;
        let mut headers = target.headers;
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(&plan.backend_range_header())
                .map_err(|_| EncryptError::InvalidRange)?,
        );
        if let Some(etag) = etag {
            headers.insert(header::IF_MATCH, etag);
        }
        let response = self
            .send_own(Method::GET, target.s3, headers)
            .await
            .map_err(ReadError::Inner)?;
        if response.status() != StatusCode::PARTIAL_CONTENT {
            if response.status().is_success() {
                return Err(
                    EncryptError::Backend("a ranged GET was not answered with 206".into()).into(),
                );
            }
            return Ok(Opened::Backend(response));
        }
        let (mut parts, body) = response.into_parts();
        let body = match envelope.layout {
            StoredLayout::Single { .. } => {
                DecryptBody::window(body, StreamKey::derive(&dek, plan.part()), plan.window())
            }
            StoredLayout::Multipart => DecryptBody::multipart(body, &dek, plan.window()),
        };
        plaintext_headers(&mut parts.headers, plan.len());
        parts.headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&plan.content_range()).map_err(|_| EncryptError::InvalidRange)?,
        );
        Ok(Opened::Plaintext {
            parts,
            body: primed(body).await?,
            length: plan.len(),
        })
    }

    /// Reads the whole object (or one part, with `?partNumber=`).
    async fn read_whole(
        &mut self,
        target: ReadTarget,
    ) -> Result<Opened<ResBody>, ReadError<S::Error>> {
        let (bucket, key) = bucket_key(&target.s3)?;
        let part_number = target.s3.query.get("partNumber").map(str::to_owned);
        let response = self
            .send_own(Method::GET, target.s3, target.headers)
            .await
            .map_err(ReadError::Inner)?;
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
            return Ok(Opened::Backend(response));
        }
        let Some((envelope, dek)) = open_envelope(
            Arc::clone(&self.policy),
            response.headers(),
            target.allow_plaintext,
            &bucket,
            &key,
        )
        .await?
        else {
            return Ok(Opened::Backend(response));
        };
        let (mut parts, body) = response.into_parts();
        let stored = content_length(&parts.headers)
            .ok_or_else(|| EncryptError::Backend("GET without Content-Length".into()))?;
        let (body, length, content_range) = match (envelope.layout, part_number, status) {
            (StoredLayout::Multipart, Some(part), StatusCode::PARTIAL_CONTENT) => {
                // One part: a stream of its own under that part's key.
                let part: u16 = part
                    .parse()
                    .map_err(|_| EncryptError::Backend("a part number out of range".into()))?;
                let size = plaintext_size(stored)?;
                let range = part_content_range(&parts.headers, size)?;
                let body =
                    DecryptBody::window(body, StreamKey::derive(&dek, part), Window::sized(size));
                (body, size, range)
            }
            (StoredLayout::Multipart, _, _) => {
                let size = multipart_plaintext_size(stored)?;
                let body = DecryptBody::multipart(body, &dek, Window::multipart_whole(stored)?);
                (body, size, None)
            }
            (StoredLayout::Single { size }, _, _) => {
                if plaintext_size(stored)? != size {
                    return Err(EncryptError::InvalidEnvelope(
                        "the stored size does not match the envelope",
                    )
                    .into());
                }
                let body =
                    DecryptBody::window(body, StreamKey::derive(&dek, 0), Window::sized(size));
                let range = (status == StatusCode::PARTIAL_CONTENT && size > 0)
                    .then(|| format!("bytes 0-{}/{size}", size - 1));
                (body, size, range)
            }
        };
        plaintext_headers(&mut parts.headers, length);
        parts.headers.remove(header::CONTENT_RANGE);
        if let Some(range) = content_range
            && let Ok(value) = HeaderValue::from_str(&range)
        {
            parts.headers.insert(header::CONTENT_RANGE, value);
        }
        Ok(Opened::Plaintext {
            parts,
            body: primed(body).await?,
            length,
        })
    }
}

/// Decrypts the first segment before the response goes out, so that an object that does
/// not decrypt at all (another object's data key, a tampered first segment) is answered
/// with an error status instead of a 200 whose body breaks off. Later segments are checked
/// while they stream.
async fn primed<B>(mut body: DecryptBody<B>) -> Result<EncryptResponseBody<B>, EncryptError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt as _;
    let first = match body.frame().await {
        None => None,
        Some(Ok(frame)) => Some(frame),
        Some(Err(e)) => {
            return Err(match e.downcast::<EncryptError>() {
                Ok(e) => *e,
                Err(e) => EncryptError::Backend(format!("the object's body failed: {e}")),
            });
        }
    };
    Ok(EncryptResponseBody::Decrypted { body, first })
}

/// The bucket and key a request names.
pub(super) fn bucket_key(s3: &S3Request) -> Result<(String, String), EncryptError> {
    match (&s3.bucket, &s3.key) {
        (Some(bucket), Some(key)) => Ok((bucket.clone(), key.clone())),
        _ => Err(EncryptError::NotParsed),
    }
}

/// The plaintext `Content-Range` of one part of a multipart object, from the backend's
/// (`bytes a-b/total` in stored bytes): parts before it hold whole segments, so its first
/// plaintext byte is `a / U * S`.
pub(super) fn part_content_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<String>, EncryptError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let parse = || -> Option<(u64, u64)> {
        let spec = value.to_str().ok()?.strip_prefix("bytes ")?;
        let (range, total) = spec.split_once('/')?;
        let (first, _) = range.split_once('-')?;
        Some((first.parse().ok()?, total.parse().ok()?))
    };
    let (first, total) = parse()
        .ok_or_else(|| EncryptError::Backend("a Content-Range that does not parse".into()))?;
    let u = ENCRYPTED_SEGMENT_SIZE as u64;
    if first % u != 0 {
        return Err(EncryptError::Malformed(
            "a part that does not start on a segment boundary",
        ));
    }
    let start = first / u * SEGMENT_SIZE as u64;
    let total = multipart_plaintext_size(total)?;
    if size == 0 {
        return Ok(Some(format!("bytes */{total}")));
    }
    Ok(Some(format!("bytes {start}-{}/{total}", start + size - 1)))
}
