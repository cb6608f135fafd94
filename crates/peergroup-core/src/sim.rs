//! A deterministic simulated network for the group machine: hundreds of members in one
//! process, seeded, with latency and failed dials, and no sockets or clocks.
//!
//! Addresses are only names here (`127.0.0.1:<10000 + index>`); nothing is ever sent.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;

use crate::machine::{Config, ConnId, Group, Input, Millis, Output, Rng};

/// Settings of a simulated network.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Members, the first being the creator.
    pub members: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// One-way latency range, milliseconds.
    pub latency: (Millis, Millis),
    /// Chance (per thousand) that a dial fails even though the target listens.
    pub dial_loss_per_mille: u64,
    /// Joiners call Connect at a random time in `0..join_window`.
    pub join_window: Millis,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            members: 100,
            seed: 1,
            latency: (5, 50),
            dial_loss_per_mille: 20,
            join_window: 10_000,
        }
    }
}

enum Action {
    Input(usize, Input),
}

/// The simulated network and its members.
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    actions: BTreeMap<u64, Action>,
    /// The members' machines, by index.
    pub nodes: Vec<Group>,
    listening: Vec<bool>,
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Per sending side of a link, when its last message lands: a link delivers in order.
    link_clock: BTreeMap<(usize, ConnId), Millis>,
    next_conn: ConnId,
    /// Messages delivered so far.
    pub messages: u64,
}

/// The simulated address of member `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16))
}

impl Sim {
    /// A network where member 0 created the group and every other member holds an
    /// invitation naming member 0's address.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let nodes = (0..cfg.members)
            .map(|i| {
                let mut c = Config::new(rng.next_u64(), &format!("member-{i}"));
                c.creator = i == 0;
                let mut g = Group::new(c, Vec::new(), None);
                if i != 0 {
                    g.add_bootstrap(&[addr_of(0)]);
                }
                g
            })
            .collect();
        let mut sim = Sim {
            listening: vec![false; cfg.members],
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            actions: BTreeMap::new(),
            nodes,
            links: BTreeMap::new(),
            link_clock: BTreeMap::new(),
            next_conn: 1,
            messages: 0,
        };
        sim.schedule(0, Action::Input(0, Input::Connect));
        for i in 1..sim.cfg.members {
            let at = sim.rng.range(1, sim.cfg.join_window.max(2));
            sim.schedule(at, Action::Input(i, Input::Connect));
        }
        sim
    }

    /// The simulated time.
    pub fn now(&self) -> Millis {
        self.now
    }

    fn schedule(&mut self, at: Millis, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.actions.insert(self.seq, action);
    }

    fn latency(&mut self) -> Millis {
        let (lo, hi) = self.cfg.latency;
        self.rng.range(lo, hi + 1)
    }

    /// Runs until `until` (simulated milliseconds).
    pub fn run_until(&mut self, until: Millis) {
        loop {
            // Timers: tick every machine whose deadline passed, in index order.
            let next_timer = self.nodes.iter().filter_map(|g| g.poll_timeout()).min();
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next = match (next_timer, next_event) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_event == Some(next) {
                let Reverse((_, seq)) = self.queue.pop().expect("peeked");
                let Action::Input(i, input) = self.actions.remove(&seq).expect("scheduled");
                self.feed(i, input);
            } else {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].poll_timeout().is_some_and(|t| t <= next) {
                        self.feed(i, Input::Tick);
                    }
                }
            }
        }
        self.now = until;
    }

    fn feed(&mut self, i: usize, input: Input) {
        if let Input::Message(..) = input {
            self.messages += 1;
        }
        self.nodes[i].handle(self.now, input);
        while let Some(out) = self.nodes[i].poll_output() {
            self.output(i, out);
        }
    }

    fn output(&mut self, i: usize, out: Output) {
        match out {
            Output::StartListening => {
                self.listening[i] = true;
                self.nodes[i].handle(self.now, Input::Listening(vec![addr_of(i)]));
                while let Some(o) = self.nodes[i].poll_output() {
                    self.output(i, o);
                }
            }
            Output::Dial(addr) => {
                let j = (addr.port() - 10_000) as usize;
                let lat = self.latency();
                let lost = self.rng.range(0, 1000) < self.cfg.dial_loss_per_mille;
                if j >= self.nodes.len() || !self.listening[j] || !self.nodes[j].is_online() || lost
                {
                    let hr = crate::identity::hresult::PEER_E_CONNECTION_FAILED;
                    self.schedule(
                        self.now + 2 * lat,
                        Action::Input(i, Input::DialFailed(addr, hr)),
                    );
                    return;
                }
                let (ci, cj) = (self.next_conn, self.next_conn + 1);
                self.next_conn += 2;
                self.links.insert((i, ci), (j, cj));
                self.links.insert((j, cj), (i, ci));
                let up = |member: usize, conn, remote, outbound| Input::ConnectionUp {
                    conn,
                    member: format!("member-{member}"),
                    remote,
                    outbound,
                };
                self.schedule(
                    self.now + lat,
                    Action::Input(j, up(i, cj, addr_of(i), false)),
                );
                self.schedule(self.now + 2 * lat, Action::Input(i, up(j, ci, addr, true)));
            }
            Output::Send(conn, msg) => {
                if let Some(&(j, cj)) = self.links.get(&(i, conn)) {
                    let at = self.in_order(i, conn);
                    self.schedule(at, Action::Input(j, Input::Message(cj, msg)));
                }
            }
            Output::Disconnect(conn, _) => {
                if let Some((j, cj)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, cj));
                    let at = self.in_order(i, conn);
                    self.link_clock.remove(&(i, conn));
                    self.link_clock.remove(&(j, cj));
                    self.schedule(at, Action::Input(j, Input::ConnectionDown(cj)));
                }
            }
            Output::Event(_) | Output::Persist(_) => {}
        }
    }

    /// When something sent now on `(i, conn)` lands: after its latency, and never before
    /// what was sent earlier on the same link (a QUIC stream delivers in order, and a
    /// graceful close comes after the data).
    fn in_order(&mut self, i: usize, conn: ConnId) -> Millis {
        let lat = self.latency();
        let clock = self.link_clock.entry((i, conn)).or_insert(0);
        *clock = (*clock).max(self.now + lat);
        *clock
    }

    /// True when the neighbour graph connects every member.
    pub fn connected(&self) -> bool {
        let n = self.nodes.len();
        let mut adj = vec![Vec::new(); n];
        for (&(i, _), &(j, _)) in &self.links {
            adj[i].push(j);
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    }

    /// Each member's neighbour count.
    pub fn degrees(&self) -> Vec<usize> {
        self.nodes.iter().map(|g| g.neighbours().count()).collect()
    }
}
