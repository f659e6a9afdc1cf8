#![allow(dead_code)] // shared with tests and benches, which use different parts

//! The embedded development backend: an in-process s3s-fs S3 server on a loopback port,
//! storing buckets as directories. Used by `--dev`, and by the tests and benches as the real
//! S3 server behind the gateway (s3s checks SigV4, so it proves the re-signing).

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

/// A running s3s-fs server.
pub(crate) struct DevBackend {
    /// `http://127.0.0.1:<port>`
    pub(crate) endpoint: String,
    /// The address it listens on.
    pub(crate) addr: SocketAddr,
    /// The access key it accepts.
    pub(crate) access_key: String,
    /// The secret key it accepts.
    pub(crate) secret_key: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevBackend {
    /// Starts s3s-fs on `127.0.0.1:0` storing under `root` (created if missing), accepting
    /// only `access_key`/`secret_key`.
    pub(crate) async fn start(
        root: &Path,
        access_key: &str,
        secret_key: &str,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            access_key.to_owned(),
            secret_key.to_owned(),
        ));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // s3s-fs writes bodies in small pieces: without nodelay each waits for
                // delayed ACKs (40 ms stalls).
                let _ = stream.set_nodelay(true);
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            addr,
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            task,
        })
    }
}
