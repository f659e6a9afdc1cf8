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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| async move {
                    let mut response = Response::new(Full::new(Bytes::from_static(
                        br#"{"errors":["fake transit says no"]}"#,
                    )));
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
