//! A plain HTTP/1.1 client for hand-built requests and presigned URLs, over TCP or over TLS
//! trusting the gateway's self-signed certificate; and a raw socket for a client that hangs
//! up in the middle of its body.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::sign::RawRequest;
use super::stack::Gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(crate) const BOTH: [Self; 2] = [Self::Http, Self::Https];
}

impl Gateway {
    pub(crate) fn addr(&self, scheme: Scheme) -> std::net::SocketAddr {
        match scheme {
            Scheme::Http => self.http,
            Scheme::Https => self.https,
        }
    }

    /// `127.0.0.1:<port>`, the `host` clients sign.
    pub(crate) fn host(&self, scheme: Scheme) -> String {
        self.addr(scheme).to_string()
    }

    /// `http(s)://127.0.0.1:<port>`.
    pub(crate) fn endpoint(&self, scheme: Scheme) -> String {
        match scheme {
            Scheme::Http => format!("http://{}", self.http),
            Scheme::Https => format!("https://{}", self.https),
        }
    }

    /// A request to `path` on this gateway, `host` set.
    pub(crate) fn request(&self, scheme: Scheme, method: http::Method, path: &str) -> RawRequest {
        RawRequest::new(method, path, &self.host(scheme))
    }

    /// Sends `req` on a fresh connection.
    pub(crate) async fn send(&self, scheme: Scheme, req: RawRequest) -> Reply {
        self.send_http(scheme, req.into_http()).await
    }

    /// Sends an `http::Request` (origin-form URI, `host` set) on a fresh connection.
    pub(crate) async fn send_http(&self, scheme: Scheme, req: http::Request<Full<Bytes>>) -> Reply {
        let tcp = TcpStream::connect(self.addr(scheme)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        match scheme {
            Scheme::Http => exchange(tcp, req).await,
            Scheme::Https => {
                let tls = self.tls_connect(tcp, b"http/1.1").await;
                exchange(tls, req).await
            }
        }
    }

    /// Sends `req` over HTTPS with HTTP/2 (ALPN `h2`), as the SDK does when the listener
    /// offers it: the URI carries the authority and there is no `host` header.
    pub(crate) async fn send_h2(&self, req: RawRequest) -> Reply {
        let host = req.header_value("host").unwrap().to_owned();
        let mut req = req.into_http();
        req.headers_mut().remove(http::header::HOST);
        *req.uri_mut() = format!("https://{host}{}", req.uri()).parse().unwrap();
        *req.version_mut() = http::Version::HTTP_2;
        let tcp = TcpStream::connect(self.https).await.unwrap();
        let tls = self.tls_connect(tcp, b"h2").await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let response = sender.send_request(req).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, body }
    }

    async fn tls_connect(
        &self,
        tcp: TcpStream,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.tls.cert_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::IpAddress(self.https.ip().into());
        connector.connect(name, tcp).await.unwrap()
    }

    /// GETs or PUTs an absolute (presigned) URL on this gateway with `headers` and `body`.
    pub(crate) async fn send_url(
        &self,
        scheme: Scheme,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let uri: http::Uri = url.parse().unwrap();
        assert_eq!(
            uri.authority().unwrap().as_str(),
            self.host(scheme),
            "{url} is not for this gateway"
        );
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri.path_and_query().unwrap().as_str())
            .header("host", self.host(scheme));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send_http(scheme, builder.body(Full::new(body)).unwrap())
            .await
    }

    /// Writes the head of `req` (with its full `content-length`) and only the first
    /// `sent` bytes of its body over plain HTTP, then closes the sending side. The reply,
    /// if the gateway writes one before the connection ends.
    pub(crate) async fn send_truncated(&self, req: RawRequest, sent: usize) -> Option<Reply> {
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path_and_query());
        for (name, value) in &req.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(head, "content-length: {}\r\n\r\n", req.body.len());
        let mut tcp = TcpStream::connect(self.http).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&req.body[..sent]).await.unwrap();
        tcp.flush().await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the gateway neither answered nor closed");
        Reply::parse(&answer)
    }
}

async fn exchange<T>(io: T, req: http::Request<Full<Bytes>>) -> Reply
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, body }
}

/// A response, its body collected.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 XML error body.
    pub(crate) fn code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_owned())
    }

    /// Asserts the status and the S3 error code.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, code: &str, context: &str) {
        assert_eq!(
            (self.status, self.code().as_deref()),
            (status, Some(code)),
            "{context}: {}",
            self.text()
        );
    }

    /// A raw HTTP/1.1 response (headers and body, no chunked decoding).
    fn parse(raw: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some(Self {
            status,
            body: Bytes::from(body.to_owned()),
        })
    }
}
