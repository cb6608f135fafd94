use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

const TOKEN: Token = [7; 16];

#[test]
fn every_message_comes_back_and_bad_ones_are_refused() {
    let msgs = [
        UpgradeMessage::Offer {
            attempt: 2,
            token: TOKEN,
            addrs: vec![addr(1), "[2001:db8::1]:9".parse().unwrap()],
        },
        UpgradeMessage::Answer {
            attempt: 1,
            addrs: vec![],
        },
        UpgradeMessage::Switch(Candidate {
            side: Side::Dialer,
            attempt: 1,
        }),
        UpgradeMessage::Switch(Candidate {
            side: Side::Acceptor,
            attempt: 3,
        }),
        UpgradeMessage::Switched,
    ];
    for m in msgs {
        assert_eq!(UpgradeMessage::decode(&m.encode()), Ok(m));
    }
    // Only the first addresses travel.
    let long = UpgradeMessage::Answer {
        attempt: 1,
        addrs: (1..=9).map(addr).collect(),
    };
    let UpgradeMessage::Answer { addrs, .. } = UpgradeMessage::decode(&long.encode()).unwrap()
    else {
        panic!("an answer");
    };
    assert_eq!(addrs.len(), UPGRADE_ADDRS);
    // More addresses than an upgrade carries, a bad side, trailing bytes, an unknown tag,
    // nothing at all.
    let mut too_many = vec![TAG_ANSWER, 1, 5];
    for p in 1..=5 {
        too_many.extend_from_slice(&[4, 192, 0, 2, 1, 0, p]);
    }
    for bad in [
        too_many,
        vec![TAG_SWITCH, 2, 1],
        vec![TAG_SWITCH, 0],
        vec![TAG_SWITCHED, 0],
        vec![9],
        vec![],
    ] {
        assert!(UpgradeMessage::decode(&bad).is_err(), "{bad:?}");
    }
}

fn drain(u: &mut Upgrade) -> Vec<Action> {
    std::iter::from_fn(|| u.poll_action()).collect()
}

#[test]
fn with_no_candidate_the_dialer_offers_three_times_then_stays_relayed_but_takes_a_late_one() {
    let mut d = Upgrade::dialer(0, TOKEN, vec![addr(1)]);
    let mut offers = 0;
    let mut now = 0;
    let mut gave_up = false;
    while let Some(at) = d.poll_timeout() {
        for a in drain(&mut d) {
            match a {
                Action::Send(UpgradeMessage::Offer { attempt, token, .. }) => {
                    offers += 1;
                    assert_eq!((attempt, token), (offers, TOKEN));
                }
                Action::GaveUp => gave_up = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(at > now);
        now = at;
        d.tick(now);
    }
    assert!(drain(&mut d).contains(&Action::GaveUp) || gave_up);
    assert_eq!(offers, UPGRADE_ATTEMPTS);
    assert_eq!(now, u64::from(UPGRADE_ATTEMPTS) * ATTEMPT_MS);
    assert!(!d.is_done());
    // A candidate that comes up after all is still switched to; a second one is closed.
    let late = Candidate {
        side: Side::Acceptor,
        attempt: 2,
    };
    d.candidate_up(now + 10, late);
    assert_eq!(
        drain(&mut d),
        vec![Action::SwitchSending {
            message: UpgradeMessage::Switch(late),
            to: late
        }]
    );
    let other = Candidate {
        side: Side::Dialer,
        attempt: 3,
    };
    d.candidate_up(now + 11, other);
    assert_eq!(drain(&mut d), vec![Action::CloseCandidate(other)]);
}

#[test]
fn messages_out_of_place_are_violations_and_change_nothing() {
    let mut a = Upgrade::acceptor(vec![addr(2)]);
    let first = Candidate {
        side: Side::Dialer,
        attempt: 1,
    };
    assert!(a.message(0, UpgradeMessage::Switch(first)).is_err());
    assert!(a.message(0, UpgradeMessage::Switched).is_err());
    assert!(a
        .message(
            0,
            UpgradeMessage::Answer {
                attempt: 1,
                addrs: vec![]
            }
        )
        .is_err());
    assert!(drain(&mut a).is_empty());
    let offer = |token| UpgradeMessage::Offer {
        attempt: 1,
        token,
        addrs: vec![addr(1)],
    };
    a.message(0, offer(TOKEN)).unwrap();
    assert_eq!(
        drain(&mut a),
        vec![
            Action::Dial {
                attempt: 1,
                addrs: vec![addr(1)]
            },
            Action::Send(UpgradeMessage::Answer {
                attempt: 1,
                addrs: vec![addr(2)]
            })
        ]
    );
    // The same attempt again dials nothing; another token is refused; so is a switch to an
    // attempt never offered.
    a.message(0, offer(TOKEN)).unwrap();
    assert!(a.message(0, offer([8; 16])).is_err());
    let never = Candidate {
        side: Side::Dialer,
        attempt: 2,
    };
    assert!(a.message(0, UpgradeMessage::Switch(never)).is_err());
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.token(), Some(TOKEN));

    let mut d = Upgrade::dialer(0, TOKEN, vec![]);
    drain(&mut d);
    assert!(d.message(0, offer(TOKEN)).is_err());
    assert!(d.message(0, UpgradeMessage::Switched).is_err());
    assert!(d
        .message(
            0,
            UpgradeMessage::Answer {
                attempt: 2,
                addrs: vec![]
            }
        )
        .is_err());
    assert!(drain(&mut d).is_empty());
}

#[test]
fn an_acceptor_whose_chosen_candidate_never_comes_fails_the_connection() {
    let mut a = Upgrade::acceptor(vec![]);
    a.message(
        0,
        UpgradeMessage::Offer {
            attempt: 1,
            token: TOKEN,
            addrs: vec![],
        },
    )
    .unwrap();
    drain(&mut a);
    let chosen = Candidate {
        side: Side::Dialer,
        attempt: 1,
    };
    // Another candidate up meanwhile is kept until the choice is known, then closed.
    let other = Candidate {
        side: Side::Acceptor,
        attempt: 1,
    };
    a.candidate_up(1, other);
    assert!(drain(&mut a).is_empty());
    a.message(5, UpgradeMessage::Switch(chosen)).unwrap();
    assert_eq!(a.poll_timeout(), Some(5 + SWITCH_WAIT_MS));
    a.tick(4 + SWITCH_WAIT_MS);
    assert!(drain(&mut a).is_empty());
    a.tick(5 + SWITCH_WAIT_MS);
    assert_eq!(drain(&mut a), vec![Action::Fail]);
    assert!(a.is_done());
}

#[test]
fn the_acceptor_switches_to_the_chosen_candidate_and_closes_the_rest() {
    let mut a = Upgrade::acceptor(vec![]);
    for attempt in 1..=2 {
        a.message(
            0,
            UpgradeMessage::Offer {
                attempt,
                token: TOKEN,
                addrs: vec![],
            },
        )
        .unwrap();
    }
    drain(&mut a);
    let c = |side, attempt| Candidate { side, attempt };
    a.candidate_up(1, c(Side::Acceptor, 1));
    a.candidate_up(2, c(Side::Acceptor, 2));
    a.message(3, UpgradeMessage::Switch(c(Side::Dialer, 2)))
        .unwrap();
    assert!(drain(&mut a).is_empty(), "waits for the chosen one");
    a.candidate_up(4, c(Side::Dialer, 2));
    assert_eq!(
        drain(&mut a),
        vec![
            Action::SwitchSending {
                message: UpgradeMessage::Switched,
                to: c(Side::Dialer, 2)
            },
            Action::ReadFrom(c(Side::Dialer, 2)),
            Action::CloseCandidate(c(Side::Acceptor, 1)),
            Action::CloseCandidate(c(Side::Acceptor, 2)),
        ]
    );
    assert!(a.is_done());
    a.candidate_up(5, c(Side::Dialer, 1));
    assert_eq!(
        drain(&mut a),
        vec![Action::CloseCandidate(c(Side::Dialer, 1))]
    );
}

/// Where a frame travels: the relayed connection or a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Path {
    Relayed,
    Candidate(Candidate),
}

#[derive(Clone, Debug)]
enum Item {
    Data(u32),
    Upgrade(UpgradeMessage),
}

/// One end in the model: what it sends on and reads from, and what it received.
struct End {
    up: Upgrade,
    send_on: Path,
    read_from: Path,
    /// Candidates up here and not closed.
    candidates: Vec<Candidate>,
    sent: u32,
    received: Vec<u32>,
    relayed_closed: bool,
    failed: bool,
}

/// A run of the two ends over FIFO paths with the given delays; `opens[s]` says whether a
/// candidate dialled by side `s` gets through the NATs, `slow` delays every candidate of
/// the first attempt past the next offer (a late one).
struct Run {
    ends: [End; 2],
    /// (path, from end) → frames in flight with their arrival time, in order.
    flight: BTreeMap<(Path, usize), VecDeque<(u64, Item)>>,
    /// Candidates closed (at both ends).
    closed: Vec<Candidate>,
    relay_ms: u64,
    direct_ms: u64,
    opens: [bool; 2],
    /// Candidate-up events due: (time, end, candidate).
    due: Vec<(u64, usize, Candidate)>,
    up_delay: [u64; 2],
    slow: bool,
}

fn side_of(end: usize) -> Side {
    if end == 0 {
        Side::Dialer
    } else {
        Side::Acceptor
    }
}

impl Run {
    fn send(&mut self, now: u64, from: usize, path: Path, item: Item) {
        let delay = if path == Path::Relayed {
            self.relay_ms
        } else {
            self.direct_ms
        };
        let q = self.flight.entry((path, from)).or_default();
        let at = q.back().map_or(now + delay, |(t, _)| (*t).max(now + delay));
        q.push_back((at, item));
    }

    fn act(&mut self, now: u64, e: usize) {
        while let Some(a) = self.ends[e].up.poll_action() {
            match a {
                Action::Send(m) => self.send(now, e, Path::Relayed, Item::Upgrade(m)),
                Action::Dial { attempt, .. } => {
                    // The candidate this end dials: its side is this end's role.
                    if self.opens[e] {
                        let c = Candidate {
                            side: side_of(e),
                            attempt,
                        };
                        let late = if self.slow && attempt == 1 {
                            2 * ATTEMPT_MS
                        } else {
                            0
                        };
                        let rtt = 2 * self.direct_ms + late;
                        self.due.push((now + rtt + self.up_delay[e], e, c));
                        self.due.push((now + rtt + self.up_delay[1 - e], 1 - e, c));
                    }
                }
                Action::SwitchSending { message, to } => {
                    self.send(now, e, Path::Relayed, Item::Upgrade(message));
                    assert!(
                        self.ends[e].candidates.contains(&to),
                        "switched to a candidate not up"
                    );
                    self.ends[e].send_on = Path::Candidate(to);
                }
                Action::ReadFrom(c) => {
                    assert!(self.ends[e].candidates.contains(&c));
                    // Nothing may be left unread on the relayed path.
                    let left = self.flight.get(&(Path::Relayed, 1 - e));
                    assert!(left.is_none_or(|q| q.is_empty()), "unread: {left:?}");
                    self.ends[e].read_from = Path::Candidate(c);
                }
                Action::CloseCandidate(c) => {
                    // Closing one end closes both; never the one in use.
                    for end in &mut self.ends {
                        assert_ne!(end.send_on, Path::Candidate(c), "closed in use");
                        assert_ne!(end.read_from, Path::Candidate(c), "closed in use");
                        end.candidates.retain(|u| *u != c);
                    }
                    self.closed.push(c);
                }
                Action::GaveUp => {}
                Action::CloseRelayed => self.ends[e].relayed_closed = true,
                Action::Fail => self.ends[e].failed = true,
            }
        }
    }

    fn step(&mut self, now: u64) {
        // Candidates coming up.
        let due: Vec<_> = self.due.iter().copied().filter(|d| d.0 == now).collect();
        self.due.retain(|d| d.0 != now);
        for (_, e, c) in due {
            if !self.ends[e].candidates.contains(&c) && !self.closed.contains(&c) {
                self.ends[e].candidates.push(c);
                self.ends[e].up.candidate_up(now, c);
                self.act(now, e);
            }
        }
        for e in 0..2 {
            // Application data, every 3 ms for the first 6 s.
            if now % 3 == 0 && now < 6_000 && !self.ends[e].failed {
                let n = self.ends[e].sent;
                self.ends[e].sent += 1;
                let on = self.ends[e].send_on;
                self.send(now, e, on, Item::Data(n));
            }
            // Reading what arrived on the path this end reads.
            let path = self.ends[e].read_from;
            while let Some((at, _)) = self.flight.get(&(path, 1 - e)).and_then(|q| q.front()) {
                if *at > now || self.ends[e].read_from != path {
                    break;
                }
                let (_, item) = self
                    .flight
                    .get_mut(&(path, 1 - e))
                    .unwrap()
                    .pop_front()
                    .unwrap();
                match item {
                    Item::Data(n) => self.ends[e].received.push(n),
                    Item::Upgrade(m) => {
                        self.ends[e].up.message(now, m).expect("no violation");
                        self.act(now, e);
                    }
                }
            }
            self.ends[e].up.tick(now);
            self.act(now, e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the delays and whichever candidates get through: both ends end on the same
    /// candidate when one does, every message arrives once and in order, and nothing is left
    /// on the relayed connection when it closes; with none, the connection stays relayed.
    #[test]
    fn the_switch_loses_and_reorders_nothing(
        relay_ms in 1u64..150,
        direct_ms in 1u64..60,
        opens in proptest::array::uniform2(any::<bool>()),
        up_delay in proptest::array::uniform2(0u64..400),
        slow in any::<bool>(),
    ) {
        let mut run = Run {
            ends: [
                End {
                    up: Upgrade::dialer(0, TOKEN, vec![addr(1)]),
                    send_on: Path::Relayed, read_from: Path::Relayed, candidates: vec![],
                    sent: 0, received: vec![], relayed_closed: false, failed: false,
                },
                End {
                    up: Upgrade::acceptor(vec![addr(2)]),
                    send_on: Path::Relayed, read_from: Path::Relayed, candidates: vec![],
                    sent: 0, received: vec![], relayed_closed: false, failed: false,
                },
            ],
            flight: BTreeMap::new(), closed: vec![],
            relay_ms, direct_ms, opens, due: vec![], up_delay, slow,
        };
        run.act(0, 0);
        for now in 0..16_000 {
            run.step(now);
        }
        let [d, a] = &run.ends;
        prop_assert!(!d.failed && !a.failed);
        prop_assert_eq!(&d.received, &(0..a.sent).collect::<Vec<_>>());
        prop_assert_eq!(&a.received, &(0..d.sent).collect::<Vec<_>>());
        if opens[0] || opens[1] {
            prop_assert!(d.relayed_closed && d.up.is_done() && a.up.is_done());
            prop_assert_eq!(d.send_on, a.send_on);
            prop_assert_eq!(d.read_from, a.read_from);
            prop_assert_eq!(d.send_on, d.read_from);
            prop_assert!(d.send_on != Path::Relayed);
        } else {
            prop_assert_eq!((d.send_on, a.send_on), (Path::Relayed, Path::Relayed));
            prop_assert!(!d.up.is_done());
        }
    }
}
