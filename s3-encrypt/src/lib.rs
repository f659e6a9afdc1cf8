//! # s3-encrypt
//!
//! Envelope encryption of S3 object bodies, so that a storage provider only ever holds
//! ciphertext (architecture §8 and §8a):
//!
//! - every object (and every part of a multipart upload) is encrypted while it streams, in
//!   64 KiB segments with AES-256-GCM, in constant memory; range reads decrypt only the
//!   segments they need;
//! - each object has its own random data key, wrapped by a key-encryption key held in
//!   OpenBao/Vault Transit, a KMS, or (for development) a local key file.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;

pub use error::EncryptError;
