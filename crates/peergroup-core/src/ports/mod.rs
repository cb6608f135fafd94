//! The host's side of the machine's ports (`peergroup_proto::port`): the record database over
//! SQLite ([`records`]) and the member records' publisher ([`presence`]).

pub(crate) mod presence;
pub(crate) mod records;
