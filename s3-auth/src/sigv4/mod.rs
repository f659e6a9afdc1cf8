//! AWS Signature Version 4: header and presigned-URL authentication, and the verified
//! payload modes (signed SHA-256, unsigned, aws-chunked with chunk signatures and trailers).

pub(crate) mod chunked;
pub(crate) mod signing;
