//! Upload ids that carry their data key (architecture §8a, "Multipart without shared
//! state"): the id a client receives from `CreateMultipartUpload` is
//! `<backend upload id>.<token>`, where the token holds the KEK's name, the binding and the
//! wrapped data key, so any replica can encrypt any part without a shared store.
//!
//! The token ends with an HMAC-SHA256 (truncated to 16 bytes) keyed with the data key over
//! the backend id and the rest of the token: a wrapped key cannot be moved to another upload,
//! and a forged token is refused before a part is encrypted under a key the object's
//! envelope does not name.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::EncryptError;
use crate::format::DataKey;
use crate::kek::WrappedKey;
use crate::policy::Binding;

const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const MAC_LABEL: &[u8] = b"s3-tower/v1 upload id";

/// The key material an upload id carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadKey {
    /// The KEK's name.
    pub kek: String,
    /// What the data key is bound to.
    pub binding: Binding,
    /// The wrapped data key.
    pub wrapped: WrappedKey,
}

/// An upload id as a client sent it, split into the backend's id and, when it is one the
/// gateway issued, the key material and its MAC (to check once the data key is unwrapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUploadId {
    /// The backend's upload id.
    pub backend_id: String,
    /// The key material, if the id carries a token.
    pub key: Option<UploadKey>,
    body: Vec<u8>,
    mac: Vec<u8>,
}

fn mac_of(dek: &DataKey, backend_id: &str, body: &[u8]) -> [u8; MAC_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, dek.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(MAC_LABEL);
    ctx.update(
        &u32::try_from(backend_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    ctx.update(backend_id.as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
    out
}

fn push_field(out: &mut Vec<u8>, value: &[u8]) -> Result<(), EncryptError> {
    let len = u16::try_from(value.len())
        .map_err(|_| EncryptError::Config("a KEK name or wrapped key over 64 KiB".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// The upload id to give the client for `backend_id`, carrying `key` (wrapping `dek`).
pub fn issue(backend_id: &str, key: &UploadKey, dek: &DataKey) -> Result<String, EncryptError> {
    let mut body = vec![TOKEN_VERSION, binding_tag(key.binding)];
    push_field(&mut body, key.kek.as_bytes())?;
    push_field(&mut body, key.wrapped.as_str().as_bytes())?;
    let mac = mac_of(dek, backend_id, &body);
    body.extend_from_slice(&mac);
    Ok(format!("{backend_id}.{}", B64URL.encode(body)))
}

fn binding_tag(binding: Binding) -> u8 {
    match binding {
        Binding::None => 0,
        Binding::Bucket => 1,
        Binding::Object => 2,
    }
}

fn binding_from_tag(tag: u8) -> Option<Binding> {
    match tag {
        0 => Some(Binding::None),
        1 => Some(Binding::Bucket),
        2 => Some(Binding::Object),
        _ => None,
    }
}

/// Splits an upload id from a client. An id without a valid token is taken as a backend id
/// (as `ListMultipartUploads` lists them): good enough to list or abort, not to upload.
pub fn parse(client_id: &str) -> ClientUploadId {
    let bare = || ClientUploadId {
        backend_id: client_id.to_owned(),
        key: None,
        body: Vec::new(),
        mac: Vec::new(),
    };
    let Some((backend_id, token)) = client_id.rsplit_once('.') else {
        return bare();
    };
    let Ok(mut body) = B64URL.decode(token) else {
        return bare();
    };
    if body.len() < 2 + MAC_LEN || body[0] != TOKEN_VERSION || backend_id.is_empty() {
        return bare();
    }
    let mac = body.split_off(body.len() - MAC_LEN);
    let Some(key) = decode_body(&body) else {
        return bare();
    };
    ClientUploadId {
        backend_id: backend_id.to_owned(),
        key: Some(key),
        body,
        mac,
    }
}

fn decode_body(body: &[u8]) -> Option<UploadKey> {
    let binding = binding_from_tag(*body.get(1)?)?;
    let mut rest = body.get(2..)?;
    let mut field = || -> Option<String> {
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let value = rest.get(2..2 + len)?;
        rest = &rest[2 + len..];
        String::from_utf8(value.to_vec()).ok()
    };
    let kek = field()?;
    let wrapped = field()?;
    rest.is_empty().then_some(UploadKey {
        kek,
        binding,
        wrapped: WrappedKey::new(wrapped),
    })
}

impl ClientUploadId {
    /// Checks the token's MAC with the unwrapped data key.
    pub fn verify(&self, dek: &DataKey) -> Result<(), EncryptError> {
        let expected = mac_of(dek, &self.backend_id, &self.body);
        constant_time::verify_slices_are_equal(&expected, &self.mac)
            .map_err(|_| EncryptError::UnknownUpload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UploadKey {
        UploadKey {
            kek: "local:abcd".into(),
            binding: Binding::Object,
            wrapped: WrappedKey::new("s3t-local:v1:abcd:xyz"),
        }
    }

    #[test]
    fn issued_ids_parse_and_verify() {
        let dek = DataKey::generate();
        let backend = "2~a.b_c-d"; // dots inside backend ids are kept
        let id = issue(backend, &key(), &dek).unwrap();
        let parsed = parse(&id);
        assert_eq!(parsed.backend_id, backend);
        assert_eq!(parsed.key, Some(key()));
        parsed.verify(&dek).unwrap();
        assert_eq!(
            parsed.verify(&DataKey::generate()),
            Err(EncryptError::UnknownUpload)
        );
    }

    #[test]
    fn a_token_moved_to_another_upload_fails_its_mac() {
        let dek = DataKey::generate();
        let id = issue("upload-a", &key(), &dek).unwrap();
        let token = id.rsplit_once('.').unwrap().1;
        let moved = parse(&format!("upload-b.{token}"));
        assert_eq!(moved.backend_id, "upload-b");
        assert_eq!(moved.verify(&dek), Err(EncryptError::UnknownUpload));
    }

    #[test]
    fn ids_without_a_valid_token_are_bare_backend_ids() {
        for id in [
            "plain-upload-id",
            "with.dot",
            "x.!!!",
            ".AQA",
            "x.AQAAAA",
            &format!("x.{}", B64URL.encode([9u8; 40])),
        ] {
            let parsed = parse(id);
            assert_eq!(parsed.backend_id, id);
            assert_eq!(parsed.key, None);
        }
    }

    #[test]
    fn a_flipped_token_bit_is_refused() {
        let dek = DataKey::generate();
        let id = issue("u", &key(), &dek).unwrap();
        let (_, token) = id.rsplit_once('.').unwrap();
        let raw = B64URL.decode(token).unwrap();
        for i in 0..raw.len() {
            let mut flipped = raw.clone();
            flipped[i] ^= 1;
            let parsed = parse(&format!("u.{}", B64URL.encode(&flipped)));
            if parsed.key.is_some() {
                assert_eq!(parsed.verify(&dek), Err(EncryptError::UnknownUpload), "{i}");
            }
        }
    }
}
