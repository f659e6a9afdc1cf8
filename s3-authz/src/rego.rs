//! [`RegoAuthorizer`]: Rego policies evaluated in process by `regorus`, compiled once and
//! swapped atomically on reload.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use regorus::{CompiledPolicy, Engine, Value};

use crate::authorizer::{Authorizer, Decision};
use crate::error::AuthzError;
use crate::input::AuthzInput;

/// The rule evaluated by default: `allow` in package `s3`, as in S3 Sentinel.
pub const DEFAULT_QUERY: &str = "data.s3.allow";

/// The S3 Sentinel demo policy: `admin` may do everything; `reader` may only list buckets and
/// read objects (`ListBuckets`, `HeadBucket`, `ListObjects`, `ListObjectsV2`, `HeadObject`,
/// `GetObject`, `GetObjectTagging`).
pub const SEED_POLICY: &str = include_str!("../policies/seed.rego");

/// Where the policy text comes from, so that it can be read again on reload.
#[derive(Debug, Clone)]
enum Sources {
    Files(Vec<PathBuf>),
    Inline(Vec<(String, String)>),
}

/// Evaluates a Rego rule (default [`DEFAULT_QUERY`]) with the [`AuthzInput`] as `input`.
///
/// `true` allows; `false`, an undefined result or anything but a boolean denies (the latter
/// two are logged as engine errors). The policy is compiled once; [`RegoAuthorizer::reload`]
/// compiles the sources again and swaps the new policy in atomically, keeping the old one when
/// the new one does not compile.
pub struct RegoAuthorizer {
    policy: ArcSwap<CompiledPolicy>,
    sources: Sources,
    query: String,
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
        Self::new(Sources::Inline(sources.into_iter().collect()), query.into())
    }

    /// Policies read from `files`, evaluating `query`; [`RegoAuthorizer::reload`] reads them
    /// again.
    pub fn from_files(
        files: impl IntoIterator<Item = PathBuf>,
        query: impl Into<String>,
    ) -> Result<Self, AuthzError> {
        Self::new(Sources::Files(files.into_iter().collect()), query.into())
    }

    /// The S3 Sentinel demo policy ([`SEED_POLICY`]).
    pub fn seed() -> Result<Self, AuthzError> {
        Self::from_sources(
            [("seed.rego".to_owned(), SEED_POLICY.to_owned())],
            DEFAULT_QUERY,
        )
    }

    fn new(sources: Sources, query: String) -> Result<Self, AuthzError> {
        let policy = compile(&sources, &query)?;
        Ok(Self {
            policy: ArcSwap::from_pointee(policy),
            sources,
            query,
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
        match &self.sources {
            Sources::Files(files) => files,
            Sources::Inline(_) => &[],
        }
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
        self.evaluate(rego_input(input))
    }

    fn engine(&self) -> &'static str {
        "rego"
    }
}

/// Parses and compiles every source with `query` as the entry point.
fn compile(sources: &Sources, query: &str) -> Result<CompiledPolicy, AuthzError> {
    let mut engine = Engine::new();
    let texts: Vec<(String, String)> = match sources {
        Sources::Inline(texts) => texts.clone(),
        Sources::Files(files) => files
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map(|text| (path.display().to_string(), text))
                    .map_err(|e| AuthzError::PolicyLoad {
                        source_name: path.display().to_string(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    if texts.is_empty() {
        return Err(AuthzError::PolicyLoad {
            source_name: "(none)".to_owned(),
            message: "no policy given".to_owned(),
        });
    }
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

/// The Rego `input` document of `input`, built directly (the same document as its JSON
/// serialisation, without a JSON round trip on the request path).
fn rego_input(input: &AuthzInput) -> Value {
    fn text(s: &str) -> Value {
        Value::from(s)
    }
    fn optional(s: Option<&str>) -> Value {
        s.map_or(Value::Null, Value::from)
    }
    let mut doc = Value::new_object();
    let source = match &input.source {
        Some(src) => {
            let mut obj = Value::new_object();
            if let Ok(map) = obj.as_object_mut() {
                map.insert(text("bucket"), text(&src.bucket));
                map.insert(text("key"), text(&src.key));
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
    if let Ok(map) = doc.as_object_mut() {
        map.insert(text("user"), text(&input.user));
        map.insert(
            text("groups"),
            Value::from(input.groups.iter().map(|g| text(g)).collect::<Vec<_>>()),
        );
        map.insert(text("claims"), claims);
        map.insert(text("role"), optional(input.role.as_deref()));
        map.insert(text("action"), text(&input.action));
        map.insert(text("iam_action"), text(&input.iam_action));
        map.insert(text("operation"), text(&input.operation));
        map.insert(text("bucket"), optional(input.bucket.as_deref()));
        map.insert(text("key"), optional(input.key.as_deref()));
        map.insert(text("path"), optional(input.path.as_deref()));
        map.insert(text("prefix"), optional(input.prefix.as_deref()));
        map.insert(text("version_id"), optional(input.version_id.as_deref()));
        map.insert(text("source"), source);
        map.insert(text("method"), text(&input.method));
        map.insert(text("auth"), text(input.auth));
        map.insert(text("source_ip"), optional(input.source_ip.as_deref()));
    }
    doc
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
        assert_eq!(rego_input(&input), via_json);
    }
}
