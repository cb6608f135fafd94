//! The transport node of a library instance: bound on first use, closed when no group is
//! online, and its accept loop, which hands each authenticated connection to the driver of
//! its group.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::transport::{CloseCode, IncomingTunnel, Node, NodeConfig, TunnelRefusal};

use crate::control::NetEvent;
use crate::trust::Registry;

/// How long closing the node waits for the last peers and the socket.
pub const NODE_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

struct NetNode {
    node: Arc<Node>,
    registry: Arc<Registry>,
    accept_task: tokio::task::JoinHandle<()>,
    tunnel_task: tokio::task::JoinHandle<()>,
}

/// The transport node of a library instance, bound on first use.
pub(crate) struct Network {
    listen: Option<SocketAddr>,
    limits: crate::transport::Limits,
    pub(crate) node_id: u64,
    state: tokio::sync::Mutex<Option<NetNode>>,
}

impl Network {
    pub(crate) fn new(listen: Option<SocketAddr>, limits: crate::transport::Limits) -> Self {
        Network {
            listen,
            limits,
            node_id: random_u64(),
            state: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn node(&self) -> Result<(Arc<Node>, Arc<Registry>)> {
        let mut state = self.state.lock().await;
        if let Some(n) = state.as_ref() {
            return Ok((n.node.clone(), n.registry.clone()));
        }
        let addr = match self.listen {
            Some(a) => a,
            None => crate::transport::default_listen_addr()?,
        };
        let registry = Arc::new(Registry::default());
        let mut config = NodeConfig::new(registry.clone(), registry.clone());
        config.limits = self.limits.clone();
        let node = Arc::new(Node::bind(addr, config)?);
        tracing::info!(addr = %node.local_addr(), "transport node bound");
        let accept_task = tokio::spawn(accept_loop(node.clone(), registry.clone()));
        let tunnel_task = tokio::spawn(tunnel_loop(node.clone(), registry.clone()));
        *state = Some(NetNode {
            node: node.clone(),
            registry: registry.clone(),
            accept_task,
            tunnel_task,
        });
        Ok((node, registry))
    }

    /// The listen address set for this instance, if it is a concrete one (an IP that is not
    /// unspecified and a port that is not 0), else `$PEERGROUP_LISTEN` under the same rule.
    pub(crate) fn configured_addr(&self) -> Option<SocketAddr> {
        let addr = match self.listen {
            Some(a) => a,
            None => crate::transport::default_listen_addr().ok()?,
        };
        (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
    }

    /// The bound address, if the node is up.
    pub(crate) async fn local_addr(&self) -> Option<SocketAddr> {
        self.state
            .lock()
            .await
            .as_ref()
            .map(|n| n.node.local_addr())
    }

    /// Closes the node once no group runs on it: the last step of the close cascade, which
    /// releases the UDP port.
    pub(crate) async fn release_if_idle(&self) {
        let mut state = self.state.lock().await;
        let idle = state.as_ref().is_some_and(|n| {
            n.registry
                .groups
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        });
        if !idle {
            return;
        }
        let n = state.take().expect("checked above");
        n.accept_task.abort();
        n.tunnel_task.abort();
        if let Err(e) = n
            .node
            .close(CloseCode::GroupClosed, NODE_CLOSE_TIMEOUT)
            .await
        {
            tracing::warn!(error = %e, "closing the transport node");
        }
        tracing::info!("transport node closed");
    }
}

async fn accept_loop(node: Arc<Node>, registry: Arc<Registry>) {
    while let Some(conn) = node.accept().await {
        let direct = crate::direct::group_of_direct_name(conn.server_name());
        let name = direct
            .clone()
            .unwrap_or_else(|| conn.server_name().to_owned());
        match registry.validate(&name, conn.peer_chain()) {
            Ok(member) => {
                let net = registry.events_of(&name);
                match net {
                    Some(net) => {
                        let member = member.peer_name().to_string();
                        let up = match direct {
                            Some(_) => NetEvent::DirectUp { conn, member },
                            None => NetEvent::Up {
                                conn,
                                member,
                                outbound: false,
                                via_node: None,
                            },
                        };
                        let _ = net.send(up).await;
                    }
                    None => conn.close(CloseCode::NotAuthorized, "group not served here"),
                }
            }
            Err(e) => {
                let net = registry.events_of(&name);
                let candidate = registry
                    .password_candidate(&name, conn.peer_chain())
                    .filter(|_| direct.is_none());
                match (candidate, net) {
                    (Some(subject), Some(net)) => {
                        let _ = net
                            .send(NetEvent::PasswordCandidate { conn, subject })
                            .await;
                    }
                    _ => {
                        tracing::info!(server_name = %name, error = %e, "refusing a connection");
                        conn.close(CloseCode::NotAuthorized, "not a member of that group");
                    }
                }
            }
        }
    }
}

/// Hands each tunnel asked for or offered on a member connection to the driver of that
/// connection's group, which decides ([`crate::relay`]); a tunnel on any other connection
/// (a direct connection, a group not served here) is refused.
async fn tunnel_loop(node: Arc<Node>, registry: Arc<Registry>) {
    while let Some(tunnel) = node.accept_tunnel().await {
        let name = tunnel.via().server_name().to_owned();
        let net = crate::direct::group_of_direct_name(&name)
            .is_none()
            .then(|| registry.events_of(&name))
            .flatten();
        match net {
            Some(net) => {
                if let Err(e) = net.try_send(NetEvent::Tunnel(tunnel)) {
                    // The group's queue is full: too busy to decide now.
                    if let NetEvent::Tunnel(t) = e.into_inner() {
                        t.refuse(TunnelRefusal::Busy);
                    }
                }
            }
            None => refuse(tunnel),
        }
    }
}

fn refuse(tunnel: IncomingTunnel) {
    tracing::debug!(
        via = tunnel.via().id(),
        "tunnel on a connection of no group here"
    );
    tunnel.refuse(TunnelRefusal::NotAllowed);
}

/// The addresses peers can reach a node bound to `local` at: the address itself, or every
/// interface address of its family (both, for a dual-stack `[::]`) when it is unspecified.
pub fn reachable_addrs(local: SocketAddr) -> Vec<SocketAddr> {
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| local.is_ipv6() || ip.is_ipv4())
        .filter(|ip| match ip {
            std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            std::net::IpAddr::V4(_) => true,
        })
        .map(|ip| SocketAddr::new(ip, local.port()))
        .collect();
    out.sort_by_key(|a| (a.ip().is_loopback(), a.is_ipv6()));
    out.truncate(crate::wire::MAX_ADDRS);
    out
}
