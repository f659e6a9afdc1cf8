//! End-to-end tests: real Python S3 clients (boto3, the AWS CLI v1) and raw HTTP requests
//! through the gateway example to a moto S3 server.
//!
//! Run with `cargo xtask test`, which installs the clients into `.tools/`, builds the gateway
//! and sets `S3_TOWER_TOOLS` / `S3_TOWER_GATEWAY_BIN`. Every test starts its own moto and
//! gateway on free ports with a temporary config and data directory.
//!
//! The clients sign their requests (SigV4) with the key of the gateway's static user
//! ([`support::e2e_user`]); the gateway verifies them and re-signs towards moto with its own
//! static keys. Two tests cover unsigned requests: refused with `403 AccessDenied` by
//! default, let through with `auth.allow_anonymous = true`.
//!
//! Virtual-hosted style: `<bucket>.s3.localhost` does not resolve on every machine (glibc
//! leaves `*.localhost` to DNS). The virtual-hosted test therefore (1) sends the requests with
//! `http.client` to 127.0.0.1 and an explicit `Host: <bucket>.s3.localhost:<port>` header, and
//! (2) runs the boto3 workload with `addressing_style = "virtual"` against
//! `http://s3.localhost:<port>`, the Python process resolving `*.s3.localhost` to 127.0.0.1
//! itself when the system does not (the script prints which it did).

#![cfg(feature = "e2e")]

mod support;

use std::path::Path;
use std::process::Command;

use support::{
    Gateway, GatewayConfig, HttpResponse, Keys, Moto, assert_success, closed_port, e2e_user,
    http_request, isolate_aws_env, pseudo_random_bytes, python_client, run_captured, run_python,
    signed_request, venv_bin,
};

const MIB: usize = 1024 * 1024;

/// boto3, path-style: the whole workload with a 64 MiB object.
#[test]
fn boto3_path_style_workload() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    let mut cmd = python_client("boto3_workload.py");
    cmd.args(["--endpoint", &gateway.endpoint()])
        .args(["--bucket", "e2e-boto3-path", "--addressing", "path"])
        .args(["--big-mib", "64"])
        .args(e2e_user().client_args());
    run_python(
        "boto3 path-style workload",
        cmd,
        "boto3 workload: all checks passed",
    );
}

/// Virtual-hosted style, raw `http.client` with a Host header, then boto3 with virtual
/// addressing (see the module docs for how the names resolve).
#[test]
fn virtual_hosted_workload() {
    let moto = Moto::start();
    let mut config = GatewayConfig::new(moto.endpoint());
    config.virtual_host_domains = vec!["s3.localhost".to_owned()];
    let gateway = Gateway::start(&config);
    let user = e2e_user();

    let mut raw = python_client("raw_virtual_hosted.py");
    raw.args(["--port", &gateway.port.to_string()])
        .args(["--domain", "s3.localhost", "--bucket", "e2e-raw-vhost"])
        .args(user.client_args());
    run_python(
        "raw virtual-hosted requests",
        raw,
        "raw virtual-hosted: all checks passed",
    );

    let mut boto = python_client("boto3_workload.py");
    boto.args([
        "--endpoint",
        &format!("http://s3.localhost:{}", gateway.port),
    ])
    .args(["--bucket", "e2e-boto3-vhost", "--addressing", "virtual"])
    .args(["--resolve-domain", "s3.localhost", "--big-mib", "16"])
    .args(user.client_args());
    run_python(
        "boto3 virtual-hosted workload",
        boto,
        "boto3 workload: all checks passed",
    );
}

/// The key of an `aws s3 ls` line, `<date> <time> <size> <key>` (the key may hold spaces).
fn ls_key(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..3 {
        rest = rest.split_once(' ')?.1.trim_start();
    }
    Some(rest.trim_end())
}

fn aws(config_file: &Path, endpoint: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(venv_bin("aws"));
    isolate_aws_env(&mut cmd);
    e2e_user()
        .set_env(&mut cmd)
        .env("AWS_CONFIG_FILE", config_file)
        .args(["--endpoint-url", endpoint])
        .args(args);
    if matches!(args, ["s3", "cp" | "sync" | "mv", ..]) {
        cmd.arg("--no-progress");
    }
    let out = run_captured(&mut cmd);
    assert_success(&format!("aws {}", args.join(" ")), &out)
}

/// The AWS CLI v1, signing: mb, multipart cp up and down, ls, sync, s3api head-object.
#[test]
fn aws_cli_workload() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    let endpoint = gateway.endpoint();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("aws-config");
    std::fs::write(
        &config,
        "[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 8MB\n    \
         multipart_chunksize = 8MB\n    max_concurrent_requests = 4\n",
    )
    .expect("write the AWS CLI config");

    let out = aws(&config, &endpoint, &["s3", "mb", "s3://e2e-cli"]);
    assert!(
        out.contains("make_bucket: e2e-cli"),
        "aws s3 mb said: {out}"
    );

    // 20 MiB: above the 8 MiB threshold, so three parts (8 + 8 + 4 MiB).
    let big = pseudo_random_bytes(20 * MIB, 0x5eed);
    let up = dir.path().join("big.bin");
    std::fs::write(&up, &big).expect("write big.bin");
    let up_str = up.to_str().expect("UTF-8 temp path");
    aws(
        &config,
        &endpoint,
        &["s3", "cp", up_str, "s3://e2e-cli/big.bin"],
    );
    let down = dir.path().join("big.down");
    let down_str = down.to_str().expect("UTF-8 temp path");
    aws(
        &config,
        &endpoint,
        &["s3", "cp", "s3://e2e-cli/big.bin", down_str],
    );
    let got = std::fs::read(&down).expect("read the downloaded file");
    assert_eq!(got.len(), big.len(), "size of the downloaded big.bin");
    assert!(got == big, "the downloaded big.bin differs from the upload");

    let head = aws(
        &config,
        &endpoint,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "e2e-cli",
            "--key",
            "big.bin",
        ],
    );
    let head: serde_json::Value = serde_json::from_str(&head).expect("head-object prints JSON");
    assert_eq!(
        head["ContentLength"].as_u64(),
        Some(20 * 1024 * 1024),
        "{head}"
    );
    let etag = head["ETag"].as_str().expect("an ETag");
    assert!(
        etag.ends_with("-3\""),
        "a 3-part multipart upload has an ETag ending in -3, got {etag}"
    );

    let ls = aws(&config, &endpoint, &["s3", "ls", "s3://e2e-cli/"]);
    assert!(
        ls.lines()
            .any(|l| l.ends_with(" 20971520 big.bin") || l.ends_with(" 20971520 big.bin\r")),
        "aws s3 ls s3://e2e-cli/ said: {ls}"
    );
    let buckets = aws(&config, &endpoint, &["s3", "ls"]);
    assert!(
        buckets.lines().any(|l| l.ends_with(" e2e-cli")),
        "aws s3 ls said: {buckets}"
    );

    // sync a small tree, then sync again: nothing left to copy.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub dir")).expect("mkdir");
    let files = [
        ("a.txt", "alpha\n"),
        ("b+plus.txt", "beta\n"),
        ("sub dir/ü.txt", "unicode\n"),
    ];
    // `aws s3 sync` re-uploads a file whose mtime is newer than the object's LastModified;
    // files an hour old make the second sync a pure comparison.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_hours(1);
    for (name, body) in files {
        std::fs::write(tree.join(name), body).expect("write a tree file");
        std::fs::File::options()
            .write(true)
            .open(tree.join(name))
            .and_then(|f| f.set_modified(an_hour_ago))
            .expect("set a tree file's mtime");
    }
    let tree_str = tree.to_str().expect("UTF-8 temp path");
    let synced = aws(
        &config,
        &endpoint,
        &["s3", "sync", tree_str, "s3://e2e-cli/tree/"],
    );
    for (name, _) in files {
        assert!(
            synced.contains(&format!("s3://e2e-cli/tree/{name}")),
            "aws s3 sync did not upload {name}: {synced}"
        );
    }
    let listed = aws(
        &config,
        &endpoint,
        &["s3", "ls", "--recursive", "s3://e2e-cli/tree/"],
    );
    let mut keys: Vec<&str> = listed.lines().filter_map(ls_key).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["tree/a.txt", "tree/b+plus.txt", "tree/sub dir/ü.txt"],
        "aws s3 ls --recursive said: {listed}"
    );
    let again = aws(
        &config,
        &endpoint,
        &["s3", "sync", tree_str, "s3://e2e-cli/tree/"],
    );
    assert!(
        again.trim().is_empty(),
        "a second sync should copy nothing, it said: {again}"
    );
    let back = dir.path().join("back");
    let back_str = back.to_str().expect("UTF-8 temp path");
    aws(
        &config,
        &endpoint,
        &["s3", "sync", "s3://e2e-cli/tree/", back_str],
    );
    for (name, body) in files {
        let got = std::fs::read_to_string(back.join(name)).expect("read a synced-back file");
        assert_eq!(got, body, "content of {name} synced back");
    }
}

/// Sends a request to the gateway, signed by `keys` or unsigned, and checks the status, the
/// S3 error code and the request id.
fn expect_s3_error(
    gateway: &Gateway,
    keys: Option<&Keys>,
    (method, target): (&str, &str),
    status: u16,
    code: &str,
) -> HttpResponse {
    let resp = match keys {
        Some(keys) => signed_request(gateway.addr(), method, target, &[], Vec::new(), keys),
        None => http_request(gateway.addr(), method, target, &[], Vec::new()),
    }
    .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    resp.assert_s3_error(status, code, &format!("{method} {target}"));
    if method != "HEAD" {
        assert!(
            resp.text().contains("<Error>"),
            "{method} {target}: not an S3 XML error: {:?}",
            resp.text()
        );
    }
    assert!(
        resp.headers.contains_key("x-amz-request-id"),
        "{method} {target}: no x-amz-request-id header in {:?}",
        resp.headers
    );
    resp
}

/// Requests the gateway must refuse itself, with the exact S3 status and code, without
/// anything reaching moto (checked with moto's request recorder). They are malformed, so
/// they are refused before authentication: unsigned, they get the same answer.
#[test]
fn bad_requests_are_refused_before_the_backend() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    let user = e2e_user();
    let ok = signed_request(gateway.addr(), "PUT", "/e2e-bad", &[], Vec::new(), &user)
        .expect("PUT bucket");
    assert_eq!(ok.status, 200, "create bucket: {}", ok.text());
    let ok = signed_request(
        gateway.addr(),
        "PUT",
        "/e2e-bad/kept",
        &[],
        b"kept".to_vec(),
        &user,
    )
    .expect("PUT object");
    assert_eq!(ok.status, 200, "put object: {}", ok.text());

    moto.start_recording();
    let cases: &[(&str, &str, u16, &str)] = &[
        // Malformed percent-encoding in the path.
        ("GET", "/e2e-bad/%zz", 400, "InvalidURI"),
        ("GET", "/e2e-bad/a%2", 400, "InvalidURI"),
        ("PUT", "/e2e-bad/%", 400, "InvalidURI"),
        // Escapes that do not decode to UTF-8.
        ("GET", "/e2e-bad/%ff%fe", 400, "InvalidURI"),
        // Invalid bucket names.
        ("GET", "/Bad_Bucket/x", 400, "InvalidBucketName"),
        ("PUT", "/Bad_Bucket", 400, "InvalidBucketName"),
        ("GET", "/ab/x", 400, "InvalidBucketName"),
        // Operations the gateway does not know.
        ("PATCH", "/e2e-bad/key", 501, "NotImplemented"),
        ("GET", "/e2e-bad?unknownsubresource", 501, "NotImplemented"),
        (
            "PUT",
            "/e2e-bad/key?unknownsubresource",
            501,
            "NotImplemented",
        ),
        // A query parameter given twice.
        ("GET", "/e2e-bad?prefix=a&prefix=b", 400, "InvalidArgument"),
        (
            "GET",
            "/e2e-bad?list-type=2&list-type=2",
            400,
            "InvalidArgument",
        ),
    ];
    let mut failures = Vec::new();
    for &(method, target, status, code) in cases {
        let resp = http_request(gateway.addr(), method, target, &[], Vec::new())
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        let got_code = resp.s3_error_code();
        if resp.status != status || got_code.as_deref() != Some(code) {
            failures.push(format!(
                "{method} {target}: expected {status} {code}, got {} {got_code:?}: {:?}",
                resp.status,
                resp.text()
            ));
        } else if !resp.headers.contains_key("x-amz-request-id") {
            failures.push(format!("{method} {target}: no x-amz-request-id header"));
        }
    }
    let recorded = moto.recorded_requests();
    assert!(
        failures.is_empty(),
        "the gateway answered {} of {} bad requests wrongly:\n{}\n(moto saw {} requests)",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        recorded.len()
    );
    assert!(
        recorded.is_empty(),
        "refused requests reached moto:\n{}",
        recorded
            .iter()
            .map(|r| format!("{} {}", r["method"], r["url"]))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // And the bucket holds only what was put before.
    let list = signed_request(
        gateway.addr(),
        "GET",
        "/e2e-bad?list-type=2",
        &[],
        Vec::new(),
        &user,
    )
    .expect("list");
    assert_eq!(list.status, 200, "list: {}", list.text());
    let text = list.text();
    let keys: Vec<&str> = text
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .collect();
    assert_eq!(keys, ["kept"], "bucket listing: {text}");
}

/// A backend that is down gives 503 ServiceUnavailable to signed requests.
#[test]
fn backend_down_is_service_unavailable() {
    // A port nothing listens on (kept bound so that no other test takes it meanwhile).
    let (_reserved, closed) = closed_port();
    let mut config = GatewayConfig::new(format!("http://127.0.0.1:{closed}"));
    config.wait_for_readyz = false;
    let gateway = Gateway::start(&config);
    let user = e2e_user();
    for request in [
        ("GET", "/e2e-down/key"),
        ("PUT", "/e2e-down"),
        ("GET", "/e2e-down?list-type=2"),
        ("GET", "/"),
    ] {
        expect_s3_error(&gateway, Some(&user), request, 503, "ServiceUnavailable");
    }
    let head = signed_request(
        gateway.addr(),
        "HEAD",
        "/e2e-down/key",
        &[],
        Vec::new(),
        &user,
    )
    .expect("HEAD to the gateway");
    assert_eq!(head.status, 503, "HEAD with the backend down");
}

/// Without `allow_anonymous`, an unsigned request is `403 AccessDenied`, one signed with a
/// wrong secret `403 SignatureDoesNotMatch`, one with an unknown access key
/// `403 InvalidAccessKeyId`; none reaches moto.
#[test]
fn unsigned_and_badly_signed_requests_are_refused() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    let wrong_secret = e2e_user().with_wrong_secret();
    let unknown_key = Keys::new("E2EUNKNOWNKEY0000001", "whatever");
    moto.start_recording();
    for request in [
        ("GET", "/"),
        ("PUT", "/e2e-denied"),
        ("GET", "/e2e-denied/key"),
        ("PUT", "/e2e-denied/key"),
        ("DELETE", "/e2e-denied/key"),
        ("GET", "/e2e-denied?list-type=2"),
    ] {
        expect_s3_error(&gateway, None, request, 403, "AccessDenied");
        expect_s3_error(
            &gateway,
            Some(&wrong_secret),
            request,
            403,
            "SignatureDoesNotMatch",
        );
        expect_s3_error(
            &gateway,
            Some(&unknown_key),
            request,
            403,
            "InvalidAccessKeyId",
        );
    }
    let head = http_request(gateway.addr(), "HEAD", "/e2e-denied/key", &[], Vec::new())
        .expect("HEAD to the gateway");
    assert_eq!(head.status, 403, "unsigned HEAD");
    let recorded = moto.recorded_requests();
    assert!(
        recorded.is_empty(),
        "refused requests reached moto: {recorded:?}"
    );
}

/// With `allow_anonymous = true` (and no static user), unsigned requests go through to moto,
/// re-signed with the gateway's key.
#[test]
fn allow_anonymous_lets_unsigned_requests_through() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::anonymous(moto.endpoint()));
    moto.start_recording();
    for (method, target, body, status) in [
        ("PUT", "/e2e-anonymous", Vec::new(), 200),
        (
            "PUT",
            "/e2e-anonymous/key",
            b"anonymous payload".to_vec(),
            200,
        ),
        ("GET", "/e2e-anonymous/key", Vec::new(), 200),
    ] {
        let resp = http_request(gateway.addr(), method, target, &[], body)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(resp.status, status, "{method} {target}: {}", resp.text());
        if method == "GET" {
            assert_eq!(resp.text(), "anonymous payload");
        }
    }
    let recorded = moto.recorded_requests();
    assert_eq!(recorded.len(), 3, "moto received {recorded:?}");
    for request in &recorded {
        let auth = request["headers"]
            .as_object()
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            })
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=test/"),
            "moto received Authorization {auth:?}"
        );
    }
}
