//! `SessionPolicy`: parsing (valid forms, every refusal with its message, the packed size
//! limit) and IAM evaluation (wildcards, case, NotAction/NotResource, Deny precedence,
//! conditions on `s3:prefix`/`s3:delimiter`) on requests parsed as the gateway parses them.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use http::{HeaderMap, Method, Uri};
use s3_core::{Query, S3Operation, S3Request, S3RequestParser, SessionPolicy, SessionPolicyError};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn parse(document: &str) -> SessionPolicy {
    SessionPolicy::parse(document).unwrap_or_else(|e| panic!("{e}: {document}"))
}

/// A policy of the given statements (JSON text, comma-separated).
fn policy(statements: &str) -> SessionPolicy {
    parse(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#
    ))
}

/// The `Malformed` message of a refused document.
fn refusal(document: &str) -> String {
    match SessionPolicy::parse(document) {
        Err(SessionPolicyError::Malformed(message)) => message,
        other => panic!("{document}: expected Malformed, got {other:?}"),
    }
}

/// Asserts `statement` (one statement's JSON) is refused with a message containing `fragment`.
fn assert_refused(statement: &str, fragment: &str) {
    let document = format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#);
    let message = refusal(&document);
    assert!(
        message.contains(fragment),
        "{document}\nmessage: {message}\nexpected: {fragment}"
    );
}

/// A request as `S3RequestLayer` parses it (path style).
fn request(method: &Method, uri: &str) -> S3Request {
    let mut headers = HeaderMap::new();
    headers.insert("host", "s3.local".parse().unwrap());
    S3RequestParser::new()
        .parse(method, &uri.parse::<Uri>().unwrap(), &headers)
        .unwrap()
}

fn copy(destination: &str, source: &str) -> S3Request {
    let mut headers = HeaderMap::new();
    headers.insert("host", "s3.local".parse().unwrap());
    headers.insert("x-amz-copy-source", source.parse().unwrap());
    S3RequestParser::new()
        .parse(&Method::PUT, &destination.parse::<Uri>().unwrap(), &headers)
        .unwrap()
}

/// Whether `policy` allows every resource of `request`, as the authorization layer asks.
fn allows_all(policy: &SessionPolicy, request: &S3Request) -> bool {
    let resources = request.resources();
    assert!(!resources.is_empty());
    resources
        .iter()
        .all(|access| policy.allows(access, request))
}

fn get(policy: &SessionPolicy, uri: &str) -> bool {
    allows_all(policy, &request(&Method::GET, uri))
}

fn put(policy: &SessionPolicy, uri: &str) -> bool {
    allows_all(policy, &request(&Method::PUT, uri))
}

fn head(policy: &SessionPolicy, uri: &str) -> bool {
    allows_all(policy, &request(&Method::HEAD, uri))
}

// ---------------------------------------------------------------------------------------------
// Parsing: valid forms
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_documents_parse_and_keep_their_source() {
    for document in [
        // One statement as an object; Action and Resource as strings; no Version.
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
        // Arrays everywhere, both versions, Id and Sid.
        r#"{"Version": "2012-10-17", "Id": "p1", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:List*"],
             "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]},
            {"Sid": "NoSecrets", "Effect": "Deny", "NotAction": "s3:Get?bject",
             "NotResource": "arn:aws:s3:::data/public/*"}]}"#,
        r#"{"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
            "Resource": "arn:aws:s3:::*"}]}"#,
        // Every supported condition operator, keys in any case, value or values.
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::data",
            "Condition": {
              "StringEquals": {"s3:delimiter": "/"},
              "StringNotEquals": {"S3:Prefix": ["secret/", "private/"]},
              "StringLike": {"s3:prefix": ["home/alice/*", "home/alice"]},
              "StringNotLike": {"s3:prefix": "*/tmp/*"},
              "StringEqualsIfExists": {"s3:delimiter": "/"},
              "StringNotEqualsIfExists": {"s3:prefix": "x"},
              "StringLikeIfExists": {"s3:prefix": "*"},
              "StringNotLikeIfExists": {"s3:prefix": "y*"}}}]}"#,
        // An empty Condition block imposes nothing.
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {}}]}"#,
    ] {
        let policy = parse(document);
        assert_eq!(policy.source(), document);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: every refusal, with its message
// ---------------------------------------------------------------------------------------------

#[test]
fn documents_that_are_not_policies_are_malformed() {
    for (document, fragment) in [
        ("", "not JSON"),
        ("{", "not JSON"),
        (r#"{"Statement": []} x"#, "not JSON"),
        (
            "[]",
            "the policy document must be a JSON object, not an array",
        ),
        (
            "\"s\"",
            "the policy document must be a JSON object, not a string",
        ),
        ("{}", "the policy document has no Statement"),
        (
            r#"{"Version": "2012-10-17", "Statement": []}"#,
            "Statement is an empty array",
        ),
        (
            r#"{"Statement": "Allow"}"#,
            "Statement must be an object or an array of objects, not a string",
        ),
        (
            r#"{"Statement": ["Allow"]}"#,
            "Statement[0]: a statement must be an object, not a string",
        ),
        (
            r#"{"Version": "2010-01-01", "Statement": {}}"#,
            "unsupported Version \"2010-01-01\"; expected \"2012-10-17\" or \"2008-10-17\"",
        ),
        (
            r#"{"Version": 2012, "Statement": {}}"#,
            "Version must be a string, not a number",
        ),
        (
            r#"{"Id": true, "Statement": {}}"#,
            "Id must be a string, not a boolean",
        ),
        (
            r#"{"Statement": {}, "Extra": 1}"#,
            "unknown field \"Extra\" in the policy document; expected Version, Id or Statement",
        ),
        (
            r#"{"statement": {}}"#,
            "unknown field \"statement\" in the policy document",
        ),
        (
            r#"{"Statement": {}, "Statement": {}}"#,
            "duplicate field \"Statement\"",
        ),
    ] {
        let message = refusal(document);
        assert!(
            message.contains(fragment),
            "{document}\nmessage: {message}\nexpected: {fragment}"
        );
    }
}

#[test]
fn statements_this_gateway_would_not_evaluate_exactly_are_malformed() {
    const OK: &str = r#""Effect": "Allow", "Action": "s3:GetObject", "Resource": "*""#;
    for (statement, fragment) in [
        (
            format!(r#"{{{OK}, "Principal": {{"AWS": "*"}}}}"#),
            "Statement[0]: a session policy cannot have Principal",
        ),
        (
            format!(r#"{{{OK}, "NotPrincipal": "*"}}"#),
            "a session policy cannot have NotPrincipal",
        ),
        (
            format!(r#"{{{OK}, "Effects": "Allow"}}"#),
            "unknown field \"Effects\"; expected Sid, Effect, Action, NotAction, Resource, \
             NotResource or Condition",
        ),
        (
            format!(r#"{{{OK}, "Effect": "Deny"}}"#),
            "duplicate field \"Effect\"",
        ),
        (
            r#"{"Action": "s3:GetObject", "Resource": "*"}"#.to_owned(),
            "Statement[0]: missing Effect",
        ),
        (
            r#"{"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}"#.to_owned(),
            "Effect must be \"Allow\" or \"Deny\", not \"allow\"",
        ),
        (
            r#"{"Effect": true, "Action": "s3:GetObject", "Resource": "*"}"#.to_owned(),
            "Effect must be a string, not a boolean",
        ),
        (
            r#"{"Effect": "Allow", "Resource": "*"}"#.to_owned(),
            "missing Action or NotAction",
        ),
        (
            r#"{"Effect": "Allow", "Action": "s3:GetObject"}"#.to_owned(),
            "missing Resource or NotResource",
        ),
        (
            format!(r#"{{{OK}, "NotAction": "s3:PutObject"}}"#),
            "has both Action and NotAction",
        ),
        (
            format!(r#"{{{OK}, "NotResource": "*"}}"#),
            "has both Resource and NotResource",
        ),
        (
            r#"{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}"#.to_owned(),
            "Action \"GetObject\" is not \"*\" or \"service:action\"",
        ),
        (
            r#"{"Effect": "Allow", "Action": "s3:Get Object", "Resource": "*"}"#.to_owned(),
            "Action \"s3:Get Object\" is not",
        ),
        (
            r#"{"Effect": "Allow", "Action": [], "Resource": "*"}"#.to_owned(),
            "Action is an empty array",
        ),
        (
            r#"{"Effect": "Allow", "Action": 3, "Resource": "*"}"#.to_owned(),
            "Action must be a string or an array of strings, not a number",
        ),
        (
            r#"{"Effect": "Allow", "Action": ["s3:GetObject", null], "Resource": "*"}"#.to_owned(),
            "Action must be a string or an array of strings, not an array holding null",
        ),
        (
            r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "data/*"}"#.to_owned(),
            "Resource \"data/*\" is not \"*\" or an ARN",
        ),
        (
            r#"{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3"}"#.to_owned(),
            "NotResource \"arn:aws:s3\" is not \"*\" or an ARN",
        ),
        (
            r#"{"Effect": "Allow", "Action": "s3:*",
                "Resource": "arn:aws:s3:::data/${aws:username}/*"}"#
                .to_owned(),
            "policy variables (${...}) are not supported",
        ),
        (
            format!(r#"{{{OK}, "Sid": 1}}"#),
            "Sid must be a string, not a number",
        ),
        (
            format!(r#"{{{OK}, "Condition": []}}"#),
            "Condition must be an object, not an array",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"NumericEquals": {{"s3:max-keys": "10"}}}}}}"#),
            "unsupported condition operator \"NumericEquals\"; supported: StringEquals, \
             StringNotEquals, StringLike, StringNotLike and their IfExists forms",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"ForAnyValue:StringLike": {{"s3:prefix": "a"}}}}}}"#),
            "unsupported condition operator \"ForAnyValue:StringLike\"",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringEqualsIgnoreCase": {{"s3:prefix": "a"}}}}}}"#),
            "unsupported condition operator \"StringEqualsIgnoreCase\"",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringLike": {{"aws:SourceIp": "10.*"}}}}}}"#),
            "unsupported condition key \"aws:SourceIp\" in StringLike; supported: s3:prefix, \
             s3:delimiter",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringLike": "s3:prefix"}}}}"#),
            "StringLike must be an object of condition keys, not a string",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringLike": {{}}}}}}"#),
            "StringLike has no condition key",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringLike": {{"s3:prefix": []}}}}}}"#),
            "StringLike s3:prefix is an empty array",
        ),
        (
            format!(r#"{{{OK}, "Condition": {{"StringLike": {{"s3:prefix": 1}}}}}}"#),
            "StringLike s3:prefix must be a string or an array of strings, not a number",
        ),
        (
            format!(
                r#"{{{OK}, "Condition": {{"StringLike": {{"s3:prefix": "${{aws:userid}}/*"}}}}}}"#
            ),
            "policy variables (${...}) are not supported",
        ),
    ] {
        assert_refused(&statement, fragment);
    }
}

#[test]
fn the_failing_statement_is_named_by_its_position() {
    let message = refusal(
        r#"{"Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Principal": "*"}]}"#,
    );
    assert!(message.starts_with("Statement[1]: "), "{message}");
}

#[test]
fn sids_are_unique() {
    let message = refusal(
        r#"{"Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "A", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}"#,
    );
    assert_eq!(message, "Statement[1]: duplicate Sid \"A\"");
}

/// A document whose packed form is exactly `packed` characters, padded with `spaces`
/// spaces and newlines outside strings (and one space inside the Sid, which counts).
fn document_of_packed_len(packed: usize, spaces: usize) -> String {
    let head = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Sid":""#;
    let tail = r#""}}"#;
    let sid = "a ".repeat((packed - head.len() - tail.len()) / 2);
    let sid = if (packed - head.len() - tail.len()) % 2 == 1 {
        format!("{sid}b")
    } else {
        sid
    };
    let padding = " \n".repeat(spaces / 2);
    let document = format!("{padding}{head}{sid}{tail}{padding}");
    let without_padding = document.trim();
    assert_eq!(without_padding.chars().count(), packed);
    document
}

#[test]
fn the_packed_size_is_limited_and_whitespace_outside_strings_is_free() {
    assert_eq!(SessionPolicy::MAX_PACKED_LEN, 2048);
    let at_limit = document_of_packed_len(2048, 3000);
    assert!(at_limit.len() > 5000);
    SessionPolicy::parse(&at_limit).unwrap();

    let over = document_of_packed_len(2049, 0);
    assert_eq!(
        SessionPolicy::parse(&over),
        Err(SessionPolicyError::TooLarge(101))
    );
    assert_eq!(
        SessionPolicyError::TooLarge(101).to_string(),
        "the packed policy uses 101% of the allowed size"
    );
    let double = document_of_packed_len(4096, 0);
    assert_eq!(
        SessionPolicy::parse(&double),
        Err(SessionPolicyError::TooLarge(200))
    );

    // Pretty-printed: the indentation does not count.
    let pretty = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::data/*"
            }
        ]
    }"#;
    let pretty = format!("{}{}", pretty, " ".repeat(4000));
    SessionPolicy::parse(&pretty).unwrap();
}

#[test]
fn characters_not_bytes_are_counted() {
    // 2,048 characters, more than 2,048 bytes.
    let head = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Sid":""#;
    let tail = r#""}}"#;
    let sid = "é".repeat(2048 - head.len() - tail.len());
    let document = format!("{head}{sid}{tail}");
    assert!(document.len() > 2048);
    SessionPolicy::parse(&document).unwrap();
}

#[test]
fn huge_and_deeply_nested_inputs_are_refused_safely() {
    // Whitespace is free, but not without bound.
    let padded = format!(
        "{}{}",
        " ".repeat(SessionPolicy::MAX_DOCUMENT_LEN),
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#
    );
    assert_eq!(
        refusal(&padded),
        "the policy document is longer than 65536 bytes"
    );
    // Deep nesting within the size limit: serde_json's recursion limit, no stack overflow.
    let deep = format!(
        r#"{{"Statement": {{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}{}}}}}"#,
        "[".repeat(900),
        "]".repeat(900)
    );
    assert!(
        refusal(&deep).contains("recursion limit exceeded"),
        "{}",
        refusal(&deep)
    );
    // A long text of anything is sized before it is parsed.
    assert!(matches!(
        SessionPolicy::parse(&"x".repeat(60_000)),
        Err(SessionPolicyError::TooLarge(2930))
    ));
}

// ---------------------------------------------------------------------------------------------
// Evaluation: actions and resources
// ---------------------------------------------------------------------------------------------

#[test]
fn actions_match_with_wildcards_and_without_case() {
    let gets = policy(r#"{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}"#);
    assert!(get(&gets, "/data/a.txt"));
    assert!(get(&gets, "/data/a.txt?tagging"));
    assert!(head(&gets, "/data/a.txt")); // HeadObject is s3:GetObject
    assert!(!put(&gets, "/data/a.txt"));
    assert!(!get(&gets, "/data?list-type=2")); // s3:ListBucket

    let objects = policy(r#"{"Effect": "Allow", "Action": "s3:*Object", "Resource": "*"}"#);
    assert!(get(&objects, "/data/a.txt"));
    assert!(put(&objects, "/data/a.txt"));
    assert!(allows_all(
        &objects,
        &request(&Method::DELETE, "/data/a.txt")
    ));
    assert!(!get(&objects, "/data/a.txt?tagging")); // s3:GetObjectTagging
    assert!(!get(&objects, "/data/a.txt?versionId=v1")); // s3:GetObjectVersion

    let one_char = policy(r#"{"Effect": "Allow", "Action": "s3:?etObject", "Resource": "*"}"#);
    assert!(get(&one_char, "/data/a.txt"));
    assert!(!put(&one_char, "/data/a.txt"));
    let too_short = policy(r#"{"Effect": "Allow", "Action": "s3:?GetObject", "Resource": "*"}"#);
    assert!(!get(&too_short, "/data/a.txt"));

    for action in ["S3:GETOBJECT", "s3:getobject", "S3:gEtObJeCt", "s3:GET*"] {
        let p = policy(&format!(
            r#"{{"Effect": "Allow", "Action": "{action}", "Resource": "*"}}"#
        ));
        assert!(get(&p, "/data/a.txt"), "{action}");
    }
    let everything = policy(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
    assert!(put(&everything, "/data/a.txt"));
    assert!(get(&everything, "/"));
    // Another service's actions never match.
    let other = policy(r#"{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}"#);
    assert!(!get(&other, "/data/a.txt"));
}

#[test]
fn resources_match_with_wildcards_and_with_case() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/home/alice/*"}"#,
    );
    assert!(get(&p, "/data/home/alice/a.txt"));
    assert!(get(&p, "/data/home/alice/deep/er/a.txt")); // `*` spans `/`
    assert!(!get(&p, "/data/home/Alice/a.txt")); // case-sensitive
    assert!(!get(&p, "/data/home/alicex/a.txt"));
    assert!(!get(&p, "/data/home/alice")); // the key `home/alice` is not under `home/alice/`
    assert!(!get(&p, "/other/home/alice/a.txt"));
    // The objects pattern does not name the bucket: listing it is not allowed.
    assert!(!get(&p, "/data?list-type=2&prefix=home/alice/"));

    let bucket =
        policy(r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data"}"#);
    assert!(get(&bucket, "/data?list-type=2"));
    assert!(!get(&bucket, "/data/a.txt"));
    assert!(!get(&bucket, "/database?list-type=2"));
    // Bucket names are lower-case; a pattern in another case matches none.
    let upper = policy(r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::DATA"}"#);
    assert!(!get(&upper, "/data?list-type=2"));

    let one_char = policy(
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/?.txt"}"#,
    );
    assert!(get(&one_char, "/data/a.txt"));
    assert!(get(&one_char, "/data/%C3%A9.txt")); // `?` is one character, not one byte
    assert!(!get(&one_char, "/data/ab.txt"));
    assert!(!get(&one_char, "/data/.txt"));

    let buckets =
        policy(r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::log-*"}"#);
    assert!(get(&buckets, "/log-2025?list-type=2"));
    // `*` spans `/`, as in IAM: a bucket pattern ending in `*` covers its objects too.
    assert!(get(&buckets, "/log-2025/a.txt"));
    assert!(!get(&buckets, "/logs?list-type=2"));
}

#[test]
fn long_patterns_with_question_marks_match_as_short_ones() {
    // `?` and `*`: matched by an automaton (after checking both ends), not by
    // backtracking; the result is the same.
    let tail = "x".repeat(80);
    let p = policy(&format!(
        r#"{{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*/??-{tail}"}}"#
    ));
    assert!(get(&p, &format!("/data/home/alice/ab-{tail}")));
    assert!(get(&p, &format!("/data/a/%C3%A9b-{tail}")));
    assert!(!get(&p, &format!("/data/home/alice/abc-{tail}")));
    assert!(!get(&p, &format!("/data/ab-{tail}")));
    assert!(!get(&p, &format!("/data/a/ab-{tail}x")));
}

#[test]
fn the_service_resource_is_matched_by_star_patterns_only() {
    for (resource, allowed) in [
        ("*", true),
        ("arn:aws:s3:::*", true),
        ("arn:aws:s3:::data", false),
        ("arn:aws:s3:::data*", false),
        ("arn:aws:s3:::*/*", false),
        // Wildcards that would match the stand-in ARN `arn:aws:s3:::*` name buckets, not
        // the service.
        ("arn:aws:s3:::?", false),
        ("arn:aws:s3:::*?", false),
        ("arn:aws:s3:::?*", false),
        ("arn:aws:s3:::**", false),
        ("arn:aws:s3:::*?*", false),
        ("arn:*:s3:::*", false),
        (
            "arn:aws:s3:::?????????????????????????????????????????????????????????*",
            false,
        ),
    ] {
        let p = policy(&format!(
            r#"{{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "{resource}"}}"#
        ));
        assert_eq!(get(&p, "/"), allowed, "{resource}");
        assert_eq!(
            p.allows_arn("s3:ListAllMyBuckets", "*", &request(&Method::GET, "/")),
            allowed,
            "{resource}"
        );
        // NotResource: the statement applies to the service unless the pattern names it.
        let not = policy(&format!(
            r#"{{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "NotResource": "{resource}"}}"#
        ));
        assert_eq!(get(&not, "/"), !allowed, "NotResource {resource}");
        // A Deny on a bucket pattern does not deny the bucket list.
        let deny = policy(&format!(
            r#"{{"Effect": "Allow", "Action": "*", "Resource": "*"}},
               {{"Effect": "Deny", "Action": "s3:ListAllMyBuckets", "Resource": "{resource}"}}"#
        ));
        assert_eq!(get(&deny, "/"), !allowed, "Deny {resource}");
    }
    // `arn:aws:s3:::?` still names one-character buckets.
    let p =
        policy(r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::?"}"#);
    assert!(p.allows_arn(
        "s3:ListBucket",
        "arn:aws:s3:::a",
        &request(&Method::GET, "/")
    ));
}

#[test]
fn both_sides_of_a_copy_must_be_allowed() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::data/home/alice/*"}"#,
    );
    assert!(allows_all(
        &p,
        &copy("/data/home/alice/b.txt", "/data/home/alice/a.txt")
    ));
    assert!(!allows_all(
        &p,
        &copy("/data/home/alice/b.txt", "/data/home/bob/a.txt")
    ));
    assert!(!allows_all(
        &p,
        &copy("/data/home/bob/b.txt", "/data/home/alice/a.txt")
    ));
    // A versioned source needs s3:GetObjectVersion.
    assert!(!allows_all(
        &p,
        &copy(
            "/data/home/alice/b.txt",
            "/data/home/alice/a.txt?versionId=v1"
        )
    ));
}

#[test]
fn delete_objects_keys_are_decided_one_by_one() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:DeleteObject",
            "Resource": "arn:aws:s3:::data/tmp/*"}"#,
    );
    let batch = request(&Method::POST, "/data?delete");
    assert_eq!(batch.operation, S3Operation::DeleteObjects);
    // The batch itself is never allowed: its keys are unknown until the body is read.
    assert!(!allows_all(&p, &batch));
    assert!(p.allows_arn("s3:DeleteObject", "arn:aws:s3:::data/tmp/a", &batch));
    assert!(!p.allows_arn("s3:DeleteObject", "arn:aws:s3:::data/keep/a", &batch));
    assert!(!p.allows_arn("s3:DeleteObjectVersion", "arn:aws:s3:::data/tmp/a", &batch));
    // Even an Allow of everything does not allow the unread batch.
    let all = policy(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
    assert!(!allows_all(&all, &batch));
    assert!(all.allows_arn("s3:DeleteObject", "arn:aws:s3:::data/keep/a", &batch));
}

#[test]
fn not_action_and_not_resource_apply_to_everything_else() {
    let p = policy(r#"{"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"}"#);
    assert!(get(&p, "/data/a.txt"));
    assert!(put(&p, "/data/a.txt"));
    assert!(!allows_all(&p, &request(&Method::DELETE, "/data/a.txt")));
    assert!(!allows_all(&p, &request(&Method::DELETE, "/data")));

    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::data/secret/*"}"#,
    );
    assert!(get(&p, "/data/a.txt"));
    assert!(get(&p, "/other/secret/a.txt"));
    assert!(!get(&p, "/data/secret/a.txt"));
}

#[test]
fn an_explicit_deny_wins_wherever_it_is() {
    let allow = r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}"#;
    let deny =
        r#"{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/ro/*"}"#;
    for p in [
        policy(&format!("{allow}, {deny}")),
        policy(&format!("{deny}, {allow}")),
    ] {
        assert!(get(&p, "/data/ro/a.txt"));
        assert!(put(&p, "/data/rw/a.txt"));
        assert!(!put(&p, "/data/ro/a.txt"));
    }
    // Deny with NotAction: everything but reads is denied.
    let p = policy(&format!(
        r#"{allow}, {{"Effect": "Deny", "NotAction": ["s3:Get*", "s3:List*"], "Resource": "*"}}"#
    ));
    assert!(get(&p, "/data/a.txt"));
    assert!(!put(&p, "/data/a.txt"));
    // Only Deny statements: nothing is allowed.
    let p = policy(deny);
    assert!(!get(&p, "/data/a.txt"));
    // No statement matches: denied.
    let p = policy(allow);
    assert!(!get(&p, "/"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation: conditions
// ---------------------------------------------------------------------------------------------

/// Alice's home: list `home/alice/...`, read and write under it.
const ALICE_HOME: &str = r#"
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
     "Condition": {"StringLike": {"s3:prefix": ["home/alice/*", "home/alice"]}}},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": "arn:aws:s3:::data/home/alice/*"}"#;

#[test]
fn string_like_on_the_prefix_of_a_listing() {
    let p = policy(ALICE_HOME);
    assert!(get(&p, "/data?list-type=2&prefix=home/alice/"));
    assert!(get(&p, "/data?list-type=2&prefix=home/alice/2025/"));
    assert!(get(&p, "/data?list-type=2&prefix=home/alice"));
    assert!(get(&p, "/data?prefix=home/alice/")); // ListObjects (v1)
    assert!(!get(&p, "/data?list-type=2&prefix=home/bob/"));
    assert!(!get(&p, "/data?list-type=2&prefix=home/"));
    assert!(!get(&p, "/data?list-type=2&prefix=")); // present but empty
    // Without a prefix the key is absent: a positive condition fails.
    assert!(!get(&p, "/data?list-type=2"));
    assert!(!get(&p, "/data"));
    // HeadBucket is s3:ListBucket without a listing: no s3:prefix, denied.
    assert!(!head(&p, "/data"));
    // Case-sensitive values.
    assert!(!get(&p, "/data?list-type=2&prefix=home/Alice/"));
}

#[test]
fn the_prefix_key_exists_only_for_listings() {
    // A `prefix` query parameter on anything but a listing must not satisfy a listing
    // condition. (S3RequestLayer classifies such a GetObject as Unknown; the model does not
    // rely on it.)
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringLike": {"s3:prefix": "home/alice/*"}}}"#,
    );
    assert!(get(&p, "/data?list-type=2&prefix=home/alice/"));
    let mut object_get = request(&Method::GET, "/data/home/bob/a.txt");
    object_get.query = Query::parse("prefix=home/alice/").unwrap();
    assert!(!allows_all(&p, &object_get));
    let mut head_bucket = request(&Method::HEAD, "/data");
    assert_eq!(head_bucket.operation, S3Operation::HeadBucket);
    head_bucket.query = Query::parse("prefix=home/alice/").unwrap();
    assert!(!allows_all(&p, &head_bucket));
}

#[test]
fn string_equals_is_exact() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringEquals": {"s3:prefix": ["", "home/"], "s3:delimiter": "/"}}}"#,
    );
    assert!(get(&p, "/data?list-type=2&prefix=&delimiter=/"));
    assert!(get(&p, "/data?list-type=2&prefix=home/&delimiter=/"));
    // Every key of an operator must hold.
    assert!(!get(&p, "/data?list-type=2&prefix=home/"));
    assert!(!get(&p, "/data?list-type=2&prefix=home/x&delimiter=/"));
    // `*` is literal in StringEquals.
    let star = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringEquals": {"s3:prefix": "home/*"}}}"#,
    );
    assert!(!get(&star, "/data?list-type=2&prefix=home/a"));
    assert!(get(&star, "/data?list-type=2&prefix=home/*"));
    // And so are `?`, however long the value.
    let long = format!("home/*?{}", "?".repeat(40));
    let question = policy(&format!(
        r#"{{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {{"StringEquals": {{"s3:prefix": ["home/?", "{long}"]}}}}}}"#
    ));
    assert!(!get(&question, "/data?list-type=2&prefix=home/a"));
    assert!(get(&question, "/data?list-type=2&prefix=home/?"));
    assert!(!get(
        &question,
        &format!("/data?list-type=2&prefix=home/a{}", "b".repeat(41))
    ));
    assert!(get(
        &question,
        &format!(
            "/data?list-type=2&prefix={}",
            long.replace('*', "%2A").replace('?', "%3F")
        )
    ));
}

#[test]
fn negated_operators_hold_when_the_key_is_absent() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringNotLike": {"s3:prefix": "secret/*"},
                          "StringNotEquals": {"s3:delimiter": "|"}}}"#,
    );
    assert!(get(&p, "/data?list-type=2"));
    assert!(get(&p, "/data?list-type=2&prefix=public/&delimiter=/"));
    assert!(!get(&p, "/data?list-type=2&prefix=secret/a"));
    assert!(!get(&p, "/data?list-type=2&delimiter=%7C"));
}

#[test]
fn if_exists_operators_hold_when_the_key_is_absent() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringLikeIfExists": {"s3:prefix": "public/*"}}}"#,
    );
    assert!(get(&p, "/data?list-type=2"));
    assert!(get(&p, "/data?list-type=2&prefix=public/a"));
    assert!(!get(&p, "/data?list-type=2&prefix=private/a"));
}

#[test]
fn a_conditional_deny_denies_only_when_it_holds() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data"},
           {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringLike": {"s3:prefix": "secret/*"}}}"#,
    );
    assert!(get(&p, "/data?list-type=2"));
    assert!(get(&p, "/data?list-type=2&prefix=public/"));
    assert!(!get(&p, "/data?list-type=2&prefix=secret/x"));
}
