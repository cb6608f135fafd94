//! LAN discovery names: what a member announces on its link (mDNS, in `peergroup-core`) so
//! that other members of its group find it, and nobody else learns anything they could link.
//!
//! A member announces one service instance per group, named [`LanKey::instance_name`]: a random
//! nonce and a MAC over it and the current time window ([`WINDOW_MS`], 15 minutes) under a
//! key only members can compute ([`LanKey`], from the group root certificate, which a
//! member holds and an outsider does not: the group's name on the wire is a hash of its key,
//! not the certificate). A member that sees an instance checks the MAC for the windows around
//! its own clock ([`LanKey::recognises`]), then dials the instance's addresses like any
//! other. The name carries no peer name, group name, node id or certificate hash; nonce and
//! MAC are new in every window, so two windows' names cannot be linked (the host's addresses
//! and port still can: they are where the member listens).

use ring::hmac;

/// Length of a time window: a name is valid in its window and the two around it (clock skew).
pub const WINDOW_MS: u64 = 15 * 60 * 1000;
/// The DNS-SD service type members announce and browse.
pub const SERVICE_TYPE: &str = "_peergroup._udp.local.";
/// Bytes of the nonce and of the MAC in an instance name (each printed as hex).
pub const NONCE_LEN: usize = 8;
/// See [`NONCE_LEN`].
pub const MAC_LEN: usize = 8;
/// Addresses taken from one discovered instance.
pub const MAX_LAN_ADDRS: usize = 4;
/// Discovered addresses a group keeps (the oldest go first).
pub const MAX_LAN_FOUND: usize = 16;

const KEY_LABEL: &[u8] = b"peergroup lan discovery v1";

/// The window `now_ms` (Unix ms) falls in.
pub fn window(now_ms: u64) -> u64 {
    now_ms / WINDOW_MS
}

/// The key a group's members derive its LAN names from.
pub struct LanKey(hmac::Key);

impl LanKey {
    /// The key of the group whose root certificate is `grc_der` (DER).
    pub fn of_group(grc_der: &[u8]) -> LanKey {
        let label = hmac::Key::new(hmac::HMAC_SHA256, KEY_LABEL);
        let secret = hmac::sign(&label, grc_der);
        LanKey(hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()))
    }

    fn mac(&self, window: u64, nonce: &[u8; NONCE_LEN]) -> [u8; MAC_LEN] {
        let mut msg = [0u8; 8 + NONCE_LEN];
        msg[..8].copy_from_slice(&window.to_be_bytes());
        msg[8..].copy_from_slice(nonce);
        let tag = hmac::sign(&self.0, &msg);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }

    /// The instance name for `window` with `nonce` (random, new in each window).
    pub fn instance_name(&self, window: u64, nonce: &[u8; NONCE_LEN]) -> String {
        let mut s = hex(nonce);
        s.push_str(&hex(&self.mac(window, nonce)));
        s
    }

    /// Whether `name` is a member's instance of this group in the window of `now_ms` or
    /// either one next to it.
    pub fn recognises(&self, name: &str, now_ms: u64) -> bool {
        let Some((nonce, mac)) = parse(name) else {
            return false;
        };
        let w = window(now_ms);
        [w.wrapping_sub(1), w, w + 1]
            .iter()
            .any(|&w| same(&self.mac(w, &nonce), &mac))
    }
}

/// The instance label of a full mDNS instance name (`<label>._peergroup._udp.local.`), or the
/// name itself.
pub fn instance_label(fullname: &str) -> &str {
    fullname
        .strip_suffix(SERVICE_TYPE)
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or(fullname)
}

/// Equal, in time that does not depend on where they differ: a reply tells nothing about how
/// much of a guess matched.
fn same(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(name: &str) -> Option<([u8; NONCE_LEN], [u8; MAC_LEN])> {
    let name = instance_label(name);
    if name.len() != 2 * (NONCE_LEN + MAC_LEN) || !name.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&name[2 * i..2 * i + 2], 16).ok();
    let mut nonce = [0u8; NONCE_LEN];
    let mut mac = [0u8; MAC_LEN];
    for (i, b) in nonce.iter_mut().enumerate() {
        *b = byte(i)?;
    }
    for (i, b) in mac.iter_mut().enumerate() {
        *b = byte(NONCE_LEN + i)?;
    }
    Some((nonce, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_recognise_their_group_s_names_around_their_clock_only() {
        let key = LanKey::of_group(b"group root certificate");
        let other = LanKey::of_group(b"another group's root");
        let now = 1_800_000_000_000;
        let name = key.instance_name(window(now), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(name.len(), 32);
        assert!(key.recognises(&name, now));
        assert!(key.recognises(&format!("{name}.{SERVICE_TYPE}"), now));
        // A clock a window off either way still agrees; two windows off does not.
        assert!(key.recognises(&name, now + WINDOW_MS));
        assert!(key.recognises(&name, now - WINDOW_MS));
        assert!(!key.recognises(&name, now + 2 * WINDOW_MS));
        assert!(!other.recognises(&name, now));
        // Tampered, short, long or not hex.
        let mut flipped = name.clone().into_bytes();
        flipped[31] = if flipped[31] == b'0' { b'1' } else { b'0' };
        for bad in [
            String::from_utf8(flipped).unwrap(),
            name[..30].to_owned(),
            format!("{name}00"),
            "zz".repeat(16),
            String::new(),
        ] {
            assert!(!key.recognises(&bad, now), "{bad}");
        }
    }

    #[test]
    fn names_of_two_windows_or_two_nonces_share_nothing() {
        let key = LanKey::of_group(b"group root certificate");
        let a = key.instance_name(7, &[9; 8]);
        let b = key.instance_name(8, &[9; 8]);
        assert_eq!(a[..16], b[..16], "same nonce");
        assert_ne!(a[16..], b[16..], "the MAC differs per window");
        let c = key.instance_name(7, &[10; 8]);
        assert_ne!(a[16..], c[16..]);
    }
}
