//! How `TransitKek` sorts the HTTP statuses of a Transit server. The server here is a
//! hand-written fake answering one fixed status (a real OpenBao cannot be made to throttle
//! on demand); the behaviour against a real OpenBao is in the workspace's `e2e_kek` tests.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use s3_encrypt::{
    EncryptError, KeyContext, KeyEncryptionKey, TransitAuth, TransitConfig, TransitKek,
};
use tokio::net::TcpListener;

/// A fake Transit answering every request with `status` and a Vault-style error body.
async fn fake_transit(status: StatusCode) -> String {
    fake_transit_saying(status, r#"{"errors":["fake transit says no"]}"#).await
}

/// A fake Transit answering every request with `status` and `body`.
async fn fake_transit_saying(status: StatusCode, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| async move {
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn generate(status: StatusCode) -> EncryptError {
    let address = fake_transit(status).await;
    let kek = TransitKek::new(TransitConfig::new(
        address,
        "s3",
        TransitAuth::Token("t".to_owned()),
    ))
    .unwrap();
    kek.generate_data_key(&KeyContext::None).await.unwrap_err()
}

#[tokio::test]
async fn throttling_and_standby_are_unavailable_other_client_errors_refused() {
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::PRECONDITION_FAILED,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let err = generate(status).await;
        assert!(
            matches!(err, EncryptError::KeyServiceUnavailable(_)),
            "{status}: {err:?}"
        );
        assert_eq!(err.to_s3_error().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    for status in [StatusCode::FORBIDDEN, StatusCode::BAD_REQUEST] {
        let err = generate(status).await;
        assert!(
            matches!(err, EncryptError::KeyServiceRefused(_)),
            "{status}: {err:?}"
        );
    }
}

/// A data key that Transit cannot decrypt (`400` with Transit's authentication error) is
/// `KeyUnwrap`, whatever the key is called: the sorting reads Transit's own `errors`, not the
/// message around them, which holds the URL with the key's name.
#[tokio::test]
async fn unwrap_errors_are_sorted_on_transit_errors_not_the_url() {
    let address = fake_transit_saying(
        StatusCode::BAD_REQUEST,
        r#"{"errors":["cipher: message authentication failed"]}"#,
    )
    .await;
    let kek = TransitKek::new(TransitConfig::new(
        address.clone(),
        "missing-not-found",
        TransitAuth::Token("t".to_owned()),
    ))
    .unwrap();
    let wrapped = s3_encrypt::WrappedKey::new("vault:v1:AAAA");
    assert_eq!(
        kek.unwrap(&wrapped, &KeyContext::None).await.unwrap_err(),
        EncryptError::KeyUnwrap
    );

    let address = fake_transit_saying(
        StatusCode::BAD_REQUEST,
        r#"{"errors":["encryption key not found"]}"#,
    )
    .await;
    let kek = TransitKek::new(TransitConfig::new(
        address,
        "s3",
        TransitAuth::Token("t".to_owned()),
    ))
    .unwrap();
    assert!(matches!(
        kek.unwrap(&wrapped, &KeyContext::None).await.unwrap_err(),
        EncryptError::KeyServiceRefused(_)
    ));
}
