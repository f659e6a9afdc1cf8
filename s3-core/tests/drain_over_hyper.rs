//! `DrainBodyLayer` under a real hyper HTTP/1.1 server: a request refused before its body is
//! read still gets its answer, and the connection stays usable for the next request.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use s3_core::{DrainBodyLayer, DrainableBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

/// 403 without reading the request body.
async fn refuse<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"refused")));
    *response.status_mut() = StatusCode::FORBIDDEN;
    Ok(response)
}

/// Serves one connection: every request is refused with 403 without reading its body,
/// behind `DrainBodyLayer` when `drain` is set.
async fn serve(drain: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let builder = Builder::new(TokioExecutor::new());
        let io = TokioIo::new(stream);
        if drain {
            let service = ServiceBuilder::new()
                .layer(DrainBodyLayer::new())
                .service_fn(refuse::<DrainableBody<Incoming>>);
            let _ = builder
                .serve_connection(io, TowerToHyperService::new(service))
                .await;
        } else {
            let service = ServiceBuilder::new().service_fn(refuse::<Incoming>);
            let _ = builder
                .serve_connection(io, TowerToHyperService::new(service))
                .await;
        }
    });
    addr
}

/// Sends a PUT whose body arrives after a pause, reads the answer, then sends a GET on the
/// same connection; returns both status lines (empty when the connection was closed).
async fn put_then_get(addr: std::net::SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"PUT /bucket/key HTTP/1.1\r\nhost: s3.local\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stream.write_all(&[b'x'; 1000]).await;
    let first = read_response(&mut stream).await;
    let _ = stream
        .write_all(b"GET /bucket/key HTTP/1.1\r\nhost: s3.local\r\n\r\n")
        .await;
    let second = read_response(&mut stream).await;
    (first, second)
}

/// The status line of the next response (its body is `refused`, 7 bytes), or "" at EOF.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\nrefused") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_refused_request_keeps_its_connection_when_drained() {
    let (first, second) = put_then_get(serve(true).await).await;
    assert_eq!(first, "HTTP/1.1 403 Forbidden");
    assert_eq!(
        second, "HTTP/1.1 403 Forbidden",
        "the connection serves the next request"
    );
}

/// The failure the layer prevents: without it, hyper answers before the body arrives and
/// closes the connection, so the next request on it gets nothing.
#[tokio::test]
async fn without_draining_the_connection_is_lost() {
    let (first, second) = put_then_get(serve(false).await).await;
    assert_eq!(first, "HTTP/1.1 403 Forbidden");
    assert_eq!(second, "", "hyper closed the connection");
}
