//! Generated test frames for the differential test: proptest strategies for
//! a frame's structure, and a builder that serialises each header with
//! etherparse and remembers where each header ends, so that a frame can be
//! cut exactly at (or one byte around) any header boundary.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type,
    IpAuthHeader, IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, UdpHeader, VlanId, VlanPcp,
};
use proptest::prelude::*;

use learning_ebpf_rs::cidr::{mask_bits, Cidr};

/// Sources the frames come from: some share a /24 or a /64, so prefixes and
/// rate-limit keys overlap in interesting ways.
pub fn source_pool() -> Vec<IpAddr> {
    let v4 = [
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        [10, 0, 1, 1],
        [10, 0, 1, 200],
        [192, 0, 2, 1],
        [192, 0, 2, 77],
        [198, 51, 100, 5],
        [203, 0, 113, 9],
    ];
    let v6 = [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:0:1::1",
        "2001:db8:1::5",
        "fd00::1",
        "fd00::2",
        "2001:db8:ffff::1",
        "2001:db8:ffff::1:0:0:1",
    ];
    v4.iter()
        .map(|a| IpAddr::V4(Ipv4Addr::from(*a)))
        .chain(
            v6.iter()
                .map(|a| IpAddr::V6(a.parse::<Ipv6Addr>().unwrap())),
        )
        .collect()
}

#[derive(Clone, Copy, Debug)]
pub enum Frag {
    None,
    First,
    Later,
}

#[derive(Clone, Debug)]
pub enum Ext {
    /// Hop-by-Hop, Routing or Destination Options (protocol number, 8-byte units - 1).
    Opts(u8, u8),
    Auth,
    Fragment(bool),
}

#[derive(Clone, Copy, Debug)]
pub enum L4 {
    /// TCP with this many 4-byte option words.
    Tcp(u8),
    Udp,
    Icmp,
    Icmpv6,
    /// A protocol the firewall does not look into (GRE, SCTP, No Next Header...).
    Other(u8),
}

#[derive(Clone, Debug)]
pub enum Body {
    Ip {
        /// Index into the source pool (even: first half v4, second half v6).
        src: usize,
        /// IPv4 option words (0..=10); ignored for IPv6.
        opts: u8,
        frag: Frag,
        /// IPv6 extension headers, in order; ignored for IPv4.
        exts: Vec<Ext>,
        l4: L4,
        payload: u8,
    },
    NonIp(u16),
    Random(Vec<u8>),
}

/// Breaking a frame after it is built.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    None,
    /// Cut at header boundary `n` (modulo their number), plus -1, 0 or +1.
    Cut(usize, i8),
    /// Overwrite the IP version nibble.
    Version(u8),
    /// Overwrite the IPv4 IHL (0..=4 is invalid).
    Ihl(u8),
    /// Overwrite the TCP data offset.
    TcpDoff(u8),
}

#[derive(Clone, Debug)]
pub struct FrameSpec {
    /// VLAN tags, 0..=3 (3 is one more than the parser walks).
    pub vlans: u8,
    pub body: Body,
    pub damage: Damage,
}

fn ext_strategy() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (prop_oneof![Just(0u8), Just(43), Just(60)], 0u8..3).prop_map(|(p, l)| Ext::Opts(p, l)),
        Just(Ext::Auth),
        any::<bool>().prop_map(Ext::Fragment),
    ]
}

fn l4_strategy() -> impl Strategy<Value = L4> {
    prop_oneof![
        3 => (0u8..4).prop_map(L4::Tcp),
        3 => Just(L4::Udp),
        1 => Just(L4::Icmp),
        1 => Just(L4::Icmpv6),
        1 => prop_oneof![Just(47u8), Just(132), Just(59)].prop_map(L4::Other),
    ]
}

fn frag_strategy() -> impl Strategy<Value = Frag> {
    prop_oneof![8 => Just(Frag::None), 1 => Just(Frag::First), 1 => Just(Frag::Later)]
}

pub fn frame_strategy() -> impl Strategy<Value = FrameSpec> {
    // Half the frames come from two hot sources (one v4, one v6), as in a
    // flood; the rest from anywhere in the pool.
    let ip = (
        prop_oneof![1 => Just(0usize), 1 => Just(8usize), 2 => 0usize..16],
        prop_oneof![3 => Just(0u8), 1 => 1u8..=10],
        frag_strategy(),
        prop_oneof![3 => Just(vec![]), 2 => prop::collection::vec(ext_strategy(), 1..=7)],
        l4_strategy(),
        0u8..32,
    )
        .prop_map(|(src, opts, frag, exts, l4, payload)| Body::Ip {
            src,
            opts,
            frag,
            exts,
            l4,
            payload,
        });
    let body = prop_oneof![
        12 => ip,
        1 => prop_oneof![Just(0x0806u16), Just(0x88cc), Just(0x8847)].prop_map(Body::NonIp),
        1 => prop::collection::vec(any::<u8>(), 14..80).prop_map(Body::Random),
    ];
    let damage = prop_oneof![
        8 => Just(Damage::None),
        4 => (0usize..16, -1i8..=1).prop_map(|(n, d)| Damage::Cut(n, d)),
        1 => (0u8..16).prop_map(Damage::Version),
        1 => (0u8..5).prop_map(Damage::Ihl),
        1 => (0u8..5).prop_map(Damage::TcpDoff),
    ];
    (
        prop_oneof![6 => Just(0u8), 2 => Just(1), 2 => Just(2), 1 => Just(3)],
        body,
        damage,
    )
        .prop_map(|(vlans, body, damage)| FrameSpec {
            vlans,
            body,
            damage,
        })
}

/// A prefix that contains pool address `src` (lengths that make matches
/// and near-misses likely).
pub fn prefix_strategy() -> impl Strategy<Value = Cidr> {
    (0usize..16, 0usize..4).prop_map(|(src, len_idx)| {
        let addr = source_pool()[src];
        let (bytes, lens): (Vec<u8>, [u8; 4]) = match addr {
            IpAddr::V4(a) => (a.octets().to_vec(), [8, 16, 24, 32]),
            IpAddr::V6(a) => (a.octets().to_vec(), [32, 48, 64, 128]),
        };
        let len = lens[len_idx];
        Cidr::from_parts(&mask_bits(&bytes, len), len).unwrap()
    })
}

const MAC_SRC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const MAC_DST: [u8; 6] = [2, 0, 0, 0, 0, 0xa];

/// Builds the frame. Returns its bytes and the offset at which each header
/// ends (the places worth cutting at).
pub fn build(spec: &FrameSpec) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut ip_at = None;
    let mut tcp_at = None;

    let (inner_type, l3): (u16, Option<&Body>) = match &spec.body {
        Body::Ip { src, .. } => match source_pool()[*src] {
            IpAddr::V4(_) => (0x0800, Some(&spec.body)),
            IpAddr::V6(_) => (0x86dd, Some(&spec.body)),
        },
        Body::NonIp(t) => (*t, None),
        Body::Random(bytes) => {
            return (bytes.clone(), vec![bytes.len()]);
        }
    };

    // Ethernet and VLAN tags: each header names the type of the next.
    let tag_types = [0x88a8u16, 0x8100, 0x8100];
    let mut types: Vec<u16> = tag_types[3 - usize::from(spec.vlans)..].to_vec();
    types.push(inner_type);
    let eth = Ethernet2Header {
        source: MAC_SRC,
        destination: MAC_DST,
        ether_type: EtherType(types[0]),
    };
    out.extend_from_slice(&eth.to_bytes());
    ends.push(out.len());
    for (i, next) in types[1..].iter().enumerate() {
        let tag = SingleVlanHeader {
            pcp: VlanPcp::ZERO,
            drop_eligible_indicator: false,
            vlan_id: VlanId::try_new(100 + i as u16).unwrap(),
            ether_type: EtherType(*next),
        };
        out.extend_from_slice(&tag.to_bytes());
        ends.push(out.len());
    }

    if let Some(Body::Ip {
        src,
        opts,
        frag,
        exts,
        l4,
        payload,
    }) = l3
    {
        let l4_proto = match l4 {
            L4::Tcp(_) => 6,
            L4::Udp => 17,
            L4::Icmp => 1,
            L4::Icmpv6 => 58,
            L4::Other(p) => *p,
        };
        let l4_bytes: Vec<u8> = match l4 {
            L4::Tcp(words) => {
                let mut tcp = TcpHeader::new(40000, 80, 1, 1024);
                tcp.syn = true;
                tcp.set_options_raw(&vec![1u8; usize::from(*words) * 4])
                    .unwrap();
                tcp.to_bytes().to_vec()
            }
            L4::Udp => UdpHeader {
                source_port: 40000,
                destination_port: 53,
                length: 8 + u16::from(*payload),
                checksum: 0,
            }
            .to_bytes()
            .to_vec(),
            L4::Icmp => {
                Icmpv4Header::new(Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 1 }))
                    .to_bytes()
                    .to_vec()
            }
            L4::Icmpv6 => {
                Icmpv6Header::new(Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 1 }))
                    .to_bytes()
                    .to_vec()
            }
            L4::Other(_) => vec![0u8; 4],
        };
        let payload_len = l4_bytes.len() + usize::from(*payload);
        ip_at = Some(out.len());
        match source_pool()[*src] {
            IpAddr::V4(a) => {
                let mut ip = Ipv4Header::new(
                    payload_len as u16,
                    64,
                    IpNumber(l4_proto),
                    a.octets(),
                    [10, 11, 0, 1],
                )
                .unwrap();
                ip.options = Ipv4Options::try_from(&vec![1u8; usize::from(*opts) * 4][..]).unwrap();
                match frag {
                    Frag::None => {}
                    Frag::First => ip.more_fragments = true,
                    Frag::Later => ip.fragment_offset = IpFragOffset::try_new(64).unwrap(),
                }
                out.extend_from_slice(&ip.to_bytes());
                ends.push(out.len());
            }
            IpAddr::V6(a) => {
                // The chain: each extension header names the next one.
                let mut chain: Vec<(u8, Vec<u8>)> = Vec::new(); // (own number, bytes without next)
                for ext in exts {
                    let (num, bytes) = match ext {
                        Ext::Opts(p, units) => {
                            let body = vec![0u8; usize::from(*units) * 8 + 6];
                            let h = Ipv6RawExtHeader::new_raw(IpNumber(0), &body).unwrap();
                            (*p, h.to_bytes().to_vec())
                        }
                        Ext::Auth => {
                            let h = IpAuthHeader::new(IpNumber(0), 1, 1, &[0u8; 4]).unwrap();
                            (51, h.to_bytes().to_vec())
                        }
                        Ext::Fragment(later) => {
                            let off = if *later { 64 } else { 0 };
                            let h = Ipv6FragmentHeader::new(
                                IpNumber(0),
                                IpFragOffset::try_new(off).unwrap(),
                                !*later,
                                9,
                            );
                            (44, h.to_bytes().to_vec())
                        }
                    };
                    chain.push((num, bytes));
                }
                if !matches!(frag, Frag::None)
                    && !exts.iter().any(|e| matches!(e, Ext::Fragment(_)))
                {
                    let later = matches!(frag, Frag::Later);
                    let h = Ipv6FragmentHeader::new(
                        IpNumber(0),
                        IpFragOffset::try_new(if later { 64 } else { 0 }).unwrap(),
                        !later,
                        9,
                    );
                    chain.push((44, h.to_bytes().to_vec()));
                }
                let exts_len: usize = chain.iter().map(|(_, b)| b.len()).sum();
                let first = chain.first().map_or(l4_proto, |(n, _)| *n);
                let ip = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: (exts_len + payload_len) as u16,
                    next_header: IpNumber(first),
                    hop_limit: 64,
                    source: a.octets(),
                    destination: "fd00:11::1".parse::<Ipv6Addr>().unwrap().octets(),
                };
                out.extend_from_slice(&ip.to_bytes());
                ends.push(out.len());
                for i in 0..chain.len() {
                    let next = chain.get(i + 1).map_or(l4_proto, |(n, _)| *n);
                    let mut bytes = chain[i].1.clone();
                    bytes[0] = next; // every extension header starts with Next Header
                    out.extend_from_slice(&bytes);
                    ends.push(out.len());
                }
            }
        }
        if matches!(l4, L4::Tcp(_)) {
            tcp_at = Some(out.len());
        }
        out.extend_from_slice(&l4_bytes);
        ends.push(out.len());
        out.extend(std::iter::repeat_n(0x5a, usize::from(*payload)));
        ends.push(out.len());
    }

    match spec.damage {
        Damage::None => {}
        Damage::Cut(n, delta) => {
            let at = ends[n % ends.len()] as isize + isize::from(delta);
            out.truncate(at.clamp(14, out.len() as isize) as usize);
        }
        Damage::Version(v) => {
            if let Some(at) = ip_at {
                out[at] = (v << 4) | (out[at] & 0x0f);
            }
        }
        Damage::Ihl(ihl) => {
            if let (Some(at), 0x0800) = (ip_at, inner_type) {
                out[at] = (out[at] & 0xf0) | ihl;
            }
        }
        Damage::TcpDoff(doff) => {
            if let Some(at) = tcp_at {
                out[at + 12] = (doff << 4) | (out[at + 12] & 0x0f);
            }
        }
    }
    (out, ends)
}
