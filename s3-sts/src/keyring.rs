//! The session keyring: the AES-256-GCM keys that seal session tokens (the current key) and
//! open them (the current key and the previous ones, so keys rotate without downtime).
//!
//! # Token format (version 1)
//!
//! The session token is the URL-safe base64 (RFC 4648 §5, no padding) of:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 1 | key id length `L` (1–32) |
//! | `L` | key id (ASCII `[A-Za-z0-9_-]`) |
//! | 12 | nonce, random |
//! | rest | AES-256-GCM ciphertext of the session (compact JSON, secret included), then its 16-byte tag |
//!
//! The associated data is the version, length and key id bytes followed by the access key
//! id, so a token opens only with the access key id it was issued with. URL-safe base64
//! needs no escaping in a presigned URL's `X-Amz-Security-Token`, and the SDKs send the
//! header value as given. Tokens longer than [`MAX_SESSION_TOKEN_LEN`] characters are
//! refused before decoding.
//!
//! Nonces are random: keep issuing under one key well below 2³² sessions (rotate it).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use data_encoding::{BASE32_NOPAD, BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, Encoding};
use zeroize::Zeroizing;

use crate::error::StsError;
use crate::session::{
    IssuedCredentials, OpenedSession, PolicyCache, SessionClaims, WireIn, WireOut,
};

/// The longest session token, in characters, that is decoded at all (8 KiB).
pub const MAX_SESSION_TOKEN_LEN: usize = 8 * 1024;

/// The token format version this keyring writes and reads.
const VERSION: u8 = 1;
/// The longest key id.
const MAX_KEY_ID_LEN: usize = 32;
/// The AES-256-GCM tag length.
const TAG_LEN: usize = 16;
/// The token encoding.
const TOKEN_ENCODING: &Encoding = &BASE64URL_NOPAD;
/// The access key id prefix of temporary credentials, as AWS names them.
pub(crate) const SESSION_KEY_PREFIX: &str = "ASIA";

/// One 256-bit session key and its id; the bytes are wiped on drop and never printed.
pub struct SessionKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// A key from its bytes. `id` (1–32 characters of `[A-Za-z0-9_-]`) names the key in
    /// every token it seals, so that the keyring finds it again after a rotation.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Result<Self, StsError> {
        let key = Zeroizing::new(key);
        let id = id.into();
        check_key_id(&id)?;
        Ok(Self { id, key })
    }

    /// A key from standard or URL-safe base64 (padded or not, surrounding whitespace
    /// ignored) of exactly 32 bytes, as a configuration file or secret holds it.
    pub fn from_base64(id: impl Into<String>, encoded: &str) -> Result<Self, StsError> {
        let id = id.into();
        check_key_id(&id)?;
        let encoded = encoded.trim().as_bytes();
        let decoded = [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD]
            .iter()
            .find_map(|encoding| encoding.decode(encoded).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| StsError::Config(format!("session key {id:?} is not base64")))?;
        let key: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            StsError::Config(format!(
                "session key {id:?} is {} bytes; expected 32",
                decoded.len()
            ))
        })?;
        Self::new(id, key)
    }

    /// A fresh random key.
    pub fn generate(id: impl Into<String>) -> Result<Self, StsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        random(key.as_mut())?;
        Self::new(id, *key)
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as standard base64, to store a [`generate`](Self::generate)d key where
    /// [`from_base64`](Self::from_base64) reads it back. Handle it as a secret.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.key.as_ref()))
    }
}

fn check_key_id(id: &str) -> Result<(), StsError> {
    let valid = (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StsError::Config(format!(
            "session key id {id:?} must be 1 to {MAX_KEY_ID_LEN} characters of [A-Za-z0-9_-]"
        )))
    }
}

/// A key ready to seal and open.
struct RingKey {
    id: String,
    aead: LessSafeKey,
}

/// The session keys of a gateway: one current key that seals new tokens, and previous keys
/// that still open the tokens they sealed, so a key is rotated without downtime (make the
/// new key current and the old one previous; drop it once its last session has expired).
///
/// Every replica that holds the same keyring opens every token: no database.
pub struct SessionKeyring {
    /// The current key first, then the previous ones.
    keys: Vec<RingKey>,
    /// The session policies of opened tokens, parsed.
    policies: Arc<PolicyCache>,
}

impl fmt::Debug for SessionKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeyring")
            .field("current", &self.keys[0].id)
            .field(
                "previous",
                &self.keys[1..].iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SessionKeyring {
    /// The keyring sealing with `current` and also opening with `previous`; key ids must
    /// be unique.
    pub fn new(
        current: SessionKey,
        previous: impl IntoIterator<Item = SessionKey>,
    ) -> Result<Self, StsError> {
        let mut keys: Vec<RingKey> = Vec::new();
        for key in std::iter::once(current).chain(previous) {
            if keys.iter().any(|k| k.id == key.id) {
                return Err(StsError::Config(format!(
                    "session key id {:?} is configured twice",
                    key.id
                )));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, key.key.as_ref())
                .map_err(|_| StsError::Config("cannot load an AES-256-GCM key".into()))?;
            keys.push(RingKey {
                id: key.id.clone(),
                aead: LessSafeKey::new(unbound),
            });
        }
        Ok(Self {
            keys,
            policies: Arc::default(),
        })
    }

    /// The id of the key that seals new tokens.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Issues credentials for `claims`: a random `ASIA…` access key id, a random secret and
    /// the session token sealing both the claims and the secret under the current key,
    /// bound to the access key id.
    ///
    /// Fails with [`StsError::SessionTooLarge`] if the token would be longer than
    /// [`MAX_SESSION_TOKEN_LEN`] (too many or too long groups or claims), and with
    /// [`StsError::Internal`] if the system random generator fails or a time is before 1970.
    pub fn seal(&self, claims: &SessionClaims) -> Result<IssuedCredentials, StsError> {
        let access_key_id = new_access_key_id()?;
        let secret = new_secret()?;
        let wire = WireOut::new(claims, &secret)?;
        let expiration = wire.expiration();

        // Sized first, so the buffer holding the secret in clear never reallocates (and
        // leaves no copy behind); it is encrypted in place.
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, &wire).map_err(internal)?;
        let key = &self.keys[0];
        let header_len = 2 + key.id.len();
        let sealed_len = header_len + NONCE_LEN + counter.0 + TAG_LEN;
        if TOKEN_ENCODING.encode_len(sealed_len) > MAX_SESSION_TOKEN_LEN {
            return Err(StsError::SessionTooLarge);
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(sealed_len));
        buf.push(VERSION);
        // The id is 1–32 ASCII characters: its length fits a byte.
        buf.push(u8::try_from(key.id.len()).map_err(internal)?);
        buf.extend_from_slice(key.id.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        buf.extend_from_slice(&nonce);
        serde_json::to_writer(&mut *buf, &wire).map_err(internal)?;

        let aad = associated_data(&buf[..header_len], &access_key_id);
        let body_start = header_len + NONCE_LEN;
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[body_start..],
            )
            .map_err(|_| StsError::Internal("AES-256-GCM sealing failed".into()))?;
        buf.extend_from_slice(tag.as_ref());

        Ok(IssuedCredentials {
            access_key_id,
            secret_access_key: s3_auth::SecretKey::new(secret.as_str()),
            session_token: TOKEN_ENCODING.encode(&buf),
            expiration,
        })
    }

    /// Opens `session_token` presented with `access_key_id` at `now`.
    ///
    /// Errors: [`StsError::SessionTokenMalformed`] (too long, not base64, too short, another
    /// version), [`StsError::SessionKeyUnknown`] (sealed by a key not in this keyring),
    /// [`StsError::SessionTokenInvalid`] (tampered, truncated, or another access key id),
    /// [`StsError::SessionExpired`] (`now` at or after the expiry).
    pub fn open(
        &self,
        access_key_id: &str,
        session_token: &str,
        now: SystemTime,
    ) -> Result<OpenedSession, StsError> {
        if session_token.len() > MAX_SESSION_TOKEN_LEN {
            return Err(StsError::SessionTokenMalformed);
        }
        let mut buf = Zeroizing::new(
            TOKEN_ENCODING
                .decode(session_token.as_bytes())
                .map_err(|_| StsError::SessionTokenMalformed)?,
        );
        if buf.len() < 2 || buf[0] != VERSION {
            return Err(StsError::SessionTokenMalformed);
        }
        let id_len = usize::from(buf[1]);
        let header_len = 2 + id_len;
        let body_start = header_len + NONCE_LEN;
        if id_len == 0 || id_len > MAX_KEY_ID_LEN || buf.len() < body_start + TAG_LEN {
            return Err(StsError::SessionTokenMalformed);
        }
        let id = &buf[2..header_len];
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == id)
            .ok_or(StsError::SessionKeyUnknown)?;
        let nonce = Nonce::try_assume_unique_for_key(&buf[header_len..body_start])
            .map_err(|_| StsError::SessionTokenMalformed)?;
        let aad = associated_data(&buf[..header_len], access_key_id);
        let plaintext = key
            .aead
            .open_in_place(nonce, Aad::from(aad), &mut buf[body_start..])
            .map_err(|_| StsError::SessionTokenInvalid)?;
        let wire: WireIn =
            serde_json::from_slice(plaintext).map_err(|_| StsError::SessionTokenInvalid)?;
        wire.into_session(now, &self.policies)
    }
}

/// The header bytes (version, key id length, key id) then the access key id.
fn associated_data(header: &[u8], access_key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + access_key_id.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

/// `ASIA` and 16 base32 characters (80 random bits).
fn new_access_key_id() -> Result<String, StsError> {
    let mut bytes = [0u8; 10];
    random(&mut bytes)?;
    let mut id = String::with_capacity(20);
    id.push_str(SESSION_KEY_PREFIX);
    id.push_str(&BASE32_NOPAD.encode(&bytes));
    Ok(id)
}

/// 40 characters of `[A-Za-z0-9+/]`: the standard base64 of 30 random bytes.
fn new_secret() -> Result<Zeroizing<String>, StsError> {
    let mut bytes = Zeroizing::new([0u8; 30]);
    random(bytes.as_mut())?;
    Ok(Zeroizing::new(BASE64.encode(bytes.as_ref())))
}

fn random(dest: &mut [u8]) -> Result<(), StsError> {
    aws_lc_rs::rand::fill(dest)
        .map_err(|_| StsError::Internal("the system random generator failed".into()))
}

fn internal(err: impl fmt::Display) -> StsError {
    StsError::Internal(err.to_string())
}

/// Counts what serde_json would write.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
