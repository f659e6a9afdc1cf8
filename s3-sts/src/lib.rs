//! # s3-sts
//!
//! AWS STS `AssumeRoleWithWebIdentity` for an S3 gateway: an application trades a JWT from
//! its identity provider for temporary AWS credentials, and from then on any S3 client
//! (boto3, the AWS CLI, DuckDB, Spark...) works unchanged, with no static key handed out.
//!
//! - The session token is a sealed blob (AES-256-GCM under a keyring of current and previous
//!   keys) holding the subject, groups, role, session policy, expiry and the secret access
//!   key, bound to its access key id: any replica holding the keyring resolves it, with no
//!   database.
//! - [`SessionCredentials`] is the `s3_auth::CredentialResolver` that opens those tokens for
//!   `SigV4Layer`, falling back to another resolver (static users) for long-term keys.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod keyring;
mod layer;
mod params;
mod resolver;
mod response;
mod roles;
mod session;

pub use error::{StsError, StsErrorCode};
pub use keyring::{MAX_SESSION_TOKEN_LEN, SessionKey, SessionKeyring};
pub use layer::{
    DEFAULT_ACCOUNT_ID, DEFAULT_STS_BODY_LIMIT, ResponseFuture, StsCall, StsLayer, StsService,
};
pub use params::{DEFAULT_DURATION, MAX_DURATION, MIN_DURATION, STS_VERSION};
pub use resolver::{NoFallback, SessionCredentials};
pub use response::STS_NAMESPACE;
pub use roles::{ClaimCondition, MAX_ROLE_SESSION, MIN_ROLE_SESSION, Role, Roles};
pub use session::{IssuedCredentials, OpenedSession, SessionClaims};
