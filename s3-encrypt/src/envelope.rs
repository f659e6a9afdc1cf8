//! The envelope: what is stored next to an encrypted object in its user metadata
//! (`x-amz-meta-s3t-*`, architecture §8a) so that any replica can decrypt it — the format
//! version, the KEK's name, the wrapped data key, the binding, and the layout (one stream of
//! a known size, or the streams of a multipart upload).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::EncryptError;
use crate::kek::WrappedKey;
use crate::policy::Binding;

/// The prefix of every envelope header; clients may not send it.
pub const RESERVED_PREFIX: &str = "x-amz-meta-s3t-";

const VERSION: &str = "x-amz-meta-s3t-v";
const ALGORITHM: &str = "x-amz-meta-s3t-alg";
const KEK: &str = "x-amz-meta-s3t-kek";
const KEY: &str = "x-amz-meta-s3t-key";
const BINDING: &str = "x-amz-meta-s3t-bind";
const SIZE: &str = "x-amz-meta-s3t-size";
const LAYOUT: &str = "x-amz-meta-s3t-layout";

/// The algorithm name of the v1 format: AES-256-GCM segments of 64 KiB under HKDF-SHA256
/// stream keys.
pub const ALGORITHM_V1: &str = "AES256GCM-HKDFSHA256-64K";

/// S3's limit on user metadata: the UTF-8 bytes of every name (after `x-amz-meta-`) and value.
pub const USER_METADATA_LIMIT: usize = 2048;

/// How the object's plaintext is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredLayout {
    /// One stream (a single PUT) of this many plaintext bytes.
    Single {
        /// The plaintext size written at upload, cross-checked against the stored size.
        size: u64,
    },
    /// The part streams of a multipart upload, one after another.
    Multipart,
}

/// The envelope of one encrypted object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The KEK's name ([`crate::KeyEncryptionKey::name`]).
    pub kek: String,
    /// The wrapped data key.
    pub wrapped: WrappedKey,
    /// What the data key is bound to.
    pub binding: Binding,
    /// How the plaintext is stored.
    pub layout: StoredLayout,
}

impl Envelope {
    /// Reads the envelope from an object's headers: `Ok(None)` when the object has none (it
    /// was stored without encryption), an error when it is incomplete or unknown.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, EncryptError> {
        let text = |name: &str| -> Result<Option<&str>, EncryptError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| EncryptError::InvalidEnvelope("a value that is not text"))
                })
                .transpose()
        };
        let Some(version) = text(VERSION)? else {
            if headers
                .keys()
                .any(|name| name.as_str().starts_with(RESERVED_PREFIX))
            {
                return Err(EncryptError::InvalidEnvelope("no version"));
            }
            return Ok(None);
        };
        if version != "1" {
            return Err(EncryptError::InvalidEnvelope("an unknown version"));
        }
        if text(ALGORITHM)? != Some(ALGORITHM_V1) {
            return Err(EncryptError::InvalidEnvelope("an unknown algorithm"));
        }
        let kek = text(KEK)?.ok_or(EncryptError::InvalidEnvelope("no KEK name"))?;
        let wrapped = text(KEY)?.ok_or(EncryptError::InvalidEnvelope("no wrapped key"))?;
        let binding = text(BINDING)?
            .and_then(Binding::from_name)
            .ok_or(EncryptError::InvalidEnvelope("no valid binding"))?;
        let layout = match (text(LAYOUT)?, text(SIZE)?) {
            (Some("single"), Some(size)) => StoredLayout::Single {
                size: size
                    .parse()
                    .map_err(|_| EncryptError::InvalidEnvelope("a size that is not a number"))?,
            },
            (Some("multipart"), None) => StoredLayout::Multipart,
            _ => return Err(EncryptError::InvalidEnvelope("no valid layout")),
        };
        Ok(Some(Self {
            kek: kek.to_owned(),
            wrapped: WrappedKey::new(wrapped),
            binding,
            layout,
        }))
    }

    /// Writes the envelope into request headers (a PutObject or CreateMultipartUpload, or a
    /// copy that replaces metadata).
    pub fn write(&self, headers: &mut HeaderMap) -> Result<(), EncryptError> {
        let value = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| EncryptError::Config(format!("{v:?} cannot be stored in metadata")))
        };
        headers.insert(VERSION, HeaderValue::from_static("1"));
        headers.insert(ALGORITHM, HeaderValue::from_static(ALGORITHM_V1));
        headers.insert(KEK, value(&self.kek)?);
        headers.insert(KEY, value(self.wrapped.as_str())?);
        headers.insert(BINDING, HeaderValue::from_static(self.binding.as_str()));
        match self.layout {
            StoredLayout::Single { size } => {
                headers.insert(LAYOUT, HeaderValue::from_static("single"));
                headers.insert(SIZE, HeaderValue::from(size));
            }
            StoredLayout::Multipart => {
                headers.insert(LAYOUT, HeaderValue::from_static("multipart"));
                headers.remove(SIZE);
            }
        }
        Ok(())
    }
}

/// Refuses a request that sets `x-amz-meta-s3t-*` itself.
pub fn refuse_reserved_metadata(headers: &HeaderMap) -> Result<(), EncryptError> {
    if headers
        .keys()
        .any(|name| name.as_str().starts_with(RESERVED_PREFIX))
    {
        return Err(EncryptError::ReservedMetadata);
    }
    Ok(())
}

/// Removes the envelope from response headers: clients never see it.
pub fn strip_envelope(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Checks S3's 2 KiB user-metadata limit on request headers that already hold the envelope.
pub fn check_metadata_budget(headers: &HeaderMap) -> Result<(), EncryptError> {
    let used: usize = headers
        .iter()
        .filter_map(|(name, value)| {
            name.as_str()
                .strip_prefix("x-amz-meta-")
                .map(|short| short.len() + value.len())
        })
        .sum();
    if used > USER_METADATA_LIMIT {
        return Err(EncryptError::MetadataTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(layout: StoredLayout) -> Envelope {
        Envelope {
            kek: "transit:transit/app".into(),
            wrapped: WrappedKey::new("vault:v1:abc"),
            binding: Binding::Bucket,
            layout,
        }
    }

    #[test]
    fn round_trips_both_layouts() {
        for layout in [StoredLayout::Single { size: 42 }, StoredLayout::Multipart] {
            let mut headers = HeaderMap::new();
            envelope(layout).write(&mut headers).unwrap();
            assert_eq!(
                Envelope::from_headers(&headers).unwrap(),
                Some(envelope(layout))
            );
            check_metadata_budget(&headers).unwrap();
            assert_eq!(
                refuse_reserved_metadata(&headers),
                Err(EncryptError::ReservedMetadata)
            );
            strip_envelope(&mut headers);
            assert!(headers.is_empty());
        }
    }

    #[test]
    fn no_envelope_is_none_and_partial_ones_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-meta-owner", HeaderValue::from_static("x"));
        assert_eq!(Envelope::from_headers(&headers).unwrap(), None);

        let mut full = HeaderMap::new();
        envelope(StoredLayout::Single { size: 1 })
            .write(&mut full)
            .unwrap();
        for (name, why) in [
            (VERSION, "no version"),
            (KEK, "no KEK name"),
            (KEY, "no wrapped key"),
            (BINDING, "no valid binding"),
            (SIZE, "no valid layout"),
            (LAYOUT, "no valid layout"),
        ] {
            let mut headers = full.clone();
            headers.remove(name);
            assert_eq!(
                Envelope::from_headers(&headers),
                Err(EncryptError::InvalidEnvelope(why)),
                "{name}"
            );
        }
        for (name, value, why) in [
            (VERSION, "2", "an unknown version"),
            (ALGORITHM, "AES128", "an unknown algorithm"),
            (BINDING, "tenant", "no valid binding"),
            (SIZE, "-1", "a size that is not a number"),
        ] {
            let mut headers = full.clone();
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(
                Envelope::from_headers(&headers),
                Err(EncryptError::InvalidEnvelope(why)),
                "{name}"
            );
        }
    }

    #[test]
    fn metadata_budget_counts_names_and_values() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-meta-a",
            HeaderValue::from_str(&"v".repeat(2047)).unwrap(),
        );
        check_metadata_budget(&headers).unwrap();
        headers.insert("x-amz-meta-bb", HeaderValue::from_static(""));
        assert_eq!(
            check_metadata_budget(&headers),
            Err(EncryptError::MetadataTooLarge)
        );
    }
}
