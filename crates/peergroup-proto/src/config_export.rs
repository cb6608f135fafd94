//! The document of `PeerGroupExportConfig`/`PeerGroupImportConfig`: one identity's membership
//! of one group, password-protected, for use on another machine.
//!
//! ```text
//! <PEERGROUPCONFIG VERSION="1.0">
//!   <IDENTITY>identity peer name</IDENTITY>
//!   <GROUP>group peer name</GROUP>
//!   <DATA xmlns:dt="urn:schemas-microsoft-com:datatypes" dt:dt="bin.base64">…</DATA>
//! </PEERGROUPCONFIG>
//! ```
//!
//! `DATA` is the identity export's blob format ([`crate::identity::export`]: PBKDF2-HMAC-SHA256
//! then AES-256-GCM, with a password verifier), bound to the context
//! `"peergroup group config\0" identity "\0" group`, so the names in the clear cannot be
//! swapped. The plaintext is a JSON object ([`GroupConfig::encode_payload`]): the group
//! properties as stored, cloud, scope and cloud flags, whether the member synchronised, the
//! group root certificate, the member's GMC chain, the signed properties, the known peer
//! addresses and, from the group's owner, the group root key.
//!
//! The error table is the identity export's: not the document (`E_INVALIDARG`), bad base64 or
//! blob (`CRYPT_E_BAD_ENCODE`), short blob (`NTE_BAD_LEN`), wrong password (`0x80070056`),
//! altered data (`NTE_BAD_DATA`).

use std::net::SocketAddr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{ProtoError, Result};
use crate::identity::export::{self, SealedExport};
use crate::identity::xml::{self, Element};
use crate::identity::{IdentityError, PeerName};
use crate::properties::GroupProperties;

/// Largest configuration document accepted, in bytes.
pub const MAX_CONFIG_DOCUMENT_BYTES: usize = 256 * 1024;
/// Largest sealed blob accepted, in bytes.
pub const MAX_CONFIG_BLOB_BYTES: usize = 160 * 1024;
/// Most peer addresses a configuration carries.
pub const MAX_CONFIG_ADDRESSES: usize = 64;

const ROOT: &str = "PEERGROUPCONFIG";
const VERSION: &str = "1.0";
const PAYLOAD_FORMAT: u32 = 1;

/// One identity's membership of one group, as exported.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The member's identity peer name (it must exist where the configuration is imported).
    pub identity: PeerName,
    /// The group peer name.
    pub group: PeerName,
    /// The group's properties as stored by the exporter.
    pub properties: GroupProperties,
    /// PNRP scope, carried through (no PNRP here).
    pub scope: u32,
    /// PNRP cloud flags, carried through.
    pub cloud_flags: u32,
    /// True when the exporting member had synchronised with the group.
    pub synced: bool,
    /// The group root certificate, DER.
    pub grc_der: Vec<u8>,
    /// The member's membership chain (`GmcChain::to_bytes`).
    pub gmc_chain: Vec<u8>,
    /// The latest signed properties (wire encoding), when any were set.
    pub signed_properties: Option<Vec<u8>>,
    /// The group root key, PKCS#8: the group's owner only.
    pub root_key: Option<Zeroizing<Vec<u8>>>,
    /// Where members were last seen (bootstrap addresses for the importer).
    pub addresses: Vec<SocketAddr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    format: u32,
    properties: GroupProperties,
    scope: u32,
    cloud_flags: u32,
    synced: bool,
    grc: String,
    gmc: String,
    signed_properties: Option<String>,
    root_key: Option<String>,
    addresses: Vec<SocketAddr>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(field: &str, text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| bad(format!("{field} is not base64")))
}

fn bad(why: String) -> ProtoError {
    ProtoError::Identity(IdentityError::BadEncoding(format!(
        "group configuration: {why}"
    )))
}

/// The context the blob is bound to: both names, so neither can be swapped.
fn context(identity: &PeerName, group: &PeerName) -> String {
    format!("peergroup group config\0{identity}\0{group}")
}

impl GroupConfig {
    /// The JSON plaintext sealed in `DATA` (wiped on drop: it may hold the root key).
    pub fn encode_payload(&self) -> Zeroizing<Vec<u8>> {
        let mut payload = Payload {
            format: PAYLOAD_FORMAT,
            properties: self.properties.clone(),
            scope: self.scope,
            cloud_flags: self.cloud_flags,
            synced: self.synced,
            grc: b64(&self.grc_der),
            gmc: b64(&self.gmc_chain),
            signed_properties: self.signed_properties.as_deref().map(b64),
            root_key: self.root_key.as_deref().map(|k| b64(k)),
            addresses: self.addresses.clone(),
        };
        let out = Zeroizing::new(serde_json::to_vec(&payload).expect("plain data serialises"));
        payload.root_key.zeroize();
        out
    }

    /// Reads a plaintext payload for `identity` and `group`: strict JSON, bounded fields.
    /// Checks structure only; `Peergroup::import_config` checks the certificates.
    pub fn decode_payload(identity: PeerName, group: PeerName, bytes: &[u8]) -> Result<Self> {
        let mut p: Payload =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("payload: {e}")))?;
        let root_key = p
            .root_key
            .as_deref()
            .map(|s| unb64("root_key", s).map(Zeroizing::new))
            .transpose();
        p.root_key.zeroize();
        let root_key = root_key?;
        if p.format != PAYLOAD_FORMAT {
            return Err(ProtoError::Identity(IdentityError::UnsupportedVersion(
                format!("group configuration payload format {}", p.format),
            )));
        }
        if p.addresses.len() > MAX_CONFIG_ADDRESSES {
            return Err(bad(format!(
                "{} addresses, at most {MAX_CONFIG_ADDRESSES}",
                p.addresses.len()
            )));
        }
        if p.properties.group_peer_name != group.to_string() {
            return Err(bad("the properties name another group".into()));
        }
        Ok(GroupConfig {
            identity,
            group,
            properties: p.properties,
            scope: p.scope,
            cloud_flags: p.cloud_flags,
            synced: p.synced,
            grc_der: unb64("grc", &p.grc)?,
            gmc_chain: unb64("gmc", &p.gmc)?,
            signed_properties: p
                .signed_properties
                .as_deref()
                .map(|s| unb64("signed_properties", s))
                .transpose()?,
            root_key,
            addresses: p.addresses,
        })
    }

    /// The exported document, sealed under `password` with `rounds` PBKDF2 rounds.
    pub fn seal(&self, password: &str, rounds: u32) -> Result<String> {
        let blob = export::seal_bytes(
            &context(&self.identity, &self.group),
            &self.encode_payload(),
            password,
            rounds,
        )?;
        Ok(Element::new(ROOT)
            .attr("VERSION", VERSION)
            .child(Element::new("IDENTITY").text(&self.identity.to_string()))
            .child(Element::new("GROUP").text(&self.group.to_string()))
            .child(xml::base64_element("DATA", &blob))
            .to_xml())
    }

    /// Opens a document: the envelope, then the blob under `password`, then the payload.
    /// Runs no file-system operation, so a refusal changes nothing.
    pub fn open(text: &str, password: &str) -> Result<Self> {
        let (identity, group, blob) = parse_envelope(text)?;
        let plain =
            SealedExport::decode(&blob)?.open_bytes(&context(&identity, &group), password)?;
        // Decrypted under the right password, so a payload that does not read was altered.
        Self::decode_payload(identity, group, &plain)
            .map_err(|_| ProtoError::Identity(IdentityError::Tampered))
    }
}

/// Reads the clear part of a configuration document: identity, group and the sealed blob.
pub fn parse_envelope(text: &str) -> Result<(PeerName, PeerName, Vec<u8>)> {
    let malformed = |why: String| ProtoError::Identity(IdentityError::MalformedDocument(why));
    let root = xml::parse(text, MAX_CONFIG_DOCUMENT_BYTES)?;
    if root.name != ROOT {
        return Err(malformed(format!(
            "expected <{ROOT}>, found <{}>",
            root.name
        )));
    }
    match root.get_attr("VERSION") {
        Some(VERSION) => {}
        Some(other) => {
            return Err(ProtoError::Identity(IdentityError::UnsupportedVersion(
                format!("<{ROOT}> version {other}"),
            )))
        }
        None => return Err(malformed(format!("<{ROOT}> has no VERSION"))),
    }
    let name =
        |tag: &str| -> Result<PeerName> { Ok(root.require_child(tag)?.text.parse::<PeerName>()?) };
    let identity = name("IDENTITY")?;
    let group = name("GROUP")?;
    let blob = xml::base64_content(root.require_child("DATA")?, MAX_CONFIG_BLOB_BYTES)?;
    Ok((identity, group, blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hresult::*;

    fn sample() -> GroupConfig {
        let group: PeerName = "0123456789abcdef0123456789abcdef01234567.club"
            .parse()
            .unwrap();
        GroupConfig {
            identity: "89abcdef0123456789abcdef0123456789abcdef.alice"
                .parse()
                .unwrap(),
            group: group.clone(),
            properties: GroupProperties {
                group_peer_name: group.to_string(),
                classifier: "club".into(),
                ..Default::default()
            },
            scope: 2,
            cloud_flags: 1,
            synced: true,
            grc_der: vec![1, 2, 3],
            gmc_chain: vec![4, 5],
            signed_properties: None,
            root_key: Some(Zeroizing::new(vec![9; 40])),
            addresses: vec!["127.0.0.1:4000".parse().unwrap()],
        }
    }

    #[test]
    fn seal_then_open_round_trips() {
        let doc = sample().seal("pw", export::MIN_ITERATIONS).unwrap();
        assert!(doc.starts_with("<PEERGROUPCONFIG VERSION=\"1.0\"><IDENTITY>"));
        let back = GroupConfig::open(&doc, "pw").unwrap();
        assert_eq!(back.identity, sample().identity);
        assert_eq!(back.group, sample().group);
        assert_eq!((back.scope, back.cloud_flags, back.synced), (2, 1, true));
        assert_eq!(back.grc_der, vec![1, 2, 3]);
        assert_eq!(back.gmc_chain, vec![4, 5]);
        assert_eq!(
            back.root_key.as_deref().map(|k| k.as_slice()),
            Some(&[9u8; 40][..])
        );
        assert_eq!(back.addresses, sample().addresses);
    }

    #[test]
    fn refusals_take_the_identity_export_codes() {
        let doc = sample().seal("pw", export::MIN_ITERATIONS).unwrap();
        let code = |t: &str, pw: &str| GroupConfig::open(t, pw).unwrap_err().hresult();
        assert_eq!(code(&doc, "wrong") as u32, 0x8007_0056);
        assert_eq!(code("not xml", "pw"), E_INVALIDARG);
        assert_eq!(code("<OTHER VERSION=\"1.0\"/>", "pw"), E_INVALIDARG);
        assert_eq!(
            code("<PEERGROUPCONFIG VERSION=\"2.0\"/>", "pw"),
            NTE_BAD_VER
        );
        // Names swapped in the clear no longer open the blob.
        let swapped = doc.replace(".alice<", ".alicf<");
        assert_ne!(swapped, doc);
        assert!(GroupConfig::open(&swapped, "pw").is_err());
        // Altered ciphertext fails the tag; a short blob is short.
        let (i, g, mut blob) = parse_envelope(&doc).unwrap();
        let envelope = |blob: &[u8]| {
            Element::new(ROOT)
                .attr("VERSION", VERSION)
                .child(Element::new("IDENTITY").text(&i.to_string()))
                .child(Element::new("GROUP").text(&g.to_string()))
                .child(xml::base64_element("DATA", blob))
                .to_xml()
        };
        assert_eq!(code(&envelope(&blob[..70]), "pw"), NTE_BAD_LEN);
        *blob.last_mut().unwrap() ^= 1;
        assert_eq!(code(&envelope(&blob), "pw"), NTE_BAD_DATA);
        assert_eq!(
            code(&envelope(b"garbage garbage garbage"), "pw"),
            CRYPT_E_BAD_ENCODE
        );
        let bad64 = doc.replace("<DATA", "<DATA>!!</DATA><X");
        assert!(GroupConfig::open(&bad64, "pw").is_err());
    }

    #[test]
    fn payload_decoder_is_strict() {
        let s = sample();
        let enc = s.encode_payload();
        let ok = GroupConfig::decode_payload(s.identity.clone(), s.group.clone(), &enc);
        assert!(ok.is_ok());
        for n in [0, 1, enc.len() / 2, enc.len() - 1] {
            assert!(
                GroupConfig::decode_payload(s.identity.clone(), s.group.clone(), &enc[..n])
                    .is_err()
            );
        }
        let other: PeerName = "0123456789abcdef0123456789abcdef01234567.other"
            .parse()
            .unwrap();
        assert!(GroupConfig::decode_payload(s.identity.clone(), other, &enc).is_err());
    }
}
