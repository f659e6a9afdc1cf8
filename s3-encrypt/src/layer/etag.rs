//! ETags of encrypted objects as clients see them.
//!
//! The backend's ETag of a single PUT is the MD5 of what it stored: the ciphertext. Clients
//! that take a 32-hex-digit ETag for the MD5 of the content (rclone, s3cmd, the AWS SDK for
//! Java v1) would find it does not match and report the object corrupted. So an encrypted
//! object's ETag that looks like an MD5 is shown with the suffix `-0`: still unique per
//! stored version, and shaped like a multipart ETag, which those clients know is no MD5.
//! No backend ETag ends in `-0` (a multipart ETag counts at least one part), so the suffix
//! is removed again from the entity tags of conditional requests without ambiguity.

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// The suffix added to MD5-shaped ETags of encrypted objects.
const SUFFIX: &str = "-0";

/// The conditional request headers whose entity tags are mapped back.
const CONDITIONS: [&str; 4] = [
    "if-match",
    "if-none-match",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
];

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ETag clients see for an encrypted object whose backend ETag is `stored`
/// (`"<md5>"` becomes `"<md5>-0"`); `None` when it is shown as it is.
pub(super) fn client_etag(stored: &str) -> Option<String> {
    let (weak, tag) = match stored.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", stored),
    };
    let quoted = tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"');
    let inner = if quoted { &tag[1..tag.len() - 1] } else { tag };
    if !is_md5_hex(inner) {
        return None;
    }
    Some(if quoted {
        format!("{weak}\"{inner}{SUFFIX}\"")
    } else {
        format!("{weak}{inner}{SUFFIX}")
    })
}

/// Shows the `ETag` header of an encrypted object's response as clients see it.
pub(super) fn show_etag(headers: &mut HeaderMap) {
    let shown = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(client_etag)
        .and_then(|e| HeaderValue::from_str(&e).ok());
    if let Some(value) = shown {
        headers.insert(header::ETAG, value);
    }
}

/// The backend's form of one entity tag from a conditional header or a
/// `CompleteMultipartUpload` body.
pub(super) fn backend_tag(tag: &str) -> String {
    let trimmed = tag.trim();
    let (weak, rest) = match trimmed.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", trimmed),
    };
    let quoted = rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"');
    let inner = if quoted {
        &rest[1..rest.len() - 1]
    } else {
        rest
    };
    match inner.strip_suffix(SUFFIX) {
        Some(md5) if is_md5_hex(md5) => {
            if quoted {
                format!("{weak}\"{md5}\"")
            } else {
                format!("{weak}{md5}")
            }
        }
        _ => trimmed.to_owned(),
    }
}

/// Maps the entity tags of conditional request headers back to the backend's ETags.
pub(super) fn map_conditions(headers: &mut HeaderMap) {
    for name in CONDITIONS {
        let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if !value.contains(SUFFIX) {
            continue;
        }
        let mapped: Vec<String> = value.split(',').map(backend_tag).collect();
        if let Ok(value) = HeaderValue::from_str(&mapped.join(", ")) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_shaped_etags_get_the_suffix_and_lose_it_in_conditions() {
        let md5 = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            client_etag(&format!("\"{md5}\"")),
            Some(format!("\"{md5}-0\""))
        );
        assert_eq!(client_etag(md5), Some(format!("{md5}-0")));
        assert_eq!(
            client_etag(&format!("W/\"{md5}\"")),
            Some(format!("W/\"{md5}-0\""))
        );
        // Multipart and other ETags are shown as they are.
        assert_eq!(client_etag(&format!("\"{md5}-3\"")), None);
        assert_eq!(client_etag("\"abc\""), None);

        let mut headers = HeaderMap::new();
        headers.insert(
            "if-none-match",
            HeaderValue::from_str(&format!("\"{md5}-0\", \"{md5}-2\", *")).unwrap(),
        );
        headers.insert(
            "x-amz-copy-source-if-match",
            HeaderValue::from_str(&format!("{md5}-0")).unwrap(),
        );
        headers.insert("if-match", HeaderValue::from_static("\"x-0\""));
        map_conditions(&mut headers);
        assert_eq!(
            headers["if-none-match"],
            format!("\"{md5}\", \"{md5}-2\", *").as_str()
        );
        assert_eq!(headers["x-amz-copy-source-if-match"], md5);
        assert_eq!(headers["if-match"], "\"x-0\"");
    }
}
