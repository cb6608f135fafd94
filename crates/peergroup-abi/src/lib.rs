//! The C ABI of Peergroup: `libpeergroup` with Microsoft's `p2p.h` names, argument order and
//! HRESULTs, over `peergroup-core`.
//!
//! Every exported function checks its pointers first (`E_POINTER` for a NULL out-pointer,
//! `E_INVALIDARG` for a NULL required input), needs a prior `PeerGroupStartup`
//! (`PEER_E_NOT_INITIALIZED`), never lets a panic cross into C (`E_UNEXPECTED`), and returns
//! memory that one `PeerFreeData` frees. This crate holds every `extern "C"` and every
//! `unsafe` block of the project.

#![allow(non_snake_case, clippy::missing_safety_doc)]

pub mod alloc;
pub mod config;
pub mod convert;
pub mod direct;
pub mod enumeration;
pub mod events;
mod ffi;
pub mod group;
pub mod identity;
pub mod invitation;
pub mod members;
pub mod password_auth;
pub mod records;
pub mod runtime;
pub mod spki;
pub mod startup;
pub mod types;
