//! The URI encoding SigV4 and S3 use: every byte but `A-Z a-z 0-9 - _ . ~` is
//! percent-encoded (upper-case hex), in paths `/` too is kept. Shared by the layers that
//! verify signatures and those that build and sign forwarded requests.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Bytes SigV4 leaves unencoded in query names and values: `A-Z a-z 0-9 - _ . ~`.
pub const SIGV4_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`SIGV4_UNRESERVED`], keeping the `/` between path segments (object keys in paths).
pub const SIGV4_UNRESERVED_PATH: &AsciiSet = &SIGV4_UNRESERVED.remove(b'/');
