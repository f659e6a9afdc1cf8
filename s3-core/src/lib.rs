//! # s3-core
//!
//! The S3 request model every s3-tower layer shares:
//!
//! - [`S3RequestLayer`] parses each request once into an [`S3Request`] — operation, bucket,
//!   key, addressing style, query, the resources it touches — and a [`RequestId`], both
//!   stored in the request extensions; malformed and unknown requests are answered with an
//!   S3 XML error and never reach the inner service.
//! - [`S3Operation`] names every S3 API operation real clients send, with its IAM action.
//! - [`Principal`] is who made the request, inserted by an authentication layer, and
//!   [`ClientAddr`] where it came from, inserted by the server.
//! - [`S3Error`] is the S3 XML error answer every crate maps its errors into.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod bucket;
pub mod checksum;
mod classify;
mod client_addr;
mod drain;
mod error;
mod layer;
mod operation;
mod principal;
mod query;
mod request;
mod request_id;
mod session_policy;
pub mod uri_encoding;

pub use bucket::validate_bucket_name;
pub use classify::PRESIGN_PARAMS;
pub use client_addr::ClientAddr;
pub use drain::{
    DEFAULT_DRAIN_LIMIT, DEFAULT_DRAIN_TIME_LIMIT, DrainBody, DrainBodyLayer, DrainFuture,
    DrainableBody,
};
pub use error::{S3Error, S3ErrorCode};
pub use layer::{ResponseFuture, S3RequestLayer, S3RequestService};
pub use operation::S3Operation;
pub use principal::{AuthMethod, Principal, Session};
pub use query::Query;
pub use request::{
    Addressing, CopySource, MAX_KEY_LEN, Resource, ResourceAccess, S3Request, S3RequestParser,
    check_key_segments, check_prefix_segments, decode_key, parse_copy_source,
};
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use session_policy::{SessionPolicy, SessionPolicyError};
