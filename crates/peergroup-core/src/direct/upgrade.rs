//! Serving one direct connection, and upgrading it in place when it is relayed: the runtime
//! half of [`crate::upgrade`] (this side dials, moves frames and keeps the clock; the
//! machine decides).
//!
//! The serving task reads one connection at a time: the relayed one until the machine says
//! everything on it has been read, then the chosen candidate. Sending moves in one step under
//! the connection's send lock ([`Directs::switch_sending`]), so an application message is
//! never split between the relayed connection and the candidate's, and the peer, reading
//! in the same order, sees every message once and in order.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{deliver, greet, Candidate, DirectContext, Directs};
use crate::data::{Reassembler, KIND_DATA};
use crate::transport::{CloseCode, Connection, Frame};
use std::collections::HashMap;

use crate::upgrade::{
    Action, Candidate as CandidateId, Side, Token, Upgrade, UpgradeMessage, KIND_DIRECT_UPGRADE,
};

/// Candidates waiting for the serving task (two sides, a few attempts each).
const CANDIDATE_QUEUE: usize = 8;

/// What upgrades need of the network, provided by the driver.
pub(crate) trait Paths: Send + Sync {
    /// This node's addresses to offer the peer (observed ones first).
    fn addrs(&self) -> Vec<SocketAddr>;
    /// Sends punch datagrams to `addrs` at once, before dialling them.
    fn punch(&self, addrs: &[SocketAddr]);
    /// Dials `member` at `addrs` for a direct connection: the first connection up whose
    /// peer is `member`, or `None`.
    fn dial(
        &self,
        member: &str,
        addrs: Vec<SocketAddr>,
    ) -> Pin<Box<dyn Future<Output = Option<Connection>> + Send>>;
}

/// One direct connection being served.
pub(super) struct Link<'a> {
    ctx: &'a DirectContext,
    id: u64,
    member: String,
    /// The connection the direct connection began on.
    first: Connection,
    /// The one read now.
    reading: Connection,
    /// Candidates up and not closed.
    candidates: HashMap<CandidateId, Connection>,
    /// The upgrade, while the connection began relayed.
    upgrade: Option<Upgrade>,
    /// Candidates arrive here: this side's dials, and the peer's through the table.
    rx: mpsc::Receiver<Candidate>,
    tx: mpsc::Sender<Candidate>,
    role: Side,
    /// The upgrade machine's clock starts here.
    start: Instant,
    parts: Reassembler,
}

enum Step {
    Frame(Option<Frame>),
    Candidate(Candidate),
    Tick,
}

fn random_token() -> Option<Token> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut t = [0u8; 16];
    SystemRandom::new().fill(&mut t).ok()?;
    Some(t)
}

impl<'a> Link<'a> {
    /// Serving `conn`, the direct connection `id` to `member` at this side's `role`; a
    /// relayed one starts its upgrade at once.
    pub(super) fn new(
        ctx: &'a DirectContext,
        id: u64,
        conn: Connection,
        member: String,
        role: Side,
    ) -> Link<'a> {
        let (tx, rx) = mpsc::channel(CANDIDATE_QUEUE);
        let mut link = Link {
            ctx,
            id,
            member,
            first: conn.clone(),
            reading: conn,
            candidates: HashMap::new(),
            upgrade: None,
            rx,
            tx,
            role,
            start: Instant::now(),
            parts: Reassembler::new(),
        };
        if link.first.relayed_via().is_some() {
            let addrs = ctx.paths.addrs();
            let upgrade = match role {
                Side::Dialer => random_token().map(|t| Upgrade::dialer(0, t, addrs)),
                Side::Acceptor => Some(Upgrade::acceptor(addrs)),
            };
            if let Some(u) = upgrade {
                ctx.directs
                    .upgrading(id, &link.first, role, link.tx.clone());
                if let Some(t) = u.token() {
                    ctx.directs.set_token(id, t);
                }
                link.upgrade = Some(u);
            }
        }
        link
    }

    fn directs(&self) -> &Directs {
        &self.ctx.directs
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Serves until the direct connection ends; returns the connection to wait on.
    pub(super) async fn run(mut self) -> Connection {
        // The first offer goes at once.
        let mut going = self.act().await;
        while going {
            let deadline = self
                .upgrade
                .as_ref()
                .and_then(Upgrade::poll_timeout)
                .map(|ms| self.start + Duration::from_millis(ms));
            let step = tokio::select! {
                frame = self.reading.recv() => Step::Frame(frame.ok()),
                Some(c) = self.rx.recv() => Step::Candidate(c),
                () = sleep_until(deadline) => Step::Tick,
            };
            let now = self.now();
            match step {
                Step::Frame(None) => break,
                Step::Frame(Some(frame)) => {
                    if let Err(why) = self.frame(now, &frame).await {
                        tracing::info!(
                            conn = self.id,
                            why,
                            "protocol violation on a direct connection"
                        );
                        self.reading
                            .close(CloseCode::ProtocolViolation, "protocol violation");
                        break;
                    }
                }
                Step::Candidate(c) => match self.upgrade.as_mut() {
                    Some(u) if !self.candidates.contains_key(&c.id) => {
                        tracing::debug!(conn = self.id, candidate = ?c.id, "candidate up");
                        self.candidates.insert(c.id, c.conn);
                        u.candidate_up(now, c.id);
                    }
                    // Over, or a second connection under one tag.
                    _ => c.conn.close(CloseCode::Shutdown, "upgrade over"),
                },
                Step::Tick => {
                    if let Some(u) = self.upgrade.as_mut() {
                        u.tick(now);
                    }
                }
            }
            going = self.act().await;
        }
        self.end()
    }

    /// One frame read: data for the application, or the upgrade's own on the relayed one.
    async fn frame(&mut self, now: u64, frame: &Frame) -> Result<(), String> {
        match u8::try_from(frame.kind()) {
            Ok(KIND_DATA) => deliver(&self.ctx.events, self.id, &mut self.parts, frame).await,
            Ok(KIND_DIRECT_UPGRADE) if self.reading.id() == self.first.id() => {
                let Some(u) = self.upgrade.as_mut() else {
                    return Err("an upgrade message on a direct path".into());
                };
                let msg = UpgradeMessage::decode(frame.payload()).map_err(|e| e.to_string())?;
                u.message(now, msg).map_err(|e| e.to_string())?;
                if let Some(t) = u.token() {
                    self.ctx.directs.set_token(self.id, t);
                }
                Ok(())
            }
            _ => Err("only data may travel on a direct connection".into()),
        }
    }

    /// Does what the upgrade asks; false when the direct connection is to end.
    async fn act(&mut self) -> bool {
        while let Some(action) = self.upgrade.as_mut().and_then(Upgrade::poll_action) {
            tracing::debug!(conn = self.id, ?action, "upgrade action");
            match action {
                Action::Send(msg) => {
                    let Ok(frame) = upgrade_frame(&msg) else {
                        return false;
                    };
                    // Not under the send lock: a frame of its own between data frames.
                    if self.first.send(&frame).await.is_err() {
                        return false;
                    }
                }
                Action::Dial { attempt, addrs } => self.dial(attempt, addrs),
                Action::SwitchSending { message, to } => {
                    let Some(to) = self.candidates.get(&to).cloned() else {
                        return false;
                    };
                    let Ok(frame) = upgrade_frame(&message) else {
                        return false;
                    };
                    if !self.directs().switch_sending(self.id, &frame, &to).await {
                        return false;
                    }
                    tracing::info!(
                        conn = self.id,
                        address = %to.remote_address(),
                        "relayed direct connection upgraded to a direct path"
                    );
                }
                Action::ReadFrom(c) => match self.candidates.get(&c) {
                    Some(c) => self.reading = c.clone(),
                    None => return false,
                },
                Action::CloseCandidate(c) => {
                    if let Some(c) = self.candidates.remove(&c) {
                        c.close(CloseCode::Shutdown, "another path was chosen");
                    }
                }
                Action::CloseRelayed => {
                    self.directs().upgrade_over(self.id);
                    self.first
                        .close(CloseCode::Shutdown, "upgraded to a direct path");
                }
                Action::GaveUp => {
                    tracing::debug!(conn = self.id, "no direct path found: staying relayed");
                }
                Action::Fail => {
                    tracing::info!(conn = self.id, "the peer did not complete the upgrade");
                    return false;
                }
            }
        }
        if self.upgrade.as_ref().is_some_and(Upgrade::is_done) && self.role == Side::Acceptor {
            // The acceptor is done once it switched: the dialer closes the relayed one.
            self.directs().upgrade_over(self.id);
        }
        true
    }

    /// Dials this side's candidate for `attempt` in the background; it joins the link
    /// greeted.
    fn dial(&self, attempt: u8, addrs: Vec<SocketAddr>) {
        let Some(token) = self.upgrade.as_ref().and_then(Upgrade::token) else {
            return;
        };
        // Before anything else this side sends (an acceptor's answer follows): so this
        // side's NAT already lets the peer's handshake in when the peer dials on the answer.
        self.ctx.paths.punch(&addrs);
        let dialled = self.ctx.paths.dial(&self.member, addrs);
        let tx = self.tx.clone();
        let node_id = self.ctx.node_id;
        let id = CandidateId {
            side: self.role,
            attempt,
        };
        tokio::spawn(async move {
            let Some(conn) = dialled.await else {
                return;
            };
            match greet(&conn, node_id, Some((&token, attempt))).await {
                Ok((_, Some(echo))) if echo == (token, attempt) => {
                    if let Err(e) = tx.send(Candidate { id, conn }).await {
                        e.0.conn.close(CloseCode::Shutdown, "upgrade over");
                    }
                }
                Ok(_) => conn.close(CloseCode::ProtocolViolation, "bad candidate greeting"),
                Err(_) => {}
            }
        });
    }

    /// The direct connection ends: every connection of it is closed; the one read last is
    /// the one whose close is waited for.
    fn end(mut self) -> Connection {
        self.directs().upgrade_over(self.id);
        self.rx.close();
        while let Ok(c) = self.rx.try_recv() {
            c.conn
                .close(CloseCode::Shutdown, "direct connection closed");
        }
        let others: Vec<Connection> = self.candidates.drain().map(|(_, c)| c).collect();
        for c in others.into_iter().chain([self.first.clone()]) {
            if c.id() != self.reading.id() {
                c.close(CloseCode::Shutdown, "direct connection closed");
            }
        }
        self.reading
            .close(CloseCode::Shutdown, "direct connection closed");
        self.reading
    }
}

fn upgrade_frame(msg: &UpgradeMessage) -> Result<Frame, ()> {
    Frame::new(u16::from(KIND_DIRECT_UPGRADE), msg.encode()).map_err(|_| ())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
