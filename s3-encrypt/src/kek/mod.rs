//! Key-encryption keys (KEKs): what wraps each object's data key (architecture §8).
//!
//! One object-safe trait, [`KeyEncryptionKey`], and its providers:
//!
//! - [`LocalKek`]: a 32-byte key file, for development (`--dev`);
//! - [`TransitKek`]: an OpenBao/Vault Transit key (`datakey/plaintext`, `decrypt`), with token or
//!   AppRole authentication;
//! - [`KmsKek`]: the AWS KMS API (`GenerateDataKey`, `Decrypt`) at any KMS-compatible endpoint;
//! - [`CachedKek`]: a bounded cache of unwrapped data keys in front of any of them.
//!
//! A provider never logs keys, tokens or data keys, and every copy of key material it holds is
//! zeroized when dropped.

mod cache;
mod kms;
mod local;
mod transit;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use cache::{CacheConfig, CachedKek};
pub use kms::{KmsConfig, KmsCredentials, KmsKek};
pub use local::LocalKek;
pub use transit::{TransitAuth, TransitConfig, TransitKek};

use crate::error::EncryptError;
use crate::format::DataKey;

/// The boxed future a [`KeyEncryptionKey`] returns.
pub type KekFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, EncryptError>> + Send + 'a>>;

/// What a data key is bound to when it is wrapped (architecture §8a, "Binding"): nothing, the
/// bucket, or the bucket and the object key. The same context must be given to unwrap it.
///
/// Transit receives it as the `context` of a derived key, KMS as the `EncryptionContext`
/// (`s3t-bucket`, `s3t-key`), the local KEK in the AEAD's associated data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum KeyContext {
    /// No binding: the wrapped key unwraps for any object (server-side copies keep it).
    #[default]
    None,
    /// Bound to a bucket.
    Bucket(String),
    /// Bound to a bucket and an object key.
    Object {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

impl KeyContext {
    /// Bound to `bucket`.
    pub fn bucket(bucket: impl Into<String>) -> Self {
        Self::Bucket(bucket.into())
    }

    /// Bound to `bucket` and `key`.
    pub fn object(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self::Object {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Whether there is no binding.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// The binding as name/value pairs (a KMS `EncryptionContext`): `s3t-bucket` and
    /// `s3t-key`; empty for [`KeyContext::None`].
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::None => Vec::new(),
            Self::Bucket(bucket) => vec![("s3t-bucket", bucket.as_str())],
            Self::Object { bucket, key } => {
                vec![("s3t-bucket", bucket.as_str()), ("s3t-key", key.as_str())]
            }
        }
    }

    /// An unambiguous byte encoding (a Transit `context`, the local KEK's associated data):
    /// empty for [`KeyContext::None`], else `"s3t-ctx1"`, a tag byte (`b` or `o`) and each
    /// field as a big-endian 32-bit length followed by its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, value: &str) {
            let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::new();
        match self {
            Self::None => {}
            Self::Bucket(bucket) => {
                out.extend_from_slice(b"s3t-ctx1b");
                field(&mut out, bucket);
            }
            Self::Object { bucket, key } => {
                out.extend_from_slice(b"s3t-ctx1o");
                field(&mut out, bucket);
                field(&mut out, key);
            }
        }
        out
    }
}

/// A data key as wrapped by a KEK: the string stored in `x-amz-meta-s3t-key`.
///
/// Transit: `vault:vN:<base64>`; KMS: the ciphertext blob in standard base64; local:
/// `s3t-local:v1:<key id>:<base64url(nonce || ciphertext || tag)>`. Not secret (it is useless
/// without the KEK), but never trusted: every provider authenticates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WrappedKey(String);

impl WrappedKey {
    /// A wrapped key as read from metadata.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The stored string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored string, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-encryption key: makes data keys and unwraps them again.
///
/// Errors: [`EncryptError::KeyServiceUnavailable`] when the key service cannot be reached,
/// times out or fails (5xx); [`EncryptError::KeyServiceRefused`] when it refuses (permissions,
/// unknown key); [`EncryptError::KeyUnwrap`] for a wrapped key that does not unwrap (tampered,
/// another KEK, another context); [`EncryptError::Config`] for a configuration that cannot work.
/// No provider retries forever: each call is bounded by its timeout.
pub trait KeyEncryptionKey: Send + Sync + 'static {
    /// The KEK's name, stored in `x-amz-meta-s3t-kek` (e.g. `transit:transit/app`,
    /// `kms:<key id>`, `local:<fingerprint>`). Two objects with the same name share the KEK,
    /// so a server-side copy between them keeps the ciphertext.
    fn name(&self) -> &str;

    /// A new random data key and its wrapped form, bound to `context`.
    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)>;

    /// The data key `wrapped` holds, if it was wrapped by this KEK with `context`.
    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey>;

    /// Startup validation: the key service is reachable, the credentials work, the key exists
    /// and may be used to make and unwrap data keys. Fails with a message that says what is
    /// wrong, so a gateway can refuse to start.
    fn check(&self) -> KekFuture<'_, ()>;
}

/// A shared or boxed KEK is a KEK: every call goes to the one it holds.
macro_rules! forward_kek {
    ($($pointer:ident),*) => {$(
        impl<T: KeyEncryptionKey + ?Sized> KeyEncryptionKey for $pointer<T> {
            fn name(&self) -> &str {
                (**self).name()
            }

            fn generate_data_key<'a>(
                &'a self,
                context: &'a KeyContext,
            ) -> KekFuture<'a, (DataKey, WrappedKey)> {
                (**self).generate_data_key(context)
            }

            fn unwrap<'a>(
                &'a self,
                wrapped: &'a WrappedKey,
                context: &'a KeyContext,
            ) -> KekFuture<'a, DataKey> {
                (**self).unwrap(wrapped, context)
            }

            fn check(&self) -> KekFuture<'_, ()> {
                (**self).check()
            }
        }
    )*};
}

forward_kek!(Arc, Box);

/// Refuses a plain `http://` key service on a host that is not this machine: its tokens and
/// the data keys it returns would cross the network in the clear. `allow_insecure_http`
/// opts out (a service mesh that encrypts the hop, a test network).
fn check_transport(
    what: &str,
    uri: &http::Uri,
    allow_insecure_http: bool,
) -> Result<(), EncryptError> {
    if uri.scheme_str() != Some("http") || allow_insecure_http {
        return Ok(());
    }
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    Err(EncryptError::Config(format!(
        "the {what} {uri} is plain http:// to another machine: tokens and data keys would travel in the clear; use https:// (or allow_insecure_http if the hop is protected otherwise)"
    )))
}

/// A data key from key-service bytes that must be exactly 32 long; the input is left for the
/// caller to zeroize.
fn data_key_from_slice(bytes: &[u8], what: &str) -> Result<DataKey, EncryptError> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(EncryptError::KeyServiceUnavailable(format!(
            "{what} returned a data key of {} bytes, not 32",
            bytes.len()
        )));
    }
    key.copy_from_slice(bytes);
    Ok(DataKey::from_bytes(*key))
}
