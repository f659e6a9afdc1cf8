//! End-to-end tests of SigV4 verification with real clients: boto3 with its default settings,
//! the AWS CLI v1, s3cmd, minio-py and rclone sign with the gateway's static user
//! ([`support::e2e_user`]) and run the foundation workload through the gateway example to
//! moto — create a bucket, put small and multi-MiB objects (multipart where the client does
//! it), get them whole and ranged, head, list with prefix and delimiter, copy, delete one and
//! several objects, keys with spaces, `+`, `%` and unicode — checking that the bytes round
//! trip. Each client runs twice, as two tests: over plain HTTP and over HTTPS (the gateway's
//! TLS listener with a certificate of a CA the test makes with rcgen; the clients trust that
//! CA: `AWS_CA_BUNDLE` for boto3 and the AWS CLI, `ca_certs_file` for s3cmd, an urllib3
//! `PoolManager(ca_certs=...)` for minio-py, `--ca-cert` for rclone, `SSL_CERT_FILE` for
//! Python's urllib).
//!
//! After each run, the gateway's own metrics must show that it classified every request as a
//! known S3 operation, served the operations the workload is about, and refused nothing but
//! the refusals the test provokes (a client retrying a refused request would otherwise go
//! unnoticed). 404s are answers, not refusals: clients probe for missing objects.
//!
//! Payload modes, as the clients' own request records show (botocore's `before-send` hook,
//! minio-py's trace, the AWS CLI's `--debug`):
//! - boto3 (1.44, default `request_checksum_calculation = when_supported`): over HTTPS,
//!   PutObject and UploadPart are `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, `Content-Encoding:
//!   aws-chunked` with an `x-amz-checksum-crc32` trailer; over HTTP they sign the payload's
//!   SHA-256 and send `x-amz-checksum-crc32` as a header. Everything else signs the SHA-256 of
//!   its (often empty) body.
//! - The AWS CLI: the same as boto3 (`aws s3 cp` parts are aws-chunked with a trailer over
//!   HTTPS).
//! - minio-py: the payload's SHA-256 over HTTP, `UNSIGNED-PAYLOAD` (with `Content-MD5`) over
//!   HTTPS, multipart parts included.
//! - s3cmd: the payload's SHA-256, both protocols. rclone 1.60 (aws-sdk-go v1):
//!   `UNSIGNED-PAYLOAD` for single PUTs, the SHA-256 for parts.
//!
//! Presigned URLs: with `Config(signature_version="s3v4")` boto3 presigns SigV4, which works
//! for GET and PUT. boto3's default `generate_presigned_url` (botocore 1.44.8, which picks the
//! SigV2 `s3-query` signer for S3 presigning unless a signature version is configured) yields a
//! SigV2 URL (`AWSAccessKeyId=`), which the gateway refuses with `400 InvalidRequest` naming
//! `signature_version='s3v4'`; the script accepts a SigV4 URL from a later botocore, and the
//! test asserts which refusals the gateway counted accordingly.
//!
//! moto quirks worked around (they are moto's, not the gateway's — moto answers the same when
//! the client talks to it directly): an object made by a multipart upload has no ACL in moto,
//! so `GetObjectAcl` (part of `s3cmd info`) crashes with 500 — `s3cmd info` is run on a
//! single-PUT object only; moto answers a multipart upload's completion with
//! `x-amz-version-id: null` in an unversioned bucket and then refuses rclone's
//! `HEAD ?versionId=null` with 400 — rclone uploads with `--s3-no-head`; a body with urllib's
//! default `Content-Type: application/x-www-form-urlencoded` is parsed as a form by moto's
//! server and stored empty — the presigned PUT sends `application/octet-stream`.
//!
//! Requests refused before their body is read (bad signature, unknown key) must still reach
//! the client whole: the gateway drains the unread body before answering (`DrainBodyLayer`),
//! so [`boto3_bad_credentials_are_refused_over_https`] fails on any botocore retry.
//!
//! rclone is not a Python package: `cargo xtask test` installs it with apt when it runs as
//! root and rclone is missing; without it the rclone tests print a note and pass.
//!
//! Run with `cargo xtask test -- -E 'binary(e2e_sigv4_clients)'`.

#![cfg(feature = "e2e")]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{
    Gateway, GatewayConfig, Moto, TestPki, assert_success, e2e_user, isolate_aws_env,
    pseudo_random_bytes, python_client, run_captured, run_python, sha256_hex, venv_bin,
    without_ca_env, write_test_pki,
};
use tempfile::TempDir;

const MIB: usize = 1024 * 1024;

/// How the clients reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http,
    Https,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A moto server, the gateway in front of it (plain HTTP, or HTTPS with a test CA), and a
/// temporary directory for the client's files.
struct Setup {
    proto: Proto,
    gateway: Gateway,
    moto: Moto,
    pki: Option<TestPki>,
    dir: TempDir,
}

impl Setup {
    fn start(proto: Proto) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = (proto == Proto::Https).then(|| write_test_pki(dir.path()));
        let moto = Moto::start();
        let mut config = GatewayConfig::new(moto.endpoint());
        config.tls.clone_from(&pki);
        let gateway = Gateway::start(&config);
        Self {
            proto,
            gateway,
            moto,
            pki,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    fn endpoint(&self) -> String {
        self.gateway.endpoint()
    }

    /// `host:port` of [`Setup::endpoint`].
    fn host(&self) -> String {
        let endpoint = self.endpoint();
        endpoint
            .split_once("://")
            .map_or(endpoint.clone(), |(_, host)| host.to_owned())
    }

    /// The test CA's PEM file (HTTPS only).
    fn ca(&self) -> Option<&Path> {
        self.pki.as_ref().map(|pki| pki.ca.as_path())
    }

    /// A bucket name for `client` and this protocol.
    fn bucket(&self, client: &str) -> String {
        format!("e2e-{client}-{}", self.proto.name())
    }

    /// A path in the temporary directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes `cmd` trust exactly the test CA over HTTPS (`AWS_CA_BUNDLE` for botocore,
    /// `SSL_CERT_FILE` for Python's `ssl`), and none of the host's CA settings.
    fn trust<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        without_ca_env(cmd);
        if let Some(ca) = self.ca() {
            cmd.env("AWS_CA_BUNDLE", ca).env("SSL_CERT_FILE", ca);
        }
        cmd
    }

    /// `sigv4_boto3.py <command> --endpoint <gateway> --bucket <bucket> <args>`, run to
    /// success: its output.
    fn boto3(&self, command: &str, bucket: &str, args: &[&str]) -> String {
        let endpoint = self.endpoint();
        let args = [
            &[command, "--endpoint", &endpoint, "--bucket", bucket],
            args,
        ]
        .concat();
        run_python(
            &format!("boto3 {command} over {}", self.proto.name()),
            self.python("sigv4_boto3.py", &args),
            &format!("{command}: all checks passed"),
        )
    }

    /// A `tests/clients/<script>` command with the user's keys, the endpoint and the CA.
    fn python(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = python_client(script);
        self.trust(&mut cmd)
            .args(args)
            .args(e2e_user().client_args());
        cmd
    }

    /// The gateway's `s3_tower_requests_total` by `(operation, status)`.
    fn request_counts(&self) -> BTreeMap<(String, u16), u64> {
        request_counts(&self.gateway.metrics())
    }

    /// Checks the gateway's `s3_tower_requests_total`: each of [`WORKLOAD`] and `served`
    /// answered with a 2xx at least once; with `parts`, exactly that many UploadParts (and the
    /// multipart upload's other operations) were served; and the only refusals (see
    /// [`refusals`]) are exactly `expected` as `(operation, status, count)`.
    fn assert_served(&self, served: &[&str], parts: Option<u64>, expected: &[(&str, u16, u64)]) {
        let counts = self.request_counts();
        let multipart: &[&str] = if parts.is_some() { &MULTIPART } else { &[] };
        let missing: Vec<&str> = [&WORKLOAD[..], multipart, served]
            .concat()
            .into_iter()
            .filter(|op| {
                !counts
                    .keys()
                    .any(|(o, status)| o == op && (200..300).contains(status))
            })
            .collect();
        let refused = refusals(&counts);
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        let uploaded = counts.get(&("UploadPart".to_owned(), 200)).copied();
        assert!(
            missing.is_empty() && refused == expected && parts.is_none_or(|n| uploaded == Some(n)),
            "{}: the gateway did not serve {missing:?}, or served {uploaded:?} parts where \
             {parts:?} were expected, or refused {refused:?} where {expected:?} were expected; \
             requests by operation and status: {counts:?}\n--- gateway log ---\n{}",
            self.proto.name(),
            self.gateway.log()
        );
    }
}

/// Operations every workload has the gateway serve.
const WORKLOAD: [&str; 5] = [
    "CreateBucket",
    "PutObject",
    "GetObject",
    "DeleteObject",
    "DeleteBucket",
];

/// The operations of a multipart upload.
const MULTIPART: [&str; 3] = [
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
];

/// The refusals among `counts`, sorted: requests the gateway could not classify (`Invalid`,
/// `Unknown`) and answers of status 400 and above other than 404.
fn refusals(counts: &BTreeMap<(String, u16), u64>) -> Vec<(&str, u16, u64)> {
    counts
        .iter()
        .filter(|((op, status), _)| {
            op == "Invalid" || op == "Unknown" || (*status >= 400 && *status != 404)
        })
        .map(|((op, status), count)| (op.as_str(), *status, *count))
        .collect()
}

/// `(operation, status) -> count` of the `s3_tower_requests_total` lines of `/metrics`.
fn request_counts(metrics: &str) -> BTreeMap<(String, u16), u64> {
    metrics
        .lines()
        .filter_map(|line| {
            let labels = line.strip_prefix("s3_tower_requests_total{")?;
            let (labels, count) = labels.split_once("} ")?;
            let label = |name: &str| {
                let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
                labels[start..]
                    .split_once('"')
                    .map(|(value, _)| value.to_owned())
            };
            Some((
                (label("operation")?, label("status")?.parse().ok()?),
                count.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// The JSON list of a `payload modes: [...]` line of a client script.
fn payload_modes(stdout: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("payload modes: "))
        .unwrap_or_else(|| panic!("no `payload modes:` line in:\n{stdout}"));
    serde_json::from_str(line).expect("payload modes are a JSON list")
}

/// The `request: {json}` lines of a client script.
fn recorded_requests(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("request: "))
        .map(|l| serde_json::from_str(l).expect("a request record is JSON"))
        .collect()
}

/// A recorded request's `x-amz-content-sha256`, a hex SHA-256 shown as `<sha256 hex>`.
fn recorded_mode(request: &serde_json::Value) -> &str {
    match request["x-amz-content-sha256"].as_str() {
        Some(hex) if hex.len() == 64 => "<sha256 hex>",
        Some(mode) => mode,
        None => "<none>",
    }
}

/// Whether `request` is an UploadPart or a PutObject (a PUT with a body).
fn is_object_upload(request: &serde_json::Value) -> bool {
    let query: Vec<&str> = request["query"]
        .as_array()
        .map(|q| q.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let path = request["path"].as_str().unwrap_or_default();
    request["method"] == "PUT"
        && (query.contains(&"partNumber") || query.is_empty())
        && path.trim_start_matches('/').contains('/')
        && request["content-length"] != "0"
}

/// Two tests running `$client(proto)`: `$http` over HTTP and `$https` over HTTPS, so that a
/// failure names the client and the protocol.
macro_rules! over_http_and_https {
    ($client:ident, $http:ident, $https:ident) => {
        #[test]
        fn $http() {
            $client(Proto::Http);
        }

        #[test]
        fn $https() {
            $client(Proto::Https);
        }
    };
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

// ---------------------------------------------------------------------------------------------
// boto3

/// boto3 with no signature or checksum configuration: the foundation workload, then
/// `upload_file` / `download_file` of 20 MiB (three 8 MiB-parts, concurrent). The payload
/// modes botocore used are asserted from its own request records.
fn boto3_default_settings(proto: Proto) {
    let setup = Setup::start(proto);
    let args = ["--big-mib", "6", "--transfer-mib", "20"];
    let out = setup.boto3("workload", &setup.bucket("boto3"), &args);
    let modes = payload_modes(&out);
    let requests = recorded_requests(&out);
    let uploads: Vec<&serde_json::Value> =
        requests.iter().filter(|r| is_object_upload(r)).collect();
    assert!(
        uploads.len() >= 3,
        "expected the PutObject/UploadPart requests among: {requests:?}"
    );
    let upload_modes: std::collections::BTreeSet<&str> =
        uploads.iter().map(|r| recorded_mode(r)).collect();
    eprintln!(
        "boto3 over {}: payload modes {modes:?}; object uploads: {upload_modes:?}",
        proto.name()
    );
    match proto {
        Proto::Https => {
            assert!(
                modes
                    .iter()
                    .any(|m| m == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                "boto3 over https did not send STREAMING-UNSIGNED-PAYLOAD-TRAILER: {modes:?}"
            );
            for upload in &uploads {
                assert_eq!(
                    (
                        recorded_mode(upload),
                        upload["content-encoding"].as_str(),
                        upload["x-amz-trailer"].as_str(),
                    ),
                    (
                        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                        Some("aws-chunked"),
                        Some("x-amz-checksum-crc32"),
                    ),
                    "an object upload of boto3 over https: {upload}"
                );
            }
        }
        Proto::Http => {
            assert!(
                !modes.iter().any(|m| m.starts_with("STREAMING-")),
                "boto3 over http sent aws-chunked: {modes:?}"
            );
            for upload in &uploads {
                assert_eq!(
                    (
                        recorded_mode(upload),
                        upload["x-amz-checksum-crc32"].is_string()
                    ),
                    ("<sha256 hex>", true),
                    "an object upload of boto3 over http: {upload}"
                );
            }
        }
    }
    let served = [
        "HeadBucket",
        "HeadObject",
        "ListObjects",
        "ListObjectsV2",
        "CopyObject",
        "DeleteObjects",
        "ListBuckets",
    ];
    // upload_file of 20 MiB in 8 MiB parts.
    setup.assert_served(&served, Some(3), &[]);
}

over_http_and_https!(
    boto3_default_settings,
    boto3_default_settings_http,
    boto3_default_settings_https
);

/// Presigned GET and PUT URLs of boto3 (`signature_version="s3v4"`) used with urllib, keys
/// with spaces, `+` and unicode; a URL used for another key is refused; boto3's default
/// presigned URL is SigV2 and refused with a message naming `signature_version='s3v4'` (or,
/// should botocore presign SigV4 by default one day, works).
fn boto3_presigned_urls(proto: Proto) {
    let setup = Setup::start(proto);
    let out = setup.boto3("presign", &setup.bucket("presign"), &[]);
    let tampered = ("GetObject", 403, 1);
    let refusals: &[(&str, u16, u64)] = if out.lines().any(|l| l == "default presign: sigv2") {
        &[tampered, ("GetObject", 400, 1)]
    } else {
        assert!(
            out.lines().any(|l| l == "default presign: sigv4"),
            "the script did not say which presigned URL boto3 made by default:\n{out}"
        );
        &[tampered]
    };
    setup.assert_served(&[], None, refusals);
}

over_http_and_https!(
    boto3_presigned_urls,
    boto3_presigned_urls_http,
    boto3_presigned_urls_https
);

/// Over HTTPS, boto3 with a wrong secret gets `SignatureDoesNotMatch` and with an unknown
/// access key `InvalidAccessKeyId` (botocore's `e.response['Error']['Code']`), for six
/// operations including an aws-chunked PutObject; nothing reaches moto.
///
/// The gateway refuses these requests before it reads their bodies and drains the bodies
/// before answering; without that, a client now and then lost the 403 (its remaining body
/// bytes met a closed socket) or reused a closing connection, and botocore retried. Any retry
/// fails the test.
#[test]
fn boto3_bad_credentials_are_refused_over_https() {
    let setup = Setup::start(Proto::Https);
    setup.moto.start_recording();
    let out = setup.boto3("bad-credentials", "e2e-bad-credentials", &[]);
    assert!(
        payload_modes(&out)
            .iter()
            .any(|m| m == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        "the refused PutObject was not aws-chunked:\n{out}"
    );
    let recorded = setup.moto.recorded_requests();
    assert!(
        recorded.is_empty(),
        "refused requests reached moto: {recorded:?}"
    );
    let counts = setup.request_counts();
    let refused = refusals(&counts);
    let operations = [
        "ListBuckets",
        "CreateBucket",
        "PutObject",
        "GetObject",
        "ListObjectsV2",
        "DeleteObjects",
    ];
    // Two refusals each: wrong secret, unknown key.
    let wrong: Vec<_> = refused
        .iter()
        .filter(|(op, status, count)| !(operations.contains(op) && *status == 403 && *count == 2))
        .collect();
    assert!(
        refused.len() == operations.len() && wrong.is_empty(),
        "expected two 403s for each of {operations:?}, got {refused:?}\n--- gateway log ---\n{}",
        setup.gateway.log()
    );
}

// ---------------------------------------------------------------------------------------------
// The AWS CLI

/// `aws --endpoint-url <gateway>` signing with the static user, with the default
/// configuration otherwise (multipart threshold and part size 8 MiB, 10 concurrent requests).
fn aws_command(setup: &Setup) -> Command {
    let mut cmd = Command::new(venv_bin("aws"));
    isolate_aws_env(&mut cmd);
    setup.trust(&mut cmd);
    e2e_user()
        .set_env(&mut cmd)
        .args(["--endpoint-url", &setup.endpoint()]);
    cmd
}

fn aws_ok(setup: &Setup, args: &[&str]) -> String {
    let quiet: &[&str] = if matches!(args, ["s3", "cp" | "sync", ..]) {
        &["--no-progress"]
    } else {
        &[]
    };
    run_ok(aws_command(setup), &[args, quiet].concat())
}

/// Runs `cmd` with `args`, which must succeed; its stdout.
fn run_ok(mut cmd: Command, args: &[&str]) -> String {
    cmd.args(args);
    let what = format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "));
    assert_success(&what, &run_captured(&mut cmd))
}

/// `aws s3api <command> --bucket <bucket> <args>`, which must succeed: its JSON output
/// (`null` when it prints nothing).
fn s3api(setup: &Setup, command: &str, bucket: &str, args: &[&str]) -> serde_json::Value {
    let args = [&["s3api", command, "--bucket", bucket], args].concat();
    let out = aws_ok(setup, &args);
    if out.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("aws {args:?} printed no JSON ({e}): {out}"))
}

/// The `field`s of the items of `list` in an `s3api` answer, sorted.
fn json_list(value: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    let mut items: Vec<String> = value[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

/// Writes `files` (relative path, bytes) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, body).expect("write a tree file");
    }
}

/// Panics unless `got` has the length and SHA-256 of `want`.
#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(
        (got.len(), sha256_hex(got)),
        (want.len(), sha256_hex(want)),
        "{what}: length and SHA-256"
    );
}

/// Checks that every file of `files` is under `dir` with its bytes.
fn assert_tree(dir: &Path, files: &[(&str, &[u8])], what: &str) {
    for (name, body) in files {
        let got =
            std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{what}: read {name}: {e}"));
        assert_same_bytes(&got, body, &format!("{what}: {name}"));
    }
}

/// The AWS CLI: `aws s3 cp` of 40 MiB up (five 8 MiB parts, concurrent) and down, compared by
/// SHA-256; `aws s3 sync` of a nested tree both ways; `aws s3api` put-object, get-object (whole
/// and ranged), head-object, list-objects-v2 with prefix and delimiter, copy-object,
/// delete-objects; `aws s3 rb --force`.
fn aws_cli(proto: Proto) {
    let setup = Setup::start(proto);
    let bucket = setup.bucket("cli");
    let s3 = format!("s3://{bucket}");
    aws_ok(&setup, &["s3", "mb", &s3]);

    // 40 MiB: multipart with the defaults. `--debug` shows the payload mode of each part.
    let big = pseudo_random_bytes(40 * MIB, 0xa75c_0001);
    let up = setup.path("big.bin");
    std::fs::write(&up, &big).expect("write big.bin");
    let key = "big/forty MiB ü+.bin";
    let url = format!("{s3}/{key}");
    let mut cp = aws_command(&setup);
    cp.args(["s3", "cp", "--no-progress", "--debug", path_str(&up), &url]);
    let upload = run_captured(&mut cp);
    assert_success("aws s3 cp (upload, --debug)", &upload);
    let trailer = String::from_utf8_lossy(&upload.stderr)
        .matches("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        .count();
    eprintln!(
        "aws s3 cp over {}: STREAMING-UNSIGNED-PAYLOAD-TRAILER {trailer} times in --debug",
        proto.name()
    );
    match proto {
        Proto::Https => assert!(trailer >= 5, "aws s3 cp over https: parts not aws-chunked"),
        Proto::Http => assert_eq!(trailer, 0, "aws s3 cp over http sent aws-chunked"),
    }
    let head = s3api(&setup, "head-object", &bucket, &["--key", key]);
    assert_eq!(head["ContentLength"].as_u64(), Some(40 << 20), "{head}");
    let etag = head["ETag"].as_str().unwrap_or_default();
    assert!(etag.ends_with("-5\""), "a 5-part upload's ETag, got {head}");
    let down = setup.path("big.down");
    aws_ok(&setup, &["s3", "cp", &url, path_str(&down)]);
    let got = std::fs::read(&down).expect("read big.down");
    assert_same_bytes(&got, &big, "aws s3 cp down");

    // sync a nested tree up and back.
    let tree = setup.path("tree");
    let files: [(&str, &[u8]); 4] = [
        ("a.txt", b"alpha\n"),
        ("nested/b+plus.txt", b"beta\n"),
        ("nested/deeper/with space ü.txt", "ünïcödé\n".as_bytes()),
        ("nested/deeper/日本.bin", &big[..100_000]),
    ];
    write_tree(&tree, &files);
    let tree_url = format!("{s3}/tree/");
    let synced = aws_ok(&setup, &["s3", "sync", path_str(&tree), &tree_url]);
    assert_eq!(synced.lines().count(), files.len(), "aws s3 sync: {synced}");
    let listed = s3api(&setup, "list-objects-v2", &bucket, &["--prefix", "tree/"]);
    let mut expected: Vec<String> = files.iter().map(|(n, _)| format!("tree/{n}")).collect();
    expected.sort();
    assert_eq!(json_list(&listed, "Contents", "Key"), expected, "{listed}");
    let back = setup.path("back");
    aws_ok(&setup, &["s3", "sync", &tree_url, path_str(&back)]);
    assert_tree(&back, &files, "aws s3 sync down");

    // s3api.
    let small = setup.path("small.txt");
    let body = b"s3api put-object body\n".repeat(40);
    std::fs::write(&small, &body).expect("write small.txt");
    let api_key = "api/with space + plus ü.txt";
    for key in [api_key, "api/sub/x.txt"] {
        let put = s3api(
            &setup,
            "put-object",
            &bucket,
            &["--key", key, "--body", path_str(&small)],
        );
        assert!(put["ETag"].is_string(), "put-object {key}: {put}");
    }
    let out = setup.path("get.out");
    let get_object = |key: &str, range: &[&str]| {
        let get = s3api(
            &setup,
            "get-object",
            &bucket,
            &[&["--key", key], range, &[path_str(&out)]].concat(),
        );
        (get, std::fs::read(&out).expect("read get.out"))
    };
    let (get, got) = get_object(api_key, &[]);
    assert_eq!(
        get["ContentLength"].as_u64(),
        Some(body.len() as u64),
        "{get}"
    );
    assert_same_bytes(&got, &body, "get-object");
    let (_, got) = get_object(api_key, &["--range", "bytes=5-14"]);
    assert_eq!(got, &body[5..15], "get-object --range bytes=5-14");
    let head = s3api(&setup, "head-object", &bucket, &["--key", api_key]);
    assert_eq!(
        head["ContentLength"].as_u64(),
        Some(body.len() as u64),
        "{head}"
    );
    let copy_key = "copies/ñ+é copy.txt";
    let source = format!("{bucket}/{api_key}");
    s3api(
        &setup,
        "copy-object",
        &bucket,
        &["--key", copy_key, "--copy-source", &source],
    );
    assert_same_bytes(&get_object(copy_key, &[]).1, &body, "the copy");
    let listed = s3api(
        &setup,
        "list-objects-v2",
        &bucket,
        &["--prefix", "api/", "--delimiter", "/"],
    );
    assert_eq!(
        (
            json_list(&listed, "Contents", "Key"),
            json_list(&listed, "CommonPrefixes", "Prefix")
        ),
        (vec![api_key.to_owned()], vec!["api/sub/".to_owned()]),
        "list-objects-v2 --prefix api/ --delimiter /: {listed}"
    );
    let mut doomed = [api_key, "api/sub/x.txt", copy_key];
    doomed.sort_unstable();
    let delete = serde_json::json!({
        "Objects": doomed.iter().map(|k| serde_json::json!({"Key": k})).collect::<Vec<_>>(),
    });
    let deleted = s3api(
        &setup,
        "delete-objects",
        &bucket,
        &["--delete", &delete.to_string()],
    );
    assert_eq!(
        json_list(&deleted, "Deleted", "Key"),
        doomed,
        "delete-objects: {deleted}"
    );
    let listed = s3api(&setup, "list-objects-v2", &bucket, &["--prefix", "api/"]);
    assert!(json_list(&listed, "Contents", "Key").is_empty(), "{listed}");

    aws_ok(&setup, &["s3", "rb", "--force", &s3]);
    // 40 MiB in 8 MiB parts.
    let served = ["HeadObject", "ListObjectsV2", "CopyObject", "DeleteObjects"];
    setup.assert_served(&served, Some(5), &[]);
}

over_http_and_https!(aws_cli, aws_cli_http, aws_cli_https);

// ---------------------------------------------------------------------------------------------
// s3cmd

/// s3cmd (SigV4, path-style) with a config file for this gateway: put, multipart put (12 MiB
/// in 5 MiB parts), get, ls (prefix and delimiter, recursive), info, cp, del, del --recursive
/// (multi-object delete), rb.
fn s3cmd(proto: Proto) {
    let setup = Setup::start(proto);
    let user = e2e_user();
    let host = setup.host();
    let config = setup.path("s3cfg");
    let tls = setup.ca().map_or_else(
        || "use_https = False\n".to_owned(),
        |ca| {
            format!(
                "use_https = True\nca_certs_file = {}\ncheck_ssl_certificate = True\n\
                 check_ssl_hostname = True\n",
                path_str(ca)
            )
        },
    );
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\n\
             host_bucket = {host}\n{tls}signature_v2 = False\nbucket_location = us-east-1\n",
            user.access_key_id, user.secret_access_key
        ),
    )
    .expect("write s3cfg");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(venv_bin("s3cmd"));
        isolate_aws_env(&mut cmd);
        setup.trust(&mut cmd);
        cmd.arg("-c").arg(&config).arg("--no-progress");
        run_ok(cmd, args)
    };
    let bucket = setup.bucket("s3cmd");
    let s3 = format!("s3://{bucket}");
    let out = run(&["mb", &s3]);
    assert!(out.contains(&format!("Bucket '{s3}/' created")), "{out}");

    let big = pseudo_random_bytes(12 * MIB, 0x053c_3d00);
    let big_key = "big/twelve MiB ü+.bin";
    let files: [(&str, &[u8]); 4] = [
        ("dir/a.txt", b"alpha\n"),
        ("dir/with space + plus ü.txt", "ünïcödé + body\n".as_bytes()),
        ("dir/sub/日本 100%.txt", b"japanese key\n"),
        (big_key, &big),
    ];
    let up = setup.path("up");
    write_tree(&up, &files);
    for (key, _) in &files[..3] {
        run(&["put", path_str(&up.join(key)), &format!("{s3}/{key}")]);
    }
    let big_url = format!("{s3}/{big_key}");
    run(&[
        "put",
        "--multipart-chunk-size-mb=5",
        path_str(&up.join(big_key)),
        &big_url,
    ]);
    let down = setup.path("down");
    std::fs::create_dir(&down).expect("mkdir down");
    run(&[
        "get",
        "--recursive",
        &format!("{s3}/"),
        &format!("{}/", path_str(&down)),
    ]);
    assert_tree(&down, &files, "s3cmd get --recursive");

    let ls = run(&["ls", &format!("{s3}/dir/")]);
    let entries: Vec<&str> = ls
        .lines()
        .filter_map(|l| l.split_once("  s3://").map(|(_, e)| e.trim_end()))
        .collect();
    let prefixed = |k: &str| format!("{bucket}/{k}");
    assert_eq!(
        entries,
        [
            prefixed("dir/sub/"),
            prefixed("dir/a.txt"),
            prefixed("dir/with space + plus ü.txt"),
        ],
        "s3cmd ls {s3}/dir/ said: {ls}"
    );
    let ls = run(&["ls", "--recursive", &s3]);
    assert!(
        ls.lines()
            .any(|l| l.ends_with(&format!(" {}  {big_url}", big.len()))),
        "s3cmd ls --recursive said: {ls}"
    );
    assert_eq!(
        ls.lines().count(),
        files.len(),
        "s3cmd ls --recursive: {ls}"
    );
    // `info` reads the object's ACL: only on a single-PUT object (see the module docs).
    let (info_key, info_body) = files[1];
    let info = run(&["info", &format!("{s3}/{info_key}")]);
    assert!(
        info.contains(&format!("File size: {}", info_body.len())),
        "s3cmd info said: {info}"
    );

    let copy = format!("{s3}/copies/ñ+é copy.txt");
    run(&["cp", &format!("{s3}/{info_key}"), &copy]);
    let copy_down = setup.path("copy.down");
    run(&["get", "--force", &copy, path_str(&copy_down)]);
    let got = std::fs::read(&copy_down).expect("read copy.down");
    assert_same_bytes(&got, info_body, "s3cmd cp");

    let out = run(&["del", &format!("{s3}/dir/a.txt")]);
    assert!(out.contains("delete: "), "s3cmd del said: {out}");
    run(&["del", "--recursive", "--force", &s3]);
    let ls = run(&["ls", "--recursive", &s3]);
    assert!(ls.trim().is_empty(), "left after del --recursive: {ls}");
    let out = run(&["rb", &s3]);
    assert!(out.contains(&format!("Bucket '{s3}/' removed")), "{out}");

    // 12 MiB in 5 MiB parts.
    let served = ["HeadObject", "CopyObject", "DeleteObjects"];
    setup.assert_served(&served, Some(3), &[]);
}

over_http_and_https!(s3cmd, s3cmd_http, s3cmd_https);

// ---------------------------------------------------------------------------------------------
// minio-py

/// minio-py: the foundation workload of `sigv4_minio.py`, with 11 MiB put in 5 MiB parts by
/// put_object and fput_object; its payload modes asserted from its own trace.
fn minio(proto: Proto) {
    let setup = Setup::start(proto);
    let host = setup.host();
    let bucket = setup.bucket("minio");
    let mut args = vec!["--endpoint", &host, "--bucket", &bucket, "--big-mib", "11"];
    let ca = setup.ca().map(path_str);
    if let Some(ca) = ca {
        args.extend(["--ca", ca]);
    }
    let out = run_python(
        &format!("minio-py over {}", proto.name()),
        setup.python("sigv4_minio.py", &args),
        "minio: all checks passed",
    );
    let modes = payload_modes(&out);
    eprintln!("minio-py over {}: payload modes {modes:?}", proto.name());
    let expected = match proto {
        Proto::Http => "<sha256 hex>",
        Proto::Https => "UNSIGNED-PAYLOAD",
    };
    assert_eq!(
        modes,
        [expected],
        "minio-py's payload modes over {}",
        proto.name()
    );
    // Two uploads of 11 MiB in 5 MiB parts.
    let served = [
        "HeadBucket",
        "HeadObject",
        "ListObjectsV2",
        "CopyObject",
        "DeleteObjects",
    ];
    setup.assert_served(&served, Some(6), &[]);
}

over_http_and_https!(minio, minio_http, minio_https);

// ---------------------------------------------------------------------------------------------
// rclone

/// rclone with an on-the-fly S3 remote: mkdir, copy a tree up (one 6 MiB file in 5 MiB
/// parts), lsjson, copy it down and compare, deletefile, delete, purge.
fn rclone(proto: Proto) {
    match Command::new("rclone").arg("version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`rclone version` failed: {out:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "note: rclone is not installed (`cargo xtask test` installs it with apt when it \
                 runs as root); skipping the rclone test over {}",
                proto.name()
            );
            return;
        }
        Err(e) => panic!("cannot run rclone: {e}"),
    }
    let setup = Setup::start(proto);
    let user = e2e_user();
    let remote = format!(
        ":s3,provider=Other,access_key_id={},secret_access_key={},endpoint='{}',\
         force_path_style=true:",
        user.access_key_id,
        user.secret_access_key,
        setup.endpoint()
    );
    let rclone_config = setup.path("rclone.conf");
    let run = |args: &[&str]| {
        let mut cmd = Command::new("rclone");
        isolate_aws_env(&mut cmd);
        // rclone 1.60 (aws-sdk-go v1) fails on any AWS_CA_BUNDLE ("unable to load custom CA
        // bundle, HTTPClient's transport unsupported type"): `--ca-cert` only.
        without_ca_env(&mut cmd);
        cmd.env("RCLONE_CONFIG", &rclone_config).args([
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ]);
        if let Some(ca) = setup.ca() {
            cmd.arg("--ca-cert").arg(ca);
        }
        run_ok(cmd, args)
    };
    let bucket = setup.bucket("rclone");
    let root = format!("{remote}{bucket}");

    let tree = setup.path("tree");
    let six = pseudo_random_bytes(6 * MIB, 0x00c1_004e);
    let files: [(&str, &[u8]); 4] = [
        ("a.txt", b"alpha\n"),
        ("b+plus ü.txt", "ünïcödé\n".as_bytes()),
        ("sub dir/日本.bin", &six[..300_000]),
        ("sub dir/six MiB.bin", &six),
    ];
    write_tree(&tree, &files);
    run(&["mkdir", &root]);
    // 5 MiB parts: the 6 MiB file is a multipart upload. `--s3-no-head`: see the module docs.
    run(&[
        "copy",
        path_str(&tree),
        &format!("{root}/tree"),
        "--s3-upload-cutoff",
        "5M",
        "--s3-chunk-size",
        "5M",
        "--s3-no-head",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&run(&[
        "lsjson",
        "--recursive",
        "--files-only",
        &format!("{root}/tree"),
    ]))
    .expect("rclone lsjson prints JSON");
    let mut entries: Vec<(String, u64)> = listed
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|e| {
            (
                e["Path"].as_str().unwrap_or_default().to_owned(),
                e["Size"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    entries.sort();
    let mut expected: Vec<(String, u64)> = files
        .iter()
        .map(|(name, body)| ((*name).to_owned(), body.len() as u64))
        .collect();
    expected.sort();
    assert_eq!(entries, expected, "rclone lsjson: {listed}");

    let back = setup.path("back");
    run(&["copy", &format!("{root}/tree"), path_str(&back)]);
    assert_tree(&back, &files, "rclone copy down");

    run(&["deletefile", &format!("{root}/tree/a.txt")]);
    run(&["delete", &format!("{root}/tree/sub dir")]);
    let left = run(&["lsf", "--recursive", "--files-only", &root]);
    assert_eq!(
        left.trim(),
        "tree/b+plus ü.txt",
        "after deletefile and delete"
    );
    run(&["purge", &root]);
    let buckets = run(&["lsf", &remote]);
    assert!(
        !buckets.lines().any(|l| l.trim_end_matches('/') == bucket),
        "the bucket is still there after purge: {buckets}"
    );

    // 6 MiB in 5 MiB parts.
    setup.assert_served(&["ListObjects"], Some(2), &[]);
}

over_http_and_https!(rclone, rclone_http, rclone_https);
