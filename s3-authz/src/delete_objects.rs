//! The keys of a `DeleteObjects` request body, which the layer authorizes one by one.

use serde::Deserialize;

use crate::error::AuthzError;

/// `<Delete><Object><Key>..</Key><VersionId>..</VersionId></Object>...<Quiet>..</Quiet></Delete>`.
///
/// Unknown elements are refused rather than skipped: a backend whose parser reads them
/// differently could otherwise delete a key the policy never saw.
#[derive(Debug, Deserialize)]
#[serde(rename = "Delete", deny_unknown_fields)]
struct DeleteXml {
    #[serde(rename = "@xmlns", default)]
    _namespace: Option<String>,
    #[serde(rename = "Object", default)]
    objects: Vec<ObjectXml>,
    #[serde(rename = "Quiet", default)]
    _quiet: Option<String>,
}

/// One object; the conditional fields S3 accepts (`ETag`, `LastModifiedTime`, `Size`) are
/// allowed and passed on untouched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectXml {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId")]
    version_id: Option<String>,
    #[serde(rename = "ETag", default)]
    _etag: Option<String>,
    #[serde(rename = "LastModifiedTime", default)]
    _last_modified_time: Option<String>,
    #[serde(rename = "Size", default)]
    _size: Option<String>,
}

/// The most keys one `DeleteObjects` request may name (S3's limit).
pub(crate) const MAX_KEYS: usize = 1000;

/// The `(key, version)` pairs of a `DeleteObjects` body. A key over
/// [`s3_core::MAX_KEY_LEN`] bytes (`KeyTooLongError`) or with a dot segment
/// (`InvalidArgument`) refuses the whole body, as it would be refused in a path
/// ([`s3_core::Resource::check_object_key`], as [`AuthzError::InvalidKey`]).
pub(crate) fn parse(body: &[u8]) -> Result<Vec<(String, Option<String>)>, AuthzError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| AuthzError::MalformedXml("the body is not UTF-8".to_owned()))?;
    let delete: DeleteXml =
        quick_xml::de::from_str(text).map_err(|e| AuthzError::MalformedXml(e.to_string()))?;
    if delete.objects.is_empty() {
        return Err(AuthzError::MalformedXml("no Object to delete".to_owned()));
    }
    if delete.objects.len() > MAX_KEYS {
        return Err(AuthzError::MalformedXml(format!(
            "more than {MAX_KEYS} objects"
        )));
    }
    delete
        .objects
        .into_iter()
        .map(|o| {
            s3_core::Resource::check_object_key(&o.key).map_err(AuthzError::InvalidKey)?;
            Ok((o.key, o.version_id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_versions() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
<Object><Key>a/b.txt</Key></Object><Object><Key>c &amp; d</Key><VersionId>v1</VersionId></Object>
</Delete>"#;
        assert_eq!(
            parse(body).unwrap(),
            [
                ("a/b.txt".to_owned(), None),
                ("c & d".to_owned(), Some("v1".to_owned()))
            ]
        );
    }

    fn delete_body(key: &str) -> Vec<u8> {
        format!("<Delete><Object><Key>ok</Key></Object><Object><Key>{key}</Key></Object></Delete>")
            .into_bytes()
    }

    #[test]
    fn refuses_keys_over_1024_bytes() {
        let Err(AuthzError::InvalidKey(err)) =
            parse(&delete_body(&"k".repeat(s3_core::MAX_KEY_LEN + 1)))
        else {
            panic!("a 1025-byte key was accepted");
        };
        assert_eq!(err.code(), s3_core::S3ErrorCode::KeyTooLongError);
        assert_eq!(err.message(), "Your key is too long: at most 1024 bytes");
        // Counted in bytes, after XML unescaping: 342 three-byte characters.
        let Err(AuthzError::InvalidKey(err)) = parse(&delete_body(&"日".repeat(342))) else {
            panic!("a 1026-byte key was accepted");
        };
        assert_eq!(err.code(), s3_core::S3ErrorCode::KeyTooLongError);
        let Err(AuthzError::InvalidKey(err)) =
            parse(&delete_body(&format!("{}&amp;", "k".repeat(1024))))
        else {
            panic!("a 1025-byte key was accepted");
        };
        assert_eq!(err.code(), s3_core::S3ErrorCode::KeyTooLongError);
        // `&amp;` is one byte of the key.
        let keys = parse(&delete_body(&format!("{}&amp;", "k".repeat(1023)))).unwrap();
        assert_eq!(keys[1].0.len(), s3_core::MAX_KEY_LEN);
        let keys = parse(&delete_body(&"k".repeat(s3_core::MAX_KEY_LEN))).unwrap();
        assert_eq!(keys[1].0.len(), s3_core::MAX_KEY_LEN);
    }

    #[test]
    fn refuses_dot_segments_as_windows_and_servlets_read_them() {
        for key in [
            "a/../b", "a/.. /b", "a/ ../b", "a/. ", "..;/b", "a/.;x/b", "a/.",
        ] {
            let Err(AuthzError::InvalidKey(err)) = parse(&delete_body(key)) else {
                panic!("{key} was accepted");
            };
            assert_eq!(err.code(), s3_core::S3ErrorCode::InvalidArgument, "{key}");
        }
        assert!(parse(&delete_body("a/.../b")).is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_delete_list() {
        for body in [
            &b"<Delete></Delete>"[..],
            b"<Delete><Object></Object></Delete>",
            b"not xml",
            b"<Delete><Object><Key>a</Key></Object>",
        ] {
            assert!(
                matches!(parse(body), Err(AuthzError::MalformedXml(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
