//! The NAT lab: topologies of network namespaces that a test builds itself and that go away
//! with it (a [`Namespaces`] guard). Traffic stays between the lab's namespaces; nothing
//! touches the root namespace's links, routes or firewall.
//!
//! ```text
//!            internet: namespace `<tag>-net`, bridge br0, 198.18.0.0/16
//!   ┌──────────────┬───────────────┴──────────────┬───────────────────────┐
//!  public host    router (nftables NAT)         router (carrier)          router (…)
//!  198.18.0.10+   wan 198.18.1.K                wan 198.18.1.K
//!                 lan 10.K.0.1/24               lan 100.64.K.1/24
//!                   │                             │
//!                 host 10.K.0.2…                home router wan 100.64.K.2
//!                                                 lan 10.K.0.1/24 ─ host 10.K.0.2
//! ```
//!
//! Every router forwards, masquerades what leaves by `wan`, and drops new inbound traffic at
//! its own input (`ct state new iifname "wan" counter drop`). The profiles differ in mapping
//! and filtering ([`Nat`]). [`Lab::check`] probes a host's profile with `pg-probe` from two
//! public observers before a test relies on it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{attach_host, ip, ip_ok, phase, skip, Namespaces, Peer, Proc};

/// How a router maps and filters (RFC 4787's terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// No router: the host is on the internet.
    Public,
    /// Endpoint-independent mapping and filtering: once a host has sent from a port, anyone
    /// reaches it there. One host per router LAN (inbound goes to it).
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering: any port of an IP the host
    /// has sent to reaches it. One host per router LAN.
    AddressRestricted,
    /// Endpoint-independent mapping (Linux keeps the source port), address- and
    /// port-dependent filtering: conntrack's own behaviour.
    PortRestricted,
    /// Endpoint-dependent mapping (a random port per destination), port-dependent filtering.
    Symmetric,
    /// Two layers of port-restricted NAT: a home router behind a carrier's, in 100.64/10.
    Carrier,
    /// Port-restricted NAT that lets UDP out only to this address (a firewall that allows one
    /// public member).
    UdpOnlyTo(Ipv4Addr),
}

/// A host of the lab: its namespace and address on its own link.
#[derive(Clone, Debug)]
pub struct Host {
    /// The test's name for it.
    pub label: String,
    /// Its namespace.
    pub ns: String,
    /// Its address on its link (private behind a NAT).
    pub addr: Ipv4Addr,
    /// The profile it sits behind.
    pub nat: Nat,
    /// The public address its traffic leaves from (its own when public).
    pub public_ip: Ipv4Addr,
    /// Its routers' namespaces, nearest first.
    pub routers: Vec<String>,
}

/// What a probe found about a host's NAT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    /// The mapped address the first observer saw.
    pub mapped: SocketAddrV4,
    /// The same port's mapping seen by a second observer at another IP is the same.
    pub independent_mapping: bool,
    /// After sending to one observer only: another IP reaches the mapped port.
    pub open_to_other_ips: bool,
    /// After sending to one observer's port only: another port of the same IP reaches it.
    pub open_to_other_ports: bool,
}

/// A topology under construction and in use; dropping it removes every namespace.
pub struct Lab {
    tag: String,
    net: String,
    namespaces: Namespaces,
    next_public: u8,
    next_site: u8,
}

/// Runs a command inside namespace `ns`; the error carries its stderr.
pub fn netns(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip netns exec`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` in {ns} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Loads an nftables ruleset into namespace `ns`.
fn nft(ns: &str, ruleset: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .map_err(|e| format!("nft stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns} refused the ruleset: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The ruleset of a router whose LAN host (for the cone profiles) is `inside`.
fn ruleset(nat: Nat, inside: Ipv4Addr) -> String {
    let map = match nat {
        Nat::Symmetric => "masquerade fully-random",
        _ => "masquerade",
    };
    // What outbound traffic records, and which inbound traffic it lets in (DNAT to the one
    // host inside). Port-restricted and symmetric filtering is conntrack's alone.
    let (record, admit, block) = match nat {
        Nat::FullCone => (
            "oifname \"wan\" meta l4proto udp update @open { udp sport timeout 120s }".to_owned(),
            format!("iifname \"wan\" udp dport @open dnat to {inside}"),
            String::new(),
        ),
        Nat::AddressRestricted => (
            "oifname \"wan\" meta l4proto udp update @open_to { ip daddr . udp sport timeout 120s }"
                .to_owned(),
            format!("iifname \"wan\" ip saddr . udp dport @open_to dnat to {inside}"),
            String::new(),
        ),
        Nat::UdpOnlyTo(allowed) => (
            String::new(),
            String::new(),
            format!("oifname \"wan\" meta l4proto udp ip daddr != {allowed} counter drop"),
        ),
        _ => (String::new(), String::new(), String::new()),
    };
    format!(
        r#"flush ruleset
table ip lab {{
    set open {{ type inet_service; flags dynamic, timeout; size 4096; }}
    set open_to {{ type ipv4_addr . inet_service; flags dynamic, timeout; size 4096; }}
    chain input {{
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        iifname "wan" ct state new counter drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        {block}
        {record}
        ct state established,related accept
        iifname "wan" ct status dnat accept
        iifname "wan" counter drop
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        {admit}
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        oifname "wan" {map}
    }}
}}
"#
    )
}

/// R, A and B of the three-member lab tests, joined.
pub struct Trio {
    pub r: Peer,
    pub a: Peer,
    pub b: Peer,
    /// A's and B's peer names.
    pub a_name: String,
    pub b_name: String,
}

/// R creates a group (relaying for it when `relay`) on `r_host`; A and B join it through R
/// from their hosts, and both have synchronised.
pub fn joined_through(r_host: &Host, a_host: &Host, b_host: &Host, relay: bool) -> Trio {
    let mut r = peer_on("R", r_host, &[]);
    let mut a = peer_on("A", a_host, &[]);
    let mut b = peer_on("B", b_host, &[]);
    r.identity("r");
    let (a_name, a_xml) = a.identity("a");
    let (b_name, b_xml) = b.identity("b");
    r.create_group(relay);
    a.join_from(&mut r, &a_xml, false, false);
    b.join_from(&mut r, &b_xml, false, false);
    a.wait_joined();
    b.wait_joined();
    Trio {
        r,
        a,
        b,
        a_name,
        b_name,
    }
}

/// `ip -n NS ARGS`, which must succeed.
fn common_ip(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip_ok(&all);
}

/// The nftables table of a [`Lab::cut`] of `other`.
fn cut_table(other: &Host) -> String {
    format!("pgcut_{}", other.public_ip.to_string().replace('.', "_"))
}

/// A `pg-peer` process on `host`, listening on its address at a port of its choosing, with
/// more `pg-peer` arguments `extra`.
pub fn peer_on(label: &'static str, host: &Host, extra: &[&str]) -> Peer {
    Peer::spawn_with(label, &host.ns, &format!("{}:0", host.addr), extra)
}

impl Lab {
    /// The lab of a test, its namespaces named `<prefix><pid>-…`: logs the start, and
    /// `None` (the test returns, skipped) where a lab cannot be built.
    pub fn for_test(prefix: &str) -> Option<Lab> {
        phase("start");
        match Lab::new(&format!("{prefix}{}", std::process::id())) {
            Ok(lab) => Some(lab),
            Err(reason) => {
                skip(&reason);
                None
            }
        }
    }

    /// An empty internet. The error is a reason to skip (no root, no `ip`, no `nft`).
    pub fn new(tag: &str) -> Result<Lab, String> {
        super::preflight()?;
        Command::new("nft")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("nftables is not installed: {e}"))?;
        let net = format!("{tag}-net");
        let namespaces = Namespaces::create(std::slice::from_ref(&net))?;
        ip(&["-n", &net, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net, "link", "set", "br0", "up"])?;
        ip(&["-n", &net, "link", "set", "lo", "up"])?;
        Ok(Lab {
            tag: tag.to_owned(),
            net,
            namespaces,
            next_public: 10,
            next_site: 1,
        })
    }

    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        self.namespaces
            .add(&ns)
            .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
        ns
    }

    /// A host on the internet.
    pub fn public(&mut self, label: &str) -> Host {
        let ns = self.namespace(label);
        let addr = Ipv4Addr::new(198, 18, 0, self.next_public);
        self.next_public += 1;
        attach_host(
            &self.net,
            "br0",
            &format!("p-{label}"),
            &ns,
            &format!("{addr}/16"),
        );
        phase(&format!("lab: {label} public at {addr}"));
        Host {
            label: label.to_owned(),
            ns,
            addr,
            nat: Nat::Public,
            public_ip: addr,
            routers: Vec::new(),
        }
    }

    /// `labels.len()` hosts on one LAN behind one router of profile `nat` (the cone
    /// profiles take one host).
    pub fn behind(&mut self, labels: &[&str], nat: Nat) -> Vec<Host> {
        assert!(
            nat != Nat::Public,
            "a public host has no router: use Lab::public"
        );
        assert!(
            labels.len() == 1 || !matches!(nat, Nat::FullCone | Nat::AddressRestricted),
            "the cone profiles admit inbound traffic to one host"
        );
        let k = self.next_site;
        self.next_site += 1;
        let wan = Ipv4Addr::new(198, 18, 1, k);
        let mut routers = Vec::new();
        // The router on the internet; a carrier's puts a home router behind it.
        let outer = self.namespace(&format!("r{k}"));
        let outer_nat = if nat == Nat::Carrier {
            Nat::PortRestricted
        } else {
            nat
        };
        self.router(&outer, &self.net.clone(), &format!("w{k}"), wan, None);
        let home = if nat == Nat::Carrier {
            let home = self.namespace(&format!("h{k}"));
            let carrier_lan = Ipv4Addr::new(100, 64, k, 1);
            self.lan(&outer, carrier_lan);
            let home_wan = Ipv4Addr::new(100, 64, k, 2);
            self.router(&home, &outer, &format!("c{k}"), home_wan, Some(carrier_lan));
            routers.push(home.clone());
            Some(home)
        } else {
            None
        };
        routers.push(outer.clone());
        let nearest = home.clone().unwrap_or_else(|| outer.clone());
        let gateway = Ipv4Addr::new(10, k, 0, 1);
        self.lan(&nearest, gateway);
        let mut hosts = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let ns = self.namespace(label);
            let addr = Ipv4Addr::new(10, k, 0, 2 + i as u8);
            attach_host(
                &nearest,
                "lan",
                &format!("l{i}"),
                &ns,
                &format!("{addr}/24"),
            );
            ip_ok(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ]);
            hosts.push(Host {
                label: (*label).to_owned(),
                ns,
                addr,
                nat,
                public_ip: wan,
                routers: routers.clone(),
            });
        }
        let inside = Ipv4Addr::new(10, k, 0, 2);
        nft(
            &outer,
            &ruleset(
                outer_nat,
                if home.is_some() {
                    Ipv4Addr::new(100, 64, k, 2)
                } else {
                    inside
                },
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if let Some(home) = &home {
            nft(home, &ruleset(Nat::PortRestricted, inside)).unwrap_or_else(|e| panic!("{e}"));
        }
        phase(&format!(
            "lab: {} behind {nat:?} (router {outer}, public {wan})",
            labels.join(", ")
        ));
        hosts
    }

    /// Makes `ns` a router: `wan` on bridge `upstream_bridge_ns`'s bridge with `wan_addr`,
    /// forwarding on, a default route via `gateway` when it is not on the internet.
    fn router(
        &mut self,
        ns: &str,
        upstream: &str,
        port: &str,
        wan_addr: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
    ) {
        let (bridge, prefix) = if upstream == self.net {
            ("br0", 16)
        } else {
            ("lan", 24)
        };
        ip_ok(&[
            "-n", upstream, "link", "add", port, "type", "veth", "peer", "name", "wan", "netns", ns,
        ]);
        ip_ok(&["-n", upstream, "link", "set", port, "master", bridge, "up"]);
        ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{wan_addr}/{prefix}"),
            "dev",
            "wan",
        ]);
        ip_ok(&["-n", ns, "link", "set", "wan", "up"]);
        if let Some(gw) = gateway {
            ip_ok(&["-n", ns, "route", "add", "default", "via", &gw.to_string()]);
        }
        netns(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A LAN bridge `lan` in router `ns` with the router's address `addr/24`.
    fn lan(&mut self, ns: &str, addr: Ipv4Addr) {
        ip_ok(&["-n", ns, "link", "add", "lan", "type", "bridge"]);
        ip_ok(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "lan"]);
        ip_ok(&["-n", ns, "link", "set", "lan", "up"]);
    }

    /// A `pg-probe` process in `host`'s namespace.
    pub fn probe(&self, host: &Host) -> Proc {
        Proc::spawn(
            &format!("probe {}", host.label),
            Command::new("ip").args([
                "netns",
                "exec",
                host.ns.as_str(),
                env!("CARGO_BIN_EXE_pg-probe"),
            ]),
        )
    }

    /// Probes `host`'s NAT from public observers `s1` and `s2` (at two IPs), without timing:
    /// each datagram that should be dropped is followed by one that must arrive on the same
    /// path, and the first to arrive tells which.
    pub fn check(&self, host: &Host, s1: &Host, s2: &Host) -> Probed {
        let mut h = self.probe(host);
        let mut o1 = self.probe(s1);
        let mut o2 = self.probe(s2);
        for o in [&mut o1, &mut o2] {
            for port in [3478, 3479] {
                o.call(json!({"op":"bind","port":port,"echo":true}));
            }
        }
        let seen = |h: &mut Proc, port: u16, to: SocketAddrV4| -> SocketAddrV4 {
            h.call(json!({"op":"send","port":port,"to":to.to_string(),"text":"probe"}));
            let r = h.call(json!({"op":"recv","port":port,"timeout_ms":10_000}));
            r["text"]
                .as_str()
                .and_then(|t| t.strip_prefix("seen "))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("{}: no mapped address in {r}", host.label))
        };
        // Mapping: one port towards two observers at two IPs.
        let port = h.call(json!({"op":"bind","port":0}))["port"]
            .as_u64()
            .unwrap() as u16;
        let m1 = seen(&mut h, port, SocketAddrV4::new(s1.addr, 3478));
        let m2 = seen(&mut h, port, SocketAddrV4::new(s2.addr, 3478));
        // Filtering: a fresh port, opened towards s1:3478 only.
        let port = h.call(json!({"op":"bind","port":0}))["port"]
            .as_u64()
            .unwrap() as u16;
        let mapped = seen(&mut h, port, SocketAddrV4::new(s1.addr, 3478));
        let to = json!(mapped.to_string());
        o2.call(json!({"op":"send","port":3478,"to":to,"text":"other-ip"}));
        o1.call(json!({"op":"send","port":3479,"to":to,"text":"other-port"}));
        o1.call(json!({"op":"send","port":3478,"to":to,"text":"control"}));
        let mut got = Vec::new();
        loop {
            let r = h.call(json!({"op":"recv","port":port,"timeout_ms":10_000}));
            let text = r["text"].as_str().unwrap().to_owned();
            if text == "control" {
                break;
            }
            got.push(text);
        }
        let probed = Probed {
            mapped: m1,
            independent_mapping: m1 == m2,
            open_to_other_ips: got.iter().any(|t| t == "other-ip"),
            open_to_other_ports: got.iter().any(|t| t == "other-port"),
        };
        phase(&format!("lab: {} probed {probed:?}", host.label));
        for p in [&mut h, &mut o1, &mut o2] {
            p.finish_success();
        }
        probed
    }

    /// Whether UDP from `host` reaches `other` (public), with `allowed` (public, reachable)
    /// as the control: `host` sends to `other`, then to `allowed`; once `allowed` has its
    /// datagram, `allowed` sends to `other`, and `other`'s first datagram tells whether
    /// `host`'s came through.
    pub fn udp_reaches(&self, host: &Host, other: &Host, allowed: &Host) -> bool {
        let mut h = self.probe(host);
        let mut a = self.probe(allowed);
        let mut o = self.probe(other);
        a.call(json!({"op":"bind","port":3478}));
        o.call(json!({"op":"bind","port":3478}));
        h.call(json!({"op":"bind","port":4000}));
        let at = |x: &Host| SocketAddrV4::new(x.addr, 3478).to_string();
        h.call(json!({"op":"send","port":4000,"to":at(other),"text":"from-host"}));
        h.call(json!({"op":"send","port":4000,"to":at(allowed),"text":"from-host"}));
        assert_eq!(
            Lab::recv(&mut a, 3478)["text"],
            "from-host",
            "{}: the control path",
            host.label
        );
        a.call(json!({"op":"send","port":3478,"to":at(other),"text":"control"}));
        let first = Lab::recv(&mut o, 3478);
        for p in [&mut h, &mut a, &mut o] {
            p.finish_success();
        }
        first["text"] == "from-host"
    }

    /// Drops every datagram between `host` and `other` (at `other`'s public address: its NAT's
    /// when it sits behind one) at `host`, until [`Lab::mend`]: a table of its own per pair.
    pub fn cut(&self, host: &Host, other: &Host) {
        let table = cut_table(other);
        for command in [
            format!("add table inet {table}"),
            format!("add chain inet {table} in {{ type filter hook input priority 0 ; }}"),
            format!("add chain inet {table} out {{ type filter hook output priority 0 ; }}"),
            format!("add rule inet {table} in ip saddr {} drop", other.public_ip),
            format!(
                "add rule inet {table} out ip daddr {} drop",
                other.public_ip
            ),
        ] {
            netns(&host.ns, &["nft", &command]).unwrap_or_else(|e| panic!("cut: {e}"));
        }
    }

    /// Gives public `host` the address `new` in place of its own (same link and prefix):
    /// the new one is added, then the old one removed, so the link never goes down.
    pub fn renumber(&self, host: &Host, new: Ipv4Addr) {
        assert_eq!(host.nat, Nat::Public, "renumber a public host");
        netns(
            &host.ns,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.conf.eth0.promote_secondaries=1",
            ],
        )
        .unwrap_or_else(|e| panic!("renumber: {e}"));
        common_ip(
            &host.ns,
            &["addr", "add", &format!("{new}/16"), "dev", "eth0"],
        );
        common_ip(
            &host.ns,
            &["addr", "del", &format!("{}/16", host.addr), "dev", "eth0"],
        );
    }

    /// Moves `host` onto the link of `to` (a spare host placed where `host` should go: behind
    /// another router, or on the internet), as a laptop leaving Wi-Fi for a phone's network:
    /// `to`'s link is moved into `host`'s namespace with `to`'s address, the default route
    /// turns to the new router, then the old link is deleted. Returns `host` as it is now.
    pub fn switch_uplink(&self, host: &Host, to: &Host) -> Host {
        common_ip(&to.ns, &["link", "set", "eth0", "down"]);
        common_ip(&to.ns, &["link", "set", "eth0", "name", "up1"]);
        common_ip(&to.ns, &["link", "set", "up1", "netns", &host.ns]);
        let prefix = if to.nat == Nat::Public { 16 } else { 24 };
        common_ip(
            &host.ns,
            &[
                "addr",
                "add",
                &format!("{}/{prefix}", to.addr),
                "dev",
                "up1",
            ],
        );
        common_ip(&host.ns, &["link", "set", "up1", "up"]);
        if to.nat == Nat::Public {
            // On the internet's own prefix: no gateway; the old one goes with its link.
            let _ = netns(&host.ns, &["ip", "route", "del", "default"]);
        } else {
            let [a, b, c, _] = to.addr.octets();
            let gateway = Ipv4Addr::new(a, b, c, 1).to_string();
            common_ip(
                &host.ns,
                &["route", "replace", "default", "via", &gateway, "dev", "up1"],
            );
        }
        // Deleting one end of the old veth pair removes both.
        common_ip(&host.ns, &["link", "del", "eth0"]);
        phase(&format!(
            "lab: {} moved from {} ({:?}) to {} ({:?})",
            host.label, host.addr, host.nat, to.addr, to.nat
        ));
        Host {
            label: host.label.clone(),
            ns: host.ns.clone(),
            addr: to.addr,
            nat: to.nat,
            public_ip: to.public_ip,
            routers: to.routers.clone(),
        }
    }

    /// Makes `host`'s NATs forget every mapping (conntrack flushed in its routers): its next
    /// packets leave from new mappings, as after a NAT rebinding.
    pub fn rebind(&self, host: &Host) {
        for router in &host.routers {
            netns(router, &["conntrack", "-F"]).unwrap_or_else(|e| panic!("rebind: {e}"));
        }
    }

    /// Ends the [`Lab::cut`] of `other` at `host`.
    pub fn mend(&self, host: &Host, other: &Host) {
        let command = format!("delete table inet {}", cut_table(other));
        netns(&host.ns, &["nft", &command]).unwrap_or_else(|e| panic!("mend: {e}"));
    }

    /// Makes the NATs of `a` and `b` forget every mapping between the two (conntrack entries
    /// toward the other's public address in each one's routers), as if they had never met.
    pub fn forget(&self, a: &Host, b: &Host) {
        for (host, other) in [(a, b), (b, a)] {
            let peer = other.public_ip.to_string();
            for router in &host.routers {
                // No entry to delete is not an error here.
                let _ = netns(router, &["conntrack", "-D", "-d", &peer]);
                let _ = netns(router, &["conntrack", "-D", "-s", &peer]);
            }
        }
    }

    /// The packets a router's input has dropped as new inbound traffic.
    pub fn input_drops(&self, router: &str) -> u64 {
        let text = netns(router, &["nft", "list", "chain", "ip", "lab", "input"])
            .unwrap_or_else(|e| panic!("{e}"));
        text.lines()
            .find(|l| l.contains("ct state new") && l.contains("drop"))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "packets")?;
                words.next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no drop counter in {router}'s input:\n{text}"))
    }

    /// Counts (and with `drop`, drops) the channel datagrams `host` receives: UDP whose first
    /// payload byte is 0x01 (`peergroup_transport::tunnel::datagram`), in a table of its own
    /// in the host's namespace.
    pub fn watch_channels(&self, host: &Host, drop: bool) {
        let verdict = if drop { " drop" } else { "" };
        for command in [
            "add table inet pgchan".to_owned(),
            "add chain inet pgchan in { type filter hook input priority 0 ; }".to_owned(),
            format!("add rule inet pgchan in meta l4proto udp @th,64,8 0x01 counter{verdict}"),
        ] {
            netns(&host.ns, &["nft", &command]).unwrap_or_else(|e| panic!("channel rule: {e}"));
        }
    }

    /// Bytes of channel datagrams (IP packets, headers included) `host` has received (or
    /// dropped) since [`Lab::watch_channels`]. Bytes, not packets: a GSO batch crosses the
    /// lab's veth links as one packet.
    pub fn channel_bytes(&self, host: &Host) -> u64 {
        let text = netns(&host.ns, &["nft", "list", "table", "inet", "pgchan"])
            .unwrap_or_else(|e| panic!("{e}"));
        text.lines()
            .find(|l| l.contains("counter"))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "bytes")?;
                words.next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no channel counter on {}:\n{text}", host.label))
    }

    /// The answer a probe gives, for tests that drive `pg-probe` themselves.
    pub fn recv(p: &mut Proc, port: u16) -> Value {
        p.call(json!({"op":"recv","port":port,"timeout_ms":10_000}))
    }
}
