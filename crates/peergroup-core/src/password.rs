//! Password authentication (`PeerGroupPasswordJoin`): SPAKE2 inside mutual TLS.
//!
//! The joiner has no membership certificate yet, so it connects presenting its self-signed
//! identity certificate; the node accepts such a peer only for a group with password
//! authentication, and only for this exchange. Both sides run SPAKE2 (Ed25519 group) with the
//! group password, the joiner's peer name and the group name as identities, then prove the
//! shared key with HMAC-SHA256 over a binding to the two TLS certificates, so the exchange
//! cannot be relayed into another connection. The password never crosses the wire, and a
//! recorded exchange allows no offline guessing. On success the authenticator (an
//! administrator or inviting member) issues a membership chain with the group's password role.
//!
//! Frames (kinds on the control stream):
//!
//! | kind | direction | payload |
//! | --- | --- | --- |
//! | 16 `PAKE_START` | joiner → authenticator | SPAKE2 message A |
//! | 17 `PAKE_REPLY` | authenticator → joiner | SPAKE2 message B |
//! | 18 `PAKE_CONFIRM` | joiner → authenticator | HMAC(K, "joiner" ‖ binding) |
//! | 19 `PAKE_GRANT` | authenticator → joiner | HMAC(K, "authenticator" ‖ binding) ‖ `GmcChain::to_bytes` |
//!
//! A wrong password ends the connection with close code `NotAuthorized`.

use std::sync::Arc;
use std::time::Duration;

use ring::{digest, hmac};
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

use crate::error::{CoreError, Result};
use crate::identity::gmc::{validate_chain, GmcChain, GroupRootCertificate};
use crate::identity::{IdentityCertificate, PeerName};
use crate::transport::{
    CertificateDer, CloseCode, Connection, Frame, Side, TrustError, TrustPolicy,
};

/// Frame kind of the joiner's SPAKE2 message.
pub const KIND_PAKE_START: u16 = 16;
/// Frame kind of the authenticator's SPAKE2 message.
pub const KIND_PAKE_REPLY: u16 = 17;
/// Frame kind of the joiner's key confirmation.
pub const KIND_PAKE_CONFIRM: u16 = 18;
/// Frame kind of the authenticator's confirmation and the granted chain.
pub const KIND_PAKE_GRANT: u16 = 19;
/// How long one password authentication may take, end to end.
pub const PAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The close reason of an attempt refused by the throttle ([`crate::throttle`]), before any
/// exchange: "`THROTTLED_REASON` N" with the seconds to wait. The joiner reads it to say
/// so rather than "wrong password".
pub const THROTTLED_REASON: &str = "password attempts throttled; retry in s:";
/// A joiner told to wait this long at most (in seconds) waits and tries once more by
/// itself: the wait after one or two wrong passwords, a typo's.
pub const JOINER_WAITS_UP_TO_S: u64 = 10;

const MAC_LEN: usize = 32;

fn binding(server_leaf: &[u8], client_leaf: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"peergroup pake binding v1\0");
    ctx.update(&(server_leaf.len() as u32).to_be_bytes());
    ctx.update(server_leaf);
    ctx.update(client_leaf);
    ctx.finish().as_ref().to_vec()
}

fn mac(key: &[u8], label: &[u8], binding: &[u8]) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut msg = label.to_vec();
    msg.extend_from_slice(binding);
    hmac::sign(&k, &msg).as_ref().to_vec()
}

fn check_mac(key: &[u8], label: &[u8], binding: &[u8], tag: &[u8]) -> bool {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut msg = label.to_vec();
    msg.extend_from_slice(binding);
    hmac::verify(&k, &msg, tag).is_ok()
}

async fn expect(conn: &Connection, kind: u16) -> Result<Vec<u8>> {
    let frame = conn.recv().await?;
    if frame.kind() != kind {
        return Err(CoreError::Protocol(format!(
            "expected frame kind {kind}, got {}",
            frame.kind()
        )));
    }
    Ok(frame.payload().to_vec())
}

async fn send(conn: &Connection, kind: u16, payload: Vec<u8>) -> Result<()> {
    let frame = Frame::new(kind, payload).map_err(|e| CoreError::Protocol(e.to_string()))?;
    Ok(conn.send(&frame).await?)
}

/// The authenticator's side. `issue` mints the chain for the authenticated subject;
/// `rejected` runs on a wrong password before the connection closes, so the joiner's next
/// attempt finds it counted.
pub(crate) async fn authenticate(
    conn: &Connection,
    password: &str,
    group: &PeerName,
    own_leaf: &[u8],
    subject: &IdentityCertificate,
    issue: impl FnOnce(&IdentityCertificate) -> Result<GmcChain>,
    rejected: impl FnOnce(),
) -> Result<()> {
    let run = async {
        let msg_a = expect(conn, KIND_PAKE_START).await?;
        let (state, msg_b) = Spake2::<Ed25519Group>::start_b(
            &Password::new(password.as_bytes()),
            &SpakeId::new(subject.peer_name().to_string().as_bytes()),
            &SpakeId::new(group.to_string().as_bytes()),
        );
        send(conn, KIND_PAKE_REPLY, msg_b).await?;
        let key = state
            .finish(&msg_a)
            .map_err(|_| CoreError::Protocol("bad SPAKE2 message".into()))?;
        let bind = binding(own_leaf, subject.der());
        let confirm = expect(conn, KIND_PAKE_CONFIRM).await?;
        if !check_mac(&key, b"joiner", &bind, &confirm) {
            return Err(CoreError::PasswordRejected);
        }
        let chain = issue(subject)?;
        let mut grant = mac(&key, b"authenticator", &bind);
        grant.extend_from_slice(&chain.to_bytes());
        send(conn, KIND_PAKE_GRANT, grant).await?;
        tracing::info!(joiner = %subject.peer_name(), "password authentication granted membership");
        Ok(())
    };
    let result = match tokio::time::timeout(PAKE_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(CoreError::Protocol(
            "password authentication timed out".into(),
        )),
    };
    match &result {
        Ok(()) => {
            conn.close_flushed(
                CloseCode::Shutdown,
                "password authentication done",
                PAKE_TIMEOUT,
            )
            .await;
        }
        Err(e) => {
            tracing::info!(joiner = %subject.peer_name(), error = %e, "password authentication refused");
            if matches!(e, CoreError::PasswordRejected) {
                rejected();
            }
            conn.close(CloseCode::NotAuthorized, "password authentication failed");
        }
    }
    result
}

/// A connection the authenticator closed with [`THROTTLED_REASON`] is
/// [`CoreError::PasswordThrottled`]; other errors stay.
pub(crate) fn throttled(e: CoreError) -> CoreError {
    use crate::transport::{CloseReason, TransportError};
    if let CoreError::Transport(TransportError::Closed(CloseReason::Peer {
        code: CloseCode::NotAuthorized,
        reason,
    })) = &e
    {
        if let Some(rest) = reason.strip_prefix(THROTTLED_REASON) {
            return CoreError::PasswordThrottled(rest.trim().parse().unwrap_or(1));
        }
    }
    e
}

/// The joiner's side: returns the granted membership chain, validated against the group root.
pub(crate) async fn join(
    conn: &Connection,
    password: &str,
    grc: &GroupRootCertificate,
    me: &IdentityCertificate,
    now: i64,
) -> Result<GmcChain> {
    let group = grc.group_name().clone();
    let run = async {
        let (state, msg_a) = Spake2::<Ed25519Group>::start_a(
            &Password::new(password.as_bytes()),
            &SpakeId::new(me.peer_name().to_string().as_bytes()),
            &SpakeId::new(group.to_string().as_bytes()),
        );
        send(conn, KIND_PAKE_START, msg_a).await?;
        let msg_b = expect(conn, KIND_PAKE_REPLY).await?;
        let key = state
            .finish(&msg_b)
            .map_err(|_| CoreError::Protocol("bad SPAKE2 message".into()))?;
        let server_leaf = conn
            .peer_chain()
            .first()
            .ok_or_else(|| CoreError::Protocol("no server certificate".into()))?
            .to_vec();
        let bind = binding(&server_leaf, me.der());
        send(conn, KIND_PAKE_CONFIRM, mac(&key, b"joiner", &bind)).await?;
        let grant = match expect(conn, KIND_PAKE_GRANT).await {
            Ok(g) => g,
            Err(CoreError::Transport(_)) => return Err(CoreError::PasswordRejected),
            Err(e) => return Err(e),
        };
        if grant.len() < MAC_LEN || !check_mac(&key, b"authenticator", &bind, &grant[..MAC_LEN]) {
            return Err(CoreError::Protocol(
                "the authenticator did not prove the password".into(),
            ));
        }
        let chain = GmcChain::from_bytes(&grant[MAC_LEN..])?;
        let member = chain.validate(grc, now)?;
        if member.peer_name() != me.peer_name() {
            return Err(CoreError::Protocol(
                "the granted membership names someone else".into(),
            ));
        }
        Ok(chain)
    };
    match tokio::time::timeout(PAKE_TIMEOUT, run).await {
        // The close may show on the first send as well as on the first receive.
        Ok(r) => r.map_err(throttled),
        Err(_) => Err(CoreError::Protocol(
            "password authentication timed out".into(),
        )),
    }
}

/// What a password joiner trusts: any member of the group the invitation names.
pub(crate) struct GroupTrust(pub(crate) GroupRootCertificate);

impl TrustPolicy for GroupTrust {
    fn verify_peer(
        &self,
        _peer_side: Side,
        _server_name: Option<&str>,
        chain: &[CertificateDer<'_>],
    ) -> std::result::Result<(), TrustError> {
        validate_chain(&self.0, chain, crate::clock::unix_now())
            .map(|_| ())
            .map_err(|e| TrustError::Untrusted(e.to_string()))
    }
}

/// The trust policy of a password join, shared with the transport.
pub(crate) fn group_trust(grc: &GroupRootCertificate) -> Arc<dyn TrustPolicy> {
    Arc::new(GroupTrust(grc.clone()))
}
