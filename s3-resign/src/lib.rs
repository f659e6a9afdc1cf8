//! # s3-resign
//!
//! Forwards S3 requests to the backend chosen for their bucket, signed with the gateway's
//! own credentials, so backend keys never leave the gateway and client keys never reach the
//! backend.
//!
//! - [`ResignLayer`] strips every client credential (`Authorization`,
//!   `X-Amz-Security-Token`, `X-Amz-Date`, presign query parameters) and hop-by-hop header,
//!   picks the [`Backend`] for the bucket through a [`BackendRouter`] (exact names or globs,
//!   and a default), and SigV4-signs the request with `aws-sigv4` (S3 settings: single
//!   percent-encoding, no path normalisation, `x-amz-content-sha256`).
//! - [`Upstream`] is the pooled `hyper-util` client (rustls) that sends it and streams
//!   bodies both ways; transport failures become S3 XML errors (502/503/504).
//! - [`BackendCredentials`]: static, from the environment, or (feature `aws-config`) the AWS
//!   default credential chain — web identity / EKS IRSA, profiles, container and instance
//!   metadata — cached and refreshed before expiry.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod credentials;
mod error;
mod forward;
mod layer;
mod upstream;

pub use backend::{Backend, BackendAddressing, BackendRouter, BucketPattern};
pub use credentials::BackendCredentials;
pub use error::ResignError;
pub use forward::prepare_upstream_request;
pub use layer::{ResignLayer, ResignService, ResponseFuture};
pub use upstream::{BoxError, Upstream, UpstreamBody, UpstreamBuilder};
