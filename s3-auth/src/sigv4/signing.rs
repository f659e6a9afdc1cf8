//! The SigV4 signing key of one request and the HMAC and SHA-256 primitives the verifier
//! and the aws-chunked decoder share.

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq;

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

    /// The lower-case hex signature of `string_to_sign`.
    pub(crate) fn sign_hex(&self, string_to_sign: &[u8]) -> String {
        hex::encode(hmac::sign(&self.key, string_to_sign).as_ref())
    }

    /// Whether `provided` (lower-case hex, as sent) is the signature of `string_to_sign`,
    /// compared in constant time.
    pub(crate) fn verify_hex(&self, string_to_sign: &[u8], provided: &str) -> bool {
        let expected = self.sign_hex(string_to_sign);
        expected.as_bytes().ct_eq(provided.as_bytes()).into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
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
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
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
}
