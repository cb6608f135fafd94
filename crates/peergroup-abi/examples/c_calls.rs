//! The C API as a C program uses it, from Rust: startup, an identity, a group brought online
//! on loopback, its status and properties, a peer time conversion, a configuration export,
//! then close and shutdown, checking every HRESULT. Runs in a temporary home and exits 0.
//!
//! `cargo run -p peergroup-abi --example c_calls`

use std::ptr;

use peergroup::config::{PeerGroupExportConfig, PeerGroupPeerTimeToUniversalTime};
use peergroup::enumeration::PeerFreeData;
use peergroup::group::{
    PeerGroupClose, PeerGroupConnect, PeerGroupCreate, PeerGroupGetProperties, PeerGroupGetStatus,
};
use peergroup::identity::PeerIdentityCreate;
use peergroup::startup::{PeerGroupShutdown, PeerGroupStartup};
use peergroup::types::{
    DWORD, FILETIME, GUID, HGROUP, HRESULT, PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PROPERTIES,
    PEER_GROUP_STATUS_LISTENING, PEER_GROUP_VERSION, PEER_VERSION_DATA, PWSTR, WCHAR,
};

/// A NUL-terminated UTF-16 copy of `s`, as `u"…"` gives in C.
fn wide(s: &str) -> Vec<WCHAR> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// Reads a NUL-terminated UTF-16 string the library returned.
///
/// # Safety
/// `p` is a live string from the library.
unsafe fn narrow(p: PWSTR) -> String {
    let mut n = 0;
    // SAFETY: the library's strings are NUL-terminated; we stop at the NUL.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the `n` units before the NUL were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, n) })
}

fn check(what: &str, hr: HRESULT) {
    assert_eq!(hr, 0, "{what} returned 0x{:08X}", hr as u32);
    println!("{what}: S_OK");
}

fn main() {
    let home = std::env::temp_dir().join(format!("peergroup-c-calls-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("a temporary home");
    // Edition 2021: set before the library starts, while this is the only thread.
    std::env::set_var("PEERGROUP_HOME", &home);
    std::env::set_var("PEERGROUP_LISTEN", "127.0.0.1:0");

    let mut version = PEER_VERSION_DATA::default();
    // SAFETY: `version` is a writable PEER_VERSION_DATA.
    check("PeerGroupStartup", unsafe {
        PeerGroupStartup(PEER_GROUP_VERSION, &mut version)
    });

    let (classifier, friendly) = (wide("example"), wide("Example"));
    let mut me: PWSTR = ptr::null_mut();
    // SAFETY: NUL-terminated strings and a writable out-pointer.
    check("PeerIdentityCreate", unsafe {
        PeerIdentityCreate(classifier.as_ptr(), friendly.as_ptr(), 0, &mut me)
    });
    // SAFETY: `me` is the string PeerIdentityCreate returned.
    println!("  identity {}", unsafe { narrow(me) });

    let (group_classifier, group_name) = (wide("club"), wide("The Club"));
    let mut props = PEER_GROUP_PROPERTIES {
        dwSize: std::mem::size_of::<PEER_GROUP_PROPERTIES>() as DWORD,
        dwFlags: 0,
        pwzCloud: ptr::null_mut(),
        pwzClassifier: group_classifier.as_ptr() as PWSTR,
        pwzGroupPeerName: ptr::null_mut(),
        pwzCreatorPeerName: me,
        pwzFriendlyName: group_name.as_ptr() as PWSTR,
        pwzComment: ptr::null_mut(),
        ulMemberDataLifetime: 0,
        ulPresenceLifetime: 0,
        dwAuthenticationSchemes: PEER_GROUP_GMC_AUTHENTICATION as DWORD,
        pwzGroupPassword: ptr::null_mut(),
        groupPasswordRole: GUID::default(),
    };
    let mut group: HGROUP = ptr::null_mut();
    // SAFETY: a complete PEER_GROUP_PROPERTIES whose strings outlive the call.
    check("PeerGroupCreate", unsafe {
        PeerGroupCreate(&mut props, &mut group)
    });
    check("PeerGroupConnect", PeerGroupConnect(group));

    // The outcome of a connect arrives as status bits: poll (bounded) until LISTENING.
    let mut status: DWORD = 0;
    for _ in 0..200 {
        // SAFETY: a writable DWORD.
        let hr = unsafe { PeerGroupGetStatus(group, &mut status) };
        assert_eq!(hr, 0, "PeerGroupGetStatus");
        if status & PEER_GROUP_STATUS_LISTENING as DWORD != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("PeerGroupGetStatus: {status:#x}");
    assert_ne!(
        status & PEER_GROUP_STATUS_LISTENING as DWORD,
        0,
        "listening"
    );

    let mut got: *mut PEER_GROUP_PROPERTIES = ptr::null_mut();
    // SAFETY: a writable out-pointer; the block is freed below with PeerFreeData.
    check("PeerGroupGetProperties", unsafe {
        PeerGroupGetProperties(group, &mut got)
    });
    // SAFETY: `got` is the block just returned, with its strings.
    unsafe {
        println!("  group {}", narrow((*got).pwzGroupPeerName));
        println!("  friendly name {}", narrow((*got).pwzFriendlyName));
        PeerFreeData(got.cast());
    }

    let mut peer = FILETIME {
        dwLowDateTime: 0x1234_5678,
        dwHighDateTime: 0x01dc_0000,
    };
    let mut utc = FILETIME::default();
    // SAFETY: a readable input and a writable output.
    check("PeerGroupPeerTimeToUniversalTime", unsafe {
        PeerGroupPeerTimeToUniversalTime(group, &mut peer, &mut utc)
    });
    assert_eq!(utc, peer, "peer time is the shared wall clock");

    let password = wide("example password");
    let mut xml: PWSTR = ptr::null_mut();
    // SAFETY: a NUL-terminated password and a writable out-pointer.
    check("PeerGroupExportConfig", unsafe {
        PeerGroupExportConfig(group, password.as_ptr(), &mut xml)
    });
    // SAFETY: `xml` is the string just returned; freed once.
    unsafe {
        let text = narrow(xml);
        println!(
            "  configuration: {} characters, <{}…",
            text.len(),
            &text[1..16]
        );
        PeerFreeData(xml.cast());
    }

    check("PeerGroupClose", PeerGroupClose(group));
    // SAFETY: `me` came from PeerIdentityCreate and is freed once.
    unsafe { PeerFreeData(me.cast()) };
    check("PeerGroupShutdown", PeerGroupShutdown());
    std::fs::remove_dir_all(&home).expect("the temporary home is removed");
}
