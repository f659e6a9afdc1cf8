//! End-to-end tests of the gateway's STS endpoint (`AssumeRoleWithWebIdentity`,
//! `GetCallerIdentity` on the S3 listener) with real clients and a real OIDC issuer.
//!
//! OpenBao (`bao server -dev`) issues the web identity tokens, as in `e2e_oidc_authz`: alice is
//! in the group `admin`, bob in `reader`. The gateway (moto behind it, `[authz] engine =
//! "rego"` with the seed policy) trusts OpenBao's issuer and has three roles: `analytics`
//! (any token of the issuer, sessions up to 12 hours, the token's groups carried), `limited`
//! (sessions of at most one hour) and `data-eng` (only tokens whose groups hold `data-eng`).
//!
//! The clients: boto3 (explicit `assume_role_with_web_identity`, and the default credential
//! chain from `AWS_WEB_IDENTITY_TOKEN_FILE` & co.), the AWS CLI from the same environment,
//! aws-sdk-s3 through aws-config's `WebIdentityTokenCredentialsProvider`, DuckDB (httpfs from
//! its wheel) and Polars reading Parquet and CSV with the temporary credentials; then every
//! refusal of the STS endpoint and of S3 requests with tampered or mismatched session
//! credentials, with the codes and statuses AWS gives.
//!
//! Run with `cargo xtask test -- -E 'binary(e2e_sts_clients)'`. Every test starts its own
//! processes on free ports with temporary directories.

#![cfg(feature = "e2e")]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{
    BaoOidc, Gateway, GatewayConfig, HttpResponse, Keys, Moto, OpenBao, assert_success, e2e_user,
    http_request, isolate_aws_env, jwt_part, python_client, run_captured, run_python,
    signed_request, venv_bin,
};

/// The account of every role.
const ACCOUNT: &str = "000000000000";
/// Any token of the issuer; sessions up to 12 hours.
const ANALYTICS: &str = "arn:aws:iam::000000000000:role/analytics";
/// Sessions of at most one hour.
const LIMITED: &str = "arn:aws:iam::000000000000:role/limited";
/// Only tokens whose `groups` hold `data-eng`.
const DATA_ENG: &str = "arn:aws:iam::000000000000:role/data-eng";

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `s3-authz/policies/seed.rego`.
fn seed_rego() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("s3-authz")
        .join("policies")
        .join("seed.rego")
}

/// Seconds since the epoch.
fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// A fresh 256-bit session key, base64.
fn session_key() -> String {
    use base64::Engine as _;
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// `arn:aws:sts::000000000000:assumed-role/<role>/<session>`.
fn assumed_role_arn(role_arn: &str, session: &str) -> String {
    let role = role_arn.rsplit('/').next().expect("a role ARN has a name");
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}")
}

// ---------------------------------------------------------------------------------------------
// The setup: moto, OpenBao, and a gateway with [sts]

/// Moto, OpenBao as the OIDC issuer (alice in `admin`, bob in `reader`), and a gateway
/// trusting it with the three roles, the seed policy and the static user [`e2e_user`].
struct Sts {
    moto: Moto,
    bao: OpenBao,
    oidc: BaoOidc,
    gateway: Gateway,
    dir: tempfile::TempDir,
    /// Client ids of the extra OpenBao roles (also audiences of the issuer), by role name.
    extra_roles: Vec<(String, String)>,
}

impl Sts {
    /// Starts everything; `extra_roles` are more OpenBao roles (name, token ttl) whose client
    /// ids the issuer accepts too.
    fn start(extra_roles: &[(&str, &str)]) -> Self {
        // Moto and OpenBao start side by side.
        let (moto, (bao, oidc, extra)) = std::thread::scope(|scope| {
            let moto = scope.spawn(Moto::start);
            let bao = OpenBao::start();
            let oidc = bao.setup_oidc("s3-key", "s3");
            bao.add_user("alice", &["admin"]);
            bao.add_user("bob", &["reader"]);
            let extra: Vec<(String, String)> = extra_roles
                .iter()
                .map(|(name, ttl)| {
                    (
                        (*name).to_owned(),
                        bao.create_oidc_role(name, "s3-key", ttl),
                    )
                })
                .collect();
            (moto.join().expect("moto starts"), (bao, oidc, extra))
        });
        let audiences = std::iter::once(oidc.client_id.as_str())
            .chain(
                extra
                    .iter()
                    .filter(|(name, _)| name != "other-app")
                    .map(|(_, id)| id.as_str()),
            )
            .map(toml_str)
            .collect::<Vec<_>>()
            .join(", ");
        let extra_toml = format!(
            r#"
[[auth.jwt.issuers]]
issuer = {issuer}
audiences = [{audiences}]
groups_claim = "groups"
leeway_secs = 0

[authz]
engine = "rego"
policy_files = [{policy}]
reload_interval_secs = 0

[sts]
account_id = "{ACCOUNT}"

[[sts.keys]]
id = "e2e-1"
secret = {key}

[[sts.roles]]
arn = "{ANALYTICS}"
issuers = [{issuer}]
max_session_secs = 43200

[[sts.roles]]
arn = "{LIMITED}"
max_session_secs = 3600

[[sts.roles]]
arn = "{DATA_ENG}"
[[sts.roles.conditions]]
claim = "groups"
equals = "data-eng"
"#,
            issuer = toml_str(&oidc.issuer),
            policy = toml_str(&seed_rego().to_string_lossy()),
            key = toml_str(&session_key()),
        );
        let gateway =
            Gateway::start_with_extra_toml(&GatewayConfig::new(moto.endpoint()), &extra_toml);
        Self {
            moto,
            bao,
            oidc,
            gateway,
            dir: tempfile::tempdir().expect("create a temp dir"),
            extra_roles: extra,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    fn endpoint(&self) -> String {
        self.gateway.endpoint()
    }

    /// A token of `user` for the OpenBao role `s3` (its `aud` is the issuer's audience).
    fn token(&self, user: &str) -> String {
        self.bao.oidc_token(user, &self.oidc.role)
    }

    /// `user`'s token in a file ending with a newline, as token files do.
    fn token_file(&self, user: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{user}-{}.jwt", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{}\n", self.token(user))).expect("write a token file");
        path
    }

    /// Creates `bucket` in moto directly.
    fn create_bucket(&self, bucket: &str) {
        let resp = http_request(
            self.moto.addr(),
            "PUT",
            &format!("/{bucket}"),
            &[],
            Vec::new(),
        )
        .expect("create a bucket in moto");
        assert_eq!(resp.status, 200, "create {bucket} in moto: {}", resp.text());
    }

    /// An `AssumeRoleWithWebIdentity` form POST of `params` (after Action and Version).
    fn sts_call(&self, params: &[(&str, &str)]) -> HttpResponse {
        let mut all = vec![
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
        ];
        all.extend_from_slice(params);
        sts_post(self.addr(), &all)
    }

    /// Assumes `role` with `user`'s token over plain HTTP; the issued credentials.
    fn assume(&self, user: &str, role: &str, session: &str) -> SessionCreds {
        let token = self.token(user);
        let resp = self.sts_call(&[
            ("RoleArn", role),
            ("RoleSessionName", session),
            ("WebIdentityToken", &token),
        ]);
        assert_eq!(resp.status, 200, "assume {role} as {user}: {}", resp.text());
        SessionCreds::from_response(&resp)
    }
}

/// A form POST of `params` to `/`.
fn sts_post(addr: SocketAddr, params: &[(&str, &str)]) -> HttpResponse {
    http_request(
        addr,
        "POST",
        "/",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form(params).into_bytes(),
    )
    .expect("an STS call")
}

/// `application/x-www-form-urlencoded` `params`.
fn form(params: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The text of the first `<tag>` of an XML document.
fn xml_value(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{tag}>"))?;
    Some(text[start..end].to_owned())
}

/// Temporary credentials of an `AssumeRoleWithWebIdentity` answer.
#[derive(Debug, Clone)]
struct SessionCreds {
    keys: Keys,
    session_token: String,
}

impl SessionCreds {
    fn from_response(resp: &HttpResponse) -> Self {
        let text = resp.text();
        let field = |tag| xml_value(&text, tag).unwrap_or_else(|| panic!("no {tag} in {text}"));
        Self {
            keys: Keys::new(field("AccessKeyId"), field("SecretAccessKey")),
            session_token: field("SessionToken"),
        }
    }

    /// `--access-key --secret-key --session-token` of `sts_clients.py`.
    fn args(&self) -> [&str; 6] {
        [
            "--access-key",
            &self.keys.access_key_id,
            "--secret-key",
            &self.keys.secret_access_key,
            "--session-token",
            &self.session_token,
        ]
    }

    /// A request signed with these keys carrying `session_token` (signed too).
    fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        target: &str,
        body: &[u8],
        session_token: &str,
    ) -> HttpResponse {
        signed_request(
            addr,
            method,
            target,
            &[("x-amz-security-token", session_token)],
            body.to_vec(),
            &self.keys,
        )
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    /// A request signed with these credentials.
    fn request(&self, addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> HttpResponse {
        self.send(addr, method, target, body, &self.session_token)
    }
}

/// `tests/clients/sts_clients.py <command>` against `endpoint`.
fn sts_client(command: &str, endpoint: &str) -> Command {
    let mut cmd = python_client("sts_clients.py");
    cmd.arg(command).args(["--endpoint", endpoint]);
    cmd
}

// ---------------------------------------------------------------------------------------------
// 1. boto3, explicitly

/// boto3's `sts.assume_role_with_web_identity` with alice's token for `analytics`, 2 hours:
/// `AssumedRoleUser.Arn` is `arn:aws:sts::000000000000:assumed-role/analytics/<session>`,
/// `SubjectFromWebIdentityToken` the token's `sub`, `Audience` its `aud` (the OpenBao role's
/// client id), `Provider` its `iss`, `Expiration` 7200 s away, the key an `ASIA...` one; the
/// credentials put, get and list through the gateway, and a SigV4 presigned GET carrying the
/// session token in `X-Amz-Security-Token` reads; `GetCallerIdentity` with them names the
/// assumed role, and with the static user `arn:aws:iam::000000000000:user/user0`. Neither
/// the web identity token nor the issued secret or session token is in the gateway's log.
#[test]
fn boto3_assume_role_with_web_identity_then_s3() {
    let sts = Sts::start(&[]);
    sts.create_bucket("analytics");
    let token_file = sts.token_file("alice");
    let token = std::fs::read_to_string(&token_file).expect("read the token");
    let claims = jwt_part(token.trim(), 1);
    let creds_file = sts.dir.path().join("creds.json");
    let mut cmd = sts_client("assume", &sts.endpoint());
    cmd.args(["--role-arn", ANALYTICS, "--session", "alice-boto3"])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--duration", "7200", "--bucket", "analytics"])
        .args(["--expect-subject", claims["sub"].as_str().expect("sub")])
        .args(["--expect-audience", &sts.oidc.client_id])
        .args(["--expect-provider", &sts.oidc.issuer])
        .arg("--creds-out")
        .arg(&creds_file);
    run_python(
        "boto3 assume_role_with_web_identity",
        cmd,
        "assume: all checks passed",
    );

    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds_file).expect("read the credentials"))
            .expect("credentials JSON");
    let mut cmd = sts_client("caller", &sts.endpoint());
    cmd.args([
        "--access-key",
        creds["AccessKeyId"].as_str().expect("key"),
        "--secret-key",
        creds["SecretAccessKey"].as_str().expect("secret"),
        "--session-token",
        creds["SessionToken"].as_str().expect("token"),
        "--expect-arn",
        &assumed_role_arn(ANALYTICS, "alice-boto3"),
        "--expect-account",
        ACCOUNT,
    ]);
    run_python(
        "boto3 GetCallerIdentity (session)",
        cmd,
        "caller: all checks passed",
    );

    let user = e2e_user();
    let mut cmd = sts_client("caller", &sts.endpoint());
    cmd.args(user.client_args()).args([
        "--expect-arn",
        &format!("arn:aws:iam::{ACCOUNT}:user/user0"),
        "--expect-account",
        ACCOUNT,
    ]);
    run_python(
        "boto3 GetCallerIdentity (static user)",
        cmd,
        "caller: all checks passed",
    );
}

// ---------------------------------------------------------------------------------------------
// 2. and 3. No code: the environment of an EKS pod (IRSA)

/// The environment of a pod with a projected service account token: the token file, the role,
/// the session name, the endpoint and the region (`AWS_REGION` for the Rust SDK,
/// `AWS_DEFAULT_REGION` for botocore) — no keys, no config file.
fn web_identity_env(cmd: &mut Command, sts: &Sts, token_file: &Path, session: &str) {
    isolate_aws_env(cmd);
    cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .env("AWS_ROLE_ARN", ANALYTICS)
        .env("AWS_ROLE_SESSION_NAME", session)
        .env("AWS_ENDPOINT_URL", sts.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1");
}

/// With only `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`,
/// `AWS_ENDPOINT_URL` and the region set, a plain `boto3.client("sts").get_caller_identity()`
/// names the assumed role and a plain `boto3.client("s3")` creates a bucket, puts, gets and
/// lists. The pinned botocore (1.44) reads the region from `AWS_DEFAULT_REGION` only, not
/// from `AWS_REGION` (without it: `NoRegionError` before any request), so both are set.
#[test]
fn boto3_default_chain_from_web_identity_environment() {
    let sts = Sts::start(&[]);
    let token_file = sts.token_file("alice");
    let mut cmd = python_client("sts_clients.py");
    web_identity_env(&mut cmd, &sts, &token_file, "alice-env");
    cmd.args(["env-chain", "--bucket", "env-chain"])
        .args(["--expect-arn", &assumed_role_arn(ANALYTICS, "alice-env")]);
    run_python(
        "boto3 from the environment",
        cmd,
        "env-chain: all checks passed",
    );
}

/// The AWS CLI (v1) with the same environment and its own HOME: `aws sts
/// get-caller-identity`, `aws s3 cp` up, `aws s3 ls`, `aws s3 cp` down (the same bytes);
/// the CLI caches the session in `~/.aws/cli/cache`.
#[test]
fn aws_cli_with_web_identity_environment() {
    let sts = Sts::start(&[]);
    sts.create_bucket("cli-bucket");
    let token_file = sts.token_file("alice");
    let home = sts.dir.path().join("home");
    std::fs::create_dir_all(&home).expect("create HOME");
    let upload = sts.dir.path().join("upload.txt");
    let body = b"uploaded by the AWS CLI with web identity credentials\n";
    std::fs::write(&upload, body).expect("write the upload");
    let aws = |args: &[&str]| {
        let mut cmd = Command::new(venv_bin("aws"));
        web_identity_env(&mut cmd, &sts, &token_file, "alice-cli");
        cmd.env("HOME", &home).args(args);
        if matches!(args, ["s3", "cp", ..]) {
            cmd.arg("--no-progress");
        }
        let out = run_captured(&mut cmd);
        assert_success(&format!("aws {}", args.join(" ")), &out)
    };

    let identity: serde_json::Value =
        serde_json::from_str(&aws(&["sts", "get-caller-identity", "--output", "json"]))
            .expect("get-caller-identity JSON");
    assert_eq!(
        identity["Arn"],
        assumed_role_arn(ANALYTICS, "alice-cli").as_str(),
        "{identity}"
    );
    let upload_arg = upload.to_string_lossy().into_owned();
    aws(&["s3", "cp", &upload_arg, "s3://cli-bucket/cli/upload.txt"]);
    let listing = aws(&["s3", "ls", "s3://cli-bucket/cli/"]);
    assert!(listing.contains("upload.txt"), "aws s3 ls: {listing}");
    let download = sts.dir.path().join("download.txt");
    aws(&[
        "s3",
        "cp",
        "s3://cli-bucket/cli/upload.txt",
        &download.to_string_lossy(),
    ]);
    assert_eq!(std::fs::read(&download).expect("read the download"), body);
    let cache = home.join(".aws").join("cli").join("cache");
    let cached = std::fs::read_dir(&cache)
        .map(Iterator::count)
        .unwrap_or_default();
    assert!(cached > 0, "nothing cached in {}", cache.display());
}

// ---------------------------------------------------------------------------------------------
// 4. aws-sdk-s3 through aws-config's web identity provider

/// Environment variables of [`rust_sdk_child`].
const CHILD_TOKEN_FILE: &str = "S3_TOWER_E2E_STS_TOKEN_FILE";
const CHILD_BUCKET: &str = "S3_TOWER_E2E_STS_BUCKET";

/// aws-sdk-s3 with aws-config's `WebIdentityTokenCredentialsProvider` (a static
/// configuration: token file, role ARN, session name) and, separately, the default credential
/// chain, both against the gateway. The provider's inner STS client takes its endpoint only
/// from the environment (`AWS_ENDPOINT_URL[_STS]`) or a profile — `ProviderConfig` has no
/// endpoint setter and `with_env` is crate-private — and a test must not `set_var`, so the
/// SDK runs in a child process of this test binary ([`rust_sdk_child`]) with
/// `AWS_ENDPOINT_URL` set.
#[test]
fn rust_sdk_web_identity_provider() {
    let sts = Sts::start(&[]);
    sts.create_bucket("rust-sdk");
    let token_file = sts.token_file("alice");
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    web_identity_env(&mut cmd, &sts, &token_file, "alice-rust-default");
    // The Rust SDK reads AWS_REGION.
    cmd.env_remove("AWS_DEFAULT_REGION")
        .env(CHILD_TOKEN_FILE, &token_file)
        .env(CHILD_BUCKET, "rust-sdk")
        .args(["--exact", "rust_sdk_child", "--ignored", "--nocapture"]);
    let out = run_captured(&mut cmd);
    let stdout = assert_success("rust_sdk_child", &out);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("1 passed"),
        "rust_sdk_child did not run: {stdout}"
    );
    // Both sessions were issued by the gateway's STS endpoint.
    let log = sts.gateway.log();
    for session in ["alice-rust-static", "alice-rust-default"] {
        assert!(
            log.lines()
                .any(|l| l.contains("temporary credentials issued") && l.contains(session)),
            "the gateway issued no session {session}:\n{log}"
        );
    }
}

/// Run by [`rust_sdk_web_identity_provider`] in a child process with the web identity
/// environment; not on its own.
#[test]
#[ignore = "run by rust_sdk_web_identity_provider with its environment"]
fn rust_sdk_child() {
    use aws_config::provider_config::ProviderConfig;
    use aws_config::web_identity_token::{
        StaticConfiguration, WebIdentityTokenCredentialsProvider,
    };
    use aws_credential_types::provider::ProvideCredentials as _;

    let token_file =
        std::env::var(CHILD_TOKEN_FILE).expect("run by rust_sdk_web_identity_provider");
    let bucket = std::env::var(CHILD_BUCKET).expect("run by rust_sdk_web_identity_provider");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // A static configuration; the STS client inside finds the gateway in AWS_ENDPOINT_URL.
        let provider = WebIdentityTokenCredentialsProvider::builder()
            .configure(
                &ProviderConfig::default().with_region(Some(aws_config::Region::new("us-east-1"))),
            )
            .static_configuration(StaticConfiguration {
                web_identity_token_file: token_file.into(),
                role_arn: ANALYTICS.to_owned(),
                session_name: "alice-rust-static".to_owned(),
            })
            .build();
        let creds = provider
            .provide_credentials()
            .await
            .expect("credentials from the gateway's STS");
        assert!(creds.access_key_id().starts_with("ASIA"), "{creds:?}");
        assert!(creds.session_token().is_some_and(|t| !t.is_empty()));
        let left = creds
            .expiry()
            .expect("an expiry")
            .duration_since(SystemTime::now())
            .expect("in the future");
        assert!(
            (Duration::from_secs(3590)..=Duration::from_secs(3610)).contains(&left),
            "the session lasts {left:?}, not the default hour"
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(provider)
            .build();
        s3_round_trip(&aws_sdk_s3::Client::from_conf(config), &bucket, "static/").await;

        // The default chain: web identity from the environment, endpoint too.
        let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk_config)
                .force_path_style(true)
                .build(),
        );
        s3_round_trip(&s3, &bucket, "default-chain/").await;
    });
}

/// In this process, without any environment: aws-config's profile provider with a config
/// file of its own (`ProfileFileCredentialsProvider` with `profile_files`) whose profile names
/// `web_identity_token_file`, `role_arn`, `role_session_name` and `endpoint_url` — the
/// `WebIdentityTokenCredentialsProvider` it builds inherits the profile, and its STS client
/// honours the profile's `endpoint_url`. aws-sdk-s3 with those credentials puts, gets and
/// lists.
#[test]
fn rust_sdk_web_identity_profile_in_process() {
    use aws_config::profile::ProfileFileCredentialsProvider;
    #[allow(deprecated)] // aws-config re-exports aws-runtime's EnvConfigFiles under this name
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    use aws_config::provider_config::ProviderConfig;
    use aws_credential_types::provider::ProvideCredentials as _;

    let sts = Sts::start(&[]);
    sts.create_bucket("rust-profile");
    let token_file = sts.token_file("alice");
    let config_file = sts.dir.path().join("aws-config");
    std::fs::write(
        &config_file,
        format!(
            "[profile e2e]\nweb_identity_token_file = {}\nrole_arn = {ANALYTICS}\n\
             role_session_name = alice-rust-profile\nendpoint_url = {}\nregion = us-east-1\n",
            token_file.display(),
            sts.endpoint()
        ),
    )
    .expect("write the AWS config file");
    #[allow(deprecated)]
    let files = ProfileFiles::builder()
        .with_file(ProfileFileKind::Config, &config_file)
        .build();
    let endpoint = sts.endpoint();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let provider = ProfileFileCredentialsProvider::builder()
            .configure(
                &ProviderConfig::without_region()
                    .with_region(Some(aws_config::Region::new("us-east-1"))),
            )
            .profile_files(files)
            .profile_name("e2e")
            .build();
        let creds = provider
            .provide_credentials()
            .await
            .expect("credentials from the gateway's STS");
        assert!(creds.access_key_id().starts_with("ASIA"), "{creds:?}");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(provider)
            .build();
        s3_round_trip(
            &aws_sdk_s3::Client::from_conf(config),
            "rust-profile",
            "profile/",
        )
        .await;
    });
    let log = sts.gateway.log();
    assert!(
        log.lines().any(|l| l.contains("temporary credentials issued")
            && l.contains("alice-rust-profile")),
        "the gateway issued no session alice-rust-profile:\n{log}"
    );
}

/// Puts, gets and lists `<prefix>object.txt` in `bucket`.
async fn s3_round_trip(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) {
    let key = format!("{prefix}object.txt");
    let body = format!("aws-sdk-s3 with web identity credentials ({prefix})");
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.clone().into_bytes().into())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PutObject {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "GetObject {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })
        .body
        .collect()
        .await
        .expect("read the object")
        .into_bytes();
    assert_eq!(got.as_ref(), body.as_bytes());
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ListObjectsV2: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key.as_str()]);
    println!("ok: aws-sdk-s3 put, get and list of {bucket}/{key}");
}

// ---------------------------------------------------------------------------------------------
// 5. DuckDB and Polars

/// alice's session (boto3) writes a Parquet file (pyarrow) and a CSV; bob's session (reader)
/// reads both with DuckDB (httpfs from the wheel, `CREATE SECRET (TYPE S3, KEY_ID, SECRET,
/// SESSION_TOKEN, ENDPOINT, URL_STYLE 'path', USE_SSL false, REGION)`) and with Polars
/// (`storage_options` with `aws_session_token`, `aws_endpoint_url`, `aws_allow_http`): the
/// rows are the ones written.
#[test]
fn duckdb_and_polars_read_with_session_credentials() {
    let sts = Sts::start(&[]);
    let alice = sts.assume("alice", ANALYTICS, "alice-writer");
    let bob = sts.assume("bob", ANALYTICS, "bob-analyst");
    let endpoint = sts.endpoint();
    let mut cmd = sts_client("write-data", &endpoint);
    cmd.args(["--bucket", "lake"]).args(alice.args());
    run_python(
        "boto3 writes Parquet and CSV",
        cmd,
        "write-data: all checks passed",
    );
    let mut cmd = sts_client("duckdb-read", &endpoint);
    cmd.args(["--bucket", "lake"]).args(bob.args());
    run_python("DuckDB reads", cmd, "duckdb-read: all checks passed");
    let mut cmd = sts_client("polars-read", &endpoint);
    cmd.args(["--bucket", "lake"]).args(bob.args());
    run_python("Polars reads", cmd, "polars-read: all checks passed");
}

// ---------------------------------------------------------------------------------------------
// 6. The reader's session cannot write

/// Sessions carry their token's groups into the seed policy: bob's (reader) lists and gets
/// but its PutObject and DeleteObject are `403 AccessDenied` (boto3 and a signed request);
/// alice's (admin) puts.
#[test]
fn reader_session_cannot_write_admin_session_can() {
    let sts = Sts::start(&[]);
    sts.create_bucket("shared");
    let alice = sts.assume("alice", ANALYTICS, "alice-admin");
    let bob = sts.assume("bob", ANALYTICS, "bob-reader");
    let addr = sts.addr();
    let resp = alice.request(addr, "PUT", "/shared/readme.txt", b"by alice");
    assert_eq!(resp.status, 200, "alice's session puts: {}", resp.text());
    let resp = bob.request(addr, "PUT", "/shared/bob.txt", b"by bob");
    resp.assert_s3_error(403, "AccessDenied", "bob's session puts");
    let resp = bob.request(addr, "GET", "/shared/readme.txt", b"");
    assert_eq!((resp.status, resp.text().as_str()), (200, "by alice"));

    let mut cmd = sts_client("denied-write", &sts.endpoint());
    cmd.args(["--bucket", "shared", "--readable-key", "readme.txt"])
        .args(bob.args());
    run_python(
        "boto3 with bob's session",
        cmd,
        "denied-write: all checks passed",
    );
    let resp = bob.request(addr, "HEAD", "/shared/bob.txt", b"");
    assert_eq!(resp.status, 404, "nothing bob wrote exists");
}

// ---------------------------------------------------------------------------------------------
// 7. Refusals

/// `token` with one bit of its signature flipped.
fn flip_signature_bit(token: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, signature) = token.rsplit_once('.').expect("a JWT");
    let mut signature = b64.decode(signature).expect("a base64url signature");
    let middle = signature.len() / 2;
    signature[middle] ^= 0x10;
    format!("{signed}.{}", b64.encode(signature))
}

/// A refused call: what it is, its parameters, and the status, code and message expected.
type RefusalCase = (
    &'static str,
    Vec<(&'static str, String)>,
    u16,
    &'static str,
    &'static str,
);

/// Panics unless `resp` is an STS `<ErrorResponse>` with `status` and `code` (and `message`
/// in its text, when given).
#[track_caller]
fn assert_sts_error(resp: &HttpResponse, status: u16, code: &str, message: &str, what: &str) {
    let text = resp.text();
    assert_eq!(
        (resp.status, xml_value(&text, "Code").as_deref()),
        (status, Some(code)),
        "{what}: {text}"
    );
    assert!(text.contains("<ErrorResponse"), "{what}: {text}");
    assert!(text.contains(message), "{what}: no {message:?} in {text}");
}

/// Every refusal of `AssumeRoleWithWebIdentity`, with AWS's codes and statuses: an unknown
/// role and a role whose condition the token fails (`403 AccessDenied`); a flipped signature
/// bit and a token for another client id (`400 InvalidIdentityToken`); an expired token
/// (`400 ExpiredTokenException`); DurationSeconds 899, 43201 and 7200 for a one-hour role,
/// RoleSessionName of one character or with a space (`400 ValidationError`); no
/// WebIdentityToken (`400 MissingParameter`); a form body over 64 KiB (`413
/// RequestEntityTooLarge`); a wrong Version and ProviderId (`400 InvalidParameterValue`); an
/// unknown Action (`400 InvalidAction`); a session policy that is not JSON (`400
/// MalformedPolicyDocument`). The same token then succeeds, as a form POST and as a GET
/// query.
#[test]
fn sts_refusals_have_the_codes_aws_gives() {
    let sts = Sts::start(&[("other-app", "1h"), ("short", "3s")]);
    let alice = sts.token("alice");
    let short = sts.bao.oidc_token("alice", "short");
    let other_app = sts.bao.oidc_token("alice", "other-app");
    let other_app_id = &sts.extra_roles[0].1;
    assert_eq!(jwt_part(&other_app, 1)["aud"], other_app_id.as_str());
    let base = |token: &str| -> Vec<(&'static str, String)> {
        vec![
            ("RoleArn", ANALYTICS.to_owned()),
            ("RoleSessionName", "refusals".to_owned()),
            ("WebIdentityToken", token.to_owned()),
        ]
    };
    let call = |params: &[(&str, String)]| {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sts.sts_call(&params)
    };
    let with = |token: &str, name: &'static str, value: &str| {
        let mut p = base(token);
        p.retain(|(k, _)| *k != name);
        p.push((name, value.to_owned()));
        p
    };

    let flipped = flip_signature_bit(&alice);
    let big = "x".repeat(70 * 1024);
    let cases: Vec<RefusalCase> = vec![
        (
            "an unknown role",
            with(&alice, "RoleArn", "arn:aws:iam::000000000000:role/nobody"),
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
        (
            "a role whose condition the token fails",
            with(&alice, "RoleArn", DATA_ENG),
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
        (
            "a flipped signature bit",
            base(&flipped),
            400,
            "InvalidIdentityToken",
            "",
        ),
        (
            "a token for another client id",
            base(&other_app),
            400,
            "InvalidIdentityToken",
            "",
        ),
        (
            "DurationSeconds 899",
            with(&alice, "DurationSeconds", "899"),
            400,
            "ValidationError",
            "Member must have value between 900 and 43200",
        ),
        (
            "DurationSeconds 43201",
            with(&alice, "DurationSeconds", "43201"),
            400,
            "ValidationError",
            "Member must have value between 900 and 43200",
        ),
        (
            "DurationSeconds 7200 for a role of one hour",
            {
                let mut p = with(&alice, "DurationSeconds", "7200");
                p[0].1 = LIMITED.to_owned();
                p
            },
            400,
            "ValidationError",
            "exceeds the MaxSessionDuration",
        ),
        (
            "a RoleSessionName of one character",
            with(&alice, "RoleSessionName", "a"),
            400,
            "ValidationError",
            "roleSessionName",
        ),
        (
            "a RoleSessionName with a space",
            with(&alice, "RoleSessionName", "two words"),
            400,
            "ValidationError",
            "roleSessionName",
        ),
        (
            "no WebIdentityToken",
            {
                let mut p = base(&alice);
                p.retain(|(k, _)| *k != "WebIdentityToken");
                p
            },
            400,
            "MissingParameter",
            "WebIdentityToken",
        ),
        (
            "a form body over 64 KiB",
            with(&alice, "Padding", &big),
            413,
            "RequestEntityTooLarge",
            "",
        ),
        (
            "ProviderId",
            with(&alice, "ProviderId", "www.amazon.com"),
            400,
            "InvalidParameterValue",
            "ProviderId",
        ),
        (
            "a session policy that is not JSON",
            with(&alice, "Policy", "not json"),
            400,
            "MalformedPolicyDocument",
            "",
        ),
    ];
    for (what, params, status, code, message) in &cases {
        assert_sts_error(&call(params), *status, code, message, what);
    }

    // Version and Action.
    let token_param = [("WebIdentityToken", alice.as_str())];
    let resp = sts_post(
        sts.addr(),
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-16"),
            ("RoleArn", ANALYTICS),
            ("RoleSessionName", "refusals"),
            token_param[0],
        ],
    );
    assert_sts_error(&resp, 400, "InvalidAction", "2011-06-16", "a wrong Version");
    let resp = sts_post(
        sts.addr(),
        &[("Action", "AssumeRole"), ("Version", "2011-06-15")],
    );
    assert_sts_error(
        &resp,
        400,
        "InvalidAction",
        "AssumeRole",
        "an unknown Action",
    );

    // A token valid for 3 s, once expired (leeway 0).
    let expires = jwt_part(&short, 1)["exp"].as_i64().expect("exp");
    while now_secs() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_sts_error(
        &call(&base(&short)),
        400,
        "ExpiredTokenException",
        "Token expired",
        "an expired token",
    );

    // alice's token itself is fine, in a form POST and in a GET query.
    let resp = call(&base(&alice));
    assert_eq!(resp.status, 200, "alice's token: {}", resp.text());
    assert_eq!(
        xml_value(&resp.text(), "Arn").as_deref(),
        Some(assumed_role_arn(ANALYTICS, "refusals").as_str())
    );
    let mut query = vec![
        ("Action", "AssumeRoleWithWebIdentity".to_owned()),
        ("Version", "2011-06-15".to_owned()),
    ];
    query.extend(base(&alice));
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = http_request(
        sts.addr(),
        "GET",
        &format!("/?{}", form(&query)),
        &[],
        Vec::new(),
    )
    .expect("a GET AssumeRoleWithWebIdentity");
    assert_eq!(resp.status, 200, "GET with alice's token: {}", resp.text());
    assert!(
        resp.text().contains("<AssumeRoleWithWebIdentityResult>"),
        "{}",
        resp.text()
    );
}

/// S3 requests with issued credentials that do not belong together: alice's session token
/// with bob's access key id and secret is `400 InvalidToken` (the code `to_s3_error` gives
/// `AuthError::InvalidToken`), so is a session token with one bit flipped; alice's key with
/// a wrong secret is `403 SignatureDoesNotMatch`; her key without any session token is
/// `403 InvalidAccessKeyId`. Her own credentials work.
#[test]
fn s3_refuses_mismatched_or_tampered_session_credentials() {
    let sts = Sts::start(&[]);
    sts.create_bucket("guarded");
    let alice = sts.assume("alice", ANALYTICS, "alice-s3");
    let bob = sts.assume("bob", ANALYTICS, "bob-s3");
    let addr = sts.addr();

    let resp = alice.request(addr, "GET", "/guarded", b"");
    assert_eq!(resp.status, 200, "alice's own session: {}", resp.text());

    let resp = bob.send(addr, "GET", "/guarded", b"", &alice.session_token);
    resp.assert_s3_error(400, "InvalidToken", "alice's token with bob's key");

    let flipped = {
        use base64::Engine as _;
        // The token is base64url (no padding): flip one bit of the sealed bytes.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut sealed = b64
            .decode(&alice.session_token)
            .expect("a session token is base64url");
        let middle = sealed.len() / 2;
        sealed[middle] ^= 0x01;
        b64.encode(sealed)
    };
    assert_ne!(flipped, alice.session_token);
    let resp = alice.send(addr, "GET", "/guarded", b"", &flipped);
    resp.assert_s3_error(400, "InvalidToken", "a flipped bit in the session token");

    let wrong_secret = SessionCreds {
        keys: alice.keys.with_wrong_secret(),
        session_token: alice.session_token.clone(),
    };
    let resp = wrong_secret.request(addr, "GET", "/guarded", b"");
    resp.assert_s3_error(403, "SignatureDoesNotMatch", "a wrong secret");

    let resp = signed_request(addr, "GET", "/guarded", &[], Vec::new(), &alice.keys)
        .expect("a request without the session token");
    resp.assert_s3_error(403, "InvalidAccessKeyId", "no session token");

    // alice's session still works.
    let resp = alice.request(addr, "PUT", "/guarded/ok.txt", b"ok");
    assert_eq!(resp.status, 200, "{}", resp.text());

    // No secret, session token or web identity token is logged.
    let log = sts.gateway.log();
    for (what, secret) in [
        ("alice's secret", alice.keys.secret_access_key.as_str()),
        ("bob's secret", bob.keys.secret_access_key.as_str()),
        ("alice's session token", alice.session_token.as_str()),
        ("the tampered session token", flipped.as_str()),
    ] {
        assert!(
            !log.contains(secret),
            "{what} is in the gateway's log:\n{log}"
        );
    }
    assert!(
        log.contains(&alice.keys.access_key_id),
        "the issued access key id is logged (for the audit trail):\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Session policies

/// boto3 assumes `analytics` as alice (admin) with a session policy allowing `s3:*` only on
/// `guarded/team-a/*` and `s3:ListBucket` with `s3:prefix` `team-a/*`: puts, gets and lists
/// under `team-a/` succeed; a put under `team-b/`, a get outside `team-a/`, a list of another
/// prefix or of the whole bucket and CreateBucket are `403 AccessDenied`.
#[test]
fn session_policy_narrows_admin_to_one_prefix() {
    let sts = Sts::start(&[]);
    sts.create_bucket("guarded");
    // An object outside team-a/ that the narrowed session must not read.
    let resp = http_request(
        sts.moto.addr(),
        "PUT",
        "/guarded/outside.txt",
        &[],
        b"outside".to_vec(),
    )
    .expect("put an object in moto");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token_file = sts.token_file("alice");
    let mut cmd = sts_client("session-policy", &sts.endpoint());
    cmd.args([
        "--bucket",
        "guarded",
        "--role-arn",
        ANALYTICS,
        "--session",
        "team-a",
    ])
    .arg("--token-file")
    .arg(&token_file);
    run_python(
        "boto3 with a session policy",
        cmd,
        "session-policy: all checks passed",
    );
}
