//! Capability checks, so that a binary without privileges says so in one
//! line before it loads or attaches anything.

use anyhow::{bail, Result};

/// The capabilities the lessons need (bit numbers from linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    NetRaw = 13,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// True when the process holds `cap` (CAP_SYS_ADMIN stands in for CAP_BPF
/// and CAP_PERFMON, as it did before Linux 5.8 split them off).
pub fn has_cap(cap: Cap) -> bool {
    let caps = effective_caps();
    let held = |c: Cap| caps & (1u64 << c as u32) != 0;
    held(cap) || (matches!(cap, Cap::Bpf | Cap::Perfmon) && held(Cap::SysAdmin))
}

/// Fails with one line naming every missing capability.
pub fn require(caps: &[Cap]) -> Result<()> {
    let missing: Vec<&str> = caps
        .iter()
        .filter(|c| !has_cap(**c))
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing privileges ({}): run as root, e.g. with sudo",
            missing.join(", ")
        );
    }
    Ok(())
}
