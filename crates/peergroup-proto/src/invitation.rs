//! Invitations: the XML text an inviter hands to an invitee (`PeerGroupCreateInvitation`,
//! `PeerGroupCreatePasswordInvitation`, `PeerGroupParseInvitation`).
//!
//! ```text
//! <PEERINVITATION VERSION="1.0">
//!   <GROUPPEERNAME>…</GROUPPEERNAME> <GROUPFRIENDLYNAME>…</GROUPFRIENDLYNAME>
//!   <CLOUDNAME>…</CLOUDNAME> <SCOPE>n</SCOPE> <CLOUDFLAGS>n</CLOUDFLAGS>
//!   <AUTHSCHEME>1|2</AUTHSCHEME>
//!   <ISSUERPEERNAME>…</ISSUERPEERNAME> <ISSUERFRIENDLYNAME>…</ISSUERFRIENDLYNAME>
//!   <ROLES><ROLE>{guid}</ROLE>…</ROLES>          password invitations: the password role
//!   <ADDRESSES><ADDRESS>ip:port</ADDRESS>…</ADDRESSES>
//!   <GRC dt:dt="bin.base64">…</GRC>               the group root certificate
//!   <GMC dt:dt="bin.base64">…</GMC>               GMC invitations: the invitee's chain
//! </PEERINVITATION>
//! ```
//!
//! Trust never rests on the text fields: a GMC invitation's subject, roles and validity are
//! read from its signed chain, which must lead to the root certificate, whose key hashes to
//! the group name's authority. Addresses are hints for the first connect.

use std::net::SocketAddr;

use crate::error::{InvitationError, ProtoError, Result, Shape};
use crate::identity::gmc::{GmcChain, GroupRootCertificate, Member, Role};
use crate::identity::xml::{self, Element};
use crate::identity::{IdentityError, PeerName};
use crate::properties::{PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PASSWORD_AUTHENTICATION};

/// Largest invitation accepted, in bytes.
pub const MAX_INVITATION_BYTES: usize = 256 * 1024;
const ROOT: &str = "PEERINVITATION";
const VERSION: &str = "1.0";

/// How an invitee authenticates.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A membership chain issued to the invitee.
    Gmc(GmcChain),
    /// The group password (`PeerGroupPasswordJoin`).
    Password,
}

/// A parsed invitation.
#[derive(Clone, Debug)]
pub struct Invitation {
    /// The group's peer name.
    pub group_name: PeerName,
    /// The group's friendly name.
    pub group_friendly_name: String,
    /// Cloud name, carried through.
    pub cloud: String,
    /// PNRP scope, carried through.
    pub scope: u32,
    /// Cloud flags, carried through.
    pub cloud_flags: u32,
    /// The inviter's peer name.
    pub issuer_peer_name: String,
    /// The inviter's friendly name.
    pub issuer_friendly_name: String,
    /// The group root certificate.
    pub grc: GroupRootCertificate,
    /// The invitee's credential.
    pub credential: Credential,
    /// Roles granted (from the chain for GMC invitations).
    pub roles: Vec<Role>,
    /// Where the inviter's group could be reached.
    pub addresses: Vec<SocketAddr>,
}

impl Invitation {
    /// `PEER_GROUP_AUTHENTICATION_SCHEME` of the invitation.
    pub fn auth_scheme(&self) -> u32 {
        match self.credential {
            Credential::Gmc(_) => PEER_GROUP_GMC_AUTHENTICATION,
            Credential::Password => PEER_GROUP_PASSWORD_AUTHENTICATION,
        }
    }

    /// The invitee, for GMC invitations: (peer name, friendly name).
    pub fn subject(&self) -> Option<(&PeerName, &str)> {
        match &self.credential {
            Credential::Gmc(chain) => {
                Some((chain.leaf().peer_name(), chain.leaf().friendly_name()))
            }
            Credential::Password => None,
        }
    }

    /// Validity window (unix seconds): the chain's for GMC invitations, the root's otherwise.
    pub fn validity(&self) -> (i64, i64) {
        match &self.credential {
            Credential::Gmc(chain) => (chain.leaf().not_before(), chain.leaf().not_after()),
            Credential::Password => (self.grc.not_before(), self.grc.not_after()),
        }
    }

    /// Checks a GMC invitation for `identity` at `now`: the chain leads to the root, is valid
    /// now and names this identity.
    pub fn validate_for(&self, identity: &PeerName, now: i64) -> Result<Member> {
        let Credential::Gmc(chain) = &self.credential else {
            return Err(InvitationError::NeedsPassword.into());
        };
        let member = chain.validate(&self.grc, now).map_err(|e| match e {
            IdentityError::InvalidTimePeriod(..) => InvitationError::Expired.into(),
            other => ProtoError::Identity(other),
        })?;
        if member.peer_name() != identity {
            return Err(InvitationError::ForAnother {
                invitee: member.peer_name().to_string(),
                identity: identity.to_string(),
            }
            .into());
        }
        Ok(member)
    }

    /// The XML text.
    pub fn to_xml(&self) -> String {
        let text = |name: &str, value: &str| Element::new(name).text(value);
        let mut roles = Element::new("ROLES");
        for r in &self.roles {
            roles = roles.child(text("ROLE", &r.to_string()));
        }
        let mut addrs = Element::new("ADDRESSES");
        for a in &self.addresses {
            addrs = addrs.child(text("ADDRESS", &a.to_string()));
        }
        let mut root = Element::new(ROOT)
            .attr("VERSION", VERSION)
            .child(text("GROUPPEERNAME", &self.group_name.to_string()))
            .child(text("GROUPFRIENDLYNAME", &self.group_friendly_name))
            .child(text("CLOUDNAME", &self.cloud))
            .child(text("SCOPE", &self.scope.to_string()))
            .child(text("CLOUDFLAGS", &self.cloud_flags.to_string()))
            .child(text("AUTHSCHEME", &self.auth_scheme().to_string()))
            .child(text("ISSUERPEERNAME", &self.issuer_peer_name))
            .child(text("ISSUERFRIENDLYNAME", &self.issuer_friendly_name))
            .child(roles)
            .child(addrs)
            .child(xml::base64_element("GRC", self.grc.der()));
        if let Credential::Gmc(chain) = &self.credential {
            root = root.child(xml::base64_element("GMC", &chain.to_bytes()));
        }
        root.to_xml()
    }

    /// Parses and checks an invitation's structure and root certificate (not its validity
    /// period nor its subject: see [`Invitation::validate_for`]).
    pub fn parse(text: &str) -> Result<Invitation> {
        let shape = |s: Shape| ProtoError::from(InvitationError::Shape(s));
        let missing = |name: &str| {
            shape(Shape::Missing {
                element: name.to_owned(),
            })
        };
        let root = xml::parse(text, MAX_INVITATION_BYTES).map_err(InvitationError::Xml)?;
        if root.name != ROOT {
            return Err(shape(Shape::WrongRoot {
                expected: ROOT.to_owned(),
                found: root.name.clone(),
            }));
        }
        match root.get_attr("VERSION") {
            Some(VERSION) => {}
            Some(v) => {
                return Err(ProtoError::Identity(IdentityError::UnsupportedVersion(
                    format!("invitation version {v}"),
                )))
            }
            None => {
                return Err(shape(Shape::MissingAttribute {
                    element: ROOT.to_owned(),
                    attribute: "VERSION".to_owned(),
                }))
            }
        }
        let field = |name: &str| -> Result<String> {
            Ok(root
                .get_child(name)
                .ok_or_else(|| missing(name))?
                .text
                .clone())
        };
        let number = |name: &str| -> Result<u32> {
            field(name)?.parse().map_err(|_| {
                InvitationError::NotANumber {
                    element: name.to_owned(),
                }
                .into()
            })
        };
        let group_name: PeerName = field("GROUPPEERNAME")?
            .parse()
            .map_err(InvitationError::GroupName)?;
        let grc_der = xml::base64_content(
            root.get_child("GRC").ok_or_else(|| missing("GRC"))?,
            crate::identity::cert::MAX_CERTIFICATE_BYTES,
        )
        .map_err(InvitationError::Encoding)?;
        let grc = GroupRootCertificate::from_der(&grc_der).map_err(InvitationError::Root)?;
        if grc.group_name() != &group_name {
            return Err(InvitationError::RootOfAnotherGroup.into());
        }
        let scheme = number("AUTHSCHEME")?;
        let mut roles = Vec::new();
        if let Some(list) = root.get_child("ROLES") {
            for r in &list.children {
                roles.push(
                    parse_role(&r.text)
                        .ok_or_else(|| InvitationError::UnknownRole(r.text.clone()))?,
                );
            }
        }
        let credential = match scheme {
            PEER_GROUP_GMC_AUTHENTICATION => {
                let bytes = xml::base64_content(
                    root.get_child("GMC").ok_or_else(|| missing("GMC"))?,
                    MAX_INVITATION_BYTES,
                )
                .map_err(InvitationError::Encoding)?;
                let chain = GmcChain::from_bytes(&bytes)?;
                roles = chain.leaf().roles().to_vec();
                Credential::Gmc(chain)
            }
            PEER_GROUP_PASSWORD_AUTHENTICATION => Credential::Password,
            other => return Err(InvitationError::UnknownScheme(other).into()),
        };
        let mut addresses = Vec::new();
        if let Some(list) = root.get_child("ADDRESSES") {
            for a in list.children.iter().take(crate::wire::MAX_ADDRS) {
                addresses.push(
                    a.text
                        .parse()
                        .map_err(|_| InvitationError::BadAddress(a.text.clone()))?,
                );
            }
        }
        Ok(Invitation {
            group_name,
            group_friendly_name: field("GROUPFRIENDLYNAME")?,
            cloud: field("CLOUDNAME")?,
            scope: number("SCOPE")?,
            cloud_flags: number("CLOUDFLAGS")?,
            issuer_peer_name: field("ISSUERPEERNAME")?,
            issuer_friendly_name: field("ISSUERFRIENDLYNAME")?,
            grc,
            credential,
            roles,
            addresses,
        })
    }
}

fn parse_role(text: &str) -> Option<Role> {
    Role::ALL
        .into_iter()
        .find(|r| r.to_string().eq_ignore_ascii_case(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::gmc::GroupRoot;
    use crate::identity::hresult::*;
    use crate::identity::{IdentityCertificate, KeyAlgorithm, PrivateKey};

    fn setup() -> (GroupRoot, PrivateKey, IdentityCertificate) {
        let root = GroupRoot::create("club", "The Club").unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = IdentityCertificate::issue(&key, "bob", "Bob").unwrap();
        (root, key, cert)
    }

    fn invitation(root: &GroupRoot, cert: &IdentityCertificate, from: i64, to: i64) -> Invitation {
        let chain = root.issue(cert, &[Role::Member], from, to).unwrap();
        Invitation {
            group_name: root.group_name().clone(),
            group_friendly_name: "The Club".into(),
            cloud: String::new(),
            scope: 0,
            cloud_flags: 0,
            issuer_peer_name: root.group_name().to_string(),
            issuer_friendly_name: "Alice".into(),
            grc: root.certificate().clone(),
            roles: vec![Role::Member],
            credential: Credential::Gmc(chain),
            addresses: vec![
                "127.0.0.1:4000".parse().unwrap(),
                "[::1]:4001".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let (root, _key, cert) = setup();
        let now = root.certificate().not_before() + 7200;
        let inv = invitation(&root, &cert, now - 10, now + 3600);
        let parsed = Invitation::parse(&inv.to_xml()).unwrap();
        assert_eq!(parsed.group_name, inv.group_name);
        assert_eq!(parsed.addresses, inv.addresses);
        assert_eq!(parsed.roles, vec![Role::Member]);
        assert_eq!(parsed.subject().unwrap().0, cert.peer_name());
        let member = parsed.validate_for(cert.peer_name(), now).unwrap();
        assert_eq!(member.peer_name(), cert.peer_name());
        // Expired, for someone else.
        assert_eq!(
            parsed
                .validate_for(cert.peer_name(), now + 7200)
                .unwrap_err()
                .hresult(),
            PEER_E_INVALID_TIME_PERIOD
        );
        let other: PeerName = format!("{}.eve", "ab".repeat(20)).parse().unwrap();
        assert_eq!(
            parsed.validate_for(&other, now).unwrap_err().hresult(),
            PEER_E_INVITATION_NOT_TRUSTED
        );
    }

    #[test]
    fn a_root_of_another_group_is_not_trusted() {
        let (root, _key, cert) = setup();
        let other = GroupRoot::create("club", "Fake Club").unwrap();
        let now = root.certificate().not_before() + 3600;
        let mut inv = invitation(&root, &cert, now, now + 60);
        inv.grc = other.certificate().clone();
        let e = Invitation::parse(&inv.to_xml()).unwrap_err();
        assert_eq!(e.hresult(), PEER_E_INVITATION_NOT_TRUSTED);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for bad in [
            "",
            "<x/>",
            "<PEERINVITATION VERSION=\"1.0\"/>",
            "not xml at all",
        ] {
            assert_eq!(
                Invitation::parse(bad).unwrap_err().hresult(),
                E_INVALIDARG,
                "{bad:?}"
            );
        }
    }
}
