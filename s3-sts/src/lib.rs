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

pub use error::{StsError, StsErrorCode};
