//! Multipart uploads without shared state (architecture §8a): the data key is made at
//! CreateMultipartUpload, stored in the object's envelope, and carried (wrapped) in the
//! upload id the client receives, so any replica encrypts any part, in any order.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use quick_xml::Reader;
use quick_xml::events::Event;
use s3_core::S3Operation;

use super::copy::{CopyTarget, SourceState};
use super::object::{document_response, settings};
use super::read::ReadError;
use super::{
    Backend, BackendBody, Call, ClientBody, EncryptRequestBody, EncryptResponseBody, Routed,
    read_document,
};
use crate::EncryptError;
use crate::envelope::StoredLayout;
use crate::format::{DataKey, ENCRYPTED_SEGMENT_SIZE, StreamKey, plaintext_size};
use crate::listing::{ListingKind, rewrite_listing, rewrite_listing_entries};
use crate::plaintext_check::PlaintextChecks;
use crate::policy::BucketEncryption;
use crate::upload_id::{self, UploadKey};

/// Request headers of CreateMultipartUpload and CompleteMultipartUpload about checksums of
/// the whole object: of the plaintext, so they cannot go to the backend.
const WHOLE_OBJECT_HEADERS: [&str; 3] = [
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
    "x-amz-mp-object-size",
];

impl<S, ReqBody, ResBody> Call<S, ReqBody, ResBody>
where
    S: Backend<ReqBody, ResBody>,
    ReqBody: ClientBody,
    ResBody: BackendBody,
{
    pub(super) async fn create_upload(
        &mut self,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let Some((kek, binding, _)) = settings(encryption) else {
            return Err(EncryptError::NotParsed);
        };
        let (bucket, key) = super::read::bucket_key(self.s3()?)?;
        let (dek, envelope) = super::object::new_data_key(
            kek.as_ref(),
            binding,
            &bucket,
            &key,
            StoredLayout::Multipart,
            &mut self.parts.headers,
        )
        .await?;
        for name in WHOLE_OBJECT_HEADERS {
            self.parts.headers.remove(name);
        }
        let (mut parts, document) =
            match self.send_for_document(EncryptRequestBody::empty()).await? {
                Ok(answer) => answer,
                Err(passed_on) => return Ok(passed_on),
            };
        let upload_key = UploadKey {
            kek: envelope.kek,
            binding,
            wrapped: envelope.wrapped,
        };
        let rewritten = super::rewrite_element_text(&document, "UploadId", |backend_id| {
            upload_id::issue(backend_id, &upload_key, &dek)
        })?;
        for name in WHOLE_OBJECT_HEADERS {
            parts.headers.remove(name);
        }
        Ok(Routed::Answer(document_response(parts, rewritten)))
    }

    /// Replaces the client's upload id in the query with the backend's; returns the id as
    /// the client sent it.
    fn backend_upload_id(&mut self) -> Result<(String, upload_id::ClientUploadId), EncryptError> {
        let s3 = self.s3_mut()?;
        let client_id = s3
            .query
            .get("uploadId")
            .ok_or(EncryptError::UnknownUpload)?
            .to_owned();
        let parsed = upload_id::parse(&client_id);
        s3.query.set("uploadId", parsed.backend_id.clone());
        Ok((client_id, parsed))
    }

    pub(super) async fn upload_part(
        &mut self,
        body: ReqBody,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        if !encryption.is_on() {
            return Err(EncryptError::NotParsed);
        }
        let length = self.upload_length()?;
        let part = self.part_number()?;
        let dek = self.upload_data_key().await?;
        let (body, outcome) = self.encrypting_body(body, StreamKey::derive(&dek, part), length)?;
        self.send_upload(body, &outcome).await
    }

    /// The `partNumber` of an UploadPart or UploadPartCopy.
    fn part_number(&self) -> Result<u16, EncryptError> {
        self.s3()?
            .query
            .get("partNumber")
            .and_then(|p| p.parse().ok())
            .filter(|p| (1..=crate::format::MAX_PART).contains(p))
            .ok_or_else(|| {
                EncryptError::InvalidPart(
                    "Part number must be an integer between 1 and 10000".into(),
                )
            })
    }

    /// The data key the request's upload id carries, unwrapped and checked against the id;
    /// the query then names the backend's upload id.
    async fn upload_data_key(&mut self) -> Result<DataKey, EncryptError> {
        let (_, parsed) = self.backend_upload_id()?;
        let key = parsed.key.clone().ok_or(EncryptError::UnknownUpload)?;
        let (bucket, object) = super::read::bucket_key(self.s3()?)?;
        // A KEK this gateway does not have: not an upload it issued.
        let kek = self
            .policy
            .kek(&key.kek)
            .map_err(|_| EncryptError::UnknownUpload)?;
        let dek = match kek
            .unwrap(&key.wrapped, &key.binding.context(&bucket, &object))
            .await
        {
            Ok(dek) => dek,
            // A token for another object or KEK: not an upload of this object.
            Err(EncryptError::KeyUnwrap) => return Err(EncryptError::UnknownUpload),
            Err(e) => return Err(e),
        };
        parsed.verify(&dek)?;
        Ok(dek)
    }

    /// UploadPartCopy: into an encrypted upload, always through the gateway (a part is
    /// encrypted under its upload's data key and part number); into an unencrypted one, by
    /// the backend unless the source is encrypted.
    pub(super) async fn upload_part_copy(
        &mut self,
        body: ReqBody,
        encryption: &BucketEncryption,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let part = self.part_number()?;
        if encryption.is_on() {
            let dek = self.upload_data_key().await?;
            return self
                .copy_through(
                    encryption,
                    CopyTarget::Part {
                        part,
                        dek: Some(dek),
                    },
                )
                .await;
        }
        let state = match self.head_source().await {
            Ok(state) => state,
            Err(ReadError::Inner(e)) => return Ok(Routed::Backend(Err(e))),
            Err(ReadError::Encrypt(e)) => return Err(e),
        };
        self.backend_upload_id()?;
        match state {
            SourceState::Encrypted { .. } => {
                self.copy_through(encryption, CopyTarget::Part { part, dek: None })
                    .await
            }
            SourceState::Plain | SourceState::Unknown => {
                Ok(Routed::Backend(self.forward_plain(body).await))
            }
        }
    }

    pub(super) async fn complete_upload(
        &mut self,
        body: ReqBody,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let (_, upload) = self.backend_upload_id()?;
        let document = read_document(body).await?;
        let (rewritten, parts) = complete_document(&document)?;
        if let Err(refusal) = self.check_part_sizes(&upload.backend_id, parts).await {
            return match refusal {
                Refusal::Backend(result) => Ok(Routed::Backend(*result)),
                Refusal::Encrypt(e) => Err(e),
            };
        }
        let headers = &mut self.parts.headers;
        PlaintextChecks::strip_request_headers(headers);
        for name in WHOLE_OBJECT_HEADERS {
            headers.remove(name);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        let body = EncryptRequestBody::Buffered {
            body: http_body_util::Full::new(Bytes::from(rewritten)),
        };
        let result = self.send(body).await;
        Ok(Routed::Backend(result.map(|response| {
            let (mut parts, body) = response.into_parts();
            PlaintextChecks::strip_response_headers(&mut parts.headers);
            Response::from_parts(parts, EncryptResponseBody::Plain { body })
        })))
    }

    /// Before completing: every part but the last must hold the same number of whole
    /// segments, so that sizes stay exact and any replica can locate a part's segments
    /// (§8a). The stored part sizes come from the backend's ListParts.
    async fn check_part_sizes(
        &mut self,
        backend_id: &str,
        parts: u32,
    ) -> Result<(), Refusal<ResBody, S::Error>> {
        // Backends list parts in any order (s3s-fs: directory order): collect by number.
        let mut listed: BTreeMap<u32, u64> = BTreeMap::new();
        let mut marker = 0u32;
        while (1..=parts).any(|n| !listed.contains_key(&n)) {
            let mut list = self.s3().map_err(Refusal::Encrypt)?.clone();
            list.operation = S3Operation::ListParts;
            list.query = s3_core::Query::default();
            list.query.set("uploadId", backend_id);
            list.query.set("max-parts", "1000");
            if marker > 0 {
                list.query.set("part-number-marker", marker.to_string());
            }
            let response = self
                .send_own(Method::GET, list, HeaderMap::new())
                .await
                .map_err(|e| Refusal::Backend(Box::new(Err(e))))?;
            if response.status() != StatusCode::OK {
                return Err(Refusal::Backend(Box::new(Ok(
                    response.map(|body| EncryptResponseBody::Plain { body })
                ))));
            }
            let document = read_document(response.into_body())
                .await
                .map_err(Refusal::Encrypt)?;
            let mut page: Vec<(u32, u64)> = Vec::new();
            rewrite_listing(
                &document,
                ListingKind::ListParts,
                &mut |entry| {
                    page.push((entry.part_number.unwrap_or(0), entry.stored_size));
                    Ok(entry.stored_size)
                },
                &mut str::to_owned,
            )
            .map_err(Refusal::Encrypt)?;
            let Some(last) = page.iter().map(|&(number, _)| number).max() else {
                break;
            };
            listed.extend(page);
            if last <= marker {
                break;
            }
            marker = last;
        }
        let sizes: Vec<u64> = (1..=parts)
            .map_while(|number| listed.get(&number).copied())
            .collect();
        uniform_parts(&sizes, parts).map_err(Refusal::Encrypt)
    }

    pub(super) async fn abort_upload(
        &mut self,
        body: ReqBody,
    ) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        self.backend_upload_id()?;
        Ok(Routed::Backend(self.forward_plain(body).await))
    }

    pub(super) async fn list_parts(&mut self) -> Result<Routed<ResBody, S::Error>, EncryptError> {
        let (client_id, _) = self.backend_upload_id()?;
        let (parts, document) = match self.send_for_document(EncryptRequestBody::empty()).await? {
            Ok(answer) => answer,
            Err(passed_on) => return Ok(passed_on),
        };
        let rewritten = rewrite_listing_entries(
            &document,
            ListingKind::ListParts,
            &mut |entry| {
                Ok((
                    plaintext_size(entry.stored_size)?,
                    entry.etag.and_then(super::etag::client_etag),
                ))
            },
            &mut |_| client_id.clone(),
        )?;
        Ok(Routed::Answer(document_response(parts, rewritten)))
    }
}

/// Why a check refused: the layer's own error, or the backend's answer passed on.
enum Refusal<R, E> {
    Encrypt(EncryptError),
    Backend(Box<Result<super::Answer<R>, E>>),
}

/// The rule for the stored sizes of parts `1..=parts` (in order): all present, every one but
/// the last the same, whole segments, and each a valid segment stream.
fn uniform_parts(sizes: &[u64], parts: u32) -> Result<(), EncryptError> {
    const RULE: &str = "Every part of an encrypted multipart upload except the last must have the same size, a multiple of 64 KiB (65536 bytes)";
    if (sizes.len() as u64) < u64::from(parts) {
        return Err(EncryptError::InvalidPart(format!(
            "Part {} was not uploaded",
            sizes.len() + 1
        )));
    }
    let Some((last, rest)) = sizes.split_last() else {
        return Ok(());
    };
    let unit = ENCRYPTED_SEGMENT_SIZE as u64;
    if let Some(&first) = rest.first()
        && (first == 0 || first % unit != 0 || rest.iter().any(|&size| size != first))
    {
        return Err(EncryptError::InvalidPart(RULE.into()));
    }
    plaintext_size(*last).map_err(|_| EncryptError::InvalidPart(RULE.into()))?;
    Ok(())
}

/// Checks a `CompleteMultipartUpload` body and rewrites it for the backend: part numbers must
/// ascend and be consecutive from 1 (so every replica can locate a part's segments); the
/// parts' checksums (of the plaintext) are left out.
fn complete_document(document: &[u8]) -> Result<(Vec<u8>, u32), EncryptError> {
    let malformed = || EncryptError::MalformedXml("The XML you provided was not well-formed");
    let text = std::str::from_utf8(document).map_err(|_| malformed())?;
    let mut reader = Reader::from_str(text);
    let mut parts: Vec<(u32, String)> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut number: Option<u32> = None;
    let mut etag: Option<String> = None;
    let mut value = String::new();
    loop {
        match reader.read_event().map_err(|_| malformed())? {
            Event::Start(e) => {
                path.push(e.local_name().into_inner().to_owned());
                value.clear();
            }
            Event::End(_) => {
                if path.len() == 3 && path[1] == "Part" {
                    match path[2].as_str() {
                        "PartNumber" => {
                            number = Some(value.trim().parse().map_err(|_| malformed())?);
                        }
                        // The ETag clients were shown for the part, as the backend has it.
                        "ETag" => {
                            etag = Some(super::etag::backend_tag(&std::mem::take(&mut value)));
                        }
                        _ => {}
                    }
                }
                if path.len() == 2 && path[1] == "Part" {
                    parts.push((
                        number.take().ok_or_else(malformed)?,
                        etag.take().ok_or_else(malformed)?,
                    ));
                }
                path.pop();
                value.clear();
            }
            Event::Text(t) => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                value.push_str(&crate::listing::resolve(&r).map_err(|_| malformed())?);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(EncryptError::MalformedXml(
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    if parts.windows(2).any(|pair| pair[1].0 <= pair[0].0) {
        return Err(EncryptError::InvalidPartOrder);
    }
    if parts
        .iter()
        .enumerate()
        .any(|(i, (number, _))| u32::try_from(i + 1).ok() != Some(*number))
    {
        return Err(EncryptError::InvalidPart(
            "Parts of an encrypted multipart upload must be numbered 1, 2, 3... without gaps"
                .into(),
        ));
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for (number, etag) in &parts {
        out.push_str("<Part><PartNumber>");
        out.push_str(&number.to_string());
        out.push_str("</PartNumber><ETag>");
        out.push_str(&quick_xml::escape::escape(etag.as_str()));
        out.push_str("</ETag></Part>");
    }
    out.push_str("</CompleteMultipartUpload>");
    Ok((
        out.into_bytes(),
        u32::try_from(parts.len()).unwrap_or(u32::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn complete_bodies_are_checked_and_lose_their_checksums() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>&quot;a1&quot;</ETag><PartNumber>1</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
  <Part><PartNumber>2</PartNumber><ETag>"b2"</ETag></Part>
</CompleteMultipartUpload>"#;
        let (out, count) = complete_document(body).unwrap();
        assert_eq!(count, 2);
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with(
            "<Part><PartNumber>1</PartNumber><ETag>&quot;a1&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b2&quot;</ETag></Part></CompleteMultipartUpload>"
        ), "{out}");
        assert!(!out.contains("Checksum"));
    }

    #[test]
    fn parts_out_of_order_or_with_gaps_are_refused() {
        let doc = |numbers: &[u32]| {
            let mut s = String::from("<CompleteMultipartUpload>");
            for n in numbers {
                let _ = write!(s, "<Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part>");
            }
            s.push_str("</CompleteMultipartUpload>");
            s
        };
        assert_eq!(
            complete_document(doc(&[2, 1]).as_bytes()),
            Err(EncryptError::InvalidPartOrder)
        );
        assert!(matches!(
            complete_document(doc(&[1, 3]).as_bytes()),
            Err(EncryptError::InvalidPart(_))
        ));
        assert!(matches!(
            complete_document(doc(&[2]).as_bytes()),
            Err(EncryptError::InvalidPart(_))
        ));
        assert!(matches!(
            complete_document(doc(&[]).as_bytes()),
            Err(EncryptError::MalformedXml(_))
        ));
        assert!(matches!(
            complete_document(b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber>"),
            Err(EncryptError::MalformedXml(_))
        ));
        complete_document(doc(&[1, 2, 3]).as_bytes()).unwrap();
    }

    #[test]
    fn part_sizes_must_be_uniform_whole_segments_but_the_last() {
        let u = ENCRYPTED_SEGMENT_SIZE as u64;
        uniform_parts(&[80 * u, 80 * u, 37], 3).unwrap();
        uniform_parts(&[80 * u, 80 * u, 81 * u + 40], 3).unwrap();
        uniform_parts(&[80 * u, 32], 2).unwrap();
        uniform_parts(&[77], 1).unwrap();
        for (sizes, parts) in [
            (vec![80 * u, 81 * u, 5], 3),
            (vec![80 * u + 1, 80 * u + 1, 5], 3),
            (vec![80 * u, 80 * u], 3),
            (vec![80 * u, 7], 2),
        ] {
            assert!(
                matches!(
                    uniform_parts(&sizes, parts),
                    Err(EncryptError::InvalidPart(_))
                ),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn the_upload_id_is_replaced_escaped() {
        let doc = br#"<?xml version="1.0"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>a&amp;b</UploadId></InitiateMultipartUploadResult>"#;
        let out = super::super::rewrite_element_text(doc, "UploadId", |id| {
            assert_eq!(id, "a&b");
            Ok("a&b.tok".into())
        })
        .unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("<UploadId>a&amp;b.tok</UploadId>")
        );
    }
}
