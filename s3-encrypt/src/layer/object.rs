//! Single objects: PutObject, GetObject (whole, ranged, by part), HeadObject, CopyObject,
//! and the listings whose sizes are rewritten.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use s3_core::S3Operation;

use super::copy::{CopyTarget, SourceState};
use super::read::{Opened, ReadError, ReadTarget, part_content_range};
use super::{
    Answer, Backend, BackendBody, Call, ClientBody, EncryptRequestBody, EncryptResponseBody,
    Routed, content_length,
};
use crate::EncryptError;
use crate::body::EncryptBody;
use crate::envelope::{Envelope, StoredLayout, check_metadata_budget, strip_envelope};
use crate::format::{StreamKey, encrypted_size, multipart_plaintext_size, plaintext_size};
use crate::listing::{ListingKind, rewrite_listing, rewrite_listing_entries};
use crate::plaintext_check::{BodyOutcome, CheckedBody, PlaintextChecks, SharedOutcome};
use crate::policy::{Binding, BucketEncryption};
use crate::range::{ByteRange, Layout};

/// How many HEAD requests a listing in a bucket that allows plaintext reads makes at once.
const LISTING_HEADS: usize = 16;

/// The largest body of one PutObject or UploadPart (S3's 5 GiB).
pub(super) const MAX_UPLOAD: u64 = 5 << 30;

/// The KEK, binding and plaintext-read setting of an encrypted bucket.
pub(super) fn settings(
    encryption: &BucketEncryption,
) -> Option<(&Arc<dyn crate::KeyEncryptionKey>, Binding, bool)> {
    match encryption {
        BucketEncryption::Off => None,
        BucketEncryption::On {
            kek,
            binding,
            allow_plaintext_reads,
        } => Some((kek, *binding, *allow_plaintext_reads)),
    }
}

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody>
where
    S: Backend<ReqBody, ResBody>,
    ReqBody: ClientBody,
    ResBody: BackendBody,
{
    /// The bucket and key of the request.
    fn object(&self) -> Result<(String, String), EncryptError> {
        super::read::bucket_key(self.s3()?)
    }

    /// The plaintext length of an upload, refusing framings the layer cannot encrypt.
    pub(super) fn upload_length(&self) -> Result<u64, EncryptError> {
        let headers = &self.parts.headers;
        let chunked = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("aws-chunked")))
            || headers
                .get("x-amz-content-sha256")
                .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
            || headers.contains_key("x-amz-decoded-content-length")
            || headers.contains_key("x-amz-trailer");
        if chunked {
            return Err(EncryptError::UnsupportedEncoding(
                "aws-chunked uploads must be decoded by an authentication layer before they are encrypted",
            ));
        }
        let length = content_length(headers).ok_or(EncryptError::MissingLength)?;
        if length > MAX_UPLOAD {
            return Err(EncryptError::TooLarge);
        }
        Ok(length)
    }

    /// Turns the request into one that carries `body` encrypted with `key`: length, checksum
    /// headers, body; returns the body and where its outcome is recorded.
    pub(super) fn encrypting_body(
        &mut self,
        body: ReqBody,
        key: StreamKey,
        length: u64,
    ) -> Result<(EncryptRequestBody<ReqBody>, SharedOutcome), EncryptError> {
        let checks = PlaintextChecks::from_headers(&self.parts.headers)?;
        let headers = &mut self.parts.headers;
        PlaintextChecks::strip_request_headers(headers);
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(encrypted_size(length)),
        );
        headers.remove(header::TRANSFER_ENCODING);
        let outcome: SharedOutcome = Arc::new(Mutex::new(BodyOutcome::default()));
        let checked = CheckedBody::new(body, checks, Arc::clone(&outcome));
        let body = EncryptRequestBody::Encrypted {
            body: EncryptBody::new(checked, key, Some(length)),
            outcome: Arc::clone(&outcome),
        };
        Ok((body, outcome))
    }

    /// Sends an encrypted upload (an object or a part) and answers: the recorded failure if
    /// the body failed (the backend saw a broken upload and stored nothing), else the
    /// backend's answer with its ciphertext checksums replaced by the verified plaintext one
    /// and its ETag as clients see it.
    pub(super) async fn send_upload(
        &mut self,
        body: EncryptRequestBody<ReqBody>,
        outcome: &SharedOutcome,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let result = self.send(body).await;
        let (failure, checksum) = match outcome.lock() {
            Ok(mut slot) => (slot.failure.take(), slot.checksum.take()),
            Err(_) => (
                Some(EncryptError::Malformed("the upload state was lost")),
                None,
            ),
        };
        if let Some(failure) = failure {
            return Err(failure);
        }
        Ok(Routed::Backend(result.map(|response| {
            let (mut parts, body) = response.into_parts();
            PlaintextChecks::strip_response_headers(&mut parts.headers);
            if parts.status.is_success()
                && let Some((name, value)) = checksum
            {
                parts.headers.insert(name, value);
            }
            if parts.status.is_success() {
                super::etag::show_etag(&mut parts.headers);
            }
            Response::from_parts(parts, EncryptResponseBody::Plain { body })
        })))
    }

    pub(super) async fn put_object(
        &mut self,
        body: ReqBody,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let Some((kek, binding, _)) = settings(encryption) else {
            return Err(EncryptError::Unsupported(
                "copying an encrypted object to a bucket without encryption is not supported",
            ));
        };
        let length = self.upload_length()?;
        let (bucket, key) = self.object()?;
        let (dek, _) = new_data_key(
            kek.as_ref(),
            binding,
            &bucket,
            &key,
            StoredLayout::Single { size: length },
            &mut self.parts.headers,
        )
        .await?;
        let (body, outcome) = self.encrypting_body(body, StreamKey::derive(&dek, 0), length)?;
        self.send_upload(body, &outcome).await
    }

    /// GetObject in a bucket without encryption: forwarded as it is, unless the object
    /// turns out to carry an envelope (stored while the bucket was encrypted), which is then
    /// read like in an encrypted bucket.
    pub(super) async fn get_unencrypted_bucket(
        &mut self,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let response = match self.send(EncryptRequestBody::empty()).await {
            Ok(response) => response,
            Err(e) => return Ok(Routed::Backend(Err(e))),
        };
        if !response.status().is_success() || Envelope::from_headers(response.headers())?.is_none()
        {
            return Ok(Routed::Backend(Ok(object_passthrough(response))));
        }
        drop(response);
        self.get_object(encryption).await
    }

    pub(super) async fn get_object(
        &mut self,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let allow_plaintext = settings(encryption).is_none_or(|(_, _, allow)| allow);
        let raw_range = self.parts.headers.get(header::RANGE).cloned();
        let range = match &raw_range {
            None => None,
            Some(value) => ByteRange::parse(value.to_str().unwrap_or(""))?,
        };
        let s3 = self.s3()?.clone();
        if range.is_some() && s3.query.has("partNumber") {
            return Err(EncryptError::UnsupportedRange(
                "a Range header and partNumber cannot be combined",
            ));
        }
        let mut headers = self.parts.headers.clone();
        headers.remove(header::RANGE);
        let target = ReadTarget {
            s3,
            headers,
            range,
            raw_range,
            allow_plaintext,
        };
        match self.read_object(target).await {
            Ok(Opened::Plaintext { parts, body, .. }) => {
                Ok(Routed::Answer(Response::from_parts(parts, body)))
            }
            Ok(Opened::Backend(response)) => Ok(Routed::Answer(object_passthrough(response))),
            Err(ReadError::Inner(e)) => Ok(Routed::Backend(Err(e))),
            Err(ReadError::Encrypt(e)) => Err(e),
        }
    }

    pub(super) async fn head_object(
        &mut self,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let allow_plaintext = settings(encryption).is_none_or(|(_, _, allow)| allow);
        // Sizes are answered for the whole object (or part); a range on HEAD is not mapped.
        self.parts.headers.remove(header::RANGE);
        let part = self.s3()?.query.has("partNumber");
        let response = match self.send(EncryptRequestBody::empty()).await {
            Ok(response) => response,
            Err(e) => return Ok(Routed::Backend(Err(e))),
        };
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
            return Ok(Routed::Backend(Ok(object_passthrough(response))));
        }
        // Only the envelope is needed, not the data key: a HEAD never calls the key service.
        let Some(envelope) = Envelope::from_headers(response.headers())? else {
            if allow_plaintext {
                return Ok(Routed::Backend(Ok(
                    response.map(|body| EncryptResponseBody::Plain { body })
                )));
            }
            return Err(EncryptError::NotEncrypted);
        };
        let (mut parts, body) = response.into_parts();
        let stored = content_length(&parts.headers)
            .ok_or_else(|| EncryptError::Backend("HEAD without Content-Length".into()))?;
        let (length, range) = match (
            envelope.layout,
            part && status == StatusCode::PARTIAL_CONTENT,
        ) {
            (StoredLayout::Multipart, true) => {
                let size = plaintext_size(stored)?;
                (size, part_content_range(&parts.headers, size)?)
            }
            (StoredLayout::Multipart, false) => (multipart_plaintext_size(stored)?, None),
            (StoredLayout::Single { size }, whole_part) => {
                if plaintext_size(stored)? != size {
                    return Err(EncryptError::InvalidEnvelope(
                        "the stored size does not match the envelope",
                    ));
                }
                let range =
                    (whole_part && size > 0).then(|| format!("bytes 0-{}/{size}", size - 1));
                (size, range)
            }
        };
        plaintext_headers(&mut parts.headers, length);
        parts.headers.remove(header::CONTENT_RANGE);
        if let Some(range) = range
            && let Ok(value) = HeaderValue::from_str(&range)
        {
            parts.headers.insert(header::CONTENT_RANGE, value);
        }
        Ok(Routed::Backend(Ok(Response::from_parts(
            parts,
            EncryptResponseBody::Plain { body },
        ))))
    }

    /// CopyObject: a server-side copy keeps the ciphertext when the source object is
    /// encrypted and the destination would wrap its data key the same way (same KEK, and a
    /// binding that names neither the object nor, for another bucket, the bucket); `REPLACE`
    /// copies get the source's envelope back in, and the copy is pinned to the version the
    /// gateway saw. A plaintext source into an unencrypted bucket is copied by the backend;
    /// everything else goes through the gateway ([`Call::copy_through`]).
    pub(super) async fn copy_object(
        &mut self,
        body: ReqBody,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let state = match self.head_source().await {
            Ok(state) => state,
            Err(ReadError::Inner(e)) => return Ok(Routed::Backend(Err(e))),
            Err(ReadError::Encrypt(e)) => return Err(e),
        };
        let (bucket, _) = self.object()?;
        let source_bucket = self
            .s3()?
            .copy_source
            .as_ref()
            .map(|source| source.bucket.clone())
            .ok_or(EncryptError::NotParsed)?;
        match (state, settings(encryption)) {
            (SourceState::Plain, None) => Ok(Routed::Backend(self.forward_plain(body).await)),
            (SourceState::Encrypted { envelope, etag }, Some((kek, binding, _)))
                if envelope.kek == kek.name()
                    && envelope.binding == binding
                    && (binding == Binding::None
                        || (binding == Binding::Bucket && source_bucket == bucket)) =>
            {
                let replace = self
                    .parts
                    .headers
                    .get("x-amz-metadata-directive")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
                if replace {
                    envelope.write(&mut self.parts.headers)?;
                    check_metadata_budget(&self.parts.headers)?;
                }
                // Pinned to the version whose envelope was read, unless the client names
                // one itself (the backend then checks the client's condition).
                if let Some(etag) = etag
                    && !self
                        .parts
                        .headers
                        .contains_key("x-amz-copy-source-if-match")
                {
                    self.parts
                        .headers
                        .insert("x-amz-copy-source-if-match", etag);
                }
                // Checksums of the copy would be of the ciphertext.
                self.parts.headers.remove("x-amz-checksum-algorithm");
                let (parts, document) = match self
                    .send_for_document(EncryptRequestBody::Plain { body })
                    .await?
                {
                    Ok(answer) => answer,
                    Err(passed_on) => return Ok(passed_on),
                };
                let shown = super::rewrite_element_text(&document, "ETag", |etag| {
                    Ok(super::etag::client_etag(etag).unwrap_or_else(|| etag.to_owned()))
                })?;
                Ok(Routed::Answer(document_response(parts, shown)))
            }
            _ => self.copy_through(encryption, CopyTarget::Object).await,
        }
    }

    /// ListObjects (v1, v2) and ListObjectVersions: stored sizes become plaintext sizes.
    pub(super) async fn list_objects(
        &mut self,
        operation: S3Operation,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let kind = match operation {
            S3Operation::ListObjects => ListingKind::ListObjects,
            S3Operation::ListObjectsV2 => ListingKind::ListObjectsV2,
            _ => ListingKind::ListObjectVersions,
        };
        let (parts, document) = match self.send_for_document(EncryptRequestBody::empty()).await? {
            Ok(answer) => answer,
            Err(passed_on) => return Ok(passed_on),
        };
        let allow_plaintext = settings(encryption).is_some_and(|(_, _, allow)| allow);
        let rewritten = if allow_plaintext {
            // Encrypted and plaintext objects side by side: only each object's metadata tells
            // them apart, so each listed object is asked for it.
            let listed = match self.listed_sizes(&document, kind).await {
                Ok(listed) => listed,
                Err(ReadError::Inner(e)) => return Ok(Routed::Backend(Err(e))),
                Err(ReadError::Encrypt(e)) => return Err(e),
            };
            let mut listed = listed.into_iter();
            rewrite_listing_entries(
                &document,
                kind,
                &mut |entry| {
                    Ok(match listed.next() {
                        Some((size, true)) => (size, entry.etag.and_then(super::etag::client_etag)),
                        Some((size, false)) => (size, None),
                        None => (entry.stored_size, None),
                    })
                },
                &mut str::to_owned,
            )?
        } else {
            // Every object is encrypted: the stored size alone gives the plaintext size (a
            // size no encrypted object has is listed as it is).
            rewrite_listing_entries(
                &document,
                kind,
                &mut |entry| {
                    Ok(match multipart_plaintext_size(entry.stored_size) {
                        Ok(size) => (size, entry.etag.and_then(super::etag::client_etag)),
                        Err(_) => (entry.stored_size, None),
                    })
                },
                &mut str::to_owned,
            )?
        };
        Ok(Routed::Answer(document_response(parts, rewritten)))
    }

    /// The plaintext size of every object a listing names, in document order, and whether
    /// it is encrypted, from a HEAD of each (at most [`LISTING_HEADS`] at a time); objects
    /// without an envelope keep their stored size.
    async fn listed_sizes(
        &mut self,
        document: &[u8],
        kind: ListingKind,
    ) -> Result<Vec<(u64, bool)>, ReadError<S::Error>> {
        let s3 = self.s3()?.clone();
        let url_keys = s3.query.get("encoding-type") == Some("url");
        let mut entries: Vec<(String, Option<String>, u64)> = Vec::new();
        rewrite_listing(
            document,
            kind,
            &mut |entry| {
                let key = entry.key.unwrap_or_default();
                let key = if url_keys {
                    percent_encoding::percent_decode_str(key)
                        .decode_utf8_lossy()
                        .into_owned()
                } else {
                    key.to_owned()
                };
                entries.push((key, entry.version_id.map(str::to_owned), entry.stored_size));
                Ok(entry.stored_size)
            },
            &mut str::to_owned,
        )?;
        let requests: Vec<_> = entries
            .iter()
            .map(|(key, version, _)| {
                let mut head = s3.clone();
                head.operation = S3Operation::HeadObject;
                head.key = Some(key.clone());
                head.query = s3_core::Query::default();
                if let Some(version) = version {
                    head.query.set("versionId", version.clone());
                }
                self.own_request(Method::HEAD, head, HeaderMap::new())
            })
            .collect();
        let calls: Vec<(S, _)> = requests
            .into_iter()
            .map(|request| (self.inner.clone(), request))
            .collect();
        let heads: Vec<Result<Response<ResBody>, S::Error>> =
            futures_util::stream::iter(calls.into_iter().map(|(mut inner, request)| async move {
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(request).await
            }))
            .buffered(LISTING_HEADS)
            .collect()
            .await;
        let mut sizes = Vec::with_capacity(entries.len());
        for ((_, _, stored), head) in entries.iter().zip(heads) {
            let head = head.map_err(ReadError::Inner)?;
            let envelope = if head.status() == StatusCode::OK {
                Envelope::from_headers(head.headers())?
            } else {
                None
            };
            sizes.push(match envelope {
                None => (*stored, false),
                Some(envelope) => match envelope.layout {
                    StoredLayout::Single { size } => (size, true),
                    StoredLayout::Multipart => (multipart_plaintext_size(*stored)?, true),
                },
            });
        }
        Ok(sizes)
    }
}

/// A new data key for the object `bucket/key`, wrapped by `kek` with `binding`, and its
/// envelope written into the upload's `headers` (within the metadata budget).
pub(super) async fn new_data_key(
    kek: &dyn crate::KeyEncryptionKey,
    binding: Binding,
    bucket: &str,
    key: &str,
    layout: StoredLayout,
    headers: &mut HeaderMap,
) -> Result<(crate::DataKey, Envelope), EncryptError> {
    let (dek, wrapped) = kek.generate_data_key(&binding.context(bucket, key)).await?;
    let envelope = Envelope {
        kek: kek.name().to_owned(),
        wrapped,
        binding,
        layout,
    };
    envelope.write(headers)?;
    check_metadata_budget(headers)?;
    Ok((dek, envelope))
}

/// The layout of an object stored as `stored` bytes under `envelope`.
pub(super) fn stored_layout(envelope: &Envelope, stored: u64) -> Result<Layout, EncryptError> {
    match envelope.layout {
        StoredLayout::Single { size } => {
            if plaintext_size(stored)? != size {
                return Err(EncryptError::InvalidEnvelope(
                    "the stored size does not match the envelope",
                ));
            }
            Ok(Layout::SingleStream {
                plaintext_size: size,
            })
        }
        StoredLayout::Multipart => Ok(Layout::Multipart {
            plaintext_size: multipart_plaintext_size(stored)?,
            stored_size: stored,
        }),
    }
}

/// A backend answer about an object passed on as it is (an error, a "not modified", an
/// object stored without encryption), without any envelope header it may carry.
pub(super) fn object_passthrough<R>(response: Response<R>) -> Answer<R> {
    let (mut parts, body) = response.into_parts();
    strip_envelope(&mut parts.headers);
    Response::from_parts(parts, EncryptResponseBody::Plain { body })
}

/// Makes response headers describe `length` plaintext bytes: length, no envelope, no
/// ciphertext checksums or MD5.
pub(super) fn plaintext_headers(headers: &mut HeaderMap, length: u64) {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    super::etag::show_etag(headers);
    strip_envelope(headers);
    PlaintextChecks::strip_response_headers(headers);
    headers.remove("content-md5");
}

/// A response carrying a rewritten document.
pub(super) fn document_response<R>(
    mut parts: http::response::Parts,
    document: Vec<u8>,
) -> Answer<R> {
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(document.len()));
    parts.headers.remove("content-md5");
    PlaintextChecks::strip_response_headers(&mut parts.headers);
    Response::from_parts(parts, EncryptResponseBody::from(Bytes::from(document)))
}
