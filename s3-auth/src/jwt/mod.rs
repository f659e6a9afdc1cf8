//! JWT bearer authentication: [`JwtValidator`] checks `Authorization: Bearer <jwt>` tokens
//! against one or more OpenID Connect issuers, [`JwtLayer`] puts the resulting
//! [`s3_core::Principal`] in the request extensions.
//!
//! Keys come from each issuer's JWKS (configured URL, or `jwks_uri` from
//! `<issuer>/.well-known/openid-configuration`), are cached by `kid`, and are refetched when a
//! token names an unknown `kid` — at most once per issuer per
//! [`IssuerConfig::min_refresh_interval`], so a flood of random `kid`s cannot hammer the IdP.
//! Cached keys keep working while the IdP is down.
//!
//! Only asymmetric algorithms are accepted (never `none`, never HMAC), the token's `alg` must
//! match the key's type (and the key's `alg`, when the JWKS states it), and `oct` keys from a
//! JWKS are ignored.

mod config;
mod keys;
mod layer;
mod validator;

pub use config::{DEFAULT_ALGORITHMS, IssuerConfig, JwtConfigError};
pub use jsonwebtoken::Algorithm;
pub use layer::{JwtLayer, JwtService};
pub use validator::{JwtValidator, claim_at};
