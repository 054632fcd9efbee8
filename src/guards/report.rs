//! The report of denials: each `struct denial` the BPF side sends through
//! the `denials` ring buffer, printed as a line (or a JSON object) that
//! names the rule, until the guarded command ends or Ctrl-C; then the
//! counts.

use std::cell::Cell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, RingBufferBuilder};
use serde::Serialize;

use super::policy::{addr_from_words, GuardKind, Policy};
use crate::maps;
use crate::signals::Stop;
use crate::trace::{cstr, Events};

/// Both objects build `struct denial` from bpf/lib/guard_types.h; this is
/// its Rust type (the same in either skeleton).
pub type Denial = crate::skel::cgroup_guard::types::denial;

/// The counters the BPF side keeps in `.bss`: every denial, and those the
/// ring buffer had no room for.
pub struct Counts<'a> {
    pub denied: &'a u64,
    pub dropped: &'a u64,
}

/// The socket a denial names: "tcp", "udp", "raw", "packet", ...
fn socket_name(d: &Denial) -> String {
    const SOCK_RAW: u32 = libc::SOCK_RAW as u32;
    const SOCK_PACKET: u32 = 10; // the old packet interface (libc deprecates it)
    let family = d.family as i32;
    match (family, d.r#type, d.protocol) {
        (libc::AF_PACKET, SOCK_PACKET, _) => "packet (SOCK_PACKET)".into(),
        (libc::AF_PACKET, SOCK_RAW, _) => "packet (SOCK_RAW)".into(),
        (libc::AF_PACKET, _, _) => "packet (SOCK_DGRAM)".into(),
        (libc::AF_INET | libc::AF_INET6 | 0, t, p) => match (t, p) {
            (SOCK_RAW, _) => "raw".into(),
            (_, p) => match p as i32 {
                libc::IPPROTO_TCP => "tcp".into(),
                libc::IPPROTO_UDP => "udp".into(),
                libc::IPPROTO_UDPLITE => "udplite".into(),
                libc::IPPROTO_SCTP => "sctp".into(),
                libc::IPPROTO_MPTCP => "mptcp".into(),
                libc::IPPROTO_ICMP => "icmp".into(),
                libc::IPPROTO_ICMPV6 => "icmpv6".into(),
                p => format!("proto {p}"),
            },
        },
        (f, _, _) => format!("family {f}"),
    }
}

/// One denial as the report gives it: the `--json` object, and the fields
/// of the line.
#[derive(Serialize)]
pub struct DenialReport {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// connect, sendmsg, open, socket or tun.
    pub action: &'static str,
    /// open: the file's name, as the rule gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// connect, sendmsg, socket: the socket ("tcp", "udp", "raw", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// connect, sendmsg: the destination, IPv4 unmapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The rule's number (0: the guard's own refusal) and its words.
    pub rule: u32,
    pub deny: String,
}

impl DenialReport {
    pub fn new(d: &Denial, policy: &Policy) -> DenialReport {
        // (A type alias of a tuple struct takes the braces form, not a call.)
        let kind = GuardKind { 0: d.kind };
        let (action, to_host) = match kind {
            GuardKind::GUARD_CONNECT => ("connect", true),
            GuardKind::GUARD_SENDMSG => ("sendmsg", true),
            GuardKind::GUARD_OPEN => ("open", false),
            GuardKind::GUARD_SOCKET => ("socket", false),
            GuardKind::GUARD_TUN => ("tun", false),
            _ => ("?", true),
        };
        let is_socket = to_host || kind == GuardKind::GUARD_SOCKET;
        DenialReport {
            pid: d.pid,
            tid: d.tid,
            comm: cstr(&d.comm),
            action,
            path: (kind == GuardKind::GUARD_OPEN).then(|| {
                policy
                    .path_rule(d.rule)
                    .map_or(String::new(), |r| r.path.display().to_string())
            }),
            proto: is_socket.then(|| socket_name(d)),
            addr: to_host.then(|| addr_from_words(d.addr)),
            port: to_host.then_some(d.port as u16),
            rule: d.rule,
            deny: policy.describe(d.rule, kind),
        }
    }

    /// The line: what was denied, to whom, by which rule.
    pub fn line(&self) -> String {
        let what = match (&self.path, &self.proto, self.addr, self.port) {
            (Some(path), ..) => path.clone(),
            (None, Some(proto), Some(addr), Some(port)) => {
                format!("{proto} {}", SocketAddr::new(addr, port))
            }
            (None, Some(proto), ..) => proto.clone(),
            _ => "/dev/net/tun".into(),
        };
        format!(
            "DENIED {:<7} {what:<24} pid {:<7} {:<16} rule {}: {}",
            self.action, self.pid, self.comm, self.rule, self.deny
        )
    }

    /// Prints the line, or with `json` the object.
    pub fn print(&self, json: bool) -> Result<()> {
        if json {
            crate::report::print_json(self)?;
        } else {
            println!("{}", self.line());
        }
        // A guarded command's output shares the terminal: keep the order.
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

/// How a guarded command ended, as a shell reports it: its exit code, or
/// 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Prints every denial until Ctrl-C/SIGTERM or, with a command, until the
/// command exits (a stop request ends the command first: it must not
/// outlive its policy). Then prints the counts. Returns the exit status to
/// leave with.
pub fn watch(
    denials: &dyn MapCore,
    policy: &Policy,
    json: bool,
    stop: &Stop,
    mut child: Option<Child>,
    counts: Counts,
) -> Result<i32> {
    let reported = Cell::new(0u64);
    let mut builder = RingBufferBuilder::new();
    builder.add(denials, |bytes: &[u8]| {
        let printed = maps::from_bytes::<Denial>(bytes)
            .and_then(|d| DenialReport::new(&d, policy).print(json));
        match printed {
            Ok(()) => reported.set(reported.get() + 1),
            Err(e) => eprintln!("warning: a denial could not be reported: {e:#}"),
        }
        0
    })?;
    let events = Events::Ring(builder.build().context("setting up the ring buffer")?);

    let mut status = 0;
    loop {
        events.poll(Duration::from_millis(100))?;
        if let Some(c) = child.as_mut() {
            if let Some(s) = c.try_wait()? {
                status = exit_code(s);
                break;
            }
        }
        if stop.requested() {
            if let Some(mut c) = child.take() {
                status = stop_child(&mut c)?;
            }
            break;
        }
    }
    events.consume()?;

    let (denied, dropped) = (
        maps::read_global(counts.denied),
        maps::read_global(counts.dropped),
    );
    let mut summary = format!("{denied} denied, {} reported", reported.get());
    if dropped > 0 {
        summary.push_str(&format!(
            ", {dropped} not reported (the ring buffer was full)"
        ));
    }
    eprintln!("{summary}");
    Ok(status)
}

/// SIGTERM, then SIGKILL after 5 s: the command was started here.
fn stop_child(child: &mut Child) -> Result<i32> {
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(exit_code(s));
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Ok(exit_code(child.wait()?));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guards::policy::{addr_words, AddrRule};

    fn denial(kind: GuardKind, rule: u32) -> Denial {
        let mut d = Denial {
            pid: 42,
            tid: 43,
            rule,
            kind: kind.0,
            addr: addr_words("192.0.2.1".parse().unwrap()),
            port: 80,
            r#type: libc::SOCK_STREAM as u32,
            protocol: libc::IPPROTO_TCP as u32,
            family: libc::AF_INET6 as u32,
            ..Denial::default()
        };
        d.comm[..5].copy_from_slice(&[b'p' as i8, b'r' as i8, b'o' as i8, b'b' as i8, b'e' as i8]);
        d
    }

    #[test]
    fn a_denial_reads_as_its_rule() {
        let rule: AddrRule = "192.0.2.1:80".parse().unwrap();
        let policy = Policy::new(vec![rule], Vec::new()).unwrap();
        let r = DenialReport::new(&denial(GuardKind::GUARD_CONNECT, 1), &policy);
        assert_eq!(
            r.line(),
            format!(
                "DENIED connect {:<24} pid 42      probe            rule 1: --deny 192.0.2.1:80",
                "tcp 192.0.2.1:80"
            )
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["addr"], "192.0.2.1");
        assert_eq!(json["port"], 80);
        assert_eq!(json["proto"], "tcp");
        assert!(json.get("path").is_none());

        let tun = DenialReport::new(&denial(GuardKind::GUARD_TUN, 0), &policy);
        assert!(
            tun.line().starts_with("DENIED tun     /dev/net/tun "),
            "{}",
            tun.line()
        );
        let json: serde_json::Value = serde_json::to_value(&tun).unwrap();
        assert!(json.get("proto").is_none() && json.get("addr").is_none());
    }
}
