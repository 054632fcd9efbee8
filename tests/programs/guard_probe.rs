//! guard_probe: tries what the security lessons deny, and says what the
//! kernel answered. Run it under lsm_guard or cgroup_guard to see a policy
//! at work; the lessons' tests use it as the guarded process, and try the
//! ways around a policy with it.
//!
//! Each action is a verb and its argument. The output is the probe's pid,
//! then one line per action: the action, then `ok`, `denied` (EPERM) or the
//! error. Whatever an action sends carries the text `guard_probe VERB ARG`,
//! so that a receiver can tell which action reached it.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use clap::Parser;

use learning_ebpf_rs::cli;

const EXAMPLES: &str = "\
ACTIONS:
    connect-KIND DEST   connect, and on TCP and UDP send one message; KIND
                        is tcp, mptcp, udp, udplite, ping or raw (raw: ICMP)
    sendto-KIND DEST    sendto() without connect (tcp: MSG_FASTOPEN, which
                        connects)
    sendmmsg-udp DEST   the same datagram through sendmmsg()
    uring-connect-tcp DEST, uring-sendmsg-udp DEST
                        connect, or sendmsg with an address, through io_uring
    raw-udp DEST        a UDP header and payload on a raw IPPROTO_UDP socket
                        (the sockaddr's port is 0)
    raw-hdrincl DEST,via=ADDR
                        a whole IPv4 packet to DEST (IPPROTO_RAW, so
                        IP_HDRINCL), sent with a sockaddr naming ADDR
    packet-raw DEST     an Ethernet frame on lo (AF_PACKET, SOCK_RAW)
    packet-dgram DEST   an IPv4 packet on lo (AF_PACKET, SOCK_DGRAM)
    packet-sockpacket DEST
                        a frame on lo through the old SOCK_PACKET interface
    tun DEST            a new tun device, and an IPv4 packet written to it
    open PATH           open a file
    reopen PATH         open it with O_PATH, then again through /proc/self/fd
    leave-cgroup DIR    move this process to the cgroup DIR
    signal-parent SIG   kill(getppid(), SIG): 0 asks only whether it may
    unshare-user 0      move into a new user namespace (all capabilities in
                        it) for the actions after it
  DEST is ADDR:PORT ([IPv6]:PORT), or ADDR for ping and raw, with options
  after commas: from=ADDR binds the socket to ADDR first; len=N passes N
  as the address length; family=unspec sends the address as AF_UNSPEC.

EXAMPLES:
    guard_probe connect-tcp 192.0.2.1:443 open /etc/shadow
    guard_probe --repeat 100 sendto-udp [2001:db8::1]:53
    guard_probe sendto-udp 0.0.0.0:80,from=192.0.2.1";

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

/// A destination and the options that change how it is passed.
#[derive(Clone, Copy, Debug)]
struct Dest {
    addr: SocketAddr,
    /// Bind to this address (port 0) before connecting or sending.
    from: Option<IpAddr>,
    /// The address length to pass, when not the family's own.
    len: Option<libc::socklen_t>,
    /// Send the address with sa_family AF_UNSPEC.
    unspec: bool,
    /// raw-hdrincl: the sockaddr's address (the header's is `addr`).
    via: Option<IpAddr>,
}

fn parse_ip(s: &str) -> Result<IpAddr> {
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse()
        .with_context(|| format!("'{s}' is not an address"))
}

impl Dest {
    /// "ADDR:PORT[,opt=value...]"; the port may be left out where
    /// `needs_port` is false.
    fn parse(arg: &str, needs_port: bool) -> Result<Dest> {
        let mut parts = arg.split(',');
        let target = parts.next().unwrap_or("");
        let addr = match target.parse::<SocketAddr>() {
            Ok(sa) => sa,
            Err(_) if !needs_port => SocketAddr::new(parse_ip(target)?, 0),
            Err(_) => bail!("'{target}' is not an address with a port"),
        };
        let mut dest = Dest {
            addr,
            from: None,
            len: None,
            unspec: false,
            via: None,
        };
        for opt in parts {
            match opt.split_once('=') {
                Some(("from", a)) => dest.from = Some(parse_ip(a)?),
                Some(("via", a)) => dest.via = Some(parse_ip(a)?),
                Some(("len", n)) => dest.len = Some(n.parse().context("len=N: a number")?),
                Some(("family", "unspec")) => dest.unspec = true,
                _ => bail!("'{opt}': options are from=ADDR, via=ADDR, len=N, family=unspec"),
            }
        }
        Ok(dest)
    }
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

/// [`sockaddr`] as `dest` asks: AF_UNSPEC for the family, another length.
fn dest_sockaddr(dest: &Dest) -> (libc::sockaddr_storage, libc::socklen_t) {
    let (mut sa, len) = sockaddr(dest.addr);
    if dest.unspec {
        sa.ss_family = libc::AF_UNSPEC as _;
    }
    (sa, dest.len.unwrap_or(len))
}

fn new_socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: socket(2) returns a new fd that we own, or -1.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
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

/// Shared Memory Communications (linux/socket.h; the libc crate has no name
/// for it).
const AF_SMC: libc::c_int = 43;

/// A socket of `kind` for `dest`'s family, bound to `dest.from` if given.
fn socket(dest: &Dest, kind: &str) -> Result<OwnedFd> {
    let v6 = dest.addr.is_ipv6();
    let mut domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let icmp = if v6 {
        libc::IPPROTO_ICMPV6
    } else {
        libc::IPPROTO_ICMP
    };
    let (ty, proto) = match kind {
        "tcp" => (libc::SOCK_STREAM, 0),
        "mptcp" => (libc::SOCK_STREAM, libc::IPPROTO_MPTCP),
        "udp" => (libc::SOCK_DGRAM, 0),
        "udplite" => (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE),
        "ping" => (libc::SOCK_DGRAM, icmp),
        "raw" => (libc::SOCK_RAW, icmp),
        // AF_SMC: the kernel connects a TCP socket of its own underneath
        // (and falls back to plain TCP with a peer that is not SMC); the
        // protocol says which IP family (SMCPROTO_SMC, SMCPROTO_SMC6).
        "smc" => {
            domain = AF_SMC;
            (libc::SOCK_STREAM, i32::from(v6))
        }
        _ => bail!("unknown socket kind '{kind}'"),
    };
    let fd = new_socket(domain, ty, proto).with_context(|| format!("socket({kind})"))?;
    if let Some(from) = dest.from {
        let (sa, len) = sockaddr(SocketAddr::new(from, 0));
        // SAFETY: sa is a valid sockaddr of `len` bytes.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_storage).cast(),
                len,
            )
        })
        .context("bind")?;
    }
    Ok(fd)
}

/// An ICMP echo request (the kernel fills in the checksum for ping
/// sockets; raw sockets send it as it is, which is enough to be checked).
const ECHO: [u8; 8] = [8, 0, 0, 0, 0, 0, 0, 1];
const ECHO6: [u8; 8] = [128, 0, 0, 0, 0, 0, 0, 1];

fn payload<'a>(kind: &str, dest: &Dest, label: &'a [u8]) -> &'a [u8] {
    match (kind, dest.addr.is_ipv6()) {
        ("ping" | "raw", false) => &ECHO,
        ("ping" | "raw", true) => &ECHO6,
        _ => label,
    }
}

/// sendto(2) of `data` to the first `len` bytes of `sa`.
fn send_to(
    fd: &OwnedFd,
    data: &[u8],
    flags: libc::c_int,
    sa: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Result<()> {
    // SAFETY: data and sa are valid for the lengths given.
    check(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            flags,
            (sa as *const libc::sockaddr_storage).cast(),
            len,
        ) as libc::c_int
    })?;
    Ok(())
}

fn send_all(fd: &OwnedFd, data: &[u8]) -> Result<()> {
    // SAFETY: data is valid for its length.
    check(unsafe {
        libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) as libc::c_int
    })
    .context("send")?;
    Ok(())
}

/// connect(); then TCP and UDP send the label, so a receiver sees who came.
fn connect(dest: &Dest, kind: &str, label: &[u8]) -> Result<()> {
    let fd = socket(dest, kind)?;
    let (sa, len) = dest_sockaddr(dest);
    // SAFETY: sa is a valid sockaddr of at least `len` bytes.
    check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    if matches!(kind, "tcp" | "mptcp" | "smc" | "udp" | "udplite") {
        send_all(&fd, label)?;
    }
    Ok(())
}

fn sendto(dest: &Dest, kind: &str, label: &[u8]) -> Result<()> {
    let fd = socket(dest, kind)?;
    let (sa, len) = dest_sockaddr(dest);
    let flags = if kind == "tcp" { libc::MSG_FASTOPEN } else { 0 };
    let data = payload(kind, dest, label);
    send_to(&fd, data, flags, &sa, len)
}

/// The source of what is written below IP: an address that is not local
/// (the kernel drops a received packet from one of its own addresses).
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// One msghdr naming `sa` (of `len` bytes) with `data` as its only iovec.
fn msghdr(
    sa: &libc::sockaddr_storage,
    len: libc::socklen_t,
    iov: &mut libc::iovec,
) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid; we fill in what we use.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (sa as *const libc::sockaddr_storage).cast_mut().cast();
    msg.msg_namelen = len;
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

/// sendmmsg-udp: one datagram in a sendmmsg() batch.
fn sendmmsg(dest: &Dest, label: &[u8]) -> Result<()> {
    let fd = socket(dest, "udp")?;
    let (sa, len) = dest_sockaddr(dest);
    let mut iov = libc::iovec {
        iov_base: label.as_ptr().cast_mut().cast(),
        iov_len: label.len(),
    };
    let mut msgs = [libc::mmsghdr {
        msg_hdr: msghdr(&sa, len, &mut iov),
        msg_len: 0,
    }];
    // SAFETY: msgs, and what its header points to, live through the call.
    let sent = check(unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), 1, 0) })?;
    if sent != 1 {
        bail!("sendmmsg sent {sent} of 1");
    }
    Ok(())
}

/// uring-connect-tcp, uring-sendmsg-udp: the call made by io_uring's
/// workers rather than by a system call of this process.
fn uring(dest: &Dest, op: &str, label: &[u8]) -> Result<()> {
    use io_uring::{opcode, types, IoUring};
    let kind = if op == "connect" { "tcp" } else { "udp" };
    let fd = socket(dest, kind)?;
    let (sa, len) = dest_sockaddr(dest);
    let mut iov = libc::iovec {
        iov_base: label.as_ptr().cast_mut().cast(),
        iov_len: label.len(),
    };
    let msg = msghdr(&sa, len, &mut iov);
    let mut ring = IoUring::new(2).context("io_uring_setup")?;
    let target = types::Fd(fd.as_raw_fd());
    let entry = if op == "connect" {
        opcode::Connect::new(target, (&sa as *const libc::sockaddr_storage).cast(), len).build()
    } else {
        opcode::SendMsg::new(target, &msg).build()
    };
    // SAFETY: sa, msg and what it points to outlive the submission, which
    // is waited for below.
    unsafe { ring.submission().push(&entry) }
        .map_err(|_| anyhow::anyhow!("io_uring queue full"))?;
    ring.submit_and_wait(1).context("io_uring_enter")?;
    let result = ring
        .completion()
        .next()
        .context("no io_uring completion")?
        .result();
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result).into());
    }
    if op == "connect" {
        send_all(&fd, label)?;
    }
    Ok(())
}

/// unshare-user: a new user namespace, in which this process holds every
/// capability (over that namespace's own objects only).
fn unshare_user() -> Result<()> {
    // SAFETY: unshare(2) on this single-threaded process.
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
    Ok(())
}

fn ipv4_of(dest: &Dest) -> Result<(Ipv4Addr, u16)> {
    match dest.addr {
        SocketAddr::V4(v4) => Ok((*v4.ip(), v4.port())),
        SocketAddr::V6(_) => bail!("an IPv4 destination, please"),
    }
}

/// An IPv4 packet carrying a UDP datagram from `src` (port 9) to `dest`
/// with `label`, with an Ethernet header in front when `ethernet`.
fn udp_packet(src: Ipv4Addr, dest: &Dest, label: &[u8], ethernet: bool) -> Result<Vec<u8>> {
    use etherparse::PacketBuilder;
    let (dst, port) = ipv4_of(dest)?;
    let mut out = Vec::new();
    if ethernet {
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(src.octets(), dst.octets(), 64)
            .udp(9, port)
            .write(&mut out, label)?;
    } else {
        PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
            .udp(9, port)
            .write(&mut out, label)?;
    }
    Ok(out)
}

/// raw-udp: a raw IPPROTO_UDP socket; the kernel adds the IPv4 header, the
/// port is in the UDP header the payload starts with.
fn raw_udp(dest: &Dest, label: &[u8]) -> Result<()> {
    let (_, port) = ipv4_of(dest)?;
    let fd =
        new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP).context("socket(raw udp)")?;
    let mut data = Vec::with_capacity(8 + label.len());
    data.extend_from_slice(&9u16.to_be_bytes());
    data.extend_from_slice(&port.to_be_bytes());
    data.extend_from_slice(&((8 + label.len()) as u16).to_be_bytes());
    data.extend_from_slice(&[0, 0]); // no checksum (allowed over IPv4)
    data.extend_from_slice(label);
    let (sa, len) = sockaddr(SocketAddr::new(dest.addr.ip(), 0));
    send_to(&fd, &data, 0, &sa, len)
}

/// raw-hdrincl: the whole packet is the caller's; the sockaddr only picks
/// the route.
fn raw_hdrincl(dest: &Dest, label: &[u8]) -> Result<()> {
    let via = dest.via.context("raw-hdrincl needs via=ADDR")?;
    let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)
        .context("socket(IPPROTO_RAW)")?;
    let (dst, _) = ipv4_of(dest)?;
    let packet = udp_packet(dst, dest, label, false)?;
    let (sa, len) = sockaddr(SocketAddr::new(via, 0));
    send_to(&fd, &packet, 0, &sa, len)
}

/// packet-raw, packet-dgram, packet-sockpacket: the datagram, from
/// [`OUTSIDE`], written on lo below IP: it comes back in as if received.
fn packet(dest: &Dest, kind: &str, label: &[u8]) -> Result<()> {
    let lo = CString::new("lo")?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(lo.as_ptr()) } as i32;
    let eth_ip = (libc::ETH_P_IP as u16).to_be();
    let (fd, frame, sa, len) = match kind {
        "raw" | "dgram" => {
            let ty = if kind == "raw" {
                libc::SOCK_RAW
            } else {
                libc::SOCK_DGRAM
            };
            let fd = new_socket(libc::AF_PACKET, ty, eth_ip.into()).context("socket(AF_PACKET)")?;
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as _;
            sll.sll_protocol = eth_ip;
            sll.sll_ifindex = ifindex;
            sll.sll_halen = 6;
            let frame = udp_packet(OUTSIDE, dest, label, kind == "raw")?;
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sll) };
            (fd, frame, storage, size_of::<libc::sockaddr_ll>())
        }
        "sockpacket" => {
            // socket(AF_INET, SOCK_PACKET): the kernel makes it AF_PACKET.
            const SOCK_PACKET: libc::c_int = 10;
            let fd = new_socket(libc::AF_INET, SOCK_PACKET, eth_ip.into())
                .context("socket(SOCK_PACKET)")?;
            // struct sockaddr_pkt: family, a 14-byte device name, protocol.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let bytes: &mut [u8; 18] =
                unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast() };
            bytes[..2].copy_from_slice(&(libc::AF_PACKET as u16).to_ne_bytes());
            bytes[2..4].copy_from_slice(b"lo");
            bytes[16..18].copy_from_slice(&eth_ip.to_ne_bytes());
            (fd, udp_packet(OUTSIDE, dest, label, true)?, storage, 18)
        }
        _ => bail!("unknown packet kind '{kind}'"),
    };
    send_to(&fd, &frame, 0, &sa, len as libc::socklen_t)
}

/// tun: a new tun device (up, no address), and the datagram written to it
/// from [`OUTSIDE`]: the kernel takes it as received on that device.
fn tun(dest: &Dest, label: &[u8]) -> Result<()> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    let path = CString::new("/dev/net/tun")?;
    // SAFETY: a NUL-terminated path; open returns a new fd or -1.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
        .context("open /dev/net/tun")?;
    let tun = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"gprobe%d") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    check(unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut ifr) }).context("TUNSETIFF")?;
    let ctl = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).context("socket for SIOCSIFFLAGS")?;
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    check(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr) })
        .context("SIOCSIFFLAGS")?;
    let packet = udp_packet(OUTSIDE, dest, label, false)?;
    check(unsafe {
        libc::write(tun.as_raw_fd(), packet.as_ptr().cast(), packet.len()) as libc::c_int
    })
    .context("write to the tun device")?;
    // Give the stack a moment to take the packet in before the device goes
    // with this process.
    std::thread::sleep(std::time::Duration::from_millis(50));
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

/// Writes this process into the cgroup DIR, as a process that wants out
/// of its policy would.
fn leave_cgroup(dir: &str) -> Result<()> {
    std::fs::write(format!("{dir}/cgroup.procs"), "0")?;
    Ok(())
}

fn signal_parent(sig: &str) -> Result<()> {
    let sig: libc::c_int = sig.parse().context("a signal number")?;
    // SAFETY: kill(2) on our parent; with 0 it only checks permission.
    check(unsafe { libc::kill(libc::getppid(), sig) })?;
    Ok(())
}

/// Whether `verb` takes a DEST, and whether that needs a port.
fn dest_verb(verb: &str) -> Option<bool> {
    match verb.split_once('-') {
        Some(("connect" | "sendto", kind)) => match kind {
            "tcp" | "mptcp" | "smc" | "udp" | "udplite" => Some(true),
            "ping" | "raw" => Some(false),
            _ => None,
        },
        Some(("sendmmsg", "udp")) | Some(("uring", "connect-tcp" | "sendmsg-udp")) => Some(true),
        Some(("raw", "udp" | "hdrincl")) | Some(("packet", "raw" | "dgram" | "sockpacket")) => {
            Some(true)
        }
        _ if verb == "tun" => Some(true),
        _ => None,
    }
}

fn act(verb: &str, arg: &str) -> Result<()> {
    let label = format!("guard_probe {verb} {arg}");
    let label = label.as_bytes();
    if let Some(needs_port) = dest_verb(verb) {
        let dest = Dest::parse(arg, needs_port)?;
        return match verb.split_once('-') {
            Some(("connect", kind)) => connect(&dest, kind, label),
            Some(("sendto", kind)) => sendto(&dest, kind, label),
            Some(("sendmmsg", _)) => sendmmsg(&dest, label),
            Some(("uring", "connect-tcp")) => uring(&dest, "connect", label),
            Some(("uring", _)) => uring(&dest, "sendmsg", label),
            Some(("raw", "udp")) => raw_udp(&dest, label),
            Some(("raw", _)) => raw_hdrincl(&dest, label),
            Some(("packet", kind)) => packet(&dest, kind, label),
            _ => tun(&dest, label),
        };
    }
    match verb {
        "open" => open(arg, libc::O_RDONLY).map(drop),
        "reopen" => reopen(arg),
        "leave-cgroup" => leave_cgroup(arg),
        "signal-parent" => signal_parent(arg),
        "unshare-user" => unshare_user(),
        _ => bail!("unknown action '{verb}' (see --help)"),
    }
}

fn outcome(result: &Result<()>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => match e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .or_else(|| {
                e.root_cause()
                    .downcast_ref::<io::Error>()
                    .and_then(io::Error::raw_os_error)
            }) {
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
        match (pair[0].as_str(), dest_verb(&pair[0])) {
            (_, Some(needs_port)) => {
                Dest::parse(&pair[1], needs_port)?;
            }
            ("open" | "reopen" | "leave-cgroup" | "signal-parent" | "unshare-user", None) => {}
            (v, None) => bail!("unknown action '{v}' (see --help)"),
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
