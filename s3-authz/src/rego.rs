//! [`RegoAuthorizer`]: Rego policies evaluated in process by `regorus`, compiled once and
//! swapped atomically on reload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use regorus::{CompiledPolicy, Engine, Value};

use crate::authorizer::{Authorizer, Decision};
use crate::error::AuthzError;
use crate::input::AuthzInput;
use crate::policy_sources::PolicySources;

/// The rule evaluated by default: `allow` in package `s3`, as in S3 Sentinel.
pub const DEFAULT_QUERY: &str = "data.s3.allow";

/// The S3 Sentinel demo policy: `admin` may do everything; `reader` may only list buckets and
/// read objects (`ListBuckets`, `HeadBucket`, `ListObjects`, `ListObjectsV2`, `HeadObject`,
/// `GetObject`, `GetObjectTagging`).
pub const SEED_POLICY: &str = include_str!("../policies/seed.rego");

/// Evaluates a Rego rule (default [`DEFAULT_QUERY`]) with the [`AuthzInput`] as `input`.
///
/// `true` allows; `false`, an undefined result or anything but a boolean denies (the latter
/// two are logged as engine errors). The policy is compiled once; [`RegoAuthorizer::reload`]
/// compiles the sources again and swaps the new policy in atomically, keeping the old one when
/// the new one does not compile.
pub struct RegoAuthorizer {
    policy: ArcSwap<CompiledPolicy>,
    sources: PolicySources,
    query: String,
    keys: InputKeys,
}

impl std::fmt::Debug for RegoAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoAuthorizer")
            .field("sources", &self.sources)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl RegoAuthorizer {
    /// Policies given as `(name, text)` pairs, evaluating `query`.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        query: impl Into<String>,
    ) -> Result<Self, AuthzError> {
        Self::new(
            PolicySources::Inline(sources.into_iter().collect()),
            query.into(),
        )
    }

    /// Policies read from `files`, evaluating `query`; [`RegoAuthorizer::reload`] reads them
    /// again.
    pub fn from_files(
        files: impl IntoIterator<Item = PathBuf>,
        query: impl Into<String>,
    ) -> Result<Self, AuthzError> {
        Self::new(
            PolicySources::Files(files.into_iter().collect()),
            query.into(),
        )
    }

    /// The S3 Sentinel demo policy ([`SEED_POLICY`]).
    pub fn seed() -> Result<Self, AuthzError> {
        Self::from_sources(
            [("seed.rego".to_owned(), SEED_POLICY.to_owned())],
            DEFAULT_QUERY,
        )
    }

    fn new(sources: PolicySources, query: String) -> Result<Self, AuthzError> {
        let policy = compile(&sources, &query)?;
        Ok(Self {
            policy: ArcSwap::from_pointee(policy),
            sources,
            query,
            keys: InputKeys::new(),
        })
    }

    /// Compiles the sources again (re-reading files) and swaps the result in. On error the
    /// policy in force stays and the error is returned for logging.
    pub fn reload(&self) -> Result<(), AuthzError> {
        let policy = compile(&self.sources, &self.query)?;
        self.policy.store(Arc::new(policy));
        Ok(())
    }

    /// The policy files, if the policy came from files.
    pub fn files(&self) -> &[PathBuf] {
        self.sources.files()
    }

    /// Evaluates the rule on a prepared `input` value: what [`Authorizer::authorize`] does
    /// after converting the [`AuthzInput`].
    pub fn evaluate(&self, input: Value) -> Result<Decision, AuthzError> {
        let policy = self.policy.load();
        match policy.eval_with_input(input) {
            Ok(Value::Bool(true)) => Ok(Decision::Allow),
            Ok(Value::Bool(false)) => Ok(Decision::Deny),
            Ok(Value::Undefined) => Err(AuthzError::Engine(format!(
                "{} is undefined for this input",
                self.query
            ))),
            Ok(other) => Err(AuthzError::Engine(format!(
                "{} is not a boolean: {other}",
                self.query
            ))),
            Err(err) => Err(AuthzError::Engine(err.to_string())),
        }
    }
}

impl Authorizer for RegoAuthorizer {
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, AuthzError> {
        self.evaluate(self.keys.document(input))
    }

    fn engine(&self) -> &'static str {
        "rego"
    }
}

/// Parses and compiles every source with `query` as the entry point.
fn compile(sources: &PolicySources, query: &str) -> Result<CompiledPolicy, AuthzError> {
    let mut engine = Engine::new();
    let texts = sources.read()?;
    for (name, text) in texts {
        engine
            .add_policy(name.clone(), text)
            .map_err(|e| AuthzError::PolicyLoad {
                source_name: name,
                message: e.to_string(),
            })?;
    }
    engine
        .compile_with_entrypoint(&query.into())
        .map_err(|e| AuthzError::PolicyLoad {
            source_name: query.to_owned(),
            message: e.to_string(),
        })
}

/// The names of the input document's fields as Rego values, made once: a decision then
/// clones them (a reference count) instead of allocating them.
struct InputKeys {
    user: Value,
    groups: Value,
    claims: Value,
    role: Value,
    action: Value,
    iam_action: Value,
    operation: Value,
    bucket: Value,
    key: Value,
    path: Value,
    prefix: Value,
    version_id: Value,
    source: Value,
    method: Value,
    auth: Value,
    source_ip: Value,
}

impl InputKeys {
    fn new() -> Self {
        Self {
            user: Value::from("user"),
            groups: Value::from("groups"),
            claims: Value::from("claims"),
            role: Value::from("role"),
            action: Value::from("action"),
            iam_action: Value::from("iam_action"),
            operation: Value::from("operation"),
            bucket: Value::from("bucket"),
            key: Value::from("key"),
            path: Value::from("path"),
            prefix: Value::from("prefix"),
            version_id: Value::from("version_id"),
            source: Value::from("source"),
            method: Value::from("method"),
            auth: Value::from("auth"),
            source_ip: Value::from("source_ip"),
        }
    }

    /// The Rego `input` document of `input`, built directly (the same document as its JSON
    /// serialisation, without a JSON round trip on the request path).
    fn document(&self, input: &AuthzInput) -> Value {
        fn optional(s: Option<&str>) -> Value {
            s.map_or(Value::Null, Value::from)
        }
        let source = match &input.source {
            Some(src) => {
                let mut obj = Value::new_object();
                if let Ok(map) = obj.as_object_mut() {
                    map.insert(self.bucket.clone(), Value::from(src.bucket.as_str()));
                    map.insert(self.key.clone(), Value::from(src.key.as_str()));
                }
                obj
            }
            None => Value::Null,
        };
        let claims = if input.claims.is_null() {
            Value::Null
        } else {
            Value::from(input.claims.clone())
        };
        let groups = Value::from(
            input
                .groups
                .iter()
                .map(|g| Value::from(g.as_str()))
                .collect::<Vec<_>>(),
        );
        // In key order: the map is then built in one pass.
        let fields = [
            (self.action.clone(), Value::from(input.action.as_str())),
            (self.auth.clone(), Value::from(input.auth)),
            (self.bucket.clone(), optional(input.bucket.as_deref())),
            (self.claims.clone(), claims),
            (self.groups.clone(), groups),
            (
                self.iam_action.clone(),
                Value::from(input.iam_action.as_str()),
            ),
            (self.key.clone(), optional(input.key.as_deref())),
            (self.method.clone(), Value::from(input.method.as_str())),
            (
                self.operation.clone(),
                Value::from(input.operation.as_str()),
            ),
            (self.path.clone(), optional(input.path.as_deref())),
            (self.prefix.clone(), optional(input.prefix.as_deref())),
            (self.role.clone(), optional(input.role.as_deref())),
            (self.source.clone(), source),
            (self.source_ip.clone(), optional(input.source_ip.as_deref())),
            (self.user.clone(), Value::from(input.user.as_str())),
            (
                self.version_id.clone(),
                optional(input.version_id.as_deref()),
            ),
        ];
        Value::from(BTreeMap::from(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::SourceObject;

    /// The directly built document equals the JSON serialisation of the input.
    #[test]
    fn the_rego_input_is_the_json_of_the_input() {
        let input = AuthzInput {
            user: "alice".into(),
            groups: vec!["reader".into(), "ops".into()],
            claims: serde_json::json!({"email": "a@example.com", "n": 1}),
            role: Some("arn:aws:iam::000000000000:role/r".into()),
            action: "CopyObject".into(),
            iam_action: "s3:PutObject".into(),
            operation: "CopyObject".into(),
            bucket: Some("dst".into()),
            key: Some("a/b".into()),
            path: Some("dst/a/b".into()),
            prefix: None,
            version_id: None,
            source: Some(SourceObject {
                bucket: "src".into(),
                key: "c".into(),
            }),
            method: "PUT".into(),
            auth: "sigv4",
            source_ip: Some("192.0.2.1".into()),
        };
        let via_json = Value::from(serde_json::to_value(&input).unwrap());
        assert_eq!(InputKeys::new().document(&input), via_json);
    }
}
