//! The decoded query string of an S3 request.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::error::{S3Error, S3ErrorCode};

/// The query parameters of a request, decoded once, in the order sent.
///
/// Parameter names are unique: a repeated name is refused at parse time, because a policy
/// could check one value while the backend acts on the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, Option<String>)>,
}

impl Query {
    /// Decodes a raw query string (without the `?`). `+` is a space, as in HTML forms and as
    /// S3 reads it; `%XX` escapes are decoded once and must give UTF-8.
    pub fn parse(raw: &str) -> Result<Self, S3Error> {
        let mut pairs: Vec<(String, Option<String>)> = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (part, None),
            };
            let name = decode_component(name)?;
            if name.is_empty() {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidArgument,
                    "empty query parameter name",
                ));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidArgument,
                    format!("query parameter `{name}` is given more than once"),
                ));
            }
            let value = value.map(decode_component).transpose()?;
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// Whether the parameter is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The parameter's value; `Some("")` for `?name` and `?name=`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// All parameters in the order sent; `None` values are names sent without `=`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Parameter names in the order sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Sets a parameter's (decoded) value, replacing every earlier occurrence in place, or
    /// appending it. Layers that rewrite what goes upstream (an upload id the gateway
    /// wrapped) use it; the layer that forwards encodes the query again from these pairs.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = Some(value.into());
        let mut found = false;
        self.pairs.retain_mut(|(n, v)| {
            if n != name {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            v.clone_from(&value);
            true
        });
        if !found {
            self.pairs.push((name.to_owned(), value));
        }
    }

    /// Removes every occurrence of a parameter.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n != name);
    }
}

/// Whether `raw` has a `%` that is not followed by two hex digits.
pub(crate) fn has_malformed_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn decode_component(raw: &str) -> Result<String, S3Error> {
    if has_malformed_escape(raw) {
        return Err(S3Error::new(
            S3ErrorCode::InvalidURI,
            "the query string has a malformed percent-escape",
        ));
    }
    let plus_as_space: Cow<'_, str> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            S3Error::new(
                S3ErrorCode::InvalidURI,
                "query string does not decode to UTF-8",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_in_place_or_appends_and_remove_drops() {
        let mut q = Query::parse("partNumber=2&uploadId=abc.def&x").unwrap();
        q.set("uploadId", "abc");
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            [
                ("partNumber", Some("2")),
                ("uploadId", Some("abc")),
                ("x", None)
            ]
        );
        q.set("versionId", "v1");
        assert_eq!(q.get("versionId"), Some("v1"));
        assert_eq!(q.len(), 4);
        q.remove("x");
        assert!(!q.has("x"));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn decodes_names_values_and_plus() {
        let q = Query::parse("uploads&prefix=a%2Fb+c&x=").unwrap();
        assert_eq!(q.get("uploads"), Some(""));
        assert_eq!(q.get("prefix"), Some("a/b c"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("missing"), None);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn refuses_duplicates_and_bad_utf8() {
        assert_eq!(
            Query::parse("prefix=a&prefix=b").unwrap_err().code(),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            Query::parse("prefix=%ff").unwrap_err().code(),
            S3ErrorCode::InvalidURI
        );
        assert_eq!(
            Query::parse("=v").unwrap_err().code(),
            S3ErrorCode::InvalidArgument
        );
    }
}
