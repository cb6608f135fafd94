//! `pg-flood`: an outsider flooding a member with connection attempts that never complete,
//! for the NAT lab (`tests/tests/netns_flood.rs`).
//!
//! ```text
//! pg-flood --to IP:PORT --group GROUP_PEER_NAME --rate N --from IP[,IP…]
//! ```
//!
//! Starts `N` QUIC handshakes a second to the member for the group's server name (which
//! anyone who knows the group name can compute), each from its own port on the given source
//! addresses in turn, on sockets that never read (`peergroup_transport::testing::DeafClients`):
//! to the member, sources that cannot hear its answers, as forged ones. Each attempt is kept
//! [`KEEP`], then dropped (the member holds it to its own timeout anyway). Prints `flooding` once the
//! first tenth of a second is sent, and goes on until standard input ends; then prints how
//! many it started.

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peergroup_core::identity::PeerName;
use peergroup_transport::testing::DeafClients;

/// How long each attempt is kept in flight (its Initials resent); the member holds a slot
/// for its own handshake timeout whatever the sender does.
const KEEP: Duration = Duration::from_secs(2);
/// Attempts start in batches this often.
const TICK: Duration = Duration::from_millis(100);

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("pg-flood: {name} is needed"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let to: SocketAddr = arg(&args, "--to").parse().expect("--to IP:PORT");
    let group: PeerName = arg(&args, "--group").parse().expect("--group PEER_NAME");
    let rate: usize = arg(&args, "--rate").parse().expect("--rate N");
    let sources: Vec<IpAddr> = arg(&args, "--from")
        .split(',')
        .map(|s| s.parse().expect("--from IP,IP…"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let name = peergroup_core::server_name_of(&group);
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let per_tick = (rate / 10).max(1);
    let mut batches: VecDeque<(Instant, DeafClients)> = VecDeque::new();
    let mut started = 0usize;
    let mut offset = 0usize;
    while !done.load(Ordering::SeqCst) {
        let now = Instant::now();
        while batches
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > KEEP)
        {
            batches.pop_front();
        }
        // Rotate the sources so that each batch spreads over all of them.
        let rotated: Vec<IpAddr> = (0..sources.len())
            .map(|i| sources[(offset + i) % sources.len()])
            .collect();
        offset += per_tick;
        let batch = DeafClients::start(to, &name, &rotated, per_tick).expect("a batch starts");
        started += batch.len();
        batches.push_back((now, batch));
        if started == per_tick {
            println!("flooding");
        }
        std::thread::sleep(TICK);
    }
    drop(batches);
    println!("started {started}");
}
