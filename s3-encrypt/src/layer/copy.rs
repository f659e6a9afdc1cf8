//! Copies the backend cannot do on ciphertext — to another KEK or binding, between an
//! encrypted and an unencrypted bucket, every UploadPartCopy (a part must be encrypted under
//! the upload's data key and part number): the gateway reads the source as plaintext and
//! uploads it again, streaming, in constant memory.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use s3_core::{S3Operation, S3Request};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::object::settings;
use super::read::{Opened, ReadError, ReadTarget};
use super::{
    Backend, BackendBody, Call, ClientBody, EncryptRequestBody, EncryptResponseBody, Routed,
    content_length,
};
use crate::EncryptError;
use crate::body::EncryptBody;
use crate::envelope::{Envelope, StoredLayout, strip_envelope};
use crate::format::{DataKey, StreamKey, encrypted_size};
use crate::plaintext_check::{BodyOutcome, PlaintextChecks, SharedOutcome};
use crate::policy::BucketEncryption;
use crate::range::ByteRange;

/// Headers of a stored object that a `COPY` metadata directive carries to the copy.
const COPIED_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::EXPIRES,
];

/// Where a re-encrypted copy goes.
pub(super) enum CopyTarget {
    /// A new object (CopyObject).
    Object,
    /// Part `part` of an upload (UploadPartCopy), encrypted with the upload's data key
    /// (`None`: the destination bucket is not encrypted).
    Part { part: u16, dek: Option<DataKey> },
}

/// What a HEAD of a copy's source found.
pub(super) enum SourceState {
    /// The HEAD was not answered with 200 (no such object, a failed condition...): the copy
    /// itself gets the backend's answer.
    Unknown,
    /// Stored without an envelope.
    Plain,
    /// Stored encrypted under `envelope`; `etag` pins a server-side copy to the version seen.
    Encrypted {
        envelope: Envelope,
        etag: Option<HeaderValue>,
    },
}

/// The copy-source conditions and SSE-C key of the request, as headers of a read of the
/// source.
fn source_headers(request: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (from, to) in [
        ("x-amz-copy-source-if-match", header::IF_MATCH),
        ("x-amz-copy-source-if-none-match", header::IF_NONE_MATCH),
        (
            "x-amz-copy-source-if-modified-since",
            header::IF_MODIFIED_SINCE,
        ),
        (
            "x-amz-copy-source-if-unmodified-since",
            header::IF_UNMODIFIED_SINCE,
        ),
    ] {
        if let Some(value) = request.get(from) {
            headers.insert(to, value.clone());
        }
    }
    if let Some(value) = request.get("x-amz-request-payer") {
        headers.insert("x-amz-request-payer", value.clone());
    }
    if let Some(value) = request.get("x-amz-source-expected-bucket-owner") {
        headers.insert("x-amz-expected-bucket-owner", value.clone());
    }
    for suffix in ["algorithm", "key", "key-md5"] {
        if let Some(value) = request.get(format!(
            "x-amz-copy-source-server-side-encryption-customer-{suffix}"
        )) && let Ok(name) =
            HeaderName::try_from(format!("x-amz-server-side-encryption-customer-{suffix}"))
        {
            headers.insert(name, value.clone());
        }
    }
    headers
}

/// The `x-amz-tagging` header value (`k1=v1&k2=v2`, URL-encoded) for the tag set of a
/// `GetObjectTagging` answer; `None` for no tags.
fn tagging_header(document: &[u8]) -> Result<Option<HeaderValue>, EncryptError> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let bad = || EncryptError::Backend("a GetObjectTagging answer that does not parse".into());
    let text = std::str::from_utf8(document).map_err(|_| bad())?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut value = String::new();
    let (mut key, mut tag_value) = (None::<String>, None::<String>);
    let mut pairs: Vec<String> = Vec::new();
    loop {
        match reader.read_event().map_err(|_| bad())? {
            Event::Start(e) => {
                path.push(e.local_name().into_inner().to_owned());
                value.clear();
            }
            Event::Text(t) => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                value.push_str(&crate::listing::resolve(&r).map_err(|_| bad())?);
            }
            Event::End(_) => {
                match path.last().map(String::as_str) {
                    Some("Key") => key = Some(std::mem::take(&mut value)),
                    Some("Value") => tag_value = Some(std::mem::take(&mut value)),
                    Some("Tag") => {
                        let k = key.take().ok_or_else(bad)?;
                        let v = tag_value.take().unwrap_or_default();
                        pairs.push(format!(
                            "{}={}",
                            percent_encoding::utf8_percent_encode(&k, ENCODE),
                            percent_encoding::utf8_percent_encode(&v, ENCODE)
                        ));
                    }
                    _ => {}
                }
                path.pop();
                value.clear();
            }
            Event::Empty(e) if e.local_name().into_inner() == "Value" => {
                tag_value = Some(String::new());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if pairs.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&pairs.join("&"))
        .map(Some)
        .map_err(|_| bad())
}

/// The `CopyObjectResult` / `CopyPartResult` document S3 answers a copy with.
fn copy_result(root: &str, etag: &str) -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{now}</LastModified><ETag>{}</ETag></{root}>",
        quick_xml::escape::escape(etag)
    )
}

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody>
where
    S: Backend<ReqBody, ResBody>,
    ReqBody: ClientBody,
    ResBody: BackendBody,
{
    /// HEADs the copy's source (its version, conditions and SSE-C key as the request names
    /// them) to learn how it is stored: a copy is decided by the source object's own
    /// envelope, never by its bucket's policy (a bucket may hold objects from before its
    /// rule changed).
    pub(super) async fn head_source(&mut self) -> Result<SourceState, ReadError<S::Error>> {
        let s3 = self.s3()?.clone();
        let source = s3.copy_source.clone().ok_or(EncryptError::NotParsed)?;
        let mut head = s3;
        head.operation = S3Operation::HeadObject;
        head.bucket = Some(source.bucket);
        head.key = Some(source.key);
        head.copy_source = None;
        head.query = s3_core::Query::default();
        if let Some(version) = source.version_id {
            head.query.set("versionId", version);
        }
        let headers = source_headers(&self.parts.headers);
        let response = self
            .send_own(Method::HEAD, head, headers)
            .await
            .map_err(ReadError::Inner)?;
        if response.status() != StatusCode::OK {
            return Ok(SourceState::Unknown);
        }
        Ok(match Envelope::from_headers(response.headers())? {
            None => SourceState::Plain,
            Some(envelope) => SourceState::Encrypted {
                envelope,
                etag: response.headers().get(header::ETAG).cloned(),
            },
        })
    }

    /// Copies by reading the source as plaintext and uploading it to `target`, encrypted as
    /// `encryption` (the destination bucket's) says.
    pub(super) async fn copy_through(
        &mut self,
        encryption: &BucketEncryption,
        target: CopyTarget,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let s3 = self.s3()?.clone();
        let source = s3.copy_source.clone().ok_or(EncryptError::NotParsed)?;
        let source_encryption = self.policy.for_bucket(&source.bucket).clone();
        let allow_plaintext = match settings(&source_encryption) {
            None => true,
            Some((_, _, allow)) => allow,
        };
        // A byte range is for UploadPartCopy only (CopyObject copies whole objects).
        let range_header = match target {
            CopyTarget::Part { .. } => self.parts.headers.get("x-amz-copy-source-range").cloned(),
            CopyTarget::Object => None,
        };
        let range = match &range_header {
            None => None,
            Some(value) => Some(
                ByteRange::parse(value.to_str().unwrap_or(""))?
                    .filter(|r| matches!(r, ByteRange::FromTo(..)))
                    .ok_or(EncryptError::InvalidRange)?,
            ),
        };
        // S3 copies the source's tags unless told to replace them; a PutObject needs them
        // in its `x-amz-tagging` header.
        let replace_tags = self
            .parts
            .headers
            .get("x-amz-tagging-directive")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
        let source_tags = if matches!(target, CopyTarget::Object) && !replace_tags {
            let mut tagging = s3.clone();
            tagging.operation = S3Operation::GetObjectTagging;
            tagging.bucket = Some(source.bucket.clone());
            tagging.key = Some(source.key.clone());
            tagging.copy_source = None;
            tagging.query = s3_core::Query::default();
            tagging.query.set("tagging", "");
            if let Some(version) = &source.version_id {
                tagging.query.set("versionId", version.clone());
            }
            let response = match self.send_own(Method::GET, tagging, HeaderMap::new()).await {
                Ok(response) => response,
                Err(e) => return Ok(Routed::Backend(Err(e))),
            };
            if response.status() == StatusCode::OK {
                let document = super::read_document(response.into_body()).await?;
                tagging_header(&document)?
            } else {
                // No such source (the read below answers with the backend's error), or a
                // backend without tagging: nothing to copy.
                None
            }
        } else {
            None
        };
        let mut read = s3.clone();
        read.operation = S3Operation::GetObject;
        read.bucket = Some(source.bucket.clone());
        read.key = Some(source.key.clone());
        read.copy_source = None;
        read.query = s3_core::Query::default();
        if let Some(version) = &source.version_id {
            read.query.set("versionId", version.clone());
        }
        let opened = self
            .read_object(ReadTarget {
                s3: read,
                headers: source_headers(&self.parts.headers),
                range,
                raw_range: range_header,
                allow_plaintext,
            })
            .await;
        let (source_headers, body, length) = match opened {
            Ok(Opened::Plaintext {
                parts,
                body,
                length,
            }) => (parts.headers, body, length),
            Ok(Opened::Backend(response)) => {
                if !response.status().is_success() {
                    let status = response.status();
                    let mut answer = response.map(|body| EncryptResponseBody::Plain { body });
                    // A failed condition on the source is a failed precondition of the copy.
                    if status == StatusCode::NOT_MODIFIED {
                        *answer.status_mut() = StatusCode::PRECONDITION_FAILED;
                    }
                    return Ok(Routed::Answer(answer));
                }
                // An object stored without encryption, served as it is.
                let length = content_length(response.headers())
                    .ok_or_else(|| EncryptError::Backend("GET without Content-Length".into()))?;
                let (parts, body) = response.into_parts();
                (parts.headers, EncryptResponseBody::Plain { body }, length)
            }
            Err(ReadError::Inner(e)) => return Ok(Routed::Backend(Err(e))),
            Err(ReadError::Encrypt(e)) => return Err(e),
        };
        if length > super::object::MAX_UPLOAD {
            return Err(EncryptError::Unsupported(
                "copies of objects over 5 GiB through the gateway need a multipart upload with UploadPartCopy ranges",
            ));
        }
        let plaintext = body.boxed_unsync();
        let (bucket, key) = super::read::bucket_key(&s3)?;

        // The upload: the client's request turned into a PutObject or UploadPart.
        let mut headers = self.parts.headers.clone();
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|n| n.as_str().starts_with("x-amz-copy-source"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
        let replace = headers
            .remove("x-amz-metadata-directive")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
        headers.remove("x-amz-tagging-directive");
        if !replace_tags {
            headers.remove("x-amz-tagging");
            if let Some(tags) = source_tags {
                headers.insert("x-amz-tagging", tags);
            }
        }
        PlaintextChecks::strip_request_headers(&mut headers);
        let (operation, body) = match target {
            CopyTarget::Object => {
                if !replace {
                    let user: Vec<HeaderName> = headers
                        .keys()
                        .filter(|n| n.as_str().starts_with("x-amz-meta-"))
                        .cloned()
                        .collect();
                    for name in user.iter().chain(COPIED_HEADERS.iter()) {
                        headers.remove(name);
                    }
                    let mut source = source_headers;
                    strip_envelope(&mut source);
                    for (name, value) in &source {
                        if name.as_str().starts_with("x-amz-meta-") || COPIED_HEADERS.contains(name)
                        {
                            headers.append(name.clone(), value.clone());
                        }
                    }
                }
                let body = match settings(encryption) {
                    None => plaintext,
                    Some((kek, binding, _)) => {
                        let (dek, _) = super::object::new_data_key(
                            kek.as_ref(),
                            binding,
                            &bucket,
                            &key,
                            StoredLayout::Single { size: length },
                            &mut headers,
                        )
                        .await?;
                        EncryptBody::new(plaintext, StreamKey::derive(&dek, 0), Some(length))
                            .boxed_unsync()
                    }
                };
                (S3Operation::PutObject, body)
            }
            CopyTarget::Part { part, dek } => (
                S3Operation::UploadPart,
                match dek {
                    None => plaintext,
                    Some(dek) => {
                        EncryptBody::new(plaintext, StreamKey::derive(&dek, part), Some(length))
                            .boxed_unsync()
                    }
                },
            ),
        };
        let stored = if encryption.is_on() {
            encrypted_size(length)
        } else {
            length
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored));
        let mut upload: S3Request = s3;
        upload.operation = operation;
        upload.copy_source = None;
        let root = if operation == S3Operation::PutObject {
            "CopyObjectResult"
        } else {
            "CopyPartResult"
        };
        self.parts.extensions.insert(upload);
        self.parts.headers = headers;
        self.parts.method = Method::PUT;
        let outcome: SharedOutcome = Arc::new(Mutex::new(BodyOutcome::default()));
        let result = self
            .send(EncryptRequestBody::Copied {
                body,
                outcome: Arc::clone(&outcome),
            })
            .await;
        if let Some(failure) = outcome.lock().ok().and_then(|mut slot| slot.failure.take()) {
            return Err(failure);
        }
        let response = match result {
            Ok(response) => response,
            Err(e) => return Ok(Routed::Backend(Err(e))),
        };
        if !response.status().is_success() {
            return Ok(Routed::Answer(
                response.map(|body| EncryptResponseBody::Plain { body }),
            ));
        }
        let (mut parts, _) = response.into_parts();
        let mut etag = parts
            .headers
            .remove(header::ETAG)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default();
        // An encrypted object or part: its ETag as clients see it.
        if encryption.is_on()
            && let Some(shown) = super::etag::client_etag(&etag)
        {
            etag = shown;
        }
        PlaintextChecks::strip_response_headers(&mut parts.headers);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        Ok(Routed::Answer(super::object::document_response(
            parts,
            copy_result(root, &etag).into_bytes(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sets_become_an_encoded_tagging_header() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>
<Tag><Key>team</Key><Value>data &amp; ml</Value></Tag>
<Tag><Key>empty</Key><Value/></Tag>
<Tag><Key>ümlaut=x</Key><Value>a/b</Value></Tag>
</TagSet></Tagging>"#;
        assert_eq!(
            tagging_header(doc.as_bytes()).unwrap().unwrap(),
            "team=data%20%26%20ml&empty=&%C3%BCmlaut%3Dx=a%2Fb"
        );
        assert_eq!(
            tagging_header(b"<Tagging><TagSet/></Tagging>").unwrap(),
            None
        );
        assert!(matches!(
            tagging_header(b"<Tagging><TagSet><Tag><Value>v</Value></Tag>"),
            Err(EncryptError::Backend(_))
        ));
    }
}
