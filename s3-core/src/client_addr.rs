//! [`ClientAddr`]: the network address a request came from.

use std::net::{IpAddr, SocketAddr};

/// The address of the client that sent a request, put into the request extensions by the
/// server that accepted the connection, so that policies can match on it (`source_ip`) and
/// audit records name it. Layers never guess it from headers: a server behind a proxy it
/// trusts inserts the forwarded address itself.
///
/// ```
/// use std::net::SocketAddr;
/// use s3_core::ClientAddr;
///
/// let mut req = http::Request::new(());
/// let peer: SocketAddr = "[::ffff:192.0.2.7]:50000".parse().unwrap();
/// req.extensions_mut().insert(ClientAddr::new(peer));
/// let addr = req.extensions().get::<ClientAddr>().unwrap();
/// assert_eq!(addr.ip().to_string(), "192.0.2.7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(SocketAddr);

impl ClientAddr {
    /// The client at `addr`. An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`)
    /// is recorded as the IPv4 address, so that one client has one spelling in policies.
    pub fn new(addr: SocketAddr) -> Self {
        Self(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
    }

    /// The client's IP address.
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    /// The client's address and port.
    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }
}

impl From<SocketAddr> for ClientAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr)
    }
}
