//! Rewriting the XML bodies of S3 listing responses, so that clients see plaintext sizes
//! and the gateway's own upload ids rather than what the backend stores.
//!
//! Encrypted objects and parts are stored larger than their plaintext (segment overhead),
//! and a multipart upload may be known to clients under an id other than the backend's.
//! A listing answered by the backend therefore has to be corrected before it reaches the
//! client: [`rewrite_listing`] changes exactly the targeted text nodes and copies every
//! other byte of the document through unchanged (declaration, namespaces, whitespace,
//! elements this module does not know), so nothing the backend says is lost.
//!
//! Listing bodies are bounded documents (at most 1000 entries), so the caller reads the
//! body whole (capped, e.g. at 16 MiB) and passes it here. The document is parsed with
//! quick-xml's streaming reader; the text nodes to change are located by their element
//! path (local names, namespace prefixes ignored) and their byte spans replaced in a copy
//! of the input. The callbacks are called only once the whole document has been parsed
//! and found well-formed, so the order of elements inside an entry (or of the top-level
//! fields) does not matter.

use std::ops::Range;

use quick_xml::Reader;
use quick_xml::escape::{partial_escape, resolve_xml_entity};
use quick_xml::events::{BytesRef, Event};

use crate::EncryptError;

/// Which listing operation a response body answers; it decides the root element expected
/// and which text nodes are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListingKind {
    /// `ListObjects` (v1): `ListBucketResult/Contents/Size` is rewritten.
    ListObjects,
    /// `ListObjectsV2`: `ListBucketResult/Contents/Size` is rewritten.
    ListObjectsV2,
    /// `ListObjectVersions`: `ListVersionsResult/Version/Size` is rewritten
    /// (`DeleteMarker` entries have no size and stay untouched).
    ListObjectVersions,
    /// `ListParts`: `ListPartsResult/Part/Size` is rewritten, and the top-level
    /// `ListPartsResult/UploadId` goes through the upload-id mapping.
    ListParts,
    /// `ListMultipartUploads`: `ListMultipartUploadsResult/Upload/UploadId` and the
    /// top-level `UploadIdMarker` / `NextUploadIdMarker` go through the upload-id mapping.
    ListMultipartUploads,
}

impl ListingKind {
    /// The local name of the document's root element.
    const fn root(self) -> &'static str {
        match self {
            Self::ListObjects | Self::ListObjectsV2 => "ListBucketResult",
            Self::ListObjectVersions => "ListVersionsResult",
            Self::ListParts => "ListPartsResult",
            Self::ListMultipartUploads => "ListMultipartUploadsResult",
        }
    }

    /// The local name of the root's children that carry a `<Size>` to rewrite.
    const fn sized_entry(self) -> Option<&'static str> {
        match self {
            Self::ListObjects | Self::ListObjectsV2 => Some("Contents"),
            Self::ListObjectVersions => Some("Version"),
            Self::ListParts => Some("Part"),
            Self::ListMultipartUploads => None,
        }
    }
}

/// One sized entry of a listing (a `<Contents>`, `<Version>` or `<Part>`), handed to the
/// size callback so that it can find the plaintext size of what the backend lists.
///
/// All strings are the element texts with entities resolved, exactly as in the document:
/// in particular a key listed with `EncodingType=url` is still URL-encoded (the caller
/// knows whether it asked for that encoding and decodes if needed), and an ETag keeps its
/// quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeEntry<'a> {
    /// Which listing the entry belongs to.
    pub kind: ListingKind,
    /// The size the backend lists, i.e. the stored (ciphertext) size.
    pub stored_size: u64,
    /// The object key: the entry's `<Key>` for objects and versions; for a part, the
    /// top-level `ListPartsResult/Key` of the upload. `None` if the document has none.
    pub key: Option<&'a str>,
    /// The entry's `<VersionId>` (`ListObjectVersions`), if present.
    pub version_id: Option<&'a str>,
    /// The entry's `<ETag>`, if present.
    pub etag: Option<&'a str>,
    /// The part's `<PartNumber>` (`ListParts`), if present.
    pub part_number: Option<u32>,
    /// For a part, the top-level `ListPartsResult/UploadId` as the backend sent it (the
    /// backend's id, before the upload-id mapping).
    pub upload_id: Option<&'a str>,
}

/// Rewrites the body of a listing response: every targeted `<Size>` gets the plaintext
/// size returned by `sizes`, every targeted upload id the id returned by `upload_ids`, and
/// every other byte stays as the backend sent it.
///
/// - `sizes` is called once per sized entry that has a `<Size>`, in document order, after
///   the whole document has been parsed; an error it returns aborts the rewrite and is
///   returned as is.
/// - `upload_ids` maps a backend upload id to the one clients see; it is called, in
///   document order after all `sizes` calls, for each targeted upload id that is not
///   empty (an empty marker such as `<UploadIdMarker></UploadIdMarker>` stays empty). The
///   id it returns is escaped for XML text.
///
/// A text node whose new value equals the old one keeps its original bytes (whitespace,
/// character references).
///
/// # Errors
///
/// [`EncryptError::Malformed`] for a body that is not well-formed UTF-8 XML, whose root
/// element is not the one `kind` answers with, or with a `<Size>` (or `<PartNumber>`) that
/// is not a number, a targeted field that contains markup or appears twice in an entry;
/// and any error returned by `sizes`.
pub fn rewrite_listing(
    body: &[u8],
    kind: ListingKind,
    sizes: &mut dyn FnMut(SizeEntry<'_>) -> Result<u64, EncryptError>,
    upload_ids: &mut dyn FnMut(&str) -> String,
) -> Result<Vec<u8>, EncryptError> {
    rewrite_listing_entries(
        body,
        kind,
        &mut |entry| sizes(entry).map(|size| (size, None)),
        upload_ids,
    )
}

/// What becomes of one listed entry: its size, and its new `<ETag>` text if it changes.
pub type EntryRewrite = (u64, Option<String>);

/// Like [`rewrite_listing`], with `entries` also giving a new `<ETag>` for the entry (the
/// text between the tags, quotes included, escaped when written); `None` keeps it.
///
/// # Errors
///
/// As [`rewrite_listing`].
pub fn rewrite_listing_entries(
    body: &[u8],
    kind: ListingKind,
    entries: &mut dyn FnMut(SizeEntry<'_>) -> Result<EntryRewrite, EncryptError>,
    upload_ids: &mut dyn FnMut(&str) -> String,
) -> Result<Vec<u8>, EncryptError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| EncryptError::Malformed("the listing is not valid UTF-8"))?;
    let doc = parse(text, kind)?;

    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    for entry in &doc.entries {
        let Some((span, stored_size)) = &entry.size else {
            continue;
        };
        let part = kind == ListingKind::ListParts;
        let (plaintext, etag) = entries(SizeEntry {
            kind,
            stored_size: *stored_size,
            key: if part {
                doc.top_key.as_deref()
            } else {
                entry.key.as_deref()
            },
            version_id: entry.version_id.as_deref(),
            etag: entry.etag.as_deref(),
            part_number: entry.part_number,
            upload_id: if part {
                doc.top_upload_id.as_deref()
            } else {
                None
            },
        })?;
        if plaintext != *stored_size {
            replacements.push((span.clone(), plaintext.to_string()));
        }
        if let (Some(etag), Some(etag_span)) = (etag, &entry.etag_span)
            && entry.etag.as_deref() != Some(etag.as_str())
        {
            replacements.push((etag_span.clone(), partial_escape(etag).into_owned()));
        }
    }
    for (span, id) in &doc.upload_ids {
        if id.is_empty() {
            continue;
        }
        let new = upload_ids(id);
        if new != *id {
            replacements.push((span.clone(), partial_escape(new).into_owned()));
        }
    }
    replacements.sort_by_key(|(span, _)| span.start);

    let mut out = Vec::with_capacity(body.len() + replacements.len() * 4);
    let mut copied = 0;
    for (span, new) in replacements {
        out.extend_from_slice(&body[copied..span.start]);
        out.extend_from_slice(new.as_bytes());
        copied = span.end;
    }
    out.extend_from_slice(&body[copied..]);
    Ok(out)
}

/// What parsing found: the sized entries, the upload ids to map, and the top-level fields
/// handed to the size callback.
#[derive(Default)]
struct Document {
    entries: Vec<Entry>,
    /// Spans (content of the element) and unescaped values of the upload ids to map.
    upload_ids: Vec<(Range<usize>, String)>,
    /// `ListPartsResult/Key`.
    top_key: Option<String>,
    /// `ListPartsResult/UploadId`, as the backend sent it.
    top_upload_id: Option<String>,
}

/// The fields of one sized entry.
#[derive(Default)]
struct Entry {
    /// The span of the `<Size>` content and its value.
    size: Option<(Range<usize>, u64)>,
    key: Option<String>,
    version_id: Option<String>,
    etag: Option<String>,
    /// The span of the `<ETag>` content.
    etag_span: Option<Range<usize>>,
    part_number: Option<u32>,
}

/// A text element whose value is collected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `<Size>` of a sized entry.
    Size,
    /// `<Key>` of a sized entry.
    Key,
    /// `<VersionId>` of a sized entry.
    VersionId,
    /// `<ETag>` of a sized entry.
    ETag,
    /// `<PartNumber>` of a sized entry.
    PartNumber,
    /// `ListPartsResult/Key`.
    TopKey,
    /// An upload id to map; for `ListPartsResult/UploadId` also the part context.
    UploadId {
        /// Whether this is `ListPartsResult/UploadId`.
        top_of_parts: bool,
    },
}

/// The text element being read: which field, where its content starts, its value so far.
struct Capture {
    field: Field,
    start: usize,
    value: String,
}

/// Which field, if any, an element opened at `path` (root first, the element last) is.
fn field_at(kind: ListingKind, path: &[String], in_entry: bool) -> Option<Field> {
    match (kind, path) {
        (_, [_, entry, name]) if in_entry && kind.sized_entry() == Some(entry.as_str()) => {
            match name.as_str() {
                "Size" => Some(Field::Size),
                "Key" => Some(Field::Key),
                "VersionId" => Some(Field::VersionId),
                "ETag" => Some(Field::ETag),
                "PartNumber" => Some(Field::PartNumber),
                _ => None,
            }
        }
        (ListingKind::ListParts, [_, name]) => match name.as_str() {
            "Key" => Some(Field::TopKey),
            "UploadId" => Some(Field::UploadId { top_of_parts: true }),
            _ => None,
        },
        (ListingKind::ListMultipartUploads, [_, name])
            if name == "UploadIdMarker" || name == "NextUploadIdMarker" =>
        {
            Some(Field::UploadId {
                top_of_parts: false,
            })
        }
        (ListingKind::ListMultipartUploads, [_, upload, name])
            if upload == "Upload" && name == "UploadId" =>
        {
            Some(Field::UploadId {
                top_of_parts: false,
            })
        }
        _ => None,
    }
}

/// The local name of a tag, namespace prefix removed.
fn local(name: &str) -> String {
    name.rsplit_once(':')
        .map_or(name, |(_, local)| local)
        .to_owned()
}

/// Converts a reader position (u64) to an index into the body.
fn index(position: u64) -> Result<usize, EncryptError> {
    usize::try_from(position).map_err(|_| EncryptError::Malformed("the listing is too large"))
}

/// The text an entity or character reference stands for.
pub(crate) fn resolve(reference: &BytesRef<'_>) -> Result<String, EncryptError> {
    let bad = || EncryptError::Malformed("the listing contains an unknown entity reference");
    if let Some(c) = reference.resolve_char_ref().map_err(|_| bad())? {
        return Ok(c.to_string());
    }
    resolve_xml_entity(reference)
        .map(str::to_owned)
        .ok_or_else(bad)
}

/// Parses the document and collects what [`rewrite_listing`] needs, checking that it is
/// well-formed and answers `kind`.
fn parse(text: &str, kind: ListingKind) -> Result<Document, EncryptError> {
    let mut reader = Reader::from_str(text);
    let mut doc = Document::default();
    let mut path: Vec<String> = Vec::new();
    let mut root_seen = false;
    let mut capture: Option<Capture> = None;
    let mut entry: Option<Entry> = None;

    loop {
        let before = index(reader.buffer_position())?;
        let event = reader
            .read_event()
            .map_err(|_| EncryptError::Malformed("the listing is not well-formed XML"))?;
        let after = index(reader.buffer_position())?;
        match &event {
            Event::Start(start) | Event::Empty(start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if capture.is_some() {
                    return Err(EncryptError::Malformed(
                        "a listing text field contains an element",
                    ));
                }
                let name = local(start.name().into_inner());
                if path.is_empty() {
                    if root_seen {
                        return Err(EncryptError::Malformed(
                            "the listing has more than one root element",
                        ));
                    }
                    if name != kind.root() {
                        return Err(EncryptError::Malformed(
                            "the listing's root element does not match the operation",
                        ));
                    }
                    root_seen = true;
                }
                path.push(name);
                if path.len() == 2 && kind.sized_entry() == Some(path[1].as_str()) {
                    entry = Some(Entry::default());
                }
                let field = field_at(kind, &path, entry.is_some());
                if is_empty {
                    // `<Size/>` is an empty, hence non-numeric, size; other empty fields
                    // have nothing to rewrite or report.
                    if field == Some(Field::Size) {
                        return Err(EncryptError::Malformed("a listed size is not a number"));
                    }
                    close(&mut path, &mut entry, &mut doc);
                } else if let Some(field) = field {
                    capture = Some(Capture {
                        field,
                        start: after,
                        value: String::new(),
                    });
                }
            }
            Event::End(_) => {
                if let Some(cap) = capture.take() {
                    finish(cap, before, entry.as_mut(), &mut doc)?;
                }
                if path.is_empty() {
                    return Err(EncryptError::Malformed(
                        "the listing has an unmatched end tag",
                    ));
                }
                close(&mut path, &mut entry, &mut doc);
            }
            Event::Text(t) => {
                if let Some(cap) = capture.as_mut() {
                    cap.value.push_str(&t.xml10_content());
                } else if path.is_empty() && !t.trim().is_empty() {
                    return Err(EncryptError::Malformed(
                        "the listing has text outside its root element",
                    ));
                }
            }
            Event::CData(c) => {
                if let Some(cap) = capture.as_mut() {
                    cap.value.push_str(&c.xml10_content());
                } else if path.is_empty() {
                    return Err(EncryptError::Malformed(
                        "the listing has text outside its root element",
                    ));
                }
            }
            Event::GeneralRef(r) => {
                let resolved = resolve(r)?;
                if let Some(cap) = capture.as_mut() {
                    cap.value.push_str(&resolved);
                } else if path.is_empty() {
                    return Err(EncryptError::Malformed(
                        "the listing has text outside its root element",
                    ));
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {
                if capture.is_some() {
                    return Err(EncryptError::Malformed(
                        "a listing text field contains markup",
                    ));
                }
            }
            Event::Eof => break,
        }
    }
    if !path.is_empty() {
        return Err(EncryptError::Malformed(
            "the listing ends inside an element",
        ));
    }
    if !root_seen {
        return Err(EncryptError::Malformed("the listing has no root element"));
    }
    Ok(doc)
}

/// Records a collected field whose content ends at `end`.
fn finish(
    cap: Capture,
    end: usize,
    entry: Option<&mut Entry>,
    doc: &mut Document,
) -> Result<(), EncryptError> {
    const DUPLICATE: EncryptError =
        EncryptError::Malformed("a listing field appears twice where it may appear once");
    fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), EncryptError> {
        if slot.is_some() {
            return Err(DUPLICATE);
        }
        *slot = Some(value);
        Ok(())
    }

    let span = cap.start..end;
    match (cap.field, entry) {
        (Field::Size, Some(entry)) => {
            let size = cap
                .value
                .trim()
                .parse::<u64>()
                .map_err(|_| EncryptError::Malformed("a listed size is not a number"))?;
            set(&mut entry.size, (span, size))
        }
        (Field::Key, Some(entry)) => set(&mut entry.key, cap.value),
        (Field::VersionId, Some(entry)) => set(&mut entry.version_id, cap.value),
        (Field::ETag, Some(entry)) => {
            set(&mut entry.etag_span, span)?;
            set(&mut entry.etag, cap.value)
        }
        (Field::PartNumber, Some(entry)) => {
            let number = cap
                .value
                .trim()
                .parse::<u32>()
                .map_err(|_| EncryptError::Malformed("a listed part number is not a number"))?;
            set(&mut entry.part_number, number)
        }
        (Field::TopKey, _) => set(&mut doc.top_key, cap.value),
        (Field::UploadId { top_of_parts }, _) => {
            if top_of_parts {
                set(&mut doc.top_upload_id, cap.value.clone())?;
            }
            doc.upload_ids.push((span, cap.value));
            Ok(())
        }
        // Entry fields are only collected inside an entry.
        (Field::Size | Field::Key | Field::VersionId | Field::ETag | Field::PartNumber, None) => {
            Ok(())
        }
    }
}

/// Closes the innermost open element; closing a sized entry records it.
fn close(path: &mut Vec<String>, entry: &mut Option<Entry>, doc: &mut Document) {
    path.pop();
    if path.len() == 1
        && let Some(done) = entry.take()
    {
        doc.entries.push(done);
    }
}
