//! The few rtnetlink messages the LWT lesson needs: add a route whose
//! lightweight-tunnel encapsulation is a BPF program, and delete it. libbpf
//! cannot attach LWT programs, because attaching one is a route operation;
//! iproute2 does it with `ip route add PREFIX encap bpf in obj FILE ...`,
//! and this module does it with the program's fd.
//!
//! A netlink message is a header (`struct nlmsghdr`), a fixed part
//! (`struct rtmsg` for routes), then attributes: type, length, value,
//! padded to 4 bytes, nested where a value is itself a list of attributes.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use learning_ebpf_rs::cidr::Cidr;

const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_ENCAP: u16 = 22;
const RTA_ENCAP_TYPE: u16 = 21;
const LWTUNNEL_ENCAP_BPF: u16 = 6;
const LWT_BPF_IN: u16 = 1;
const LWT_BPF_PROG_FD: u16 = 1;
const LWT_BPF_PROG_NAME: u16 = 2;

/// Where the route sends its traffic: through a gateway, or straight out
/// of an interface (the destination is on that link).
#[derive(Clone, Copy, Debug)]
pub enum NextHop {
    Via(IpAddr),
    Dev(u32),
}

/// A message under construction: attributes appended, nests closed.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, family: u8, dst_len: u8, scope: u8) -> Message {
        // struct nlmsghdr (libc's); its length is written by `finish`.
        let header = libc::nlmsghdr {
            nlmsg_len: 0,
            nlmsg_type: kind,
            nlmsg_flags: flags | NLM_F_REQUEST | NLM_F_ACK,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        };
        let mut buf = Vec::with_capacity(256);
        buf.extend(header.nlmsg_len.to_ne_bytes());
        buf.extend(header.nlmsg_type.to_ne_bytes());
        buf.extend(header.nlmsg_flags.to_ne_bytes());
        buf.extend(header.nlmsg_seq.to_ne_bytes());
        buf.extend(header.nlmsg_pid.to_ne_bytes());
        // struct rtmsg (linux/rtnetlink.h; libc has no Rust type for it):
        // eight bytes, then a u32 of flags.
        buf.extend([
            family,        // rtm_family
            dst_len,       // rtm_dst_len
            0,             // rtm_src_len
            0,             // rtm_tos
            RT_TABLE_MAIN, // rtm_table
            RTPROT_STATIC, // rtm_protocol
            scope,         // rtm_scope
            RTN_UNICAST,   // rtm_type
        ]);
        buf.extend(0u32.to_ne_bytes()); // rtm_flags
        Message { buf }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.buf.extend((len as u16).to_ne_bytes());
        self.buf.extend(kind.to_ne_bytes());
        self.buf.extend(value);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self
    }

    /// Opens a nested attribute; returns where its header is, for `end`.
    fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend([0, 0]);
        self.buf.extend((kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Closes the nested attribute opened at `at`: writes its length.
    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Writes the message's length into `nlmsg_len`, its first field.
    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn family(prefix: &Cidr) -> u8 {
    match prefix {
        Cidr::V4(..) => libc::AF_INET as u8,
        Cidr::V6(..) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn route_message(kind: u16, flags: u16, prefix: &Cidr, hop: NextHop) -> Message {
    let scope = match hop {
        NextHop::Via(_) => RT_SCOPE_UNIVERSE,
        NextHop::Dev(_) => RT_SCOPE_LINK,
    };
    let mut msg = Message::new(kind, flags, family(prefix), prefix.prefix_len(), scope);
    msg.attr(RTA_DST, &prefix.addr_bytes());
    match hop {
        NextHop::Via(gw) => msg.attr(RTA_GATEWAY, &ip_bytes(gw)),
        NextHop::Dev(ifindex) => msg.attr(RTA_OIF, &ifindex.to_ne_bytes()),
    };
    msg
}

// ANCHOR: add_route_message
/// `RTM_NEWROUTE` for `prefix` via `hop`, whose packets coming in run
/// `prog_fd` (named `prog_name`, as `ip route` shows it). It creates a
/// route and replaces none: an existing route to the prefix fails with
/// EEXIST.
pub fn add_route_message(prefix: &Cidr, hop: NextHop, prog_fd: i32, prog_name: &str) -> Vec<u8> {
    let mut msg = route_message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, prefix, hop);
    msg.attr(RTA_ENCAP_TYPE, &LWTUNNEL_ENCAP_BPF.to_ne_bytes());
    let encap = msg.begin(RTA_ENCAP);
    let input = msg.begin(LWT_BPF_IN);
    msg.attr(LWT_BPF_PROG_FD, &prog_fd.to_ne_bytes());
    let mut name = prog_name.as_bytes().to_vec();
    name.push(0);
    msg.attr(LWT_BPF_PROG_NAME, &name);
    msg.end(input);
    msg.end(encap);
    msg.finish()
}
// ANCHOR_END: add_route_message

/// `RTM_DELROUTE` for the route [`add_route_message`] added.
pub fn del_route_message(prefix: &Cidr, hop: NextHop) -> Vec<u8> {
    route_message(RTM_DELROUTE, 0, prefix, hop).finish()
}

/// Sends one request on a new rtnetlink socket (in the calling thread's
/// network namespace) and waits for the kernel's acknowledgement.
pub fn request(msg: &[u8]) -> io::Result<()> {
    // SAFETY: socket(2) returns a new fd that we own, or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: msg is a valid buffer; the kernel is the destination (a
    // zeroed sockaddr_nl).
    let sent = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 4096];
    // SAFETY: recv writes at most reply.len() bytes into reply.
    let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_ack(&reply[..n as usize])
}

/// The acknowledgement: an NLMSG_ERROR message whose error is 0, or minus
/// the errno the request failed with.
fn parse_ack(reply: &[u8]) -> io::Result<()> {
    // A struct nlmsghdr, then (for NLMSG_ERROR) a struct nlmsgerr whose
    // first field is the error.
    const HEADER: usize = std::mem::size_of::<libc::nlmsghdr>();
    let field = |at: usize| reply.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    match (kind, field(HEADER)) {
        (Some(NLMSG_ERROR), Some(error)) => match i32::from_ne_bytes(error) {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(-e)),
        },
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no netlink acknowledgement",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attributes of a message, as (type, value) pairs, from `at`.
    fn attrs(buf: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while at + 4 <= buf.len() {
            let len = u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]);
            out.push((kind, buf[at + 4..at + len].to_vec()));
            at += len.next_multiple_of(4);
        }
        out
    }

    #[test]
    fn add_route_with_a_bpf_encap() {
        let prefix: Cidr = "10.30.0.0/24".parse().unwrap();
        let hop = NextHop::Via("10.12.0.2".parse().unwrap());
        let msg = add_route_message(&prefix, hop, 7, "lwt_in_filter");
        assert_eq!(
            u32::from_ne_bytes(msg[..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), RTM_NEWROUTE);
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // rtmsg: AF_INET, /24, main table, static, universe, unicast.
        assert_eq!(&msg[16..24], &[2, 24, 0, 0, 254, 4, 0, 1]);
        let top = attrs(&msg, 28);
        assert_eq!(top[0], (RTA_DST, vec![10, 30, 0, 0]));
        assert_eq!(top[1], (RTA_GATEWAY, vec![10, 12, 0, 2]));
        assert_eq!(
            top[2],
            (RTA_ENCAP_TYPE, LWTUNNEL_ENCAP_BPF.to_ne_bytes().to_vec())
        );
        assert_eq!(top[3].0, RTA_ENCAP | NLA_F_NESTED);
        let encap = attrs(&top[3].1, 0);
        assert_eq!(encap.len(), 1);
        assert_eq!(encap[0].0, LWT_BPF_IN | NLA_F_NESTED);
        let input = attrs(&encap[0].1, 0);
        assert_eq!(input[0], (LWT_BPF_PROG_FD, 7i32.to_ne_bytes().to_vec()));
        assert_eq!(input[1], (LWT_BPF_PROG_NAME, b"lwt_in_filter\0".to_vec()));
    }

    #[test]
    fn delete_route_and_acks() {
        let prefix: Cidr = "2001:db8:30::/64".parse().unwrap();
        let msg = del_route_message(&prefix, NextHop::Dev(3));
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), RTM_DELROUTE);
        assert_eq!(&msg[16..24], &[10, 64, 0, 0, 254, 4, 253, 1]);
        let top = attrs(&msg, 28);
        assert_eq!(top[0].1.len(), 16);
        assert_eq!(top[1], (RTA_OIF, 3u32.to_ne_bytes().to_vec()));
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_ack(&ack).is_ok());
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(
            parse_ack(&ack).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
    }
}
