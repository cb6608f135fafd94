//! GMC chains: issuing one link further, encoding, and validating against the group root.
//!
//! A chain lists the member's GMC first, then its issuer's, and so on up to the GMC the group
//! root signed. The root certificate is not part of it: every member already holds it, and a
//! root sent along with a chain would prove nothing.
//!
//! **Length.** Windows refuses chains longer than 24 (`PEER_E_CHAIN_TOO_LONG`) and counts
//! creator → A → B → M as 4, i.e. it counts the root. So does [`MAX_CHAIN_LEN`]: a chain of
//! n GMCs has length n + 1 ([`GmcChain::chain_len`]), and holds at most [`MAX_GMCS`] = 23.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::certificate::{sign_gmc, Gmc, Signer, Subject};
use super::extension::canonical_roles;
use super::role::{roles_may_issue, Role};
use super::root::GroupRootCertificate;
use crate::cert::MAX_CERTIFICATE_BYTES;
use crate::error::{IdentityError, Result};
use crate::keys::PrivateKey;
use crate::peer_name::PeerName;

/// Longest chain, counting the group root as one (Windows: 24).
pub const MAX_CHAIN_LEN: usize = 24;

/// Most GMCs a chain holds: [`MAX_CHAIN_LEN`] less the root.
pub const MAX_GMCS: usize = MAX_CHAIN_LEN - 1;

/// Largest [`GmcChain::to_bytes`] encoding accepted.
pub const MAX_CHAIN_BYTES: usize = HEADER_BYTES + MAX_GMCS * (4 + MAX_CERTIFICATE_BYTES);

/// How far back a newly issued GMC starts, for peers whose clocks lag (as for identities).
pub const ISSUE_CLOCK_SLACK_SECS: i64 = 3600;

const CHAIN_MAGIC: [u8; 4] = *b"PGMC";
const CHAIN_FORMAT_VERSION: u8 = 1;
const HEADER_BYTES: usize = 6;

/// A well-formed GMC chain, leaf first: every certificate parsed, 1 ..= [`MAX_GMCS`] of them.
///
/// Well-formed is not trusted: only [`validate_chain`] (or [`GmcChain::validate`]) says that
/// the chain leads to a group root and grants what it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GmcChain {
    gmcs: Vec<Gmc>,
}

impl GmcChain {
    pub(crate) fn from_gmcs(gmcs: Vec<Gmc>) -> Result<Self> {
        check_count(gmcs.len())?;
        Ok(GmcChain { gmcs })
    }

    /// Parses a chain given as DER certificates, leaf first (as TLS carries it).
    pub fn from_der_list(ders: &[impl AsRef<[u8]>]) -> Result<Self> {
        check_count(ders.len())?;
        let gmcs = ders
            .iter()
            .map(|d| Gmc::from_der(d.as_ref()))
            .collect::<Result<_>>()?;
        Ok(GmcChain { gmcs })
    }

    /// The certificates as DER, leaf first: the TLS certificate list.
    pub fn to_der_list(&self) -> Vec<Vec<u8>> {
        self.gmcs.iter().map(|g| g.der().to_vec()).collect()
    }

    /// The compact encoding for storage and invitations:
    ///
    /// | bytes | field |
    /// |---|---|
    /// | 4 | magic `PGMC` |
    /// | 1 | format version, 1 |
    /// | 1 | GMC count n, 1 ..= [`MAX_GMCS`] |
    /// | n × (4 + len) | each GMC, leaf first: its length (big-endian u32, 1 ..= [`MAX_CERTIFICATE_BYTES`]), then its DER |
    ///
    /// Nothing may follow.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_BYTES + self.gmcs.iter().map(|g| 4 + g.der().len()).sum::<usize>(),
        );
        out.extend_from_slice(&CHAIN_MAGIC);
        out.push(CHAIN_FORMAT_VERSION);
        out.push(self.gmcs.len() as u8);
        for gmc in &self.gmcs {
            out.extend_from_slice(&(gmc.der().len() as u32).to_be_bytes());
            out.extend_from_slice(gmc.der());
        }
        out
    }

    /// Reads [`GmcChain::to_bytes`]'s encoding, bounded by [`MAX_CHAIN_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CHAIN_BYTES {
            return Err(IdentityError::BadEncoding(format!(
                "GMC chain of {} bytes exceeds the limit of {MAX_CHAIN_BYTES}",
                bytes.len()
            )));
        }
        if bytes.len() < HEADER_BYTES {
            return Err(IdentityError::Truncated("GMC chain header"));
        }
        let (header, mut rest) = bytes.split_at(HEADER_BYTES);
        if header[..4] != CHAIN_MAGIC {
            return Err(IdentityError::BadEncoding("not a GMC chain".into()));
        }
        if header[4] != CHAIN_FORMAT_VERSION {
            return Err(IdentityError::UnsupportedVersion(format!(
                "GMC chain format {}",
                header[4]
            )));
        }
        let count = usize::from(header[5]);
        check_count(count)?;
        let mut gmcs = Vec::with_capacity(count);
        for _ in 0..count {
            if rest.len() < 4 {
                return Err(IdentityError::Truncated("GMC length"));
            }
            let (len, after) = rest.split_at(4);
            let len = u32::from_be_bytes(len.try_into().expect("split at 4")) as usize;
            if len == 0 || len > MAX_CERTIFICATE_BYTES {
                return Err(IdentityError::BadEncoding(format!(
                    "GMC of {len} bytes in a chain"
                )));
            }
            if after.len() < len {
                return Err(IdentityError::Truncated("GMC"));
            }
            let (der, after) = after.split_at(len);
            gmcs.push(Gmc::from_der(der)?);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(IdentityError::BadEncoding(format!(
                "{} bytes after the GMC chain",
                rest.len()
            )));
        }
        Ok(GmcChain { gmcs })
    }

    /// The member's own GMC.
    pub fn leaf(&self) -> &Gmc {
        &self.gmcs[0]
    }

    /// The GMCs, leaf first; never empty.
    pub fn gmcs(&self) -> &[Gmc] {
        &self.gmcs
    }

    /// The chain's length as Windows counts it: the GMCs plus the group root.
    pub fn chain_len(&self) -> usize {
        self.gmcs.len() + 1
    }

    /// [`validate_chain`] for a chain already parsed.
    pub fn validate(&self, grc: &GroupRootCertificate, now_unix: i64) -> Result<Member> {
        validate_parsed(grc, self, now_unix)
    }
}

/// A validated member: what a chain proves, once [`validate_chain`] accepted it.
///
/// Only validation makes one, so holding a `Member` means its chain was checked (at the time
/// given then; it may expire since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    chain: GmcChain,
}

impl Member {
    /// The member's peer name.
    pub fn peer_name(&self) -> &PeerName {
        self.chain.leaf().peer_name()
    }

    /// The member's friendly name.
    pub fn friendly_name(&self) -> &str {
        self.chain.leaf().friendly_name()
    }

    /// The member's public key, DER SubjectPublicKeyInfo: the key it must prove in TLS.
    pub fn public_key_der(&self) -> &[u8] {
        self.chain.leaf().public_key_der()
    }

    /// The roles the member holds.
    pub fn roles(&self) -> &[Role] {
        self.chain.leaf().roles()
    }

    /// Whether the member holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.chain.leaf().has_role(role)
    }

    /// When the membership starts, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.chain.leaf().not_before()
    }

    /// When the membership ends, seconds since the Unix epoch (never after any issuer's).
    pub fn not_after(&self) -> i64 {
        self.chain.leaf().not_after()
    }

    /// The validated chain.
    pub fn chain(&self) -> &GmcChain {
        &self.chain
    }
}

/// Issues a GMC as a member: an admin or inviting member extends its own chain by one.
///
/// `issuer_key` must be the key of `issuer_chain`'s leaf. Roles the issuer may not grant are
/// refused ([`IdentityError::NotAuthorized`]); an empty list is [`IdentityError::NoRoles`].
/// The new GMC starts an hour ago ([`ISSUE_CLOCK_SLACK_SECS`]) or when the issuer's does, if
/// later. `not_after` of `None` means the issuer's remaining lifetime (Windows' default); an
/// explicit end after the issuer's own, or already past, is
/// [`IdentityError::InvalidTimePeriod`]. A result longer than [`MAX_CHAIN_LEN`] is
/// [`IdentityError::ChainTooLong`], and a subject whose key already appears in the chain is
/// [`IdentityError::CircularChain`].
///
/// The issuer's chain is not validated here (there is no root certificate to do it with);
/// the issuer should hold a chain it validated when it received it, and every receiver
/// validates the result anyway. The time is the system clock's; see [`issue_gmc_at`].
pub fn issue_gmc(
    issuer_key: &PrivateKey,
    issuer_chain: &GmcChain,
    subject: impl Into<Subject>,
    roles: &[Role],
    not_after: Option<i64>,
) -> Result<GmcChain> {
    issue_gmc_at(
        issuer_key,
        issuer_chain,
        subject,
        roles,
        not_after,
        now_unix(),
    )
}

/// [`issue_gmc`] at a given time (seconds since the Unix epoch), for callers that keep their
/// own clock, such as a deterministic state machine driven by simulated time.
pub fn issue_gmc_at(
    issuer_key: &PrivateKey,
    issuer_chain: &GmcChain,
    subject: impl Into<Subject>,
    roles: &[Role],
    not_after: Option<i64>,
    now_unix: i64,
) -> Result<GmcChain> {
    let now = now_unix;
    let subject = subject.into();
    let issuer = issuer_chain.leaf();
    if issuer_key.public_key_der() != issuer.public_key_der() {
        return Err(IdentityError::BadKey(
            "the issuing key is not the key of the issuer's GMC".into(),
        ));
    }
    let roles = canonical_roles(roles);
    if roles.is_empty() {
        return Err(IdentityError::NoRoles);
    }
    if let Some(role) = roles.iter().find(|r| !roles_may_issue(issuer.roles(), **r)) {
        return Err(IdentityError::NotAuthorized(format!(
            "a holder of {:?} may not grant {role:?}",
            issuer.roles()
        )));
    }
    check_count(issuer_chain.gmcs().len() + 1)?;
    if issuer_chain
        .gmcs()
        .iter()
        .any(|g| g.public_key_der() == subject.public_key_der())
    {
        return Err(IdentityError::CircularChain(format!(
            "{} already holds a GMC in the issuer's chain",
            subject.peer_name()
        )));
    }
    let not_before = (now - ISSUE_CLOCK_SLACK_SECS).max(issuer.not_before());
    let not_after = match not_after {
        None => issuer.not_after(),
        Some(t) if t > issuer.not_after() => {
            return Err(IdentityError::InvalidTimePeriod(format!(
                "expiry {t} is after the issuer's own, {}",
                issuer.not_after()
            )))
        }
        Some(t) => t,
    };
    if not_after <= now || not_after <= not_before {
        return Err(IdentityError::InvalidTimePeriod(format!(
            "expiry {not_after} is not in the future (now {now})"
        )));
    }
    let signer = Signer {
        key: issuer_key,
        subject_dn: issuer.subject_dn(),
        peer_name: issuer.peer_name(),
    };
    let gmc = sign_gmc(
        &signer,
        issuer.group_name(),
        &subject,
        &roles,
        not_before,
        not_after,
    )?;
    let mut gmcs = Vec::with_capacity(issuer_chain.gmcs().len() + 1);
    gmcs.push(gmc);
    gmcs.extend_from_slice(issuer_chain.gmcs());
    GmcChain::from_gmcs(gmcs)
}

/// Validates a chain (DER certificates, leaf first) against the group root at `now_unix`.
///
/// Checks, in this order, each failure with its own error:
/// 1. 1 ..= [`MAX_GMCS`] certificates — empty is [`IdentityError::Untrusted`], too many
///    [`IdentityError::ChainTooLong`] (before anything is parsed);
/// 2. each parses ([`Gmc::from_der`]: size, form, peer name bound to key) — the parse error;
/// 3. no key twice, the root's included — [`IdentityError::CircularChain`];
/// 4. from the root down, for each GMC and its issuer (the next GMC, or the root):
///    the signature verifies with the issuer's key, the X.509 issuer is the issuer's subject,
///    the group is the root's, and the issuer peer name is the issuer's —
///    [`IdentityError::Untrusted`]; the issuer may grant every role granted (the root may
///    grant any) — [`IdentityError::NotAuthorized`]; the validity lies within the issuer's
///    and contains `now_unix` — [`IdentityError::InvalidTimePeriod`].
pub fn validate_chain(
    grc: &GroupRootCertificate,
    chain_der: &[impl AsRef<[u8]>],
    now_unix: i64,
) -> Result<Member> {
    if chain_der.is_empty() {
        return Err(IdentityError::Untrusted("no membership certificate".into()));
    }
    let chain = GmcChain::from_der_list(chain_der)?;
    validate_parsed(grc, &chain, now_unix)
}

/// Who signed a link: the next GMC up, or the root.
struct IssuerView<'a> {
    public_key_der: &'a [u8],
    subject_dn: &'a [u8],
    peer_name: &'a PeerName,
    /// `None` for the root, which may grant every role.
    roles: Option<&'a [Role]>,
    not_before: i64,
    not_after: i64,
}

fn validate_parsed(grc: &GroupRootCertificate, chain: &GmcChain, now: i64) -> Result<Member> {
    let mut keys = HashSet::with_capacity(chain.gmcs.len() + 1);
    keys.insert(grc.public_key_der());
    for gmc in &chain.gmcs {
        if !keys.insert(gmc.public_key_der()) {
            return Err(IdentityError::CircularChain(format!(
                "the key of {} appears twice in the chain",
                gmc.peer_name()
            )));
        }
    }
    let root = IssuerView {
        public_key_der: grc.public_key_der(),
        subject_dn: grc.subject_dn(),
        peer_name: grc.group_name(),
        roles: None,
        not_before: grc.not_before(),
        not_after: grc.not_after(),
    };
    check_time(grc.group_name(), root.not_before, root.not_after, now)?;
    let mut issuer = root;
    for gmc in chain.gmcs.iter().rev() {
        let untrusted =
            |why: &str| IdentityError::Untrusted(format!("GMC of {}: {why}", gmc.peer_name()));
        gmc.verify_issued_by(issuer.public_key_der)?;
        if gmc.issuer_dn() != issuer.subject_dn {
            return Err(untrusted(
                "X.509 issuer is not the next certificate's subject",
            ));
        }
        if gmc.group_name() != grc.group_name() {
            return Err(untrusted(&format!(
                "issued for group {}, not {}",
                gmc.group_name(),
                grc.group_name()
            )));
        }
        if gmc.issuer_peer_name() != issuer.peer_name {
            return Err(untrusted(&format!(
                "names issuer {}, but {} signed it",
                gmc.issuer_peer_name(),
                issuer.peer_name
            )));
        }
        if let Some(held) = issuer.roles {
            if let Some(role) = gmc.roles().iter().find(|r| !roles_may_issue(held, **r)) {
                return Err(IdentityError::NotAuthorized(format!(
                    "{} holds {held:?} and may not grant {role:?} to {}",
                    issuer.peer_name,
                    gmc.peer_name()
                )));
            }
        }
        if gmc.not_before() < issuer.not_before || gmc.not_after() > issuer.not_after {
            return Err(IdentityError::InvalidTimePeriod(format!(
                "GMC of {} ({}..{}) is not inside its issuer's validity ({}..{})",
                gmc.peer_name(),
                gmc.not_before(),
                gmc.not_after(),
                issuer.not_before,
                issuer.not_after
            )));
        }
        check_time(gmc.peer_name(), gmc.not_before(), gmc.not_after(), now)?;
        issuer = IssuerView {
            public_key_der: gmc.public_key_der(),
            subject_dn: gmc.subject_dn(),
            peer_name: gmc.peer_name(),
            roles: Some(gmc.roles()),
            not_before: gmc.not_before(),
            not_after: gmc.not_after(),
        };
    }
    Ok(Member {
        chain: chain.clone(),
    })
}

fn check_time(whose: &PeerName, not_before: i64, not_after: i64, now: i64) -> Result<()> {
    if now < not_before || now > not_after {
        return Err(IdentityError::InvalidTimePeriod(format!(
            "certificate of {whose} is valid {not_before}..{not_after}, not at {now}"
        )));
    }
    Ok(())
}

fn check_count(gmcs: usize) -> Result<()> {
    if gmcs == 0 {
        return Err(IdentityError::BadEncoding("empty GMC chain".into()));
    }
    if gmcs > MAX_GMCS {
        return Err(IdentityError::ChainTooLong(gmcs + 1));
    }
    Ok(())
}

/// Seconds since the Unix epoch by the system clock.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
