//! One line per captured frame, tcpdump's way: time, addresses and ports,
//! protocol, length on the wire (and how much was captured, if less).

use std::fmt::Write;
use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket};
use serde::Serialize;

use learning_ebpf_rs::report;

/// A frame as it came off the socket.
pub struct Frame<'a> {
    /// The captured bytes: at most the snap length.
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub len: u32,
    /// A VLAN tag the driver took out of the frame (in the socket's
    /// metadata, not in `data`).
    pub vlan: Option<u16>,
}

/// What the line says about a frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub vlan: Option<u16>,
    /// "IP", "IP6", "ARP", or "ethertype 0x...."
    pub family: String,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub proto: Option<&'static str>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub len: u32,
    pub captured: usize,
}

fn proto_name(n: u8) -> &'static str {
    match n {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "icmp6",
        _ => "ip-proto",
    }
}

pub fn summarize(frame: &Frame) -> Summary {
    let mut s = Summary {
        vlan: frame.vlan,
        family: "ethernet".into(),
        src: None,
        dst: None,
        proto: None,
        sport: None,
        dport: None,
        len: frame.len,
        captured: frame.data.len(),
    };
    let Ok(packet) = LaxSlicedPacket::from_ethernet(frame.data) else {
        return s; // shorter than an Ethernet header
    };
    if s.vlan.is_none() {
        s.vlan = packet.vlan_ids().first().map(|id| u16::from(*id));
    }
    if let Some(ether_type) = packet
        .link
        .as_ref()
        .and_then(|l| l.to_header())
        .and_then(|h| match h {
            etherparse::LinkHeader::Ethernet2(eth) => Some(eth.ether_type),
            _ => None,
        })
    {
        s.family = format!("ethertype {:#06x}", u16::from(ether_type));
    }
    let payload = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            s.family = "IP".into();
            s.src = Some(IpAddr::V4(h.source_addr()));
            s.dst = Some(IpAddr::V4(h.destination_addr()));
            Some(ip.payload())
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            s.family = "IP6".into();
            s.src = Some(IpAddr::V6(h.source_addr()));
            s.dst = Some(IpAddr::V6(h.destination_addr()));
            Some(ip.payload())
        }
        Some(LaxNetSlice::Arp(_)) => {
            s.family = "ARP".into();
            None
        }
        None => None,
    };
    if let Some(payload) = payload {
        let n = payload.ip_number.0;
        s.proto = Some(proto_name(n));
        // The ports are the first four bytes of TCP and UDP, read here
        // even when the snap length cut the rest of the header off.
        if (n == 6 || n == 17) && !payload.fragmented && payload.payload.len() >= 4 {
            let p = payload.payload;
            s.sport = Some(u16::from_be_bytes([p[0], p[1]]));
            s.dport = Some(u16::from_be_bytes([p[2], p[3]]));
        }
    }
    s
}

fn endpoint(addr: Option<IpAddr>, port: Option<u16>) -> String {
    match (addr, port) {
        (Some(a), Some(p)) => format!("{a}.{p}"),
        (Some(a), None) => a.to_string(),
        _ => String::new(),
    }
}

/// `13:31:02.123456 IP 10.0.0.1.40000 > 10.0.0.2.9000: udp, length 74`
pub fn line(s: &Summary, time: &str) -> String {
    let mut out = format!("{time} ");
    if let Some(v) = s.vlan {
        let _ = write!(out, "vlan {v}, ");
    }
    out.push_str(&s.family);
    if s.src.is_some() {
        let _ = write!(
            out,
            " {} > {}:",
            endpoint(s.src, s.sport),
            endpoint(s.dst, s.dport)
        );
    } else {
        out.push(',');
    }
    if let Some(p) = s.proto {
        let _ = write!(out, " {p},");
    }
    let _ = write!(out, " length {}", s.len);
    if s.captured < s.len as usize {
        let _ = write!(out, ", captured {}", s.captured);
    }
    out
}

/// The same as one JSON object (absent fields are null).
#[derive(Serialize)]
pub struct FrameReport<'a> {
    time: &'a str,
    vlan: Option<u16>,
    family: &'a str,
    src: Option<IpAddr>,
    sport: Option<u16>,
    dst: Option<IpAddr>,
    dport: Option<u16>,
    proto: Option<&'static str>,
    length: u32,
    captured: usize,
}

impl<'a> FrameReport<'a> {
    pub fn new(s: &'a Summary, time: &'a str) -> FrameReport<'a> {
        FrameReport {
            time,
            vlan: s.vlan,
            family: &s.family,
            src: s.src,
            sport: s.sport,
            dst: s.dst,
            dport: s.dport,
            proto: s.proto,
            length: s.len,
            captured: s.captured,
        }
    }
}

/// The time of day now, HH:MM:SS.micros, as tcpdump prints it.
pub fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:06}",
        report::local_time(now.as_secs() as libc::time_t),
        now.subsec_micros()
    )
}
