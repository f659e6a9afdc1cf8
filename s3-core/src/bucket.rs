//! Bucket name rules.

use crate::error::{S3Error, S3ErrorCode};

/// Checks a bucket name against the S3 naming rules for general-purpose buckets: 3–63
/// characters of `a-z`, `0-9`, `.` and `-`, starting and ending with a letter or digit, no
/// `..`, not an IPv4 address, none of the reserved prefixes and suffixes.
///
/// Names with upper-case letters or `_` (legacy `us-east-1` buckets) are refused: they
/// cannot be addressed virtual-hosted style and some backends treat them differently.
pub fn validate_bucket_name(name: &str) -> Result<(), S3Error> {
    let invalid = |why: &str| {
        Err(S3Error::new(
            S3ErrorCode::InvalidBucketName,
            format!("The specified bucket is not valid: {why}"),
        )
        .with_resource(name.to_owned()))
    };
    if !(3..=63).contains(&name.len()) {
        return invalid("a bucket name is 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return invalid("only lower-case letters, digits, '.' and '-' are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return invalid("a bucket name starts and ends with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return invalid("adjacent periods or a period next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return invalid("a bucket name is not an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return invalid("reserved prefix");
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return invalid("reserved suffix");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in [
            "abc",
            "my-bucket",
            "my.bucket.1",
            "0bucket9",
            &"a".repeat(63),
        ] {
            assert!(validate_bucket_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        for name in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            ".bucket",
            "my..bucket",
            "my.-bucket",
            "192.168.1.1",
            "xn--bucket",
            "sthree-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "buck%2Fet",
            "bück",
        ] {
            let err = validate_bucket_name(name).unwrap_err();
            assert_eq!(err.code(), S3ErrorCode::InvalidBucketName, "{name}");
        }
    }
}
