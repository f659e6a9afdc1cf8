//! # s3-tower
//!
//! Composable [tower](https://docs.rs/tower) layers that put a security gateway in front of
//! any S3-compatible object store. This facade re-exports the member crates behind features:
//!
//! - [`core`] (always): the S3 request model — `S3RequestLayer`, `S3Request`,
//!   `S3Operation`, `Principal`, `S3Error`.
//! - [`auth`] (feature `auth`, default): authenticate requests — AWS SigV4 header,
//!   presigned URLs and aws-chunked uploads verified while streaming — into a `Principal`.
//! - [`authz`] (feature `authz`, default): authorize every resource a request touches with an
//!   embedded policy engine (Rego), deny by default — `AuthzLayer`, `RegoAuthorizer`.
//! - [`sts`] (feature `sts`, default): `AssumeRoleWithWebIdentity` — a JWT in, sealed
//!   temporary AWS credentials out, resolved by the SigV4 layer without a database.
//! - [`encrypt`] (feature `encrypt`, default): streaming envelope encryption of object
//!   bodies, data keys wrapped by OpenBao/Vault Transit, a KMS, or a local key.
//! - [`resign`] (feature `resign`, default): route each bucket to its backend and SigV4-sign
//!   forwarded requests with the gateway's own credentials.
//!
//! ```
//! use s3_tower::core::S3RequestLayer;
//! use s3_tower::resign::{Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = Backend::new(
//!     "garage",
//!     "http://127.0.0.1:3900",
//!     "garage",
//!     BackendAddressing::Path,
//!     BackendCredentials::from_static("GK-gateway", "gateway-secret", None),
//! )?;
//! let s3 = ServiceBuilder::new()
//!     .layer(S3RequestLayer::new().virtual_host_domain("s3.example.com"))
//!     .layer(ResignLayer::new(BackendRouter::single(backend)))
//!     .service(Upstream::new()?);
//!
//! // Serve it with axum (or hyper-util directly).
//! let app: axum::Router = axum::Router::new().fallback_service(s3);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

pub use s3_core as core;

#[cfg(feature = "auth")]
pub use s3_auth as auth;

#[cfg(feature = "authz")]
pub use s3_authz as authz;

#[cfg(feature = "sts")]
pub use s3_sts as sts;

#[cfg(feature = "encrypt")]
pub use s3_encrypt as encrypt;

#[cfg(feature = "resign")]
pub use s3_resign as resign;

/// The README's Rust examples, compiled and run as doc tests so they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
