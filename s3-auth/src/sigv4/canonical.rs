//! The SigV4 canonical request, built from the request exactly as it arrived.

use std::borrow::Cow;

use http::{HeaderMap, Method, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use s3_core::uri_encoding::{
    SIGV4_UNRESERVED as UNRESERVED, SIGV4_UNRESERVED_PATH as UNRESERVED_PATH,
};

use crate::error::AuthError;

/// How the canonical URI is derived from the path the client sent.
///
/// S3 signs the path as sent — already URI-encoded once, never normalised — and that is the
/// default. Other AWS services encode the path a second time and remove dot segments; those
/// modes exist for verifying such requests (and the generic SigV4 test suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriCanonicalization {
    /// Encode the sent path once more (`%` becomes `%25`), as non-S3 services sign.
    pub double_encode: bool,
    /// Remove `.` and `..` segments and merge repeated slashes before encoding.
    pub normalize: bool,
}

/// One query parameter, percent-decoded (`+` is a literal plus in SigV4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// Splits a raw query string into decoded parameters, decoded exactly as
/// [`s3_core::Query`] decodes them for every other layer (`+` is a space, escapes must be
/// well formed and UTF-8, no parameter twice), so the signature covers what the gateway acts
/// on. `acl` and `acl=` both give an empty value.
pub(crate) fn parse_query(raw: &str) -> Result<Vec<QueryParam>, AuthError> {
    let query = s3_core::Query::parse(raw).map_err(AuthError::InvalidQuery)?;
    Ok(query
        .iter()
        .map(|(name, value)| QueryParam {
            name: name.to_owned(),
            value: value.unwrap_or_default().to_owned(),
        })
        .collect())
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical query string: every parameter except `X-Amz-Signature` of a presigned URL,
/// name and value URI-encoded, sorted by name then value.
pub(crate) fn canonical_query(params: &[QueryParam], presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|p| !(presigned && p.name == "X-Amz-Signature"))
        .map(|p| (encode_component(&p.name), encode_component(&p.value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// `s` URI-encoded the SigV4 way; most components need no encoding and are copied as is.
fn encode_component(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        s.to_owned()
    } else {
        utf8_percent_encode(s, UNRESERVED).to_string()
    }
}

/// The canonical URIs to try for `uri`, most likely first.
///
/// S3 mode yields the path exactly as sent, then — when a client left characters unencoded
/// or used lower-case hex — the path decoded and re-encoded the SigV4 way. Both name the
/// same decoded key, so accepting either grants nothing extra.
pub(crate) fn canonical_uris(uri: &Uri, mode: UriCanonicalization) -> Vec<String> {
    let raw = match uri.path() {
        "" => "/",
        path => path,
    };
    let path: Cow<'_, str> = if mode.normalize {
        Cow::Owned(normalize_path(raw))
    } else {
        Cow::Borrowed(raw)
    };
    if mode.double_encode {
        return vec![utf8_percent_encode(&path, UNRESERVED_PATH).to_string()];
    }
    let reencoded = utf8_percent_encode(&decode(&path), UNRESERVED_PATH).to_string();
    if reencoded == path {
        vec![path.into_owned()]
    } else {
        vec![path.into_owned(), reencoded]
    }
}

/// Removes `.` and `..` segments and empty segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The value of a signed header: every occurrence trimmed, inner runs of whitespace
/// collapsed to one space, joined with `,`. `host` falls back to the URI authority (HTTP/2).
fn canonical_header_value(headers: &HeaderMap, uri: &Uri, name: &str) -> Result<String, AuthError> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        if name == "host"
            && let Some(authority) = uri.authority()
        {
            return Ok(authority.as_str().to_owned());
        }
        return Err(AuthError::SignedHeaderMissing(name.to_owned()));
    }
    let mut out = String::new();
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        let mut words = value.split_ascii_whitespace();
        if let Some(first) = words.next() {
            out.push_str(first);
            for word in words {
                out.push(' ');
                out.push_str(word);
            }
        }
    }
    Ok(out)
}

/// Everything but the path of a canonical request.
pub(crate) struct CanonicalParts<'a> {
    pub(crate) method: &'a Method,
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) uri: &'a Uri,
    pub(crate) signed_headers: &'a [String],
    pub(crate) payload_hash: &'a str,
}

impl CanonicalParts<'_> {
    /// The canonical request for `canonical_uri`.
    pub(crate) fn request(&self, canonical_uri: &str) -> Result<String, AuthError> {
        let mut out = String::with_capacity(512);
        out.push_str(self.method.as_str());
        out.push('\n');
        out.push_str(canonical_uri);
        out.push('\n');
        out.push_str(self.query);
        out.push('\n');
        for name in self.signed_headers {
            out.push_str(name);
            out.push(':');
            out.push_str(&canonical_header_value(self.headers, self.uri, name)?);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.signed_headers.join(";"));
        out.push('\n');
        out.push_str(self.payload_hash);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        let params =
            parse_query("prefix=a/b&list-type=2&acl&x=%7e+y&p=%2B&X-Amz-Signature=s").unwrap();
        // `+` is a space, as s3-core decodes it for the layers that act on the query.
        assert_eq!(
            canonical_query(&params, true),
            "acl=&list-type=2&p=%2B&prefix=a%2Fb&x=~%20y"
        );
        for bad in ["a=%zz", "a=%FF", "a=1&a=2"] {
            assert!(
                matches!(parse_query(bad), Err(AuthError::InvalidQuery(_))),
                "{bad}"
            );
        }
        assert_eq!(
            canonical_query(&params, false),
            "X-Amz-Signature=s&acl=&list-type=2&p=%2B&prefix=a%2Fb&x=~%20y"
        );
    }

    #[test]
    fn s3_paths_are_used_as_sent_then_reencoded() {
        let uri: Uri = "/bucket/a%2fb!c".parse().unwrap();
        assert_eq!(
            canonical_uris(&uri, UriCanonicalization::default()),
            ["/bucket/a%2fb!c", "/bucket/a/b%21c"]
        );
        let uri: Uri = "/bucket/a%20b".parse().unwrap();
        assert_eq!(
            canonical_uris(&uri, UriCanonicalization::default()),
            ["/bucket/a%20b"]
        );
        let uri: Uri = "/bucket/./a//b/../c/".parse().unwrap();
        assert_eq!(
            canonical_uris(&uri, UriCanonicalization::default())[0],
            "/bucket/./a//b/../c/"
        );
        let both = UriCanonicalization {
            double_encode: true,
            normalize: true,
        };
        assert_eq!(canonical_uris(&uri, both), ["/bucket/a/c/"]);
        let uri: Uri = "/a%3Ab".parse().unwrap();
        assert_eq!(canonical_uris(&uri, both), ["/a%253Ab"]);
    }

    #[test]
    fn header_values_are_trimmed_and_joined() {
        let mut headers = HeaderMap::new();
        headers.append("my-header", "  a   b ".parse().unwrap());
        headers.append("my-header", "c".parse().unwrap());
        let uri: Uri = "http://example.com/".parse().unwrap();
        assert_eq!(
            canonical_header_value(&headers, &uri, "my-header").unwrap(),
            "a b,c"
        );
        assert_eq!(
            canonical_header_value(&headers, &uri, "host").unwrap(),
            "example.com"
        );
        assert_eq!(
            canonical_header_value(&headers, &uri, "x-amz-date").unwrap_err(),
            AuthError::SignedHeaderMissing("x-amz-date".into())
        );
    }
}
