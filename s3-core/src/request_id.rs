//! The request id every answer carries in `x-amz-request-id` and every log line names.

use std::fmt;

/// The response header S3 clients read the request id from.
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-amz-request-id");

/// A request id, stored in the request extensions by [`S3RequestLayer`](crate::S3RequestLayer)
/// so every layer logs and answers with the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Wraps an existing id (for example one set by an outer tracing layer).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A fresh random id: 16 upper-case hex characters, the shape S3 uses.
    pub fn random() -> Self {
        let mut id = uuid::Uuid::new_v4().simple().to_string();
        id.truncate(16);
        id.make_ascii_uppercase();
        Self(id)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_16_upper_hex_and_differ() {
        let a = RequestId::random();
        let b = RequestId::random();
        assert_eq!(a.as_str().len(), 16);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
