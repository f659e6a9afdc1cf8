//! Which buckets are encrypted, with which key-encryption key and binding: the per-bucket
//! policy [`crate::EncryptLayer`] applies.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::EncryptError;
use crate::kek::{KeyContext, KeyEncryptionKey};

/// What a wrapped data key is bound to (architecture §8a, "Binding").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Binding {
    /// Nothing: server-side copies to any bucket with the same KEK keep the ciphertext.
    #[default]
    None,
    /// The bucket: the data key only unwraps for objects read from the same bucket.
    Bucket,
    /// The bucket and the key: the data key only unwraps for the object it was made for;
    /// every copy re-encrypts.
    Object,
}

impl Binding {
    /// The name stored in `x-amz-meta-s3t-bind` and used in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bucket => "bucket",
            Self::Object => "object",
        }
    }

    /// The binding named `name` (`none`, `bucket`, `object`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "bucket" => Some(Self::Bucket),
            "object" => Some(Self::Object),
            _ => None,
        }
    }

    /// The key context for an object at `bucket`/`key`.
    pub fn context(self, bucket: &str, key: &str) -> KeyContext {
        match self {
            Self::None => KeyContext::None,
            Self::Bucket => KeyContext::bucket(bucket),
            Self::Object => KeyContext::object(bucket, key),
        }
    }
}

/// How one bucket is treated.
#[derive(Clone)]
pub enum BucketEncryption {
    /// Not encrypted: requests pass through (clients still may not set `s3t-*` metadata).
    Off,
    /// Every object written is encrypted with `kek`; objects read must be encrypted unless
    /// `allow_plaintext_reads`.
    On {
        /// The KEK that wraps the data keys of new objects.
        kek: Arc<dyn KeyEncryptionKey>,
        /// What new data keys are bound to.
        binding: Binding,
        /// Serve objects stored without envelope metadata (written before encryption was
        /// turned on) as they are, instead of refusing them.
        allow_plaintext_reads: bool,
    },
}

impl fmt::Debug for BucketEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("Off"),
            Self::On {
                kek,
                binding,
                allow_plaintext_reads,
            } => f
                .debug_struct("On")
                .field("kek", &kek.name())
                .field("binding", binding)
                .field("allow_plaintext_reads", allow_plaintext_reads)
                .finish(),
        }
    }
}

impl BucketEncryption {
    /// Encrypt with `kek`, no binding, no plaintext reads.
    pub fn encrypt(kek: Arc<dyn KeyEncryptionKey>) -> Self {
        Self::On {
            kek,
            binding: Binding::None,
            allow_plaintext_reads: false,
        }
    }

    /// The same, with `binding`.
    #[must_use]
    pub fn with_binding(self, binding: Binding) -> Self {
        match self {
            Self::Off => Self::Off,
            Self::On {
                kek,
                allow_plaintext_reads,
                ..
            } => Self::On {
                kek,
                binding,
                allow_plaintext_reads,
            },
        }
    }

    /// The same, serving objects stored without encryption as they are.
    #[must_use]
    pub fn allow_plaintext_reads(self, allow: bool) -> Self {
        match self {
            Self::Off => Self::Off,
            Self::On { kek, binding, .. } => Self::On {
                kek,
                binding,
                allow_plaintext_reads: allow,
            },
        }
    }

    /// Whether the bucket is encrypted.
    pub fn is_on(&self) -> bool {
        matches!(self, Self::On { .. })
    }
}

/// A bucket name pattern: an exact name, or a prefix followed by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BucketPattern {
    Exact(String),
    Prefix(String),
}

impl BucketPattern {
    fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(pattern.to_owned()),
        }
    }

    fn matches(&self, bucket: &str) -> bool {
        match self {
            Self::Exact(name) => name == bucket,
            Self::Prefix(prefix) => bucket.starts_with(prefix.as_str()),
        }
    }

    /// Exact names win over prefixes, longer prefixes over shorter.
    fn rank(&self) -> (u8, usize) {
        match self {
            Self::Exact(name) => (1, name.len()),
            Self::Prefix(prefix) => (0, prefix.len()),
        }
    }
}

/// The encryption policy of every bucket, and every KEK objects may have been written with.
///
/// Buckets are matched by exact name or by a `prefix*` pattern (exact names first, then the
/// longest prefix); unmatched buckets get the default. Reads find an object's KEK by the name
/// stored with it, among the KEKs of all rules plus those added with
/// [`EncryptionPolicy::read_kek`] (retired KEKs whose objects are still stored).
#[derive(Clone)]
pub struct EncryptionPolicy {
    rules: Vec<(BucketPattern, BucketEncryption)>,
    default: BucketEncryption,
    keks: HashMap<String, Arc<dyn KeyEncryptionKey>>,
}

impl fmt::Debug for EncryptionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionPolicy")
            .field("rules", &self.rules)
            .field("default", &self.default)
            .field("keks", &self.keks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EncryptionPolicy {
    /// A policy where every bucket gets `default`.
    pub fn new(default: BucketEncryption) -> Self {
        let mut policy = Self {
            rules: Vec::new(),
            default: BucketEncryption::Off,
            keks: HashMap::new(),
        };
        policy.register(&default);
        policy.default = default;
        policy
    }

    /// Every bucket matching `pattern` (an exact name or `prefix*`) gets `encryption`.
    #[must_use]
    pub fn bucket(mut self, pattern: &str, encryption: BucketEncryption) -> Self {
        self.register(&encryption);
        self.rules.push((BucketPattern::parse(pattern), encryption));
        self.rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.rank()));
        self
    }

    /// Also accept objects wrapped by `kek` on reads (a retired KEK).
    #[must_use]
    pub fn read_kek(mut self, kek: Arc<dyn KeyEncryptionKey>) -> Self {
        self.keks.insert(kek.name().to_owned(), kek);
        self
    }

    fn register(&mut self, encryption: &BucketEncryption) {
        if let BucketEncryption::On { kek, .. } = encryption {
            self.keks.insert(kek.name().to_owned(), Arc::clone(kek));
        }
    }

    /// The policy of `bucket`.
    pub fn for_bucket(&self, bucket: &str) -> &BucketEncryption {
        self.rules
            .iter()
            .find(|(pattern, _)| pattern.matches(bucket))
            .map_or(&self.default, |(_, encryption)| encryption)
    }

    /// The KEK named `name`, for reading an object wrapped by it.
    pub fn kek(&self, name: &str) -> Result<&dyn KeyEncryptionKey, EncryptError> {
        self.keks
            .get(name)
            .map(|kek| kek.as_ref() as &dyn KeyEncryptionKey)
            .ok_or_else(|| {
                EncryptError::Config(format!(
                    "the object's key-encryption key {name:?} is not configured"
                ))
            })
    }

    /// Every distinct KEK (for startup checks).
    pub fn keks(&self) -> impl Iterator<Item = &dyn KeyEncryptionKey> {
        self.keks
            .values()
            .map(|kek| kek.as_ref() as &dyn KeyEncryptionKey)
    }
}
