//! The XML documents of the Identity Manager: `PEERIDENTITYINFO` (the public part an inviter
//! needs, from `PeerIdentityGetXML`) and `PEERIDENTITYEXPORT` (from `PeerIdentityExport`).

use crate::cert::{IdentityCertificate, MAX_CERTIFICATE_BYTES};
use crate::error::{IdentityError, Result};
use crate::peer_name::PeerName;
use crate::xml::{self, Element};

/// Largest identity or export document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Largest export blob accepted, in bytes.
pub const MAX_EXPORT_BLOB_BYTES: usize = 32 * 1024;

const INFO_ROOT: &str = "PEERIDENTITYINFO";
const EXPORT_ROOT: &str = "PEERIDENTITYEXPORT";
const DOCUMENT_VERSION: &str = "1.0";

/// `<PEERIDENTITYINFO VERSION="1.0"><IDC …bin.base64>…</IDC></PEERIDENTITYINFO>`.
pub fn identity_info_xml(cert: &IdentityCertificate) -> String {
    Element::new(INFO_ROOT)
        .attr("VERSION", DOCUMENT_VERSION)
        .child(xml::base64_element("IDC", cert.der()))
        .to_xml()
}

/// Reads an identity info document and verifies the certificate inside it.
pub fn parse_identity_info(text: &str) -> Result<IdentityCertificate> {
    let root = root(text, INFO_ROOT)?;
    let der = xml::base64_content(root.require_child("IDC")?, MAX_CERTIFICATE_BYTES)?;
    IdentityCertificate::from_der(&der)
}

/// `<PEERIDENTITYEXPORT VERSION="1.0"><PEERNAME>…</PEERNAME><DATA …bin.base64>…</DATA>…`.
pub fn export_xml(peer_name: &PeerName, blob: &[u8]) -> String {
    Element::new(EXPORT_ROOT)
        .attr("VERSION", DOCUMENT_VERSION)
        .child(Element::new("PEERNAME").text(&peer_name.to_string()))
        .child(xml::base64_element("DATA", blob))
        .to_xml()
}

/// Reads an export document into the peer name it names and its encrypted blob.
pub fn parse_export(text: &str) -> Result<(PeerName, Vec<u8>)> {
    let root = root(text, EXPORT_ROOT)?;
    let name: PeerName = root.require_child("PEERNAME")?.text.parse()?;
    let blob = xml::base64_content(root.require_child("DATA")?, MAX_EXPORT_BLOB_BYTES)?;
    Ok((name, blob))
}

fn root(text: &str, expected: &str) -> Result<Element> {
    let root = xml::parse(text, MAX_DOCUMENT_BYTES)?;
    if root.name != expected {
        return Err(IdentityError::MalformedDocument(format!(
            "expected <{expected}>, found <{}>",
            root.name
        )));
    }
    match root.get_attr("VERSION") {
        Some(DOCUMENT_VERSION) => Ok(root),
        Some(other) => Err(IdentityError::UnsupportedVersion(format!(
            "<{expected}> version {other}"
        ))),
        None => Err(IdentityError::MalformedDocument(format!(
            "<{expected}> has no VERSION"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hresult::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};

    #[test]
    fn identity_info_round_trip_and_refusals() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = IdentityCertificate::issue(&key, "c", "Bob").unwrap();
        let text = identity_info_xml(&cert);
        assert!(text.starts_with("<PEERIDENTITYINFO VERSION=\"1.0\"><IDC xmlns:dt="));
        assert_eq!(parse_identity_info(&text).unwrap(), cert);
        let code = |t: &str| parse_identity_info(t).unwrap_err().hresult();
        assert_eq!(code("not xml"), E_INVALIDARG);
        assert_eq!(code("<OTHER VERSION=\"1.0\"/>"), E_INVALIDARG);
        assert_eq!(code("<PEERIDENTITYINFO VERSION=\"9.0\"/>"), NTE_BAD_VER);
        assert_eq!(
            code("<PEERIDENTITYINFO VERSION=\"1.0\"><IDC>!!</IDC></PEERIDENTITYINFO>"),
            CRYPT_E_BAD_ENCODE
        );
        assert_eq!(
            code("<PEERIDENTITYINFO VERSION=\"1.0\"><IDC>AAAA</IDC></PEERIDENTITYINFO>"),
            CRYPT_E_BAD_ENCODE
        );
    }
}
