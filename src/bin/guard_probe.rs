//! guard_probe: tries what the security lessons deny, and says what the
//! kernel answered. Run it under lsm_guard or cgroup_guard to see a policy
//! at work; the lessons' tests use it as the guarded process.
//!
//! Each action is a verb and its argument. The output is the probe's pid,
//! then one line per action: the action, then `ok`, `denied` (EPERM) or the
//! error.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use clap::Parser;

use learning_ebpf_rs::cli;

const EXAMPLES: &str = "\
ACTIONS:
    connect-tcp ADDR:PORT   connect-udp ADDR:PORT   connect-ping ADDR
    connect-raw ADDR        sendto-udp ADDR:PORT    sendto-ping ADDR
    sendto-raw ADDR         sendto-tcp ADDR:PORT    open PATH
    reopen PATH
    (connect on a TCP, UDP, ICMP echo (ping) or raw ICMP socket; sendto
    without connect (on TCP: with MSG_FASTOPEN, which connects); open a
    file; open it with O_PATH and then again through /proc/self/fd, as a
    process can with a descriptor it was given)

EXAMPLES:
    guard_probe connect-tcp 192.0.2.1:443 open /etc/shadow
    guard_probe --repeat 100 sendto-udp [2001:db8::1]:53";

/// Try connects, sends and opens, and print what the kernel answered.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Do every action this many times (one line per try)
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// VERB ARG pairs
    #[arg(required = true, value_name = "ACTION")]
    actions: Vec<String>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `sockaddr_in` or `sockaddr_in6` for `sa`, as bytes with its length.
fn sockaddr(sa: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill in one of the
    // two layouts it is defined to hold.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match sa {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as _,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as _,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn socket(addr: &SocketAddr, kind: &str) -> Result<OwnedFd> {
    let v6 = addr.is_ipv6();
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let icmp = if v6 {
        libc::IPPROTO_ICMPV6
    } else {
        libc::IPPROTO_ICMP
    };
    let (ty, proto) = match kind {
        "tcp" => (libc::SOCK_STREAM, 0),
        "udp" => (libc::SOCK_DGRAM, 0),
        "ping" => (libc::SOCK_DGRAM, icmp),
        "raw" => (libc::SOCK_RAW, icmp),
        _ => bail!("unknown socket kind '{kind}'"),
    };
    // SAFETY: socket(2) returns a new fd that we own, or -1.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })
        .with_context(|| format!("socket({kind})"))?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Bounded: a TCP connect gives up after 2 s.
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as _,
        )
    };
    Ok(fd)
}

/// An ICMP echo request (the kernel fills in the checksum for ping
/// sockets; raw sockets send it as it is, which is enough to be checked).
const ECHO: [u8; 8] = [8, 0, 0, 0, 0, 0, 0, 1];
const ECHO6: [u8; 8] = [128, 0, 0, 0, 0, 0, 0, 1];

fn connect(addr: SocketAddr, kind: &str) -> Result<()> {
    let fd = socket(&addr, kind)?;
    let (sa, len) = sockaddr(addr);
    // SAFETY: sa is a valid sockaddr of `len` bytes.
    check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    Ok(())
}

fn sendto(addr: SocketAddr, kind: &str) -> Result<()> {
    let fd = socket(&addr, kind)?;
    let (sa, len) = sockaddr(addr);
    let flags = if kind == "tcp" { libc::MSG_FASTOPEN } else { 0 };
    let payload: &[u8] = match (kind, addr.is_ipv6()) {
        ("udp" | "tcp", _) => b"guard_probe",
        (_, false) => &ECHO,
        (_, true) => &ECHO6,
    };
    // SAFETY: payload and sa are valid for the lengths given.
    check(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            flags,
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        ) as libc::c_int
    })?;
    Ok(())
}

fn open(path: &str, flags: libc::c_int) -> Result<OwnedFd> {
    let c = CString::new(path)?;
    // SAFETY: c is a NUL-terminated path; open returns a new fd or -1.
    let fd = check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` with O_PATH (a handle that does not open the file's
/// contents, so no file_open check), then opens it for reading through
/// /proc/self/fd/N.
fn reopen(path: &str) -> Result<()> {
    let handle = open(path, libc::O_PATH)?;
    open(
        &format!("/proc/self/fd/{}", handle.as_raw_fd()),
        libc::O_RDONLY,
    )?;
    Ok(())
}

/// "10.0.0.1:80", "[2001:db8::1]:80", or, for ping and raw, an address alone.
fn target(arg: &str, needs_port: bool) -> Result<SocketAddr> {
    if let Ok(sa) = arg.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if !needs_port {
        let bare = arg.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, 0));
        }
    }
    bail!(
        "'{arg}' is not an address{}",
        if needs_port { " with a port" } else { "" }
    )
}

fn act(verb: &str, arg: &str) -> Result<()> {
    match verb.split_once('-') {
        Some(("connect", kind)) => connect(target(arg, matches!(kind, "tcp" | "udp"))?, kind),
        Some(("sendto", kind)) => sendto(target(arg, matches!(kind, "tcp" | "udp"))?, kind),
        _ => match verb {
            "open" => open(arg, libc::O_RDONLY).map(drop),
            "reopen" => reopen(arg),
            _ => bail!("unknown action '{verb}' (see --help)"),
        },
    }
}

fn outcome(result: &Result<()>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => match e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            Some(libc::EPERM) => "denied".into(),
            _ => format!("error: {e:#}"),
        },
    }
}

fn run(args: Args) -> Result<()> {
    if args.actions.len() % 2 != 0 {
        bail!(
            "actions come in pairs, VERB ARG: '{}' has no argument",
            args.actions.last().unwrap()
        );
    }
    for pair in args.actions.chunks(2) {
        // Usage errors stop before anything is tried.
        match pair[0].as_str() {
            "open" | "reopen" => {}
            v if matches!(
                v.split_once('-'),
                Some(("connect" | "sendto", "tcp" | "udp" | "ping" | "raw"))
            ) =>
            {
                target(&pair[1], v.ends_with("tcp") || v.ends_with("udp"))?;
            }
            v => bail!("unknown action '{v}' (see --help)"),
        }
    }
    println!("guard_probe pid {}", std::process::id());
    for _ in 0..args.repeat {
        for pair in args.actions.chunks(2) {
            let result = act(&pair[0], &pair[1]);
            println!("{} {} {}", pair[0], pair[1], outcome(&result));
        }
    }
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
