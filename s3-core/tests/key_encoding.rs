//! Property tests: an object key percent-encoded the way the AWS SDKs encode it parses back
//! to exactly the key, whatever it holds (`/`, `+`, spaces, `%`, `..` segments, unicode).

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::prelude::*;
use s3_core::{
    Addressing, MAX_KEY_LEN, S3ErrorCode, S3Operation, S3RequestParser, decode_key,
    parse_copy_source,
};

/// How the AWS SDKs encode a key in a path: every byte but the unreserved characters
/// `A-Za-z0-9-._~` (and `/`, unless `encode_slash`) as `%XX`, upper-case hex.
fn sdk_encode(key: &str, encode_slash: bool, lower_hex: bool) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for &b in key.as_bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else if lower_hex {
            write!(out, "%{b:02x}").unwrap();
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// Keys made of the characters that trip up key handling, plus arbitrary unicode.
fn key_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("+".to_owned()),
        Just(" ".to_owned()),
        Just("%".to_owned()),
        Just("%2F".to_owned()),
        Just("%25".to_owned()),
        Just("..".to_owned()),
        Just("../".to_owned()),
        Just("./".to_owned()),
        Just("//".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("~".to_owned()),
        "[a-zA-Z0-9._-]{1,8}",
        any::<char>().prop_map(String::from),
        "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 1..24)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("a key is 1 to 1024 bytes", |k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN
        })
}

fn parse_path(method: &Method, path: &str, host: Option<&str>) -> s3_core::S3Request {
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert("host", HeaderValue::from_str(host).unwrap());
    }
    let uri: Uri = path.parse().unwrap();
    S3RequestParser::new()
        .virtual_host_domain("s3.example.com")
        .parse(method, &uri, &headers)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sdk_encoded_keys_round_trip_path_style(key in key_strategy()) {
        let path = format!("/bucket/{}", sdk_encode(&key, false, false));
        let r = parse_path(&Method::GET, &path, None);
        prop_assert_eq!(r.operation, S3Operation::GetObject);
        prop_assert_eq!(r.bucket.as_deref(), Some("bucket"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(r.raw_path, path);
    }

    #[test]
    fn keys_with_slashes_encoded_round_trip(key in key_strategy(), lower in any::<bool>()) {
        let encoded = sdk_encode(&key, true, lower);
        prop_assert!(!encoded.contains('/'));
        let r = parse_path(&Method::PUT, &format!("/bucket/{encoded}"), None);
        prop_assert_eq!(r.operation, S3Operation::PutObject);
        prop_assert_eq!(r.bucket.as_deref(), Some("bucket"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn sdk_encoded_keys_round_trip_virtual_hosted(key in key_strategy()) {
        let path = format!("/{}", sdk_encode(&key, false, false));
        let r = parse_path(&Method::HEAD, &path, Some("photos.s3.example.com:443"));
        prop_assert_eq!(r.operation, S3Operation::HeadObject);
        prop_assert_eq!(r.addressing, Addressing::VirtualHosted);
        prop_assert_eq!(r.bucket.as_deref(), Some("photos"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn plus_in_a_path_stays_plus(key in key_strategy()) {
        // The key with every '+' left unescaped, as some clients send it.
        let path = format!("/bucket/{}", sdk_encode(&key, false, false).replace("%2B", "+"));
        let r = parse_path(&Method::GET, &path, None);
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(
            r.key.unwrap().matches('+').count(),
            key.matches('+').count()
        );
    }

    #[test]
    fn decode_key_inverts_sdk_encoding(key in key_strategy(), slash in any::<bool>()) {
        prop_assert_eq!(decode_key(&sdk_encode(&key, slash, false)).unwrap(), key);
    }

    #[test]
    fn copy_sources_round_trip(
        key in key_strategy(),
        slash in any::<bool>(),
        version in proptest::option::of("[A-Za-z0-9._+/=-]{1,20}"),
    ) {
        let mut value = format!("src-bucket/{}", sdk_encode(&key, slash, false));
        if let Some(v) = &version {
            value.push_str("?versionId=");
            value.push_str(&sdk_encode(v, true, false));
        }
        let cs = parse_copy_source(value.as_bytes()).unwrap();
        prop_assert_eq!(cs.bucket, "src-bucket");
        prop_assert_eq!(cs.key, key);
        prop_assert_eq!(cs.version_id, version);
    }

    #[test]
    fn sdk_encoded_prefixes_round_trip_in_the_query(prefix in key_strategy()) {
        let path = format!(
            "/bucket?list-type=2&prefix={}&encoding-type=url",
            sdk_encode(&prefix, true, false)
        );
        let r = parse_path(&Method::GET, &path, None);
        prop_assert_eq!(r.operation, S3Operation::ListObjectsV2);
        prop_assert_eq!(r.query.get("prefix"), Some(prefix.as_str()));
    }

    #[test]
    fn keys_over_1024_bytes_are_refused(
        key in "\\PC{1,400}".prop_filter("over the limit when repeated", |k| !k.is_empty()),
        extra in 1usize..64,
    ) {
        // Repeat the key until it is just over the limit.
        let mut long = key.repeat(MAX_KEY_LEN / key.len() + 1);
        while long.len() <= MAX_KEY_LEN {
            long.push('x');
        }
        long.push_str(&"y".repeat(extra));
        let uri: Uri = format!("/bucket/{}", sdk_encode(&long, false, false)).parse().unwrap();
        let err = S3RequestParser::new()
            .parse(&Method::GET, &uri, &HeaderMap::new())
            .unwrap_err();
        prop_assert_eq!(err.code(), S3ErrorCode::KeyTooLongError);
    }
}

#[test]
fn the_encoder_matches_what_the_sdks_sent() {
    // Shapes taken from the captures in fixtures/client_requests.json.
    assert_eq!(sdk_encode("a b+c.txt", false, false), "a%20b%2Bc.txt");
    assert_eq!(sdk_encode("100%.txt", false, false), "100%25.txt");
    assert_eq!(
        sdk_encode("~tilde*star'q(p)!", false, false),
        "~tilde%2Astar%27q%28p%29%21"
    );
    assert_eq!(
        sdk_encode(
            "\u{fc}n\u{ef}c\u{f8}d\u{e9}/\u{65e5}\u{672c}.txt",
            false,
            false
        ),
        "%C3%BCn%C3%AFc%C3%B8d%C3%A9/%E6%97%A5%E6%9C%AC.txt"
    );
    assert_eq!(sdk_encode("../etc/passwd", false, false), "../etc/passwd");
    assert_eq!(
        sdk_encode("photos/2024/a", true, false),
        "photos%2F2024%2Fa"
    );
}

#[test]
fn dot_segments_and_empty_segments_are_key_bytes() {
    for (path, key) in [
        ("/bucket/../etc/passwd", "../etc/passwd"),
        ("/bucket/dir/./x/../y", "dir/./x/../y"),
        ("/bucket/dir//double", "dir//double"),
        ("/bucket/trailing/", "trailing/"),
        ("/bucket//leading", "/leading"),
        ("/bucket/%2E%2E/x", "../x"),
    ] {
        let r = parse_path(&Method::GET, path, None);
        assert_eq!(r.key.as_deref(), Some(key), "{path}");
        assert_eq!(r.bucket.as_deref(), Some("bucket"), "{path}");
    }
}
