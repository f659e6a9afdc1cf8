//! The gateway's configuration: TOML file, then `S3_TOWER__SECTION__KEY` environment
//! variables, then command-line flags. Every field has a default (see the README and
//! `gateway.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) log: LogConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) routing: RoutingConfig,
    pub(crate) backends: Vec<BackendConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) virtual_host_domains: Vec<String>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) header_read_timeout_secs: u64,
    pub(crate) shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8190)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8191)),
            data_dir: PathBuf::from("./data"),
            virtual_host_domains: Vec::new(),
            tls: None,
            header_read_timeout_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsConfig {
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    pub(crate) format: LogFormat,
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AuthConfig {
    pub(crate) allow_anonymous: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UpstreamConfig {
    pub(crate) connect_timeout_secs: u64,
    pub(crate) response_timeout_secs: u64,
    pub(crate) ca_file: Option<PathBuf>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_secs: 5,
            response_timeout_secs: 300,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RoutingConfig {
    pub(crate) default_backend: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendConfig {
    pub(crate) name: String,
    pub(crate) endpoint: String,
    #[serde(default = "default_region")]
    pub(crate) region: String,
    #[serde(default)]
    pub(crate) addressing: s3_tower::resign::BackendAddressing,
    #[serde(default)]
    pub(crate) buckets: Vec<String>,
    pub(crate) credentials: CredentialsConfig,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// Where a backend's credentials come from.
#[derive(Clone, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum CredentialsConfig {
    Static {
        access_key_id: String,
        secret_access_key: String,
        #[serde(default)]
        session_token: Option<String>,
    },
    Env {
        #[serde(default = "default_ak_var")]
        access_key_id_env: String,
        #[serde(default = "default_sk_var")]
        secret_access_key_env: String,
        #[serde(default = "default_token_var")]
        session_token_env: Option<String>,
    },
    AwsDefaultChain,
}

impl std::fmt::Debug for CredentialsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Self::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Self::Env { .. } => f.write_str("Env"),
            Self::AwsDefaultChain => f.write_str("AwsDefaultChain"),
        }
    }
}

fn default_ak_var() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}
fn default_sk_var() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}
#[allow(clippy::unnecessary_wraps)]
fn default_token_var() -> Option<String> {
    Some("AWS_SESSION_TOKEN".to_owned())
}

/// Loads the configuration: `file` (if any), then environment variables with prefix
/// `S3_TOWER` and separator `__` (`S3_TOWER__SERVER__LISTEN=0.0.0.0:8190`).
pub(crate) fn load(file: Option<&Path>) -> Result<Config, config::ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
    }
    builder
        .add_source(
            config::Environment::with_prefix("S3_TOWER")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("server.virtual_host_domains")
                .try_parsing(true),
        )
        .build()?
        .try_deserialize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_loads_and_matches_the_defaults_it_documents() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway/gateway.toml");
        let cfg = load(Some(&path)).expect("examples/gateway/gateway.toml must load");
        assert_eq!(cfg.server.listen, SocketAddr::from(([127, 0, 0, 1], 8190)));
        assert_eq!(
            cfg.server.admin_listen,
            SocketAddr::from(([127, 0, 0, 1], 8191))
        );
        assert!(!cfg.auth.allow_anonymous);
        assert_eq!(cfg.routing.default_backend.as_deref(), Some("main"));
        assert_eq!(cfg.backends.len(), 2);
        assert!(matches!(
            cfg.backends[0].credentials,
            CredentialsConfig::Env { .. }
        ));
        assert_eq!(cfg.backends[1].buckets, vec!["archive-*".to_owned()]);
    }

    #[test]
    fn empty_configuration_gives_defaults() {
        let cfg = load(None).unwrap();
        assert_eq!(cfg.server.listen.port(), 8190);
        assert_eq!(cfg.upstream.connect_timeout_secs, 5);
        assert!(cfg.backends.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nlisten_typo = \"127.0.0.1:1\"\n").unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listen_typo"), "{err}");
    }
}
