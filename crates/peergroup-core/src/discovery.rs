//! LAN discovery over mDNS (DNS-SD, the `mdns-sd` crate): a running group announces this
//! node on its link under a name only members recognise ([`crate::lan`]'s rules, in proto)
//! and browses for other members' names; what it finds goes to the machine as
//! `Input::Discovered` and is dialled like any other address.
//!
//! Only the node's own link: with the node bound to one address, the interface of that
//! address; with a wildcard, every interface but loopback; a node bound to loopback has no
//! LAN and runs none. Nothing in the announcement names the member or the group: the
//! instance and host names are a fresh nonce and its MAC in each 15-minute window, no TXT
//! record, and the port and addresses are where the node listens anyway.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use crate::control::NetEvent;
use crate::lan::{instance_label, window, LanKey, MAX_LAN_ADDRS, NONCE_LEN, SERVICE_TYPE};

/// How long closing waits for the goodbye announcement and the daemon's thread.
pub const LAN_CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// One group's LAN discovery.
pub(crate) struct Discovery {
    daemon: ServiceDaemon,
    key: Arc<LanKey>,
    /// This node's instance: its full name, window and addresses.
    announced: Arc<Mutex<Option<Announced>>>,
    browse: tokio::task::JoinHandle<()>,
}

/// This node's instance as announced.
struct Announced {
    fullname: String,
    window: u64,
    ips: Vec<IpAddr>,
}

fn nonce() -> Option<[u8; NONCE_LEN]> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut n = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut n).ok()?;
    Some(n)
}

impl Discovery {
    /// Starts browsing for members of the group whose root certificate is `grc_der`, on
    /// the link of `bound` (the node's socket address); what it finds goes to `net`. `None`
    /// on loopback, or when mDNS cannot run here (logged).
    pub(crate) fn start(
        grc_der: &[u8],
        bound: SocketAddr,
        net: mpsc::Sender<NetEvent>,
    ) -> Option<Discovery> {
        if bound.ip().is_loopback() {
            return None;
        }
        let started = (|| {
            let daemon = ServiceDaemon::new()?;
            daemon.disable_interface(IfKind::All)?;
            if bound.ip().is_unspecified() {
                daemon.enable_interface(vec![IfKind::IPv4, IfKind::IPv6])?;
                daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            } else {
                daemon.enable_interface(IfKind::Addr(bound.ip()))?;
            }
            let events = daemon.browse(SERVICE_TYPE)?;
            Ok::<_, mdns_sd::Error>((daemon, events))
        })();
        let (daemon, events) = match started {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(error = %e, "no LAN discovery");
                return None;
            }
        };
        let key = Arc::new(LanKey::of_group(grc_der));
        let announced: Arc<Mutex<Option<Announced>>> = Arc::default();
        let (k, ours) = (key.clone(), announced.clone());
        let browse = tokio::spawn(async move {
            while let Ok(event) = events.recv_async().await {
                let ServiceEvent::ServiceResolved(found) = event else {
                    continue;
                };
                let own = ours
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|a| a.fullname == found.fullname);
                let now = crate::clock::unix_now_ms().max(0) as u64;
                if own || !k.recognises(instance_label(&found.fullname), now) {
                    continue;
                }
                let addrs: Vec<SocketAddr> = found
                    .addresses
                    .iter()
                    .map(|ip| SocketAddr::new(ip.to_ip_addr(), found.port))
                    .take(MAX_LAN_ADDRS)
                    .collect();
                tracing::debug!(?addrs, "a member found on the LAN");
                if net.send(NetEvent::Discovered(addrs)).await.is_err() {
                    break;
                }
            }
        });
        Some(Discovery {
            daemon,
            key,
            announced,
            browse,
        })
    }

    /// Announces this node at `ips`, port `port`, in the window of `now_ms`: at once the
    /// first time, then again only when the window or the addresses changed (a new nonce,
    /// the old name withdrawn). Called on every tick while listening.
    pub(crate) fn announce(&self, ips: &[IpAddr], port: u16, now_ms: u64) {
        let w = window(now_ms);
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if announced
            .as_ref()
            .is_some_and(|a| a.window == w && a.ips == ips)
            || ips.is_empty()
        {
            return;
        }
        if let Some(old) = announced.take() {
            let _ = self.daemon.unregister(&old.fullname);
        }
        let Some(n) = nonce() else {
            return;
        };
        let name = self.key.instance_name(w, &n);
        // The host name is the instance's too: no machine name on the wire.
        let host = format!("{name}.local.");
        match ServiceInfo::new(
            SERVICE_TYPE,
            &name,
            &host,
            ips,
            port,
            None::<std::collections::HashMap<String, String>>,
        ) {
            Ok(info) => {
                let fullname = info.get_fullname().to_owned();
                match self.daemon.register(info) {
                    Ok(()) => {
                        *announced = Some(Announced {
                            fullname,
                            window: w,
                            ips: ips.to_vec(),
                        })
                    }
                    Err(e) => tracing::info!(error = %e, "cannot announce on the LAN"),
                }
            }
            Err(e) => tracing::info!(error = %e, "cannot announce on the LAN"),
        }
    }

    /// Withdraws the announcement and stops the daemon, within [`LAN_CLOSE_TIMEOUT`].
    pub(crate) async fn close(self) {
        self.browse.abort();
        let announced = self
            .announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let daemon = self.daemon;
        let stopped = tokio::task::spawn_blocking(move || {
            if let Some(a) = announced {
                if let Ok(done) = daemon.unregister(&a.fullname) {
                    let _ = done.recv_timeout(LAN_CLOSE_TIMEOUT);
                }
            }
            if let Ok(done) = daemon.shutdown() {
                let _ = done.recv_timeout(LAN_CLOSE_TIMEOUT);
            }
        });
        let _ = tokio::time::timeout(2 * LAN_CLOSE_TIMEOUT, stopped).await;
    }
}
