//! Authorize every resource an S3 request touches, with an embedded policy engine, deny by
//! default.
//!
//! [`AuthzLayer`] reads the [`Principal`](s3_core::Principal) an authentication layer
//! inserted and the [`S3Request`](s3_core::S3Request) of `S3RequestLayer`, asks an
//! [`Authorizer`] about each resource the operation touches (both sides of a copy, each key of
//! a `DeleteObjects` body, a listing's bucket and prefix) and refuses the request with
//! `403 AccessDenied` unless every one is allowed. Missing extensions, `Unknown` operations,
//! engine errors and undefined policy results all deny. Every decision is an audit event
//! (tracing target `s3_tower::audit`).
//!
//! [`RegoAuthorizer`] evaluates Rego policies in process with `regorus`, compiled once;
//! [`CedarAuthorizer`] evaluates Cedar policies with `cedar-policy`, validated against the S3
//! schema [`CEDAR_SCHEMA`] when loaded.

mod authorizer;
mod cedar;
mod delete_objects;
mod error;
mod input;
mod layer;
mod policy_sources;
mod rego;

pub use authorizer::{AllowAll, Authorizer, Decision, DenyAll};
pub use cedar::{CEDAR_SCHEMA, CedarAuthorizer, SEED_CEDAR_POLICY};
pub use error::AuthzError;
pub use input::{AuthzInput, SourceObject};
pub use layer::{AuthzBody, AuthzLayer, AuthzService, DEFAULT_DELETE_BODY_LIMIT, ResponseFuture};
pub use rego::{DEFAULT_QUERY, RegoAuthorizer, SEED_POLICY};
