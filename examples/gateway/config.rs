//! The gateway's configuration: TOML file, then `S3_TOWER__SECTION__KEY` environment
//! variables, then command-line flags. Every field has a default (see the README and
//! `gateway.toml`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use s3_tower::auth::jwt::{Algorithm, IssuerConfig, JwtValidator};
use s3_tower::auth::{SecretSource, StaticUser};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) log: LogConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) authz: AuthzConfig,
    pub(crate) sts: crate::sts::StsConfig,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) routing: RoutingConfig,
    pub(crate) backends: Vec<BackendConfig>,
    pub(crate) encryption: crate::encryption::EncryptionConfig,
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
    /// Only signatures scoped to this region are accepted; any region when unset.
    pub(crate) region: Option<String>,
    pub(crate) static_users: Vec<StaticUserConfig>,
    pub(crate) jwt: JwtConfig,
}

/// `[auth.jwt]`: bearer tokens (JWT) from OpenID Connect issuers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct JwtConfig {
    /// The header carrying the token (`Authorization: Bearer <jwt>` by default).
    pub(crate) header: String,
    pub(crate) issuers: Vec<JwtIssuerConfig>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            header: "authorization".to_owned(),
            issuers: Vec::new(),
        }
    }
}

/// An `[[auth.jwt.issuers]]` entry: one trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtIssuerConfig {
    pub(crate) issuer: String,
    /// The JWKS URL; unset, it is found by OIDC discovery.
    #[serde(default)]
    pub(crate) jwks_url: Option<String>,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    /// Unset: every asymmetric algorithm.
    #[serde(default)]
    pub(crate) algorithms: Option<Vec<String>>,
    #[serde(default = "default_leeway_secs")]
    pub(crate) leeway_secs: u64,
    #[serde(default = "default_subject_claim")]
    pub(crate) subject_claim: String,
    /// Put before every subject of this issuer.
    #[serde(default)]
    pub(crate) subject_prefix: String,
    #[serde(default)]
    pub(crate) groups_claim: Option<String>,
    #[serde(default)]
    pub(crate) extra_claims: Vec<String>,
    /// The shortest time between two fetches caused by unknown key ids.
    #[serde(default = "default_min_refresh_secs")]
    pub(crate) min_refresh_secs: u64,
    /// How often the keys are fetched in the background; 0 turns that off.
    #[serde(default = "default_key_refresh_secs")]
    pub(crate) key_refresh_secs: u64,
}

fn default_min_refresh_secs() -> u64 {
    30
}

fn default_key_refresh_secs() -> u64 {
    600
}

fn default_leeway_secs() -> u64 {
    60
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

impl JwtConfig {
    /// The token header, checked.
    pub(crate) fn header_name(&self) -> Result<http::HeaderName, String> {
        let name = self.header.trim();
        if name.is_empty() {
            return Err("auth.jwt.header is empty: remove it for authorization".to_owned());
        }
        http::HeaderName::try_from(name).map_err(|_| {
            format!(
                "auth.jwt.header {:?} is not a valid header name",
                self.header
            )
        })
    }

    /// The issuers for [`JwtValidator::new`], or the first configuration error, naming the
    /// issuer: an empty issuer or claim, no audience, an unknown or HMAC algorithm, an issuer
    /// given twice, a URL that is not `http(s)://host...`.
    pub(crate) fn issuer_configs(&self) -> Result<Vec<IssuerConfig>, String> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut configs = Vec::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            if issuer.issuer.trim().is_empty() {
                return Err(format!("auth.jwt.issuers[{i}]: issuer is empty"));
            }
            if let Some(first) = seen.insert(&issuer.issuer, i) {
                return Err(format!(
                    "auth.jwt.issuers[{i}] ({}): the issuer is already configured by \
                     auth.jwt.issuers[{first}]",
                    issuer.issuer
                ));
            }
            let config = issuer
                .to_issuer_config()
                .map_err(|e| format!("auth.jwt.issuers[{i}] ({}): {e}", issuer.issuer))?;
            configs.push(config);
        }
        Ok(configs)
    }
}

impl JwtIssuerConfig {
    fn to_issuer_config(&self) -> Result<IssuerConfig, String> {
        if self.audiences.is_empty() {
            return Err(
                "audiences is empty: name the audience (client id) tokens are for".to_owned(),
            );
        }
        if self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err("audiences holds an empty audience".to_owned());
        }
        if self.subject_claim.trim().is_empty() {
            return Err("subject_claim is empty: remove it for sub".to_owned());
        }
        if self
            .groups_claim
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err("groups_claim is empty: remove it for no groups".to_owned());
        }
        if self.extra_claims.iter().any(|c| c.trim().is_empty()) {
            return Err("extra_claims holds an empty claim".to_owned());
        }
        let mut config = IssuerConfig::new(&self.issuer)
            .audiences(self.audiences.iter().cloned())
            .leeway(std::time::Duration::from_secs(self.leeway_secs))
            .key_refresh_interval(std::time::Duration::from_secs(self.key_refresh_secs))
            .min_refresh_interval(std::time::Duration::from_secs(self.min_refresh_secs))
            .subject_claim(&self.subject_claim)
            .subject_prefix(&self.subject_prefix);
        if let Some(url) = &self.jwks_url {
            config = config.jwks_url(url);
        }
        if let Some(names) = &self.algorithms {
            let algorithms = names
                .iter()
                .map(|name| {
                    name.parse::<Algorithm>()
                        .map_err(|_| format!("unknown algorithm {name:?} in algorithms"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            config = config.algorithms(algorithms);
        }
        if let Some(claim) = &self.groups_claim {
            config = config.groups_claim(claim);
        }
        for claim in &self.extra_claims {
            config = config.extra_claim(claim);
        }
        // The checks of the validator itself (algorithms, URLs), for this issuer alone.
        JwtValidator::new([config.clone()]).map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// An `[[auth.static_users]]` entry: a long-lived access key and who signs with it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticUserConfig {
    pub(crate) access_key_id: String,
    #[serde(default)]
    pub(crate) secret: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    #[serde(default)]
    pub(crate) secret_file: Option<PathBuf>,
    pub(crate) subject: String,
    #[serde(default)]
    pub(crate) groups: Vec<String>,
}

impl std::fmt::Debug for StaticUserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the inline secret.
        f.debug_struct("StaticUserConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .field("subject", &self.subject)
            .field("groups", &self.groups)
            .finish()
    }
}

impl AuthConfig {
    /// The region signatures must be scoped to, checked: `None` for any region.
    pub(crate) fn checked_region(&self) -> Result<Option<&str>, String> {
        match self.region.as_deref() {
            Some(region) if region.trim().is_empty() => {
                Err("auth.region is empty: remove it to accept any region".to_owned())
            }
            region => Ok(region),
        }
    }

    /// The static users with their secrets loaded, or the first configuration error: an
    /// empty access key id or subject, an access key id used twice, not exactly one secret
    /// source, or a secret that cannot be loaded (unset or empty variable, unreadable or
    /// empty file).
    pub(crate) fn load_static_users(&self) -> Result<Vec<StaticUser>, String> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, user) in self.static_users.iter().enumerate() {
            if user.access_key_id.is_empty() {
                return Err(format!("auth.static_users[{i}]: access_key_id is empty"));
            }
            if let Some(first) = seen.insert(&user.access_key_id, i) {
                return Err(format!(
                    "auth.static_users[{i}]: access key id {} is already used by \
                     auth.static_users[{first}]",
                    user.access_key_id
                ));
            }
        }
        self.static_users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                user.load()
                    .map_err(|e| format!("auth.static_users[{i}] ({}): {e}", user.access_key_id))
            })
            .collect()
    }
}

impl StaticUserConfig {
    fn load(&self) -> Result<StaticUser, String> {
        if self.subject.is_empty() {
            return Err("subject is empty".to_owned());
        }
        let secret = load_secret(
            self.secret.as_deref(),
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
        )?;
        Ok(StaticUser {
            access_key_id: self.access_key_id.clone(),
            secret,
            subject: self.subject.clone(),
            groups: self.groups.clone(),
        })
    }
}

/// Loads the secret of a configuration entry from exactly one of its `secret`,
/// `secret_env` and `secret_file` fields; errors name the field.
pub(crate) fn load_secret(
    secret: Option<&str>,
    secret_env: Option<&str>,
    secret_file: Option<&Path>,
) -> Result<s3_tower::auth::SecretKey, String> {
    load_named_secret("secret", secret, secret_env, secret_file)?
        .ok_or_else(|| "set one of secret, secret_env or secret_file (none is set)".to_owned())
}

/// [`load_secret`] for fields named `<field>`, `<field>_env` and `<field>_file`: `None` when
/// none is set, an error when more than one is set or the secret cannot be loaded.
pub(crate) fn load_named_secret(
    field: &str,
    inline: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<s3_tower::auth::SecretKey>, String> {
    let mut sources: Vec<(SecretSource, String)> = [
        inline.map(|s| (SecretSource::Inline(s.to_owned()), field.to_owned())),
        env.map(|v| (SecretSource::Env(v.to_owned()), format!("{field}_env"))),
        file.map(|p| (SecretSource::File(p.to_owned()), format!("{field}_file"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (source, name) = match sources.len() {
        0 => return Ok(None),
        1 => sources.remove(0),
        _ => {
            let names: Vec<&str> = sources.iter().map(|(_, name)| name.as_str()).collect();
            return Err(format!(
                "set only one of {field}, {field}_env or {field}_file ({} are set)",
                names.join(", ")
            ));
        }
    };
    source.load().map(Some).map_err(|e| format!("{name}: {e}"))
}

/// The authorization engine of `[authz]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub(crate) enum AuthzEngine {
    /// No authorization layer: every authenticated principal may do everything.
    None,
    /// Rego policies (`policy_files`), evaluated in process.
    Rego,
    /// Cedar policies (`policy_files`), validated against the S3 schema.
    Cedar,
}

impl TryFrom<String> for AuthzEngine {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "none" => Ok(Self::None),
            "rego" => Ok(Self::Rego),
            "cedar" => Ok(Self::Cedar),
            _ => Err(format!(
                "unknown authz.engine {name:?}: expected \"none\", \"rego\" or \"cedar\""
            )),
        }
    }
}

/// `[authz]`: which policy engine authorizes requests, and where its policies are.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AuthzConfig {
    /// Unset: `none`, or with `--dev` the embedded seed policy.
    pub(crate) engine: Option<AuthzEngine>,
    pub(crate) policy_files: Vec<PathBuf>,
    pub(crate) query: String,
    /// How often the policy files' modification times are checked; 0 = never.
    pub(crate) reload_interval_secs: u64,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            engine: None,
            policy_files: Vec::new(),
            query: s3_tower::authz::DEFAULT_QUERY.to_owned(),
            reload_interval_secs: 5,
        }
    }
}

/// What authorizes requests, as `[authz]` and `--dev` decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthzPlan {
    /// No authorization layer.
    None,
    /// The embedded seed policy (`--dev` without an engine set).
    Seed,
    /// Rego policies from these files, evaluating `query`.
    RegoFiles { files: Vec<PathBuf>, query: String },
    /// Cedar policies from these files.
    CedarFiles { files: Vec<PathBuf> },
}

impl AuthzConfig {
    /// What authorizes requests, or the configuration error: `rego` without policy files,
    /// policy files with another engine, an empty query.
    pub(crate) fn plan(&self, dev: bool) -> Result<AuthzPlan, String> {
        if self.query.trim().is_empty() {
            return Err("authz.query is empty: remove it for data.s3.allow".to_owned());
        }
        match (self.engine, dev) {
            (Some(AuthzEngine::Rego), _) => {
                if self.policy_files.is_empty() {
                    return Err(
                        "authz.engine = \"rego\" needs authz.policy_files (none is set)".to_owned(),
                    );
                }
                Ok(AuthzPlan::RegoFiles {
                    files: self.policy_files.clone(),
                    query: self.query.clone(),
                })
            }
            (Some(AuthzEngine::Cedar), _) => {
                if self.policy_files.is_empty() {
                    return Err(
                        "authz.engine = \"cedar\" needs authz.policy_files (none is set)"
                            .to_owned(),
                    );
                }
                Ok(AuthzPlan::CedarFiles {
                    files: self.policy_files.clone(),
                })
            }
            _ if !self.policy_files.is_empty() => Err(
                "authz.policy_files is set but authz.engine is not \"rego\" or \"cedar\": \
                 set the engine to enforce them"
                    .to_owned(),
            ),
            (Some(AuthzEngine::None), _) | (None, false) => Ok(AuthzPlan::None),
            (None, true) => Ok(AuthzPlan::Seed),
        }
    }
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
                .with_list_parse_key("authz.policy_files")
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
        assert_eq!(cfg.auth.region, None);
        let users: Vec<_> = cfg
            .auth
            .static_users
            .iter()
            .map(|u| {
                (
                    u.access_key_id.as_str(),
                    u.secret_env.as_deref(),
                    u.subject.as_str(),
                )
            })
            .collect();
        assert_eq!(
            users,
            [(
                "AKIAEXAMPLEALICE0001",
                Some("S3_TOWER_ALICE_SECRET"),
                "alice"
            )]
        );
        assert_eq!(cfg.auth.static_users[0].groups, ["admin"]);
        assert_eq!(cfg.auth.jwt.header, "authorization");
        assert_eq!(
            cfg.auth.jwt.header_name().unwrap(),
            http::header::AUTHORIZATION
        );
        let issuers = cfg.auth.jwt.issuer_configs().unwrap();
        assert_eq!(issuers.len(), 1);
        assert_eq!(issuers[0].issuer(), "https://sso.example.com/realms/main");
        let issuer = &cfg.auth.jwt.issuers[0];
        assert_eq!(issuer.audiences, ["s3-gateway"]);
        assert_eq!(issuer.jwks_url, None);
        assert_eq!(issuer.algorithms, None);
        assert_eq!(issuer.leeway_secs, 60);
        assert_eq!(issuer.subject_claim, "sub");
        assert_eq!(issuer.groups_claim.as_deref(), Some("realm_access.roles"));
        assert_eq!(issuer.extra_claims, ["email"]);
        assert_eq!(cfg.authz.engine, None);
        assert!(cfg.authz.policy_files.is_empty());
        assert_eq!(cfg.authz.query, "data.s3.allow");
        assert_eq!(cfg.authz.reload_interval_secs, 5);
        assert_eq!(cfg.authz.plan(false), Ok(AuthzPlan::None));
        assert_eq!(cfg.authz.plan(true), Ok(AuthzPlan::Seed));
        assert_eq!(cfg.routing.default_backend.as_deref(), Some("main"));
        assert_eq!(cfg.backends.len(), 2);
        assert!(matches!(
            cfg.backends[0].credentials,
            CredentialsConfig::Env { .. }
        ));
        assert_eq!(cfg.backends[1].buckets, vec!["archive-*".to_owned()]);
        assert_eq!(cfg.encryption.enabled, None);
        assert!(!cfg.encryption.is_enabled(false));
        assert!(cfg.encryption.is_enabled(true), "--dev encrypts by default");
        assert_eq!(cfg.encryption.default, None);
        assert_eq!(
            cfg.encryption.binding,
            crate::encryption::BindingName(s3_tower::encrypt::Binding::None)
        );
        assert!(!cfg.encryption.allow_plaintext_reads);
        assert!(cfg.encryption.keks.is_empty());
    }

    #[test]
    fn empty_configuration_gives_defaults() {
        let cfg = load(None).unwrap();
        assert_eq!(cfg.server.listen.port(), 8190);
        assert_eq!(cfg.upstream.connect_timeout_secs, 5);
        assert!(cfg.backends.is_empty());
    }

    /// The `[auth]` section of a configuration file holding `toml`.
    fn auth_from(dir: &Path, toml: &str) -> AuthConfig {
        let path = dir.join("auth.toml");
        std::fs::write(&path, toml).unwrap();
        load(Some(&path)).unwrap().auth
    }

    #[test]
    fn static_users_load_their_secrets_from_each_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "file-secret\n").unwrap();
        let auth = auth_from(
            dir.path(),
            &format!(
                "[auth]\nregion = \"eu-west-1\"\n\
                 [[auth.static_users]]\naccess_key_id = \"AK1\"\nsecret = \"inline-secret\"\n\
                 subject = \"alice\"\ngroups = [\"admin\", \"ops\"]\n\
                 [[auth.static_users]]\naccess_key_id = \"AK2\"\nsecret_file = {file:?}\n\
                 subject = \"bob\"\n"
            ),
        );
        assert_eq!(auth.checked_region(), Ok(Some("eu-west-1")));
        let users = auth.load_static_users().unwrap();
        let got: Vec<_> = users
            .iter()
            .map(|u| {
                (
                    u.access_key_id.as_str(),
                    u.secret.expose(),
                    u.subject.as_str(),
                    &u.groups,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "AK1",
                    "inline-secret",
                    "alice",
                    &vec!["admin".to_owned(), "ops".to_owned()]
                ),
                ("AK2", "file-secret", "bob", &Vec::new()),
            ]
        );
        // Debug never shows the inline secret.
        let debug = format!("{auth:?}");
        assert!(!debug.contains("inline-secret"), "{debug}");
    }

    #[test]
    fn static_user_errors_name_the_user_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let user = |ak: &str, secret: &str| {
            format!(
                "[[auth.static_users]]\naccess_key_id = {ak:?}\nsubject = \"alice\"\n{secret}\n"
            )
        };
        let cases = [
            (
                user("AK1", ""),
                "auth.static_users[0] (AK1): set one of secret, secret_env or secret_file (none is set)"
                    .to_owned(),
            ),
            (
                user("AK1", &format!("secret = \"s\"\nsecret_file = {empty:?}")),
                "auth.static_users[0] (AK1): set only one of secret, secret_env or secret_file \
                 (secret, secret_file are set)"
                    .to_owned(),
            ),
            (
                user("AK1", "secret = \"s\"") + &user("AK2", "secret = \"s\"")
                    + &user("AK1", "secret = \"t\""),
                "auth.static_users[2]: access key id AK1 is already used by auth.static_users[0]"
                    .to_owned(),
            ),
            (
                user("AK1", "secret_env = \"S3_TOWER_TEST_SURELY_UNSET_VARIABLE\""),
                "auth.static_users[0] (AK1): secret_env: environment variable \
                 S3_TOWER_TEST_SURELY_UNSET_VARIABLE is unset or empty"
                    .to_owned(),
            ),
            (
                user("AK1", &format!("secret_file = {missing:?}")),
                format!(
                    "auth.static_users[0] (AK1): secret_file: cannot read secret file {}: {}",
                    missing.display(),
                    std::fs::read(&missing).unwrap_err()
                ),
            ),
            (
                user("AK1", &format!("secret_file = {empty:?}")),
                "auth.static_users[0] (AK1): secret_file: the secret is empty".to_owned(),
            ),
            (
                user("AK1", "secret = \"\""),
                "auth.static_users[0] (AK1): secret: the secret is empty".to_owned(),
            ),
            (
                user("", "secret = \"s\""),
                "auth.static_users[0]: access_key_id is empty".to_owned(),
            ),
            (
                user("AK1", "secret = \"s\"").replace("\"alice\"", "\"\""),
                "auth.static_users[0] (AK1): subject is empty".to_owned(),
            ),
        ];
        for (toml, expected) in cases {
            let err = auth_from(dir.path(), &toml)
                .load_static_users()
                .unwrap_err();
            assert_eq!(err, expected, "for\n{toml}");
        }
    }

    #[test]
    fn static_user_shape_errors_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        for (toml, expected) in [
            (
                "[[auth.static_users]]\naccess_key_id = \"AK1\"\nsecret = \"s\"\n",
                // (config-rs prints the path as `auth.static_users[0]subject`.)
                "missing configuration field \"auth.static_users[0]subject\"",
            ),
            (
                "[[auth.static_users]]\naccess_key_id = \"AK1\"\nsecret = \"s\"\n\
                 subject = \"a\"\nsecret_var = \"X\"\n",
                "unknown field `secret_var`",
            ),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let auth = auth_from(dir.path(), "[auth]\nregion = \"\"\n");
        assert_eq!(
            auth.checked_region(),
            Err("auth.region is empty: remove it to accept any region".to_owned())
        );
    }

    #[test]
    fn jwt_issuers_map_to_issuer_configs_and_errors_name_the_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_from(
            dir.path(),
            "[auth.jwt]\nheader = \"x-auth-token\"\n\
             [[auth.jwt.issuers]]\nissuer = \"https://a.example\"\n\
             jwks_url = \"https://a.example/keys\"\naudiences = [\"s3\", \"other\"]\n\
             algorithms = [\"RS256\", \"ES256\"]\nleeway_secs = 5\nsubject_claim = \"email\"\n\
             groups_claim = \"groups\"\nextra_claims = [\"email\", \"org.id\"]\n\
             [[auth.jwt.issuers]]\nissuer = \"http://b.example:8080/realm\"\n\
             audiences = [\"s3\"]\n",
        );
        assert_eq!(auth.jwt.header_name().unwrap().as_str(), "x-auth-token");
        let configs = auth.jwt.issuer_configs().unwrap();
        let names: Vec<&str> = configs.iter().map(IssuerConfig::issuer).collect();
        assert_eq!(names, ["https://a.example", "http://b.example:8080/realm"]);
        let debug = format!("{:?}", configs[0]);
        for part in [
            "https://a.example/keys",
            "\"other\"",
            "RS256",
            "ES256",
            "5s",
            "\"email\"",
            "\"groups\"",
            "org.id",
        ] {
            assert!(debug.contains(part), "{part} not in {debug}");
        }
        assert!(!debug.contains("PS256"), "{debug}");
        JwtValidator::new(configs).unwrap();

        let issuer = |extra: &str| {
            format!(
                "[[auth.jwt.issuers]]\nissuer = \"https://a.example\"\n\
                 audiences = [\"s3\"]\n{extra}\n"
            )
        };
        let cases = [
            (
                "[[auth.jwt.issuers]]\nissuer = \"https://a.example\"\n".to_owned(),
                "auth.jwt.issuers[0] (https://a.example): audiences is empty: name the \
                 audience (client id) tokens are for",
            ),
            (
                issuer("algorithms = [\"RS257\"]"),
                "auth.jwt.issuers[0] (https://a.example): unknown algorithm \"RS257\" in \
                 algorithms",
            ),
            (
                issuer("algorithms = [\"HS256\"]"),
                "auth.jwt.issuers[0] (https://a.example): issuer \"https://a.example\": \
                 algorithm HS256 is not allowed (HMAC)",
            ),
            (
                issuer("algorithms = []"),
                "auth.jwt.issuers[0] (https://a.example): issuer \"https://a.example\" \
                 allows no algorithm",
            ),
            (
                issuer("jwks_url = \"ftp://a.example/keys\""),
                "auth.jwt.issuers[0] (https://a.example): invalid URL \"ftp://a.example/keys\"",
            ),
            (
                issuer("subject_claim = \"\""),
                "auth.jwt.issuers[0] (https://a.example): subject_claim is empty: remove it \
                 for sub",
            ),
            (
                issuer("") + &issuer(""),
                "auth.jwt.issuers[1] (https://a.example): the issuer is already configured \
                 by auth.jwt.issuers[0]",
            ),
            (
                "[[auth.jwt.issuers]]\nissuer = \"\"\naudiences = [\"s3\"]\n".to_owned(),
                "auth.jwt.issuers[0]: issuer is empty",
            ),
        ];
        for (toml, expected) in cases {
            let err = auth_from(dir.path(), &toml)
                .jwt
                .issuer_configs()
                .unwrap_err();
            assert_eq!(err, expected, "for\n{toml}");
        }
        let auth = auth_from(dir.path(), "[auth.jwt]\nheader = \"bad header\"\n");
        assert_eq!(
            auth.jwt.header_name().unwrap_err(),
            "auth.jwt.header \"bad header\" is not a valid header name"
        );
        assert!(auth.jwt.issuer_configs().unwrap().is_empty());
    }

    /// The `[authz]` section of a configuration file holding `toml`.
    fn authz_from(dir: &Path, toml: &str) -> AuthzConfig {
        let path = dir.join("authz.toml");
        std::fs::write(&path, toml).unwrap();
        load(Some(&path)).unwrap().authz
    }

    #[test]
    fn authz_plans_follow_the_engine_and_dev_mode() {
        let dir = tempfile::tempdir().unwrap();
        let rego = authz_from(
            dir.path(),
            "[authz]\nengine = \"rego\"\npolicy_files = [\"a.rego\", \"/p/b.rego\"]\n\
             query = \"data.gw.allow\"\nreload_interval_secs = 0\n",
        );
        let files = vec![PathBuf::from("a.rego"), PathBuf::from("/p/b.rego")];
        let expected = AuthzPlan::RegoFiles {
            files,
            query: "data.gw.allow".to_owned(),
        };
        assert_eq!(rego.plan(false), Ok(expected.clone()));
        assert_eq!(rego.plan(true), Ok(expected));
        assert_eq!(rego.reload_interval_secs, 0);

        let cedar = authz_from(
            dir.path(),
            "[authz]\nengine = \"cedar\"\npolicy_files = [\"p.cedar\"]\n",
        );
        let expected = AuthzPlan::CedarFiles {
            files: vec![PathBuf::from("p.cedar")],
        };
        assert_eq!(cedar.plan(false), Ok(expected.clone()));
        assert_eq!(cedar.plan(true), Ok(expected));
        let cedar = authz_from(dir.path(), "[authz]\nengine = \"cedar\"\n");
        assert_eq!(
            cedar.plan(false),
            Err("authz.engine = \"cedar\" needs authz.policy_files (none is set)".to_owned())
        );

        let none = authz_from(dir.path(), "[authz]\nengine = \"none\"\n");
        assert_eq!(none.plan(false), Ok(AuthzPlan::None));
        assert_eq!(
            none.plan(true),
            Ok(AuthzPlan::None),
            "an explicit none wins over --dev"
        );

        for (toml, expected) in [
            (
                "[authz]\nengine = \"rego\"\n",
                "authz.engine = \"rego\" needs authz.policy_files (none is set)",
            ),
            (
                "[authz]\npolicy_files = [\"a.rego\"]\n",
                "authz.policy_files is set but authz.engine is not \"rego\" or \"cedar\": \
                 set the engine to enforce them",
            ),
            (
                "[authz]\nengine = \"rego\"\npolicy_files = [\"a.rego\"]\nquery = \" \"\n",
                "authz.query is empty: remove it for data.s3.allow",
            ),
        ] {
            let authz = authz_from(dir.path(), toml);
            assert_eq!(authz.plan(false), Err(expected.to_owned()), "{toml}");
            assert_eq!(authz.plan(true), Err(expected.to_owned()), "{toml}");
        }

        let path = dir.path().join("bad.toml");
        for (toml, expected) in [
            (
                "[authz]\nengine = \"opa\"\n",
                "unknown authz.engine \"opa\": expected \"none\", \"rego\" or \"cedar\"",
            ),
            (
                "[authz]\npolicy_file = \"a.rego\"\n",
                "unknown field `policy_file`",
            ),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
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
