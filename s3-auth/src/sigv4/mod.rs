//! AWS Signature Version 4: header and presigned-URL authentication, and the verified
//! payload modes (signed SHA-256, unsigned, aws-chunked with chunk signatures and trailers).

mod authorization;
mod body;
mod canonical;
pub(crate) mod chunked;
mod layer;
mod payload;
pub(crate) mod signing;
#[cfg(test)]
pub(crate) mod test_body;
mod verifier;

pub use body::SigV4Body;
pub use canonical::UriCanonicalization;
pub use layer::{ResponseFuture, SigV4Layer, SigV4Service};
pub use verifier::{
    DEFAULT_MAX_SKEW, PayloadMode, SigV4Verifier, VerifiedRequest, format_amz_date,
};
