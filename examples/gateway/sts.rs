//! `[sts]`: `AssumeRoleWithWebIdentity` on the S3 listener — roles, the session keyring, and
//! the `--dev` role.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use s3_tower::sts::{ClaimCondition, Role, Roles, SessionKey, SessionKeyring};
use serde::Deserialize;

use crate::config::load_secret;
use crate::dev_users::write_private;

/// The role `--dev` adds, assumable with the development issuer's tokens.
pub(crate) const DEV_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/s3-tower-dev";

/// `[sts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StsConfig {
    /// The account `GetCallerIdentity` names for static users.
    pub(crate) account_id: String,
    /// The session keys: the first seals, all open (rotation without downtime).
    pub(crate) keys: Vec<StsKeyConfig>,
    pub(crate) roles: Vec<StsRoleConfig>,
}

impl Default for StsConfig {
    fn default() -> Self {
        Self {
            account_id: s3_tower::sts::DEFAULT_ACCOUNT_ID.to_owned(),
            keys: Vec::new(),
            roles: Vec::new(),
        }
    }
}

/// An `[[sts.keys]]` entry: a 256-bit key (base64) sealing session tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StsKeyConfig {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) secret: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    #[serde(default)]
    pub(crate) secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for StsKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the inline key.
        f.debug_struct("StsKeyConfig")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// An `[[sts.roles]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StsRoleConfig {
    pub(crate) arn: String,
    /// Only tokens of these issuers; empty: any configured issuer.
    #[serde(default)]
    pub(crate) issuers: Vec<String>,
    /// Only tokens for these audiences; empty: any the issuer accepts.
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    #[serde(default = "default_max_session_secs")]
    pub(crate) max_session_secs: u64,
    #[serde(default = "default_true")]
    pub(crate) token_groups: bool,
    #[serde(default)]
    pub(crate) groups: Vec<String>,
    #[serde(default)]
    pub(crate) conditions: Vec<ConditionConfig>,
}

fn default_max_session_secs() -> u64 {
    3600
}

fn default_true() -> bool {
    true
}

/// A `[[sts.roles.conditions]]` entry: `claim` and exactly one of `equals` and `matches`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionConfig {
    pub(crate) claim: String,
    #[serde(default)]
    pub(crate) equals: Option<String>,
    #[serde(default)]
    pub(crate) matches: Option<String>,
}

impl ConditionConfig {
    fn condition(&self) -> Result<ClaimCondition, String> {
        if self.claim.trim().is_empty() {
            return Err("claim is empty".to_owned());
        }
        match (&self.equals, &self.matches) {
            (Some(value), None) => Ok(ClaimCondition::equals(&self.claim, value)),
            (None, Some(pattern)) => {
                ClaimCondition::matches(&self.claim, pattern).map_err(|e| e.to_string())
            }
            _ => Err(format!(
                "condition on {:?}: set exactly one of equals and matches",
                self.claim
            )),
        }
    }
}

impl StsRoleConfig {
    fn role(&self) -> Result<Role, String> {
        let mut role = Role::new(&self.arn)
            .map_err(|e| e.to_string())?
            .max_session_duration(Duration::from_secs(self.max_session_secs))
            .token_groups(self.token_groups);
        for issuer in &self.issuers {
            role = role.issuer(issuer);
        }
        for audience in &self.audiences {
            role = role.audience(audience);
        }
        for group in &self.groups {
            role = role.group(group);
        }
        for condition in &self.conditions {
            role = role.condition(condition.condition()?);
        }
        Ok(role)
    }
}

/// The STS setup of a gateway: its roles and keyring.
pub(crate) struct Sts {
    pub(crate) roles: Roles,
    pub(crate) keyring: Arc<SessionKeyring>,
    pub(crate) account_id: String,
}

impl StsConfig {
    /// The STS setup, or `None` without roles (STS calls are then refused as unknown
    /// operations). `dev`: the `--dev` data directory and issuer, adding the dev role and a
    /// session key kept in `<data-dir>/.dev/sts-session.key`. `issuers`: how many token
    /// issuers the gateway trusts; with more than one, every role must name its issuers,
    /// or the users of one could assume it with the names (subject, groups) of another's.
    pub(crate) fn build(
        &self,
        dev: Option<(&Path, &str)>,
        issuers: usize,
    ) -> Result<Option<Sts>, String> {
        if self.roles.is_empty() && dev.is_none() {
            if !self.keys.is_empty() {
                return Err("sts.keys is set but there is no [[sts.roles]]".to_owned());
            }
            return Ok(None);
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "sts.account_id {:?} is not a 12-digit account id",
                self.account_id
            ));
        }
        let mut roles = Vec::new();
        for (i, role) in self.roles.iter().enumerate() {
            if issuers > 1 && role.issuers.is_empty() {
                return Err(format!(
                    "sts.roles[{i}] ({}): set issuers: {issuers} token issuers are trusted, and \
                     a role trusting all of them would let the users of one assume it with the \
                     names of another's",
                    role.arn
                ));
            }
            roles.push(
                role.role()
                    .map_err(|e| format!("sts.roles[{i}] ({}): {e}", role.arn))?,
            );
        }
        let mut keys = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            let secret = load_secret(
                key.secret.as_deref(),
                key.secret_env.as_deref(),
                key.secret_file.as_deref(),
            )
            .map_err(|e| format!("sts.keys[{i}] ({}): {e}", key.id))?;
            keys.push(
                SessionKey::from_base64(&key.id, secret.expose())
                    .map_err(|e| format!("sts.keys[{i}] ({}): {e}", key.id))?,
            );
        }
        if let Some((data_dir, issuer)) = dev {
            roles.push(dev_role(issuer)?);
            if keys.is_empty() {
                keys.push(dev_key(data_dir)?);
            }
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or_else(|| {
            "sts.keys is empty: give at least one session key (the first seals, e.g. \
             secret_env = \"S3_TOWER_STS_KEY\" holding 32 random bytes in base64)"
                .to_owned()
        })?;
        let keyring = SessionKeyring::new(current, keys).map_err(|e| format!("sts.keys: {e}"))?;
        let roles = Roles::new(roles).map_err(|e| format!("sts.roles: {e}"))?;
        Ok(Some(Sts {
            roles,
            keyring: Arc::new(keyring),
            account_id: self.account_id.clone(),
        }))
    }
}

/// The `--dev` role: the development issuer's tokens, their groups, twelve hours at most.
fn dev_role(issuer: &str) -> Result<Role, String> {
    Ok(Role::new(DEV_ROLE_ARN)
        .map_err(|e| e.to_string())?
        .issuer(issuer)
        .max_session_duration(Duration::from_hours(12)))
}

/// The `--dev` session key, kept in `<data-dir>/.dev/sts-session.key` (mode 0600) so that
/// sessions outlive a restart.
fn dev_key(data_dir: &Path) -> Result<SessionKey, String> {
    let path = std::path::absolute(data_dir)
        .map_err(|e| e.to_string())?
        .join(".dev")
        .join("sts-session.key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(key) = SessionKey::from_base64("dev", text.trim())
    {
        return Ok(key);
    }
    let key = SessionKey::generate("dev").map_err(|e| e.to_string())?;
    write_private(&path, &format!("{}\n", key.to_base64().as_str()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> StsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn roles_keys_and_errors() {
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let cfg = config(&format!(
            "account_id = \"123456789012\"\n\
             [[keys]]\nid = \"k2\"\nsecret = \"{key}\"\n\
             [[keys]]\nid = \"k1\"\nsecret = \"{key}\"\n\
             [[roles]]\narn = \"arn:aws:iam::123456789012:role/analytics\"\n\
             issuers = [\"https://idp\"]\nmax_session_secs = 7200\ngroups = [\"g\"]\n\
             [[roles.conditions]]\nclaim = \"groups\"\nequals = \"data-eng\"\n\
             [[roles.conditions]]\nclaim = \"sub\"\nmatches = \"svc-*\"\n"
        ));
        let sts = cfg.build(None, 1).unwrap().unwrap();
        assert_eq!(sts.keyring.current_id(), "k2");
        let role = sts
            .roles
            .get("arn:aws:iam::123456789012:role/analytics")
            .unwrap();
        assert_eq!(role.max_session(), Duration::from_hours(2));
        assert!(format!("{:?}", cfg.keys).contains("secret: Some(\"..\")"));
        assert!(!format!("{:?}", cfg.keys).contains(key));

        assert!(config("").build(None, 1).unwrap().is_none());
        let errors = [
            (
                format!("[[keys]]\nid = \"k\"\nsecret = \"{key}\"\n"),
                "sts.keys is set but there is no [[sts.roles]]",
            ),
            (
                "[[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\n".to_owned(),
                "sts.keys is empty",
            ),
            (
                format!(
                    "[[keys]]\nid = \"k\"\nsecret = \"{key}\"\n\
                     [[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\n\
                     [[roles.conditions]]\nclaim = \"sub\"\n"
                ),
                "sts.roles[0] (arn:aws:iam::123456789012:role/a): condition on \"sub\": set \
                 exactly one of equals and matches",
            ),
            (
                "[[keys]]\nid = \"k\"\nsecret = \"c2hvcnQ=\"\n\
                 [[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\n"
                    .to_owned(),
                "sts.keys[0] (k):",
            ),
            (
                format!(
                    "[[keys]]\nid = \"k\"\nsecret = \"{key}\"\n\
                     [[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\nmax_session_secs = 60\n"
                ),
                "sts.roles:",
            ),
            (
                format!(
                    "account_id = \"42\"\n[[keys]]\nid = \"k\"\nsecret = \"{key}\"\n\
                     [[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\n"
                ),
                "sts.account_id \"42\" is not a 12-digit account id",
            ),
        ];
        let two_issuers = format!(
            "[[keys]]\nid = \"k\"\nsecret = \"{key}\"\n\
             [[roles]]\narn = \"arn:aws:iam::123456789012:role/a\"\n"
        );
        let err = config(&two_issuers).build(None, 2).err().unwrap();
        assert!(
            err.starts_with("sts.roles[0] (arn:aws:iam::123456789012:role/a): set issuers: 2"),
            "{err}"
        );
        let pinned = two_issuers + "issuers = [\"https://idp\"]\n";
        assert!(config(&pinned).build(None, 2).unwrap().is_some());
        for (text, expected) in errors {
            let err = config(&text).build(None, 1).err().unwrap();
            assert!(err.starts_with(expected), "{err}\nexpected: {expected}");
        }
    }

    #[test]
    fn dev_adds_its_role_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".dev")).unwrap();
        let sts = StsConfig::default()
            .build(Some((dir.path(), "http://127.0.0.1:1/dev/oidc")), 1)
            .unwrap()
            .unwrap();
        assert!(sts.roles.get(DEV_ROLE_ARN).is_some());
        let file = dir.path().join(".dev").join("sts-session.key");
        let first = std::fs::read_to_string(&file).unwrap();
        StsConfig::default()
            .build(Some((dir.path(), "http://127.0.0.1:1/dev/oidc")), 1)
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), first, "reused");
    }
}
