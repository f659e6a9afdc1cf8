//! Property tests: an object key percent-encoded the way the AWS SDKs encode it parses back
//! to exactly the key, whatever it holds (`/`, `+`, spaces, `%`, dots, unicode) — unless it
//! has a `.` or `..` path segment, which is refused however it is spelled.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::prelude::*;
use s3_core::{
    Addressing, MAX_KEY_LEN, S3ErrorCode, S3Operation, S3RequestParser, check_key_segments,
    check_prefix_segments, decode_key, parse_copy_source,
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

/// [`key_strategy`] without the keys the parser refuses for a dot segment.
fn forwardable_key_strategy() -> impl Strategy<Value = String> {
    key_strategy().prop_filter("no '.' or '..' segment", |k| check_key_segments(k).is_ok())
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
    fn sdk_encoded_keys_round_trip_path_style(key in forwardable_key_strategy()) {
        let path = format!("/bucket/{}", sdk_encode(&key, false, false));
        let r = parse_path(&Method::GET, &path, None);
        prop_assert_eq!(r.operation, S3Operation::GetObject);
        prop_assert_eq!(r.bucket.as_deref(), Some("bucket"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(r.raw_path, path);
    }

    #[test]
    fn keys_with_slashes_encoded_round_trip(key in forwardable_key_strategy(), lower in any::<bool>()) {
        let encoded = sdk_encode(&key, true, lower);
        prop_assert!(!encoded.contains('/'));
        let r = parse_path(&Method::PUT, &format!("/bucket/{encoded}"), None);
        prop_assert_eq!(r.operation, S3Operation::PutObject);
        prop_assert_eq!(r.bucket.as_deref(), Some("bucket"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn sdk_encoded_keys_round_trip_virtual_hosted(key in forwardable_key_strategy()) {
        let path = format!("/{}", sdk_encode(&key, false, false));
        let r = parse_path(&Method::HEAD, &path, Some("photos.s3.example.com:443"));
        prop_assert_eq!(r.operation, S3Operation::HeadObject);
        prop_assert_eq!(r.addressing, Addressing::VirtualHosted);
        prop_assert_eq!(r.bucket.as_deref(), Some("photos"));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn plus_in_a_path_stays_plus(key in forwardable_key_strategy()) {
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
        key in forwardable_key_strategy(),
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
    fn sdk_encoded_prefixes_round_trip_in_the_query(
        prefix in key_strategy().prop_filter("no dot segment", |p| check_prefix_segments(p).is_ok()),
    ) {
        let path = format!(
            "/bucket?list-type=2&prefix={}&encoding-type=url",
            sdk_encode(&prefix, true, false)
        );
        let r = parse_path(&Method::GET, &path, None);
        prop_assert_eq!(r.operation, S3Operation::ListObjectsV2);
        prop_assert_eq!(r.query.get("prefix"), Some(prefix.as_str()));
    }

    #[test]
    fn dot_segments_are_refused_however_spelled(
        key in key_strategy(),
        dot in prop_oneof![
            Just("."),
            Just(".."),
            Just(".. "),
            Just(" .."),
            Just(". "),
            Just(". ."),
            Just("..;jsessionid=1"),
            Just(".;x"),
        ],
        before in any::<bool>(),
        encode_slash in any::<bool>(),
        lower in any::<bool>(),
    ) {
        let dotted = if before { format!("{dot}/{key}") } else { format!("{key}/{dot}") };
        let mut encoded = sdk_encode(&dotted, encode_slash, lower);
        if lower {
            // Dots percent-encoded too, as a client hiding them would send them.
            encoded = encoded.replace('.', "%2e");
        }
        let uri: Uri = format!("/bucket/{encoded}").parse().unwrap();
        let err = S3RequestParser::new()
            .parse(&Method::GET, &uri, &HeaderMap::new())
            .unwrap_err();
        prop_assert_eq!(err.code(), S3ErrorCode::InvalidArgument);
        let err = parse_copy_source(format!("src/{encoded}").as_bytes()).unwrap_err();
        prop_assert_eq!(err.code(), S3ErrorCode::InvalidArgument);
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
fn empty_segments_and_dots_in_names_are_key_bytes() {
    for (path, key) in [
        ("/bucket/dir//double", "dir//double"),
        ("/bucket/trailing/", "trailing/"),
        ("/bucket//leading", "/leading"),
        ("/bucket/.hidden", ".hidden"),
        ("/bucket/a..b/...", "a..b/..."),
        ("/bucket/a./.b/..c", "a./.b/..c"),
        ("/bucket/%2E%2E%2E", "..."),
        ("/bucket/a/...%20", "a/... "),
        ("/bucket/a%20./b", "a ./b"),
    ] {
        let r = parse_path(&Method::GET, path, None);
        assert_eq!(r.key.as_deref(), Some(key), "{path}");
        assert_eq!(r.bucket.as_deref(), Some("bucket"), "{path}");
    }
}

/// A `.` or `..` segment is refused: forwarded to a backend that stores objects as files or
/// normalises paths (s3s-fs resolves `/public/../private/x` to the bucket `private`), it would
/// reach another object than the one authorized.
#[test]
fn dot_segments_are_refused() {
    let parser = S3RequestParser::new().virtual_host_domain("s3.example.com");
    let refused = |method: Method, path: &str, host: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert("host", HeaderValue::from_str(host).unwrap());
        }
        let err = parser
            .parse(&method, &path.parse().unwrap(), &headers)
            .unwrap_err();
        assert_eq!(err.code(), S3ErrorCode::InvalidArgument, "{path}");
        assert!(err.message().contains("'.' or '..' path segment"), "{path}");
    };
    for path in [
        "/public/../private/secret",
        "/bucket/../etc/passwd",
        "/bucket/dir/./x",
        "/bucket/dir/x/..",
        "/bucket/.",
        "/bucket/..",
        "/bucket/%2E%2E/x",
        "/bucket/%2e%2E%2Fx",
        "/bucket/a%2F..%2Fb",
        "/bucket/a%5C..%5Cb",
        // What Windows or a servlet container reads as `.` or `..`.
        "/bucket/..%20/x",
        "/bucket/%20../x",
        "/bucket/dir/.%20",
        "/bucket/a/.%20./b",
        "/bucket/..;/private/x",
        "/bucket/..;jsessionid=1/x",
        "/bucket/a/.;x/b",
        "/bucket/a%5C..%20%5Cb",
    ] {
        refused(Method::GET, path, None);
        refused(Method::PUT, path, None);
    }
    refused(
        Method::GET,
        "/../private/secret",
        Some("public.s3.example.com"),
    );
    // Listing prefixes: the same rule, a final `.` included (a backend cleaning paths lists
    // the parent for `logs/.`).
    for query in [
        "prefix=..",
        "prefix=../private/",
        "prefix=a%2F.%2Fb",
        "prefix=a/../",
        "prefix=logs/.",
        "prefix=.",
        "prefix=logs/..%20",
        "prefix=%20../x",
        "prefix=logs/.%20",
        "prefix=..;/private/",
        "prefix=a/.;x/",
    ] {
        refused(Method::GET, &format!("/public?list-type=2&{query}"), None);
        refused(Method::GET, &format!("/public?{query}"), None);
        refused(Method::GET, &format!("/public?versions&{query}"), None);
        refused(Method::GET, &format!("/public?uploads&{query}"), None);
    }
    // Names with dots that are not a dot segment stay allowed.
    for prefix in [
        "logs/.h",
        "logs/...",
        "logs/a..",
        "logs/..a",
        "logs/.x;y",
        "logs/;..",
    ] {
        let r = parse_path(
            &Method::GET,
            &format!("/public?list-type=2&prefix={prefix}"),
            None,
        );
        assert_eq!(r.query.get("prefix"), Some(prefix));
    }
    // Copy sources.
    for source in [
        "/public/../private/secret",
        "public/%2E%2E/private/secret",
        "bkt/./k",
        "bkt/a/..%20/k",
        "bkt/..;/k",
    ] {
        let err = parse_copy_source(source.as_bytes()).unwrap_err();
        assert_eq!(err.code(), S3ErrorCode::InvalidArgument, "{source}");
        assert!(
            err.message().contains("'.' or '..' path segment"),
            "{source}"
        );
    }
    // Outside the path: the same rule.
    for key in ["a/.. ", " ../a", ". ", "..;x/a", "a\\.;y"] {
        assert_eq!(
            check_key_segments(key).unwrap_err().code(),
            S3ErrorCode::InvalidArgument,
            "{key}"
        );
        assert_eq!(
            check_prefix_segments(key).unwrap_err().code(),
            S3ErrorCode::InvalidArgument,
            "{key}"
        );
    }
    for key in ["...", ". . .", "a. ", " a", "x;..", ".hidden"] {
        assert!(check_key_segments(key).is_ok(), "{key}");
    }
    // `decode_key` itself only decodes.
    assert_eq!(decode_key("%2E%2E/x").unwrap(), "../x");
}

/// A listing prefix longer than the longest key is refused before any policy sees it.
#[test]
fn prefixes_over_1024_bytes_are_refused() {
    let parser = S3RequestParser::new();
    let list = |prefix: &str| {
        parser.parse(
            &Method::GET,
            &format!("/bucket?list-type=2&prefix={prefix}")
                .parse()
                .unwrap(),
            &HeaderMap::new(),
        )
    };
    let err = list(&"a".repeat(MAX_KEY_LEN + 1)).unwrap_err();
    assert_eq!(err.code(), S3ErrorCode::InvalidArgument);
    assert_eq!(
        err.message(),
        "the prefix is longer than 1024 bytes, the longest key"
    );
    // Counted in decoded bytes: 342 three-byte characters, escaped.
    let err = list(&"%E6%97%A5".repeat(342)).unwrap_err();
    assert_eq!(err.code(), S3ErrorCode::InvalidArgument);
    let r = list(&"a".repeat(MAX_KEY_LEN)).unwrap();
    assert_eq!(r.query.get("prefix").map(str::len), Some(MAX_KEY_LEN));
}
