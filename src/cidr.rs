//! IPv4 and IPv6 prefixes as typed on the command line: `10.0.0.0/8`,
//! `2001:db8::/32`, or a bare address (a /32 or /128).
//!
//! A prefix with host bits set (`10.0.0.1/8`) is rejected rather than
//! silently normalised: the user may have meant the host, or the network, and
//! a firewall should not guess which.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cidr {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Cidr {
    pub fn prefix_len(&self) -> u8 {
        match self {
            Cidr::V4(_, len) | Cidr::V6(_, len) => *len,
        }
    }

    /// The address bytes, network order (4 or 16 of them).
    pub fn addr_bytes(&self) -> Vec<u8> {
        match self {
            Cidr::V4(a, _) => a.octets().to_vec(),
            Cidr::V6(a, _) => a.octets().to_vec(),
        }
    }

    /// True when `addr` lies inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Cidr::V4(net, len), IpAddr::V4(a)) => {
                mask_bits(&a.octets(), *len) == net.octets().to_vec()
            }
            (Cidr::V6(net, len), IpAddr::V6(a)) => {
                mask_bits(&a.octets(), *len) == net.octets().to_vec()
            }
            _ => false,
        }
    }

    /// Builds a prefix from raw parts (as read back from a map), clearing
    /// nothing: callers pass what was stored.
    pub fn from_parts(addr: &[u8], len: u8) -> Option<Cidr> {
        match addr.len() {
            4 if len <= 32 => Some(Cidr::V4(
                Ipv4Addr::from(<[u8; 4]>::try_from(addr).ok()?),
                len,
            )),
            16 if len <= 128 => Some(Cidr::V6(
                Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?),
                len,
            )),
            _ => None,
        }
    }
}

impl Cidr {
    /// The key of an LPM trie map for this prefix, in the kernel's
    /// `struct bpf_lpm_trie_key_u8` layout: the prefix length as a host-order
    /// u32, then the address bytes in network order.
    pub fn lpm_key(&self) -> Vec<u8> {
        let mut key = u32::from(self.prefix_len()).to_ne_bytes().to_vec();
        key.extend(self.addr_bytes());
        key
    }

    /// The prefix an LPM trie key (as [`Cidr::lpm_key`] makes) stands for.
    pub fn from_lpm_key(key: &[u8]) -> Option<Cidr> {
        let len = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
        Cidr::from_parts(&key[4..], u8::try_from(len).ok()?)
    }
}

/// `addr` as IPv6 (IPv4 mapped: ::ffff:a.b.c.d), as four words in network
/// byte order: how programs that serve both families compare addresses.
pub fn mapped_words(addr: IpAddr) -> [u32; 4] {
    let v6 = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let o = v6.octets();
    std::array::from_fn(|i| {
        u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

/// `bytes` with every bit after the first `len` cleared.
pub fn mask_bits(bytes: &[u8], len: u8) -> Vec<u8> {
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let keep = (len as usize).saturating_sub(i * 8).min(8);
            if keep == 0 {
                0
            } else {
                b & (0xffu8 << (8 - keep))
            }
        })
        .collect()
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr_str, len_str) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_str
            .parse()
            .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_str {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{s}': the prefix length must be 0 to {max}")),
            },
        };
        let bytes = match addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let masked = mask_bits(&bytes, len);
        let cidr = Cidr::from_parts(&masked, len).expect("length checked above");
        if masked != bytes {
            return Err(format!(
                "'{s}' has host bits set; did you mean {cidr} (the network) or the address alone?"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4(a, l) => write!(f, "{a}/{l}"),
            Cidr::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_bare_addresses() {
        assert_eq!(
            "10.0.0.0/8".parse(),
            Ok(Cidr::V4(Ipv4Addr::new(10, 0, 0, 0), 8))
        );
        assert_eq!(
            "192.0.2.7".parse(),
            Ok(Cidr::V4(Ipv4Addr::new(192, 0, 2, 7), 32))
        );
        assert_eq!(
            "2001:db8::/32".parse(),
            Ok(Cidr::V6("2001:db8::".parse().unwrap(), 32))
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix_len(), 0);
    }

    #[test]
    fn rejects_host_bits_with_a_suggestion() {
        let err = "10.0.0.1/8".parse::<Cidr>().unwrap_err();
        assert!(
            err.contains("host bits") && err.contains("10.0.0.0/8"),
            "{err}"
        );
        let err = "2001:db8::1/64".parse::<Cidr>().unwrap_err();
        assert!(err.contains("2001:db8::/64"), "{err}");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "host",
            "10.0.0.0/-1",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn lpm_key_round_trips() {
        for text in ["10.0.0.0/8", "192.0.2.1", "2001:db8::/48", "::/0"] {
            let cidr: Cidr = text.parse().unwrap();
            assert_eq!(Cidr::from_lpm_key(&cidr.lpm_key()), Some(cidr));
        }
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().lpm_key().len(), 8);
    }

    #[test]
    fn contains() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
    }
}
