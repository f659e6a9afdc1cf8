//! [`CedarAuthorizer`]: Cedar policies evaluated in process by `cedar-policy`, validated
//! against the S3 schema ([`CEDAR_SCHEMA`]) when loaded and swapped atomically on reload.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use s3_core::S3Operation;

use crate::authorizer::{Authorizer, Decision};
use crate::error::AuthzError;
use crate::input::AuthzInput;
use crate::policy_sources::PolicySources;

/// The S3 Sentinel demo policy in Cedar: `admin` may do everything; `reader` may only list
/// buckets and read objects (`ListBuckets`, `HeadBucket`, `ListObjects`, `ListObjectsV2`,
/// `HeadObject`, `GetObject`, `GetObjectTagging`). It decides exactly as
/// [`SEED_POLICY`](crate::SEED_POLICY) does.
pub const SEED_CEDAR_POLICY: &str = include_str!("../policies/seed.cedar");

/// The Cedar schema every policy of a [`CedarAuthorizer`] is validated against (strict
/// mode), generated from [`S3Operation::ALL`] so that it never drifts from the operations the
/// gateway classifies (`policies/s3.cedarschema` is a copy, checked by a test).
///
/// Namespace `S3`:
///
/// - entity types `User in [Group]`, `Group`, `Bucket` and `Object in [Bucket]`, the latter
///   with attributes `bucket` and `key` (policies reading them need `resource is S3::Object`,
///   since every action applies to buckets and objects);
/// - one action per operation, named as the operation (`S3::Action::"GetObject"`), applying
///   to principal `User`, resources `Bucket` and `Object`, with the context below;
/// - action groups decided by the verb of the operation's IAM action:
///   `S3::Action::"list"` holds the operations governed by an `s3:List*` action (`ListBuckets`,
///   `HeadBucket`, `ListObjects`, `ListObjectsV2`, `ListObjectVersions`,
///   `ListMultipartUploads`, `ListParts`), `S3::Action::"read"` those governed by an
///   `s3:Get*` action (every `Get*`, `HeadObject`, `SelectObjectContent` and the
///   `ListBucket*Configurations`), and `S3::Action::"write"` all others (`Put*`, `Delete*`,
///   `Create*`, `CopyObject`, the multipart upload writes, `RestoreObject`);
/// - the context record: `operation`, `iam_action`, `method` and `auth` (always present),
///   `prefix`, `version_id`, `source_bucket`, `source_key`, `source_ip` and `role` (optional:
///   test them with `context has prefix`).
pub static CEDAR_SCHEMA: LazyLock<String> = LazyLock::new(schema_text);

/// The id of the service resource (`ListBuckets`): `S3::Bucket::"*"`. No bucket can have
/// this name.
pub(crate) const SERVICE_BUCKET: &str = "*";

/// The Cedar schema text generated from [`S3Operation::ALL`].
fn schema_text() -> String {
    let mut out = String::from(
        "// The S3 Cedar schema of s3-authz, generated from s3_core::S3Operation::ALL\n\
         // (s3_authz::CEDAR_SCHEMA). Do not edit: a test checks this copy.\n\
         namespace S3 {\n\
         \x20   entity Group;\n\
         \x20   entity User in [Group];\n\
         \x20   entity Bucket;\n\
         \x20   entity Object in [Bucket] {\n\
         \x20       bucket: String,\n\
         \x20       key: String,\n\
         \x20   };\n\
         \n\
         \x20   type RequestContext = {\n\
         \x20       operation: String,\n\
         \x20       iam_action: String,\n\
         \x20       method: String,\n\
         \x20       auth: String,\n\
         \x20       prefix?: String,\n\
         \x20       version_id?: String,\n\
         \x20       source_bucket?: String,\n\
         \x20       source_key?: String,\n\
         \x20       source_ip?: String,\n\
         \x20       role?: String,\n\
         \x20   };\n\
         \n\
         \x20   // Action groups, by the verb of the IAM action: s3:List* -> list,\n\
         \x20   // s3:Get* -> read, anything else -> write.\n\
         \x20   action list, read, write;\n\
         \n",
    );
    for op in S3Operation::ALL {
        let _ = writeln!(
            out,
            "    action \"{}\" in [{}] appliesTo {{ principal: [User], resource: [Bucket, Object], context: RequestContext }};",
            op.name(),
            action_group(*op),
        );
    }
    out.push_str("}\n");
    out
}

/// The action group of `op`: `list`, `read` or `write`, by the verb of its IAM action.
fn action_group(op: S3Operation) -> &'static str {
    let verb = op
        .iam_action()
        .and_then(|a| a.strip_prefix("s3:"))
        .unwrap_or_default();
    if verb.starts_with("List") {
        "list"
    } else if verb.starts_with("Get") {
        "read"
    } else {
        "write"
    }
}

/// The entity type names, parsed once.
struct Names {
    user: EntityTypeName,
    group: EntityTypeName,
    bucket: EntityTypeName,
    object: EntityTypeName,
}

impl Names {
    fn new() -> Result<Self, AuthzError> {
        let parse = |name: &str| {
            EntityTypeName::from_str(name).map_err(|e| AuthzError::PolicyLoad {
                source_name: "schema".to_owned(),
                message: e.to_string(),
            })
        };
        Ok(Self {
            user: parse("S3::User")?,
            group: parse("S3::Group")?,
            bucket: parse("S3::Bucket")?,
            object: parse("S3::Object")?,
        })
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }
}

/// Evaluates Cedar policies, validated against [`CEDAR_SCHEMA`], for each [`AuthzInput`]:
///
/// - principal `S3::User::"<user>"`, in `S3::Group::"<group>"` for each of its groups;
/// - action `S3::Action::"<action>"` (the operation, or `GetObject` for the source of a copy
///   and `DeleteObject` for each key of a `DeleteObjects`);
/// - resource `S3::Object::"<bucket>/<key>"` in `S3::Bucket::"<bucket>"` for an object,
///   `S3::Bucket::"<bucket>"` for a bucket (also the main resource of `DeleteObjects`), and
///   `S3::Bucket::"*"` for the service (`ListBuckets`);
/// - context: see [`CEDAR_SCHEMA`] (`source_bucket`/`source_key` name the object a copy
///   reads, in the destination's request).
///
/// Cedar's `Allow` allows and `Deny` denies (no policy applying is a deny). A request the
/// schema refuses (an action it does not know) or any policy that errors during evaluation
/// is an [`AuthzError::Engine`], which the layer turns into a denial. Policies are parsed and
/// validated once (strict mode; a parse or validation error is [`AuthzError::PolicyLoad`]);
/// [`CedarAuthorizer::reload`] does it again and swaps the new policies in atomically,
/// keeping the old ones on error.
pub struct CedarAuthorizer {
    policies: ArcSwap<PolicySet>,
    sources: PolicySources,
    schema: Schema,
    /// The actions of the schema a request may name (the operations), by name, each with
    /// the entity store holding its entity (in its groups), made once: a request's entities
    /// are added to its action's store.
    actions: HashMap<String, (EntityUid, Entities)>,
    names: Names,
    authorizer: cedar_policy::Authorizer,
}

impl std::fmt::Debug for CedarAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CedarAuthorizer")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl CedarAuthorizer {
    /// Policies given as `(name, text)` pairs.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, AuthzError> {
        Self::new(PolicySources::Inline(sources.into_iter().collect()))
    }

    /// Policies read from `files`; [`CedarAuthorizer::reload`] reads them again.
    pub fn from_files(files: impl IntoIterator<Item = PathBuf>) -> Result<Self, AuthzError> {
        Self::new(PolicySources::Files(files.into_iter().collect()))
    }

    /// The S3 Sentinel demo policy ([`SEED_CEDAR_POLICY`]).
    pub fn seed() -> Result<Self, AuthzError> {
        Self::from_sources([("seed.cedar".to_owned(), SEED_CEDAR_POLICY.to_owned())])
    }

    fn new(sources: PolicySources) -> Result<Self, AuthzError> {
        let schema = parse_schema()?;
        let policies = load(&sources, &schema)?;
        let names = Names::new()?;
        // The actions a request may name: those applying to users (every operation; not the
        // action groups, which apply to nothing).
        let requestable: HashSet<EntityUid> = schema
            .request_envs()
            .filter(|env| *env.principal() == names.user)
            .map(|env| env.action().clone())
            .collect();
        let actions = schema
            .action_entities()
            .map_err(|e| AuthzError::PolicyLoad {
                source_name: "s3.cedarschema".to_owned(),
                message: e.to_string(),
            })?
            .into_iter()
            .filter(|action| requestable.contains(&action.uid()))
            .map(|action| {
                let uid = action.uid();
                let name = uid.id().unescaped().to_owned();
                Entities::from_entities([action], None)
                    .map(|store| (name, (uid, store)))
                    .map_err(|e| AuthzError::PolicyLoad {
                        source_name: "s3.cedarschema".to_owned(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            policies: ArcSwap::from_pointee(policies),
            sources,
            schema,
            actions,
            names,
            authorizer: cedar_policy::Authorizer::new(),
        })
    }

    /// Parses and validates the sources again (re-reading files) and swaps the result in. On
    /// error the policies in force stay and the error is returned for logging.
    pub fn reload(&self) -> Result<(), AuthzError> {
        let policies = load(&self.sources, &self.schema)?;
        self.policies.store(Arc::new(policies));
        Ok(())
    }

    /// The policy files, if the policies came from files.
    pub fn files(&self) -> &[PathBuf] {
        self.sources.files()
    }

    /// The parsed schema ([`CEDAR_SCHEMA`]).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Cedar request and entities of `input`.
    ///
    /// Both are made here to the schema's shape, so neither is validated against it again
    /// (a cost paid on every decision otherwise): the principal is always an
    /// `S3::User`, the resource an `S3::Bucket` or `S3::Object` with its two string
    /// attributes, the context a record of strings the schema declares — all of which every
    /// action of the schema applies to. What remains to check is the action: one the schema
    /// does not declare is an error, as the schema-validating `Request::new` would make it
    /// (the test `fast_requests_pass_schema_validation` holds this to the validator).
    ///
    /// Only the entities a decision can read are made: the principal (its groups as parents),
    /// the object (its bucket as parent) and the action (its groups as parents, in a store
    /// made once per action). Groups and buckets have neither attributes nor parents in the
    /// schema, so a policy learns nothing more from their entities than from their ids, which
    /// the `in` tests compare; leaving them out, and adding the others to the action's store,
    /// leaves Cedar two entities to close the hierarchy of on each decision instead of five.
    fn request(&self, input: &AuthzInput) -> Result<(Request, Entities), AuthzError> {
        let names = &self.names;
        let engine = |e: &dyn std::fmt::Display| AuthzError::Engine(e.to_string());

        let (action, action_store) = self.actions.get(&input.action).ok_or_else(|| {
            AuthzError::Engine(format!(
                "request's action `S3::Action::{:?}` is not declared in the schema",
                input.action
            ))
        })?;

        let groups: HashSet<EntityUid> = input
            .groups
            .iter()
            .map(|g| Names::uid(&names.group, g))
            .collect();
        let principal = Names::uid(&names.user, &input.user);
        let mut entities = Vec::with_capacity(2);
        entities.push(Entity::new_no_attrs(principal.clone(), groups));

        let bucket = Names::uid(
            &names.bucket,
            input.bucket.as_deref().unwrap_or(SERVICE_BUCKET),
        );
        let resource = match (&input.bucket, &input.key) {
            (Some(b), Some(k)) => {
                let object = Names::uid(&names.object, &format!("{b}/{k}"));
                let attrs = HashMap::from([
                    (
                        "bucket".to_owned(),
                        RestrictedExpression::new_string(b.clone()),
                    ),
                    (
                        "key".to_owned(),
                        RestrictedExpression::new_string(k.clone()),
                    ),
                ]);
                entities.push(
                    Entity::new(object.clone(), attrs, HashSet::from([bucket]))
                        .map_err(|e| engine(&e))?,
                );
                object
            }
            _ => bucket,
        };
        let context = Self::context(input)?;
        let request = Request::new(principal, action.clone(), resource, context, None)
            .map_err(|e| engine(&e))?;
        // Added to the action's store, Cedar closes the hierarchy of the new entities only.
        let entities = action_store
            .clone()
            .add_entities(entities, None)
            .map_err(|e| engine(&e))?;
        Ok((request, entities))
    }

    /// The context record of `input` (see [`CEDAR_SCHEMA`]).
    fn context(input: &AuthzInput) -> Result<Context, AuthzError> {
        let mut pairs = vec![
            ("operation", Some(input.operation.as_str())),
            ("iam_action", Some(input.iam_action.as_str())),
            ("method", Some(input.method.as_str())),
            ("auth", Some(input.auth)),
            ("prefix", input.prefix.as_deref()),
            ("version_id", input.version_id.as_deref()),
            ("source_ip", input.source_ip.as_deref()),
            ("role", input.role.as_deref()),
        ];
        if let Some(src) = &input.source {
            pairs.push(("source_bucket", Some(src.bucket.as_str())));
            pairs.push(("source_key", Some(src.key.as_str())));
        }
        Context::from_pairs(pairs.into_iter().filter_map(|(k, v)| {
            v.map(|v| (k.to_owned(), RestrictedExpression::new_string(v.to_owned())))
        }))
        .map_err(|e| AuthzError::Engine(e.to_string()))
    }
}

impl Authorizer for CedarAuthorizer {
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, AuthzError> {
        let (request, entities) = self.request(input)?;
        let policies = self.policies.load();
        let response = self
            .authorizer
            .is_authorized(&request, &policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            return Err(AuthzError::Engine(errors.join("; ")));
        }
        Ok(match response.decision() {
            cedar_policy::Decision::Allow => Decision::Allow,
            cedar_policy::Decision::Deny => Decision::Deny,
        })
    }

    fn engine(&self) -> &'static str {
        "cedar"
    }
}

/// Parses [`CEDAR_SCHEMA`].
fn parse_schema() -> Result<Schema, AuthzError> {
    Schema::from_cedarschema_str(&CEDAR_SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| AuthzError::PolicyLoad {
            source_name: "s3.cedarschema".to_owned(),
            message: e.to_string(),
        })
}

/// Parses every source into one policy set (policy ids prefixed with the source name) and
/// validates it against `schema` in strict mode.
fn load(sources: &PolicySources, schema: &Schema) -> Result<PolicySet, AuthzError> {
    let texts = sources.read()?;
    let validator = Validator::new(schema.clone());
    let mut set = PolicySet::new();
    for (name, text) in texts {
        let load_error = |message: String| AuthzError::PolicyLoad {
            source_name: name.clone(),
            message,
        };
        // `ParseErrors` displays its first error only.
        let parsed = PolicySet::from_str(&text)
            .map_err(|e| load_error(summarize(e.iter().map(|e| render(e)))))?;
        if parsed.templates().next().is_some() {
            return Err(load_error("policy templates are not supported".to_owned()));
        }
        for policy in parsed.policies() {
            let id = PolicyId::new(format!("{name}#{}", policy.id()));
            set.add(policy.new_id(id))
                .map_err(|e| load_error(e.to_string()))?;
        }
        let validation = validator.validate(&parsed, ValidationMode::Strict);
        if !validation.validation_passed() {
            return Err(load_error(summarize(
                validation.validation_errors().map(|e| render(e)),
            )));
        }
    }
    Ok(set)
}

/// An error with its source chain (Cedar puts the detail of parse errors there).
fn render(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    message
}

/// The most validation errors a [`AuthzError::PolicyLoad`] message lists.
const MAX_ERRORS: usize = 5;

/// Validation errors in one message. The validator reports a mistake once per action it
/// applies to; the action is cut out of each message (` for S3::Action::"GetObject"`) so
/// that they collapse into one, and at most [`MAX_ERRORS`] distinct ones are listed.
fn summarize(errors: impl Iterator<Item = String>) -> String {
    const ACTION: &str = " for S3::Action::\"";
    let mut distinct: Vec<String> = Vec::new();
    for mut error in errors {
        if let Some(start) = error.find(ACTION)
            && let Some(len) = error[start + ACTION.len()..].find('"')
        {
            error.replace_range(start..=start + ACTION.len() + len, "");
        }
        if !distinct.contains(&error) {
            distinct.push(error);
        }
    }
    let more = distinct.len().saturating_sub(MAX_ERRORS);
    distinct.truncate(MAX_ERRORS);
    let mut message = distinct.join("; ");
    if more > 0 {
        let _ = write!(message, "; and {more} more");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::SourceObject;

    /// An input naming `op` on an object (with `key`) or a bucket, every optional context
    /// field set.
    fn full_input(op: S3Operation, key: Option<&str>) -> AuthzInput {
        AuthzInput {
            user: "bob".to_owned(),
            groups: vec!["reader".to_owned(), "dev".to_owned()],
            claims: serde_json::Value::Null,
            role: Some("role".to_owned()),
            action: op.name().to_owned(),
            iam_action: op.iam_action().unwrap_or_default().to_owned(),
            operation: op.name().to_owned(),
            bucket: Some("data".to_owned()),
            key: key.map(str::to_owned),
            path: Some("data".to_owned()),
            prefix: Some("a/".to_owned()),
            version_id: Some("v1".to_owned()),
            source: Some(SourceObject {
                bucket: "src".to_owned(),
                key: "k".to_owned(),
            }),
            method: "GET".to_owned(),
            auth: "sigv4",
            source_ip: Some("192.0.2.1".to_owned()),
        }
    }

    /// The requests and entities made without the schema are those the schema accepts: the
    /// validation skipped at request time would pass.
    #[test]
    fn fast_requests_pass_schema_validation() {
        let authz = CedarAuthorizer::seed().expect("seed");
        let schema = authz.schema();
        assert_eq!(authz.actions.len(), S3Operation::ALL.len());
        for op in S3Operation::ALL {
            for key in [Some("k/ey"), None] {
                let input = full_input(*op, key);
                let (request, entities) = authz.request(&input).expect("request");
                let (Some(p), Some(a), Some(r), Some(c)) = (
                    request.principal(),
                    request.action(),
                    request.resource(),
                    request.context(),
                ) else {
                    panic!("incomplete request for {op:?}");
                };
                Request::new(p.clone(), a.clone(), r.clone(), c.clone(), Some(schema))
                    .unwrap_or_else(|e| panic!("{op:?}: {e}"));
                Entities::from_entities(entities.iter().cloned(), Some(schema))
                    .unwrap_or_else(|e| panic!("{op:?}: {e}"));
            }
        }
        let mut unknown = full_input(S3Operation::GetObject, None);
        for name in ["Unknown", "read", "list", "write"] {
            name.clone_into(&mut unknown.action);
            assert!(matches!(
                authz.request(&unknown),
                Err(AuthzError::Engine(_))
            ));
        }
    }
}
