//! The group handle's calls as one request type, for the process and the service alike.
//!
//! Every call of [`GroupHandle`](crate::GroupHandle) that answers once is one entry of the
//! table below. The entry is the whole definition: the method's signature, the call's
//! fields as they cross the service socket, and the in-process body. From it come
//! [`GroupCall`] and [`GroupReply`] (what `peergroupd` receives and answers), the
//! `GroupHandle` method (in-process: the body at once, no channel, no copy beyond the
//! fields; through the service: one [`GroupCall`]), and [`GroupCall::run`], which the daemon
//! calls with its in-process handle. Neither the service client nor the daemon has code of
//! its own per call, so a new call touches three places: its entry here, its in-process
//! method on [`LocalGroup`](crate::LocalGroup) (or a handle file), and its ABI function.
//!
//! Calls that stream (records in parts, database progress), wait (connect, status waits,
//! sending data, close) or hold state in the session (subscriptions, password holds) are
//! requests of their own in [`crate::service::proto::Request`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[cfg(feature = "net")]
use crate::error::Result;
use crate::identity::gmc::Role;
#[cfg(feature = "net")]
use crate::identity::PeerName;
use crate::members::Member;
use crate::properties::GroupProperties;
use crate::transport::CloseReason;
use crate::values::{ConnectionInfo, CredentialSpec, Neighbour, NewRecord, Reachable};

/// Declares the calls: see the module documentation. Each entry is
/// `fn name(&self, args) -> T = Variant { field: Type = from_args, … } => |h| body;` where
/// the body runs on the in-process handle `h` with the fields bound by name.
macro_rules! group_calls {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident(&self $(, $arg:ident: $aty:ty)* $(,)?) -> $ret:ty
            = $variant:ident { $($(#[$fattr:meta])* $field:ident: $fty:ty = $init:expr),* $(,)? }
            => |$h:ident| $local:expr;
    )*) => {
        /// A call on one group handle, as the service carries it (one variant per
        /// [`GroupHandle`](crate::GroupHandle) call that answers once; see the module
        /// documentation).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum GroupCall {
            $(
                $(#[doc = $doc])*
                $variant {
                    $(
                        #[allow(missing_docs)]
                        $(#[$fattr])*
                        $field: $fty,
                    )*
                },
            )*
        }

        /// The answer to a [`GroupCall`]: the variant of the same name, holding what the
        /// in-process call returns.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[allow(missing_docs)]
        pub enum GroupReply {
            $( $variant($ret), )*
        }

        #[cfg(feature = "net")]
        impl GroupCall {
            /// Runs the call on an in-process handle: what `peergroupd` does with a call
            /// a client sent.
            pub fn run(self, group: &crate::LocalGroup) -> Result<GroupReply> {
                match self {
                    $(
                        GroupCall::$variant { $($field),* } => {
                            let $h = group;
                            Ok(GroupReply::$variant($local?))
                        }
                    )*
                }
            }
        }

        #[cfg(feature = "net")]
        impl crate::GroupHandle {
            $(
                $(#[doc = $doc])*
                pub fn $name(&self $(, $arg: $aty)*) -> Result<$ret> {
                    match self.local_or_remote() {
                        Ok($h) => {
                            $(let $field: $fty = $init;)*
                            $local
                        }
                        Err(remote) => {
                            let call = GroupCall::$variant { $($field: $init),* };
                            match remote.call_group(call)? {
                                GroupReply::$variant(value) => Ok(value),
                                other => Err(unexpected(&other)),
                            }
                        }
                    }
                }
            )*
        }
    };
}

/// A reply of another call than the one asked: the service broke the protocol.
#[cfg(feature = "net")]
fn unexpected(reply: &GroupReply) -> crate::CoreError {
    crate::CoreError::ServiceMessage(format!("unexpected answer {reply:?}"))
}

/// A peer name sent as text, read back (the in-process path reads back what it wrote).
#[cfg(feature = "net")]
fn name(text: &str) -> Result<PeerName> {
    Ok(text.parse()?)
}

group_calls! {
    /// This member's roles.
    fn roles(&self) -> Vec<Role> = Roles {} => |h| h.roles();

    /// `PeerGroupGetStatus`.
    fn status(&self) -> u32 = Status {} => |h| h.status();

    /// `PeerGroupGetProperties`.
    fn properties(&self) -> GroupProperties = Properties {} => |h| h.properties();

    /// `PeerGroupSetProperties`: administrators only; the identifying fields cannot change.
    fn set_properties(&self, update: &GroupProperties) -> ()
        = SetProperties { update: GroupProperties = update.clone() }
        => |h| h.set_properties(&update);

    /// `PeerGroupCreateInvitation`: an invitation for the identity whose public XML is given.
    fn create_invitation(&self, identity_xml: &str, expiration: Option<i64>, roles: &[Role]) -> String
        = CreateInvitation {
            identity_xml: String = identity_xml.to_owned(),
            expiration: Option<i64> = expiration,
            roles: Vec<Role> = roles.to_vec(),
        }
        => |h| h.create_invitation(&identity_xml, expiration, &roles);

    /// `PeerGroupCreatePasswordInvitation`.
    fn create_password_invitation(&self) -> String
        = CreatePasswordInvitation {}
        => |h| h.create_password_invitation();

    /// Why the group's recent neighbour connections ended (newest last).
    fn recent_disconnects(&self) -> Vec<CloseReason>
        = RecentDisconnects {}
        => |h| h.recent_disconnects();

    /// The group's neighbour connections.
    fn neighbours(&self) -> Vec<Neighbour> = Neighbours {} => |h| h.neighbours();

    /// The addresses the group's node is reachable on, once online.
    fn listen_addrs(&self) -> Vec<SocketAddr> = ListenAddrs {} => |h| h.listen_addrs();

    /// Adds records in one transaction (each as `PeerGroupAddRecord`).
    fn add_records(&self, batch: Vec<NewRecord>) -> Vec<[u8; 16]>
        = AddRecords { batch: Vec<NewRecord> = batch }
        => |h| h.add_records(batch);

    /// `PeerGroupUpdateRecord`.
    fn update_record(&self, id: &[u8; 16], attributes: &str, expires_ms: i64, data: Vec<u8>) -> ()
        = UpdateRecord {
            id: [u8; 16] = *id,
            attributes: String = attributes.to_owned(),
            expires_ms: i64 = expires_ms,
            #[serde(with = "serde_bytes")]
            data: Vec<u8> = data,
        }
        => |h| h.update_record(&id, &attributes, expires_ms, data);

    /// `PeerGroupDeleteRecord`.
    fn delete_record(&self, id: &[u8; 16]) -> ()
        = DeleteRecord { id: [u8; 16] = *id }
        => |h| h.delete_record(&id);

    /// How many records the database holds.
    fn record_count(&self) -> u64 = RecordCount {} => |h| h.record_count();

    /// [`GroupHandle::export_config`](crate::GroupHandle::export_config) with this many
    /// PBKDF2 rounds.
    fn export_config_with_rounds(&self, password: &str, rounds: u32) -> String
        = ExportConfig { password: String = password.to_owned(), rounds: u32 = rounds }
        => |h| h.export_config_with_rounds(&password, rounds);

    /// True while password authentication at this member is suspended after a failure.
    fn password_authentication_suspended(&self) -> bool
        = PasswordAuthenticationSuspended {}
        => |h| h.password_authentication_suspended();

    /// `PeerGroupPeerTimeToUniversalTime` (Unix ms both).
    fn peer_time_to_universal(&self, peer_ms: i64) -> i64
        = PeerTimeToUniversal { peer_ms: i64 = peer_ms }
        => |h| h.peer_time_to_universal(peer_ms);

    /// `PeerGroupUniversalTimeToPeerTime` (Unix ms both).
    fn universal_to_peer_time(&self, utc_ms: i64) -> i64
        = UniversalToPeerTime { utc_ms: i64 = utc_ms }
        => |h| h.universal_to_peer_time(utc_ms);

    /// `PeerGroupEnumMembers`.
    fn members(&self, flags: u32, identity: Option<&PeerName>) -> Vec<Member>
        = Members {
            flags: u32 = flags,
            identity: Option<String> = identity.map(|p| p.to_string()),
        }
        => |h| h.members(flags, identity.as_deref().map(name).transpose()?.as_ref());

    /// `PeerGroupIssueCredentials`.
    fn issue_credentials(&self, subject: &PeerName, info: Option<&CredentialSpec>, flags: u32) -> String
        = IssueCredentials {
            subject: String = subject.to_string(),
            info: Option<CredentialSpec> = info.cloned(),
            flags: u32 = flags,
        }
        => |h| h.issue_credentials(&name(&subject)?, info.as_ref(), flags);

    /// `PeerGroupOpenDirectConnection`: the new connection's id; the outcome arrives as a
    /// `DIRECT_CONNECTION` event.
    fn open_direct_connection(&self, member: &PeerName, address: Option<SocketAddr>) -> u64
        = OpenDirectConnection {
            member: String = member.to_string(),
            address: Option<SocketAddr> = address,
        }
        => |h| h.open_direct_connection(&name(&member)?, address);

    /// `PeerGroupCloseDirectConnection`.
    fn close_direct_connection(&self, id: u64) -> ()
        = CloseDirectConnection { id: u64 = id }
        => |h| h.close_direct_connection(id);

    /// `PeerGroupEnumConnections`.
    fn connections(&self, flags: u32) -> Vec<ConnectionInfo>
        = Connections { flags: u32 = flags }
        => |h| h.connections(flags);

    // New calls go last: the service protocol numbers them in this order.
    /// Where the group says it can be reached (confirmed, mapped, interface addresses) and
    /// its NAT's mapping class, as other members see it.
    fn reachable(&self) -> Reachable = Reachable {} => |h| h.reachable();

    /// Relay for other members of the group, or stop (opt-in; kept in the group's files).
    fn set_relay(&self, on: bool) -> () = SetRelay { on: bool = on } => |h| h.set_relay(on);

    /// True when this member relays for others.
    fn relay(&self) -> bool = Relay {} => |h| h.relay();
}
