//! The s3-tower gateway: every s3-tower layer stacked from a TOML file.
//!
//! ```text
//! cargo run --release --example gateway -- --dev                   # embedded defaults
//! cargo run --release --example gateway -- --config gateway.toml   # production
//! ```
//!
//! See `gateway.toml` next to this file for every setting and its default.

mod admin;
mod authz;
mod config;
mod dev_backend;
mod dev_idp;
mod dev_users;
mod encryption;
mod metrics;
mod sts;
mod tls;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use s3_tower::auth::jwt::{IssuerConfig, JwtLayer, JwtValidator};
use s3_tower::auth::{
    CredentialResolver, SigV4Layer, SigV4Verifier, StaticCredentials, StaticUser,
};
use s3_tower::core::{ClientAddr, DrainBodyLayer, RequestId, S3RequestLayer, S3RequestParser};
use s3_tower::encrypt::{EncryptLayer, EncryptResponseBody};
use s3_tower::resign::{
    Backend, BackendCredentials, BackendRouter, BucketPattern, ResignLayer, Upstream, UpstreamBody,
};
use s3_tower::sts::{Roles, SessionCredentials, SessionKeyring, StsLayer};
use tokio::net::TcpListener;
use tower::util::{Either, MapResponseLayer};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing_subscriber::EnvFilter;

use crate::config::{AuthConfig, Config, CredentialsConfig, LogFormat};
use crate::dev_backend::DevBackend;
use crate::dev_idp::DevIdp;
use crate::dev_users::DevUsers;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line flags; each overrides the configuration file and environment.
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    about = "s3-tower: a security gateway in front of S3-compatible storage"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// S3 listener address [default: 127.0.0.1:8190].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listener (/healthz, /readyz, /metrics) [default: 127.0.0.1:8191].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Directory for gateway data (the dev backend's buckets) [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Development mode: embedded S3 backend under <data-dir>, users `admin` and `reader`
    /// with keys in <data-dir>/.dev/credentials and bearer tokens in
    /// <data-dir>/.dev/<user>.jwt. Never in production.
    #[arg(long)]
    dev: bool,
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let mut cfg = config::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        cfg.server.listen = listen;
    }
    if let Some(admin) = cli.admin_listen {
        cfg.server.admin_listen = admin;
    }
    if let Some(dir) = cli.data_dir {
        cfg.server.data_dir = dir;
    }
    init_tracing(&cfg);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cfg, cli.dev))
}

fn init_tracing(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},s3s=warn", cfg.log.level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn run(cfg: Config, dev: bool) -> Result<(), BoxError> {
    let metrics = metrics::install()?;
    let ready = Arc::new(AtomicBool::new(false));

    let dev_users = if dev {
        let users = DevUsers::load_or_create(&cfg.server.data_dir).map_err(|e| {
            format!(
                "cannot set up the development users in {}: {e}",
                cfg.server.data_dir.join(".dev").display()
            )
        })?;
        Some(users)
    } else {
        None
    };
    let mut users = cfg.auth.load_static_users()?;
    users.extend(dev_users.iter().flat_map(DevUsers::static_users));
    let jwt_header = cfg.auth.jwt.header_name()?;
    let jwt_issuers = cfg.auth.jwt.issuer_configs()?;
    let authz_plan = cfg.authz.plan(dev)?;
    let authz = authz::build(&authz_plan)?;
    // Every KEK is checked before the gateway listens: a key service that cannot be reached,
    // refused credentials or a missing key stop it here, naming the KEK.
    let encryption = cfg.encryption.build(dev, &cfg.server.data_dir)?;
    if let Some(setup) = &encryption {
        encryption::check_keks(&setup.keks).await?;
    }
    let encryption_note = match &encryption {
        Some(setup) => match &setup.dev_key_file {
            Some(path) => format!(
                "Objects are encrypted with the local development key {} (the backend stores ciphertext only).",
                path.display()
            ),
            None => {
                let names: Vec<&str> = setup.keks.iter().map(|k| k.name.as_str()).collect();
                tracing::info!(keks = ?names, "envelope encryption on");
                String::new()
            }
        },
        None => {
            tracing::info!("envelope encryption off: objects are stored as clients send them");
            "Objects are NOT encrypted ([encryption] enabled = false).".to_owned()
        }
    };
    // Without encryption the responses get the same body type, passed through.
    let encrypt = match encryption {
        Some(setup) => Either::Left(EncryptLayer::new(setup.policy)),
        None => Either::Right(MapResponseLayer::new(
            plain_body
                as fn(
                    http::Response<UpstreamBody>,
                ) -> http::Response<EncryptResponseBody<UpstreamBody>>,
        )),
    };

    let dev_backend = if dev {
        let root = cfg.server.data_dir.join("buckets");
        let secret = dev_users::random_secret();
        let backend = DevBackend::start(&root, "s3-tower-dev", &secret).await?;
        tracing::info!(dir = %root.display(), "embedded development backend (s3s-fs) started");
        Some(backend)
    } else {
        None
    };
    let router = build_router(&cfg, dev_backend.as_ref()).await?;
    let mut upstream = Upstream::builder()
        .connect_timeout(Duration::from_secs(cfg.upstream.connect_timeout_secs))
        .response_timeout(
            (cfg.upstream.response_timeout_secs > 0)
                .then(|| Duration::from_secs(cfg.upstream.response_timeout_secs)),
        );
    if let Some(ca) = &cfg.upstream.ca_file {
        upstream = upstream.add_ca_pem_file(ca)?;
    }
    let upstream = upstream.build()?;

    let listener = TcpListener::bind(cfg.server.listen).await?;
    let admin_listener = TcpListener::bind(cfg.server.admin_listen).await?;
    // The dev issuer is served by the admin listener, so its URL names the bound address.
    let dev_idp = if dev {
        let admin = loopback_if_unspecified(admin_listener.local_addr()?);
        Some(DevIdp::generate(admin)?)
    } else {
        None
    };
    let jwt_issuers_configured = !jwt_issuers.is_empty();
    let issuer_count = jwt_issuers.len() + usize::from(dev_idp.is_some());
    let jwt_validator = jwt_validator(jwt_issuers, &jwt_header, dev_idp.as_ref())?;
    let jwt = jwt_validator
        .as_ref()
        .map(|validator| JwtLayer::new(Arc::clone(validator)).header(jwt_header.clone()));
    let sts = cfg
        .sts
        .build(
            dev_idp
                .as_ref()
                .map(|idp| (cfg.server.data_dir.as_path(), idp.issuer())),
            issuer_count,
        )
        .map_err(|e| format!("sts: {e}"))?;
    let (sigv4, verifier) = sigv4_layer(
        &cfg.auth,
        users,
        sts.as_ref()
            .map(|sts| (Arc::clone(&sts.keyring), sts.roles.clone())),
        cfg.server.listen,
        dev || jwt_issuers_configured,
    )?;
    let sts_layer = match (&sts, &jwt_validator) {
        (None, _) => None,
        (Some(_), None) => {
            return Err("sts: [[sts.roles]] need token issuers ([[auth.jwt.issuers]])".into());
        }
        (Some(sts), Some(validator)) => {
            tracing::info!(
                roles = sts.roles.len(),
                key = sts.keyring.current_id(),
                "STS AssumeRoleWithWebIdentity on the S3 listener"
            );
            Some(
                StsLayer::new(
                    Arc::clone(validator),
                    sts.roles.clone(),
                    Arc::clone(&sts.keyring),
                )
                .caller_identity(verifier)
                .account_id(&sts.account_id),
            )
        }
    };

    let mut parser = S3RequestParser::new();
    for domain in &cfg.server.virtual_host_domains {
        parser = parser.virtual_host_domain(domain.clone());
    }
    let service = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(metrics::MetricsLayer)
        // The request id is made here so the trace span names it; S3RequestLayer reuses it.
        .map_request(|mut req: http::Request<_>| {
            req.extensions_mut().insert(RequestId::random());
            req
        })
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    // Method and path only: the query of a presigned URL holds its signature.
                    |req: &http::Request<_>| {
                        let id = req.extensions().get::<RequestId>().map(RequestId::as_str);
                        let client = req.extensions().get::<ClientAddr>().map(|c| tracing::field::display(c.ip()));
                        tracing::info_span!("request", id, client, method = %req.method(), path = %req.uri().path())
                    },
                )
                // One access-log line per request; refusals are the client's doing, not
                // errors of the gateway (failures stay at debug so clients cannot flood the log).
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // Refusals come before the body is read: drain it so the client sees the answer.
        .layer(DrainBodyLayer::new())
        // STS calls (form POST /, ?Action=) are answered here; they are no S3 operations.
        .option_layer(sts_layer)
        .layer(S3RequestLayer::with_parser(parser))
        // Bearer tokens first; requests without one are SigV4's (both at once: 400).
        .option_layer(jwt)
        .layer(sigv4)
        // Authorization sees the authenticated principal, and refuses before re-signing.
        .option_layer(authz.layer)
        // Encryption sees only authorized requests; the backend sees only ciphertext.
        .layer(encrypt)
        .layer(ResignLayer::new(router))
        .service(upstream);

    let tls = cfg.server.tls.as_ref().map(tls::acceptor).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("S3 endpoint: {scheme}://{}", listener.local_addr()?);
    tracing::info!("admin endpoint: http://{}", admin_listener.local_addr()?);
    if let Some(users) = &dev_users {
        let endpoint = format!(
            "{scheme}://{}",
            loopback_if_unspecified(listener.local_addr()?)
        );
        users
            .write_config(&endpoint)
            .map_err(|e| format!("cannot write {}: {e}", users.config_file().display()))?;
        let tokens = match &dev_idp {
            Some(idp) => {
                let names: Vec<&str> = users.users.iter().map(|u| u.profile).collect();
                let files = idp.write_files(users.dir(), &names)?;
                dev_token_help(
                    &endpoint,
                    idp,
                    &files,
                    &DevIdp::signing_key_file(users.dir()),
                )
            }
            None => String::new(),
        };
        print_dev_help(
            &endpoint,
            users,
            &authz::dev_note(&authz_plan),
            &encryption_note,
            &tokens,
        );
    }

    let admin = admin::router(admin::AdminState {
        metrics,
        ready: Arc::clone(&ready),
        dev_oidc: dev_idp.as_ref().map(|idp| Arc::new(idp.documents())),
    });
    let admin_task = tokio::spawn(async move {
        if let Err(err) = axum::serve(admin_listener, admin).await {
            tracing::error!(error = %err, "admin listener failed");
        }
    });
    // Fetch the issuers' keys now rather than on the first token, so a wrong URL shows at once.
    // Then again every key_refresh_secs of each issuer, keeping the cached keys when a fetch
    // fails.
    let key_refresh_task = jwt_validator.as_ref().map(JwtValidator::spawn_key_refresh);
    let prefetch_task = jwt_validator.map(|validator| {
        tokio::spawn(async move {
            if let Err(err) = validator.prefetch().await {
                tracing::warn!(error = %err, "cannot fetch the keys of a JWT issuer yet; tokens it signed are refused until it can be reached");
            }
        })
    });

    let mut conn_builder = ConnBuilder::new(TokioExecutor::new());
    conn_builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.server.header_read_timeout_secs));
    let graceful = GracefulShutdown::new();
    // Before ready: from now on SIGHUP reloads the policy files.
    let reload_task = authz
        .reloader
        .map(|reloader| {
            reloader.spawn(
                (cfg.authz.reload_interval_secs > 0)
                    .then(|| Duration::from_secs(cfg.authz.reload_interval_secs)),
            )
        })
        .transpose()
        .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    ready.store(true, Ordering::Release);

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Where the request came from, for policies (source_ip) and the audit log.
        let client = ClientAddr::new(peer);
        let service = TowerToHyperService::new(service.clone().map_request(
            move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(client);
                req
            },
        ));
        let builder = conn_builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Err(err) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection closed with error");
            }
        });
    }

    // Closed now, so new connections are refused during the drain rather than left hanging.
    drop(listener);
    tracing::info!("shutting down: no new connections, waiting for open ones");
    ready.store(false, Ordering::Release);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(cfg.server.shutdown_grace_secs)) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
    admin_task.abort();
    for task in [prefetch_task, key_refresh_task].into_iter().flatten() {
        task.abort();
    }
    if let Some(task) = reload_task {
        task.abort();
    }
    drop(dev_backend);
    Ok(())
}

#[cfg_attr(not(feature = "aws-config"), allow(clippy::unused_async))]
async fn build_router(cfg: &Config, dev: Option<&DevBackend>) -> Result<BackendRouter, BoxError> {
    if let Some(name) = &cfg.routing.default_backend
        && !cfg.backends.iter().any(|b| &b.name == name)
    {
        return Err(format!("routing.default_backend = {name:?} names no backend").into());
    }
    let mut router = BackendRouter::new();
    let mut default = None;
    for b in &cfg.backends {
        let credentials = match &b.credentials {
            CredentialsConfig::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    return Err(format!(
                        "backend {}: static credentials need a non-empty access_key_id and secret_access_key",
                        b.name
                    )
                    .into());
                }
                BackendCredentials::from_static(
                    access_key_id.clone(),
                    secret_access_key.clone(),
                    session_token.clone(),
                )
            }
            CredentialsConfig::Env {
                access_key_id_env,
                secret_access_key_env,
                session_token_env,
            } => BackendCredentials::from_env_vars(
                access_key_id_env,
                secret_access_key_env,
                session_token_env.as_deref(),
            )?,
            #[cfg(feature = "aws-config")]
            CredentialsConfig::AwsDefaultChain => BackendCredentials::default_chain().await,
            #[cfg(not(feature = "aws-config"))]
            CredentialsConfig::AwsDefaultChain => {
                return Err(format!(
                    "backend {}: credentials source aws-default-chain needs the `aws-config` feature",
                    b.name
                )
                .into());
            }
        };
        let backend = Arc::new(Backend::new(
            b.name.clone(),
            &b.endpoint,
            b.region.clone(),
            b.addressing,
            credentials,
        )?);
        for pattern in &b.buckets {
            router = router.route(BucketPattern::new(pattern)?, Arc::clone(&backend));
        }
        if cfg.routing.default_backend.as_deref() == Some(b.name.as_str()) {
            default = Some(backend);
        } else if b.buckets.is_empty() {
            tracing::warn!(backend = %b.name, "backend has no buckets and is not the default: it is never used");
        }
    }
    match (&cfg.routing.default_backend, default, dev) {
        (Some(_), Some(backend), _) => router = router.default_backend(backend),
        (Some(_), None, _) => unreachable!("checked above"),
        (None, None, Some(dev)) => {
            let backend = Backend::new(
                "dev",
                &dev.endpoint,
                "us-east-1",
                s3_tower::resign::BackendAddressing::Path,
                BackendCredentials::from_static(
                    dev.access_key.clone(),
                    dev.secret_key.clone(),
                    None,
                ),
            )?;
            router = router.default_backend(Arc::new(backend));
        }
        (None, _, None) => {
            if cfg.backends.is_empty() {
                return Err("no backend configured: add [[backends]] or run with --dev".into());
            }
        }
        (None, Some(_), Some(_)) => unreachable!("a default backend needs routing.default_backend"),
    }
    Ok(router)
}

/// The JWT validator of the `[auth.jwt]` issuers and, with `--dev`, the development issuer;
/// `None` without any issuer (no `JwtLayer` then).
fn jwt_validator(
    mut issuers: Vec<IssuerConfig>,
    header: &http::HeaderName,
    dev: Option<&DevIdp>,
) -> Result<Option<Arc<JwtValidator>>, BoxError> {
    if let Some(idp) = dev {
        issuers.push(idp.issuer_config());
    }
    if issuers.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = issuers.iter().map(IssuerConfig::issuer).collect();
    tracing::info!(issuers = ?names, header = %header, "JWT bearer authentication");
    let validator = JwtValidator::new(issuers).map_err(|e| format!("auth.jwt: {e}"))?;
    Ok(Some(Arc::new(validator)))
}

/// The SigV4 layer for `users` (static users of the configuration, and the `--dev` users)
/// and, with `sessions` (keyring and roles), the temporary credentials of STS sessions;
/// with the anonymous and region settings of `[auth]`. `jwt`: whether bearer tokens are
/// accepted too. Also returns its verifier, for STS `GetCallerIdentity`.
fn sigv4_layer(
    auth: &AuthConfig,
    users: Vec<StaticUser>,
    sessions: Option<(Arc<SessionKeyring>, Roles)>,
    listen: SocketAddr,
    jwt: bool,
) -> Result<(SigV4Layer, SigV4Verifier), BoxError> {
    let region = auth.checked_region()?;
    let users_with_session_prefix: Vec<String> = users
        .iter()
        .filter(|u| u.access_key_id.starts_with("ASIA"))
        .map(|u| u.access_key_id.clone())
        .collect();
    let credentials = StaticCredentials::new(users)?;
    if auth.allow_anonymous {
        tracing::warn!(
            "ANONYMOUS ACCESS IS ON (auth.allow_anonymous = true): anyone who reaches {listen} can use every bucket. Development only."
        );
    } else if credentials.is_empty() && !jwt {
        tracing::warn!(
            "no [[auth.static_users]] and anonymous access off: every request will be refused"
        );
    }
    tracing::info!(
        static_users = credentials.len(),
        region = region.unwrap_or("any"),
        "SigV4 authentication"
    );
    let resolver: Arc<dyn CredentialResolver> = match sessions {
        Some((keyring, roles)) => {
            // Temporary credentials own the ASIA prefix: a static key with it would never be
            // looked up without a session token, and with one it is a session's.
            if let Some(user) = users_with_session_prefix.first() {
                return Err(format!(
                    "auth.static_users: access key id {user} starts with ASIA, the prefix of \
                     STS session keys; choose another"
                )
                .into());
            }
            // A session of a role removed from the configuration ends at once.
            Arc::new(
                SessionCredentials::new(keyring)
                    .roles(roles)
                    .fallback(credentials),
            )
        }
        None => Arc::new(credentials),
    };
    let mut verifier = SigV4Verifier::from_arc(resolver);
    if let Some(region) = region {
        verifier = verifier.region(region);
    }
    let layer = SigV4Layer::with_verifier(verifier.clone()).allow_anonymous(auth.allow_anonymous);
    Ok((layer, verifier))
}

/// A backend response as the body type of [`EncryptLayer`]'s responses, for the stack without
/// encryption.
fn plain_body(
    response: http::Response<UpstreamBody>,
) -> http::Response<EncryptResponseBody<UpstreamBody>> {
    response.map(|body| EncryptResponseBody::Plain { body })
}

/// `addr`, with an unspecified IP (`0.0.0.0`, `::`) replaced by the loopback address, for a
/// URL clients on this machine can use.
fn loopback_if_unspecified(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Tells a newcomer how to use the `--dev` gateway. Prints file paths and access key ids,
/// never secrets.
fn print_dev_help(
    endpoint: &str,
    users: &DevUsers,
    authz_note: &str,
    encryption_note: &str,
    tokens: &str,
) {
    let credentials = users.credentials_file();
    let config = users.config_file();
    let (credentials, config) = (credentials.display(), config.display());
    let keys = if users.reused {
        "reused from"
    } else {
        "written to"
    };
    let mut who = String::new();
    for user in &users.users {
        let _ = writeln!(
            who,
            "    {:<7} group {:<7} access key {}",
            user.profile, user.profile, user.access_key_id
        );
    }
    println!(
        "\n  s3-tower gateway (development mode) at {endpoint}\n\n  \
         Embedded backend; requests must be signed. Users (keys {keys} {credentials}):\n\
         {who}    {authz_note}\n    {encryption_note}\n\n  \
         With the AWS CLI (or any AWS SDK), the profiles carry region and endpoint:\n    \
         export AWS_CONFIG_FILE={config}\n    \
         export AWS_SHARED_CREDENTIALS_FILE={credentials}\n    \
         aws --profile admin s3 mb s3://demo\n    \
         aws --profile admin s3 cp README.md s3://demo/\n    \
         aws --profile reader s3 ls s3://demo/\n\n  \
         Or with the credentials file only:\n    \
         AWS_SHARED_CREDENTIALS_FILE={credentials} aws --profile admin --region {region} \\\n      \
         --endpoint-url {endpoint} s3 ls\n{tokens}",
        region = dev_users::DEV_REGION,
    );
}

/// The dev banner's lines on bearer tokens: where they are and a `curl` using one. Prints
/// file paths, never tokens.
fn dev_token_help(
    endpoint: &str,
    idp: &DevIdp,
    files: &[PathBuf],
    signing_key: &std::path::Path,
) -> String {
    let mut text = format!(
        "\n  Or with a bearer token (JWT, valid 12 h, new at each start) of issuer {}:\n",
        idp.issuer()
    );
    for file in files {
        let _ = writeln!(text, "    {}", file.display());
    }
    let reader = files
        .iter()
        .find(|f| f.file_name().is_some_and(|n| n == "reader.jwt"))
        .or(files.first());
    if let Some(reader) = reader {
        let _ = writeln!(
            text,
            "    curl -H \"Authorization: Bearer $(cat {})\" {endpoint}/<bucket>/<key>",
            reader.display()
        );
    }
    let _ = writeln!(
        text,
        "    (other tokens: sign ES256, kid s3-tower-dev, aud s3-tower, with {})",
        signing_key.display()
    );
    let admin = files
        .iter()
        .find(|f| f.file_name().is_some_and(|n| n == "admin.jwt"))
        .or(files.first());
    if let Some(token) = admin {
        let _ = write!(
            text,
            "\n  Or with temporary credentials from STS (AssumeRoleWithWebIdentity), no key at all:\n\
             \x20   export AWS_WEB_IDENTITY_TOKEN_FILE={}\n\
             \x20   export AWS_ROLE_ARN={}\n\
             \x20   export AWS_ROLE_SESSION_NAME=dev\n\
             \x20   export AWS_ENDPOINT_URL={endpoint}\n\
             \x20   export AWS_REGION={region} AWS_DEFAULT_REGION={region}\n\
             \x20   aws s3 ls\n",
            token.display(),
            sts::DEV_ROLE_ARN,
            region = dev_users::DEV_REGION,
        );
    }
    text
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
