//! The SigV4 signing key of one request and the HMAC and SHA-256 primitives the verifier
//! and the aws-chunked decoder share.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq;

use crate::credentials::SecretKey;

/// Hex SHA-256 of the empty string: the `x-amz-content-sha256` of an empty body, and the
/// "previous payload" line of every chunk string-to-sign.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The key derived from a secret for one day, region and service
/// (`kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`).
///
/// Derivation is delegated to `aws-sigv4`; the derived key is held as an aws-lc-rs HMAC key,
/// which never prints its bytes.
#[derive(Clone)]
pub(crate) struct SigningKey {
    key: hmac::Key,
}

impl SigningKey {
    /// Derives the key for `secret` on the day of `time`.
    pub(crate) fn derive(secret: &str, time: SystemTime, region: &str, service: &str) -> Self {
        let derived = aws_sigv4::sign::v4::generate_signing_key(secret, time, region, service);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// Whether `provided` (64 lower-case hex digits, as sent) is the signature of
    /// `string_to_sign`, compared in constant time.
    pub(crate) fn verify_hex(&self, string_to_sign: &[u8], provided: &str) -> bool {
        let mut provided_bytes = [0u8; 32];
        if !is_lower_hex_64(provided)
            || hex::decode_to_slice(provided, &mut provided_bytes).is_err()
        {
            return false;
        }
        let expected = hmac::sign(&self.key, string_to_sign);
        expected.as_ref().ct_eq(provided_bytes.as_slice()).into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Derived signing keys by access key and scope, so a client's requests of one day share one
/// derivation (four HMACs) instead of paying it per request.
///
/// An entry is used only when the secret it was derived from equals the secret resolved for
/// this request (compared in constant time), so a rotated or revoked secret never reuses an
/// old key. The cache is bounded: when full it is emptied.
#[derive(Default)]
pub(crate) struct SigningKeyCache {
    entries: Mutex<HashMap<KeyScope, (SecretKey, SigningKey)>>,
}

/// The scope a signing key is derived for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyScope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

impl SigningKeyCache {
    /// The most entries kept.
    const CAPACITY: usize = 4096;

    /// The key for `secret` of `access_key_id` on `date` (`YYYYMMDD`, the day of `time`):
    /// cached, or derived and returned with the entry to [`SigningKeyCache::remember`] once a
    /// signature made with it has verified (so forged requests never fill the cache).
    pub(crate) fn get(
        &self,
        access_key_id: &str,
        secret: &SecretKey,
        (date, time): (&str, SystemTime),
        region: &str,
        service: &str,
    ) -> (SigningKey, Option<UnverifiedKey>) {
        let scope = KeyScope {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        };
        if let Ok(entries) = self.entries.lock()
            && let Some((cached_secret, key)) = entries.get(&scope)
            && bool::from(
                cached_secret
                    .expose()
                    .as_bytes()
                    .ct_eq(secret.expose().as_bytes()),
            )
        {
            return (key.clone(), None);
        }
        let key = SigningKey::derive(secret.expose(), time, region, service);
        let entry = UnverifiedKey {
            scope,
            secret: secret.clone(),
            key: key.clone(),
        };
        (key, Some(entry))
    }

    /// Caches a derived key whose signature has verified.
    pub(crate) fn remember(&self, entry: UnverifiedKey) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(entry.scope, (entry.secret, entry.key));
        }
    }
}

/// A derived key not cached yet: see [`SigningKeyCache::get`].
pub(crate) struct UnverifiedKey {
    scope: KeyScope,
    secret: SecretKey,
    key: SigningKey,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKeyCache(..)")
    }
}

/// What every signature of one request is bound to: the request time and the credential
/// scope, e.g. `20130524T000000Z` and `20130524/us-east-1/s3/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SigningScope {
    /// The request time, ISO 8601 basic format.
    pub(crate) amz_date: String,
    /// `date/region/service/aws4_request`.
    pub(crate) scope: String,
}

impl SigningScope {
    /// The string to sign of a request or a streaming element:
    /// `algorithm \n amz_date \n scope \n rest`.
    pub(crate) fn string_to_sign(&self, algorithm: &str, rest: &str) -> String {
        let mut s = String::with_capacity(
            algorithm.len() + self.amz_date.len() + self.scope.len() + rest.len() + 3,
        );
        s.push_str(algorithm);
        s.push('\n');
        s.push_str(&self.amz_date);
        s.push('\n');
        s.push_str(&self.scope);
        s.push('\n');
        s.push_str(rest);
        s
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    lower_hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Lower-case hex of a 32-byte digest or signature.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    match hex::encode_to_slice(bytes, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Not 32 bytes: the slow path still gives the right answer.
        Err(_) => hex::encode(bytes),
    }
}

/// Whether `s` is 64 lower-case hex digits (a SHA-256 or a SigV4 signature as sent).
pub(crate) fn is_lower_hex_64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the AWS documentation "Signature Calculations for the Authorization
    // Header: Transferring Payload in Multiple Chunks".
    #[test]
    fn derives_the_documented_seed_signature() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_hours(380_376);
        let key = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            time,
            "us-east-1",
            "s3",
        );
        let scope = SigningScope {
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
        };
        let canonical = "PUT\n/examplebucket/chunkObject.txt\n\ncontent-encoding:aws-chunked\ncontent-length:66824\nhost:s3.amazonaws.com\nx-amz-content-sha256:STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nx-amz-date:20130524T000000Z\nx-amz-decoded-content-length:66560\nx-amz-storage-class:REDUCED_REDUNDANCY\n\ncontent-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD";
        let sts = scope.string_to_sign("AWS4-HMAC-SHA256", &sha256_hex(canonical.as_bytes()));
        assert!(key.verify_hex(
            sts.as_bytes(),
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        ));
        assert!(!key.verify_hex(
            sts.as_bytes(),
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a8"
        ));
    }

    #[test]
    fn cached_keys_are_used_only_for_the_secret_they_were_derived_from() {
        let cache = SigningKeyCache::default();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_hours(380_376);
        let day = ("20130524", time);
        let message = b"string to sign";
        let key = |secret: &str| {
            let (key, unverified) =
                cache.get("AK", &SecretKey::new(secret), day, "us-east-1", "s3");
            if let Some(entry) = unverified {
                cache.remember(entry);
            }
            key
        };
        // Until remembered (its signature verified), a derived key is not cached.
        let secret = SecretKey::new("old-secret");
        assert!(cache.get("AK", &secret, day, "us-east-1", "s3").1.is_some());
        assert!(cache.get("AK", &secret, day, "us-east-1", "s3").1.is_some());
        let old = key("old-secret");
        assert!(cache.get("AK", &secret, day, "us-east-1", "s3").1.is_none());
        let expected_old = hmac::sign(&old.key, message);
        // Cached: the same key again.
        let again = key("old-secret");
        assert_eq!(
            hmac::sign(&again.key, message).as_ref(),
            expected_old.as_ref()
        );
        // A rotated secret for the same access key and day gets its own derivation.
        let new = key("new-secret");
        let fresh = SigningKey::derive("new-secret", time, "us-east-1", "s3");
        assert_eq!(
            hmac::sign(&new.key, message).as_ref(),
            hmac::sign(&fresh.key, message).as_ref()
        );
        assert_ne!(
            hmac::sign(&new.key, message).as_ref(),
            expected_old.as_ref()
        );
    }
}
