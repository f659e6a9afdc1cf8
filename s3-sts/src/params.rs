//! The parameters of an STS call, from a form body or a query string, checked as AWS checks
//! them.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::error::StsError;

/// The STS API version every call must name.
pub const STS_VERSION: &str = "2011-06-15";

/// The shortest session a caller may ask for (`DurationSeconds`).
pub const MIN_DURATION: Duration = Duration::from_mins(15);
/// The longest session a caller may ask for (a role may allow less).
pub const MAX_DURATION: Duration = Duration::from_hours(12);
/// The session length when `DurationSeconds` is not given.
pub const DEFAULT_DURATION: Duration = Duration::from_hours(1);

/// The actions the endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    AssumeRoleWithWebIdentity,
    GetCallerIdentity,
}

/// The longest `Policy`, in characters (AWS's length constraint on the parameter).
pub(crate) const MAX_POLICY_LEN: usize = 2048;

/// The parameters whose values are live credentials, never printed.
const SECRET_PARAMETERS: [&str; 2] = ["WebIdentityToken", "X-Amz-Security-Token"];

/// What `Debug` prints in place of a credential.
const REDACTED: &str = "<redacted>";

/// Every parameter of a call, each given once.
///
/// `Debug` redacts the web identity token and a presigned call's session token.
pub(crate) struct Params(HashMap<String, String>);

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a HashMap<String, String>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(name, value)| {
                        let value = if SECRET_PARAMETERS.contains(&name.as_str()) {
                            REDACTED
                        } else {
                            value.as_str()
                        };
                        (name, value)
                    }))
                    .finish()
            }
        }
        f.debug_tuple("Params").field(&Redacted(&self.0)).finish()
    }
}

impl Params {
    /// Parses the `application/x-www-form-urlencoded` pairs of `sources` (the query, then
    /// the body); a parameter given twice, in one source or across both, is refused.
    pub(crate) fn parse<'a>(sources: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, StsError> {
        let mut map = HashMap::new();
        for source in sources {
            for (name, value) in form_urlencoded::parse(source) {
                if map
                    .insert(name.clone().into_owned(), value.into_owned())
                    .is_some()
                {
                    return Err(StsError::MalformedRequest(format!(
                        "the parameter {} is given more than once",
                        truncate(&name)
                    )));
                }
            }
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &'static str) -> Result<&str, StsError> {
        self.get(name).ok_or(StsError::MissingParameter(name))
    }

    /// The action, after checking `Version`, and that no parameter outside `allowed` (plus
    /// `Action` and `Version`) is given.
    pub(crate) fn action(&self) -> Result<Action, StsError> {
        let action = match self.required("Action")? {
            "AssumeRoleWithWebIdentity" => Action::AssumeRoleWithWebIdentity,
            "GetCallerIdentity" => Action::GetCallerIdentity,
            other => return Err(StsError::InvalidAction(truncate(other))),
        };
        let version = self.required("Version")?;
        if version != STS_VERSION {
            return Err(StsError::InvalidVersion(truncate(version)));
        }
        let allowed: &[&str] = match action {
            Action::AssumeRoleWithWebIdentity => &[
                "RoleArn",
                "RoleSessionName",
                "WebIdentityToken",
                "DurationSeconds",
                "Policy",
                "ProviderId",
            ],
            Action::GetCallerIdentity => &[],
        };
        // A presigned GetCallerIdentity carries its signature in the query.
        let signature = |name: &str| name.starts_with("X-Amz-");
        if let Some(unknown) = self.0.keys().find(|name| {
            !matches!(name.as_str(), "Action" | "Version")
                && !allowed.contains(&name.as_str())
                && !signature(name)
        }) {
            return Err(StsError::InvalidParameterValue(format!(
                "the parameter {} is not supported by this endpoint",
                truncate(unknown)
            )));
        }
        Ok(action)
    }

    /// The checked parameters of `AssumeRoleWithWebIdentity`.
    pub(crate) fn assume_role(&self) -> Result<AssumeRoleParams, StsError> {
        if self.get("ProviderId").is_some() {
            return Err(StsError::InvalidParameterValue(
                "ProviderId is not supported: this endpoint accepts OpenID Connect ID tokens only"
                    .to_owned(),
            ));
        }
        let role_arn = self.required("RoleArn")?;
        if !(20..=2048).contains(&role_arn.chars().count()) {
            return Err(StsError::Validation {
                parameter: "roleArn",
                constraint: "Member must have length between 20 and 2048",
            });
        }
        let session_name = self.required("RoleSessionName")?;
        if !(2..=64).contains(&session_name.chars().count()) {
            return Err(StsError::Validation {
                parameter: "roleSessionName",
                constraint: "Member must have length between 2 and 64",
            });
        }
        if !session_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        {
            return Err(StsError::Validation {
                parameter: "roleSessionName",
                constraint: "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            });
        }
        // Token files often end with a newline, which SDKs send along (botocore does).
        let token = self.required("WebIdentityToken")?.trim_ascii();
        if !(4..=20_000).contains(&token.len()) {
            return Err(StsError::Validation {
                parameter: "webIdentityToken",
                constraint: "Member must have length between 4 and 20000",
            });
        }
        let duration = match self.get("DurationSeconds") {
            None => None,
            Some(value) => {
                let seconds: u64 = value.parse().map_err(|_| StsError::Validation {
                    parameter: "durationSeconds",
                    constraint: "Member must be a number",
                })?;
                let duration = Duration::from_secs(seconds);
                if !(MIN_DURATION..=MAX_DURATION).contains(&duration) {
                    return Err(StsError::Validation {
                        parameter: "durationSeconds",
                        constraint: "Member must have value between 900 and 43200",
                    });
                }
                Some(duration)
            }
        };
        let policy = self.get("Policy");
        if let Some(policy) = policy {
            check_policy(policy)?;
        }
        Ok(AssumeRoleParams {
            role_arn: role_arn.to_owned(),
            session_name: session_name.to_owned(),
            token: token.to_owned(),
            duration,
            policy: policy.map(str::to_owned),
        })
    }
}

/// `Policy` within AWS's constraints on the parameter, checked before it is parsed: 1 to
/// [`MAX_POLICY_LEN`] characters of `[\u0009\u000A\u000D\u0020-\u00FF]`.
fn check_policy(policy: &str) -> Result<(), StsError> {
    if policy.is_empty() {
        return Err(StsError::Validation {
            parameter: "policy",
            constraint: "Member must have length greater than or equal to 1",
        });
    }
    // Bounded before counting: a longer policy is refused whatever its characters.
    if policy.len() > MAX_POLICY_LEN * 4 || policy.chars().count() > MAX_POLICY_LEN {
        return Err(StsError::Validation {
            parameter: "policy",
            constraint: "Member must have length less than or equal to 2048",
        });
    }
    if !policy
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}'))
    {
        return Err(StsError::Validation {
            parameter: "policy",
            constraint: "Member must satisfy regular expression pattern: \
                         [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        });
    }
    Ok(())
}

/// `AssumeRoleWithWebIdentity`'s parameters, each within AWS's constraints.
///
/// `Debug` redacts the web identity token.
pub(crate) struct AssumeRoleParams {
    pub(crate) role_arn: String,
    pub(crate) session_name: String,
    pub(crate) token: String,
    pub(crate) duration: Option<Duration>,
    pub(crate) policy: Option<String>,
}

impl fmt::Debug for AssumeRoleParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleParams")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("token", &REDACTED)
            .field("duration", &self.duration)
            .field("policy", &self.policy)
            .finish()
    }
}

/// An attacker-chosen string, cut short before it reaches a message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(form: &str) -> Params {
        Params::parse([form.as_bytes()]).unwrap()
    }

    const BASE: &str = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15\
        &RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fr&RoleSessionName=s1\
        &WebIdentityToken=eyJ.a.b%0A";

    #[test]
    fn a_complete_call_parses() {
        let p = params(&format!("{BASE}&DurationSeconds=900&Policy=%7B%7D"));
        assert_eq!(p.action().unwrap(), Action::AssumeRoleWithWebIdentity);
        let a = p.assume_role().unwrap();
        assert_eq!(a.role_arn, "arn:aws:iam::000000000000:role/r");
        assert_eq!(a.session_name, "s1");
        assert_eq!(a.token, "eyJ.a.b");
        assert_eq!(a.duration, Some(Duration::from_mins(15)));
        assert_eq!(a.policy.as_deref(), Some("{}"));
    }

    #[test]
    fn refusals_name_the_parameter() {
        let cases: &[(&str, StsError)] = &[
            ("Version=2011-06-15", StsError::MissingParameter("Action")),
            (
                "Action=AssumeRole&Version=2011-06-15",
                StsError::InvalidAction("AssumeRole".into()),
            ),
            (
                "Action=GetCallerIdentity&Version=2010-01-01",
                StsError::InvalidVersion("2010-01-01".into()),
            ),
            (
                "Action=GetCallerIdentity",
                StsError::MissingParameter("Version"),
            ),
        ];
        for (form, expected) in cases {
            assert_eq!(&params(form).action().unwrap_err(), expected, "{form}");
        }
        let err = |form: String| params(&form).assume_role().unwrap_err();
        assert!(matches!(
            err(format!("{BASE}&DurationSeconds=899")),
            StsError::Validation {
                parameter: "durationSeconds",
                ..
            }
        ));
        assert!(matches!(
            err(format!("{BASE}&DurationSeconds=43201")),
            StsError::Validation {
                parameter: "durationSeconds",
                ..
            }
        ));
        assert!(matches!(
            err(format!("{BASE}&DurationSeconds=1h")),
            StsError::Validation {
                parameter: "durationSeconds",
                ..
            }
        ));
        assert!(matches!(
            err(BASE.replace("RoleSessionName=s1", "RoleSessionName=s")),
            StsError::Validation {
                parameter: "roleSessionName",
                ..
            }
        ));
        assert!(matches!(
            err(BASE.replace("RoleSessionName=s1", "RoleSessionName=a%20b")),
            StsError::Validation {
                parameter: "roleSessionName",
                ..
            }
        ));
        assert!(matches!(
            err(BASE.replace(
                "RoleSessionName=s1",
                &format!("RoleSessionName={}", "a".repeat(65))
            )),
            StsError::Validation {
                parameter: "roleSessionName",
                ..
            }
        ));
        assert!(matches!(
            err(format!("{BASE}&ProviderId=www.amazon.com")),
            StsError::InvalidParameterValue(_)
        ));
        assert_eq!(
            err(BASE.replace("&WebIdentityToken=eyJ.a.b%0A", "")),
            StsError::MissingParameter("WebIdentityToken")
        );
        assert!(matches!(
            params(&format!("{BASE}&PolicyArns.member.1.arn=x")).action(),
            Err(StsError::InvalidParameterValue(_))
        ));
        assert!(matches!(
            Params::parse([BASE.as_bytes(), b"RoleSessionName=other"]),
            Err(StsError::MalformedRequest(_))
        ));
    }

    #[test]
    fn policies_are_checked_before_parsing() {
        let err = |policy: &str| {
            let form = form_urlencoded::Serializer::new(BASE.to_owned())
                .append_pair("Policy", policy)
                .finish();
            params(&form).assume_role().unwrap_err()
        };
        // Whitespace counts: 3000 characters, most of them padding.
        let padded = format!("{{{}}}", " ".repeat(2998));
        assert_eq!(padded.chars().count(), 3000);
        assert_eq!(
            err(&padded),
            StsError::Validation {
                parameter: "policy",
                constraint: "Member must have length less than or equal to 2048",
            }
        );
        assert_eq!(
            err(""),
            StsError::Validation {
                parameter: "policy",
                constraint: "Member must have length greater than or equal to 1",
            }
        );
        let pattern = StsError::Validation {
            parameter: "policy",
            constraint: "Member must satisfy regular expression pattern: \
                         [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        };
        for bad in ["{\u{0}}", "{\u{1F}}", "{\"a\":\"\u{100}\"}", "{\u{1F600}}"] {
            assert_eq!(err(bad), pattern, "{bad:?}");
        }
        // At the limit, and every allowed character, pass.
        let ok = |policy: &str| {
            let form = form_urlencoded::Serializer::new(BASE.to_owned())
                .append_pair("Policy", policy)
                .finish();
            params(&form).assume_role().unwrap().policy.unwrap()
        };
        let at_limit = format!("{{{}}}", " ".repeat(2046));
        assert_eq!(ok(&at_limit), at_limit);
        assert_eq!(ok("{\t\n\r \u{FF}~}"), "{\t\n\r \u{FF}~}");
        // 2048 two-byte characters are 2048 characters.
        let wide = "\u{E9}".repeat(2048);
        assert_eq!(ok(&wide), wide);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl";
        let form = BASE.replace("eyJ.a.b%0A", token) + "&Policy=%7B%7D&X-Amz-Security-Token=sess";
        let p = params(&form);
        let shown = format!("{p:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains("sess\""), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("RoleSessionName"),
            "{shown}"
        );
        let shown = format!(
            "{:?}",
            params(&BASE.replace("eyJ.a.b%0A", token))
                .assume_role()
                .unwrap()
        );
        assert!(!shown.contains(token), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("s1"),
            "{shown}"
        );
        let with_policy = params(&format!(
            "{}&Policy=%7B%7D",
            BASE.replace("eyJ.a.b%0A", token)
        ));
        let shown = format!("{:?}", with_policy.assume_role().unwrap());
        assert!(!shown.contains(token) && shown.contains("{}"), "{shown}");
    }
}
