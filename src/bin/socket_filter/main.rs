//! socket_filter: a small tcpdump. A BPF socket filter on an AF_PACKET
//! socket keeps the frames that match a filter expression, cut to a snap
//! length; this side prints one line per frame. With `--udp PORT`, the
//! other use of a socket filter: on a UDP socket, which queues only the
//! datagrams the program keeps.
//!
//! The kernel side is bpf/socket_filter.bpf.c; the chapter is
//! docs/10-socket_filter.md.

mod filter;
mod print;

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::Program;

use learning_ebpf_rs::cidr;
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::socket_filter::types::filter_counts;
use learning_ebpf_rs::skel::socket_filter::SocketFilterSkelBuilder;
use learning_ebpf_rs::{cli, errors, netif, report, signals, skel};

use filter::Filter;

const EXAMPLES: &str = "\
EXAMPLES:
    socket_filter -i eth0 udp port 53          # DNS, both directions
    socket_filter -i eth0 -s 64 tcp host 192.0.2.1
    socket_filter -i eth0 vlan 100 and icmp6 --json
    socket_filter --udp 9000 --prefix keep -s 16   # a UDP socket's own filter";

/// Capture the frames that match a filter, with a BPF socket filter.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Interface to capture on (an AF_PACKET socket)
    #[arg(
        short,
        long,
        value_name = "IFACE",
        required_unless_present = "udp",
        conflicts_with = "udp"
    )]
    iface: Option<String>,
    /// Bytes kept of each frame (of each datagram's payload with --udp)
    #[arg(short, long, default_value_t = 262144, value_parser = clap::value_parser!(u32).range(1..))]
    snaplen: u32,
    /// Stop after this many packets
    #[arg(short, long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// One JSON object per packet
    #[arg(long)]
    json: bool,
    /// Instead of capturing: receive on this UDP port, through a filter
    /// that keeps only the datagrams starting with --prefix
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    udp: Option<u16>,
    /// With --udp: the bytes a datagram must start with (up to 16)
    #[arg(long, requires = "udp", default_value = "")]
    prefix: String,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
    /// The filter: tcp, udp, icmp, icmp6, port N, host ADDR, vlan ID
    #[arg(value_name = "EXPRESSION", conflicts_with = "udp")]
    expression: Vec<String>,
}

fn check(ret: libc::c_int, what: &str) -> Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error()).context(what.to_string())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: &impl AsRawFd, level: i32, name: i32, value: &T, what: &str) -> Result<()> {
    // SAFETY: value points to a T of the size we pass.
    check(
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        },
        what,
    )?;
    Ok(())
}

/// A new socket, or an error naming `what` it was for.
fn socket(domain: i32, ty: i32, what: &str) -> Result<OwnedFd> {
    // SAFETY: socket(2) returns a new fd that we own, or -1.
    let fd = check(
        unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) },
        what,
    )?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bind(2) to `addr`, a sockaddr_* of the socket's family.
fn bind<T>(sock: &OwnedFd, addr: &T, what: &str) -> Result<()> {
    // SAFETY: addr points to a T of the size we pass.
    check(
        unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (addr as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        },
        what,
    )?;
    Ok(())
}

/// Makes `prog` the socket's filter.
fn attach_filter(sock: &OwnedFd, prog: &Program) -> Result<()> {
    let prog_fd = prog.as_fd().as_raw_fd();
    setsockopt(
        sock,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_BPF,
        &prog_fd,
        "SO_ATTACH_BPF",
    )
}

// ANCHOR: packet_socket
/// An AF_PACKET socket on `ifindex` with `prog` as its filter. The socket
/// is made with protocol 0, which receives nothing, and bound to every
/// protocol only once the filter is attached: no frame slips in unfiltered
/// in between.
fn packet_socket(ifindex: u32, prog: &Program) -> Result<OwnedFd> {
    let sock = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        "opening an AF_PACKET socket",
    )?;
    attach_filter(&sock, prog)?;
    // Ask for each frame's length on the wire and its offloaded VLAN tag.
    setsockopt(
        &sock,
        libc::SOL_PACKET,
        libc::PACKET_AUXDATA,
        &1i32,
        "PACKET_AUXDATA",
    )?;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    setsockopt(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_RCVTIMEO,
        &timeout,
        "SO_RCVTIMEO",
    )?;
    // SAFETY: an all-zero sockaddr_ll is valid; we fill in what bind reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    bind(&sock, &addr, "binding the AF_PACKET socket")?;
    Ok(sock)
}
// ANCHOR_END: packet_socket

/// A frame's metadata: how much was captured, its length on the wire,
/// and a VLAN tag the driver took out of it.
struct Received {
    captured: usize,
    len: u32,
    vlan: Option<u16>,
}

/// Receives one frame into `buf`. None when the 100 ms wait ran out or a
/// signal interrupted it.
fn receive(sock: &OwnedFd, buf: &mut [u8]) -> Result<Option<Received>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16]; // room for the aligned auxdata message
                                  // SAFETY: msghdr is plain data; every pointer in it outlives recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e).context("receiving a frame"),
        };
    }
    let mut received = Received {
        captured: n as usize,
        len: n as u32,
        vlan: None,
    };
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled in.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                received.len = aux.tp_len;
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    received.vlan = Some(aux.tp_vlan_tci & 0x0fff);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Some(received))
}

/// Prints the frames the filter keeps, until Ctrl-C or `count` frames.
fn capture(sock: &OwnedFd, args: &Args, stop: &signals::Stop) -> Result<()> {
    let mut buf = vec![0u8; 262_144];
    let mut seen = 0;
    while !stop.requested() && args.count.is_none_or(|c| seen < c) {
        let Some(r) = receive(sock, &mut buf)? else {
            continue;
        };
        let frame = print::Frame {
            data: &buf[..r.captured.min(buf.len())],
            len: r.len,
            vlan: r.vlan,
        };
        let summary = print::summarize(&frame);
        let time = print::now();
        if args.json {
            report::print_json(&print::FrameReport::new(&summary, &time))?;
        } else {
            println!("{}", print::line(&summary, &time));
        }
        seen += 1;
    }
    Ok(())
}

// ANCHOR: udp_socket
/// A dual-stack UDP socket on `port` with `prog` as its filter, attached
/// before bind() so that every datagram the socket queues has passed it.
fn udp_socket(port: u16, prog: &Program) -> Result<UdpSocket> {
    let sock = socket(libc::AF_INET6, libc::SOCK_DGRAM, "opening a UDP socket")?;
    setsockopt(
        &sock,
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        &0i32,
        "IPV6_V6ONLY",
    )?;
    attach_filter(&sock, prog)?;
    // SAFETY: an all-zero sockaddr_in6 is the wildcard address.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as u16;
    addr.sin6_port = port.to_be();
    bind(&sock, &addr, &format!("binding UDP port {port}"))?;
    let sock = UdpSocket::from(sock);
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(sock)
}
// ANCHOR_END: udp_socket

/// Prints the datagrams the filter lets the socket queue.
fn datagrams(sock: &UdpSocket, args: &Args, stop: &signals::Stop) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut seen = 0;
    while !stop.requested() && args.count.is_none_or(|c| seen < c) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context("receiving a datagram"),
        };
        let ip = match from.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let from = SocketAddr::new(ip, from.port());
        let text = String::from_utf8_lossy(&buf[..n]);
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "from": from.ip().to_string(),
                    "port": from.port(),
                    "bytes": n,
                    "data": text,
                })
            );
        } else {
            println!("{} from {from}: {n} bytes {text:?}", print::now());
        }
        seen += 1;
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("socket_filter")?;
    cli::init_libbpf_log(args.verbose);
    let filter = Filter::parse(&args.expression)?;
    if args.prefix.len() > 16 {
        bail!("--prefix is {} bytes long: at most 16", args.prefix.len());
    }
    privileges::require(&[Cap::Bpf, Cap::NetRaw])?;
    let ifindex = args.iface.as_deref().map(netif::ifindex).transpose()?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open; write the filter into .rodata; load.
    let mut object = MaybeUninit::uninit();
    let mut open = SocketFilterSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
    rodata.want_proto = filter.proto.unwrap_or(0);
    rodata.want_port = filter.port.unwrap_or(0);
    if let Some(host) = filter.host {
        rodata.want_host = true;
        rodata.host_addr = cidr::mapped_words(host);
    }
    rodata.want_vlan = filter.vlan.unwrap_or(0);
    rodata.snaplen = args.snaplen;
    rodata.prefix[..args.prefix.len()].copy_from_slice(args.prefix.as_bytes());
    rodata.prefix_len = args.prefix.len() as u32;
    let skel = open.load().map_err(errors::load_error)?;

    // Attach: a socket option names the program. Closing the socket (on
    // exit, however it comes) is all the detaching there is.
    match (ifindex, args.udp) {
        (Some(ifindex), _) => {
            let sock = packet_socket(ifindex, &skel.progs.capture)?;
            eprintln!(
                "capturing on {}... Hit Ctrl-C to end.",
                args.iface.as_deref().unwrap_or_default()
            );
            capture(&sock, &args, &stop)?;
        }
        (None, Some(port)) => {
            let sock = udp_socket(port, &skel.progs.datagrams)?;
            eprintln!(
                "receiving on UDP port {port}, datagrams starting with {:?}... Hit Ctrl-C to end.",
                args.prefix
            );
            datagrams(&sock, &args, &stop)?;
        }
        (None, None) => bail!("give an interface (-i IFACE) or a UDP port (--udp PORT)"),
    }
    // ANCHOR_END: spine

    let counts = percpu_sum::<filter_counts>(&skel.maps.counts, &0u32.to_ne_bytes())?;
    eprintln!(
        "{} packets kept, {} rejected by the filter",
        counts.kept, counts.rejected
    );
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
