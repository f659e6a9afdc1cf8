//! Turning a client's request into the upstream request: strip every client credential and
//! hop-by-hop header, point it at the backend, and SigV4-sign it with the gateway's
//! credentials.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};
use percent_encoding::utf8_percent_encode;
use s3_core::uri_encoding::{SIGV4_UNRESERVED as AWS_QUERY, SIGV4_UNRESERVED_PATH as AWS_PATH};
use s3_core::{PRESIGN_PARAMS, S3Request};

use crate::backend::{Backend, BackendAddressing};
use crate::error::ResignError;

/// Headers that carry the client's credentials or signature; never forwarded.
const CLIENT_AUTH_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-security-token",
    "x-amz-date",
    "x-amz-content-sha256",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `expect` and `host`, which the upstream
/// connection sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "host",
];

/// How the body travels upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// `UNSIGNED-PAYLOAD`: the body as is.
    Unsigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked with a checksum trailer, passed
    /// through untouched.
    UnsignedTrailer,
}

fn payload_mode(headers: &HeaderMap) -> Result<Payload, ResignError> {
    let Some(value) = headers.get("x-amz-content-sha256") else {
        return Ok(Payload::Unsigned);
    };
    let value = value.as_bytes();
    if value == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
        Ok(Payload::UnsignedTrailer)
    } else if value.starts_with(b"STREAMING-") {
        // Chunk signatures are made with the client's key: only an authentication layer
        // that verifies and decodes them can hand the body on.
        Err(ResignError::UnsupportedPayload(
            "signed aws-chunked payloads must be decoded by an authentication layer before they are forwarded",
        ))
    } else {
        Ok(Payload::Unsigned)
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The upstream URI: the backend endpoint, the bucket by the backend's addressing style, the
/// key encoded once the way SigV4 canonicalises it, and the query without presign
/// parameters.
pub(crate) fn upstream_uri(s3: &S3Request, backend: &Backend) -> Result<Uri, ResignError> {
    let endpoint = backend.endpoint();
    let scheme = endpoint.scheme_str().unwrap_or("https");
    let authority = endpoint
        .authority()
        .ok_or_else(|| ResignError::Build("backend endpoint has no host".into()))?;
    let base_path = endpoint.path().trim_end_matches('/');

    let mut path = String::with_capacity(base_path.len() + s3.raw_path.len() + 16);
    path.push_str(base_path);
    let host = match (&s3.bucket, backend.addressing()) {
        (Some(bucket), BackendAddressing::Virtual) => format!("{bucket}.{authority}"),
        (Some(bucket), BackendAddressing::Path) => {
            path.push('/');
            path.push_str(bucket);
            authority.to_string()
        }
        (None, _) => authority.to_string(),
    };
    // `/bucket/key`, `/bucket` (path style, bucket operations), `/` (service, or the bucket
    // itself in virtual-hosted style).
    match &s3.key {
        Some(key) => {
            path.push('/');
            path.extend(utf8_percent_encode(key, AWS_PATH));
        }
        None if s3.bucket.is_some() && backend.addressing() == BackendAddressing::Path => {}
        None => path.push('/'),
    }

    let mut query = String::new();
    for (name, value) in s3.query.iter() {
        if PRESIGN_PARAMS.contains(&name) {
            continue;
        }
        if !query.is_empty() {
            query.push('&');
        }
        query.extend(utf8_percent_encode(name, AWS_QUERY));
        if let Some(value) = value {
            query.push('=');
            query.extend(utf8_percent_encode(value, AWS_QUERY));
        }
    }
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    Uri::builder()
        .scheme(scheme)
        .authority(host)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ResignError::Build(e.to_string()))
}

/// Rewrites `req` in place into the signed upstream request for `backend`: client
/// credentials and hop-by-hop headers removed, URI pointed at the backend (its addressing
/// style, the key encoded once, presign parameters dropped), SigV4-signed with
/// `credentials` at time `now`. [`ResignLayer`](crate::ResignLayer) calls this for every
/// request; it is public for callers with their own HTTP client.
pub fn prepare_upstream_request<B>(
    req: &mut Request<B>,
    s3: &S3Request,
    backend: &Backend,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<(), ResignError> {
    let payload = payload_mode(req.headers())?;
    let uri = upstream_uri(s3, backend)?;

    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    for name in CLIENT_AUTH_HEADERS {
        headers.remove(*name);
    }
    let host = uri
        .authority()
        .map(http::uri::Authority::as_str)
        .unwrap_or_default();
    headers.insert(
        header::HOST,
        HeaderValue::from_str(host).map_err(|e| ResignError::Build(e.to_string()))?,
    );
    *req.uri_mut() = uri;
    // The client may have come over HTTP/2; the backend connection negotiates its own
    // protocol, which an HTTP/2-only request would refuse on an HTTP/1.1 connection.
    *req.version_mut() = http::Version::HTTP_11;

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(backend.region())
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| ResignError::Signing(e.to_string()))?
        .into();

    let mut header_pairs = Vec::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let value = value.to_str().map_err(|_| {
            ResignError::InvalidHeader(format!("the value of header `{name}` is not visible ASCII"))
        })?;
        header_pairs.push((name.as_str(), value));
    }
    let body = match payload {
        Payload::Unsigned => SignableBody::UnsignedPayload,
        Payload::UnsignedTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
    };
    let uri_string = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri_string.as_str(),
        header_pairs.into_iter(),
        body,
    )
    .map_err(|e| ResignError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| ResignError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::BackendCredentials;
    use s3_core::S3RequestParser;

    fn backend(addressing: BackendAddressing, endpoint: &str) -> Backend {
        Backend::new(
            "b",
            endpoint,
            "eu-west-1",
            addressing,
            BackendCredentials::from_static("GATEWAYKEY", "gateway-secret", None),
        )
        .unwrap()
    }

    fn parse(req: &Request<()>) -> S3Request {
        S3RequestParser::new()
            .parse(req.method(), req.uri(), req.headers())
            .unwrap()
    }

    fn creds() -> Credentials {
        Credentials::new("GATEWAYKEY", "gateway-secret", None, None, "t")
    }

    #[test]
    fn path_style_uri_encodes_key_once_and_drops_presign_params() {
        let req = Request::get(
            "http://gw/bucket/a%20b/c+d/%E2%82%AC/..x?versionId=v%201&X-Amz-Signature=abc&X-Amz-Credential=k",
        )
        .body(())
        .unwrap();
        let s3 = parse(&req);
        let uri = upstream_uri(
            &s3,
            &backend(BackendAddressing::Path, "https://s3.example.com/base/"),
        )
        .unwrap();
        assert_eq!(
            uri.to_string(),
            "https://s3.example.com/base/bucket/a%20b/c%2Bd/%E2%82%AC/..x?versionId=v%201"
        );
    }

    #[test]
    fn virtual_style_uri_puts_bucket_in_host() {
        let req = Request::get("http://gw/bucket/k?uploads").body(()).unwrap();
        let s3 = parse(&req);
        let uri = upstream_uri(
            &s3,
            &backend(BackendAddressing::Virtual, "http://s3.local:9000"),
        )
        .unwrap();
        assert_eq!(uri.to_string(), "http://bucket.s3.local:9000/k?uploads");
    }

    #[test]
    fn bucket_and_service_operations_address_the_bucket_or_root() {
        let list = Request::get("http://gw/bucket?list-type=2")
            .body(())
            .unwrap();
        let virt = backend(BackendAddressing::Virtual, "http://s3.local:9000");
        assert_eq!(
            upstream_uri(&parse(&list), &virt).unwrap().to_string(),
            "http://bucket.s3.local:9000/?list-type=2"
        );
        let path = backend(BackendAddressing::Path, "http://s3.local:9000/base");
        assert_eq!(
            upstream_uri(&parse(&list), &path).unwrap().to_string(),
            "http://s3.local:9000/base/bucket?list-type=2"
        );
        let root = Request::get("http://gw/").body(()).unwrap();
        assert_eq!(
            upstream_uri(&parse(&root), &path).unwrap().to_string(),
            "http://s3.local:9000/base/"
        );
    }

    #[test]
    fn sigv2_presign_parameters_are_dropped() {
        let req = Request::get(
            "http://gw/bkt/f.txt?AWSAccessKeyId=K&Expires=1795700000&Signature=abc%3D&versionId=1",
        )
        .body(())
        .unwrap();
        let path = backend(BackendAddressing::Path, "http://s3.local:9000");
        assert_eq!(
            upstream_uri(&parse(&req), &path).unwrap().to_string(),
            "http://s3.local:9000/bkt/f.txt?versionId=1"
        );
    }

    #[test]
    fn client_credentials_and_hop_by_hop_headers_are_replaced() {
        let mut req = Request::put("http://gw/bucket/key?X-Amz-Signature=zzz")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/...")
            .header("x-amz-security-token", "client-token")
            .header("x-amz-date", "20200101T000000Z")
            .header("x-amz-content-sha256", "abcdef")
            .header("connection", "keep-alive, x-custom-hop")
            .header("x-custom-hop", "1")
            .header("proxy-authorization", "Basic xyz")
            .header("expect", "100-continue")
            .header("x-amz-meta-color", "blue")
            .header("content-length", "5")
            .body(())
            .unwrap();
        let s3 = parse(&req);
        prepare_upstream_request(
            &mut req,
            &s3,
            &backend(BackendAddressing::Path, "http://127.0.0.1:9000"),
            &creds(),
            SystemTime::now(),
        )
        .unwrap();
        let h = req.headers();
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=GATEWAYKEY/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/s3/aws4_request"));
        assert!(!auth.contains("CLIENTKEY"));
        assert!(h.get("x-amz-security-token").is_none());
        assert_eq!(h["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
        assert_ne!(h["x-amz-date"], "20200101T000000Z");
        for gone in [
            "connection",
            "x-custom-hop",
            "proxy-authorization",
            "expect",
        ] {
            assert!(h.get(gone).is_none(), "{gone} forwarded");
        }
        assert_eq!(h["host"], "127.0.0.1:9000");
        assert_eq!(h["x-amz-meta-color"], "blue");
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9000/bucket/key");
    }

    #[test]
    fn backend_session_token_is_sent() {
        let mut req = Request::get("http://gw/bucket/key").body(()).unwrap();
        let s3 = parse(&req);
        let creds = Credentials::new("ASIAGW", "s", Some("gw-token".into()), None, "t");
        prepare_upstream_request(
            &mut req,
            &s3,
            &backend(BackendAddressing::Path, "http://127.0.0.1:9000"),
            &creds,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(req.headers()["x-amz-security-token"], "gw-token");
    }

    #[test]
    fn unsigned_trailer_passes_through_and_signed_chunks_are_refused() {
        let mut req = Request::put("http://gw/bucket/key")
            .header("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            .header("content-encoding", "aws-chunked")
            .header("x-amz-trailer", "x-amz-checksum-crc32")
            .header("x-amz-decoded-content-length", "5")
            .body(())
            .unwrap();
        let s3 = parse(&req);
        let b = backend(BackendAddressing::Path, "http://127.0.0.1:9000");
        prepare_upstream_request(&mut req, &s3, &b, &creds(), SystemTime::now()).unwrap();
        assert_eq!(
            req.headers()["x-amz-content-sha256"],
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        );
        assert_eq!(req.headers()["x-amz-trailer"], "x-amz-checksum-crc32");
        assert_eq!(req.headers()["content-encoding"], "aws-chunked");

        let mut req = Request::put("http://gw/bucket/key")
            .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
            .body(())
            .unwrap();
        let s3 = parse(&req);
        assert!(matches!(
            prepare_upstream_request(&mut req, &s3, &b, &creds(), SystemTime::now()),
            Err(ResignError::UnsupportedPayload(_))
        ));
    }
}
