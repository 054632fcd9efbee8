//! The policy given on the command line: `--deny ADDR[:PORT]` and
//! `--deny-path PATH` rules, numbered from 1, and the map keys the BPF side
//! looks them up by (`struct addr_key`, `struct file_key` in
//! bpf/lib/guard_types.h).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use crate::maps::bytes_of;

/// `struct addr_key`, the key of `deny_addrs` (the same in either skeleton).
pub type AddrKey = crate::skel::cgroup_guard::types::addr_key;
/// `struct file_key`, the key of lsm_guard's `deny_files`.
pub type FileKey = crate::skel::lsm_guard::types::file_key;
/// What a denied process tried (`enum guard_kind`): rule 0, the guard's
/// own refusal, is described by it.
pub type GuardKind = crate::skel::cgroup_guard::types::guard_kind;

/// A `--deny ADDR[:PORT]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrRule {
    pub addr: IpAddr,
    /// 0: every port.
    pub port: u16,
}

impl FromStr for AddrRule {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrRule, String> {
        let bad = || format!("'{s}' is not ADDR, ADDR:PORT or [IPv6]:PORT");
        if let Ok(sa) = SocketAddr::from_str(s) {
            if sa.port() == 0 {
                return Err(format!(
                    "'{s}': port 0 is not a port (leave it out for every port)"
                ));
            }
            return Ok(AddrRule {
                addr: sa.ip(),
                port: sa.port(),
            });
        }
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        let addr = IpAddr::from_str(bare.unwrap_or(s)).map_err(|_| bad())?;
        Ok(AddrRule { addr, port: 0 })
    }
}

impl fmt::Display for AddrRule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (self.addr, self.port) {
            (addr, 0) => write!(f, "{addr}"),
            (addr, port) => write!(f, "{}", SocketAddr::new(addr, port)),
        }
    }
}

/// An address as the BPF side keys it: IPv6, with IPv4 mapped into it.
fn as_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The address in network order as the four words of `addr_key.addr`
/// (and `denial.addr`): the bytes stay in the order they are sent.
pub fn addr_words(addr: IpAddr) -> [u32; 4] {
    let octets = as_v6(addr).octets();
    std::array::from_fn(|i| u32::from_ne_bytes([0, 1, 2, 3].map(|j| octets[4 * i + j])))
}

/// The address that [`addr_words`] wrote, IPv4 unmapped.
pub fn addr_from_words(words: [u32; 4]) -> IpAddr {
    let mut octets = [0u8; 16];
    for (chunk, word) in octets.chunks_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let v6 = Ipv6Addr::from(octets);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// The key of `addr` and `port` (0: every port) in `deny_addrs`.
pub fn addr_key(addr: IpAddr, port: u16) -> AddrKey {
    AddrKey {
        addr: addr_words(addr),
        port: u32::from(port),
    }
}

/// A `--deny-path PATH` rule: the file's identity, from stat(2) on the path
/// (symlinks followed), so that every name of the file matches.
#[derive(Clone, Debug)]
pub struct PathRule {
    pub path: PathBuf,
    pub key: FileKey,
}

impl FromStr for PathRule {
    type Err = String;

    fn from_str(s: &str) -> Result<PathRule, String> {
        let meta = std::fs::metadata(s).map_err(|e| format!("'{s}': {e}"))?;
        // st_dev is user space's encoding; the kernel's s_dev, which the
        // BPF side reads, keeps the minor number in the low 20 bits.
        let dev = (u64::from(libc::major(meta.dev())) << 20) | u64::from(libc::minor(meta.dev()));
        Ok(PathRule {
            path: PathBuf::from(s),
            key: FileKey {
                dev,
                ino: meta.ino(),
            },
        })
    }
}

/// The rules, numbered from 1: the `--deny` ones first, then `--deny-path`.
pub struct Policy {
    pub addrs: Vec<AddrRule>,
    pub paths: Vec<PathRule>,
}

impl Policy {
    pub fn new(addrs: Vec<AddrRule>, paths: Vec<PathRule>) -> Result<Policy> {
        if addrs.is_empty() && paths.is_empty() {
            bail!("nothing to deny: give at least one --deny ADDR[:PORT] (or --deny-path PATH)");
        }
        Ok(Policy { addrs, paths })
    }

    /// The `--deny-path` rule numbered `n`, if it is one.
    pub fn path_rule(&self, n: u32) -> Option<&PathRule> {
        let i = (n as usize).checked_sub(self.addrs.len() + 1)?;
        self.paths.get(i)
    }

    /// Rule `n` as it was written on the command line; rule 0, the
    /// guard's own refusal, by what it refused (`kind`).
    pub fn describe(&self, n: u32, kind: GuardKind) -> String {
        let i = n as usize;
        match i.checked_sub(1) {
            Some(i) if i < self.addrs.len() => format!("--deny {}", self.addrs[i]),
            Some(_) => match self.path_rule(n) {
                Some(rule) => format!("--deny-path {}", rule.path.display()),
                None => format!("rule {n}"),
            },
            None if kind == GuardKind::GUARD_SOCKET => {
                "a socket whose sends no rule could check is refused".into()
            }
            None if kind == GuardKind::GUARD_TUN => {
                "tun/tap devices are refused (what is written to them bypasses the rules)".into()
            }
            None => "the unspecified, broadcast and multicast addresses are refused \
                     (the kernel picks the hosts after the check)"
                .into(),
        }
    }

    /// Writes the `--deny` rules into `deny_addrs`.
    pub fn fill_addrs(&self, deny_addrs: &dyn MapCore) -> Result<()> {
        for (n, rule) in (1u32..).zip(&self.addrs) {
            let key = addr_key(rule.addr, rule.port);
            deny_addrs
                .update(bytes_of(&key), &n.to_ne_bytes(), MapFlags::ANY)
                .with_context(|| format!("adding --deny {rule}"))?;
        }
        Ok(())
    }

    /// Writes the `--deny-path` rules into `deny_files`.
    pub fn fill_paths(&self, deny_files: &dyn MapCore) -> Result<()> {
        let first = self.addrs.len() as u32 + 1;
        for (n, rule) in (first..).zip(&self.paths) {
            deny_files
                .update(bytes_of(&rule.key), &n.to_ne_bytes(), MapFlags::ANY)
                .with_context(|| format!("adding --deny-path {}", rule.path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let r: AddrRule = "10.0.0.1:443".parse().unwrap();
        assert_eq!((r.addr.to_string(), r.port), ("10.0.0.1".into(), 443));
        let r: AddrRule = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!((r.addr.to_string(), r.port), ("2001:db8::1".into(), 80));
        let r: AddrRule = "2001:db8::1".parse().unwrap();
        assert_eq!(r.port, 0);
        let r: AddrRule = "[::1]".parse().unwrap();
        assert_eq!(r.to_string(), "::1");
        for bad in [
            "1.2.3",
            "1.2.3.4:",
            "1.2.3.4:70000",
            "host:80",
            "1.2.3.4:0",
            "",
        ] {
            assert!(bad.parse::<AddrRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_and_plain_ipv4_are_one_key() {
        let plain = addr_key("192.0.2.1".parse().unwrap(), 80);
        let mapped = addr_key("::ffff:192.0.2.1".parse().unwrap(), 80);
        assert_eq!(bytes_of(&plain), bytes_of(&mapped));
        // The address in network order, then the port in host order.
        let mut want = [0u8; 20];
        want[10..16].copy_from_slice(&[0xff, 0xff, 192, 0, 2, 1]);
        want[16..].copy_from_slice(&80u32.to_ne_bytes());
        assert_eq!(bytes_of(&plain), want);
        assert_eq!(
            std::mem::size_of::<AddrKey>(),
            std::mem::size_of::<crate::skel::lsm_guard::types::addr_key>()
        );
    }

    #[test]
    fn addresses_come_back_as_written() {
        for a in ["192.0.2.1", "2001:db8::1", "::", "0.0.0.0"] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(addr_from_words(addr_words(addr)), addr);
        }
    }
}
