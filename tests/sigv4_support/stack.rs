//! The stack under test, in process and served by hyper over HTTP and HTTPS:
//! `S3RequestLayer` → `SigV4Layer` (two static users) → a recorder of the `Principal` →
//! `ResignLayer` → `Upstream` → s3s-fs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use s3_tower::auth::{SecretKey, SigV4Body, SigV4Layer, StaticCredentials, StaticUser};
use s3_tower::core::{AuthMethod, Principal, S3RequestLayer};
use s3_tower::resign::{
    Backend, BackendAddressing, BackendCredentials, BackendRouter, ResignLayer, Upstream,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;

use crate::dev_backend::DevBackend;

/// A static user of the gateway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct User {
    pub(crate) access_key: &'static str,
    pub(crate) secret: &'static str,
    pub(crate) subject: &'static str,
}

pub(crate) const ALICE: User = User {
    access_key: "AKIDALICE0000000001",
    secret: "alice/Secret+Key=0000000000000000000001",
    subject: "alice",
};

pub(crate) const BOB: User = User {
    access_key: "AKIDBOB000000000002",
    secret: "bob/Secret+Key=00000000000000000000002",
    subject: "bob",
};

/// What the recorder between `SigV4Layer` and `ResignLayer` saw: the request and its
/// principal.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) subject: Option<String>,
    pub(crate) auth: Option<AuthMethod>,
}

/// What arrived on the wire, before any layer: how the client sent the payload.
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) version: http::Version,
    pub(crate) content_sha256: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) trailer: Option<String>,
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, as PEM.
#[derive(Debug, Clone)]
pub(crate) struct TlsIdentity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl TlsIdentity {
    pub(crate) fn generate() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap();
        Self {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        }
    }

    pub(crate) fn cert_der(&self) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    fn acceptor(&self, alpn: Alpn) -> tokio_rustls::TlsAcceptor {
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der()], key)
            .unwrap();
        config.alpn_protocols = match alpn {
            Alpn::H2AndHttp11 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http11 => vec![b"http/1.1".to_vec()],
        };
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// The protocols the HTTPS listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `h2` and `http/1.1`, as the gateway example's listener.
    H2AndHttp11,
    /// `http/1.1` only.
    Http11,
}

/// The running stack: one service behind an HTTP and an HTTPS listener.
pub(crate) struct Gateway {
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) tls: TlsIdentity,
    /// The s3s-fs root: `<root>/<bucket>/<key>`.
    pub(crate) root: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    wire: Arc<Mutex<Vec<Wire>>>,
    tasks: Vec<JoinHandle<()>>,
    _backend: DevBackend,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Gateway {
    /// Starts s3s-fs and the stack with a fresh certificate, HTTPS offering `h2` and
    /// `http/1.1`.
    pub(crate) async fn start() -> Self {
        Self::start_with(TlsIdentity::generate(), Alpn::H2AndHttp11).await
    }

    pub(crate) async fn start_with(tls: TlsIdentity, alpn: Alpn) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fs");
        let backend = DevBackend::start(&root, "BACKENDKEY", "backend-secret")
            .await
            .unwrap();
        let router = BackendRouter::single(
            Backend::new(
                "fs",
                &backend.endpoint,
                "us-east-1",
                BackendAddressing::Path,
                BackendCredentials::from_static("BACKENDKEY", "backend-secret", None),
            )
            .unwrap(),
        );
        let users = StaticCredentials::new([ALICE, BOB].map(|u| StaticUser {
            access_key_id: u.access_key.to_owned(),
            secret: SecretKey::new(u.secret),
            subject: u.subject.to_owned(),
            groups: Vec::new(),
        }))
        .unwrap();

        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let wire: Arc<Mutex<Vec<Wire>>> = Arc::default();
        let (record_seen, record_wire) = (Arc::clone(&seen), Arc::clone(&wire));
        let service = ServiceBuilder::new()
            .map_request(move |req: Request<Incoming>| {
                record_wire.lock().unwrap().push(Wire::of(&req));
                req
            })
            .layer(S3RequestLayer::new())
            .layer(SigV4Layer::new(users))
            .map_request(move |req: Request<SigV4Body<Incoming>>| {
                let principal = req.extensions().get::<Principal>();
                record_seen.lock().unwrap().push(Seen {
                    method: req.method().clone(),
                    path: req.uri().path().to_owned(),
                    subject: principal.map(|p| p.subject.clone()),
                    auth: principal.map(|p| p.auth),
                });
                req
            })
            .layer(ResignLayer::new(router))
            .service(Upstream::new().unwrap());

        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let https = https_listener.local_addr().unwrap();
        let acceptor = tls.acceptor(alpn);

        let plain = service.clone();
        let http_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = http_listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = TowerToHyperService::new(plain.clone());
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let https_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = https_listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = TowerToHyperService::new(service.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });

        Self {
            http,
            https,
            tls,
            root,
            seen,
            wire,
            tasks: vec![http_task, https_task],
            _backend: backend,
            _dir: dir,
        }
    }

    /// The principals recorded so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests as they arrived so far.
    pub(crate) fn wire(&self) -> Vec<Wire> {
        self.wire.lock().unwrap().clone()
    }

    /// Where s3s-fs keeps `bucket/key`.
    pub(crate) fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        Path::new(&self.root).join(bucket).join(key)
    }
}

impl Wire {
    fn of(req: &Request<Incoming>) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            version: req.version(),
            content_sha256: header("x-amz-content-sha256"),
            content_encoding: header("content-encoding"),
            trailer: header("x-amz-trailer"),
        }
    }
}
