//! Upgrading a relayed direct connection to a direct path in place: the application keeps
//! its connection id, its events and the order of its data.
//!
//! A direct connection (`PeerGroupOpenDirectConnection`) that could only be made through a
//! relay member runs inside a tunnel. Its two ends then try to replace it with a connection on
//! a direct path, by a simultaneous open coordinated through the relayed connection itself:
//!
//! 1. The end that dialled it (the *dialer*) sends [`UpgradeMessage::Offer`]: its addresses
//!    and a random token.
//! 2. The other end (the *acceptor*) dials those addresses at once and answers with its own
//!    ([`UpgradeMessage::Answer`]), which the dialer dials on arrival. Both dial from their
//!    node's one socket, so each side's NAT has let the other in by the time the other side's
//!    handshake packets come again. Each new connection (a *candidate*, named by the [`Side`]
//!    that dialled it and the attempt it was dialled for: a [`Candidate`]) greets with the
//!    token and the attempt, which tie it to the relayed connection; mutual TLS has already
//!    proved the member. A late candidate of an earlier attempt is told from a new one.
//! 3. The dialer takes the first candidate up: it sends [`UpgradeMessage::Switch`] on the
//!    relayed connection, then sends only on the candidate.
//! 4. On `Switch` the acceptor has read everything the dialer sent before it; it sends
//!    [`UpgradeMessage::Switched`] on the relayed connection, then sends only on the
//!    candidate, and reads only the candidate.
//! 5. On `Switched` the dialer has read everything the acceptor sent on the relayed
//!    connection: it reads the candidate from then on and closes the relayed connection.
//!
//! So no message is lost or reordered. An attempt with no candidate up after
//! [`ATTEMPT_MS`] is made again with new dials, [`UPGRADE_ATTEMPTS`] in all; then the
//! connection stays relayed (a candidate that still comes up later is taken). This module is
//! the deterministic half: `peergroup-core` dials, moves the bytes and keeps the clock.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::wire::{Reader, WireError, Writer};

/// Frame kind of an [`UpgradeMessage`] on a direct connection (after [`crate::data`]'s).
pub const KIND_DIRECT_UPGRADE: u8 = 12;
/// Offers made before a relayed connection stays relayed.
pub const UPGRADE_ATTEMPTS: u8 = 3;
/// How long one attempt waits for a candidate before the next offer (ms): a handshake whose
/// first packet a NAT dropped is sent again after about a second.
pub const ATTEMPT_MS: u64 = 1_500;
/// How long one end waits for the other to complete the switch (ms); then the connection is
/// given up as failed (one end already sends on the candidate).
pub const SWITCH_WAIT_MS: u64 = 10_000;
/// Addresses an offer or answer carries (the first: observed ones first).
pub const UPGRADE_ADDRS: usize = 4;

/// The token that ties a candidate connection to its relayed connection.
pub type Token = [u8; 16];

/// Which end of the direct connection this is, or which end dialled a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The end that dialled the direct connection.
    Dialer,
    /// The end that accepted it.
    Acceptor,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Dialer => 0,
            Side::Acceptor => 1,
        }
    }

    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Dialer => Side::Acceptor,
            Side::Acceptor => Side::Dialer,
        }
    }
}

/// One candidate connection: the side that dialled it, for which attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate {
    /// The end that dialled it.
    pub side: Side,
    /// The attempt (offer) it was dialled for, from 1.
    pub attempt: u8,
}

/// What the two ends say to each other on the relayed connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeMessage {
    /// Dialer → acceptor: dial me at these addresses, greeting with `token`.
    Offer {
        /// 1 for the first attempt.
        attempt: u8,
        /// Ties the candidates to this connection.
        token: Token,
        /// The dialer's addresses.
        addrs: Vec<SocketAddr>,
    },
    /// Acceptor → dialer: dialling you; dial me at these addresses.
    Answer {
        /// The attempt answered.
        attempt: u8,
        /// The acceptor's addresses.
        addrs: Vec<SocketAddr>,
    },
    /// Dialer → acceptor: this candidate carries everything from now on.
    Switch(Candidate),
    /// Acceptor → dialer: nothing more comes on the relayed connection.
    Switched,
}

const TAG_OFFER: u8 = 1;
const TAG_ANSWER: u8 = 2;
const TAG_SWITCH: u8 = 3;
const TAG_SWITCHED: u8 = 4;

impl UpgradeMessage {
    /// The payload of its [`KIND_DIRECT_UPGRADE`] frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let first = |addrs: &[SocketAddr]| addrs[..addrs.len().min(UPGRADE_ADDRS)].to_vec();
        match self {
            UpgradeMessage::Offer {
                attempt,
                token,
                addrs,
            } => {
                w.u8(TAG_OFFER);
                w.u8(*attempt);
                w.0.extend_from_slice(token);
                w.addrs(&first(addrs));
            }
            UpgradeMessage::Answer { attempt, addrs } => {
                w.u8(TAG_ANSWER);
                w.u8(*attempt);
                w.addrs(&first(addrs));
            }
            UpgradeMessage::Switch(c) => {
                w.u8(TAG_SWITCH);
                w.u8(c.side.index() as u8);
                w.u8(c.attempt);
            }
            UpgradeMessage::Switched => w.u8(TAG_SWITCHED),
        }
        w.0
    }

    /// Decodes the payload of a [`KIND_DIRECT_UPGRADE`] frame.
    pub fn decode(payload: &[u8]) -> Result<UpgradeMessage, WireError> {
        let mut r = Reader(payload);
        let addrs = |r: &mut Reader<'_>| {
            let a = r.addrs()?;
            if a.len() > UPGRADE_ADDRS {
                return Err(WireError::TooLarge("upgrade addresses"));
            }
            Ok(a)
        };
        let msg = match r.u8()? {
            TAG_OFFER => UpgradeMessage::Offer {
                attempt: r.u8()?,
                token: r.array()?,
                addrs: addrs(&mut r)?,
            },
            TAG_ANSWER => UpgradeMessage::Answer {
                attempt: r.u8()?,
                addrs: addrs(&mut r)?,
            },
            TAG_SWITCH => UpgradeMessage::Switch(Candidate {
                side: match r.u8()? {
                    0 => Side::Dialer,
                    1 => Side::Acceptor,
                    b => return Err(WireError::BadFlag(b)),
                },
                attempt: r.u8()?,
            }),
            TAG_SWITCHED => UpgradeMessage::Switched,
            other => return Err(WireError::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Trailing);
        }
        Ok(msg)
    }
}

/// What the host does for the upgrade, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this on the relayed connection.
    Send(UpgradeMessage),
    /// Dial these addresses: the candidate of this side for `attempt` (its greeting carries
    /// the token and the attempt).
    Dial {
        /// The attempt dialled for.
        attempt: u8,
        /// Where.
        addrs: Vec<SocketAddr>,
    },
    /// Send `message` on the relayed connection, then every later frame on candidate `to`
    /// (one step: no frame of the application may fall between).
    SwitchSending {
        /// The last frame on the relayed connection.
        message: UpgradeMessage,
        /// The candidate that carries the rest.
        to: Candidate,
    },
    /// The relayed connection has nothing more for this end: read this candidate now.
    ReadFrom(Candidate),
    /// Close this candidate: it was not chosen.
    CloseCandidate(Candidate),
    /// Close the relayed connection: the upgrade is complete.
    CloseRelayed,
    /// No attempt gave a candidate: the connection stays relayed.
    GaveUp,
    /// The other end did not complete the switch in time: close the direct connection.
    Fail,
}

/// A message that the protocol does not allow here: the connection is closed for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("upgrade message out of place: {0}")]
pub struct UpgradeViolation(pub &'static str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Dialer: offers made, no candidate up yet.
    Offering,
    /// Dialer: every attempt made; a late candidate is still taken.
    GaveUp,
    /// Dialer: `Switch` sent, waiting for `Switched`. Acceptor: `Switch` received, waiting
    /// for the chosen candidate.
    Switching(Candidate),
    /// Acceptor: waiting for an offer.
    Waiting,
    /// Switched, or failed.
    Done,
}

/// The upgrade of one relayed direct connection, at one end.
#[derive(Debug)]
pub struct Upgrade {
    role: Side,
    token: Option<Token>,
    /// This end's addresses, for offers and answers.
    addrs: Vec<SocketAddr>,
    attempt: u8,
    state: State,
    deadline: Option<u64>,
    /// Candidates up and not closed.
    up: Vec<Candidate>,
    out: VecDeque<Action>,
}

impl Upgrade {
    /// The dialer's upgrade: makes its first offer at once.
    pub fn dialer(now: u64, token: Token, addrs: Vec<SocketAddr>) -> Upgrade {
        let mut u = Upgrade {
            role: Side::Dialer,
            token: Some(token),
            addrs,
            attempt: 0,
            state: State::Offering,
            deadline: None,
            up: Vec::new(),
            out: VecDeque::new(),
        };
        u.offer(now);
        u
    }

    /// The acceptor's upgrade: waits for an offer.
    pub fn acceptor(addrs: Vec<SocketAddr>) -> Upgrade {
        Upgrade {
            role: Side::Acceptor,
            token: None,
            addrs,
            attempt: 0,
            state: State::Waiting,
            deadline: None,
            up: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The token candidates greet with (the acceptor learns it from the first offer).
    pub fn token(&self) -> Option<Token> {
        self.token
    }

    /// This end's addresses changed (for the next offer or answer).
    pub fn set_addrs(&mut self, addrs: Vec<SocketAddr>) {
        self.addrs = addrs;
    }

    /// True once the upgrade is over (switched or failed); a relayed connection that gave up
    /// still takes a late candidate.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When [`Upgrade::tick`] is next due.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    fn offer(&mut self, now: u64) {
        self.attempt += 1;
        self.out.push_back(Action::Send(UpgradeMessage::Offer {
            attempt: self.attempt,
            token: self.token.expect("the dialer has a token"),
            addrs: self.addrs.clone(),
        }));
        self.deadline = Some(now + ATTEMPT_MS);
    }

    /// The time passed: the next offer, giving up, or a switch not completed in time.
    pub fn tick(&mut self, now: u64) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.state {
            State::Offering if self.attempt < UPGRADE_ATTEMPTS => self.offer(now),
            State::Offering => {
                self.state = State::GaveUp;
                self.out.push_back(Action::GaveUp);
            }
            State::Switching(_) => {
                self.state = State::Done;
                self.out.push_back(Action::Fail);
            }
            State::GaveUp | State::Waiting | State::Done => {}
        }
    }

    /// A message from the other end, read on the relayed connection.
    pub fn message(&mut self, now: u64, msg: UpgradeMessage) -> Result<(), UpgradeViolation> {
        match (self.role, msg) {
            (
                Side::Acceptor,
                UpgradeMessage::Offer {
                    attempt,
                    token,
                    addrs,
                },
            ) => {
                if self.token.is_some_and(|t| t != token) {
                    return Err(UpgradeViolation("an offer with another token"));
                }
                if !matches!(self.state, State::Waiting) || attempt <= self.attempt {
                    // Switching or switched already, or an old attempt: nothing to dial.
                    return Ok(());
                }
                self.token = Some(token);
                self.attempt = attempt;
                self.out.push_back(Action::Dial { attempt, addrs });
                self.out.push_back(Action::Send(UpgradeMessage::Answer {
                    attempt,
                    addrs: self.addrs.clone(),
                }));
                Ok(())
            }
            (Side::Dialer, UpgradeMessage::Answer { attempt, addrs }) => {
                if attempt == 0 || attempt > self.attempt {
                    return Err(UpgradeViolation("an answer to no offer"));
                }
                if matches!(self.state, State::Offering | State::GaveUp) {
                    self.out.push_back(Action::Dial { attempt, addrs });
                }
                Ok(())
            }
            (Side::Acceptor, UpgradeMessage::Switch(chosen)) => {
                if self.token.is_none() || !matches!(self.state, State::Waiting) {
                    return Err(UpgradeViolation("a switch with no offer"));
                }
                if chosen.attempt == 0 || chosen.attempt > self.attempt {
                    return Err(UpgradeViolation("a switch to a candidate never dialled"));
                }
                self.state = State::Switching(chosen);
                if self.up.contains(&chosen) {
                    self.acceptor_switch(chosen);
                } else {
                    self.deadline = Some(now + SWITCH_WAIT_MS);
                }
                Ok(())
            }
            (Side::Dialer, UpgradeMessage::Switched) => {
                let State::Switching(chosen) = self.state else {
                    return Err(UpgradeViolation("switched with no switch"));
                };
                self.state = State::Done;
                self.deadline = None;
                self.out.push_back(Action::ReadFrom(chosen));
                self.out.push_back(Action::CloseRelayed);
                Ok(())
            }
            (Side::Dialer, _) => Err(UpgradeViolation("an acceptor's message to the dialer")),
            (Side::Acceptor, _) => Err(UpgradeViolation("a dialer's message to the acceptor")),
        }
    }

    /// A candidate is up (greeted with the token and its attempt).
    pub fn candidate_up(&mut self, now: u64, c: Candidate) {
        if self.up.contains(&c) {
            return;
        }
        self.up.push(c);
        match (self.role, self.state) {
            (Side::Dialer, State::Offering | State::GaveUp) => {
                self.state = State::Switching(c);
                self.deadline = Some(now + SWITCH_WAIT_MS);
                self.out.push_back(Action::SwitchSending {
                    message: UpgradeMessage::Switch(c),
                    to: c,
                });
                self.close_all_but(c);
            }
            (Side::Acceptor, State::Switching(chosen)) if chosen == c => {
                self.acceptor_switch(c);
            }
            // Waiting for the dialer's choice: keep it.
            (Side::Acceptor, State::Waiting) => {}
            // One was chosen already (or the upgrade is over): this one is not needed.
            _ => {
                self.up.retain(|u| *u != c);
                self.out.push_back(Action::CloseCandidate(c));
            }
        }
    }

    fn acceptor_switch(&mut self, c: Candidate) {
        self.state = State::Done;
        self.deadline = None;
        self.out.push_back(Action::SwitchSending {
            message: UpgradeMessage::Switched,
            to: c,
        });
        self.out.push_back(Action::ReadFrom(c));
        self.close_all_but(c);
    }

    /// Closes every candidate up but `keep`.
    fn close_all_but(&mut self, keep: Candidate) {
        for u in std::mem::take(&mut self.up) {
            if u == keep {
                self.up.push(u);
            } else {
                self.out.push_back(Action::CloseCandidate(u));
            }
        }
    }
}

#[cfg(test)]
mod tests;
