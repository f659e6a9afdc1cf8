//! [`Role`]: who may assume a role with a web identity token, for how long, and what the
//! session carries into the [`Principal`].

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::digest;
use globset::{Glob, GlobMatcher};
use s3_auth::jwt::claim_at;
use s3_core::Principal;
use serde_json::Value;

use crate::error::StsError;

/// The shortest maximum session duration a role may have (as AWS IAM: one hour).
pub const MIN_ROLE_SESSION: Duration = Duration::from_hours(1);
/// The longest maximum session duration a role may have (as AWS IAM: twelve hours).
pub const MAX_ROLE_SESSION: Duration = Duration::from_hours(12);

/// A condition on the validated token's claims that must hold for a role to be assumed.
///
/// The claim is named as the policy sees it: `sub` (the principal's subject), `groups` (its
/// groups), `iss`, `aud`, or an extra claim the issuer passes on (`extra_claims`), a dotted
/// path reaching into objects. A claim the token does not have fails every condition.
#[derive(Debug, Clone)]
pub enum ClaimCondition {
    /// The claim is this string (a list claim: one of its items is).
    Equals {
        /// The claim.
        claim: String,
        /// The value.
        value: String,
    },
    /// The claim matches this glob (`*`, `?`, `[...]`); a list claim: one of its items does.
    Matches {
        /// The claim.
        claim: String,
        /// The pattern as written.
        pattern: String,
        /// The compiled pattern.
        matcher: GlobMatcher,
    },
}

impl ClaimCondition {
    /// `claim` is `value` (or, for a list claim such as `groups`, contains it).
    pub fn equals(claim: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Equals {
            claim: claim.into(),
            value: value.into(),
        }
    }

    /// `claim` matches the glob `pattern` (or, for a list claim, one of its items does).
    pub fn matches(claim: impl Into<String>, pattern: impl Into<String>) -> Result<Self, StsError> {
        let pattern = pattern.into();
        let matcher = Glob::new(&pattern)
            .map_err(|e| StsError::Config(format!("invalid pattern {pattern:?}: {e}")))?
            .compile_matcher();
        Ok(Self::Matches {
            claim: claim.into(),
            pattern,
            matcher,
        })
    }

    fn claim(&self) -> &str {
        match self {
            Self::Equals { claim, .. } | Self::Matches { claim, .. } => claim,
        }
    }

    /// Whether `principal` satisfies the condition.
    fn holds(&self, principal: &Principal) -> bool {
        let test = |value: &str| match self {
            Self::Equals {
                value: expected, ..
            } => value == expected,
            Self::Matches { matcher, .. } => matcher.is_match(value),
        };
        match self.claim() {
            "sub" => test(&principal.subject),
            "groups" => principal.groups.iter().any(|g| test(g)),
            path => match claim_at(&principal.claims, path) {
                Some(Value::String(s)) => test(s),
                Some(Value::Array(items)) => items.iter().any(|item| match item {
                    Value::String(s) => test(s),
                    Value::Number(n) => test(&n.to_string()),
                    Value::Bool(b) => test(if *b { "true" } else { "false" }),
                    _ => false,
                }),
                Some(Value::Number(n)) => test(&n.to_string()),
                Some(Value::Bool(b)) => test(if *b { "true" } else { "false" }),
                _ => false,
            },
        }
    }
}

/// A role web identities may assume: its ARN, the tokens it trusts, how long its sessions
/// may last, and the groups its sessions carry.
///
/// ```
/// use std::time::Duration;
/// use s3_sts::{ClaimCondition, Role};
///
/// let role = Role::new("arn:aws:iam::123456789012:role/data-eng")?
///     .issuer("https://sso.example.com/realms/main")
///     .condition(ClaimCondition::equals("groups", "data-eng"))
///     .condition(ClaimCondition::matches("sub", "svc-*")?)
///     .max_session_duration(Duration::from_hours(4))
///     .group("data-eng-role");
/// assert_eq!(role.name(), "data-eng");
/// # Ok::<(), s3_sts::StsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Role {
    arn: String,
    account: String,
    name: String,
    id: String,
    issuers: Vec<String>,
    audiences: Vec<String>,
    conditions: Vec<ClaimCondition>,
    max_session_duration: Duration,
    token_groups: bool,
    groups: Vec<String>,
}

impl Role {
    /// The role `arn` (`arn:aws:iam::<12-digit account>:role/[path/]name`). Defaults: any
    /// configured issuer and audience, no condition, sessions of at most one hour, the
    /// token's groups carried into the session.
    pub fn new(arn: impl Into<String>) -> Result<Self, StsError> {
        let arn = arn.into();
        let invalid = || {
            StsError::Config(format!(
                "invalid role ARN {arn:?}: expected arn:aws:iam::<12-digit account>:role/<name>"
            ))
        };
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
        let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
        let path = resource.strip_prefix("role/").ok_or_else(invalid)?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let name_ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || !name_ok {
            return Err(invalid());
        }
        let (account, name) = (account.to_owned(), name.to_owned());
        let id = role_id(&arn);
        Ok(Self {
            arn,
            account,
            name,
            id,
            issuers: Vec::new(),
            audiences: Vec::new(),
            conditions: Vec::new(),
            max_session_duration: MIN_ROLE_SESSION,
            token_groups: true,
            groups: Vec::new(),
        })
    }

    /// Only tokens of this issuer (may be called several times); default: any issuer the
    /// JWT validator trusts.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Only tokens for this audience (may be called several times); default: any audience
    /// the JWT validator accepts.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// A condition every token must satisfy (all conditions must hold).
    #[must_use]
    pub fn condition(mut self, condition: ClaimCondition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// The longest session (default one hour; one to twelve hours, as in AWS IAM).
    #[must_use]
    pub fn max_session_duration(mut self, duration: Duration) -> Self {
        self.max_session_duration = duration;
        self
    }

    /// Whether sessions carry the token's groups (default true).
    #[must_use]
    pub fn token_groups(mut self, carry: bool) -> Self {
        self.token_groups = carry;
        self
    }

    /// A group every session of this role carries.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// The role's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The role's name, the last part of its ARN.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account in the role's ARN.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The role's unique id (`AROA` + 17 characters), derived from its ARN, as
    /// `AssumedRoleId` shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The longest session.
    pub fn max_session(&self) -> Duration {
        self.max_session_duration
    }

    fn check(&self) -> Result<(), StsError> {
        if !(MIN_ROLE_SESSION..=MAX_ROLE_SESSION).contains(&self.max_session_duration) {
            return Err(StsError::Config(format!(
                "role {}: max_session_duration must be between 3600 and 43200 seconds",
                self.arn
            )));
        }
        if self.groups.iter().any(String::is_empty) {
            return Err(StsError::Config(format!(
                "role {}: a fixed group is empty",
                self.arn
            )));
        }
        Ok(())
    }

    /// Whether the token behind `principal` may assume this role: its issuer and audience
    /// are the role's, and every condition holds.
    pub(crate) fn admits(&self, principal: &Principal) -> bool {
        let iss = principal.claims.get("iss").and_then(Value::as_str);
        let issuer_ok =
            self.issuers.is_empty() || iss.is_some_and(|i| self.issuers.iter().any(|x| x == i));
        let audience_ok = self.audiences.is_empty()
            || match principal.claims.get("aud") {
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|x| x == a)),
                _ => false,
            };
        issuer_ok && audience_ok && self.conditions.iter().all(|c| c.holds(principal))
    }

    /// The groups a session of `principal` carries: the token's (unless turned off), then the
    /// role's fixed groups, each once.
    pub(crate) fn session_groups(&self, principal: &Principal) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        let token = if self.token_groups {
            principal.groups.as_slice()
        } else {
            &[]
        };
        for group in token.iter().chain(&self.groups) {
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
        groups
    }
}

/// `AROA` and 17 base32 characters of the ARN's SHA-256: stable for a role, as AWS's role
/// ids are.
fn role_id(arn: &str) -> String {
    let hash = digest::digest(&digest::SHA256, arn.as_bytes());
    let encoded = data_encoding::BASE32_NOPAD.encode(hash.as_ref());
    format!("AROA{}", &encoded[..17])
}

/// The roles of an STS endpoint, by ARN.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    by_arn: HashMap<String, Role>,
}

impl Roles {
    /// The roles; an ARN given twice or a role with an out-of-range session duration is a
    /// configuration error.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Result<Self, StsError> {
        let mut by_arn = HashMap::new();
        for role in roles {
            role.check()?;
            if by_arn.contains_key(&role.arn) {
                return Err(StsError::Config(format!(
                    "role {} is configured twice",
                    role.arn
                )));
            }
            by_arn.insert(role.arn.clone(), role);
        }
        Ok(Self { by_arn })
    }

    /// The role of `arn`.
    pub fn get(&self, arn: &str) -> Option<&Role> {
        self.by_arn.get(arn)
    }

    /// How many roles there are.
    pub fn len(&self) -> usize {
        self.by_arn.len()
    }

    /// Whether there is no role.
    pub fn is_empty(&self) -> bool {
        self.by_arn.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use s3_core::AuthMethod;
    use serde_json::json;

    use super::*;

    fn principal(subject: &str, groups: &[&str], claims: Value) -> Principal {
        Principal {
            subject: subject.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            claims,
            auth: AuthMethod::Jwt,
            session: None,
        }
    }

    #[test]
    fn arns_are_checked() {
        let role = Role::new("arn:aws:iam::000000000000:role/team/s3-tower-dev").unwrap();
        assert_eq!(role.name(), "s3-tower-dev");
        assert_eq!(role.account(), "000000000000");
        assert!(role.id().starts_with("AROA") && role.id().len() == 21);
        assert_eq!(
            role.id(),
            Role::new(role.arn()).unwrap().id(),
            "stable per ARN"
        );
        for bad in [
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::000000000000:user/x",
            "arn:aws:sts::000000000000:role/x",
            "arn:aws:iam::000000000000:role/",
            "arn:aws:iam::000000000000:role/a b",
            "role/x",
        ] {
            assert!(matches!(Role::new(bad), Err(StsError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn conditions_issuers_and_audiences() {
        let role = Role::new("arn:aws:iam::000000000000:role/r")
            .unwrap()
            .issuer("https://idp")
            .audience("s3")
            .condition(ClaimCondition::equals("groups", "data-eng"))
            .condition(ClaimCondition::matches("sub", "svc-*").unwrap())
            .condition(ClaimCondition::equals("tenant.id", "t1"));
        let claims = json!({"iss": "https://idp", "aud": ["x", "s3"], "tenant": {"id": "t1"}});
        let ok = principal("svc-etl", &["data-eng"], claims.clone());
        assert!(role.admits(&ok));
        assert!(!role.admits(&principal("alice", &["data-eng"], claims.clone())));
        assert!(!role.admits(&principal("svc-etl", &["data"], claims.clone())));
        let mut other = claims.clone();
        other["iss"] = json!("https://other");
        assert!(!role.admits(&principal("svc-etl", &["data-eng"], other)));
        let mut other = claims.clone();
        other["aud"] = json!("x");
        assert!(!role.admits(&principal("svc-etl", &["data-eng"], other)));
        let mut other = claims;
        other["tenant"] = json!({"id": "t2"});
        assert!(!role.admits(&principal("svc-etl", &["data-eng"], other)));
    }

    #[test]
    fn session_groups_and_limits() {
        let role = Role::new("arn:aws:iam::000000000000:role/r")
            .unwrap()
            .group("role-group")
            .group("a");
        let p = principal("u", &["a", "b"], Value::Null);
        assert_eq!(role.session_groups(&p), ["a", "b", "role-group"]);
        let role = role.token_groups(false);
        assert_eq!(role.session_groups(&p), ["role-group", "a"]);

        let long = Role::new("arn:aws:iam::000000000000:role/r")
            .unwrap()
            .max_session_duration(Duration::from_hours(13));
        assert!(matches!(Roles::new([long]), Err(StsError::Config(_))));
        let a = Role::new("arn:aws:iam::000000000000:role/r").unwrap();
        assert!(matches!(
            Roles::new([a.clone(), a]),
            Err(StsError::Config(_))
        ));
    }
}
