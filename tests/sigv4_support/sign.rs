//! An independent AWS SigV4 signer for hand-built requests: header auth, presigned URLs, and
//! the chunk and trailer signatures of aws-chunked uploads.
//!
//! The canonical requests and strings to sign are written from the AWS documentation
//! ("Authenticating requests", "sigv4-streaming", "sigv4-streaming-trailers"); key derivation
//! and HMAC come from `aws-sigv4`. It shares no code with s3-auth, and
//! `signer_reproduces_the_aws_published_examples` pins it to the published signatures.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use bytes::Bytes;
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::crypto::{Checksum as _, Sha256};

/// Hex SHA-256 of the empty string.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `A-Z a-z 0-9 - _ . ~` stay as they are; everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`UNRESERVED`], keeping the `/` between path segments.
const UNRESERVED_PATH: &AsciiSet = &UNRESERVED.remove(b'/');

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::checksum(data)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// URI-encodes `s` the SigV4 way (for query names and values).
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The path of `key` in `bucket`, path-style, encoded once as S3 clients send it.
pub(crate) fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", utf8_percent_encode(key, UNRESERVED_PATH))
}

/// `YYYYMMDD'T'HHMMSS'Z'` of `time`.
pub(crate) fn amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Who signs, where and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub(crate) access_key: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) region: &'a str,
    pub(crate) time: SystemTime,
}

impl<'a> Signer<'a> {
    /// `access_key`/`secret` in `us-east-1`, now (to the second).
    pub(crate) fn new(access_key: &'a str, secret: &'a str) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        Self {
            access_key,
            secret,
            region: "us-east-1",
            time: UNIX_EPOCH + Duration::from_secs(now.as_secs()),
        }
    }

    /// The same signer at `time`.
    #[must_use]
    pub(crate) fn at(self, time: SystemTime) -> Self {
        Self { time, ..self }
    }

    pub(crate) fn amz_date(&self) -> String {
        amz_date(self.time)
    }

    /// `YYYYMMDD/region/s3/aws4_request`.
    pub(crate) fn scope(&self) -> String {
        format!("{}/{}/s3/aws4_request", &self.amz_date()[..8], self.region)
    }

    /// The hex signature of `algorithm \n date \n scope \n rest`, with the signing key and
    /// HMAC of `aws-sigv4` (this module writes only the strings to sign).
    fn sign(&self, algorithm: &str, rest: &str) -> String {
        let string_to_sign = format!("{algorithm}\n{}\n{}\n{rest}", self.amz_date(), self.scope());
        let key = generate_signing_key(self.secret, self.time, self.region, "s3");
        calculate_signature(key, string_to_sign.as_bytes())
    }

    /// The signature of a canonical request.
    pub(crate) fn request_signature(&self, canonical_request: &str) -> String {
        self.sign(
            "AWS4-HMAC-SHA256",
            &sha256_hex(canonical_request.as_bytes()),
        )
    }

    /// The signature of one aws-chunked chunk, chained from `previous`.
    pub(crate) fn chunk_signature(&self, previous: &str, data: &[u8]) -> String {
        self.sign(
            "AWS4-HMAC-SHA256-PAYLOAD",
            &format!("{previous}\n{EMPTY_SHA256}\n{}", sha256_hex(data)),
        )
    }

    /// The signature of the trailer headers, chained from the final chunk's signature.
    pub(crate) fn trailer_signature(&self, previous: &str, trailers: &[(&str, &str)]) -> String {
        let mut sorted: Vec<(String, &str)> = trailers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
            .collect();
        sorted.sort();
        let canonical = sorted.iter().fold(String::new(), |mut out, (name, value)| {
            let _ = writeln!(out, "{name}:{value}");
            out
        });
        self.sign(
            "AWS4-HMAC-SHA256-TRAILER",
            &format!("{previous}\n{}", sha256_hex(canonical.as_bytes())),
        )
    }
}

/// A request built by hand: what is signed is exactly what is sent, unless a test changes
/// it after signing.
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    pub(crate) method: http::Method,
    /// The path as sent (already encoded).
    pub(crate) path: String,
    /// Decoded query parameters, encoded the SigV4 way when sent.
    pub(crate) query: Vec<(String, String)>,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl RawRequest {
    /// `method path` to `host`, no query, no body.
    pub(crate) fn new(method: http::Method, path: &str, host: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: Vec::new(),
            headers: vec![("host".to_owned(), host.to_owned())],
            body: Bytes::new(),
        }
    }

    /// Adds a header (or replaces it, keeping its position).
    #[must_use]
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.headers.push((name, value.to_owned())),
        }
        self
    }

    /// Adds a query parameter (or replaces its value).
    #[must_use]
    pub(crate) fn query(mut self, name: &str, value: &str) -> Self {
        match self.query.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.query.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    #[must_use]
    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    #[must_use]
    pub(crate) fn path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.path);
        self
    }

    pub(crate) fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `path?query` as sent.
    pub(crate) fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query_string())
        }
    }

    /// The canonical request over every header present, and the signed header list.
    fn canonical_request(&self, payload_hash: &str) -> (String, String) {
        let mut query: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(n, v)| (encode(n), encode(v)))
            .collect();
        query.sort();
        let query = query
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        headers.sort();
        let canonical_headers = headers.iter().fold(String::new(), |mut out, (n, v)| {
            let _ = writeln!(out, "{n}:{v}");
            out
        });
        let signed = headers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{}\n{}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}",
            self.method, self.path
        );
        (canonical, signed)
    }

    /// Signs with an `Authorization` header covering every header present, with
    /// `x-amz-content-sha256: payload_hash`; returns the request and its (seed) signature.
    pub(crate) fn sign_with(self, signer: &Signer<'_>, payload_hash: &str) -> (Self, String) {
        let req = self
            .header("x-amz-date", &signer.amz_date())
            .header("x-amz-content-sha256", payload_hash);
        let (canonical, signed) = req.canonical_request(payload_hash);
        let signature = signer.request_signature(&canonical);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={signed},Signature={signature}",
            signer.access_key,
            signer.scope()
        );
        (req.header("authorization", &authorization), signature)
    }

    /// Signs with the SHA-256 of the body as the signed payload.
    #[must_use]
    pub(crate) fn sign(self, signer: &Signer<'_>) -> Self {
        let hash = sha256_hex(&self.body);
        self.sign_with(signer, &hash).0
    }

    /// Presigns (query auth, `UNSIGNED-PAYLOAD`) for `expires` seconds.
    #[must_use]
    pub(crate) fn presign(self, signer: &Signer<'_>, expires: u64) -> Self {
        let signed_headers = {
            let mut names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.join(";")
        };
        let req = self
            .query("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
            .query(
                "X-Amz-Credential",
                &format!("{}/{}", signer.access_key, signer.scope()),
            )
            .query("X-Amz-Date", &signer.amz_date())
            .query("X-Amz-Expires", &expires.to_string())
            .query("X-Amz-SignedHeaders", &signed_headers);
        let (canonical, _) = req.canonical_request("UNSIGNED-PAYLOAD");
        let signature = signer.request_signature(&canonical);
        req.query("X-Amz-Signature", &signature)
    }

    /// Changes the last hex digit of the signature (header or query).
    #[must_use]
    pub(crate) fn tamper_signature(mut self) -> Self {
        let flip = |s: &mut String| {
            let last = s.pop().unwrap();
            s.push(if last == '0' { '1' } else { '0' });
        };
        if let Some((_, value)) = self.headers.iter_mut().find(|(n, _)| n == "authorization") {
            flip(value);
        } else if let Some((_, value)) = self.query.iter_mut().find(|(n, _)| n == "X-Amz-Signature")
        {
            flip(value);
        } else {
            panic!("the request is not signed");
        }
        self
    }

    /// The request as hyper sends it (origin-form URI, headers as listed).
    pub(crate) fn into_http(self) -> http::Request<Full<Bytes>> {
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(self.path_and_query());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(Full::new(self.body)).unwrap()
    }
}

/// The S3 additional checksums the hand-built aws-chunked uploads carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checksum {
    Crc32,
    Crc32c,
}

impl Checksum {
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
        }
    }

    /// The checksum of `data` as S3 writes it: base64 of the big-endian CRC.
    pub(crate) fn of(self, data: &[u8]) -> String {
        // Reflected polynomials of CRC-32 (ISO-HDLC) and CRC-32C (Castagnoli).
        let poly: u32 = match self {
            Self::Crc32 => 0xEDB8_8320,
            Self::Crc32c => 0x82F6_3B78,
        };
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ poly
                } else {
                    crc >> 1
                };
            }
        }
        base64(&(!crc).to_be_bytes())
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
