//! Test tools for the transport's defences (feature `test-utils`): QUIC clients that send and
//! never hear an answer. To a node, each is a source address that cannot receive, as a forged
//! one: its Initials are genuine (Peergroup's ALPN, the served name), so a handshake the node
//! takes on holds a slot until it times out, and a Retry is never answered.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

use crate::error::{Result, TransportError};

/// A socket that sends and never receives.
struct Deaf(Arc<dyn AsyncUdpSocket>);

impl fmt::Debug for Deaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deaf")
    }
}

impl AsyncUdpSocket for Deaf {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }
    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.try_send(transmit)
    }
    fn poll_recv(
        &self,
        _cx: &mut Context,
        _bufs: &mut [IoSliceMut<'_>],
        _meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        // Never ready: nothing the node answers is ever read.
        Poll::Pending
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Deaf connection attempts in flight; dropping it ends them.
pub struct DeafClients {
    endpoints: Vec<quinn::Endpoint>,
    _attempts: Vec<quinn::Connecting>,
}

impl DeafClients {
    /// Starts `count` handshakes to `target` for `server_name`, each from its own endpoint
    /// (its own port), bound in turn to the addresses of `sources`. Must run inside a tokio
    /// runtime.
    pub fn start(
        target: SocketAddr,
        server_name: &str,
        sources: &[std::net::IpAddr],
        count: usize,
    ) -> Result<DeafClients> {
        let failed = |what: &str, e: &dyn fmt::Display| {
            TransportError::InvalidConfig(format!("deaf client: {what}: {e}"))
        };
        let config = client_config().map_err(|e| failed("TLS", &e))?;
        let mut endpoints = Vec::with_capacity(count);
        let mut attempts = Vec::with_capacity(count);
        for k in 0..count {
            let ip = sources[k % sources.len().max(1)];
            let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
                .map_err(|e| failed("bind", &e))?;
            let runtime = Arc::new(quinn::TokioRuntime);
            let deaf = Arc::new(Deaf(
                runtime
                    .wrap_udp_socket(socket)
                    .map_err(|e| failed("socket", &e))?,
            ));
            let mut endpoint =
                quinn::Endpoint::new_with_abstract_socket(Default::default(), None, deaf, runtime)
                    .map_err(|e| failed("endpoint", &e))?;
            endpoint.set_default_client_config(config.clone());
            attempts.push(
                endpoint
                    .connect(target, server_name)
                    .map_err(|e| failed("connect", &e))?,
            );
            endpoints.push(endpoint);
        }
        Ok(DeafClients {
            endpoints,
            _attempts: attempts,
        })
    }

    /// How many attempts are in flight.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

impl Drop for DeafClients {
    fn drop(&mut self) {
        for e in &self.endpoints {
            e.close(0u32.into(), b"");
        }
    }
}

/// A client configuration that would never get past the server's certificate (it never gets
/// that far): TLS 1.3, Peergroup's ALPN, no roots.
fn client_config() -> std::result::Result<quinn::ClientConfig, Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tls.alpn_protocols = vec![crate::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}
