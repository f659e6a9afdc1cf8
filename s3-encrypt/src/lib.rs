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
//!
//! [`EncryptLayer`] applies it to S3 traffic: uploads (PutObject, UploadPart) are encrypted
//! while they stream, with their checksums verified on the plaintext; GetObject (whole,
//! ranged, by part) and HeadObject answer in plaintext terms; listings report plaintext
//! sizes; multipart uploads need no shared state (the wrapped data key rides in the upload
//! id); copies keep the ciphertext when they can and are re-encrypted through the gateway
//! when they cannot; operations that would need plaintext at the backend are refused. The
//! [`EncryptionPolicy`] says which buckets are encrypted, with which KEK and binding.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
pub mod envelope;
mod error;
pub mod format;
pub mod kek;
mod layer;
pub mod listing;
pub mod plaintext_check;
pub mod policy;
pub mod range;
pub mod upload_id;

pub use body::{BoxError, DecryptBody, EncryptBody, Window};
pub use error::EncryptError;
pub use format::{
    DataKey, Header, MAX_OBJECT_SIZE, OVERHEAD, SEGMENT_SIZE, StreamKey, encrypted_size,
    multipart_plaintext_size, plaintext_size,
};
pub use kek::{
    CacheConfig, CachedKek, KekFuture, KeyContext, KeyEncryptionKey, KmsConfig, KmsCredentials,
    KmsKek, LocalKek, TransitAuth, TransitConfig, TransitKek, WrappedKey,
};
pub use layer::{
    EncryptLayer, EncryptRequestBody, EncryptResponseBody, EncryptService, ResponseFuture,
};
pub use policy::{Binding, BucketEncryption, EncryptionPolicy};
pub use range::{ByteRange, Layout, RangePlan};
