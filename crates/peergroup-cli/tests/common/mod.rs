//! Shared by the `peergroup` command tests (`cli_*.rs`): running the binary in a home,
//! checking its exit and output, reading its JSON, setting up identities and groups, and
//! processes kept running in the background.
//!
//! Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The listen address of a process that needs no fixed port.
pub const ANY_PORT: &str = "127.0.0.1:0";

/// Upper bound for a background process to exit once it has been told to (or has finished
/// its work); past it the process is killed and the test fails.
pub const EXIT_BOUND: Duration = Duration::from_secs(30);

/// The `peergroup` binary in `home`, listening at `listen` (`$PEERGROUP_LISTEN`), with no
/// password from the environment: a command to add arguments to and run.
pub fn command(home: &Path, listen: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peergroup"));
    c.arg("--home")
        .arg(home)
        .env("PEERGROUP_LISTEN", listen)
        .env_remove("PEERGROUP_PASSWORD")
        .env_remove("PEERGROUP_GROUP_PASSWORD");
    c
}

/// Runs `peergroup ARGS` in `home`, listening at `listen`, with no standard input.
pub fn peergroup_on(home: &Path, listen: &str, args: &[&str]) -> Output {
    command(home, listen)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("peergroup runs")
}

/// Runs `peergroup ARGS` in `home` (any port), with no standard input.
pub fn peergroup(home: &Path, args: &[&str]) -> Output {
    peergroup_on(home, ANY_PORT, args)
}

/// The standard output of a command that must have succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command failed, and its message (standard error) contains `needle`.
pub fn fails_with(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

/// One JSON value.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// One JSON value per non-empty line.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect()
}

/// A UDP port of loopback free at the moment.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The default identity of `home` (made on first use), which the other commands act as: its
/// peer name.
pub fn identity(home: &Path) -> String {
    json(&ok(peergroup(home, &["--json", "identity", "default"])))["peer_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A group `home`'s default identity creates (classifier "club"): its peer name.
pub fn create_group(home: &Path) -> String {
    json(&ok(peergroup(
        home,
        &["--json", "group", "create", "--classifier", "club"],
    )))["group_peer_name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One home with an identity (of the classifier given) and a group it created; returns the
/// group's peer name.
pub fn home_with_group(home: &Path, classifier: &str) -> String {
    ok(peergroup(
        home,
        &["identity", "create", "--classifier", classifier],
    ));
    create_group(home)
}

/// Writes the public XML of `home`'s default identity to `file` (for `invite
/// --identity-xml`).
pub fn identity_xml_to(home: &Path, file: &Path) {
    let xml = json(&ok(peergroup(home, &["--json", "identity", "show"])))["xml"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(file, xml).unwrap();
}

/// A group created in `home` with the password in `password_file`: its JSON properties.
pub fn password_group(home: &Path, password_file: &Path) -> serde_json::Value {
    json(&ok(peergroup(
        home,
        &[
            "--json",
            "group",
            "create",
            "--classifier",
            "club",
            "--password-file",
            path_str(password_file),
        ],
    )))
}

/// Alice's group (she listens at `listen`) with Bob joined: the group's peer name. The
/// invitation files are written under `tmp`.
pub fn group_of_two(tmp: &Path, a: &Path, b: &Path, listen: &str) -> String {
    let group = create_group(a);
    let xml_file = tmp.join("bob.xml");
    identity_xml_to(b, &xml_file);
    let invitation = ok(peergroup_on(
        a,
        listen,
        &["invite", &group, "--identity-xml", path_str(&xml_file)],
    ));
    let inv_file = tmp.join("inv.xml");
    std::fs::write(&inv_file, invitation).unwrap();
    ok(peergroup(b, &["join", path_str(&inv_file)]));
    group
}

/// A child process killed when the test ends, passed or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A background `peergroup` process whose standard output lines arrive on a channel; its
/// standard input stays open until [`Background::finish`]. Killed when dropped.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    /// Starts `peergroup ARGS` in `home`, listening at `listen`.
    pub fn spawn(home: &Path, listen: &str, args: &[&str]) -> Self {
        let mut child = command(home, listen)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines }
    }

    /// The first JSON line (within `bound`) for which `want` holds.
    pub fn wait_for(
        &self,
        bound: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + bound;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v = json(&line);
                    if want(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Closes standard input (a `watch` or `connect` closes its group and exits); its exit
    /// status, as [`Background::exit`].
    pub fn finish(mut self) -> bool {
        drop(self.child.stdin.take());
        self.exit()
    }

    /// Whether it exits successfully on its own, waiting at most [`EXIT_BOUND`] (then it is
    /// killed: a failure).
    pub fn exit(mut self) -> bool {
        let deadline = Instant::now() + EXIT_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
