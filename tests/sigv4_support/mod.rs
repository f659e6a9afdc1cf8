//! Helpers of `tests/sigv4_s3s_fs.rs`: the in-process stack, an independent SigV4 signer,
//! aws-chunked bodies built by hand, and a plain HTTP(S) client.

pub(crate) mod chunked;
pub(crate) mod client;
pub(crate) mod sign;
pub(crate) mod stack;
