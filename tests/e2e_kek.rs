//! End-to-end tests of the key-encryption-key providers against real key services: an OpenBao
//! dev server (`bao server -dev`) with Transit enabled by the test, and moto's KMS API.
//!
//! Transit: data-key round trips, key rotation (old wrapped keys still unwrap, new ones name
//! v2), a derived key bound to a context (another context does not unwrap), AppRole login and
//! re-login before the token expires, a token without permission, OpenBao stopped (unavailable,
//! while the cache still serves the data keys it has), and the startup check failing clearly.
//! KMS: GenerateDataKey/Decrypt with an EncryptionContext, a wrong context, an unknown key.
//!
//! Run with `cargo xtask test -- -E 'binary(e2e_kek)'`. Every test starts its own processes on
//! free ports with temporary directories.

#![cfg(feature = "e2e")]

mod support;

use std::time::{Duration, Instant};

use s3_encrypt::{
    CacheConfig, CachedKek, EncryptError, KeyContext, KeyEncryptionKey, KmsConfig, KmsCredentials,
    KmsKek, TransitAuth, TransitConfig, TransitKek, WrappedKey,
};
use support::{Moto, OpenBao};

/// One runtime per test: the KEKs' pooled connections live on it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn transit(bao: &OpenBao, key: &str, auth: TransitAuth) -> TransitKek {
    let mut config = TransitConfig::new(bao.url(), key, auth);
    config.timeout = Duration::from_secs(5);
    TransitKek::new(config).expect("a valid Transit config")
}

fn root_kek(bao: &OpenBao, key: &str) -> TransitKek {
    transit(bao, key, TransitAuth::Token(bao.root_token().to_owned()))
}

/// The key version a Transit ciphertext names.
fn version(wrapped: &WrappedKey) -> &str {
    wrapped.as_str().split(':').nth(1).expect("vault:vN:...")
}

#[test]
fn transit_round_trip_and_rotation() {
    let rt = runtime();
    let bao = OpenBao::start();
    bao.enable_transit();
    bao.create_transit_key("app", false);
    let kek = root_kek(&bao, "app");
    assert_eq!(kek.name(), "transit:transit/app");
    rt.block_on(kek.check()).expect("check");

    let (dek1, wrapped1) = rt
        .block_on(kek.generate_data_key(&KeyContext::None))
        .expect("generate");
    assert!(wrapped1.as_str().starts_with("vault:v1:"), "{wrapped1}");
    let back = rt
        .block_on(kek.unwrap(&wrapped1, &KeyContext::None))
        .expect("unwrap");
    assert_eq!(back.as_bytes(), dek1.as_bytes());

    bao.rotate_transit_key("app");
    let (dek2, wrapped2) = rt
        .block_on(kek.generate_data_key(&KeyContext::None))
        .expect("generate after rotation");
    assert_eq!(version(&wrapped2), "v2");
    assert_ne!(dek1.as_bytes(), dek2.as_bytes());
    for (dek, wrapped) in [(&dek1, &wrapped1), (&dek2, &wrapped2)] {
        let back = rt
            .block_on(kek.unwrap(wrapped, &KeyContext::None))
            .expect("unwrap after rotation");
        assert_eq!(back.as_bytes(), dek.as_bytes(), "{}", version(wrapped));
    }

    // Tampered ciphertexts do not unwrap.
    let text = wrapped1.as_str();
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for bad in [tampered, "vault:v1:AAAA".to_owned(), "not-vault".to_owned()] {
        assert_eq!(
            rt.block_on(kek.unwrap(&WrappedKey::new(bad.clone()), &KeyContext::None))
                .map(|_| ()),
            Err(EncryptError::KeyUnwrap),
            "{bad}"
        );
    }

    // The check found the key not derived: a binding is refused, not silently ignored.
    assert!(matches!(
        rt.block_on(kek.generate_data_key(&KeyContext::bucket("b"))),
        Err(EncryptError::Config(m)) if m.contains("derived")
    ));
}

#[test]
fn transit_derived_key_binds_the_context() {
    let rt = runtime();
    let bao = OpenBao::start();
    bao.enable_transit();
    bao.create_transit_key("bound", true);
    let kek = root_kek(&bao, "bound");
    rt.block_on(kek.check()).expect("check");

    let here = KeyContext::object("photos", "cat.jpg");
    let (dek, wrapped) = rt.block_on(kek.generate_data_key(&here)).expect("generate");
    let back = rt.block_on(kek.unwrap(&wrapped, &here)).expect("unwrap");
    assert_eq!(back.as_bytes(), dek.as_bytes());
    for other in [
        KeyContext::object("photos", "dog.jpg"),
        KeyContext::object("other", "cat.jpg"),
        KeyContext::bucket("photos"),
    ] {
        assert_eq!(
            rt.block_on(kek.unwrap(&wrapped, &other)).map(|_| ()),
            Err(EncryptError::KeyUnwrap),
            "{other:?}"
        );
    }
    // A derived key needs a context at all.
    let none = rt.block_on(kek.unwrap(&wrapped, &KeyContext::None));
    assert!(
        matches!(
            none,
            Err(EncryptError::KeyServiceRefused(_) | EncryptError::KeyUnwrap)
        ),
        "{none:?}"
    );
    assert!(matches!(
        rt.block_on(kek.generate_data_key(&KeyContext::None)),
        Err(EncryptError::KeyServiceRefused(_))
    ));

    // A KEK that was not checked finds out on its first bound use that a key is not
    // derived, and refuses the binding rather than let Transit ignore it.
    bao.create_transit_key("plain", false);
    let unchecked = root_kek(&bao, "plain");
    let err = rt
        .block_on(unchecked.generate_data_key(&here))
        .expect_err("binding on a non-derived key");
    assert!(
        matches!(&err, EncryptError::Config(m) if m.contains("derived")),
        "{err:?}"
    );
    rt.block_on(unchecked.generate_data_key(&KeyContext::None))
        .expect("no binding on a non-derived key");
}

#[test]
fn transit_approle_login_and_relogin() {
    let rt = runtime();
    let bao = OpenBao::start();
    bao.enable_transit();
    bao.create_transit_key("app", false);
    bao.put_transit_policy("kek-app", "app");
    // Tokens that live 3 s: the KEK must log in again before they expire.
    let (role_id, secret_id) = bao.create_approle("gateway", &["kek-app"], "3s");
    let kek = transit(
        &bao,
        "app",
        TransitAuth::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.clone(),
            secret_id,
        },
    );
    rt.block_on(kek.check()).expect("check with AppRole");
    let (dek, wrapped) = rt
        .block_on(kek.generate_data_key(&KeyContext::None))
        .expect("generate");
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let back = rt
            .block_on(kek.unwrap(&wrapped, &KeyContext::None))
            .expect("unwrap across token lifetimes");
        assert_eq!(back.as_bytes(), dek.as_bytes());
        std::thread::sleep(Duration::from_millis(700));
    }

    // A wrong secret id is refused at login.
    let wrong = transit(
        &bao,
        "app",
        TransitAuth::AppRole {
            mount: "approle".to_owned(),
            role_id,
            secret_id: "00000000-0000-0000-0000-000000000000".to_owned(),
        },
    );
    let err = rt.block_on(wrong.check()).expect_err("wrong secret id");
    assert!(
        matches!(&err, EncryptError::KeyServiceRefused(m) if m.contains("AppRole")),
        "{err:?}"
    );
}

#[test]
fn transit_refusals_and_check_messages() {
    let rt = runtime();
    let bao = OpenBao::start();
    bao.enable_transit();
    bao.create_transit_key("app", false);
    bao.create_transit_key("other", false);
    bao.put_transit_policy("kek-other", "other");

    // A token that may use another key only.
    let token = bao.create_token(&["kek-other"]);
    let kek = transit(&bao, "app", TransitAuth::Token(token));
    assert!(matches!(
        rt.block_on(kek.generate_data_key(&KeyContext::None)),
        Err(EncryptError::KeyServiceRefused(_))
    ));
    let (_, wrapped) = rt
        .block_on(root_kek(&bao, "app").generate_data_key(&KeyContext::None))
        .expect("generate as root");
    assert!(matches!(
        rt.block_on(kek.unwrap(&wrapped, &KeyContext::None)),
        Err(EncryptError::KeyServiceRefused(_))
    ));
    let err = rt
        .block_on(kek.check())
        .expect_err("check without permission");
    let EncryptError::KeyServiceRefused(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.contains("transit/app") && message.contains("403"),
        "{message}"
    );

    // A key that does not exist: the startup check says which.
    let missing = root_kek(&bao, "does-not-exist");
    let err = rt
        .block_on(missing.check())
        .expect_err("check of a missing key");
    let EncryptError::KeyServiceRefused(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.contains("transit/does-not-exist") && message.contains("not found"),
        "{message}"
    );

    // A data key of another Transit key does not unwrap with this one.
    let (_, other_wrapped) = rt
        .block_on(root_kek(&bao, "other").generate_data_key(&KeyContext::None))
        .expect("generate with the other key");
    assert_eq!(
        rt.block_on(root_kek(&bao, "app").unwrap(&other_wrapped, &KeyContext::None))
            .map(|_| ()),
        Err(EncryptError::KeyUnwrap)
    );

    // A bad token.
    let bad = transit(&bao, "app", TransitAuth::Token("not-a-token".to_owned()));
    assert!(matches!(
        rt.block_on(bad.check()),
        Err(EncryptError::KeyServiceRefused(_))
    ));
}

#[test]
fn transit_unavailable_and_the_cache() {
    let rt = runtime();
    let mut bao = OpenBao::start();
    bao.enable_transit();
    bao.create_transit_key("app", false);
    let kek = CachedKek::new(root_kek(&bao, "app"), CacheConfig::default());
    rt.block_on(kek.check()).expect("check");
    let (dek, wrapped) = rt
        .block_on(kek.generate_data_key(&KeyContext::None))
        .expect("generate");
    // Not cached: made by another KEK instance for the same key.
    let (_, uncached) = rt
        .block_on(root_kek(&bao, "app").generate_data_key(&KeyContext::None))
        .expect("generate");

    bao.stop();
    let started = Instant::now();
    let back = rt
        .block_on(kek.unwrap(&wrapped, &KeyContext::None))
        .expect("the cache still serves a data key it has");
    assert_eq!(back.as_bytes(), dek.as_bytes());
    for result in [
        rt.block_on(kek.unwrap(&uncached, &KeyContext::None))
            .map(|_| ()),
        rt.block_on(kek.generate_data_key(&KeyContext::None))
            .map(|_| ()),
        rt.block_on(kek.check()),
    ] {
        assert!(
            matches!(&result, Err(EncryptError::KeyServiceUnavailable(_))),
            "{result:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "failing took {:?}",
        started.elapsed()
    );
    // The error a client gets is 503, never plaintext.
    let err = rt
        .block_on(kek.unwrap(&uncached, &KeyContext::None))
        .expect_err("unavailable");
    assert_eq!(err.to_s3_error().status().as_u16(), 503);
}

fn kms_kek(moto: &Moto, key_id: &str) -> KmsKek {
    KmsKek::new(KmsConfig {
        key_id: key_id.to_owned(),
        region: "us-east-1".to_owned(),
        endpoint: Some(moto.endpoint()),
        credentials: KmsCredentials {
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
            session_token: None,
        },
        timeout: Duration::from_secs(10),
        allow_insecure_http: false,
    })
    .expect("a valid KMS config")
}

#[test]
fn kms_round_trip_contexts_and_unknown_key() {
    let rt = runtime();
    let moto = Moto::start();
    let key_id = moto.kms_create_key();
    let kek = kms_kek(&moto, &key_id);
    assert_eq!(kek.name(), format!("kms:{key_id}"));
    rt.block_on(kek.check()).expect("check");

    let here = KeyContext::object("photos", "cat.jpg");
    for context in [KeyContext::None, KeyContext::bucket("photos"), here.clone()] {
        let (dek, wrapped) = rt
            .block_on(kek.generate_data_key(&context))
            .expect("GenerateDataKey");
        let back = rt
            .block_on(kek.unwrap(&wrapped, &context))
            .expect("Decrypt");
        assert_eq!(back.as_bytes(), dek.as_bytes(), "{context:?}");
    }

    let (_, wrapped) = rt.block_on(kek.generate_data_key(&here)).expect("generate");
    for other in [
        KeyContext::object("photos", "dog.jpg"),
        KeyContext::bucket("photos"),
        KeyContext::None,
    ] {
        assert_eq!(
            rt.block_on(kek.unwrap(&wrapped, &other)).map(|_| ()),
            Err(EncryptError::KeyUnwrap),
            "{other:?}"
        );
    }
    assert_eq!(
        rt.block_on(kek.unwrap(&WrappedKey::new("%%%not base64"), &here))
            .map(|_| ()),
        Err(EncryptError::KeyUnwrap)
    );

    // A data key of another KMS key is not unwrapped by this one (Decrypt names the key).
    let other_id = moto.kms_create_key();
    let other = kms_kek(&moto, &other_id);
    let (_, other_wrapped) = rt
        .block_on(other.generate_data_key(&here))
        .expect("generate with the other key");
    let result = rt.block_on(kek.unwrap(&other_wrapped, &here));
    assert!(
        matches!(
            &result,
            Err(EncryptError::KeyUnwrap | EncryptError::KeyServiceRefused(_))
        ),
        "{result:?}"
    );

    // An unknown key id is refused, and the startup check says so.
    let unknown = kms_kek(&moto, "11111111-2222-3333-4444-555555555555");
    assert!(matches!(
        rt.block_on(unknown.generate_data_key(&KeyContext::None)),
        Err(EncryptError::KeyServiceRefused(_))
    ));
    let err = rt
        .block_on(unknown.check())
        .expect_err("check of an unknown key");
    let EncryptError::KeyServiceRefused(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.contains("11111111-2222-3333-4444-555555555555"),
        "{message}"
    );
}

#[test]
fn kms_unreachable_is_unavailable() {
    let rt = runtime();
    let (_socket, port) = support::closed_port();
    let kek = KmsKek::new(KmsConfig {
        key_id: "any".to_owned(),
        region: "us-east-1".to_owned(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        credentials: KmsCredentials {
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
            session_token: None,
        },
        timeout: Duration::from_secs(3),
        allow_insecure_http: false,
    })
    .expect("a valid KMS config");
    let started = Instant::now();
    let result = rt.block_on(kek.generate_data_key(&KeyContext::None));
    assert!(
        matches!(&result, Err(EncryptError::KeyServiceUnavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn transit_over_tls_with_a_private_ca() {
    let rt = runtime();
    let bao = support::OpenBaoTls::start();
    let root = TransitAuth::Token(bao.root_token().to_owned());
    let mut config = TransitConfig::new(bao.url(), "app", root);
    config.timeout = Duration::from_secs(5);

    // Without the CA, the server's certificate is not trusted: unavailable, clearly.
    let untrusted = TransitKek::new(config.clone()).expect("a valid config");
    let err = rt
        .block_on(untrusted.check())
        .expect_err("untrusted certificate");
    assert!(
        matches!(&err, EncryptError::KeyServiceUnavailable(m) if m.contains("certificate")),
        "{err:?}"
    );

    // With it: enable Transit through the KEK's own TLS trust, then use the key.
    config.ca_pem = Some(bao.ca_pem().to_vec());
    let kek = TransitKek::new(config).expect("a valid config");
    let err = rt.block_on(kek.check()).expect_err("no Transit engine yet");
    assert!(
        matches!(&err, EncryptError::KeyServiceRefused(_)),
        "{err:?}"
    );
    bao.cli(&["secrets", "enable", "transit"]);
    bao.cli(&["write", "-f", "transit/keys/app"]);
    rt.block_on(kek.check()).expect("check over TLS");
    let (dek, wrapped) = rt
        .block_on(kek.generate_data_key(&KeyContext::None))
        .expect("generate over TLS");
    let back = rt
        .block_on(kek.unwrap(&wrapped, &KeyContext::None))
        .expect("unwrap over TLS");
    assert_eq!(back.as_bytes(), dek.as_bytes());
}
