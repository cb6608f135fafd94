//! A raw quinn endpoint pair with the same certificates, keys and TLS 1.3 cipher suites as a
//! Peergroup node, for benchmarks that compare with plain quinn. Shared by the transport's
//! `connect` bench and the core's `direct` bench (included with `#[path]`).

use std::sync::Arc;

use peergroup_identity::gmc::{GroupRoot, Role};
use peergroup_identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};
use peergroup_transport::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A member's chain and key.
pub struct Member {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKey,
}

/// A member of `root` with a fresh P-256 key.
pub fn member(root: &GroupRoot, name: &str) -> Member {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert = IdentityCertificate::issue(&key, name, name).unwrap();
    let grc = root.certificate();
    let chain = root
        .issue(&cert, &[Role::Member], grc.not_before(), grc.not_after())
        .unwrap();
    Member {
        chain: chain
            .to_der_list()
            .into_iter()
            .map(CertificateDer::from)
            .collect(),
        key,
    }
}

/// The key as rustls takes it.
pub fn key_der(key: &PrivateKey) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()))
}

/// Verifies the handshake signature only: the raw baseline's trust.
#[derive(Debug)]
struct SignatureOnly(Arc<rustls::crypto::CryptoProvider>);

impl SignatureOnly {
    fn check(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for SignatureOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server and a client endpoint on loopback, each side trusting any certificate whose
/// handshake signature verifies.
pub fn raw_endpoints(server: &Member, client: &Member) -> (quinn::Endpoint, quinn::Endpoint) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(SignatureOnly(provider.clone()));
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(server.chain.clone(), key_der(&server.key))
        .unwrap();
    server_tls.alpn_protocols = vec![peergroup_transport::ALPN.to_vec()];
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(client.chain.clone(), key_der(&client.key))
        .unwrap();
    client_tls.alpn_protocols = vec![peergroup_transport::ALPN.to_vec()];
    let server_cfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).unwrap(),
    ));
    let server_ep = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut client_ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client_ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).unwrap(),
    )));
    (server_ep, client_ep)
}
