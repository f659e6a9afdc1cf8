//! [`LocalKek`]: a key-encryption key in a local file, for development.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use super::{DataKey, KekFuture, KeyContext, KeyEncryptionKey, WrappedKey};
use crate::error::EncryptError;

/// The prefix of every wrapped key this KEK makes.
const PREFIX: &str = "s3t-local:v1:";
/// Nonce, wrapped data key, tag.
const SEALED_LEN: usize = NONCE_LEN + 32 + 16;
/// The start of the associated data of every wrap.
const AAD_LABEL: &[u8] = b"s3-tower/local-kek/v1\0";

/// A 256-bit key-encryption key read from a file: for development and tests (`--dev`), not for
/// production, where the KEK belongs in a key service.
///
/// Data keys are wrapped with AES-256-GCM under a random 96-bit nonce; the associated data binds
/// the key's fingerprint and the [`KeyContext`]. Wrapped keys look like
/// `s3t-local:v1:<fingerprint>:<base64url(nonce || ciphertext || tag)>`; the name is
/// `local:<fingerprint>` (16 hex digits of a SHA-256 of the key).
pub struct LocalKek {
    key: LessSafeKey,
    name: String,
    fingerprint: String,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LocalKek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, EncryptError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| EncryptError::Config("cannot use the local KEK".to_owned()))?;
        let mut label = Zeroizing::new(b"s3-tower/local-kek-id\0".to_vec());
        label.extend_from_slice(bytes);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &label);
        let fingerprint =
            digest.as_ref()[..8]
                .iter()
                .fold(String::with_capacity(16), |mut hex, b| {
                    use std::fmt::Write as _;
                    let _ = write!(hex, "{b:02x}");
                    hex
                });
        Ok(Self {
            key: LessSafeKey::new(unbound),
            name: format!("local:{fingerprint}"),
            fingerprint,
        })
    }

    /// Reads a key file: exactly 32 raw bytes, or the base64 (standard alphabet, padded or
    /// not, surrounding whitespace ignored) of 32 bytes. Anything else is refused.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, EncryptError> {
        let path = path.as_ref();
        let content = Zeroizing::new(std::fs::read(path).map_err(|e| {
            EncryptError::Config(format!("cannot read the KEK file {}: {e}", path.display()))
        })?);
        warn_if_readable_by_others(path);
        let mut key = Zeroizing::new([0u8; 32]);
        if content.len() == 32 {
            key.copy_from_slice(&content);
            return Self::from_bytes(&key);
        }
        let refuse = || {
            EncryptError::Config(format!(
                "the KEK file {} must hold a 256-bit key: 32 raw bytes or their base64",
                path.display()
            ))
        };
        let text = std::str::from_utf8(&content).map_err(|_| refuse())?.trim();
        let text = text.trim_end_matches('=');
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .map_err(|_| refuse())?,
        );
        if decoded.len() != 32 {
            return Err(refuse());
        }
        key.copy_from_slice(&decoded);
        Self::from_bytes(&key)
    }

    /// Makes a new random key file at `path` (base64, one line, mode 0600 on Unix; an existing
    /// file is never overwritten) and returns its KEK.
    pub fn generate_file(path: impl AsRef<Path>) -> Result<Self, EncryptError> {
        let path = path.as_ref();
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(key.as_mut())
            .map_err(|_| EncryptError::Config("no randomness for a new KEK".to_owned()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let fail = |e: std::io::Error| {
            EncryptError::Config(format!(
                "cannot create the KEK file {}: {e}",
                path.display()
            ))
        };
        let mut file = options.open(path).map_err(fail)?;
        let mut line = Zeroizing::new(STANDARD.encode(key.as_ref()));
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        Self::from_bytes(&key)
    }

    /// The KEK of the key file at `path`, made first with [`LocalKek::generate_file`] when
    /// there is none (for `--dev`).
    pub fn open_or_generate(path: impl AsRef<Path>) -> Result<Self, EncryptError> {
        let path = path.as_ref();
        if path.exists() {
            Self::from_file(path)
        } else {
            Self::generate_file(path)
        }
    }

    fn aad(&self, context: &KeyContext) -> Vec<u8> {
        let mut aad = AAD_LABEL.to_vec();
        aad.extend_from_slice(self.fingerprint.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&context.to_bytes());
        aad
    }

    fn wrap(&self, data_key: &DataKey, context: &KeyContext) -> Result<WrappedKey, EncryptError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| EncryptError::Config("no randomness for a nonce".to_owned()))?;
        // Becomes ciphertext and tag in place: zeroized in case sealing fails half-way.
        let mut in_out = Zeroizing::new(data_key.as_bytes().to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(context)),
                &mut *in_out,
            )
            .map_err(|_| EncryptError::Config("cannot wrap a data key".to_owned()))?;
        let mut sealed = Vec::with_capacity(SEALED_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(WrappedKey::new(format!(
            "{PREFIX}{}:{}",
            self.fingerprint,
            URL_SAFE_NO_PAD.encode(sealed.as_slice())
        )))
    }

    fn unwrap_now(
        &self,
        wrapped: &WrappedKey,
        context: &KeyContext,
    ) -> Result<DataKey, EncryptError> {
        let rest = wrapped
            .as_str()
            .strip_prefix(PREFIX)
            .ok_or(EncryptError::KeyUnwrap)?;
        let (fingerprint, sealed) = rest.split_once(':').ok_or(EncryptError::KeyUnwrap)?;
        if fingerprint != self.fingerprint {
            tracing::debug!(
                wrapped_by = fingerprint,
                kek = %self.name,
                "a data key wrapped by another local KEK"
            );
            return Err(EncryptError::KeyUnwrap);
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| EncryptError::KeyUnwrap)?;
        if sealed.len() != SEALED_LEN {
            return Err(EncryptError::KeyUnwrap);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EncryptError::KeyUnwrap)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.aad(context)), &mut in_out)
            .map_err(|_| EncryptError::KeyUnwrap)?;
        super::data_key_from_slice(plain, "the local KEK").map_err(|_| EncryptError::KeyUnwrap)
    }
}

impl KeyEncryptionKey for LocalKek {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(async move {
            let data_key = DataKey::generate();
            let wrapped = self.wrap(&data_key, context)?;
            Ok((data_key, wrapped))
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey> {
        Box::pin(async move { self.unwrap_now(wrapped, context) })
    }

    fn check(&self) -> KekFuture<'_, ()> {
        Box::pin(async move {
            let context = KeyContext::bucket("s3t-startup-check");
            let data_key = DataKey::generate();
            let wrapped = self.wrap(&data_key, &context)?;
            let back = self.unwrap_now(&wrapped, &context)?;
            if back.as_bytes() == data_key.as_bytes() {
                Ok(())
            } else {
                Err(EncryptError::Config(
                    "the local KEK does not unwrap what it wraps".to_owned(),
                ))
            }
        })
    }
}

/// Warns (once per load) when a key file is readable by group or others.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the KEK file is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
