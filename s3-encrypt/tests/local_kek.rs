//! The local KEK and the data-key cache: round trips, bindings, tampering, key files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use s3_encrypt::{
    CacheConfig, CachedKek, DataKey, EncryptError, KekFuture, KeyContext, KeyEncryptionKey,
    LocalKek, WrappedKey,
};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn kek(byte: u8) -> LocalKek {
    LocalKek::from_bytes(&[byte; 32]).expect("a local KEK")
}

fn contexts() -> [KeyContext; 4] {
    [
        KeyContext::None,
        KeyContext::bucket("photos"),
        KeyContext::object("photos", "2024/cat.jpg"),
        KeyContext::object("photos", "2024/dog.jpg"),
    ]
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn round_trip_in_every_context() {
    let kek = kek(7);
    for context in contexts() {
        let (data_key, wrapped) = block_on(kek.generate_data_key(&context)).expect("generate");
        assert!(wrapped.as_str().starts_with("s3t-local:v1:"), "{wrapped}");
        let back = block_on(kek.unwrap(&wrapped, &context)).expect("unwrap");
        assert_eq!(back.as_bytes(), data_key.as_bytes());
    }
    assert!(kek.name().starts_with("local:"));
    block_on(kek.check()).expect("check");
}

#[test]
fn each_data_key_and_wrap_is_new() {
    let kek = kek(7);
    let (a, wa) = block_on(kek.generate_data_key(&KeyContext::None)).expect("generate");
    let (b, wb) = block_on(kek.generate_data_key(&KeyContext::None)).expect("generate");
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_ne!(wa, wb);
}

#[test]
fn wrong_context_does_not_unwrap() {
    let kek = kek(7);
    let all = contexts();
    for (i, context) in all.iter().enumerate() {
        let (_, wrapped) = block_on(kek.generate_data_key(context)).expect("generate");
        for (j, other) in all.iter().enumerate() {
            if i != j {
                assert_eq!(
                    block_on(kek.unwrap(&wrapped, other)).map(|_| ()),
                    Err(EncryptError::KeyUnwrap),
                    "wrapped for {context:?}, unwrapped for {other:?}"
                );
            }
        }
    }
}

#[test]
fn context_encoding_is_unambiguous() {
    assert_ne!(
        KeyContext::object("a", "bc").to_bytes(),
        KeyContext::object("ab", "c").to_bytes()
    );
    assert_ne!(
        KeyContext::bucket("a").to_bytes(),
        KeyContext::object("a", "").to_bytes()
    );
    assert!(KeyContext::None.to_bytes().is_empty());
}

#[test]
fn tampered_wrapped_key_does_not_unwrap() {
    let kek = kek(7);
    let context = KeyContext::bucket("b");
    let (_, wrapped) = block_on(kek.generate_data_key(&context)).expect("generate");
    let text = wrapped.as_str();
    let (head, sealed) = text.rsplit_once(':').expect("prefix");
    let raw = URL_SAFE_NO_PAD.decode(sealed).expect("base64url");
    // Every byte flipped, one at a time: nonce, ciphertext, tag.
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let bad = WrappedKey::new(format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bad)));
        assert_eq!(
            block_on(kek.unwrap(&bad, &context)).map(|_| ()),
            Err(EncryptError::KeyUnwrap),
            "byte {i} flipped"
        );
    }
    for bad in [
        String::new(),
        "garbage".to_owned(),
        format!("{head}:"),
        format!("{head}:{}", &sealed[..sealed.len() - 2]),
        format!("{text}AA"),
        text.replace("s3t-local:v1:", "s3t-local:v2:"),
        "vault:v1:abcd".to_owned(),
    ] {
        assert_eq!(
            block_on(kek.unwrap(&WrappedKey::new(bad.clone()), &context)).map(|_| ()),
            Err(EncryptError::KeyUnwrap),
            "{bad:?}"
        );
    }
}

#[test]
fn another_key_does_not_unwrap() {
    let (_, wrapped) = block_on(kek(7).generate_data_key(&KeyContext::None)).expect("generate");
    assert_eq!(
        block_on(kek(8).unwrap(&wrapped, &KeyContext::None)).map(|_| ()),
        Err(EncryptError::KeyUnwrap)
    );
    // The fingerprint field forged to the other key's: the AEAD still refuses.
    let forged = wrapped.as_str().replace(
        &kek(7).name()["local:".len()..],
        &kek(8).name()["local:".len()..],
    );
    assert_eq!(
        block_on(kek(8).unwrap(&WrappedKey::new(forged), &KeyContext::None)).map(|_| ()),
        Err(EncryptError::KeyUnwrap)
    );
    assert_ne!(kek(7).name(), kek(8).name());
}

#[test]
fn key_files_raw_and_base64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = [0x42u8; 32];
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, key).expect("write");
    let b64 = dir.path().join("b64.key");
    std::fs::write(&b64, format!("  {}\n", STANDARD.encode(key))).expect("write");
    let unpadded = dir.path().join("nopad.key");
    std::fs::write(&unpadded, STANDARD_NO_PAD.encode(key)).expect("write");
    let from_raw = LocalKek::from_file(&raw).expect("raw key file");
    let from_b64 = LocalKek::from_file(&b64).expect("base64 key file");
    let from_nopad = LocalKek::from_file(&unpadded).expect("unpadded base64 key file");
    assert_eq!(from_raw.name(), from_b64.name());
    assert_eq!(from_raw.name(), from_nopad.name());
    let (data_key, wrapped) =
        block_on(from_raw.generate_data_key(&KeyContext::None)).expect("generate");
    let back = block_on(from_b64.unwrap(&wrapped, &KeyContext::None)).expect("unwrap");
    assert_eq!(back.as_bytes(), data_key.as_bytes());
}

#[test]
fn bad_key_files_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b64 = |n: usize| STANDARD.encode(vec![1u8; n]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("short-raw", vec![1u8; 31]),
        ("long-raw", vec![1u8; 33]),
        ("short-b64", b64(16).into_bytes()),
        ("long-b64", b64(48).into_bytes()),
        (
            "not-b64",
            b"this is not a key at all, just some text!!".to_vec(),
        ),
        ("hex", hex_of(&[1u8; 32]).into_bytes()),
        ("binary", vec![0xffu8; 45]),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).expect("write");
        match LocalKek::from_file(&path) {
            Err(EncryptError::Config(message)) => {
                assert!(message.contains(name), "{name}: {message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        LocalKek::from_file(dir.path().join("missing")),
        Err(EncryptError::Config(_))
    ));
}

#[test]
fn generate_file_makes_a_private_key_file_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dev.key");
    let made = LocalKek::generate_file(&path).expect("generate");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(STANDARD.decode(text.trim()).expect("base64").len(), 32);
    assert!(matches!(
        LocalKek::generate_file(&path),
        Err(EncryptError::Config(_))
    ));
    let loaded = LocalKek::from_file(&path).expect("load");
    assert_eq!(loaded.name(), made.name());
    let reopened = LocalKek::open_or_generate(&path).expect("open");
    assert_eq!(reopened.name(), made.name());
    let fresh = LocalKek::open_or_generate(dir.path().join("other.key")).expect("generate");
    assert_ne!(fresh.name(), made.name());
}

#[test]
fn debug_never_prints_key_bytes() {
    let key = [0xabu8; 32];
    let kek = LocalKek::from_bytes(&key).expect("kek");
    let (data_key, _) = block_on(kek.generate_data_key(&KeyContext::None)).expect("generate");
    let cached = CachedKek::new(
        LocalKek::from_bytes(&key).expect("kek"),
        CacheConfig::default(),
    );
    for text in [
        format!("{kek:?}"),
        format!("{kek:#?}"),
        format!("{data_key:?}"),
        format!("{cached:?}"),
    ] {
        for needle in [
            hex_of(&key),
            hex_of(data_key.as_bytes()),
            STANDARD.encode(key),
            STANDARD.encode(data_key.as_bytes()),
            format!("{:?}", &data_key.as_bytes()[..4]),
            "171, 171".to_owned(),
        ] {
            assert!(!text.contains(&needle), "{text} contains {needle}");
        }
    }
}

/// A KEK that counts unwraps and can be switched off.
struct Counting {
    inner: LocalKek,
    unwraps: AtomicUsize,
    down: AtomicBool,
}

impl KeyEncryptionKey for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)> {
        self.inner.generate_data_key(context)
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(EncryptError::KeyServiceUnavailable("down".to_owned())) });
        }
        self.inner.unwrap(wrapped, context)
    }

    fn check(&self) -> KekFuture<'_, ()> {
        self.inner.check()
    }
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: kek(9),
        unwraps: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    })
}

#[test]
fn cache_serves_repeated_unwraps_and_respects_context() {
    let inner = counting();
    let cached = CachedKek::new(
        Arc::clone(&inner),
        CacheConfig {
            capacity: 2,
            ttl: Duration::from_mins(1),
        },
    );
    let ctx = KeyContext::bucket("b");
    // A fresh data key is cached when it is made.
    let (data_key, wrapped) = block_on(cached.generate_data_key(&ctx)).expect("generate");
    let back = block_on(cached.unwrap(&wrapped, &ctx)).expect("unwrap");
    assert_eq!(back.as_bytes(), data_key.as_bytes());
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), 0);
    // Another context is not served from the cache (and does not unwrap).
    assert_eq!(
        block_on(cached.unwrap(&wrapped, &KeyContext::bucket("other"))).map(|_| ()),
        Err(EncryptError::KeyUnwrap)
    );
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), 1);
    // While the service is down, cached keys are still served; others fail.
    inner.down.store(true, Ordering::SeqCst);
    let back = block_on(cached.unwrap(&wrapped, &ctx)).expect("cached unwrap");
    assert_eq!(back.as_bytes(), data_key.as_bytes());
    let (_, other) = block_on(inner.inner.generate_data_key(&ctx)).expect("generate");
    assert!(matches!(
        block_on(cached.unwrap(&other, &ctx)),
        Err(EncryptError::KeyServiceUnavailable(_))
    ));
    inner.down.store(false, Ordering::SeqCst);
    // Bounded: with capacity 2, the oldest entry goes first.
    let (_, w2) = block_on(cached.generate_data_key(&ctx)).expect("generate");
    let (_, w3) = block_on(cached.generate_data_key(&ctx)).expect("generate");
    assert!(cached.len() <= 2);
    let before = inner.unwraps.load(Ordering::SeqCst);
    block_on(cached.unwrap(&w3, &ctx)).expect("unwrap");
    block_on(cached.unwrap(&w2, &ctx)).expect("unwrap");
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), before);
    block_on(cached.unwrap(&wrapped, &ctx)).expect("unwrap");
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), before + 1);
    cached.clear();
    assert!(cached.is_empty());
}

#[test]
fn cache_entries_expire() {
    let inner = counting();
    let cached = CachedKek::new(
        Arc::clone(&inner),
        CacheConfig {
            capacity: 10,
            ttl: Duration::from_millis(50),
        },
    );
    let (_, wrapped) = block_on(cached.generate_data_key(&KeyContext::None)).expect("generate");
    std::thread::sleep(Duration::from_millis(80));
    block_on(cached.unwrap(&wrapped, &KeyContext::None)).expect("unwrap");
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), 1);
    // Capacity 0: no cache at all.
    let uncached = CachedKek::new(
        Arc::clone(&inner),
        CacheConfig {
            capacity: 0,
            ttl: Duration::from_mins(1),
        },
    );
    let (_, wrapped) = block_on(uncached.generate_data_key(&KeyContext::None)).expect("generate");
    block_on(uncached.unwrap(&wrapped, &KeyContext::None)).expect("unwrap");
    block_on(uncached.unwrap(&wrapped, &KeyContext::None)).expect("unwrap");
    assert_eq!(inner.unwraps.load(Ordering::SeqCst), 3);
    assert!(uncached.is_empty());
}

#[test]
fn the_trait_is_object_safe() {
    let keks: Vec<Box<dyn KeyEncryptionKey>> = vec![
        Box::new(kek(1)),
        Box::new(CachedKek::new(kek(2), CacheConfig::default())),
        Box::new(Arc::new(kek(3))),
    ];
    for kek in &keks {
        let (data_key, wrapped) =
            block_on(kek.generate_data_key(&KeyContext::None)).expect("generate");
        let back = block_on(kek.unwrap(&wrapped, &KeyContext::None)).expect("unwrap");
        assert_eq!(back.as_bytes(), data_key.as_bytes());
    }
}
