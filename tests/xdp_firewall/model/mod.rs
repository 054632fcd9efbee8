//! A reference model of xdp_firewall's policy, written independently of the
//! C: its own byte-level parser, longest-prefix matching over plain lists,
//! and GCRA on a HashMap. The differential test feeds the same frames to the
//! model and to the real program and demands the same answers.
//!
//! The model describes what the firewall *should* do, rule by rule:
//!
//! 1. Malformed frames are dropped: shorter than Ethernet, a cut VLAN tag,
//!    more than two VLAN tags, an IP header that is cut, has the wrong
//!    version or an IHL below 5, an IPv6 extension chain that is cut or
//!    longer than five headers, or (unless it is a later fragment) a TCP,
//!    UDP, ICMP or ICMPv6 header that is cut (TCP: including its options).
//! 2. Non-IP frames pass.
//! 3. A source inside an allowlist prefix passes (and is not rate limited).
//! 4. A source inside a blocklist prefix is dropped; the most specific
//!    matching prefix counts the hit.
//! 5. With a rate limit, each source (IPv4 address, or IPv6 /64) may send
//!    `burst` packets at once and then one per interval (GCRA).
#![allow(dead_code)]

pub mod frames;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use learning_ebpf_rs::cidr::Cidr;

/// The verdict reasons, numbered as `enum fw_reason` in the C header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Pass = 0,
    Allowed = 1,
    Blocked = 2,
    RateLimited = 3,
    Malformed = 4,
}

pub const REASONS: [Reason; 5] = [
    Reason::Pass,
    Reason::Allowed,
    Reason::Blocked,
    Reason::RateLimited,
    Reason::Malformed,
];

impl Reason {
    /// The XDP action the program returns for this reason.
    pub fn xdp_action(self) -> i32 {
        const XDP_DROP: i32 = 1;
        const XDP_PASS: i32 = 2;
        match self {
            Reason::Pass | Reason::Allowed => XDP_PASS,
            _ => XDP_DROP,
        }
    }
}

/// Rate limit configuration, in the program's own terms.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateConfig {
    /// 0: no limit; otherwise 1 s / pps.
    pub interval_ns: u64,
    /// (burst - 1) * interval.
    pub tolerance_ns: u64,
}

impl RateConfig {
    pub fn new(pps: u64, burst: u64) -> RateConfig {
        let interval_ns = 1_000_000_000 / pps;
        RateConfig {
            interval_ns,
            tolerance_ns: (burst - 1) * interval_ns,
        }
    }
}

#[derive(Debug, Default)]
pub struct Model {
    pub allow: Vec<Cidr>,
    pub block: Vec<Cidr>,
    pub rate: RateConfig,
    /// GCRA theoretical arrival time per source key.
    tat: HashMap<[u8; 16], u64>,
    /// (packets, bytes) per reason.
    pub counters: [(u64, u64); 5],
    /// Hits per blocklist prefix.
    pub hits: HashMap<Cidr, u64>,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Rule 1's L4 part: is the header of `proto` at `pos` complete?
fn l4_complete(b: &[u8], pos: usize, proto: u8) -> bool {
    let need = match proto {
        6 => {
            if pos + 20 > b.len() {
                return false;
            }
            let len = usize::from(b[pos + 12] >> 4) * 4;
            if len < 20 {
                return false;
            }
            len
        }
        17 | 1 | 58 => 8,
        _ => return true,
    };
    pos + need <= b.len()
}

/// The source address of an IP frame, `Ok(None)` for a non-IP frame, or
/// `Err(())` for a malformed one.
pub fn parse(b: &[u8]) -> Result<Option<IpAddr>, ()> {
    if b.len() < 14 {
        return Err(());
    }
    let mut proto = be16(b, 12);
    let mut pos = 14;
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        if pos + 4 > b.len() {
            return Err(());
        }
        proto = be16(b, pos + 2);
        pos += 4;
    }
    match proto {
        ETH_P_IP => {
            if pos + 20 > b.len() || b[pos] >> 4 != 4 {
                return Err(());
            }
            let hdr = usize::from(b[pos] & 0xf) * 4;
            if hdr < 20 || pos + hdr > b.len() {
                return Err(());
            }
            let l4 = b[pos + 9];
            let later_fragment = be16(b, pos + 6) & 0x1fff != 0;
            let src = Ipv4Addr::new(b[pos + 12], b[pos + 13], b[pos + 14], b[pos + 15]);
            if !later_fragment && !l4_complete(b, pos + hdr, l4) {
                return Err(());
            }
            Ok(Some(IpAddr::V4(src)))
        }
        ETH_P_IPV6 => {
            if pos + 40 > b.len() || b[pos] >> 4 != 6 {
                return Err(());
            }
            let src: [u8; 16] = b[pos + 8..pos + 24].try_into().unwrap();
            let mut next = b[pos + 6];
            pos += 40;
            let mut later_fragment = false;
            let mut upper = None;
            for _ in 0..6 {
                match next {
                    0 | 43 | 60 | 135 => {
                        if pos + 2 > b.len() {
                            return Err(());
                        }
                        next = b[pos];
                        pos += (usize::from(b[pos + 1]) + 1) * 8;
                    }
                    51 => {
                        if pos + 2 > b.len() {
                            return Err(());
                        }
                        next = b[pos];
                        pos += (usize::from(b[pos + 1]) + 2) * 4;
                    }
                    44 => {
                        if pos + 8 > b.len() {
                            return Err(());
                        }
                        next = b[pos];
                        let offset = be16(b, pos + 2) & 0xfff8;
                        pos += 8;
                        if offset != 0 {
                            later_fragment = true;
                            upper = Some(next);
                            break;
                        }
                    }
                    other => {
                        upper = Some(other);
                        break;
                    }
                }
            }
            let Some(l4) = upper else {
                return Err(()); // chain longer than we walk
            };
            if !later_fragment && !l4_complete(b, pos, l4) {
                return Err(());
            }
            Ok(Some(IpAddr::V6(Ipv6Addr::from(src))))
        }
        ETH_P_8021Q | ETH_P_8021AD => Err(()), // a third tag
        _ => Ok(None),
    }
}

/// The rate-limit key: an IPv4 source as ::ffff:a.b.c.d, IPv6 by its /64.
pub fn rate_key(src: IpAddr) -> [u8; 16] {
    match src {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&a.octets()[..8]);
            key
        }
    }
}

fn longest_match(list: &[Cidr], src: IpAddr) -> Option<Cidr> {
    list.iter()
        .filter(|c| c.contains(src))
        .max_by_key(|c| c.prefix_len())
        .copied()
}

impl Model {
    pub fn new(allow: Vec<Cidr>, block: Vec<Cidr>, rate: RateConfig) -> Model {
        Model {
            allow,
            block,
            rate,
            ..Default::default()
        }
    }

    fn over_rate(&mut self, src: IpAddr, now: u64) -> bool {
        let key = rate_key(src);
        let Some(&old) = self.tat.get(&key) else {
            self.tat.insert(key, now + self.rate.interval_ns);
            return false;
        };
        let tat = old.max(now);
        if tat - now > self.rate.tolerance_ns {
            return true;
        }
        self.tat.insert(key, tat + self.rate.interval_ns);
        false
    }

    fn decide(&mut self, frame: &[u8], now: u64) -> Reason {
        let src = match parse(frame) {
            Err(()) => return Reason::Malformed,
            Ok(None) => return Reason::Pass,
            Ok(Some(src)) => src,
        };
        if longest_match(&self.allow, src).is_some() {
            return Reason::Allowed;
        }
        if let Some(prefix) = longest_match(&self.block, src) {
            *self.hits.entry(prefix).or_default() += 1;
            return Reason::Blocked;
        }
        if self.rate.interval_ns != 0 && self.over_rate(src, now) {
            return Reason::RateLimited;
        }
        Reason::Pass
    }

    /// The verdict for `frame` arriving at time `now` (ns), counted.
    pub fn process(&mut self, frame: &[u8], now: u64) -> Reason {
        let reason = self.decide(frame, now);
        let c = &mut self.counters[reason as usize];
        c.0 += 1;
        c.1 += frame.len() as u64;
        reason
    }
}
