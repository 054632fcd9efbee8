//! Test packets, built with etherparse rather than written out as bytes:
//! frames with VLAN tags, IP options and extension headers for the parsers'
//! tests ([`packet`]), and plain IPv4 TCP or UDP frames between two given
//! endpoints for the benchmarks and translation tests ([`ipv4`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Ethernet2Header, IpFragOffset, IpHeaders,
    IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FragmentHeader,
    Ipv6Header, Ipv6RawExtHeader, PacketBuilder, SingleVlanHeader, VlanId, VlanPcp,
};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
pub const V4_SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const V4_DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// VLAN tags in front of the IP header.
#[derive(Clone, Copy, Debug)]
pub enum Vlan {
    None,
    /// One 802.1Q tag.
    Single,
    /// QinQ: an 802.1ad outer tag and an 802.1Q inner tag.
    Double,
}

/// The transport part of a test packet.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Tcp { sport: u16, dport: u16 },
    Udp { sport: u16, dport: u16 },
    IcmpEcho,
    Icmpv6Echo,
}

/// Options for the IP layer.
#[derive(Clone, Debug, Default)]
pub struct IpOpts {
    /// IPv6 instead of IPv4.
    pub v6: bool,
    /// IPv4 options bytes (a multiple of 4, up to 40): makes IHL > 5.
    pub v4_options: Vec<u8>,
    /// IPv6 Hop-by-Hop and Destination Options headers before L4.
    pub v6_ext_headers: bool,
    /// A fragment: (offset in 8-byte units, more fragments).
    pub fragment: Option<(u16, bool)>,
}

fn vlan_tag(id: u16) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::ZERO,
        drop_eligible_indicator: false,
        vlan_id: VlanId::try_new(id).unwrap(),
        ether_type: EtherType(0),
    }
}

fn ip_headers(opts: &IpOpts) -> IpHeaders {
    let frag = opts
        .fragment
        .map(|(off, more)| (IpFragOffset::try_new(off).unwrap(), more));
    if opts.v6 {
        let mut exts = Ipv6Extensions::default();
        if opts.v6_ext_headers {
            let pad = [1u8, 4, 0, 0, 0, 0]; // a PadN option filling 6 bytes
            exts.hop_by_hop_options = Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &pad).unwrap());
            exts.destination_options = Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &pad).unwrap());
        }
        if let Some((offset, more)) = frag {
            exts.fragment = Some(Ipv6FragmentHeader::new(IpNumber(0), offset, more, 7));
        }
        let header = Ipv6Header {
            hop_limit: 64,
            source: V6_SRC.octets(),
            destination: V6_DST.octets(),
            ..Default::default()
        };
        IpHeaders::Ipv6(header, exts)
    } else {
        let mut header =
            Ipv4Header::new(0, 64, IpNumber(0), V4_SRC.octets(), V4_DST.octets()).unwrap();
        header.options = Ipv4Options::try_from(&opts.v4_options[..]).unwrap();
        if let Some((offset, more)) = frag {
            header.fragment_offset = offset;
            header.more_fragments = more;
        }
        IpHeaders::Ipv4(header, Ipv4Extensions::default())
    }
}

/// An Ethernet frame: optional VLAN tags, IPv4 or IPv6, then `l4` and
/// `payload`. Checksums and lengths are filled in by etherparse.
pub fn packet(vlan: Vlan, ip: &IpOpts, l4: L4, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_B, MAC_A);
    let ip_step = match vlan {
        Vlan::None => eth.ip(ip_headers(ip)),
        Vlan::Single => eth
            .single_vlan(VlanId::try_new(100).unwrap())
            .ip(ip_headers(ip)),
        Vlan::Double => eth
            .double_vlan(VlanId::try_new(200).unwrap(), VlanId::try_new(100).unwrap())
            .ip(ip_headers(ip)),
    };
    let mut out = Vec::new();
    match l4 {
        L4::Tcp { sport, dport } => ip_step
            .tcp(sport, dport, 1, 64240)
            .syn()
            .write(&mut out, payload),
        L4::Udp { sport, dport } => ip_step.udp(sport, dport).write(&mut out, payload),
        L4::IcmpEcho => ip_step.icmpv4_echo_request(1, 1).write(&mut out, payload),
        L4::Icmpv6Echo => ip_step.icmpv6_echo_request(1, 1).write(&mut out, payload),
    }
    .unwrap();
    out
}

/// A plain packet with no VLAN tag and no IP options.
pub fn simple(v6: bool, l4: L4) -> Vec<u8> {
    let ip = IpOpts {
        v6,
        ..Default::default()
    };
    packet(Vlan::None, &ip, l4, b"hello")
}

/// An ARP request: the "not IP" case.
pub fn arp() -> Vec<u8> {
    let eth = Ethernet2Header {
        source: MAC_B,
        destination: [0xff; 6],
        ether_type: EtherType::ARP,
    };
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &MAC_B,
        &V4_SRC.octets(),
        &[0; 6],
        &V4_DST.octets(),
    )
    .unwrap();
    let mut out = eth.to_bytes().to_vec();
    out.extend_from_slice(&arp.to_bytes());
    out
}

/// A frame with three stacked 802.1Q tags in front of an IPv4/UDP packet:
/// one more than the parsers walk.
pub fn triple_vlan(dport: u16) -> Vec<u8> {
    let inner = packet(
        Vlan::Double,
        &IpOpts::default(),
        L4::Udp { sport: 1000, dport },
        b"x",
    );
    // Insert a third tag right after the MAC addresses.
    let mut tag = vlan_tag(300);
    tag.ether_type = EtherType(u16::from_be_bytes([inner[12], inner[13]]));
    let mut out = inner[..12].to_vec();
    out.extend_from_slice(&EtherType::VLAN_TAGGED_FRAME.0.to_be_bytes());
    out.extend_from_slice(&tag.to_bytes());
    out.extend_from_slice(&inner[14..]);
    out
}

/// An untagged IPv6 frame to `l4` behind `n` Destination Options headers
/// (8 bytes each, padding only): a chain as long as a test needs.
pub fn v6_chain(n: usize, l4: L4) -> Vec<u8> {
    let plain = simple(true, l4);
    let (eth_ip, upper) = plain.split_at(14 + 40);
    let mut out = eth_ip.to_vec();
    let upper_proto = out[14 + 6]; // the IPv6 header's Next Header
    if n > 0 {
        out[14 + 6] = 60; // Destination Options
    }
    for i in 0..n {
        let next = if i + 1 == n { upper_proto } else { 60 };
        // Next Header, length 0 (8 bytes in all), a PadN option of 6.
        out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.extend_from_slice(upper);
    let payload_len = (out.len() - 14 - 40) as u16;
    out[14 + 4..14 + 6].copy_from_slice(&payload_len.to_be_bytes());
    out
}

/// What an [`ipv4`] frame carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Segment {
    /// A TCP SYN (sequence number 1000): a new connection.
    Syn,
    /// A TCP ACK of the SYN's answer (sequence number 1001): a known one.
    Ack,
    Udp,
}

/// An IPv4 frame from `src` to `dst`, from MAC address `src_mac` to
/// `dst_mac`, with `payload` after the TCP or UDP header. Checksums and
/// lengths are filled in by etherparse.
pub fn ipv4(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: SocketAddrV4,
    dst: SocketAddrV4,
    segment: Segment,
    payload: &[u8],
) -> Vec<u8> {
    let ip =
        PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(src.ip().octets(), dst.ip().octets(), 64);
    let mut out = Vec::new();
    match segment {
        Segment::Syn => ip
            .tcp(src.port(), dst.port(), 1000, 64240)
            .syn()
            .write(&mut out, payload),
        Segment::Ack => ip
            .tcp(src.port(), dst.port(), 1001, 64240)
            .ack(1)
            .write(&mut out, payload),
        Segment::Udp => ip.udp(src.port(), dst.port()).write(&mut out, payload),
    }
    .expect("etherparse writes into a Vec");
    out
}
