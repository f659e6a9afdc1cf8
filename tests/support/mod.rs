//! Shared helpers for the end-to-end tests: child processes that die with the test, free ports,
//! readiness polling, a moto server, the gateway example and the static user it knows, a small
//! HTTP client that can sign its requests (SigV4 with `aws-sigv4`, header or presigned URL),
//! and the Python clients of `.tools/venv`.
//!
//! The tools come from `cargo xtask test`, which installs them into `.tools/` and sets
//! `S3_TOWER_TOOLS` and `S3_TOWER_GATEWAY_BIN`. Nothing is skipped silently: a missing tool is
//! a panic that says how to get it.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tempfile::TempDir;

/// How to get the tools when they are missing.
const HOW_TO_GET_TOOLS: &str = "run the end-to-end tests with `cargo xtask test`, which \
     installs the tools into .tools/ and sets S3_TOWER_TOOLS and S3_TOWER_GATEWAY_BIN \
     (or run `cargo xtask tools` and set them yourself)";

/// How long a server may take to become ready.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `.tools` directory of `cargo xtask tools`.
pub(crate) fn tools_dir() -> PathBuf {
    let dir = std::env::var_os("S3_TOWER_TOOLS").map_or_else(
        || panic!("S3_TOWER_TOOLS is not set: {HOW_TO_GET_TOOLS}"),
        PathBuf::from,
    );
    assert!(
        dir.join("venv").join("bin").is_dir(),
        "S3_TOWER_TOOLS={} holds no venv/bin: {HOW_TO_GET_TOOLS}",
        dir.display()
    );
    dir
}

/// An executable of the tools' Python venv (`python`, `aws`, `moto_server`, ...).
pub(crate) fn venv_bin(name: &str) -> PathBuf {
    let path = tools_dir().join("venv").join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: {HOW_TO_GET_TOOLS}",
        path.display()
    );
    path
}

/// The gateway example's binary.
pub(crate) fn gateway_bin() -> PathBuf {
    let path = std::env::var_os("S3_TOWER_GATEWAY_BIN").map_or_else(
        || panic!("S3_TOWER_GATEWAY_BIN is not set: {HOW_TO_GET_TOOLS}"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "S3_TOWER_GATEWAY_BIN={} does not exist: {HOW_TO_GET_TOOLS}",
        path.display()
    );
    path
}

/// A `tests/clients/<name>` Python client script.
pub(crate) fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join(name)
}

/// A port that was free a moment ago (the OS picks it; the listener is closed again).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A local port on which connections are refused for as long as the returned socket lives:
/// the socket is bound (so no other test can take the port) but never listens.
pub(crate) fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .expect("bind a socket");
    let port = socket.local_addr().expect("local address").port();
    (socket, port)
}

/// Polls `ready` every 100 ms until it is true; panics after `timeout` naming `what`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process that is killed when the guard drops. Its output goes to a log file, which
/// is printed when the test is failing, so a failed test shows what the server said.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = File::create(log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {name} ({}): {e}", cmd.get_program().display())
        });
        Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// `Some(status)` when the process has exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll a child process")
    }

    /// The log written so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- log of {} (pid {}) -----\n{}\n----- end of log of {} -----",
                self.name,
                self.child.id(),
                tail(&self.log(), 200),
                self.name
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts a server on fresh ports until it gets ready: `start` spawns it for a port pair and
/// `ready` probes it. A server that exits while starting (e.g. its port was taken by a
/// parallel test in the meantime) is retried on other ports, up to three times.
fn start_with_retries(
    what: &str,
    mut start: impl FnMut(u16, u16) -> ChildGuard,
    ready: impl Fn(u16, u16) -> bool,
) -> (ChildGuard, u16, u16) {
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let (port, port2) = (free_port(), free_port());
        let mut child = start(port, port2);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.exited() {
                last_log = format!("{what} exited while starting ({status}):\n{}", child.log());
                break;
            }
            if ready(port, port2) {
                return (child, port, port2);
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready after {STARTUP_TIMEOUT:?}; its log:\n{}",
                tail(&child.log(), 200)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{what} did not start:\n{last_log}");
}

/// A moto S3 server (`moto_server -H 127.0.0.1 -p PORT`) in its own temporary directory.
pub(crate) struct Moto {
    /// The port it listens on.
    pub(crate) port: u16,
    _child: ChildGuard,
    _dir: TempDir,
}

impl Moto {
    /// Starts moto and waits until it answers `GET /`.
    pub(crate) fn start() -> Self {
        let bin = venv_bin("moto_server");
        let dir = tempfile::tempdir().expect("create a temp dir for moto");
        let (child, port, _) = start_with_retries(
            "moto_server",
            |port, _| {
                let mut cmd = Command::new(&bin);
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    // Its recorder writes into the working directory.
                    .current_dir(dir.path())
                    .env("MOTO_RECORDER_FILEPATH", dir.path().join("moto_recording"));
                ChildGuard::spawn("moto_server", cmd, &dir.path().join("moto.log"))
            },
            |port, _| {
                http_request(local(port), "GET", "/", &[], Vec::new())
                    .is_ok_and(|r| r.status == 200)
            },
        );
        Self {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The socket address.
    pub(crate) fn addr(&self) -> SocketAddr {
        local(self.port)
    }

    /// Clears moto's request recording and starts recording every request it serves.
    pub(crate) fn start_recording(&self) {
        for path in [
            "/moto-api/recorder/reset-recording",
            "/moto-api/recorder/start-recording",
        ] {
            let resp = http_request(self.addr(), "POST", path, &[], Vec::new())
                .unwrap_or_else(|e| panic!("POST {path} to moto: {e}"));
            assert_eq!(resp.status, 200, "POST {path} to moto: {}", resp.text());
        }
    }

    /// The requests moto recorded since [`Moto::start_recording`], one JSON object each, and
    /// stops recording.
    pub(crate) fn recorded_requests(&self) -> Vec<serde_json::Value> {
        let resp = http_request(
            self.addr(),
            "GET",
            "/moto-api/recorder/download-recording",
            &[],
            Vec::new(),
        )
        .expect("download moto's recording");
        assert_eq!(resp.status, 200, "download moto's recording");
        let stop = http_request(
            self.addr(),
            "POST",
            "/moto-api/recorder/stop-recording",
            &[],
            Vec::new(),
        )
        .expect("stop moto's recording");
        assert_eq!(stop.status, 200, "stop moto's recording");
        resp.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a recorded request is JSON"))
            .collect()
    }
}

/// An access key and its secret, as a client signs with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The access key id.
    pub(crate) access_key_id: String,
    /// The secret access key.
    pub(crate) secret_access_key: String,
}

impl Keys {
    pub(crate) fn new(access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret.into(),
        }
    }

    /// The same access key id with another secret: its signatures never match.
    pub(crate) fn with_wrong_secret(&self) -> Self {
        Self::new(
            self.access_key_id.clone(),
            format!("{}-wrong", self.secret_access_key),
        )
    }

    /// `--access-key <id> --secret-key <secret>`, the arguments of the Python clients.
    pub(crate) fn client_args(&self) -> [&str; 4] {
        [
            "--access-key",
            &self.access_key_id,
            "--secret-key",
            &self.secret_access_key,
        ]
    }

    /// Gives an AWS CLI (or SDK) process these keys through `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    pub(crate) fn set_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)
    }
}

/// The static user of the gateways of [`GatewayConfig::new`] (and of `e2e_gateway`'s configs).
pub(crate) fn e2e_user() -> Keys {
    Keys::new(
        "E2EUSERACCESSKEY0001",
        "e2e-user-secret-do-not-use-elsewhere",
    )
}

/// `[[auth.static_users]]` tables for `users`, with inline secrets and subjects `user0`,
/// `user1`, ...
pub(crate) fn static_users_toml(users: &[Keys]) -> String {
    let mut t = String::new();
    for (i, user) in users.iter().enumerate() {
        let _ = write!(
            t,
            "\n[[auth.static_users]]\naccess_key_id = {}\nsecret = {}\nsubject = \"user{i}\"\n",
            toml_str(&user.access_key_id),
            toml_str(&user.secret_access_key),
        );
    }
    t
}

/// The gateway's configuration for a test (rendered to TOML).
#[derive(Debug, Clone)]
pub(crate) struct GatewayConfig {
    /// The one backend's endpoint, e.g. moto's.
    pub(crate) backend_endpoint: String,
    /// `auth.allow_anonymous`.
    pub(crate) allow_anonymous: bool,
    /// `[[auth.static_users]]`.
    pub(crate) static_users: Vec<Keys>,
    /// `server.virtual_host_domains`.
    pub(crate) virtual_host_domains: Vec<String>,
    /// Wait for `/readyz` (true) or only `/healthz` (false, for a gateway whose backend is
    /// down on purpose and that may therefore never report ready).
    pub(crate) wait_for_readyz: bool,
    /// `[server.tls]`: the S3 listener serves HTTPS with this certificate (`None`: plain
    /// HTTP).
    pub(crate) tls: Option<TestPki>,
}

impl GatewayConfig {
    /// A gateway in front of `backend_endpoint`, path-style only, that accepts requests
    /// signed by [`e2e_user`] and refuses unsigned ones.
    pub(crate) fn new(backend_endpoint: impl Into<String>) -> Self {
        Self {
            backend_endpoint: backend_endpoint.into(),
            allow_anonymous: false,
            static_users: vec![e2e_user()],
            virtual_host_domains: Vec::new(),
            wait_for_readyz: true,
            tls: None,
        }
    }

    /// A gateway with no static user that lets unsigned requests through
    /// (`allow_anonymous = true`).
    pub(crate) fn anonymous(backend_endpoint: impl Into<String>) -> Self {
        Self {
            allow_anonymous: true,
            static_users: Vec::new(),
            ..Self::new(backend_endpoint)
        }
    }

    fn to_toml(&self, listen: SocketAddr, admin: SocketAddr, data_dir: &Path) -> String {
        let domains = self
            .virtual_host_domains
            .iter()
            .map(|d| toml_str(d))
            .collect::<Vec<_>>()
            .join(", ");
        let mut t = String::new();
        let _ = write!(
            t,
            r#"[server]
listen = {listen}
admin_listen = {admin}
data_dir = {data_dir}
virtual_host_domains = [{domains}]

[auth]
allow_anonymous = {anonymous}
{users}
[routing]
default_backend = "main"

[[backends]]
name = "main"
endpoint = {endpoint}
region = "us-east-1"
addressing = "path"
buckets = []

[backends.credentials]
source = "static"
access_key_id = "test"
secret_access_key = "test"
"#,
            listen = toml_str(&listen.to_string()),
            admin = toml_str(&admin.to_string()),
            data_dir = toml_str(&data_dir.to_string_lossy()),
            anonymous = self.allow_anonymous,
            users = static_users_toml(&self.static_users),
            endpoint = toml_str(&self.backend_endpoint),
        );
        if let Some(pki) = &self.tls {
            let _ = write!(
                t,
                "\n[server.tls]\ncert_file = {}\nkey_file = {}\n",
                toml_str(&pki.cert.to_string_lossy()),
                toml_str(&pki.key.to_string_lossy()),
            );
        }
        t
    }
}

/// PEM files of a test CA and of a server certificate it signed for `localhost` and
/// 127.0.0.1, written by [`write_test_pki`].
#[derive(Debug, Clone)]
pub(crate) struct TestPki {
    /// The CA certificate clients trust (`ca.pem`).
    pub(crate) ca: PathBuf,
    /// The server certificate (`cert.pem`).
    pub(crate) cert: PathBuf,
    /// The server's private key (`key.pem`).
    pub(crate) key: PathBuf,
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, as PEM files
/// `ca.pem`, `cert.pem`, `key.pem` in `dir`.
pub(crate) fn write_test_pki(dir: &Path) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "s3-tower e2e test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("self-sign the CA");

    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &ca).expect("sign the server cert");

    let pki = TestPki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&pki.ca, ca.pem()).expect("write ca.pem");
    std::fs::write(&pki.cert, cert.pem()).expect("write cert.pem");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write key.pem");
    pki
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The gateway example, started with a config file in a temporary directory.
pub(crate) struct Gateway {
    /// The S3 port.
    pub(crate) port: u16,
    /// The admin port (`/healthz`, `/readyz`, `/metrics`).
    pub(crate) admin_port: u16,
    /// Whether the S3 listener serves HTTPS (`[server.tls]`).
    pub(crate) tls: bool,
    child: ChildGuard,
    _dir: TempDir,
}

impl Gateway {
    /// Writes the config, starts the gateway and waits until it reports ready.
    pub(crate) fn start(config: &GatewayConfig) -> Self {
        Self::start_with_extra_toml(config, "")
    }

    /// `http://127.0.0.1:PORT`, or with TLS `https://localhost:PORT` (a name of the test
    /// certificate).
    pub(crate) fn endpoint(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The admin port's `/metrics` text.
    pub(crate) fn metrics(&self) -> String {
        let resp = http_request(local(self.admin_port), "GET", "/metrics", &[], Vec::new())
            .expect("GET /metrics");
        assert_eq!(resp.status, 200, "GET /metrics: {}", resp.text());
        resp.text()
    }

    /// The S3 socket address.
    pub(crate) fn addr(&self) -> SocketAddr {
        local(self.port)
    }

    /// The gateway's log so far.
    pub(crate) fn log(&self) -> String {
        self.child.log()
    }
}

/// `127.0.0.1:port`.
pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A response of [`http_request`].
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// The status code.
    pub(crate) status: u16,
    /// The headers.
    pub(crate) headers: http::HeaderMap,
    /// The whole body.
    pub(crate) body: Bytes,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics unless this is an S3 error `status` with `<Code>code</Code>`; `what` names the
    /// request in the failure.
    #[track_caller]
    pub(crate) fn assert_s3_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(
            (self.status, self.s3_error_code().as_deref()),
            (status, Some(code)),
            "{what}: {}",
            self.text()
        );
    }

    /// The `<Code>` of an S3 XML error body.
    pub(crate) fn s3_error_code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_owned())
    }
}

/// Sends one HTTP/1.1 request over a new connection, exactly as given: `target` is sent as the
/// request target unmodified (so malformed escapes reach the server), and `Host` is
/// `addr` unless `headers` names one. Times out after 60 s.
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<HttpResponse, String> {
    let request =
        unsent_request(addr, method, target, headers)?.map(|()| Full::new(Bytes::from(body)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
            tokio::spawn(conn);
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("{method} {target} to {addr}: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("read the body of {method} {target}: {e}"))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_mins(1), exchange)
            .await
            .map_err(|_| format!("{method} {target} to {addr} timed out"))?
    })
}

/// Signs `request` for S3 in `us-east-1` with `keys`, as a client would: in the
/// `Authorization` header over the SHA-256 of `body`, or, with `presign`, as a presigned URL
/// valid that long (unsigned payload). The request needs a `Host` header.
pub(crate) fn sign_request(
    request: &mut http::Request<()>,
    body: &[u8],
    keys: &Keys,
    presign: Option<Duration>,
) -> Result<(), String> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
        SigningSettings, UriPathNormalizationMode, sign,
    };
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let signable_body = if let Some(expires) = presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        SignableBody::UnsignedPayload
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        SignableBody::Bytes(body)
    };
    let credentials = aws_credential_types::Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        None,
        None,
        "e2e",
    );
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("a request to sign needs a Host header")?;
    let url = format!("http://{host}{}", request.uri());
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| Ok((k.as_str(), v.to_str().map_err(|e| e.to_string())?)))
        .collect::<Result<Vec<_>, String>>()?;
    let signable = SignableRequest::new(
        request.method().as_str(),
        &url,
        headers.into_iter(),
        signable_body,
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// [`http_request`], signed by `keys` in the `Authorization` header.
pub(crate) fn signed_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    keys: &Keys,
) -> Result<HttpResponse, String> {
    let mut request = unsent_request(addr, method, target, headers)?;
    sign_request(&mut request, &body, keys, None)?;
    let signed: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let signed: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http_request(addr, method, target, &signed, body)
}

/// The request target (path and query) of a URL presigned by `keys` for `method target`,
/// valid for ten minutes.
pub(crate) fn presigned_target(
    addr: SocketAddr,
    method: &str,
    target: &str,
    keys: &Keys,
) -> Result<String, String> {
    let mut request = unsent_request(addr, method, target, &[])?;
    sign_request(&mut request, &[], keys, Some(Duration::from_mins(10)))?;
    Ok(request
        .uri()
        .path_and_query()
        .map_or_else(|| target.to_owned(), ToString::to_string))
}

/// A request head for `method target` with `headers`, and `Host: addr` unless they name one.
fn unsent_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<http::Request<()>, String> {
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?)
        .uri(target);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header(http::header::HOST, addr.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(())
        .map_err(|e| format!("invalid request {method} {target}: {e}"))
}

/// Runs a command to completion, with its output captured.
pub(crate) fn run_captured(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cmd.get_program().display()))
}

/// Panics with the command's output unless it exited 0; returns its stdout.
pub(crate) fn assert_success(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}).\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    stdout
}

/// A Python command of the tools' venv running `tests/clients/<script>`.
pub(crate) fn python_client(script: &str) -> Command {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(client_script(script))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    isolate_aws_env(&mut cmd);
    cmd
}

/// Keeps the AWS clients away from the user's AWS configuration and from instance metadata.
pub(crate) fn isolate_aws_env(cmd: &mut Command) {
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("NO_PROXY", "*");
}

/// Removes every variable that could make a TLS client trust our CA by itself.
pub(crate) fn without_ca_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "AWS_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use s3s::crypto::{Checksum as _, Sha256};
    Sha256::checksum(data)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Deterministic pseudo-random bytes (xorshift), so big objects do not compress or repeat.
pub(crate) fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs a Python client to success and checks that a line of its output is `expected_line`;
/// returns its output.
pub(crate) fn run_python(what: &str, mut cmd: Command, expected_line: &str) -> String {
    let out = run_captured(&mut cmd);
    let stdout = assert_success(what, &out);
    eprintln!("--- {what} ---\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim() == expected_line),
        "{what}: no `{expected_line}` in its output:\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

impl Gateway {
    /// [`Gateway::start`] with `extra` appended to the rendered configuration: tables of
    /// their own (`[authz]`, `[[auth.jwt.issuers]]`, `[[auth.static_users]]` with groups...).
    pub(crate) fn start_with_extra_toml(config: &GatewayConfig, extra: &str) -> Self {
        let bin = gateway_bin();
        let dir = tempfile::tempdir().expect("create a temp dir for the gateway");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create the gateway's data dir");
        let config_path = dir.path().join("gateway.toml");
        let probe = if config.wait_for_readyz {
            "/readyz"
        } else {
            "/healthz"
        };
        let (child, port, admin_port) = start_with_retries(
            "gateway",
            |port, admin_port| {
                let toml = config.to_toml(local(port), local(admin_port), &data_dir) + extra;
                std::fs::write(&config_path, toml).expect("write the gateway config");
                let mut cmd = Command::new(&bin);
                cmd.arg("--config")
                    .arg(&config_path)
                    .current_dir(dir.path())
                    .env(
                        "RUST_LOG",
                        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
                    );
                ChildGuard::spawn("gateway", cmd, &dir.path().join("gateway.log"))
            },
            |_, admin_port| {
                http_request(local(admin_port), "GET", probe, &[], Vec::new())
                    .is_ok_and(|r| r.status == 200)
            },
        );
        Self {
            port,
            admin_port,
            tls: config.tls.is_some(),
            child,
            _dir: dir,
        }
    }
}

/// `[[auth.static_users]]` tables for `(keys, subject, groups)`, with inline secrets.
pub(crate) fn static_users_with_groups_toml(users: &[(&Keys, &str, &[&str])]) -> String {
    let mut t = String::new();
    for (keys, subject, groups) in users {
        let groups = groups
            .iter()
            .map(|g| toml_str(g))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            t,
            "\n[[auth.static_users]]\naccess_key_id = {}\nsecret = {}\nsubject = {}\n\
             groups = [{groups}]\n",
            toml_str(&keys.access_key_id),
            toml_str(&keys.secret_access_key),
            toml_str(subject),
        );
    }
    t
}

/// The JSON of part `index` of a JWT (0: header, 1: claims), not verified.
pub(crate) fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("a JWT part is base64url");
    serde_json::from_slice(&json).expect("a JWT part is JSON")
}

/// An OpenBao dev server (`bao server -dev`, in memory, unsealed) on a free port, started from
/// the tools' venv, with a random root token. Its identity secrets engine is an OIDC provider:
/// [`OpenBao::setup_oidc`] makes it one that issues tokens for userpass users with their
/// groups in a `groups` claim.
pub(crate) struct OpenBao {
    /// The port of its API.
    pub(crate) port: u16,
    root_token: String,
    child: Option<ChildGuard>,
    _dir: TempDir,
}

/// Where [`OpenBao::setup_oidc`] put things.
#[derive(Debug, Clone)]
pub(crate) struct BaoOidc {
    /// The tokens' `iss`: `http://127.0.0.1:PORT/v1/identity/oidc`.
    pub(crate) issuer: String,
    /// The named key signing the tokens.
    pub(crate) key: String,
    /// The role whose tokens the test uses.
    pub(crate) role: String,
    /// That role's client id: the tokens' `aud`.
    pub(crate) client_id: String,
}

/// The password of every userpass user [`OpenBao::add_user`] makes.
fn bao_password(user: &str) -> String {
    format!("{user}-password-e2e")
}

impl OpenBao {
    /// Starts `bao server -dev` and waits until `/v1/sys/health` answers 200. (Dev mode also
    /// binds the next port for cluster traffic; a start that fails on a taken port is retried.)
    pub(crate) fn start() -> Self {
        let bin = venv_bin("bao");
        let dir = tempfile::tempdir().expect("create a temp dir for OpenBao");
        let root_token = format!("e2e-root-{}", uuid::Uuid::new_v4().simple());
        let (child, port, _) = start_with_retries(
            "bao server -dev",
            |port, _| {
                let mut cmd = Command::new(&bin);
                cmd.arg("server")
                    .arg("-dev")
                    .arg("-dev-no-store-token")
                    .arg(format!("-dev-root-token-id={root_token}"))
                    .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                    .current_dir(dir.path())
                    // Nothing of the host's OpenBao/Vault setup, and no token helper file in
                    // the real home directory.
                    .env("HOME", dir.path())
                    .env_remove("BAO_ADDR")
                    .env_remove("BAO_TOKEN")
                    .env_remove("VAULT_ADDR")
                    .env_remove("VAULT_TOKEN")
                    .env("NO_PROXY", "*");
                ChildGuard::spawn("bao server -dev", cmd, &dir.path().join("bao.log"))
            },
            |port, _| {
                http_request(local(port), "GET", "/v1/sys/health", &[], Vec::new())
                    .is_ok_and(|r| r.status == 200)
            },
        );
        Self {
            port,
            root_token,
            child: Some(child),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far (empty once stopped).
    pub(crate) fn log(&self) -> String {
        self.child.as_ref().map(ChildGuard::log).unwrap_or_default()
    }

    /// Kills the server.
    pub(crate) fn stop(&mut self) {
        drop(self.child.take());
    }

    /// `method /v1/<path>` with `body` (JSON) as `token`; the response's JSON (`null` for an
    /// empty body), or the status and body when it is not a success.
    pub(crate) fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let target = format!("/v1/{path}");
        let mut headers = vec![("content-type", "application/json")];
        if let Some(token) = token {
            headers.push(("x-vault-token", token));
        }
        let body = body.map(ToString::to_string).unwrap_or_default();
        let resp = http_request(
            local(self.port),
            method,
            &target,
            &headers,
            body.into_bytes(),
        )?;
        if !(200..300).contains(&resp.status) {
            return Err(format!(
                "{method} {target}: {} {}",
                resp.status,
                resp.text()
            ));
        }
        if resp.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("{method} {target}: {e}"))
    }

    /// [`OpenBao::call`] with the root token; panics on failure.
    pub(crate) fn root(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let body = (!body.is_null()).then_some(body);
        self.call(Some(&self.root_token), method, path, body)
            .unwrap_or_else(|e| panic!("OpenBao: {e}\n{}", tail(&self.log(), 50)))
    }

    /// Makes this server an OIDC provider: issuer `url()` (tokens say
    /// `<url>/v1/identity/oidc`), the RS256 key `key` for every client, the role `role`
    /// signed by it with the entity's group names in `groups`, and userpass auth whose
    /// users may read any role's token.
    pub(crate) fn setup_oidc(&self, key: &str, role: &str) -> BaoOidc {
        self.setup_oidc_claiming(&self.url(), key, role)
    }

    /// [`OpenBao::setup_oidc`] with `issuer_base` as the issuer URL (e.g. another server's, for
    /// an impostor).
    pub(crate) fn setup_oidc_claiming(&self, issuer_base: &str, key: &str, role: &str) -> BaoOidc {
        self.root(
            "POST",
            "identity/oidc/config",
            &serde_json::json!({ "issuer": issuer_base }),
        );
        self.create_oidc_key(key);
        let client_id = self.create_oidc_role(role, key, "1h");
        self.root(
            "POST",
            "sys/auth/userpass",
            &serde_json::json!({ "type": "userpass" }),
        );
        self.root(
            "PUT",
            "sys/policies/acl/oidc-tokens",
            &serde_json::json!({
                "policy": "path \"identity/oidc/token/*\" { capabilities = [\"read\"] }"
            }),
        );
        BaoOidc {
            issuer: format!("{issuer_base}/v1/identity/oidc"),
            key: key.to_owned(),
            role: role.to_owned(),
            client_id,
        }
    }

    /// A named RS256 signing key every client id may use.
    pub(crate) fn create_oidc_key(&self, key: &str) {
        self.root(
            "POST",
            &format!("identity/oidc/key/{key}"),
            &serde_json::json!({ "algorithm": "RS256", "allowed_client_ids": "*" }),
        );
    }

    /// A role whose tokens `key` signs, valid for `ttl`, with the entity's group names in
    /// `groups`; returns its client id (the tokens' `aud`).
    pub(crate) fn create_oidc_role(&self, role: &str, key: &str, ttl: &str) -> String {
        let path = format!("identity/oidc/role/{role}");
        self.root(
            "POST",
            &path,
            &serde_json::json!({
                "key": key,
                "ttl": ttl,
                "template": "{\"groups\": {{identity.entity.groups.names}}}",
            }),
        );
        self.root("GET", &path, &serde_json::Value::Null)["data"]["client_id"]
            .as_str()
            .expect("a role has a client_id")
            .to_owned()
    }

    /// A userpass user `name` (password [`bao_password`]) whose identity entity is in
    /// `groups` (internal groups, made when missing).
    pub(crate) fn add_user(&self, name: &str, groups: &[&str]) {
        self.root(
            "POST",
            &format!("auth/userpass/users/{name}"),
            &serde_json::json!({ "password": bao_password(name), "token_policies": "oidc-tokens" }),
        );
        let entity = self.root(
            "POST",
            "identity/entity",
            &serde_json::json!({ "name": name }),
        );
        let entity_id = entity["data"]["id"]
            .as_str()
            .expect("a new entity has an id")
            .to_owned();
        let mounts = self.root("GET", "sys/auth", &serde_json::Value::Null);
        let accessor = mounts["data"]["userpass/"]["accessor"]
            .as_str()
            .expect("userpass is enabled")
            .to_owned();
        self.root(
            "POST",
            "identity/entity-alias",
            &serde_json::json!({
                "name": name,
                "canonical_id": entity_id,
                "mount_accessor": accessor,
            }),
        );
        for group in groups {
            let path = format!("identity/group/name/{group}");
            let mut members: Vec<String> = self
                .call(Some(&self.root_token), "GET", &path, None)
                .ok()
                .and_then(|g| {
                    g["data"]["member_entity_ids"].as_array().map(|ids| {
                        ids.iter()
                            .filter_map(|id| id.as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default();
            members.push(entity_id.clone());
            self.root(
                "POST",
                &path,
                &serde_json::json!({ "type": "internal", "member_entity_ids": members }),
            );
        }
    }

    /// Logs `user` in with userpass and reads a token of `role`: a JWT signed by the role's
    /// key.
    pub(crate) fn oidc_token(&self, user: &str, role: &str) -> String {
        let login = self
            .call(
                None,
                "POST",
                &format!("auth/userpass/login/{user}"),
                Some(&serde_json::json!({ "password": bao_password(user) })),
            )
            .unwrap_or_else(|e| panic!("OpenBao login of {user}: {e}"));
        let client_token = login["auth"]["client_token"]
            .as_str()
            .expect("a login gives a client token");
        let token = self
            .call(
                Some(client_token),
                "GET",
                &format!("identity/oidc/token/{role}"),
                None,
            )
            .unwrap_or_else(|e| panic!("OpenBao token of {user} for role {role}: {e}"));
        token["data"]["token"]
            .as_str()
            .expect("an OIDC token response holds a token")
            .to_owned()
    }

    /// Rotates the named key: its next key signs from now on, and a new next key is made.
    pub(crate) fn rotate_key(&self, key: &str) {
        self.root(
            "POST",
            &format!("identity/oidc/key/{key}/rotate"),
            &serde_json::Value::Null,
        );
    }

    /// The `kid`s of the issuer's JWKS now.
    pub(crate) fn jwks_kids(&self) -> Vec<String> {
        let jwks = self
            .call(None, "GET", "identity/oidc/.well-known/keys", None)
            .unwrap_or_else(|e| panic!("OpenBao JWKS: {e}"));
        jwks["keys"]
            .as_array()
            .expect("a JWKS has keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    }
}

impl OpenBao {
    /// The root token (for a KEK that acts as root).
    pub(crate) fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Enables the Transit secrets engine at `transit/`.
    pub(crate) fn enable_transit(&self) {
        self.root(
            "POST",
            "sys/mounts/transit",
            &serde_json::json!({ "type": "transit" }),
        );
    }

    /// Creates the AES-256-GCM Transit key `name`, derived (per-context keys) or not.
    pub(crate) fn create_transit_key(&self, name: &str, derived: bool) {
        self.root(
            "POST",
            &format!("transit/keys/{name}"),
            &serde_json::json!({ "type": "aes256-gcm96", "derived": derived }),
        );
    }

    /// Rotates the Transit key `name`: new data keys are wrapped by its next version.
    pub(crate) fn rotate_transit_key(&self, name: &str) {
        self.root(
            "POST",
            &format!("transit/keys/{name}/rotate"),
            &serde_json::Value::Null,
        );
    }

    /// Writes the ACL policy `name`.
    pub(crate) fn put_policy(&self, name: &str, policy: &str) {
        self.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            &serde_json::json!({ "policy": policy }),
        );
    }

    /// A policy that may make and decrypt data keys with the Transit key `key`.
    pub(crate) fn put_transit_policy(&self, name: &str, key: &str) {
        self.put_policy(
            name,
            &format!(
                "path \"transit/datakey/plaintext/{key}\" {{ capabilities = [\"update\"] }}\n\
                 path \"transit/decrypt/{key}\" {{ capabilities = [\"update\"] }}\n"
            ),
        );
    }

    /// A new token with `policies` (and not the default policy's root powers).
    pub(crate) fn create_token(&self, policies: &[&str]) -> String {
        let resp = self.root(
            "POST",
            "auth/token/create",
            &serde_json::json!({ "policies": policies, "ttl": "1h" }),
        );
        resp["auth"]["client_token"]
            .as_str()
            .expect("a new token")
            .to_owned()
    }

    /// Enables AppRole auth (at `approle/`, once) and makes the role `role` with `policies`
    /// whose tokens live `token_ttl`; returns its role id and a new secret id.
    pub(crate) fn create_approle(
        &self,
        role: &str,
        policies: &[&str],
        token_ttl: &str,
    ) -> (String, String) {
        let auths = self.root("GET", "sys/auth", &serde_json::Value::Null);
        if auths["data"]["approle/"].is_null() && auths["approle/"].is_null() {
            self.root(
                "POST",
                "sys/auth/approle",
                &serde_json::json!({ "type": "approle" }),
            );
        }
        self.root(
            "POST",
            &format!("auth/approle/role/{role}"),
            &serde_json::json!({
                "token_policies": policies,
                "token_ttl": token_ttl,
                "token_max_ttl": token_ttl,
            }),
        );
        let role_id = self.root(
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            &serde_json::Value::Null,
        )["data"]["role_id"]
            .as_str()
            .expect("a role id")
            .to_owned();
        let secret_id = self.root(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            &serde_json::Value::Null,
        )["data"]["secret_id"]
            .as_str()
            .expect("a secret id")
            .to_owned();
        (role_id, secret_id)
    }
}

impl Moto {
    /// Calls moto's KMS API: `action` (e.g. `CreateKey`) with the JSON `body`; the response's
    /// JSON, or the status and body when it is not a success. (moto picks the service from
    /// the credential scope of the `Authorization` header and does not check the signature.)
    pub(crate) fn kms(
        &self,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let target = format!("TrentService.{action}");
        let auth = "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/kms/aws4_request, \
                    SignedHeaders=host, Signature=00";
        let resp = http_request(
            self.addr(),
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
                ("authorization", auth),
            ],
            body.to_string().into_bytes(),
        )?;
        if resp.status != 200 {
            return Err(format!("KMS {action}: {} {}", resp.status, resp.text()));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("KMS {action}: {e}"))
    }

    /// Creates a symmetric KMS key; returns its key id.
    pub(crate) fn kms_create_key(&self) -> String {
        let resp = self
            .kms(
                "CreateKey",
                &serde_json::json!({ "Description": "s3-tower e2e" }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        resp["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("a new key has an id")
            .to_owned()
    }
}

/// An OpenBao dev server with TLS (`bao server -dev-tls`): a generated CA, and a certificate
/// for 127.0.0.1 signed by it.
pub(crate) struct OpenBaoTls {
    /// The port of its API (HTTPS).
    pub(crate) port: u16,
    root_token: String,
    ca_pem: Vec<u8>,
    _child: ChildGuard,
    dir: TempDir,
}

impl OpenBaoTls {
    /// Starts `bao server -dev-tls` and waits until its CA file exists and its port accepts
    /// connections.
    pub(crate) fn start() -> Self {
        let bin = venv_bin("bao");
        let dir = tempfile::tempdir().expect("create a temp dir for OpenBao");
        let certs = dir.path().join("tls");
        std::fs::create_dir_all(&certs).expect("create the TLS dir");
        let root_token = format!("e2e-root-{}", uuid::Uuid::new_v4().simple());
        let ca_file = certs.join("vault-ca.pem");
        let (child, port, _) = start_with_retries(
            "bao server -dev-tls",
            |port, _| {
                let _ = std::fs::remove_file(&ca_file);
                let mut cmd = Command::new(&bin);
                cmd.arg("server")
                    .arg("-dev-tls")
                    .arg(format!("-dev-tls-cert-dir={}", certs.display()))
                    .arg("-dev-no-store-token")
                    .arg(format!("-dev-root-token-id={root_token}"))
                    .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                    .current_dir(dir.path())
                    .env("HOME", dir.path())
                    .env_remove("BAO_ADDR")
                    .env_remove("BAO_TOKEN")
                    .env_remove("VAULT_ADDR")
                    .env_remove("VAULT_TOKEN")
                    .env("NO_PROXY", "*");
                ChildGuard::spawn("bao server -dev-tls", cmd, &dir.path().join("bao.log"))
            },
            |port, _| {
                ca_file.is_file()
                    && std::net::TcpStream::connect(local(port)).is_ok()
                    && std::fs::read_to_string(&ca_file).is_ok_and(|t| t.contains("END"))
            },
        );
        let ca_pem = std::fs::read(&ca_file).expect("read the OpenBao CA");
        Self {
            port,
            root_token,
            ca_pem,
            _child: child,
            dir,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The root token.
    pub(crate) fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The generated CA certificate (PEM).
    pub(crate) fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// Runs the `bao` CLI with `args` against this server as root (trusting its CA); panics
    /// when it fails.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(venv_bin("bao"));
        cmd.args(args)
            .env("HOME", self.dir.path())
            .env("BAO_ADDR", self.url())
            .env("BAO_TOKEN", &self.root_token)
            .env(
                "BAO_CACERT",
                self.dir.path().join("tls").join("vault-ca.pem"),
            )
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("NO_PROXY", "*");
        assert_success(&format!("bao {}", args.join(" ")), &run_captured(&mut cmd))
    }
}
