//! The handle's direct connections and data: `PeerGroupOpenDirectConnection`,
//! `CloseDirectConnection`, `EnumConnections` and `SendData` over the driver's tables
//! ([`crate::direct`]).

use std::net::SocketAddr;

use crate::error::{CoreError, Result};

use crate::direct::*;
use crate::group::LocalGroup;

impl LocalGroup {
    /// `PeerGroupOpenDirectConnection`: starts a direct connection to `member`, at `address`
    /// or (when `None`) on every path the group knows to it, and returns its connection id at
    /// once.
    ///
    /// Without an address the paths are raced, each a quarter second after the one before
    /// (`DIAL_STAGGER`): the paths of direct neighbour connections to the member first, then
    /// the addresses presence gave, the tunnels of relayed neighbour connections, then new
    /// tunnels through the relays its presence names that this member is connected to. If
    /// every one fails, the paths known then are raced once more (they may have changed
    /// meanwhile: a punched neighbour connection replacing a relayed one, a tunnel ending).
    ///
    /// The id is not usable until a [`Event::DirectConnection`](crate::Event::DirectConnection) for it reports
    /// [`ConnectionStatus::Connected`](crate::io::ConnectionStatus::Connected); a failed attempt is reported there too
    /// ([`ConnectionStatus::Failed`](crate::io::ConnectionStatus::Failed) with the reason), not here. Errors here:
    /// [`CoreError::ConnectToSelf`] (`PEER_E_CONNECT_SELF`), [`CoreError::NotReady`] while
    /// the group is offline, [`CoreError::NoAddress`] (`PEER_E_NODE_NOT_FOUND`) when no
    /// address is given and none is known.
    pub fn open_direct_connection(
        &self,
        member: &crate::identity::PeerName,
        address: Option<SocketAddr>,
    ) -> Result<u64> {
        let (driver, me) = {
            let st = self.live()?;
            (st.driver.clone(), self.inner.key.0.clone())
        };
        if *member == me {
            return Err(CoreError::ConnectToSelf);
        }
        let driver = driver.ok_or(CoreError::NotReady)?;
        let name = member.to_string();
        if address.is_none() {
            self.check_known(&driver, &name)?;
        }
        driver.open_direct(&name, address)
    }

    /// Fails with [`CoreError::NoAddress`] unless the group knows a way to `member`: it is
    /// a neighbour, its live presence record gives addresses, or the peers kept name its
    /// addresses or relays. Presence comes first after the neighbours: it is stored as it
    /// arrives, while the kept peers are written every few seconds, so a member that had
    /// just joined found nobody there for up to a maintenance interval.
    fn check_known(&self, driver: &crate::control::DriverHandle, member: &str) -> Result<()> {
        if driver.neighbours().iter().any(|n| n.member == member) {
            return Ok(());
        }
        let chain = self.live()?.chain.clone();
        let present = self
            .inner
            .member_list(&chain)?
            .into_iter()
            .any(|m| m.identity == member && m.is_present() && !m.addresses.is_empty());
        let known = present
            || self
                .inner
                .store
                .load_peers()?
                .into_iter()
                .any(|p| p.member == member && !(p.addrs.is_empty() && p.relays.is_empty()));
        if known {
            Ok(())
        } else {
            Err(CoreError::NoAddress(member.to_owned()))
        }
    }

    /// `PeerGroupCloseDirectConnection`: closes a direct connection (or stops one being
    /// made); both sides then see it disconnected. [`CoreError::ConnectionNotFound`] for an
    /// id that is not a direct connection of this group.
    pub fn close_direct_connection(&self, id: u64) -> Result<()> {
        let driver = self.live()?.driver.clone();
        driver
            .ok_or(CoreError::ConnectionNotFound(id))?
            .close_direct(id)
    }

    /// `PeerGroupEnumConnections`: the group's connections of the kinds in `flags`
    /// ([`PEER_CONNECTION_NEIGHBOR`], [`PEER_CONNECTION_DIRECT`], or both); none while
    /// offline.
    pub fn connections(&self, flags: u32) -> Result<Vec<ConnectionInfo>> {
        let all = PEER_CONNECTION_NEIGHBOR | PEER_CONNECTION_DIRECT;
        if flags & all == 0 || flags & !all != 0 {
            return Err(CoreError::InvalidArgument(format!(
                "connection flags {flags:#x}: PEER_CONNECTION_NEIGHBOR and/or PEER_CONNECTION_DIRECT"
            )));
        }
        let driver = self.live()?.driver.clone();
        Ok(driver.map(|d| d.connections(flags)).unwrap_or_default())
    }

    /// `PeerGroupSendData`: sends `data`, tagged with `data_type`, on the neighbour or
    /// direct connection `id`. Messages on one connection arrive whole and in the order they
    /// were sent, as [`Event::IncomingData`](crate::Event::IncomingData). Returns once the message is queued for sending;
    /// waits while the peer does not keep up.
    ///
    /// Errors: [`CoreError::ConnectionNotFound`] (`PEER_E_CONNECTION_NOT_FOUND`) for an id
    /// that is not an open connection of the group (also once it closed);
    /// [`CoreError::DataTooLarge`] over [`crate::data::MAX_DATA_LEN`] bytes.
    pub async fn send_data(&self, id: u64, data_type: &[u8; 16], data: &[u8]) -> Result<()> {
        let driver = self.live()?.driver.clone();
        driver
            .ok_or(CoreError::ConnectionNotFound(id))?
            .send_data(id, data_type, data)
            .await
    }
}
