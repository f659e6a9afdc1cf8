//! End-to-end tests of the gateway binary itself: `--dev` mode (its users and AWS files, and
//! the acceptance check: a 100 MiB `aws s3 cp` round trip), the TLS listener, graceful
//! shutdown, configuration (file, environment, flags, fatal errors, static users), the backend
//! credential sources, the admin port's metrics, more real clients (s3cmd, the MinIO SDK), and
//! authorization (the `--dev` seed policy, Rego policy files reloaded on SIGHUP and on change).
//!
//! Run with `cargo xtask test -- e2e_gateway`, which installs the tools into `.tools/`, builds
//! the gateway with `--all-features` (so `aws-default-chain` is available) and sets
//! `S3_TOWER_TOOLS` / `S3_TOWER_GATEWAY_BIN`. Every test starts its own processes on free
//! ports with temporary directories.
//!
//! The gateway children run with a cleared environment (only `PATH`, `RUST_LOG` and what a
//! test sets), so nothing of the host (`S3_TOWER__*`, `AWS_*`, `~/.aws`) leaks in. Which
//! credentials the backend received is checked with moto's request recorder: moto accepts any
//! key, so a successful request alone proves nothing.
//!
//! Clients sign their requests: with the static user of the test configs
//! ([`support::e2e_user`]), or, in `--dev` mode, with the keys the gateway wrote to
//! `<data-dir>/.dev/credentials`.

#![cfg(feature = "e2e")]

mod support;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{
    ChildGuard, Gateway, GatewayConfig, Keys, Moto, STARTUP_TIMEOUT, TestPki, assert_success,
    closed_port, e2e_user, free_port, gateway_bin, http_request, isolate_aws_env, local,
    presigned_target, pseudo_random_bytes, python_client, run_captured, run_python, sha256_hex,
    signed_request, static_users_toml, venv_bin, without_ca_env, write_test_pki,
};

const MIB: usize = 1024 * 1024;

/// The Python client programs of this file.
const CLIENTS: &str = "gateway_e2e.py";

/// The gateway command: a cleared environment with only `PATH` and `RUST_LOG`, run in `dir`.
fn gateway_command(dir: &Path) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
    cmd
}

/// A gateway started by [`start_gateway`].
struct Running {
    /// The S3 port.
    port: u16,
    /// The admin port.
    admin_port: u16,
    child: ChildGuard,
}

impl Running {
    fn addr(&self) -> std::net::SocketAddr {
        local(self.port)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn admin_get(&self, path: &str) -> Result<support::HttpResponse, String> {
        http_request(local(self.admin_port), "GET", path, &[], Vec::new())
    }

    /// Sends SIGTERM.
    fn sigterm(&self) {
        let out = run_captured(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        assert_success("kill -TERM <gateway>", &out);
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts the gateway built by `make(port, admin_port)` and waits until `/readyz` on the admin
/// port answers 200. A start that fails because a port was taken meanwhile (by a parallel
/// test) is retried on other ports; any other early exit fails the test with the log.
fn start_gateway(dir: &Path, what: &str, mut make: impl FnMut(u16, u16) -> Command) -> Running {
    let mut last_log = String::new();
    for attempt in 0..3 {
        let (port, admin_port) = (free_port(), free_port());
        let log = dir.join(format!("{}-{attempt}.log", what.replace(' ', "_")));
        let mut child = ChildGuard::spawn(what, make(port, admin_port), &log);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.exited() {
                let log = child.log();
                assert!(
                    log.contains("Address already in use"),
                    "{what} exited while starting ({status}):\n{log}"
                );
                last_log = log;
                break;
            }
            if http_request(local(admin_port), "GET", "/readyz", &[], Vec::new())
                .is_ok_and(|r| r.status == 200)
            {
                return Running {
                    port,
                    admin_port,
                    child,
                };
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready after {STARTUP_TIMEOUT:?}:\n{}",
                child.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{what}: a port was taken on each of 3 attempts; the last log:\n{last_log}");
}

/// Environment variables for a gateway.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Runs the gateway with `--config config` and `env`; it must refuse to start, exiting 1.
/// Returns its stderr. Fails the test if it is still running after 15 s.
fn startup_failure(dir: &Path, config: &Path, env: Env<'_>) -> String {
    let out_path = dir.join("failure.stdout");
    let err_path = dir.join("failure.stderr");
    let mut cmd = gateway_command(dir);
    cmd.arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create a stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create a stderr file"));
    let mut child: Child = cmd.spawn().expect("start the gateway");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the gateway") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the gateway kept running although it should have refused to start; its \
                 stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status; stdout:\n{}\nstderr:\n{stderr}",
        std::fs::read_to_string(&out_path).unwrap_or_default()
    );
    stderr
}

/// [`startup_failure`], whose stderr must say `expected`.
fn assert_startup_fails_saying(dir: &Path, config: &Path, env: Env<'_>, expected: &str) {
    let stderr = startup_failure(dir, config, env);
    assert!(
        stderr.contains(expected),
        "stderr does not say `{expected}`:\n{stderr}"
    );
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A gateway config with one default backend `main` at `endpoint` and the static user
/// [`e2e_user`]; `credentials` is the body of the backend's `[backends.credentials]` table,
/// `extra` is appended.
fn config_toml(
    listen: Option<std::net::SocketAddr>,
    admin: std::net::SocketAddr,
    data_dir: &Path,
    anonymous: bool,
    endpoint: &str,
    credentials: &str,
    extra: &str,
) -> String {
    let listen = listen.map_or_else(String::new, |l| {
        format!("listen = {}\n", toml_str(&l.to_string()))
    });
    format!(
        "[server]\n{listen}admin_listen = {admin}\ndata_dir = {data}\n\n\
         [auth]\nallow_anonymous = {anonymous}\n{users}\n\
         [routing]\ndefault_backend = \"main\"\n\n\
         [[backends]]\nname = \"main\"\nendpoint = {endpoint}\nregion = \"us-east-1\"\n\n\
         [backends.credentials]\n{credentials}\n{extra}",
        admin = toml_str(&admin.to_string()),
        data = toml_str(path_str(data_dir)),
        users = static_users_toml(&[e2e_user()]),
        endpoint = toml_str(endpoint),
    )
}

/// The `[backends.credentials]` table of the moto tests whose backend key is not the point.
const MOTO_CREDENTIALS: &str =
    "source = \"static\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"";

/// Starts a gateway from [`config_toml`] (static user [`e2e_user`], anonymous access off):
/// backend `main` at `endpoint` with the `credentials` table, `extra` appended (tables of
/// their own in TOML), and `env` added to the gateway's environment.
fn configured_gateway(
    dir: &Path,
    what: &str,
    endpoint: &str,
    credentials: &str,
    extra: &str,
    env: &[(&str, OsString)],
) -> Running {
    let data_dir = dir.join("data");
    let config_path = dir.join("gateway.toml");
    start_gateway(dir, what, |port, admin| {
        let toml = config_toml(
            Some(local(port)),
            local(admin),
            &data_dir,
            false,
            endpoint,
            credentials,
            extra,
        );
        std::fs::write(&config_path, toml).expect("write gateway.toml");
        let mut cmd = gateway_command(dir);
        cmd.arg("--config").arg(&config_path);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd
    })
}

/// `aws <global> <args>`, isolated from the host's AWS configuration, making one attempt per
/// request (no retry hides a failure, nor slows down an expected one), without progress
/// output.
fn aws_command(global: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(venv_bin("aws"));
    isolate_aws_env(&mut cmd);
    cmd.env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(global)
        .args(args);
    if matches!(args, ["s3", "cp", ..]) {
        cmd.arg("--no-progress");
    }
    cmd
}

/// The AWS CLI signing with `keys` at `--endpoint-url endpoint`; `global` comes before the
/// command (e.g. `--ca-bundle`).
fn aws_cli(
    dir: &Path,
    endpoint: &str,
    keys: &Keys,
    global: &[&str],
    args: &[&str],
) -> std::process::Output {
    let config = dir.join("aws-config");
    if !config.exists() {
        std::fs::write(&config, "[default]\nregion = us-east-1\n").expect("write aws-config");
    }
    let mut cmd = aws_command(&[&["--endpoint-url", endpoint], global].concat(), args);
    keys.set_env(&mut cmd).env("AWS_CONFIG_FILE", &config);
    run_captured(&mut cmd)
}

fn aws_ok(dir: &Path, endpoint: &str, keys: &Keys, global: &[&str], args: &[&str]) -> String {
    let out = aws_cli(dir, endpoint, keys, global, args);
    assert_success(&format!("aws {}", args.join(" ")), &out)
}

/// The value of a request header moto recorded (header names are case-insensitive).
fn recorded_header<'a>(request: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// `METHOD /path` of a recorded request (moto records the absolute URL).
fn recorded_shape(request: &serde_json::Value) -> String {
    let url = request["url"].as_str().unwrap_or_default();
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url);
    format!("{} {path}", request["method"].as_str().unwrap_or_default())
}

/// Checks that every request moto recorded is signed with `access_key` (SigV4 in the
/// `Authorization` header), carries `token` as `X-Amz-Security-Token` (or none when `None`),
/// and that none of `forbidden` appears in any header or URL.
fn assert_backend_saw_only(
    recorded: &[serde_json::Value],
    access_key: &str,
    token: Option<&str>,
    forbidden: &[&str],
) {
    assert!(!recorded.is_empty(), "moto recorded no request");
    let prefix = format!("AWS4-HMAC-SHA256 Credential={access_key}/");
    for request in recorded {
        let shape = recorded_shape(request);
        let auth = recorded_header(request, "authorization");
        assert!(
            auth.is_some_and(|a| a.starts_with(&prefix)),
            "{shape}: moto received Authorization {auth:?}, expected one starting with \
             {prefix:?}\n{request}"
        );
        assert_eq!(
            recorded_header(request, "x-amz-security-token"),
            token,
            "{shape}: the X-Amz-Security-Token moto received\n{request}"
        );
        let headers_and_url = format!("{} {}", request["headers"], request["url"]);
        for needle in forbidden {
            assert!(
                !headers_and_url.contains(needle),
                "{shape}: moto received {needle:?}: {headers_and_url}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. --dev mode

/// Starts `gateway --dev --data-dir <dir>/data` on free ports, with `env` added to its
/// environment.
fn start_dev_gateway(dir: &Path, what: &str, env: &[(&str, &str)]) -> Running {
    let data_dir = dir.join("data");
    start_gateway(dir, what, |port, admin| {
        let mut cmd = gateway_command(dir);
        cmd.arg("--dev")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &local(port).to_string()])
            .args(["--admin-listen", &local(admin).to_string()])
            .envs(env.iter().copied());
        cmd
    })
}

/// The environment of a `--dev` gateway that does not encrypt.
const DEV_PLAINTEXT: &[(&str, &str)] = &[("S3_TOWER__ENCRYPTION__ENABLED", "false")];

/// The AWS files a `--dev` gateway writes into `<data-dir>/.dev`.
struct DevFiles {
    /// `config`: profiles `admin` and `reader` with region and endpoint.
    config: PathBuf,
    /// `credentials`: their keys.
    credentials: PathBuf,
}

impl DevFiles {
    fn of(data_dir: &Path) -> Self {
        let dir = data_dir.join(".dev");
        Self {
            config: dir.join("config"),
            credentials: dir.join("credentials"),
        }
    }

    /// The keys of `profile` in the credentials file.
    fn keys(&self, profile: &str) -> Keys {
        let text = std::fs::read_to_string(&self.credentials)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.credentials.display()));
        let (mut section, mut id, mut secret) = ("", None, None);
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name;
            } else if section == profile
                && let Some((key, value)) = line.split_once('=')
            {
                match key.trim() {
                    "aws_access_key_id" => id = Some(value.trim().to_owned()),
                    "aws_secret_access_key" => secret = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        match (id, secret) {
            (Some(id), Some(secret)) => Keys::new(id, secret),
            _ => panic!("no keys for profile {profile} in:\n{text}"),
        }
    }

    /// Writes a credentials file whose profiles have the right access key ids and wrong
    /// secrets to `path`.
    fn write_wrong_secrets(&self, path: &Path) {
        let mut text = String::new();
        for profile in ["admin", "reader"] {
            let keys = self.keys(profile).with_wrong_secret();
            let _ = write!(
                text,
                "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                keys.access_key_id, keys.secret_access_key
            );
        }
        std::fs::write(path, text).expect("write the wrong credentials file");
    }

    /// `aws --profile <profile> <args>` with nothing but the dev config file and the
    /// `credentials` file: no endpoint, region or key flag.
    fn aws(&self, credentials: &Path, profile: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = aws_command(&["--profile", profile], args);
        cmd.env("AWS_CONFIG_FILE", &self.config)
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env_remove("AWS_DEFAULT_REGION");
        run_captured(&mut cmd)
    }

    /// [`DevFiles::aws`] with the gateway's credentials file, which must succeed; its stdout.
    fn aws_ok(&self, profile: &str, args: &[&str]) -> String {
        let out = self.aws(&self.credentials, profile, args);
        assert_success(&format!("aws --profile {profile} {}", args.join(" ")), &out)
    }

    /// `aws --profile <profile> s3 ls <args>`, which must succeed: the objects it lists, as
    /// `(size, name)` (prefix lines are left out), and its whole output.
    fn ls_objects(&self, profile: &str, args: &[&str]) -> (Vec<(usize, String)>, String) {
        let out = self.aws_ok(profile, &[&["s3", "ls"], args].concat());
        let objects = out
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace().skip(2);
                let size = fields.next()?.parse().ok()?;
                Some((size, fields.next()?.to_owned()))
            })
            .collect();
        (objects, out)
    }

    /// `aws s3 cp` of `file` up to `url`, then back down to `<file>.down`: the bytes that came
    /// back.
    fn cp_round_trip(&self, profile: &str, file: &Path, url: &str) -> Vec<u8> {
        let down = file.with_extension("down");
        self.aws_ok(profile, &["s3", "cp", path_str(file), url]);
        self.aws_ok(profile, &["s3", "cp", url, path_str(&down)]);
        std::fs::read(&down).unwrap_or_else(|e| panic!("read {}: {e}", down.display()))
    }

    /// Runs [`DevFiles::aws`] with a credentials file of wrong secrets and checks that it fails
    /// with `SignatureDoesNotMatch`.
    fn assert_wrong_secret_refused(&self, dir: &Path, profile: &str, args: &[&str]) {
        let wrong = dir.join("wrong-credentials");
        self.write_wrong_secrets(&wrong);
        let out = self.aws(&wrong, profile, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("(SignatureDoesNotMatch)"),
            "aws --profile {profile} {} with a wrong secret: expected SignatureDoesNotMatch, \
             got {}:\n{stderr}",
            args.join(" "),
            out.status
        );
    }
}

/// `--dev` with no config file: anonymous access is off; the gateway makes users `admin` and
/// `reader` with random keys in `<data-dir>/.dev/credentials` (mode 0600, directory 0700) and
/// profiles of the same names in `<data-dir>/.dev/config` carrying region and endpoint, and
/// says how to use them without printing a secret. An unsigned request gets
/// `403 AccessDenied`. The AWS CLI with only `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`
/// and `--profile admin` creates, puts, gets and lists; boto3 signing with admin's keys too;
/// the objects are files of the s3s-fs layout under `<data-dir>/buckets`. `reader`
/// authenticates as well; either profile with a wrong secret gets `SignatureDoesNotMatch`.
/// SIGTERM with nothing in flight: exit status 0 at once, and the admin port goes away.
/// Restarted on the same data dir (on another port), the gateway reuses the keys and points
/// the profiles at its new address.
#[test]
fn dev_mode_users_sign_with_the_aws_cli_and_boto3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    // Encryption off (the environment overrides --dev's default): the s3s-fs layout holds the
    // uploaded bytes, and boto3 checks the ETag is their MD5 (encrypted, it is not).
    let mut gateway = start_dev_gateway(dir.path(), "gateway --dev", DEV_PLAINTEXT);
    let endpoint = gateway.endpoint();
    let files = DevFiles::of(&data_dir);
    let (admin, reader) = (files.keys("admin"), files.keys("reader"));
    for (keys, prefix) in [(&admin, "DEVA"), (&reader, "DEVR")] {
        assert!(
            keys.access_key_id.len() == 20
                && keys.access_key_id.starts_with(prefix)
                && keys.secret_access_key.len() == 40,
            "unexpected dev keys {:?} (secret of {} characters)",
            keys.access_key_id,
            keys.secret_access_key.len()
        );
    }
    assert_ne!(admin.access_key_id, reader.access_key_id);

    let startup = gateway.child.log();
    for expected in [
        format!(
            "s3-tower gateway (development mode) at http://127.0.0.1:{}",
            gateway.port
        ),
        format!("export AWS_CONFIG_FILE={}", files.config.display()),
        format!(
            "export AWS_SHARED_CREDENTIALS_FILE={}",
            files.credentials.display()
        ),
        "aws --profile admin s3 mb s3://demo".to_owned(),
        format!("--endpoint-url {endpoint} s3 ls"),
    ] {
        assert!(
            startup.contains(&expected),
            "the startup output does not say `{expected}`:\n{startup}"
        );
    }
    assert!(
        !startup.contains("ANONYMOUS ACCESS IS ON"),
        "anonymous access is on in --dev mode:\n{startup}"
    );
    assert!(
        startup.contains("Objects are NOT encrypted ([encryption] enabled = false)."),
        "{startup}"
    );
    for keys in [&admin, &reader] {
        assert!(
            !startup.contains(&keys.secret_access_key),
            "a secret is in the startup output"
        );
    }
    let config = std::fs::read_to_string(&files.config).expect("read the dev config file");
    for profile in ["admin", "reader"] {
        assert!(
            config.contains(&format!(
                "[profile {profile}]\nregion = us-east-1\nendpoint_url = {endpoint}\n"
            )),
            "{}:\n{config}",
            files.config.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            mode(&files.credentials),
            0o600,
            "mode of the credentials file"
        );
        assert_eq!(
            mode(&data_dir.join(".dev")),
            0o700,
            "mode of <data-dir>/.dev"
        );
    }

    // Anonymous access is off.
    let resp = http_request(gateway.addr(), "GET", "/", &[], Vec::new()).expect("GET /");
    resp.assert_s3_error(403, "AccessDenied", "unsigned request to --dev");

    // The AWS CLI with the admin profile and nothing else.
    let out = files.aws_ok("admin", &["s3", "mb", "s3://dev-cli"]);
    assert_eq!(out.trim(), "make_bucket: dev-cli", "aws s3 mb");
    let text = b"hello from the AWS CLI\n".repeat(1000);
    let up = dir.path().join("readme.txt");
    std::fs::write(&up, &text).expect("write readme.txt");
    let got = files.cp_round_trip("admin", &up, "s3://dev-cli/docs/readme.txt");
    assert!(got == text, "aws s3 cp down returned other bytes");
    let on_disk = data_dir.join("buckets/dev-cli/docs/readme.txt");
    assert!(
        std::fs::read(&on_disk).is_ok_and(|b| b == text),
        "{} does not hold the uploaded bytes",
        on_disk.display()
    );

    // boto3 signing with admin's keys.
    let data = pseudo_random_bytes(300_000, 0x00de_c0de);
    let data_file = dir.path().join("upload.bin");
    std::fs::write(&data_file, &data).expect("write upload.bin");
    let mut boto = python_client(CLIENTS);
    boto.args(["boto3", "--endpoint", &endpoint, "--bucket", "dev-boto3"])
        .args(["--key", "dir/sub/object.bin", "--data-file"])
        .arg(&data_file)
        .args(admin.client_args());
    run_python("boto3 against --dev", boto, "boto3: all checks passed");
    let on_disk = data_dir.join("buckets/dev-boto3/dir/sub/object.bin");
    let stored = std::fs::read(&on_disk)
        .unwrap_or_else(|e| panic!("the object is not at {}: {e}", on_disk.display()));
    assert!(
        stored == data,
        "{} differs from the upload",
        on_disk.display()
    );

    // reader authenticates too.
    let (objects, ls) = files.ls_objects("reader", &["s3://dev-cli/docs/"]);
    assert_eq!(
        objects,
        [(text.len(), "readme.txt".to_owned())],
        "aws --profile reader s3 ls s3://dev-cli/docs/ said: {ls}"
    );
    let buckets = files.aws_ok("reader", &["s3", "ls"]);
    let mut names: Vec<&str> = buckets
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["dev-boto3", "dev-cli"], "aws s3 ls said: {buckets}");

    // A wrong secret is refused, for either profile.
    for profile in ["admin", "reader"] {
        files.assert_wrong_secret_refused(dir.path(), profile, &["s3", "ls"]);
    }

    // SIGTERM with nothing in flight.
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "after SIGTERM with no open request: expected exit status 0 within 5 s, got {status:?}\n{}",
        gateway.child.log()
    );
    let log = gateway.child.log();
    assert!(log.contains("all connections closed"), "{log}");
    assert!(
        gateway.admin_get("/readyz").is_err(),
        "/readyz still answers after the gateway exited"
    );

    // Restarted: the same keys, the profiles point at the new port.
    let restarted = start_dev_gateway(dir.path(), "gateway --dev restarted", DEV_PLAINTEXT);
    assert_eq!(
        (files.keys("admin"), files.keys("reader")),
        (admin, reader),
        "the keys changed across a restart"
    );
    let startup = restarted.child.log();
    assert!(
        startup.contains(&format!("keys reused from {}", files.credentials.display())),
        "{startup}"
    );
    let ls = files.aws_ok("admin", &["s3", "ls", "s3://dev-cli/docs/"]);
    assert!(ls.contains(" readme.txt"), "after the restart: {ls}");
}

/// The acceptance check of SigV4 authentication: with `--dev`, `aws --profile admin s3 cp` of
/// a 100 MiB file up (a multipart upload, each part signed) and back down is byte-identical
/// (same SHA-256; the backend stored the ciphertext), and the same copy with a wrong secret
/// is refused with `SignatureDoesNotMatch` and stores nothing.
#[test]
fn dev_mode_aws_cli_round_trips_100_mib_and_refuses_a_wrong_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let _gateway = start_dev_gateway(dir.path(), "gateway --dev", &[]);
    let files = DevFiles::of(&data_dir);

    files.aws_ok("admin", &["s3", "mb", "s3://acceptance"]);
    let data = pseudo_random_bytes(100 * MIB, 0xacce_0100);
    let expected = sha256_hex(&data);
    let up = dir.path().join("big.bin");
    std::fs::write(&up, &data).expect("write big.bin");
    drop(data);
    let got = files.cp_round_trip("admin", &up, "s3://acceptance/big.bin");
    assert_eq!(got.len(), 100 * MIB, "size of the download");
    assert_eq!(sha256_hex(&got), expected, "SHA-256 of the download");
    // --dev encrypts: the backend stored the ciphertext of every part (8 MiB parts, a
    // multiple of the 64 KiB segment), so exactly the overhead of 1600 segments more.
    let stored = std::fs::read(data_dir.join("buckets/acceptance/big.bin"))
        .expect("read the object the backend stored");
    assert_eq!(
        stored.len(),
        encrypted_len(100 * MIB),
        "size of the stored object"
    );
    assert_ne!(
        sha256_hex(&stored),
        expected,
        "the backend stored the plaintext"
    );

    files.assert_wrong_secret_refused(
        dir.path(),
        "admin",
        &["s3", "cp", path_str(&up), "s3://acceptance/denied.bin"],
    );
    let (objects, ls) = files.ls_objects("admin", &["s3://acceptance/"]);
    assert_eq!(
        objects,
        [(100 * MIB, "big.bin".to_owned())],
        "aws s3 ls s3://acceptance/ said: {ls}"
    );
}

/// `--dev` authorizes with the embedded seed policy, and says so at startup: `reader` lists
/// and downloads what `admin` uploaded, but its `aws s3 cp` up and `aws s3 rm` are refused
/// with `AccessDenied`, as is its boto3 `delete_objects` (the whole batch), and nothing
/// changes; `admin` does all of it. The denials are audit events (target
/// `s3_tower::audit`) and counted in `s3_tower_authz_decisions_total{decision="deny"}`.
#[test]
fn dev_mode_reader_may_only_list_and_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let gateway = start_dev_gateway(dir.path(), "gateway --dev", &[]);
    let endpoint = gateway.endpoint();
    let files = DevFiles::of(&data_dir);
    let (admin, reader) = (files.keys("admin"), files.keys("reader"));
    let startup = gateway.child.log();
    assert!(
        startup.contains("reader may only list and read")
            && !startup.contains("reader may do what admin does")
            && !startup.contains("NO AUTHORIZATION"),
        "the --dev startup output does not announce the seed policy:\n{startup}"
    );

    files.aws_ok("admin", &["s3", "mb", "s3://dev-authz"]);
    let text = b"only admin may write this\n".repeat(100);
    let up = dir.path().join("readme.txt");
    std::fs::write(&up, &text).expect("write readme.txt");
    let url = "s3://dev-authz/docs/readme.txt";
    files.aws_ok("admin", &["s3", "cp", path_str(&up), url]);

    // reader lists and reads.
    let (objects, ls) = files.ls_objects("reader", &["s3://dev-authz/docs/"]);
    assert_eq!(
        objects,
        [(text.len(), "readme.txt".to_owned())],
        "aws --profile reader s3 ls said: {ls}"
    );
    let buckets = files.aws_ok("reader", &["s3", "ls"]);
    assert!(buckets.contains(" dev-authz"), "aws s3 ls said: {buckets}");
    let down = dir.path().join("reader.down");
    files.aws_ok("reader", &["s3", "cp", url, path_str(&down)]);
    assert!(
        std::fs::read(&down).is_ok_and(|b| b == text),
        "reader's download differs from admin's upload"
    );

    // reader may not write or delete.
    let refused: [&[&str]; 2] = [
        &[
            "s3",
            "cp",
            path_str(&up),
            "s3://dev-authz/docs/by-reader.txt",
        ],
        &["s3", "rm", url],
    ];
    for args in refused {
        let out = files.aws(&files.credentials, "reader", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("AccessDenied"),
            "aws --profile reader {}: expected AccessDenied, got {}:\n{stderr}",
            args.join(" "),
            out.status
        );
    }
    let mut boto = python_client(CLIENTS);
    boto.args([
        "delete-objects",
        "--endpoint",
        &endpoint,
        "--bucket",
        "dev-authz",
    ])
    .args([
        "--keys",
        "docs/readme.txt",
        "--expect-error",
        "AccessDenied",
    ])
    .args(reader.client_args());
    run_python(
        "boto3 delete_objects as reader",
        boto,
        "delete-objects: all checks passed",
    );
    let (objects, ls) = files.ls_objects("admin", &["--recursive", "s3://dev-authz/"]);
    assert_eq!(
        objects,
        [(text.len(), "docs/readme.txt".to_owned())],
        "after reader's refused requests: {ls}"
    );

    // admin may.
    files.aws_ok(
        "admin",
        &[
            "s3",
            "cp",
            path_str(&up),
            "s3://dev-authz/docs/by-admin.txt",
        ],
    );
    files.aws_ok("admin", &["s3", "rm", "s3://dev-authz/docs/by-admin.txt"]);
    let mut boto = python_client(CLIENTS);
    boto.args([
        "delete-objects",
        "--endpoint",
        &endpoint,
        "--bucket",
        "dev-authz",
    ])
    .args(["--keys", "docs/readme.txt"])
    .args(admin.client_args());
    run_python(
        "boto3 delete_objects as admin",
        boto,
        "delete-objects: all checks passed",
    );
    let (objects, ls) = files.ls_objects("admin", &["--recursive", "s3://dev-authz/"]);
    assert!(objects.is_empty(), "after admin's deletes: {ls}");

    // The audit trail and the decision counters.
    let log = strip_ansi(&gateway.child.log());
    for operation in ["PutObject", "DeleteObject", "DeleteObjects"] {
        assert!(
            log.lines().any(|l| l.contains("s3_tower::audit")
                && l.contains("subject=\"reader\"")
                && l.contains(&format!("operation=\"{operation}\""))
                && l.contains("decision=\"deny\"")
                // The client's address, recorded by the server for every request.
                && l.contains("source_ip=127.0.0.1")),
            "no audit line for reader's denied {operation}:\n{log}"
        );
    }
    let metrics = gateway.admin_get("/metrics").expect("GET /metrics").text();
    let decisions = |decision: &str, operation: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("s3_tower_authz_decisions_total{")
                    && l.contains(&format!("decision=\"{decision}\""))
                    && l.contains(&format!("operation=\"{operation}\""))
                    && l.contains("engine=\"rego\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(decisions("deny", "PutObject"), 1, "{metrics}");
    assert_eq!(decisions("deny", "DeleteObject"), 1, "{metrics}");
    assert!(decisions("deny", "DeleteObjects") >= 1, "{metrics}");
    assert!(decisions("allow", "GetObject") >= 1, "{metrics}");
    assert!(decisions("allow", "PutObject") >= 2, "{metrics}");
}

/// The bearer token the `--dev` gateway wrote to `<data-dir>/.dev/<user>.jwt`.
fn dev_token(data_dir: &Path, user: &str) -> String {
    let path = data_dir.join(format!(".dev/{user}.jwt"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A token with `claims`, signed by the `--dev` issuer's key
/// (`<data-dir>/.dev/oidc-signing-key.pem`).
fn dev_signed_token(data_dir: &Path, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let path = data_dir.join(".dev/oidc-signing-key.pem");
    let pem =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("the dev signing key is base64 PEM");
    let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("s3-tower-dev".to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("sign a token with the dev key")
}

/// The claims of a JWT (not verified).
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the JWT payload is base64url");
    serde_json::from_slice(&payload).expect("the JWT payload is JSON")
}

/// The `--dev` acceptance check of STS: the environment the gateway prints (web identity
/// token file, role ARN, session name, endpoint, region) is all the AWS CLI and boto3 need —
/// no key anywhere. The admin token's session may create a bucket; the reader token's may
/// list it but not write.
#[test]
fn dev_mode_printed_sts_environment_needs_no_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let gateway = start_dev_gateway(dir.path(), "gateway --dev sts", &[]);
    wait_for_log_line(&gateway, &["export AWS_ROLE_SESSION_NAME="]);
    let log = strip_ansi(&gateway.child.log());
    let banner = log
        .split("temporary credentials from STS")
        .nth(1)
        .unwrap_or_else(|| panic!("no STS part in the banner:\n{log}"));
    // `export A=1 B=2` lines, up to `aws s3 ls`.
    let env: Vec<(String, String)> = banner
        .lines()
        .map(str::trim)
        .take_while(|l| *l != "aws s3 ls")
        .filter_map(|l| l.strip_prefix("export "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION"
        ],
        "{banner}"
    );
    let admin_token = &env[0].1;
    assert!(admin_token.ends_with("admin.jwt"), "{admin_token}");

    // Only the printed variables (no credentials or config file, nothing of the host).
    let client = |program: &Path, token: &str, home: &Path| {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        for (name, value) in &env {
            cmd.env(name, value);
        }
        cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", token);
        cmd
    };
    let reader_token = admin_token.replace("admin.jwt", "reader.jwt");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("a HOME");
    let aws = venv_bin("aws");

    let out = run_captured(client(&aws, admin_token, &home).args(["s3", "mb", "s3://sts-dev"]));
    assert_success("aws s3 mb (admin session)", &out);
    let out = run_captured(client(&aws, admin_token, &home).args(["s3", "ls"]));
    let listing = assert_success("aws s3 ls (admin session)", &out);
    assert!(listing.contains("sts-dev"), "{listing}");
    let out = run_captured(client(&venv_bin("python"), admin_token, &home).args([
        "-c",
        "import boto3; print([b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']]); \
         print(boto3.client('sts').get_caller_identity()['Arn'])",
    ]));
    let printed = assert_success("boto3 list_buckets (admin session)", &out);
    assert!(printed.contains("'sts-dev'"), "{printed}");
    assert!(
        printed.contains("arn:aws:sts::000000000000:assumed-role/s3-tower-dev/"),
        "{printed}"
    );

    // The reader's session lists but cannot write (a fresh HOME: the CLI caches sessions).
    let home = dir.path().join("home-reader");
    std::fs::create_dir_all(&home).expect("a HOME");
    let out = run_captured(client(&aws, &reader_token, &home).args(["s3", "ls"]));
    assert!(assert_success("aws s3 ls (reader session)", &out).contains("sts-dev"));
    let out = run_captured(client(&aws, &reader_token, &home).args(["s3", "mb", "s3://not-yours"]));
    assert!(!out.status.success(), "the reader created a bucket");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AccessDenied"), "{stderr}");
}

/// `--dev` is also a token issuer: its discovery document and JWKS are on the admin port under
/// `/dev/oidc`, and the tokens it writes to `<data-dir>/.dev/{admin,reader}.jwt` (mode 0600)
/// authenticate plain HTTP requests (`Authorization: Bearer`), authorized by the seed policy
/// like the SigV4 users: `reader` reads and lists, `admin` writes. Expired and tampered tokens
/// get `403 AccessDenied`, a token next to a presigned query `400 InvalidRequest`.
#[test]
fn dev_mode_bearer_tokens_authenticate_plain_http_requests() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let gateway = start_dev_gateway(dir.path(), "gateway --dev jwt", &[]);
    let addr = gateway.addr();
    let issuer = format!("http://127.0.0.1:{}/dev/oidc", gateway.admin_port);

    // The banner says where the tokens are and how to use them.
    let reader_file = data_dir.join(".dev/reader.jwt");
    let startup = strip_ansi(&wait_for_log_line(&gateway, &["curl -H"]));
    let curl = format!(
        "curl -H \"Authorization: Bearer $(cat {})\" {}/<bucket>/<key>",
        reader_file.display(),
        gateway.endpoint()
    );
    assert!(startup.contains(&curl), "no `{curl}` in:\n{startup}");

    // Discovery and JWKS on the admin port.
    let discovery = gateway
        .admin_get("/dev/oidc/.well-known/openid-configuration")
        .expect("GET the dev discovery document");
    assert_eq!(discovery.status, 200, "{}", discovery.text());
    let discovery: serde_json::Value =
        serde_json::from_slice(&discovery.body).expect("discovery is JSON");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{issuer}/jwks.json").as_str()
    );
    let jwks = gateway
        .admin_get("/dev/oidc/jwks.json")
        .expect("GET the dev JWKS");
    assert_eq!(jwks.status, 200, "{}", jwks.text());
    let jwks: serde_json::Value = serde_json::from_slice(&jwks.body).expect("JWKS is JSON");
    let keys = jwks["keys"].as_array().expect("JWKS keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(
        (&keys[0]["kty"], &keys[0]["crv"], &keys[0]["kid"]),
        (
            &serde_json::json!("EC"),
            &serde_json::json!("P-256"),
            &serde_json::json!("s3-tower-dev")
        ),
        "{jwks}"
    );
    assert!(keys[0].get("d").is_none(), "the JWKS holds the private key");

    // The token files: private, for admin and reader.
    let admin = dev_token(&data_dir, "admin");
    let reader = dev_token(&data_dir, "reader");
    #[cfg(unix)]
    for user in ["admin", "reader"] {
        use std::os::unix::fs::PermissionsExt as _;
        let path = data_dir.join(format!(".dev/{user}.jwt"));
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode of {}", path.display());
    }
    let claims = jwt_claims(&reader);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], "reader");
    assert_eq!(claims["aud"], "s3-tower");
    assert_eq!(claims["groups"], serde_json::json!(["reader"]));
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 12 * 3600, "{claims}");

    let bearer = |token: &str| format!("Bearer {token}");
    let request = |method: &str, target: &str, token: &str, body: &[u8]| {
        let auth = bearer(token);
        http_request(
            addr,
            method,
            target,
            &[("authorization", auth.as_str())],
            body.to_vec(),
        )
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    };

    // admin creates a bucket and uploads; reader reads and lists.
    let resp = request("PUT", "/dev-jwt", &admin, b"");
    assert_eq!(resp.status, 200, "admin CreateBucket: {}", resp.text());
    let resp = request("PUT", "/dev-jwt/docs/a.txt", &admin, b"hello by bearer");
    assert_eq!(resp.status, 200, "admin PutObject: {}", resp.text());
    let resp = request("GET", "/dev-jwt/docs/a.txt", &reader, b"");
    assert_eq!(resp.status, 200, "reader GetObject: {}", resp.text());
    assert_eq!(&resp.body[..], b"hello by bearer");
    let resp = request("GET", "/dev-jwt?list-type=2&prefix=docs%2F", &reader, b"");
    assert_eq!(resp.status, 200, "reader ListObjectsV2: {}", resp.text());
    assert!(
        resp.text().contains("<Key>docs/a.txt</Key>"),
        "reader ListObjectsV2: {}",
        resp.text()
    );
    // reader may not write; admin may.
    request("PUT", "/dev-jwt/docs/by-reader.txt", &reader, b"no").assert_s3_error(
        403,
        "AccessDenied",
        "reader PutObject with its bearer token",
    );
    let resp = request("PUT", "/dev-jwt/docs/b.txt", &admin, b"second");
    assert_eq!(resp.status, 200, "admin PutObject: {}", resp.text());
    assert!(
        !data_dir.join("buckets/dev-jwt/docs/by-reader.txt").exists(),
        "reader's refused upload reached the backend"
    );
    // The SigV4 users work next to the tokens.
    let files = DevFiles::of(&data_dir);
    let resp = signed_request(
        addr,
        "GET",
        "/dev-jwt/docs/b.txt",
        &[],
        Vec::new(),
        &files.keys("reader"),
    )
    .expect("signed GetObject");
    assert_eq!(
        (resp.status, &resp.body[..]),
        (200, &b"second"[..]),
        "{}",
        resp.text()
    );

    // Tampered: reader's signature on admin's claims, or a changed signature.
    let mut parts: Vec<&str> = reader.split('.').collect();
    let admin_payload = admin.split('.').nth(1).expect("payload");
    parts[1] = admin_payload;
    let swapped = parts.join(".");
    let mut flipped = reader.clone();
    let last = flipped.pop().expect("a non-empty token");
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    // Signed by the right key, but expired (beyond the 60 s leeway).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = jwt_claims(&admin);
    claims["iat"] = serde_json::json!(now - 7200);
    claims["nbf"] = serde_json::json!(now - 7200);
    claims["exp"] = serde_json::json!(now - 3600);
    let expired = dev_signed_token(&data_dir, &claims);
    // The same claims unexpired are accepted: the expiry alone refuses the token.
    claims["exp"] = serde_json::json!(now + 3600);
    let fresh = dev_signed_token(&data_dir, &claims);
    let resp = request("GET", "/dev-jwt/docs/a.txt", &fresh, b"");
    assert_eq!(
        resp.status,
        200,
        "a token minted with the dev key: {}",
        resp.text()
    );
    for (what, token) in [
        ("payload swapped", &swapped),
        ("signature changed", &flipped),
        ("expired", &expired),
    ] {
        for (method, target) in [
            ("GET", "/dev-jwt/docs/a.txt"),
            ("PUT", "/dev-jwt/docs/c.txt"),
        ] {
            request(method, target, token, b"x").assert_s3_error(
                403,
                "AccessDenied",
                &format!("{method} {target} with a token {what}"),
            );
        }
    }
    let resp = request("GET", "/dev-jwt/docs/a.txt", &expired, b"");
    assert!(resp.text().contains("expired"), "{}", resp.text());
    assert!(
        !data_dir.join("buckets/dev-jwt/docs/c.txt").exists(),
        "a refused upload reached the backend"
    );

    // A bearer token and a presigned query: one mechanism only.
    let presigned = presigned_target(addr, "GET", "/dev-jwt/docs/a.txt", &files.keys("reader"))
        .expect("presign");
    let resp = request("GET", &presigned, &reader, b"");
    resp.assert_s3_error(400, "InvalidRequest", "bearer token and presigned query");
    // The presigned URL alone works.
    let resp = http_request(addr, "GET", &presigned, &[], Vec::new()).expect("presigned GET");
    assert_eq!(resp.status, 200, "presigned GET: {}", resp.text());

    // Never a token in the log.
    let log = gateway.child.log();
    for token in [&admin, &reader, &expired] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!log.contains(signature), "a token is in the log:\n{log}");
    }
}

/// `text` without ANSI escape sequences (the gateway's pretty log colours its fields).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 2. TLS

/// `[server.tls]`: boto3 trusting the test CA does signed put/get/list over
/// `https://localhost:<port>` (to moto behind); clients that do not trust it fail the TLS
/// handshake with a certificate verification error (not an HTTP error); the AWS CLI with
/// `--ca-bundle` works; plain HTTP to the TLS port gets no HTTP answer.
#[test]
fn tls_listener_serves_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let TestPki { ca, cert, key } = write_test_pki(dir.path());
    let moto = Moto::start();
    let tls = format!(
        "[server.tls]\ncert_file = {}\nkey_file = {}\n",
        toml_str(path_str(&cert)),
        toml_str(path_str(&key))
    );
    let gateway = configured_gateway(
        dir.path(),
        "gateway tls",
        &moto.endpoint(),
        MOTO_CREDENTIALS,
        &tls,
        &[],
    );
    let https = format!("https://localhost:{}", gateway.port);
    let user = e2e_user();
    assert!(
        gateway
            .child
            .log()
            .contains(&format!("S3 endpoint: https://127.0.0.1:{}", gateway.port)),
        "the startup log does not announce https:\n{}",
        gateway.child.log()
    );

    // boto3 trusting the CA.
    let data = pseudo_random_bytes(200_000, 0x7175);
    let data_file = dir.path().join("upload.bin");
    std::fs::write(&data_file, &data).expect("write upload.bin");
    let mut boto = python_client(CLIENTS);
    without_ca_env(&mut boto)
        .args(["boto3", "--endpoint", &https, "--bucket", "e2e-tls"])
        .args(["--key", "over/tls.bin", "--data-file"])
        .arg(&data_file)
        .arg("--verify")
        .arg(&ca)
        .args(user.client_args());
    moto.start_recording();
    run_python("boto3 over TLS", boto, "boto3: all checks passed");
    // It went through to moto, body and all.
    let recorded = moto.recorded_requests();
    let put = recorded
        .iter()
        .find(|r| recorded_shape(r) == "PUT /e2e-tls/over/tls.bin")
        .unwrap_or_else(|| panic!("moto received no PUT of the object: {recorded:?}"));
    // Over https botocore sends the body `aws-chunked` with a CRC32 trailer
    // (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), which the gateway decodes and verifies, and
    // forwards plain.
    let put_len = data.len().to_string();
    assert_eq!(
        (
            recorded_header(put, "content-length"),
            recorded_header(put, "x-amz-decoded-content-length"),
            recorded_header(put, "x-amz-content-sha256"),
        ),
        (Some(put_len.as_str()), None, Some("UNSIGNED-PAYLOAD")),
        "the PUT moto received: {put}"
    );

    // Without the CA: a certificate verification failure.
    let mut untrusted = python_client(CLIENTS);
    without_ca_env(&mut untrusted)
        .args(["tls-untrusted", "--endpoint", &https, "--host", "localhost"])
        .args(["--port", &gateway.port.to_string(), "--ca"])
        .arg(&ca);
    run_python(
        "clients without the CA",
        untrusted,
        "tls-untrusted: all checks passed",
    );

    // The AWS CLI with --ca-bundle, and without.
    let ca_str = path_str(&ca);
    let up = dir.path().join("cli.txt");
    std::fs::write(&up, b"aws cli over tls\n").expect("write cli.txt");
    aws_ok(
        dir.path(),
        &https,
        &user,
        &["--ca-bundle", ca_str],
        &["s3", "cp", path_str(&up), "s3://e2e-tls/cli.txt"],
    );
    let ls = aws_ok(
        dir.path(),
        &https,
        &user,
        &["--ca-bundle", ca_str],
        &["s3", "ls", "s3://e2e-tls/"],
    );
    assert!(
        ls.lines().any(|l| l.trim_end().ends_with(" 17 cli.txt")),
        "aws s3 ls over TLS said: {ls}"
    );
    // (aws_cli isolates AWS_CA_BUNDLE; the CLI then trusts certifi's roots only.)
    let untrusted = aws_cli(
        dir.path(),
        &https,
        &user,
        &[],
        &["s3", "ls", "s3://e2e-tls/"],
    );
    assert!(
        !untrusted.status.success(),
        "aws s3 ls without --ca-bundle succeeded"
    );
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("SSL validation failed") && stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "aws without --ca-bundle: expected an SSL validation failure, got: {stderr}"
    );

    // Plain HTTP to the TLS port: no HTTP response at all.
    let plain = http_request(gateway.addr(), "GET", "/", &[], Vec::new());
    assert!(
        plain.is_err(),
        "plain HTTP to the TLS listener got an HTTP answer: {plain:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Graceful shutdown

/// A `slow-download` client: started, and past its first MiB (the request is in flight).
struct SlowDownload {
    child: Child,
    lines: mpsc::Receiver<String>,
    out: PathBuf,
}

impl SlowDownload {
    fn start(port: u16, path: &str, out: PathBuf) -> Self {
        let mut cmd = python_client(CLIENTS);
        cmd.args(["slow-download", "--port", &port.to_string(), "--path", path])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the slow-download client");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let download = Self { child, lines, out };
        let first = download.lines.recv_timeout(Duration::from_secs(30));
        assert!(
            first
                .as_deref()
                .is_ok_and(|l| l.starts_with("in flight: status=200")),
            "the slow download did not get going: {first:?}"
        );
        download
    }

    /// Lets it read the rest; returns its exit status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        if let Some(mut stdin) = self.child.stdin.take() {
            // The client may be gone already (connection closed under it).
            let _ = stdin.write_all(b"go\n");
        }
        let deadline = Instant::now() + Duration::from_mins(1);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the client") {
                break status;
            }
            assert!(Instant::now() < deadline, "the slow download hangs");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout: Vec<String> = self.lines.try_iter().collect();
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status, stdout.join("\n"), stderr)
    }
}

impl Drop for SlowDownload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `--dev` gateway with `shutdown_grace_secs` from the environment and a 32 MiB object
/// (put signed by `admin`); the request target of a presigned GET of that object.
fn dev_gateway_with_big_object(dir: &Path, grace_secs: u64) -> (Running, Vec<u8>, String) {
    let grace = grace_secs.to_string();
    let gateway = start_dev_gateway(
        dir,
        "gateway --dev",
        &[("S3_TOWER__SERVER__SHUTDOWN_GRACE_SECS", &grace)],
    );
    let admin = DevFiles::of(&dir.join("data")).keys("admin");
    let resp = signed_request(gateway.addr(), "PUT", "/e2e-drain", &[], Vec::new(), &admin)
        .expect("PUT bucket");
    assert_eq!(resp.status, 200, "create bucket: {}", resp.text());
    let big = pseudo_random_bytes(32 * MIB, 0xd8a1);
    let resp = signed_request(
        gateway.addr(),
        "PUT",
        "/e2e-drain/big.bin",
        &[],
        big.clone(),
        &admin,
    )
    .expect("PUT the big object");
    assert_eq!(resp.status, 200, "put the big object: {}", resp.text());
    let get = presigned_target(gateway.addr(), "GET", "/e2e-drain/big.bin", &admin)
        .expect("presign the GET");
    (gateway, big, get)
}

/// SIGTERM while a 32 MiB download is in flight (the client has its first MiB and waits):
/// the gateway stops reporting ready (`/readyz` 503) but keeps serving the open response; the
/// client then reads the whole body, and the gateway exits 0 once it is done, well within the
/// grace period, logging `all connections closed`; afterwards `/readyz` does not answer.
#[test]
fn sigterm_lets_an_in_flight_download_finish_then_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut gateway, big, get) = dev_gateway_with_big_object(dir.path(), 30);
    let download = SlowDownload::start(gateway.port, &get, dir.path().join("big.down"));

    gateway.sigterm();
    support::wait_until(
        "/readyz answering 503 after SIGTERM",
        Duration::from_secs(5),
        || gateway.admin_get("/readyz").is_ok_and(|r| r.status == 503),
    );
    // Draining: still running, because of the open download.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gateway.child.exited(),
        None,
        "the gateway exited with a download in flight:\n{}",
        gateway.child.log()
    );
    // New connections are refused while draining, not accepted and left hanging.
    let refused =
        std::net::TcpStream::connect_timeout(&local(gateway.port), Duration::from_secs(2));
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "a new connection during the drain was not refused"
    );

    let out = download.out.clone();
    let (status, stdout, stderr) = download.finish();
    assert!(
        status.success(),
        "the in-flight download failed after SIGTERM ({status}):\n{stdout}\n{stderr}"
    );
    let got = std::fs::read(&out).expect("read the downloaded file");
    assert_eq!(got.len(), big.len(), "length of the download");
    assert!(got == big, "the download differs from the object");

    let status = gateway.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "expected exit status 0 within 10 s of the download's end, got {status:?}:\n{}",
        gateway.child.log()
    );
    let log = gateway.child.log();
    assert!(log.contains("all connections closed"), "{log}");
    assert!(!log.contains("grace period over"), "{log}");
    assert!(
        gateway.admin_get("/readyz").is_err(),
        "/readyz still answers after the gateway exited"
    );
}

/// SIGTERM with a download whose client stops reading: after `shutdown_grace_secs` (1 s) the
/// gateway gives up on it, logs `grace period over` and exits 0; the client gets a truncated
/// body.
#[test]
fn sigterm_grace_period_bounds_the_drain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut gateway, _big, get) = dev_gateway_with_big_object(dir.path(), 1);
    let download = SlowDownload::start(gateway.port, &get, dir.path().join("big.down"));
    let sent = Instant::now();
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(6));
    let took = sent.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "expected exit status 0 shortly after the 1 s grace period, got {status:?}:\n{}",
        gateway.child.log()
    );
    assert!(
        took >= Duration::from_millis(900),
        "the gateway exited after {took:?}, before the 1 s grace period was over"
    );
    assert!(
        gateway.child.log().contains("grace period over"),
        "{}",
        gateway.child.log()
    );
    let (status, stdout, stderr) = download.finish();
    assert!(
        !status.success(),
        "the download cut by the shutdown should fail, it succeeded:\n{stdout}\n{stderr}"
    );
    assert!(
        [
            "bytes read after the signal",
            "IncompleteRead",
            "ConnectionResetError"
        ]
        .iter()
        .any(|e| stderr.contains(e)),
        "the cut download should fail on a short body:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Configuration

/// `S3_TOWER__SERVER__LISTEN` (given only in the environment) is where it listens, and
/// `S3_TOWER__AUTH__ALLOW_ANONYMOUS=true` overrides `allow_anonymous = false` of the file. The
/// backend is down on purpose: an anonymous request that is let through gets
/// `503 ServiceUnavailable`, one that is not gets `403 AccessDenied`. Then `--listen`
/// overrides the environment (which names a port that is taken).
#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_reserved_backend, backend_port) = closed_port();
    let backend = format!("http://127.0.0.1:{backend_port}");
    let data_dir = dir.path().join("data");
    let config_path = dir.path().join("gateway.toml");
    let write_config = |admin: u16| {
        let toml = config_toml(
            None,
            local(admin),
            &data_dir,
            false,
            &backend,
            "source = \"static\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"",
            "",
        );
        std::fs::write(&config_path, toml).expect("write gateway.toml");
    };

    // Listen address and anonymous access from the environment.
    let gateway = start_gateway(dir.path(), "gateway env", |port, admin| {
        write_config(admin);
        let mut cmd = gateway_command(dir.path());
        cmd.arg("--config")
            .arg(&config_path)
            .env("S3_TOWER__SERVER__LISTEN", local(port).to_string())
            .env("S3_TOWER__AUTH__ALLOW_ANONYMOUS", "true");
        cmd
    });
    let log = gateway.child.log();
    assert!(
        log.contains(&format!("S3 endpoint: http://127.0.0.1:{}", gateway.port)),
        "{log}"
    );
    assert!(log.contains("ANONYMOUS ACCESS IS ON"), "{log}");
    let resp = http_request(gateway.addr(), "GET", "/e2e-env/key", &[], Vec::new())
        .expect("GET to the env-configured listener");
    resp.assert_s3_error(
        503,
        "ServiceUnavailable",
        "anonymous on: the request reaches the (down) backend",
    );
    drop(gateway);

    // The same without the anonymous override: the file's `false` holds.
    let gateway = start_gateway(dir.path(), "gateway env no anonymous", |port, admin| {
        write_config(admin);
        let mut cmd = gateway_command(dir.path());
        cmd.arg("--config")
            .arg(&config_path)
            .env("S3_TOWER__SERVER__LISTEN", local(port).to_string());
        cmd
    });
    let resp = http_request(gateway.addr(), "GET", "/e2e-env/key", &[], Vec::new())
        .expect("GET to the env-configured listener");
    resp.assert_s3_error(403, "AccessDenied", "anonymous off");
    drop(gateway);

    // --listen beats the environment, whose port is taken (binding it would fail).
    let (_reserved_listen, taken) = closed_port();
    let gateway = start_gateway(dir.path(), "gateway flag", |port, admin| {
        write_config(admin);
        let mut cmd = gateway_command(dir.path());
        cmd.arg("--config")
            .arg(&config_path)
            .args(["--listen", &local(port).to_string()])
            .env("S3_TOWER__SERVER__LISTEN", local(taken).to_string())
            .env("S3_TOWER__AUTH__ALLOW_ANONYMOUS", "true");
        cmd
    });
    let resp = http_request(gateway.addr(), "GET", "/e2e-env/key", &[], Vec::new())
        .expect("GET to the --listen listener");
    assert_eq!(resp.status, 503, "via --listen: {}", resp.text());
}

/// A case of [`unknown_configuration_keys_are_fatal_and_named`]: what, the file, an
/// environment variable, what stderr must say.
type ConfigCase<'a> = (&'a str, String, Option<(&'a str, &'a str)>, &'a str);

/// Unknown keys — in the file (top level, `[server]`, a backend's credentials) and in the
/// environment — make the gateway exit 1 naming the key on stderr.
#[test]
fn unknown_configuration_keys_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good_backend = "[routing]\ndefault_backend = \"main\"\n\n[[backends]]\nname = \"main\"\n\
                        endpoint = \"http://127.0.0.1:9\"\n[backends.credentials]\n\
                        source = \"static\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n";
    // (what, the file, an environment variable, what stderr must say)
    let cases: Vec<ConfigCase> = vec![
        (
            "a typo in [server]",
            format!("[server]\nlisten_typo = \"127.0.0.1:1\"\n{good_backend}"),
            None,
            "unknown field `listen_typo`",
        ),
        (
            "an unknown section",
            format!("[sever]\nlisten = \"127.0.0.1:1\"\n{good_backend}"),
            None,
            "unknown field `sever`",
        ),
        (
            "a typo in a backend's credentials",
            good_backend.replace("access_key_id = \"k\"", "acess_key_id = \"k\""),
            None,
            "unknown field `acess_key_id`",
        ),
        (
            "a typo in a static user",
            format!(
                "[[auth.static_users]]\naccess_key_id = \"AK1\"\nsecret = \"s\"\n\
                 subject = \"alice\"\nsecert_env = \"X\"\n{good_backend}"
            ),
            None,
            "unknown field `secert_env`",
        ),
        (
            "a typo in an environment variable",
            good_backend.to_owned(),
            Some(("S3_TOWER__SERVER__LISTN", "127.0.0.1:1")),
            "unknown field `listn`",
        ),
    ];
    for (what, toml, env, expected) in cases {
        eprintln!("case: {what}");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).expect("write bad.toml");
        assert_startup_fails_saying(dir.path(), &path, env.as_slice(), expected);
    }
}

/// `routing.default_backend` naming no backend, and no backend at all without `--dev`: exit 1
/// with a message saying so.
#[test]
fn routing_to_a_missing_backend_is_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[routing]\ndefault_backend = \"nope\"\n\n[[backends]]\nname = \"main\"\n\
         endpoint = \"http://127.0.0.1:9\"\n[backends.credentials]\nsource = \"static\"\n\
         access_key_id = \"k\"\nsecret_access_key = \"s\"\n",
    )
    .expect("write gateway.toml");
    let stderr = startup_failure(dir.path(), &path, &[]);
    assert!(
        // (Printed with Debug today, `"routing.default_backend = \"nope\" ..."`; either form.)
        stderr.contains("routing.default_backend = ")
            && stderr.contains("nope")
            && stderr.contains("names no backend"),
        "stderr does not say the default backend is missing:\n{stderr}"
    );

    std::fs::write(&path, "").expect("write an empty gateway.toml");
    assert_startup_fails_saying(
        dir.path(),
        &path,
        &[],
        "no backend configured: add [[backends]] or run with --dev",
    );
}

/// Static users that cannot be loaded stop the gateway at startup: exit 1 with a message
/// naming the user and the problem (the exact messages of each case are unit tests of the
/// example's `config` module; here, the ones that need a process: a variable set but empty,
/// and that the message reaches stderr).
#[test]
fn static_user_errors_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    let backend = "[routing]\ndefault_backend = \"main\"\n\n[[backends]]\nname = \"main\"\n\
                   endpoint = \"http://127.0.0.1:9\"\n[backends.credentials]\n\
                   source = \"static\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n";
    let user = |ak: &str, secret: &str| {
        format!("[[auth.static_users]]\naccess_key_id = {ak:?}\nsubject = \"alice\"\n{secret}\n")
    };
    let env_user = user("AK1", "secret_env = \"E2E_GW_USER_SECRET\"");
    // (the users, the gateway's environment, what stderr must say)
    let cases: [(String, Env, &str); 5] = [
        (
            env_user.clone(),
            &[],
            "gateway: auth.static_users[0] (AK1): secret_env: environment variable \
             E2E_GW_USER_SECRET is unset or empty",
        ),
        (
            env_user,
            &[("E2E_GW_USER_SECRET", "")],
            "gateway: auth.static_users[0] (AK1): secret_env: environment variable \
             E2E_GW_USER_SECRET is unset or empty",
        ),
        (
            user("AK1", ""),
            &[],
            "gateway: auth.static_users[0] (AK1): set one of secret, secret_env or secret_file \
             (none is set)",
        ),
        (
            user("AK1", "secret = \"s\"\nsecret_env = \"E2E_GW_USER_SECRET\""),
            &[("E2E_GW_USER_SECRET", "s")],
            "gateway: auth.static_users[0] (AK1): set only one of secret, secret_env or \
             secret_file (secret, secret_env are set)",
        ),
        (
            user("AK1", "secret = \"s\"") + &user("AK1", "secret = \"t\""),
            &[],
            "gateway: auth.static_users[1]: access key id AK1 is already used by \
             auth.static_users[0]",
        ),
    ];
    for (users, env, expected) in cases {
        std::fs::write(&path, format!("{users}\n{backend}")).expect("write gateway.toml");
        assert_startup_fails_saying(dir.path(), &path, env, expected);
    }
}

/// Static users whose secrets come from an environment variable and from a file sign
/// requests that moto then receives re-signed; `S3_TOWER__AUTH__REGION=eu-west-1` (the
/// environment overriding `[auth]`) makes the gateway refuse the same requests signed for
/// `us-east-1` with `AuthorizationHeaderMalformed`.
#[test]
fn static_users_from_env_and_file_and_the_region_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let secret_file = dir.path().join("file-user.secret");
    std::fs::write(&secret_file, "file-user-secret\n").expect("write the secret file");
    let env_user = Keys::new("E2EENVUSERKEY0000001", "env-user-secret");
    let file_user = Keys::new("E2EFILEUSERKEY000001", "file-user-secret");
    // After `[backends.credentials]`, these are `[[auth.static_users]]` entries all the same.
    let users = format!(
        "\n[[auth.static_users]]\naccess_key_id = {}\nsecret_env = \"E2E_GW_ENV_USER_SECRET\"\n\
         subject = \"env-user\"\n\n[[auth.static_users]]\naccess_key_id = {}\n\
         secret_file = {}\nsubject = \"file-user\"\ngroups = [\"reader\"]\n",
        toml_str(&env_user.access_key_id),
        toml_str(&file_user.access_key_id),
        toml_str(path_str(&secret_file)),
    );
    let start = |what: &str, region: Option<&str>| {
        let mut env = vec![(
            "E2E_GW_ENV_USER_SECRET",
            OsString::from(&env_user.secret_access_key),
        )];
        env.extend(region.map(|r| ("S3_TOWER__AUTH__REGION", OsString::from(r))));
        configured_gateway(
            dir.path(),
            what,
            &moto.endpoint(),
            MOTO_CREDENTIALS,
            &users,
            &env,
        )
    };

    let gateway = start("gateway static users", None);
    put_and_get(&gateway, "e2e-env-user", &env_user);
    put_and_get(&gateway, "e2e-file-user", &file_user);
    drop(gateway);

    let gateway = start("gateway region", Some("eu-west-1"));
    for keys in [&env_user, &file_user, &e2e_user()] {
        let resp = signed_request(gateway.addr(), "GET", "/", &[], Vec::new(), keys)
            .expect("GET / signed for us-east-1");
        resp.assert_s3_error(
            400,
            "AuthorizationHeaderMalformed",
            "signed for us-east-1, region eu-west-1 configured",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Backend credentials

/// Create bucket, put, get through the gateway, signed by `keys`, each answered 200.
fn put_and_get(gateway: &Running, bucket: &str, keys: &Keys) {
    for (method, target, body) in [
        ("PUT", format!("/{bucket}"), Vec::new()),
        ("PUT", format!("/{bucket}/key"), b"payload".to_vec()),
        ("GET", format!("/{bucket}/key"), Vec::new()),
    ] {
        let resp = signed_request(gateway.addr(), method, &target, &[], body, keys)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(resp.status, 200, "{method} {target}: {}", resp.text());
        if method == "GET" {
            assert_eq!(resp.text(), "payload", "GET {target}");
        }
    }
}

/// `source = "env"` with custom variable names, set only in the gateway's environment: moto
/// receives requests signed with that access key and carrying that session token.
#[test]
fn backend_credentials_from_custom_environment_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let gateway = configured_gateway(
        dir.path(),
        "gateway",
        &moto.endpoint(),
        "source = \"env\"\naccess_key_id_env = \"E2E_GW_BACKEND_AK\"\n\
         secret_access_key_env = \"E2E_GW_BACKEND_SK\"\n\
         session_token_env = \"E2E_GW_BACKEND_TOKEN\"",
        "",
        &[
            ("E2E_GW_BACKEND_AK", "GWENVKEY000000000001".into()),
            ("E2E_GW_BACKEND_SK", "gw-env-secret".into()),
            ("E2E_GW_BACKEND_TOKEN", "gw-env-token".into()),
        ],
    );
    moto.start_recording();
    put_and_get(&gateway, "e2e-creds-env", &e2e_user());
    let recorded = moto.recorded_requests();
    let shapes: Vec<String> = recorded.iter().map(recorded_shape).collect();
    assert_eq!(
        shapes,
        [
            "PUT /e2e-creds-env",
            "PUT /e2e-creds-env/key",
            "GET /e2e-creds-env/key"
        ],
        "the requests moto received"
    );
    assert_backend_saw_only(
        &recorded,
        "GWENVKEY000000000001",
        Some("gw-env-token"),
        &["gw-env-secret"],
    );
}

/// The environment that keeps the AWS default chain away from this machine's own
/// configuration: empty config and credentials files, no instance metadata, `HOME` in `dir`.
fn isolated_aws_chain_env(dir: &Path) -> Vec<(&'static str, OsString)> {
    let empty = dir.join("empty-aws-file");
    std::fs::write(&empty, "").expect("write an empty AWS config file");
    vec![
        ("AWS_CONFIG_FILE", empty.clone().into()),
        ("AWS_SHARED_CREDENTIALS_FILE", empty.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("HOME", dir.into()),
    ]
}

/// `source = "aws-default-chain"` (the gateway is built with the `aws-config` feature) with
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` in the gateway's
/// environment and empty AWS config files: moto receives exactly those.
#[test]
fn backend_credentials_from_the_aws_default_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let mut env = isolated_aws_chain_env(dir.path());
    env.extend([
        ("AWS_ACCESS_KEY_ID", "GWCHAINKEY0000000001".into()),
        ("AWS_SECRET_ACCESS_KEY", "gw-chain-secret".into()),
        ("AWS_SESSION_TOKEN", "gw-chain-token".into()),
    ]);
    let gateway = configured_gateway(
        dir.path(),
        "gateway",
        &moto.endpoint(),
        "source = \"aws-default-chain\"",
        "",
        &env,
    );
    moto.start_recording();
    put_and_get(&gateway, "e2e-creds-chain", &e2e_user());
    let recorded = moto.recorded_requests();
    assert_eq!(recorded.len(), 3, "moto received {recorded:?}");
    assert_backend_saw_only(
        &recorded,
        "GWCHAINKEY0000000001",
        Some("gw-chain-token"),
        &["gw-chain-secret"],
    );
}

/// `source = "aws-default-chain"` with no credentials anywhere (no variables, empty AWS files,
/// instance metadata off): the gateway starts, and each request is answered
/// `503 ServiceUnavailable` saying the backend credentials are unavailable.
#[test]
fn aws_default_chain_without_credentials_is_service_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nothing listens there: the request must fail before connecting anyway.
    let (_reserved, backend_port) = closed_port();
    let gateway = configured_gateway(
        dir.path(),
        "gateway",
        &format!("http://127.0.0.1:{backend_port}"),
        "source = \"aws-default-chain\"",
        "",
        &isolated_aws_chain_env(dir.path()),
    );
    for (method, target) in [("PUT", "/e2e-no-creds"), ("GET", "/e2e-no-creds/key")] {
        let resp = signed_request(gateway.addr(), method, target, &[], Vec::new(), &e2e_user())
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        resp.assert_s3_error(503, "ServiceUnavailable", &format!("{method} {target}"));
        assert!(
            resp.text()
                .contains("<Message>The gateway's backend credentials are unavailable</Message>"),
            "{method} {target}: {}",
            resp.text()
        );
    }
}

/// `source = "env"` whose variable is not set: exit 1 naming the variable (first the access
/// key's, then, with that one set, the secret's).
#[test]
fn missing_or_empty_credentials_variable_is_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[routing]\ndefault_backend = \"main\"\n\n[[backends]]\nname = \"main\"\n\
         endpoint = \"http://127.0.0.1:9\"\n[backends.credentials]\nsource = \"env\"\n\
         access_key_id_env = \"E2E_GW_MISSING_AK\"\n\
         secret_access_key_env = \"E2E_GW_MISSING_SK\"\n",
    )
    .expect("write gateway.toml");
    // Missing access key, then missing secret, then set but empty (as fatal as missing:
    // never sign with an empty key).
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "environment variable E2E_GW_MISSING_AK is not set"),
        (
            &[("E2E_GW_MISSING_AK", "GWKEY")],
            "environment variable E2E_GW_MISSING_SK is not set",
        ),
        (
            &[("E2E_GW_MISSING_AK", "GWKEY"), ("E2E_GW_MISSING_SK", "")],
            "environment variable E2E_GW_MISSING_SK is empty",
        ),
    ];
    for (env, expected) in cases {
        assert_startup_fails_saying(dir.path(), &path, env, expected);
    }
}

/// A client that signs with its static user's key (boto3, SigV4 headers, and a presigned GET
/// URL with the credentials in the query) through the gateway: moto sees only the gateway's
/// static key, never the client's key, secret or signature.
#[test]
fn client_credentials_never_reach_the_backend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let gateway = configured_gateway(
        dir.path(),
        "gateway",
        &moto.endpoint(),
        "source = \"static\"\naccess_key_id = \"GWSTATICKEY000000001\"\n\
         secret_access_key = \"gw-static-secret\"",
        "",
        &[],
    );
    let user = e2e_user();
    let data_file = dir.path().join("upload.bin");
    std::fs::write(&data_file, pseudo_random_bytes(10_000, 0xc11e)).expect("write upload.bin");
    moto.start_recording();
    let mut boto = python_client(CLIENTS);
    boto.args(["boto3", "--endpoint", &gateway.endpoint()])
        .args([
            "--bucket",
            "e2e-client-creds",
            "--key",
            "k.bin",
            "--data-file",
        ])
        .arg(&data_file)
        .args(user.client_args())
        .arg("--presign");
    run_python(
        "boto3 signing with its own key",
        boto,
        "boto3: all checks passed",
    );
    let recorded = moto.recorded_requests();
    let shapes: Vec<String> = recorded
        .iter()
        .map(|r| {
            let shape = recorded_shape(r);
            shape.split('?').next().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "PUT /e2e-client-creds",
            "PUT /e2e-client-creds/k.bin",
            "GET /e2e-client-creds/k.bin",
            "GET /e2e-client-creds",
            "HEAD /e2e-client-creds/k.bin",
            "GET /",
            "GET /e2e-client-creds/k.bin",
        ],
        "the requests moto received"
    );
    assert_backend_saw_only(
        &recorded,
        "GWSTATICKEY000000001",
        None,
        &[
            user.access_key_id.as_str(),
            user.secret_access_key.as_str(),
            "X-Amz-Signature",
            "X-Amz-Credential",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Metrics

/// The admin port's `/metrics` after a known set of requests, and `/healthz`, `/readyz`.
/// Requests the gateway refuses itself as malformed (unknown operation → 501, invalid bucket
/// name → 400) are counted as `operation="Unknown"` / `"Invalid"`; an unsigned request refused
/// by authentication (403) under its operation. Without `[authz]` the gateway warns that
/// there is no authorization layer, and counts no decisions.
#[test]
fn metrics_count_requests_by_operation_and_status() {
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    // Without [authz]: no authorization layer, and a loud warning saying so.
    assert!(
        gateway
            .log()
            .contains("NO AUTHORIZATION (authz.engine = \"none\")"),
        "{}",
        gateway.log()
    );
    let admin = local(gateway.admin_port);
    let user = e2e_user();
    // (method, target, body length, signed, status)
    let cases: &[(&str, &str, usize, bool, u16)] = &[
        ("PUT", "/e2e-metrics", 0, true, 200),
        ("PUT", "/e2e-metrics/a", 1000, true, 200),
        ("PUT", "/e2e-metrics/b", 2000, true, 200),
        ("PUT", "/e2e-metrics/c", 3000, true, 200),
        ("GET", "/e2e-metrics/b", 0, true, 200),
        ("GET", "/e2e-metrics/missing", 0, true, 404),
        ("GET", "/e2e-metrics/b", 0, false, 403),
        ("PATCH", "/e2e-metrics/a", 0, true, 501),
        ("GET", "/e2e-metrics?unknownsubresource", 0, true, 501),
        ("GET", "/Bad_Bucket/x", 0, true, 400),
    ];
    let mut sent_body_bytes = 0;
    for &(method, target, len, signed, status) in cases {
        let body = vec![b'm'; len];
        let resp = if signed {
            signed_request(gateway.addr(), method, target, &[], body, &user)
        } else {
            http_request(gateway.addr(), method, target, &[], body)
        }
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(resp.status, status, "{method} {target}: {}", resp.text());
        sent_body_bytes += resp.body.len();
    }

    let metrics = http_request(admin, "GET", "/metrics", &[], Vec::new()).expect("GET /metrics");
    assert_eq!(metrics.status, 200, "/metrics");
    let text = metrics.text();
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse().expect("a metric value"))
    };
    let requests: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| l.starts_with("s3_tower_requests_total{"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, v)| (series, v.parse().expect("a counter value")))
        .collect();
    let mut expected = vec![
        (
            "s3_tower_requests_total{operation=\"CreateBucket\",status=\"200\"}",
            1.0,
        ),
        (
            "s3_tower_requests_total{operation=\"GetObject\",status=\"200\"}",
            1.0,
        ),
        (
            "s3_tower_requests_total{operation=\"GetObject\",status=\"404\"}",
            1.0,
        ),
        (
            "s3_tower_requests_total{operation=\"GetObject\",status=\"403\"}",
            1.0,
        ),
        (
            "s3_tower_requests_total{operation=\"Invalid\",status=\"400\"}",
            1.0,
        ),
        (
            "s3_tower_requests_total{operation=\"Unknown\",status=\"501\"}",
            2.0,
        ),
        (
            "s3_tower_requests_total{operation=\"PutObject\",status=\"200\"}",
            3.0,
        ),
    ];
    let mut got = requests.clone();
    got.sort_by(|a, b| a.0.cmp(b.0));
    expected.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, expected, "s3_tower_requests_total series:\n{text}");

    assert_eq!(
        value("s3_tower_request_duration_seconds_count{operation=\"PutObject\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("s3_tower_received_bytes_total"),
        Some(6000.0),
        "request body bytes: the three PUT bodies\n{text}"
    );
    let sent = value("s3_tower_sent_bytes_total").expect("s3_tower_sent_bytes_total");
    assert!(
        sent >= f64::from(u32::try_from(sent_body_bytes).expect("small")),
        "s3_tower_sent_bytes_total = {sent}, but the client received {sent_body_bytes} body bytes"
    );
    assert!(
        text.contains("# TYPE s3_tower_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        !text.contains("s3_tower_authz_decisions_total{"),
        "decisions counted without an authorization layer:\n{text}"
    );

    let health = http_request(admin, "GET", "/healthz", &[], Vec::new()).expect("GET /healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = http_request(admin, "GET", "/readyz", &[], Vec::new()).expect("GET /readyz");
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
}

// ---------------------------------------------------------------------------------------------
// 7. s3cmd and the MinIO SDK

fn s3cmd_output(config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(venv_bin("s3cmd"));
    isolate_aws_env(&mut cmd);
    cmd.arg("-c").arg(config).arg("--no-progress").args(args);
    run_captured(&mut cmd)
}

fn s3cmd(config: &Path, args: &[&str]) -> String {
    let out = s3cmd_output(config, args);
    assert_success(&format!("s3cmd {}", args.join(" ")), &out)
}

/// s3cmd (SigV4) and minio-py (SigV4) signing with the gateway's static user, through the
/// gateway to moto: every command works, the gateway refuses none of their requests (no
/// `operation="Invalid"` or `"Unknown"` in its metrics), and moto sees only the gateway's key.
/// s3cmd configured for SigV2 gets the gateway's AWS-worded `InvalidRequest`, switches to
/// SigV4 by itself and succeeds; its SigV2 presigned URLs are refused with `InvalidRequest`.
#[test]
fn s3cmd_and_minio_work_through_the_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let gateway = Gateway::start(&GatewayConfig::new(moto.endpoint()));
    let host = format!("127.0.0.1:{}", gateway.port);
    let user = e2e_user();
    moto.start_recording();

    // s3cmd, SigV4.
    let config = dir.path().join("s3cfg");
    let s3cfg = |v2: bool| {
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\n\
             host_base = {host}\nhost_bucket = {host}\nuse_https = False\n\
             signature_v2 = {}\nbucket_location = us-east-1\n",
            user.access_key_id,
            user.secret_access_key,
            if v2 { "True" } else { "False" }
        )
    };
    std::fs::write(&config, s3cfg(false)).expect("write s3cfg");
    let file = dir.path().join("s3cmd.txt");
    let body = b"s3cmd through the gateway\n".repeat(100);
    std::fs::write(&file, &body).expect("write s3cmd.txt");
    let down = dir.path().join("s3cmd.down");
    let out = s3cmd(&config, &["mb", "s3://e2e-s3cmd"]);
    assert!(out.contains("Bucket 's3://e2e-s3cmd/' created"), "{out}");
    s3cmd(
        &config,
        &["put", path_str(&file), "s3://e2e-s3cmd/dir/s3cmd.txt"],
    );
    s3cmd(
        &config,
        &[
            "get",
            "--force",
            "s3://e2e-s3cmd/dir/s3cmd.txt",
            path_str(&down),
        ],
    );
    assert!(
        std::fs::read(&down).expect("read s3cmd.down") == body,
        "s3cmd get returned other bytes"
    );
    let ls = s3cmd(&config, &["ls", "s3://e2e-s3cmd/dir/"]);
    assert!(
        ls.lines().any(|l| l
            .trim_end()
            .ends_with(&format!(" {}  s3://e2e-s3cmd/dir/s3cmd.txt", body.len()))),
        "s3cmd ls said: {ls}"
    );
    let buckets = s3cmd(&config, &["ls"]);
    assert!(
        buckets.lines().any(|l| l.ends_with("  s3://e2e-s3cmd")),
        "s3cmd ls (buckets) said: {buckets}"
    );
    let info = s3cmd(&config, &["info", "s3://e2e-s3cmd/dir/s3cmd.txt"]);
    assert!(
        info.contains(&format!("File size: {}", body.len())),
        "s3cmd info said: {info}"
    );

    // s3cmd, SigV2 (`Authorization: AWS <key>:<signature>`): refused with AWS's words, on
    // which s3cmd retries with SigV4 — the put succeeds.
    std::fs::write(&config, s3cfg(true)).expect("write s3cfg");
    let out = s3cmd_output(
        &config,
        &["put", "--debug", path_str(&file), "s3://e2e-s3cmd/v2.txt"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("Endpoint requires signature v4"),
        "s3cmd put configured for SigV2: expected the SigV4 fallback, got {}:\n{}",
        out.status,
        stderr
            .lines()
            .filter(|l| !l.contains("secret"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let sigv2 = http_request(
        local(gateway.port),
        "GET",
        "/e2e-s3cmd/v2.txt",
        &[("authorization", "AWS AKIAEXAMPLE:c2lnbmF0dXJlIG9mIHYy")],
        Vec::new(),
    )
    .expect("GET with a SigV2 header");
    sigv2.assert_s3_error(400, "InvalidRequest", "a SigV2 Authorization header");
    assert!(
        sigv2.text().contains(
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ),
        "{}",
        sigv2.text()
    );
    // s3cmd's presigned URLs are SigV2 (`AWSAccessKeyId`, `Expires`, `Signature`): refused too.
    let url = s3cmd(
        &config,
        &["signurl", "s3://e2e-s3cmd/dir/s3cmd.txt", "+600"],
    );
    let target = url.trim().split_once(&host).map_or_else(
        || panic!("s3cmd signurl printed no URL on {host}: {url}"),
        |(_, target)| target.to_owned(),
    );
    assert!(target.contains("AWSAccessKeyId="), "{target}");
    let got = http_request(local(gateway.port), "GET", &target, &[], Vec::new())
        .expect("GET the SigV2 presigned URL");
    got.assert_s3_error(400, "InvalidRequest", "the SigV2 presigned GET");
    std::fs::write(&config, s3cfg(false)).expect("write s3cfg");
    s3cmd(&config, &["del", "s3://e2e-s3cmd/v2.txt"]);
    let out = s3cmd(&config, &["del", "s3://e2e-s3cmd/dir/s3cmd.txt"]);
    assert!(
        out.contains("delete: 's3://e2e-s3cmd/dir/s3cmd.txt'"),
        "{out}"
    );
    let out = s3cmd(&config, &["rb", "s3://e2e-s3cmd"]);
    assert!(out.contains("Bucket 's3://e2e-s3cmd/' removed"), "{out}");

    // minio-py.
    let data_file = dir.path().join("minio.bin");
    std::fs::write(&data_file, pseudo_random_bytes(100_000, 0x3141)).expect("write minio.bin");
    let mut minio = python_client(CLIENTS);
    minio
        .args(["minio", "--endpoint", &host, "--bucket", "e2e-minio"])
        .args(["--key", "dir/minio.bin", "--data-file"])
        .arg(&data_file)
        .args(user.client_args());
    run_python(
        "minio-py through the gateway",
        minio,
        "minio: all checks passed",
    );

    let recorded = moto.recorded_requests();
    assert_backend_saw_only(
        &recorded,
        "test",
        None,
        &[user.access_key_id.as_str(), user.secret_access_key.as_str()],
    );
    let metrics = http_request(
        local(gateway.admin_port),
        "GET",
        "/metrics",
        &[],
        Vec::new(),
    )
    .expect("GET /metrics");
    let text = metrics.text();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("s3_tower_requests_total{operation=\"Invalid\"")
                || l.starts_with("s3_tower_requests_total{operation=\"Unknown\"")
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the gateway refused requests of s3cmd or minio-py: {refused:?}\n{}",
        gateway.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Authorization policies from files

/// A Rego policy allowing `user0` (the subject of [`e2e_user`]) everything.
const POLICY_ALLOW_USER0: &str =
    "package s3\nimport rego.v1\ndefault allow := false\nallow if input.user == \"user0\"\n";

/// A Rego policy allowing only `ListBuckets`.
const POLICY_LIST_BUCKETS_ONLY: &str = "package s3\nimport rego.v1\ndefault allow := false\n\
     allow if input.action == \"ListBuckets\"\n";

/// Not Rego.
const POLICY_SYNTAX_ERROR: &str = "package s3\nallow if {{ input.user ==\n";

/// The `[authz]` table of a gateway with engine `rego` and the policy file `policy`.
fn rego_authz_toml(policy: &Path, reload_interval_secs: u64) -> String {
    format!(
        "[authz]\nengine = \"rego\"\npolicy_files = [{}]\nreload_interval_secs = {reload_interval_secs}\n",
        toml_str(path_str(policy))
    )
}

/// The status of a request signed by [`e2e_user`].
fn status_of(gateway: &Running, method: &str, target: &str) -> u16 {
    signed_request(gateway.addr(), method, target, &[], Vec::new(), &e2e_user())
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
        .status
}

/// Waits up to 15 s until `method target` is answered `status`.
fn wait_for_status(gateway: &Running, method: &str, target: &str, status: u16, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = status_of(gateway, method, target);
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: {method} {target} still answered {got}, expected {status}\n{}",
            gateway.child.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to 15 s until the gateway's log (without colours) has a line containing every
/// one of `needles`; returns that line.
fn wait_for_log_line(gateway: &Running, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = strip_ansi(&gateway.child.log());
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with all of {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGHUP to the gateway.
fn sighup(gateway: &Running) {
    let out = run_captured(Command::new("kill").args(["-HUP", &gateway.child.id().to_string()]));
    assert_success("kill -HUP <gateway>", &out);
}

/// `engine = "cedar"` with a policy file: the Cedar policy decides (user0 may create the
/// bucket and list it, not write objects), and SIGHUP reloads it; a policy that fails the
/// schema keeps the old one in force.
#[test]
fn cedar_policy_files_decide_and_reload_on_sighup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let policy = dir.path().join("policy.cedar");
    let allow = |actions: &str| {
        format!("permit (principal == S3::User::\"user0\", action in [{actions}], resource);\n")
    };
    std::fs::write(
        &policy,
        allow("S3::Action::\"CreateBucket\", S3::Action::\"ListObjectsV2\""),
    )
    .expect("write policy.cedar");
    let toml = format!(
        "[authz]\nengine = \"cedar\"\npolicy_files = [{}]\nreload_interval_secs = 0\n",
        toml_str(path_str(&policy))
    );
    let gateway = configured_gateway(
        dir.path(),
        "gateway cedar",
        &moto.endpoint(),
        MOTO_CREDENTIALS,
        &toml,
        &[],
    );
    let list_objects = "/e2e-authz-cedar?list-type=2";
    assert_eq!(
        status_of(&gateway, "PUT", "/e2e-authz-cedar"),
        200,
        "CreateBucket"
    );
    assert_eq!(
        status_of(&gateway, "GET", list_objects),
        200,
        "ListObjectsV2"
    );
    let put = signed_request(
        gateway.addr(),
        "PUT",
        "/e2e-authz-cedar/k",
        &[],
        b"x".to_vec(),
        &e2e_user(),
    )
    .expect("PUT object");
    put.assert_s3_error(403, "AccessDenied", "PutObject under the Cedar policy");

    // A policy naming an action the schema does not know is refused; the old one stays.
    std::fs::write(&policy, allow("S3::Action::\"NoSuchOperation\"")).expect("rewrite");
    sighup(&gateway);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status_of(&gateway, "GET", list_objects),
        200,
        "old policy kept"
    );

    std::fs::write(&policy, allow("S3::Action::\"CreateBucket\"")).expect("rewrite");
    sighup(&gateway);
    wait_for_status(&gateway, "GET", list_objects, 403, "after the reload");
    let log = strip_ansi(&gateway.child.log());
    assert!(
        log.contains("authorization policy reload failed") && log.contains("policy.cedar"),
        "{log}"
    );
}

/// `engine = "rego"` with a policy file and `reload_interval_secs = 0`: the policy decides;
/// a rewritten file changes nothing until SIGHUP, after which the new policy decides and an
/// INFO line says it was reloaded. A file with a syntax error, on SIGHUP, keeps the policy in
/// force (not deny-all, not allow-all) and logs a warning naming the file; the gateway keeps
/// running, and a good file on the next SIGHUP is loaded again.
#[test]
fn sighup_reloads_the_policy_files_and_a_broken_one_keeps_the_old_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let policy = dir.path().join("policy.rego");
    std::fs::write(&policy, POLICY_ALLOW_USER0).expect("write policy.rego");
    let mut gateway = configured_gateway(
        dir.path(),
        "gateway rego",
        &moto.endpoint(),
        MOTO_CREDENTIALS,
        &rego_authz_toml(&policy, 0),
        &[],
    );
    let startup = strip_ansi(&gateway.child.log());
    assert!(
        startup.contains("authorization policy loaded") && !startup.contains("NO AUTHORIZATION"),
        "{startup}"
    );
    let list_objects = "/e2e-authz-reload?list-type=2";
    assert_eq!(
        status_of(&gateway, "PUT", "/e2e-authz-reload"),
        200,
        "CreateBucket"
    );
    assert_eq!(
        status_of(&gateway, "GET", list_objects),
        200,
        "ListObjectsV2"
    );

    // Rewritten: nothing changes without SIGHUP (the poller is off).
    std::fs::write(&policy, POLICY_LIST_BUCKETS_ONLY).expect("rewrite policy.rego");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status_of(&gateway, "GET", list_objects),
        200,
        "before SIGHUP"
    );
    sighup(&gateway);
    wait_for_status(&gateway, "GET", list_objects, 403, "after SIGHUP");
    let resp = signed_request(
        gateway.addr(),
        "GET",
        list_objects,
        &[],
        Vec::new(),
        &e2e_user(),
    )
    .expect("GET ListObjectsV2");
    resp.assert_s3_error(403, "AccessDenied", "ListObjectsV2 after the reload");
    assert_eq!(
        status_of(&gateway, "GET", "/"),
        200,
        "ListBuckets after the reload"
    );
    let line = wait_for_log_line(&gateway, &["authorization policy reloaded", "SIGHUP"]);
    assert!(line.contains(" INFO "), "{line}");

    // A syntax error: the policy in force stays, with a warning naming the file.
    std::fs::write(&policy, POLICY_SYNTAX_ERROR).expect("write a broken policy.rego");
    sighup(&gateway);
    let line = wait_for_log_line(&gateway, &["authorization policy reload failed"]);
    assert!(
        line.contains(" WARN ") && line.contains(path_str(&policy)),
        "the warning does not name the file: {line}"
    );
    assert!(gateway.child.exited().is_none(), "the gateway exited");
    assert_eq!(
        status_of(&gateway, "GET", list_objects),
        403,
        "after the failed reload"
    );
    assert_eq!(
        status_of(&gateway, "GET", "/"),
        200,
        "after the failed reload"
    );

    // Fixed: loaded on the next SIGHUP.
    std::fs::write(&policy, POLICY_ALLOW_USER0).expect("fix policy.rego");
    sighup(&gateway);
    wait_for_status(
        &gateway,
        "GET",
        list_objects,
        200,
        "after the fixed policy's SIGHUP",
    );
}

/// `reload_interval_secs = 1`: a policy file rewritten on disk is reloaded without a signal
/// (`trigger="file change"`).
#[test]
fn changed_policy_files_are_reloaded_by_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let policy = dir.path().join("policy.rego");
    std::fs::write(&policy, POLICY_LIST_BUCKETS_ONLY).expect("write policy.rego");
    let gateway = configured_gateway(
        dir.path(),
        "gateway rego polling",
        &moto.endpoint(),
        MOTO_CREDENTIALS,
        &rego_authz_toml(&policy, 1),
        &[],
    );
    assert_eq!(status_of(&gateway, "GET", "/"), 200, "ListBuckets");
    assert_eq!(
        status_of(&gateway, "PUT", "/e2e-authz-poll"),
        403,
        "CreateBucket"
    );
    std::fs::write(&policy, POLICY_ALLOW_USER0).expect("rewrite policy.rego");
    wait_for_status(&gateway, "PUT", "/e2e-authz-poll", 200, "after the rewrite");
    wait_for_log_line(&gateway, &["authorization policy reloaded", "file change"]);
}

/// Authorization settings that cannot work stop the gateway at startup (exit 1) with a
/// message naming the file or the setting: a policy with a syntax error, a missing policy
/// file, `engine = "rego"` without policy files, policy files without `engine = "rego"`, an
/// unknown engine, an unknown key.
#[test]
fn broken_authorization_settings_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.rego");
    std::fs::write(&broken, POLICY_SYNTAX_ERROR).expect("write broken.rego");
    let missing = dir.path().join("missing.rego");
    let config = |extra: &str| {
        config_toml(
            None,
            local(free_port()),
            &dir.path().join("data"),
            false,
            "http://127.0.0.1:9",
            MOTO_CREDENTIALS,
            extra,
        )
    };
    let broken_msg = format!("gateway: authz: cannot load policy {}", path_str(&broken));
    let missing_msg = format!("gateway: authz: cannot load policy {}", path_str(&missing));
    let cases = [
        (rego_authz_toml(&broken, 5), broken_msg.as_str()),
        (rego_authz_toml(&missing, 5), missing_msg.as_str()),
        (
            "[authz]\nengine = \"rego\"\n".to_owned(),
            "authz.engine = \"rego\" needs authz.policy_files",
        ),
        (
            format!(
                "[authz]\npolicy_files = [{}]\n",
                toml_str(path_str(&broken))
            ),
            "authz.policy_files is set but authz.engine is not \"rego\"",
        ),
        (
            "[authz]\nengine = \"opa\"\n".to_owned(),
            "unknown authz.engine \"opa\": expected \"none\", \"rego\" or \"cedar\"",
        ),
        (
            "[authz]\nengine = \"rego\"\npolicy_file = \"x.rego\"\n".to_owned(),
            "unknown field `policy_file`",
        ),
    ];
    let path = dir.path().join("gateway.toml");
    for (extra, expected) in cases {
        eprintln!("case: {extra}");
        std::fs::write(&path, config(&extra)).expect("write gateway.toml");
        assert_startup_fails_saying(dir.path(), &path, &[], expected);
    }
}

/// A wrong `[sts]` setting stops the gateway at startup (exit 1) with a message naming it:
/// roles without a key or without any token issuer, a role trusting every issuer when there
/// are several, and a static user whose key has the ASIA prefix of session keys.
#[test]
fn broken_sts_settings_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |extra: &str| {
        config_toml(
            None,
            local(free_port()),
            &dir.path().join("data"),
            false,
            "http://127.0.0.1:9",
            MOTO_CREDENTIALS,
            extra,
        )
    };
    let issuer = |name: &str| {
        format!(
            "[[auth.jwt.issuers]]\nissuer = \"https://{name}.example.com\"\naudiences = [\"s3\"]\n"
        )
    };
    let key =
        "[[sts.keys]]\nid = \"k1\"\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n";
    let role = "[[sts.roles]]\narn = \"arn:aws:iam::000000000000:role/analytics\"\n";
    let cases = [
        (
            issuer("a") + role,
            "gateway: sts: sts.keys is empty".to_owned(),
        ),
        (
            format!("{key}{role}"),
            "gateway: sts: [[sts.roles]] need token issuers ([[auth.jwt.issuers]])".to_owned(),
        ),
        (
            format!("{}{}{key}{role}", issuer("a"), issuer("b")),
            "gateway: sts: sts.roles[0] (arn:aws:iam::000000000000:role/analytics): set \
             issuers: 2 token issuers are trusted"
                .to_owned(),
        ),
        (
            format!(
                "{}{key}{role}[[auth.static_users]]\naccess_key_id = \"ASIAMADEUPSTATIC0001\"\n\
                 secret = \"s\"\nsubject = \"u\"\n",
                issuer("a")
            ),
            "gateway: auth.static_users: access key id ASIAMADEUPSTATIC0001 starts with ASIA"
                .to_owned(),
        ),
    ];
    let path = dir.path().join("gateway.toml");
    for (extra, expected) in cases {
        eprintln!("case: {extra}");
        std::fs::write(&path, config(&extra)).expect("write gateway.toml");
        assert_startup_fails_saying(dir.path(), &path, &[], &expected);
    }
}

/// A wrong `[auth.jwt]` setting stops the gateway at startup (exit 1) with a message naming the
/// issuer (or the header).
#[test]
fn broken_jwt_settings_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |extra: &str| {
        config_toml(
            None,
            local(free_port()),
            &dir.path().join("data"),
            false,
            "http://127.0.0.1:9",
            MOTO_CREDENTIALS,
            extra,
        )
    };
    let issuer = |extra: &str| {
        format!(
            "[[auth.jwt.issuers]]\nissuer = \"https://sso.example.com/realms/main\"\n\
             audiences = [\"s3\"]\n{extra}\n"
        )
    };
    let cases = [
        (
            "[[auth.jwt.issuers]]\nissuer = \"https://sso.example.com/realms/main\"\n".to_owned(),
            "gateway: auth.jwt.issuers[0] (https://sso.example.com/realms/main): audiences is \
             empty",
        ),
        (
            issuer("algorithms = [\"HS256\"]"),
            "gateway: auth.jwt.issuers[0] (https://sso.example.com/realms/main): issuer \
             \"https://sso.example.com/realms/main\": algorithm HS256 is not allowed (HMAC)",
        ),
        (
            issuer("algorithms = [\"RS257\"]"),
            "gateway: auth.jwt.issuers[0] (https://sso.example.com/realms/main): unknown \
             algorithm \"RS257\" in algorithms",
        ),
        (
            issuer("jwks_url = \"file:///etc/keys\""),
            "gateway: auth.jwt.issuers[0] (https://sso.example.com/realms/main): invalid URL \
             \"file:///etc/keys\"",
        ),
        (
            issuer("") + &issuer(""),
            "gateway: auth.jwt.issuers[1] (https://sso.example.com/realms/main): the issuer is \
             already configured by auth.jwt.issuers[0]",
        ),
        (issuer("audience = \"s3\""), "unknown field `audience`"),
        (
            "[auth.jwt]\nheader = \"bad header\"\n".to_owned(),
            "gateway: auth.jwt.header \"bad header\" is not a valid header name",
        ),
    ];
    let path = dir.path().join("gateway.toml");
    for (extra, expected) in cases {
        eprintln!("case: {extra}");
        std::fs::write(&path, config(&extra)).expect("write gateway.toml");
        assert_startup_fails_saying(dir.path(), &path, &[], expected);
    }
}

// Encryption ([encryption], and --dev's local key)

/// The size §8a gives the ciphertext of `plaintext` bytes stored by one PUT (or by parts that
/// are multiples of 64 KiB): 32 bytes more per 64 KiB segment, at least one segment.
fn encrypted_len(plaintext: usize) -> usize {
    plaintext + 32 * plaintext.div_ceil(64 * 1024).max(1)
}

/// The backend's file `path` holds the ciphertext of `plaintext`: its size is
/// [`encrypted_len`], and no 32-byte window of the plaintext (first, middle, last) is in it.
fn assert_stored_encrypted(path: &Path, plaintext: &[u8]) {
    let stored = std::fs::read(path)
        .unwrap_or_else(|e| panic!("the object is not at {}: {e}", path.display()));
    assert_eq!(
        stored.len(),
        encrypted_len(plaintext.len()),
        "size of the stored object {}",
        path.display()
    );
    let len = plaintext.len();
    for start in [0, len / 2, len.saturating_sub(32)] {
        let window = &plaintext[start..len.min(start + 32)];
        assert!(
            !stored.windows(window.len()).any(|w| w == window),
            "{} holds plaintext (bytes {start}..)",
            path.display()
        );
    }
}

/// A JSON document an `aws s3api` command printed.
fn json_of(what: &str, out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{out}"))
}

/// The `--dev` acceptance check of encryption: the gateway says at startup that objects are
/// encrypted with the local key `<data-dir>/.dev/encryption.key` (made with mode 0600); an
/// object put with the AWS CLI is stored by the backend as ciphertext only
/// (no plaintext in the file); GET gives it back byte-identical, a range GET
/// (`bytes=100-70000`, across a segment boundary) the exact plaintext bytes with a plaintext
/// `Content-Range`, HEAD the plaintext `Content-Length`, ListObjectsV2 the plaintext `Size`.
#[test]
fn dev_mode_stores_ciphertext_and_serves_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let gateway = start_dev_gateway(dir.path(), "gateway --dev encryption", &[]);
    let files = DevFiles::of(&data_dir);
    let key_file = data_dir.join(".dev/encryption.key");
    let startup = gateway.child.log();
    let expected = format!(
        "Objects are encrypted with the local development key {}",
        key_file.display()
    );
    assert!(
        startup.contains(&expected),
        "the startup output does not say `{expected}`:\n{startup}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("the dev key file exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode of {}", key_file.display());
    }

    files.aws_ok("admin", &["s3", "mb", "s3://enc-dev"]);
    let data = pseudo_random_bytes(200_000, 0x0e0c_0de5);
    let up = dir.path().join("object.bin");
    std::fs::write(&up, &data).expect("write object.bin");
    let s3api =
        |args: &[&str]| files.aws_ok("admin", &[&["--output", "json", "s3api"], args].concat());
    s3api(&[
        "put-object",
        "--bucket",
        "enc-dev",
        "--key",
        "docs/object.bin",
        "--body",
        path_str(&up),
    ]);
    assert_stored_encrypted(&data_dir.join("buckets/enc-dev/docs/object.bin"), &data);

    let down = dir.path().join("object.down");
    s3api(&[
        "get-object",
        "--bucket",
        "enc-dev",
        "--key",
        "docs/object.bin",
        path_str(&down),
    ]);
    let got = std::fs::read(&down).expect("read the download");
    assert!(
        got == data,
        "GET returned other bytes ({} bytes)",
        got.len()
    );

    let ranged = dir.path().join("object.range");
    let out = s3api(&[
        "get-object",
        "--bucket",
        "enc-dev",
        "--key",
        "docs/object.bin",
        "--range",
        "bytes=100-70000",
        path_str(&ranged),
    ]);
    let got = std::fs::read(&ranged).expect("read the ranged download");
    assert!(
        got == data[100..=70_000],
        "the range GET returned other bytes ({} bytes)",
        got.len()
    );
    let answer = json_of("get-object --range", &out);
    assert_eq!(answer["ContentLength"], 69_901, "{out}");
    assert_eq!(answer["ContentRange"], "bytes 100-70000/200000", "{out}");

    let out = s3api(&[
        "head-object",
        "--bucket",
        "enc-dev",
        "--key",
        "docs/object.bin",
    ]);
    assert_eq!(
        json_of("head-object", &out)["ContentLength"],
        200_000,
        "{out}"
    );

    let out = s3api(&["list-objects-v2", "--bucket", "enc-dev"]);
    let listing = json_of("list-objects-v2", &out);
    assert_eq!(listing["Contents"][0]["Key"], "docs/object.bin", "{out}");
    assert_eq!(listing["Contents"][0]["Size"], 200_000, "{out}");
}

/// A gateway configuration with one static backend (never contacted) and `encryption`.
fn encryption_config(dir: &Path, encryption: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[routing]\ndefault_backend = \"main\"\n\n[[backends]]\nname = \"main\"\n\
             endpoint = \"http://127.0.0.1:9\"\n[backends.credentials]\nsource = \"static\"\n\
             access_key_id = \"k\"\nsecret_access_key = \"s\"\n\n{encryption}"
        ),
    )
    .expect("write gateway.toml");
    path
}

/// `[encryption]` errors stop the gateway at startup (exit 1) with a message naming the
/// entry: a default or bucket rule naming no KEK, a KEK name used twice, an unknown KEK type
/// or key, a local key file that does not exist, a bad binding from the environment
/// (`S3_TOWER__ENCRYPTION__BINDING`), a default naming no KEK from the environment.
#[test]
fn encryption_configuration_errors_are_fatal_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("kek.key");
    std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").expect("write a key");
    let local = |name: &str| {
        format!(
            "[[encryption.keks]]\nname = {}\ntype = \"local\"\npath = {}\n",
            toml_str(name),
            toml_str(path_str(&key))
        )
    };
    let on = "[encryption]\nenabled = true\n";
    let missing = dir.path().join("absent.key");
    let cases: Vec<(String, Env<'_>, String)> = vec![
        (
            format!("{on}default = \"vault\"\n{}", local("main")),
            &[],
            "gateway: encryption.default = \"vault\" names no KEK of [[encryption.keks]] \
             (configured: \"main\")"
                .to_owned(),
        ),
        (
            format!("{on}default = \"main\"\n{}{}", local("main"), local("main")),
            &[],
            "gateway: encryption.keks[1]: the name \"main\" is already used by \
             encryption.keks[0]"
                .to_owned(),
        ),
        (
            format!(
                "{on}{}[[encryption.buckets]]\nbucket = \"data-*\"\nkek = \"kms\"\n",
                local("main")
            ),
            &[],
            "gateway: encryption.buckets[0] (data-*): kek = \"kms\" names no KEK of \
             [[encryption.keks]] (configured: \"main\")"
                .to_owned(),
        ),
        (
            format!("{on}[[encryption.keks]]\nname = \"x\"\ntype = \"hsm\"\n"),
            &[],
            "unknown variant `hsm`".to_owned(),
        ),
        (
            format!("{on}default_kek = \"main\"\n"),
            &[],
            "unknown field `default_kek`".to_owned(),
        ),
        (
            format!(
                "{on}default = \"dev\"\n[[encryption.keks]]\nname = \"dev\"\ntype = \"local\"\n\
                 path = {}\n",
                toml_str(path_str(&missing))
            ),
            &[],
            format!(
                "gateway: encryption.keks[0] (dev, type local): cannot read the KEK file {}",
                missing.display()
            ),
        ),
        (
            format!("{on}default = \"main\"\n{}", local("main")),
            &[("S3_TOWER__ENCRYPTION__BINDING", "key")],
            "unknown binding \"key\": expected \"none\", \"bucket\" or \"object\"".to_owned(),
        ),
        (
            format!("{on}default = \"main\"\n{}", local("main")),
            &[("S3_TOWER__ENCRYPTION__DEFAULT", "other")],
            "gateway: encryption.default = \"other\" names no KEK".to_owned(),
        ),
    ];
    for (toml, env, expected) in cases {
        eprintln!("case:\n{toml}");
        let path = encryption_config(dir.path(), &toml);
        assert_startup_fails_saying(dir.path(), &path, env, &expected);
    }
}

/// Fail fast: a Transit KEK whose server cannot be reached stops the gateway at startup
/// (exit 1, nothing listening) with a message naming the KEK, rather than starting and
/// refusing every request later.
#[test]
fn an_unreachable_transit_kek_stops_the_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_reserved, port) = closed_port();
    let path = encryption_config(
        dir.path(),
        &format!(
            "[encryption]\nenabled = true\ndefault = \"vault\"\n\
             [[encryption.keks]]\nname = \"vault\"\ntype = \"transit\"\n\
             address = \"http://127.0.0.1:{port}\"\nkey = \"s3\"\ntoken_env = \"E2E_BAO_TOKEN\"\n\
             timeout_secs = 3\n"
        ),
    );
    let started = Instant::now();
    let stderr = startup_failure(dir.path(), &path, &[("E2E_BAO_TOKEN", "s.e2e-token")]);
    assert!(
        stderr.contains("gateway: encryption: KEK \"vault\" (type transit")
            && stderr.contains("failed its startup check")
            && stderr.contains("the key service is unavailable"),
        "stderr does not name the unreachable KEK:\n{stderr}"
    );
    assert!(
        !stderr.contains("s.e2e-token"),
        "the token is in the message:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the check took {:?}",
        started.elapsed()
    );
}
