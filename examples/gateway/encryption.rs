//! `[encryption]`: envelope encryption of object bodies (`s3_encrypt::EncryptLayer`): the
//! named key-encryption keys (KEKs), which buckets each encrypts, and the `--dev` local key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use s3_tower::encrypt::{
    Binding, BucketEncryption, CacheConfig, CachedKek, EncryptionPolicy, KeyEncryptionKey,
    KmsConfig, KmsCredentials, KmsKek, LocalKek, TransitAuth, TransitConfig, TransitKek,
};
use serde::Deserialize;

use crate::config::load_named_secret;

/// The file of the `--dev` KEK, under the data directory.
pub(crate) const DEV_KEY_FILE: &str = ".dev/encryption.key";

/// `[encryption]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct EncryptionConfig {
    /// Unset: off, or with `--dev` every bucket encrypted with the local dev key.
    pub(crate) enabled: Option<bool>,
    /// The KEK of buckets no rule matches; unset, they are not encrypted.
    pub(crate) default: Option<String>,
    pub(crate) binding: BindingName,
    pub(crate) allow_plaintext_reads: bool,
    pub(crate) keks: Vec<KekConfig>,
    pub(crate) buckets: Vec<BucketRuleConfig>,
}

/// A binding by its configuration name (`none`, `bucket`, `object`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub(crate) struct BindingName(pub(crate) Binding);

impl TryFrom<String> for BindingName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Binding::from_name(&name).map(Self).ok_or_else(|| {
            format!("unknown binding {name:?}: expected \"none\", \"bucket\" or \"object\"")
        })
    }
}

/// `cache = { capacity, ttl_secs }` of a KEK: its cache of unwrapped data keys.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CacheSettings {
    pub(crate) capacity: usize,
    pub(crate) ttl_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let config = CacheConfig::default();
        Self {
            capacity: config.capacity,
            ttl_secs: config.ttl.as_secs(),
        }
    }
}

/// An `[[encryption.keks]]` entry.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum KekConfig {
    /// A 32-byte key file (base64 or raw). Development and tests; it must exist.
    Local {
        name: String,
        path: PathBuf,
        #[serde(default)]
        cache: CacheSettings,
    },
    /// An OpenBao/Vault Transit key.
    Transit {
        name: String,
        address: String,
        #[serde(default = "default_transit_mount")]
        mount: String,
        key: String,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        token_env: Option<String>,
        #[serde(default)]
        token_file: Option<PathBuf>,
        #[serde(default)]
        approle: Option<AppRoleConfig>,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default)]
        allow_insecure_http: bool,
        #[serde(default = "default_kek_timeout_secs")]
        timeout_secs: u64,
        #[serde(default)]
        cache: CacheSettings,
    },
    /// A key of the AWS KMS API (AWS or any KMS-compatible endpoint).
    Kms {
        name: String,
        key_id: String,
        region: String,
        #[serde(default)]
        endpoint: Option<String>,
        access_key_id: String,
        #[serde(default)]
        secret_access_key: Option<String>,
        #[serde(default)]
        secret_access_key_env: Option<String>,
        #[serde(default)]
        secret_access_key_file: Option<PathBuf>,
        #[serde(default)]
        session_token: Option<String>,
        #[serde(default)]
        session_token_env: Option<String>,
        #[serde(default)]
        session_token_file: Option<PathBuf>,
        #[serde(default)]
        allow_insecure_http: bool,
        #[serde(default = "default_kek_timeout_secs")]
        timeout_secs: u64,
        #[serde(default)]
        cache: CacheSettings,
    },
}

impl std::fmt::Debug for KekConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print inline secrets.
        f.debug_struct("KekConfig")
            .field("name", &self.name())
            .field("type", &self.kind())
            .finish_non_exhaustive()
    }
}

/// `approle = { mount, role_id, secret_id / secret_id_env / secret_id_file }` of a Transit KEK.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppRoleConfig {
    #[serde(default = "default_approle_mount")]
    pub(crate) mount: String,
    pub(crate) role_id: String,
    #[serde(default)]
    pub(crate) secret_id: Option<String>,
    #[serde(default)]
    pub(crate) secret_id_env: Option<String>,
    #[serde(default)]
    pub(crate) secret_id_file: Option<PathBuf>,
}

fn default_transit_mount() -> String {
    "transit".to_owned()
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

fn default_kek_timeout_secs() -> u64 {
    10
}

/// An `[[encryption.buckets]]` entry: how the buckets matching `bucket` are treated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BucketRuleConfig {
    /// An exact bucket name or `prefix*`.
    pub(crate) bucket: String,
    /// The KEK; unset, `encryption.default`.
    #[serde(default)]
    pub(crate) kek: Option<String>,
    /// `false`: the buckets are not encrypted.
    #[serde(default = "default_true")]
    pub(crate) encrypt: bool,
    /// Unset: `encryption.binding`.
    #[serde(default)]
    pub(crate) binding: Option<BindingName>,
    /// Unset: `encryption.allow_plaintext_reads`.
    #[serde(default)]
    pub(crate) allow_plaintext_reads: Option<bool>,
}

fn default_true() -> bool {
    true
}

/// A configured KEK: its configuration name and the provider (cached).
pub(crate) struct NamedKek {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) kek: Arc<dyn KeyEncryptionKey>,
}

/// What `[encryption]` and `--dev` decide.
pub(crate) struct EncryptionSetup {
    pub(crate) policy: EncryptionPolicy,
    pub(crate) keks: Vec<NamedKek>,
    /// With `--dev` (and `enabled` unset): the local key file every bucket is encrypted with.
    pub(crate) dev_key_file: Option<PathBuf>,
}

impl KekConfig {
    fn name(&self) -> &str {
        match self {
            Self::Local { name, .. } | Self::Transit { name, .. } | Self::Kms { name, .. } => name,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Transit { .. } => "transit",
            Self::Kms { .. } => "kms",
        }
    }

    fn cache(&self) -> CacheSettings {
        match self {
            Self::Local { cache, .. } | Self::Transit { cache, .. } | Self::Kms { cache, .. } => {
                *cache
            }
        }
    }

    /// The provider, behind its cache. Nothing is contacted yet.
    fn build(&self) -> Result<Arc<dyn KeyEncryptionKey>, String> {
        let cache = self.cache();
        let cache = CacheConfig {
            capacity: cache.capacity,
            ttl: Duration::from_secs(cache.ttl_secs),
        };
        Ok(match self {
            Self::Local { path, .. } => {
                let kek = LocalKek::from_file(path).map_err(|e| e.to_string())?;
                Arc::new(CachedKek::new(kek, cache))
            }
            Self::Transit {
                address,
                mount,
                key,
                token,
                token_env,
                token_file,
                approle,
                namespace,
                ca_file,
                allow_insecure_http,
                timeout_secs,
                ..
            } => {
                let token = load_named_secret(
                    "token",
                    token.as_deref(),
                    token_env.as_deref(),
                    token_file.as_deref(),
                )?;
                let auth = match (token, approle) {
                    (Some(token), None) => TransitAuth::Token(token.expose().to_owned()),
                    (None, Some(approle)) => {
                        let secret_id = load_named_secret(
                            "secret_id",
                            approle.secret_id.as_deref(),
                            approle.secret_id_env.as_deref(),
                            approle.secret_id_file.as_deref(),
                        )
                        .map_err(|e| format!("approle: {e}"))?
                        .ok_or(
                            "approle: set one of secret_id, secret_id_env or secret_id_file \
                             (none is set)",
                        )?;
                        TransitAuth::AppRole {
                            mount: approle.mount.clone(),
                            role_id: approle.role_id.clone(),
                            secret_id: secret_id.expose().to_owned(),
                        }
                    }
                    (None, None) => {
                        return Err(
                            "set one of token, token_env, token_file or approle (none is set)"
                                .to_owned(),
                        );
                    }
                    (Some(_), Some(_)) => {
                        return Err("set either a token or approle, not both".to_owned());
                    }
                };
                if *timeout_secs == 0 {
                    return Err("timeout_secs must be positive".to_owned());
                }
                let mut config = TransitConfig::new(address, key, auth);
                config.mount.clone_from(mount);
                config.namespace.clone_from(namespace);
                config.timeout = Duration::from_secs(*timeout_secs);
                config.allow_insecure_http = *allow_insecure_http;
                if let Some(ca) = ca_file {
                    config.ca_pem =
                        Some(std::fs::read(ca).map_err(|e| {
                            format!("cannot read the CA file {}: {e}", ca.display())
                        })?);
                }
                let kek = TransitKek::new(config).map_err(|e| e.to_string())?;
                Arc::new(CachedKek::new(kek, cache))
            }
            Self::Kms {
                key_id,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                secret_access_key_env,
                secret_access_key_file,
                session_token,
                session_token_env,
                session_token_file,
                allow_insecure_http,
                timeout_secs,
                ..
            } => {
                let secret = load_named_secret(
                    "secret_access_key",
                    secret_access_key.as_deref(),
                    secret_access_key_env.as_deref(),
                    secret_access_key_file.as_deref(),
                )?
                .ok_or(
                    "set one of secret_access_key, secret_access_key_env or \
                     secret_access_key_file (none is set)",
                )?;
                let session_token = load_named_secret(
                    "session_token",
                    session_token.as_deref(),
                    session_token_env.as_deref(),
                    session_token_file.as_deref(),
                )?;
                if *timeout_secs == 0 {
                    return Err("timeout_secs must be positive".to_owned());
                }
                let kek = KmsKek::new(KmsConfig {
                    key_id: key_id.clone(),
                    region: region.clone(),
                    endpoint: endpoint.clone(),
                    credentials: KmsCredentials {
                        access_key_id: access_key_id.clone(),
                        secret_access_key: secret.expose().to_owned(),
                        session_token: session_token.map(|t| t.expose().to_owned()),
                    },
                    timeout: Duration::from_secs(*timeout_secs),
                    allow_insecure_http: *allow_insecure_http,
                })
                .map_err(|e| e.to_string())?;
                Arc::new(CachedKek::new(kek, cache))
            }
        })
    }
}

impl EncryptionConfig {
    /// Whether encryption is on: `enabled`, or unset with `--dev`.
    pub(crate) fn is_enabled(&self, dev: bool) -> bool {
        self.enabled.unwrap_or(dev)
    }

    /// The names and rules, checked without building any KEK: empty or duplicate KEK names,
    /// a default or rule naming no KEK, rules without a KEK and no default, empty or
    /// duplicate bucket patterns.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, kek) in self.keks.iter().enumerate() {
            let name = kek.name();
            if name.trim().is_empty() {
                return Err(format!("encryption.keks[{i}]: name is empty"));
            }
            if let Some(first) = seen.insert(name, i) {
                return Err(format!(
                    "encryption.keks[{i}]: the name {name:?} is already used by \
                     encryption.keks[{first}]"
                ));
            }
        }
        let known = || {
            if self.keks.is_empty() {
                "there is no [[encryption.keks]]".to_owned()
            } else {
                let names: Vec<String> = self
                    .keks
                    .iter()
                    .map(|k| format!("{:?}", k.name()))
                    .collect();
                format!("configured: {}", names.join(", "))
            }
        };
        if let Some(name) = &self.default
            && !seen.contains_key(name.as_str())
        {
            return Err(format!(
                "encryption.default = {name:?} names no KEK of [[encryption.keks]] ({})",
                known()
            ));
        }
        let mut patterns: HashMap<&str, usize> = HashMap::new();
        for (i, rule) in self.buckets.iter().enumerate() {
            let pattern = rule.bucket.as_str();
            if pattern.trim().is_empty() {
                return Err(format!("encryption.buckets[{i}]: bucket is empty"));
            }
            if let Some(first) = patterns.insert(pattern, i) {
                return Err(format!(
                    "encryption.buckets[{i}] ({pattern}): the bucket pattern is already used \
                     by encryption.buckets[{first}]"
                ));
            }
            match (&rule.kek, rule.encrypt) {
                (Some(name), true) if !seen.contains_key(name.as_str()) => {
                    return Err(format!(
                        "encryption.buckets[{i}] ({pattern}): kek = {name:?} names no KEK of \
                         [[encryption.keks]] ({})",
                        known()
                    ));
                }
                (Some(_), false) => {
                    return Err(format!(
                        "encryption.buckets[{i}] ({pattern}): encrypt = false and a kek: \
                         remove one"
                    ));
                }
                (None, true) if self.default.is_none() => {
                    return Err(format!(
                        "encryption.buckets[{i}] ({pattern}): name its kek (or set encrypt = \
                         false): encryption.default is unset"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The policy and its KEKs, or `None` when encryption is off. With `--dev` and `enabled`
    /// unset, every bucket is encrypted with the local key `<data_dir>/.dev/encryption.key`
    /// (made on first start). Nothing is contacted: check the KEKs with [`check_keks`].
    pub(crate) fn build(
        &self,
        dev: bool,
        data_dir: &Path,
    ) -> Result<Option<EncryptionSetup>, String> {
        self.validate()?;
        if !self.is_enabled(dev) {
            if !self.keks.is_empty() || !self.buckets.is_empty() || self.default.is_some() {
                tracing::warn!(
                    "encryption.enabled is false: [encryption] keks and rules are ignored and \
                     objects are stored and served as they are"
                );
            }
            return Ok(None);
        }
        if self.enabled.is_none() && dev {
            let path = data_dir.join(DEV_KEY_FILE);
            let kek = LocalKek::open_or_generate(&path).map_err(|e| {
                format!(
                    "encryption: cannot set up the development key {}: {e}",
                    path.display()
                )
            })?;
            let kek: Arc<dyn KeyEncryptionKey> = Arc::new(kek);
            let policy = EncryptionPolicy::new(
                BucketEncryption::encrypt(Arc::clone(&kek))
                    .with_binding(self.binding.0)
                    .allow_plaintext_reads(self.allow_plaintext_reads),
            );
            return Ok(Some(EncryptionSetup {
                policy,
                keks: vec![NamedKek {
                    name: "dev".to_owned(),
                    kind: "local",
                    kek,
                }],
                dev_key_file: Some(path),
            }));
        }
        if self.keks.is_empty() {
            return Err(
                "encryption.enabled = true needs at least one [[encryption.keks]] (none is set)"
                    .to_owned(),
            );
        }
        let mut keks = Vec::new();
        for (i, kek) in self.keks.iter().enumerate() {
            let built = kek.build().map_err(|e| {
                format!(
                    "encryption.keks[{i}] ({}, type {}): {e}",
                    kek.name(),
                    kek.kind()
                )
            })?;
            // Objects record the key's own name (e.g. `transit:transit/app`), so two
            // entries for one key could not be told apart on reads.
            if let Some(other) = keks
                .iter()
                .find(|k: &&NamedKek| k.kek.name() == built.name())
            {
                return Err(format!(
                    "encryption.keks[{i}] ({}) and {:?} are the same key ({}): configure it once",
                    kek.name(),
                    other.name,
                    built.name()
                ));
            }
            keks.push(NamedKek {
                name: kek.name().to_owned(),
                kind: kek.kind(),
                kek: built,
            });
        }
        let by_name = |name: &str| {
            keks.iter()
                .find(|k| k.name == name)
                .map(|k| Arc::clone(&k.kek))
                .expect("validated: every KEK name is configured")
        };
        let encryption = |kek: &str, binding: Binding, allow: bool| {
            BucketEncryption::encrypt(by_name(kek))
                .with_binding(binding)
                .allow_plaintext_reads(allow)
        };
        let default = match &self.default {
            Some(name) => encryption(name, self.binding.0, self.allow_plaintext_reads),
            None => BucketEncryption::Off,
        };
        let mut policy = EncryptionPolicy::new(default);
        for rule in &self.buckets {
            let treatment = if rule.encrypt {
                let kek = rule
                    .kek
                    .as_deref()
                    .or(self.default.as_deref())
                    .expect("validated: a rule without kek has the default");
                encryption(
                    kek,
                    rule.binding.unwrap_or(self.binding).0,
                    rule.allow_plaintext_reads
                        .unwrap_or(self.allow_plaintext_reads),
                )
            } else {
                BucketEncryption::Off
            };
            policy = policy.bucket(&rule.bucket, treatment);
        }
        // KEKs no rule names still unwrap the objects they wrapped (retired KEKs).
        for kek in &keks {
            policy = policy.read_kek(Arc::clone(&kek.kek));
        }
        if self.default.is_none() && !self.buckets.iter().any(|r| r.encrypt) {
            tracing::warn!(
                "encryption is enabled but no bucket is encrypted: set encryption.default or \
                 add [[encryption.buckets]] rules with a kek"
            );
        }
        Ok(Some(EncryptionSetup {
            policy,
            keks,
            dev_key_file: None,
        }))
    }
}

/// Startup check of every KEK (reachable, credentials accepted, key usable): the first
/// failure, naming the KEK, stops the gateway.
pub(crate) async fn check_keks(keks: &[NamedKek]) -> Result<(), String> {
    for kek in keks {
        kek.kek.check().await.map_err(|e| {
            format!(
                "encryption: KEK {:?} (type {}, {}) failed its startup check: {e}",
                kek.name,
                kek.kind,
                kek.kek.name()
            )
        })?;
        tracing::info!(kek = %kek.name, kind = kek.kind, id = kek.kek.name(), "encryption KEK checked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encryption_from(dir: &Path, toml: &str) -> Result<EncryptionConfig, String> {
        let path = dir.join("encryption.toml");
        std::fs::write(&path, toml).expect("write the test config");
        crate::config::load(Some(&path))
            .map(|c| c.encryption)
            .map_err(|e| e.to_string())
    }

    fn key_file(dir: &Path) -> PathBuf {
        let path = dir.join("kek.key");
        if !path.exists() {
            LocalKek::generate_file(&path).expect("make a key file");
        }
        path
    }

    #[test]
    fn defaults_are_off_and_dev_turns_encryption_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = EncryptionConfig::default();
        assert!(!cfg.is_enabled(false));
        assert!(cfg.is_enabled(true));
        assert_eq!(cfg.binding, BindingName(Binding::None));
        assert!(!cfg.allow_plaintext_reads);
        assert!(cfg.build(false, dir.path()).expect("off").is_none());

        std::fs::create_dir_all(dir.path().join(".dev")).expect("mkdir .dev");
        let setup = cfg.build(true, dir.path()).expect("dev").expect("on");
        let path = dir.path().join(DEV_KEY_FILE);
        assert_eq!(setup.dev_key_file.as_deref(), Some(path.as_path()));
        assert!(path.is_file());
        assert!(setup.policy.for_bucket("anything").is_on());
        // Restarted: the same key.
        let again = cfg.build(true, dir.path()).expect("dev").expect("on");
        assert_eq!(again.keks[0].kek.name(), setup.keks[0].kek.name());

        let off = EncryptionConfig {
            enabled: Some(false),
            ..EncryptionConfig::default()
        };
        assert!(off.build(true, dir.path()).expect("off").is_none());
    }

    #[test]
    fn keks_and_rules_make_the_policy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = key_file(dir.path());
        let other = dir.path().join("other.key");
        LocalKek::generate_file(&other).expect("make a key file");
        let cfg = encryption_from(
            dir.path(),
            &format!(
                "[encryption]\nenabled = true\ndefault = \"main\"\nbinding = \"bucket\"\n\
                 [[encryption.keks]]\nname = \"main\"\ntype = \"local\"\npath = {key:?}\n\
                 cache = {{ capacity = 10, ttl_secs = 60 }}\n\
                 [[encryption.keks]]\nname = \"old\"\ntype = \"local\"\npath = {other:?}\n\
                 [[encryption.buckets]]\nbucket = \"public-*\"\nencrypt = false\n\
                 [[encryption.buckets]]\nbucket = \"legacy\"\nallow_plaintext_reads = true\n\
                 binding = \"object\"\n"
            ),
        )
        .expect("load");
        let setup = cfg.build(false, dir.path()).expect("build").expect("on");
        assert_eq!(setup.keks.len(), 2);
        assert!(!setup.policy.for_bucket("public-www").is_on());
        match setup.policy.for_bucket("data") {
            BucketEncryption::On {
                binding,
                allow_plaintext_reads,
                kek,
            } => {
                assert_eq!(*binding, Binding::Bucket);
                assert!(!allow_plaintext_reads);
                assert_eq!(kek.name(), setup.keks[0].kek.name());
            }
            BucketEncryption::Off => panic!("data must be encrypted"),
        }
        match setup.policy.for_bucket("legacy") {
            BucketEncryption::On {
                binding,
                allow_plaintext_reads,
                ..
            } => {
                assert_eq!(*binding, Binding::Object);
                assert!(allow_plaintext_reads);
            }
            BucketEncryption::Off => panic!("legacy must be encrypted"),
        }
        // The unreferenced KEK still reads.
        assert!(setup.policy.kek(setup.keks[1].kek.name()).is_ok());
    }

    #[test]
    fn configuration_errors_name_the_entry() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = key_file(dir.path());
        let local = |name: &str| {
            format!("[[encryption.keks]]\nname = {name:?}\ntype = \"local\"\npath = {key:?}\n")
        };
        let on = "[encryption]\nenabled = true\n";
        let cases = [
            (
                format!("{on}default = \"nope\"\n{}", local("main")),
                "encryption.default = \"nope\" names no KEK of [[encryption.keks]] \
                 (configured: \"main\")"
                    .to_owned(),
            ),
            (
                format!("{on}{}{}", local("main"), local("main")),
                "encryption.keks[1]: the name \"main\" is already used by encryption.keks[0]"
                    .to_owned(),
            ),
            (
                format!(
                    "{on}{}[[encryption.buckets]]\nbucket = \"b\"\nkek = \"vault\"\n",
                    local("main")
                ),
                "encryption.buckets[0] (b): kek = \"vault\" names no KEK of \
                 [[encryption.keks]] (configured: \"main\")"
                    .to_owned(),
            ),
            (
                format!(
                    "{on}{}[[encryption.buckets]]\nbucket = \"b\"\n",
                    local("main")
                ),
                "encryption.buckets[0] (b): name its kek (or set encrypt = false): \
                 encryption.default is unset"
                    .to_owned(),
            ),
            (
                format!(
                    "{on}{}[[encryption.buckets]]\nbucket = \"b\"\nkek = \"main\"\n\
                     encrypt = false\n",
                    local("main")
                ),
                "encryption.buckets[0] (b): encrypt = false and a kek: remove one".to_owned(),
            ),
            (
                on.to_owned(),
                "encryption.enabled = true needs at least one [[encryption.keks]] (none is set)"
                    .to_owned(),
            ),
            (
                format!("{on}{}{}", local("main"), local("again")),
                format!(
                    "encryption.keks[1] (again) and \"main\" are the same key ({}): configure \
                     it once",
                    s3_tower::encrypt::LocalKek::from_file(&key)
                        .expect("key")
                        .name()
                ),
            ),
            (
                format!(
                    "{on}[[encryption.keks]]\nname = \"m\"\ntype = \"local\"\npath = \"{}\"\n",
                    dir.path().join("absent.key").display()
                ),
                format!(
                    "encryption.keks[0] (m, type local): cannot read the KEK file {}",
                    dir.path().join("absent.key").display()
                ),
            ),
            (
                format!(
                    "{on}[[encryption.keks]]\nname = \"v\"\ntype = \"transit\"\n\
                     address = \"http://127.0.0.1:1\"\nkey = \"k\"\n"
                ),
                "encryption.keks[0] (v, type transit): set one of token, token_env, \
                 token_file or approle (none is set)"
                    .to_owned(),
            ),
            (
                format!(
                    "{on}[[encryption.keks]]\nname = \"v\"\ntype = \"transit\"\n\
                     address = \"http://127.0.0.1:1\"\nkey = \"k\"\ntoken = \"t\"\n\
                     token_env = \"T\"\n"
                ),
                "encryption.keks[0] (v, type transit): set only one of token, token_env or \
                 token_file (token, token_env are set)"
                    .to_owned(),
            ),
            (
                format!(
                    "{on}[[encryption.keks]]\nname = \"k\"\ntype = \"kms\"\nkey_id = \"alias/a\"\n\
                     region = \"eu-west-1\"\naccess_key_id = \"AK\"\n"
                ),
                "encryption.keks[0] (k, type kms): set one of secret_access_key, \
                 secret_access_key_env or secret_access_key_file (none is set)"
                    .to_owned(),
            ),
        ];
        for (toml, expected) in cases {
            let cfg = encryption_from(dir.path(), &toml).expect("loads");
            let Err(err) = cfg.build(false, dir.path()) else {
                panic!("accepted:\n{toml}")
            };
            assert!(
                err.starts_with(&expected),
                "for\n{toml}\nexpected {expected}\ngot      {err}"
            );
        }
        for (toml, expected) in [
            (
                "[encryption]\nbinding = \"key\"\n",
                "unknown binding \"key\": expected \"none\", \"bucket\" or \"object\"",
            ),
            ("[encryption]\nenable = true\n", "unknown field `enable`"),
            (
                "[[encryption.keks]]\nname = \"a\"\ntype = \"hsm\"\n",
                "unknown variant `hsm`",
            ),
            (
                "[[encryption.keks]]\nname = \"a\"\ntype = \"local\"\npath = \"k\"\nkey = \"x\"\n",
                "unknown field `key`",
            ),
        ] {
            let err = encryption_from(dir.path(), toml).expect_err(toml);
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }
}
