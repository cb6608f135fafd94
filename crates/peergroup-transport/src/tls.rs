//! rustls and quinn configuration: mutual TLS 1.3 whose certificate checks ask a [`TrustPolicy`].
//!
//! One verifier type serves both directions. It hands the chain to the policy and checks the
//! handshake signature itself with rustls' `verify_tls13_signature` and the ring provider, over
//! the end-entity certificate's key, so a peer must hold the key of the chain it presents.
//! Session resumption and 0-RTT are off on both sides: a resumed session would skip the
//! certificate check, and trust can change between two connections (a member removed).

use std::fmt;
use std::sync::{Arc, OnceLock};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::credentials::{CredentialResolver, Credentials};
use crate::error::{Result, TransportError};
use crate::node::Limits;
use crate::trust::{Side, TrustError, TrustPolicy};
use crate::tunnel::datagram::CHANNEL_HEADER_LEN;
use crate::tunnel::MAX_TUNNELS_PER_CONNECTION;
use crate::ALPN;

/// The handshake signature schemes we offer and accept: those of the identity layer's keys.
const SCHEMES: [SignatureScheme; 2] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ED25519,
];

/// The ring crypto provider, built once.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Asks a [`TrustPolicy`] about chains and checks handshake signatures.
struct PolicyVerifier {
    policy: Arc<dyn TrustPolicy>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for PolicyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyVerifier").finish_non_exhaustive()
    }
}

impl PolicyVerifier {
    fn new(policy: Arc<dyn TrustPolicy>) -> Self {
        PolicyVerifier {
            policy,
            provider: provider(),
        }
    }

    fn check_chain(
        &self,
        peer_side: Side,
        server_name: Option<&str>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> std::result::Result<(), rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        self.policy
            .verify_peer(peer_side, server_name, &chain)
            .map_err(|e| {
                tracing::debug!(?peer_side, server_name, error = %e, "trust policy refused a peer");
                rustls::Error::InvalidCertificate(certificate_error(e))
            })
    }

    fn check_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        if !SCHEMES.contains(&dss.scheme) {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

/// Maps a policy refusal to the certificate error whose TLS alert says its category.
fn certificate_error(e: TrustError) -> CertificateError {
    match e {
        TrustError::BadCertificate(_) => CertificateError::BadEncoding,
        TrustError::Untrusted(_) => CertificateError::Other(OtherError(Arc::new(e))),
        TrustError::Expired(_) => CertificateError::Expired,
        TrustError::Revoked(_) => CertificateError::Revoked,
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let name = match server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            other => other.to_str().into_owned(),
        };
        self.check_chain(Side::Server, Some(&name), end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

impl ClientCertVerifier for PolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.check_chain(Side::Client, None, end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

/// Picks the server certificate by SNI through the group layer's resolver.
struct SniResolver(Arc<dyn CredentialResolver>);

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            tracing::debug!("refusing a client hello without SNI");
            return None;
        };
        let found = self.0.resolve(name);
        if found.is_none() {
            tracing::debug!(server_name = name, "no credentials for the name asked");
        }
        found.map(|c| c.certified_key())
    }
}

/// Always presents the same client certificate.
#[derive(Debug)]
struct ClientCredentials(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCredentials {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn internal(e: impl fmt::Display) -> TransportError {
    TransportError::Internal(e.to_string())
}

/// The QUIC transport parameters, the same bounds on both sides except who may open the
/// control stream.
///
/// Each side may open [`MAX_TUNNELS_PER_CONNECTION`] tunnel streams; the server also accepts the
/// control stream. Every stream gets `stream_window`, and the connection as a whole
/// `stream_window` per possible stream, so that full tunnels never starve the control stream:
/// the peer can make us buffer at most `stream_window * (1 + MAX_TUNNELS_PER_CONNECTION)`
/// bytes per connection (14 MiB with the defaults), and we keep as much unacknowledged.
fn transport_config(limits: &Limits, accepts_control: bool) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let streams = MAX_TUNNELS_PER_CONNECTION + u32::from(accepts_control);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    let idle = quinn::IdleTimeout::try_from(limits.idle_timeout)
        .map_err(|_| TransportError::InvalidConfig("idle timeout out of range".into()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(limits.keep_alive));
    t.stream_receive_window(quinn::VarInt::from_u32(limits.stream_window));
    let total = connection_window(limits);
    t.receive_window(quinn::VarInt::from_u64(total).map_err(internal)?);
    t.send_window(total);
    t.datagram_receive_buffer_size(None);
    // Room for a channel header, so that a connection through a tunnel sends channel
    // datagrams no larger than quinn's usual largest datagram.
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD - CHANNEL_HEADER_LEN as u16);
    t.mtu_discovery_config(Some(mtu));
    Ok(t)
}

/// quinn's default largest datagram: a 1 500-byte IPv6 path less its IPv6 and UDP headers.
const MAX_UDP_PAYLOAD: u16 = 1452;

/// The connection-level flow-control window: one stream window per possible stream.
fn connection_window(limits: &Limits) -> u64 {
    u64::from(limits.stream_window) * u64::from(1 + MAX_TUNNELS_PER_CONNECTION)
}

/// The endpoint's one server configuration: certificate by SNI, client certificate required.
pub(crate) fn server_config(
    resolver: Arc<dyn CredentialResolver>,
    trust: Arc<dyn TrustPolicy>,
    limits: &Limits,
) -> Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(internal)?
        .with_client_cert_verifier(Arc::new(PolicyVerifier::new(trust)))
        .with_cert_resolver(Arc::new(SniResolver(resolver)));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(Arc::new(tls)).map_err(internal)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(limits, true)?));
    Ok(config)
}

/// A client configuration for one connection: our credentials, their chain checked by `trust`.
pub(crate) fn client_config(
    credentials: &Credentials,
    trust: Arc<dyn TrustPolicy>,
    limits: &Limits,
) -> Result<quinn::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(internal)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(trust)))
        .with_client_cert_resolver(Arc::new(ClientCredentials(credentials.certified_key())));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    tls.enable_early_data = false;
    let quic = QuicClientConfig::try_from(Arc::new(tls)).map_err(internal)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(limits, false)?));
    Ok(config)
}

/// Checks that `name` can be sent as SNI (a DNS name, not an IP address).
pub(crate) fn check_server_name(name: &str) -> Result<()> {
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(_)) => Ok(()),
        _ => Err(TransportError::InvalidServerName(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_names_are_server_names() {
        assert!(check_server_name("group-1a2b.peergroup").is_ok());
        assert!(check_server_name("a").is_ok());
        for bad in ["", "127.0.0.1", "::1", "has space", "under_score!", "a..b"] {
            let e = check_server_name(bad).unwrap_err();
            assert!(matches!(e, TransportError::InvalidServerName(_)), "{bad}");
        }
    }

    #[test]
    fn configs_build_with_the_default_limits() {
        struct No;
        impl TrustPolicy for No {
            fn verify_peer(
                &self,
                _: Side,
                _: Option<&str>,
                _: &[CertificateDer<'_>],
            ) -> std::result::Result<(), TrustError> {
                Err(TrustError::Untrusted("no".into()))
            }
        }
        let limits = Limits::default();
        assert_eq!(connection_window(&limits), 14 * 1024 * 1024);
        server_config(
            Arc::new(crate::credentials::NoCredentials),
            Arc::new(No),
            &limits,
        )
        .unwrap();
    }
}
