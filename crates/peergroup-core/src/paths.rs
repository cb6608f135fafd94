//! The network side of a direct connection's upgrade ([`crate::direct::Paths`]): this
//! node's addresses for a punch, and dials under the group's direct server name whose peer
//! must be the member asked for.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::direct::Paths;
use crate::race::{first_ok, Attempt, DIAL_STAGGER};
use crate::transport::{CloseCode, Connection, Credentials, Node, TrustPolicy};
use crate::trust::Registry;

/// What a running group's upgrades dial with.
pub(crate) struct DirectPaths {
    pub(crate) node: Arc<Node>,
    pub(crate) registry: Arc<Registry>,
    /// The group's server name (membership is checked under it).
    pub(crate) group_name: String,
    pub(crate) credentials: Credentials,
    /// The addresses to offer for a punch, as the driver last learnt them.
    pub(crate) punch: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Paths for DirectPaths {
    fn addrs(&self) -> Vec<SocketAddr> {
        self.punch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn punch(&self, addrs: &[SocketAddr]) {
        self.node.punch(addrs);
    }

    fn dial(
        &self,
        member: &str,
        addrs: Vec<SocketAddr>,
    ) -> Pin<Box<dyn Future<Output = Option<Connection>> + Send>> {
        let name = crate::direct::direct_server_name_of(&self.group_name);
        let trust: Arc<dyn TrustPolicy> = self.registry.clone();
        let attempts: Vec<Attempt<Connection, ()>> = addrs
            .into_iter()
            .map(|addr| {
                let (node, name, creds, trust) = (
                    self.node.clone(),
                    name.clone(),
                    self.credentials.clone(),
                    trust.clone(),
                );
                let attempt: Attempt<Connection, ()> = Box::pin(async move {
                    node.connect(addr, &name, &creds, trust).await.map_err(|e| {
                        tracing::debug!(%addr, error = %e, "upgrade dial failed");
                    })
                });
                attempt
            })
            .collect();
        let (registry, group, member) = (
            self.registry.clone(),
            self.group_name.clone(),
            member.to_owned(),
        );
        Box::pin(async move {
            let conn = first_ok(attempts, DIAL_STAGGER).await?.ok()?;
            match registry.validate(&group, conn.peer_chain()) {
                Ok(m) if m.peer_name().to_string() == member => Some(conn),
                _ => {
                    conn.close(CloseCode::NotAuthorized, "not the member asked for");
                    None
                }
            }
        })
    }
}
