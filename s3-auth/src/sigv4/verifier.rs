//! [`SigV4Verifier`]: checks the signature of a request's head and says how its body must be
//! verified.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::request::Parts;
use s3_core::{AuthMethod, Principal};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::checksum::ChecksumAlgorithm;
use crate::credentials::{CredentialRequest, CredentialResolver};
use crate::error::AuthError;
use crate::sigv4::authorization::{
    ALGORITHM, Presented, SignatureLocation, SignatureParams, read_signature,
};
use crate::sigv4::canonical::{
    CanonicalParts, QueryParam, UriCanonicalization, canonical_query, canonical_uris, parse_query,
};
use crate::sigv4::chunked::{ChunkSigning, ChunkedConfig};
use crate::sigv4::signing::{
    EMPTY_SHA256, SigningKeyCache, SigningScope, is_lower_hex_64, sha256_hex,
};

/// `YYYYMMDD'T'HHMMSS'Z'`, the SigV4 timestamp.
const AMZ_DATE: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// The clock skew S3 tolerates between a client and the server.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_mins(15);

const CONTENT_SHA256: &str = "x-amz-content-sha256";
const SECURITY_TOKEN: &str = "x-amz-security-token";
const DECODED_LENGTH: &str = "x-amz-decoded-content-length";
const TRAILER: &str = "x-amz-trailer";

/// How the body of a verified request is bound to its signature (`x-amz-content-sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadMode {
    /// The hex SHA-256 of the body; the body is hashed while it streams.
    Sha256(String),
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    Unsigned,
    /// aws-chunked with a signature per chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, with
    /// `trailer` for `...-PAYLOAD-TRAILER`).
    StreamingSigned {
        /// Whether a signed trailer follows the chunks.
        trailer: bool,
    },
    /// aws-chunked without chunk signatures, with a checksum trailer
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    fn parse(value: &str) -> Result<Self, AuthError> {
        Ok(match value {
            "UNSIGNED-PAYLOAD" => Self::Unsigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Self::StreamingSigned { trailer: false },
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Self::StreamingSigned { trailer: true },
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Self::StreamingUnsignedTrailer,
            hash if is_lower_hex_64(hash) => Self::Sha256(hash.to_owned()),
            _ => return Err(AuthError::InvalidContentSha256),
        })
    }

    /// Whether the body is aws-chunked.
    pub fn is_streaming(&self) -> bool {
        matches!(
            self,
            Self::StreamingSigned { .. } | Self::StreamingUnsignedTrailer
        )
    }
}

/// A request whose head is verified: who sent it, and what its body still has to satisfy.
#[derive(Debug)]
pub struct VerifiedRequest {
    /// The authenticated principal.
    pub principal: Principal,
    /// How the body is bound to the signature.
    pub payload: PayloadMode,
    pub(crate) chunk_signing: Option<ChunkSigning>,
}

impl VerifiedRequest {
    /// The configuration of the aws-chunked decoder for this request, read from its headers
    /// (`x-amz-decoded-content-length`, `x-amz-trailer`); `None` unless the body is
    /// aws-chunked.
    pub(crate) fn chunked_config(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<ChunkedConfig>, AuthError> {
        let trailer_signed = match self.payload {
            PayloadMode::StreamingSigned { trailer } => trailer,
            PayloadMode::StreamingUnsignedTrailer => false,
            PayloadMode::Sha256(_) | PayloadMode::Unsigned => {
                if headers.contains_key(TRAILER) {
                    return Err(AuthError::MalformedTrailer(
                        "x-amz-trailer needs an aws-chunked trailer payload mode",
                    ));
                }
                return Ok(None);
            }
        };
        let decoded_length = headers
            .get(DECODED_LENGTH)
            .ok_or(AuthError::MissingDecodedLength)?
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(AuthError::MalformedChunk(
                "x-amz-decoded-content-length is not a number",
            ))?;
        let trailer = match headers.get(TRAILER) {
            None => None,
            Some(value) => {
                let name = value.to_str().unwrap_or_default().trim();
                Some(ChecksumAlgorithm::from_header_name(name).ok_or_else(|| {
                    AuthError::UnsupportedTrailer(name.chars().take(64).collect())
                })?)
            }
        };
        let has_trailer_mode = matches!(
            self.payload,
            PayloadMode::StreamingSigned { trailer: true } | PayloadMode::StreamingUnsignedTrailer
        );
        if trailer.is_some() && !has_trailer_mode {
            return Err(AuthError::MalformedTrailer(
                "x-amz-trailer needs an aws-chunked trailer payload mode",
            ));
        }
        Ok(Some(ChunkedConfig {
            signing: self.chunk_signing.clone(),
            trailer_signed,
            trailer,
            decoded_length,
        }))
    }
}

/// Verifies SigV4 signatures — `Authorization` header and presigned URL — against secrets
/// from a [`CredentialResolver`].
///
/// The canonical request is built from the method, path and query exactly as sent, so keys
/// with any characters verify as their client signed them. Every `x-amz-*` header must be
/// signed, `host` must be signed, the request time must be within the allowed skew (or the
/// presigned URL within its lifetime), and signatures are compared in constant time.
#[derive(Clone)]
pub struct SigV4Verifier {
    resolver: Arc<dyn CredentialResolver>,
    service: String,
    region: Option<String>,
    max_skew: Duration,
    uri_mode: UriCanonicalization,
    require_content_sha256: bool,
    keys: Arc<SigningKeyCache>,
}

impl std::fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

impl SigV4Verifier {
    /// A verifier for S3 (`service` `s3`, any region, 15 minutes of skew).
    pub fn new(resolver: impl CredentialResolver) -> Self {
        Self::from_arc(Arc::new(resolver))
    }

    /// A verifier sharing an existing resolver.
    pub fn from_arc(resolver: Arc<dyn CredentialResolver>) -> Self {
        Self {
            resolver,
            service: "s3".to_owned(),
            region: None,
            max_skew: DEFAULT_MAX_SKEW,
            uri_mode: UriCanonicalization::default(),
            require_content_sha256: true,
            keys: Arc::new(SigningKeyCache::default()),
        }
    }

    /// The service name the credential scope must carry (default `s3`; `sts` for STS).
    #[must_use]
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Only accept signatures scoped to `region` (default: any region, as clients of
    /// non-AWS stores sign with whatever region they were given).
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The allowed difference between the request time and the clock (default 15 min).
    #[must_use]
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// How the canonical URI is derived (default: S3's, the path as sent).
    #[must_use]
    pub fn uri_canonicalization(mut self, mode: UriCanonicalization) -> Self {
        self.uri_mode = mode;
        self
    }

    /// Whether header-signed requests must carry `x-amz-content-sha256` (default true, as
    /// S3 requires). When not required and absent, the signed payload is the empty body.
    #[must_use]
    pub fn require_content_sha256(mut self, require: bool) -> Self {
        self.require_content_sha256 = require;
        self
    }

    /// Verifies the head of a request against the current time. `Ok(None)` means the
    /// request carries no credentials at all.
    pub async fn verify(&self, parts: &Parts) -> Result<Option<VerifiedRequest>, AuthError> {
        self.verify_at(parts, SystemTime::now()).await
    }

    /// [`SigV4Verifier::verify`] with an explicit clock, for tests and replays.
    pub async fn verify_at(
        &self,
        parts: &Parts,
        now: SystemTime,
    ) -> Result<Option<VerifiedRequest>, AuthError> {
        self.verify_inner(parts, None, now).await
    }

    /// Verifies a request whose whole (small) body has been read, as other AWS services
    /// than S3 sign it: over the body's SHA-256, with or without `x-amz-content-sha256`
    /// (STS `GetCallerIdentity`, a form POST). A header naming another hash, or
    /// `UNSIGNED-PAYLOAD`, is refused (`XAmzContentSHA256Mismatch`, `InvalidRequest`).
    pub async fn verify_with_body_at(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<VerifiedRequest>, AuthError> {
        let hash = sha256_hex(body);
        if let Some(value) = parts.headers.get(CONTENT_SHA256) {
            let value = value
                .to_str()
                .map_err(|_| AuthError::InvalidContentSha256)?;
            if !is_lower_hex_64(value) {
                return Err(AuthError::InvalidContentSha256);
            }
            if value != hash {
                return Err(AuthError::ContentSha256Mismatch);
            }
        }
        self.verify_inner(parts, Some(hash), now).await
    }

    async fn verify_inner(
        &self,
        parts: &Parts,
        body_hash: Option<String>,
        now: SystemTime,
    ) -> Result<Option<VerifiedRequest>, AuthError> {
        let query = parse_query(parts.uri.query().unwrap_or(""))?;
        let params = match read_signature(&parts.headers, &query)? {
            Presented::Anonymous => return Ok(None),
            Presented::SigV4(params) => params,
        };
        let presigned = params.location == SignatureLocation::Query;
        self.check_scope(&params)?;
        let (amz_date, time) = self.check_time(&params, &parts.headers, now)?;
        check_signed_headers(&params, &parts.headers)?;
        let payload_hash = match body_hash {
            Some(hash) => hash,
            None => self.payload_hash(&params, &parts.headers)?,
        };
        let payload = PayloadMode::parse(&payload_hash)?;

        // A presigned URL carries its token in the query; a (signed) header serves both.
        let token = match params.query_token.clone() {
            Some(token) => Some(token),
            None => parts
                .headers
                .get(SECURITY_TOKEN)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .map_err(|_| AuthError::InvalidToken)
                })
                .transpose()?,
        };
        let resolved = self
            .resolver
            .resolve(CredentialRequest {
                access_key_id: &params.credential.access_key_id,
                session_token: token.as_deref(),
            })
            .await?;

        let (key, unverified_key) = self.keys.get(
            &params.credential.access_key_id,
            &resolved.secret,
            (&params.credential.date, time),
            &params.credential.region,
            &params.credential.service,
        );
        let scope = SigningScope {
            amz_date,
            scope: params.credential.scope(),
        };
        let candidates = self.canonical_candidates(parts, &query, &params, &payload_hash)?;
        let verified = candidates.iter().any(|request| {
            let string_to_sign = scope.string_to_sign(ALGORITHM, &sha256_hex(request.as_bytes()));
            key.verify_hex(string_to_sign.as_bytes(), &params.signature)
        });
        if !verified {
            return Err(AuthError::SignatureMismatch);
        }
        if let Some(entry) = unverified_key {
            self.keys.remember(entry);
        }

        let mut principal = resolved.principal;
        principal.auth = if presigned {
            AuthMethod::Presigned
        } else {
            AuthMethod::SigV4
        };
        let chunk_signing =
            matches!(payload, PayloadMode::StreamingSigned { .. }).then(|| ChunkSigning {
                key,
                scope,
                seed_signature: params.signature.clone(),
            });
        Ok(Some(VerifiedRequest {
            principal,
            payload,
            chunk_signing,
        }))
    }

    /// The canonical requests (one per candidate URI form) the verifier would sign for
    /// `parts`, for diagnosing a `SignatureDoesNotMatch`. They hold header values, session
    /// tokens included: do not log them.
    pub fn canonical_requests(&self, parts: &Parts) -> Result<Vec<String>, AuthError> {
        let query = parse_query(parts.uri.query().unwrap_or(""))?;
        let Presented::SigV4(params) = read_signature(&parts.headers, &query)? else {
            return Ok(Vec::new());
        };
        let payload_hash = self.payload_hash(&params, &parts.headers)?;
        self.canonical_candidates(parts, &query, &params, &payload_hash)
    }

    /// The canonical request for each candidate form of the URI (see `canonical_uris`).
    fn canonical_candidates(
        &self,
        parts: &Parts,
        query: &[QueryParam],
        params: &SignatureParams,
        payload_hash: &str,
    ) -> Result<Vec<String>, AuthError> {
        let presigned = params.location == SignatureLocation::Query;
        let query_string = canonical_query(query, presigned);
        let canonical = CanonicalParts {
            method: &parts.method,
            query: &query_string,
            headers: &parts.headers,
            uri: &parts.uri,
            signed_headers: &params.signed_headers,
            payload_hash,
        };
        canonical_uris(&parts.uri, self.uri_mode)
            .iter()
            .map(|uri| canonical.request(uri))
            .collect()
    }

    /// The payload line of the canonical request.
    fn payload_hash(
        &self,
        params: &SignatureParams,
        headers: &HeaderMap,
    ) -> Result<String, AuthError> {
        let presigned = params.location == SignatureLocation::Query;
        match headers.get(CONTENT_SHA256) {
            Some(value) => value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| AuthError::InvalidContentSha256),
            // S3 signs presigned URLs over UNSIGNED-PAYLOAD; other services over the body's
            // hash, verifiable here for the empty body only (which the payload mode then
            // enforces).
            None if presigned && self.service == "s3" => Ok("UNSIGNED-PAYLOAD".to_owned()),
            None if presigned => Ok(EMPTY_SHA256.to_owned()),
            None if self.require_content_sha256 => Err(AuthError::MissingContentSha256),
            None => Ok(EMPTY_SHA256.to_owned()),
        }
    }

    fn check_scope(&self, params: &SignatureParams) -> Result<(), AuthError> {
        let credential = &params.credential;
        if credential.service != self.service {
            return Err(AuthError::WrongService {
                expected: self.service.clone(),
                found: credential.service.chars().take(32).collect(),
            });
        }
        if let Some(region) = &self.region
            && &credential.region != region
        {
            return Err(AuthError::WrongRegion {
                expected: region.clone(),
                found: credential.region.chars().take(32).collect(),
            });
        }
        Ok(())
    }

    /// Checks the request time against the clock and the scope date; returns the timestamp
    /// as signed and as a time.
    fn check_time(
        &self,
        params: &SignatureParams,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<(String, SystemTime), AuthError> {
        let amz_date = match (&params.query_date, params.location) {
            (Some(date), SignatureLocation::Query) => date.clone(),
            _ => headers
                .get("x-amz-date")
                .ok_or(AuthError::MissingDate)?
                .to_str()
                .map_err(|_| AuthError::InvalidDate)?
                .to_owned(),
        };
        let time = parse_amz_date(&amz_date)?;
        if amz_date[..8] != params.credential.date {
            return Err(AuthError::ScopeDateMismatch);
        }
        match params.expires {
            Some(expires) => {
                if time > now + self.max_skew {
                    return Err(AuthError::PresignNotYetValid);
                }
                if now > time + Duration::from_secs(expires) {
                    return Err(AuthError::PresignExpired);
                }
            }
            None => {
                let skew = match now.duration_since(time) {
                    Ok(behind) => behind,
                    Err(ahead) => ahead.duration(),
                };
                if skew > self.max_skew {
                    return Err(AuthError::TimeTooSkewed);
                }
            }
        }
        Ok((amz_date, time))
    }
}

/// `host` and every `x-amz-*` header present must be signed; signed headers must be present.
fn check_signed_headers(params: &SignatureParams, headers: &HeaderMap) -> Result<(), AuthError> {
    if !params.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::HostNotSigned);
    }
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-") && !params.signed_headers.iter().any(|h| h == name) {
            return Err(AuthError::UnsignedHeader(name.to_owned()));
        }
    }
    Ok(())
}

fn parse_amz_date(value: &str) -> Result<SystemTime, AuthError> {
    let parsed = time::PrimitiveDateTime::parse(value, AMZ_DATE)
        .map_err(|_| AuthError::InvalidDate)?
        .assume_utc();
    Ok(SystemTime::from(parsed))
}

/// Formats `time` as a SigV4 timestamp (`20130524T000000Z`).
pub fn format_amz_date(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(AMZ_DATE)
        .unwrap_or_default()
}
