//! The backends map and the selection table: slots, states, generations,
//! the lock that the balancer and the management commands change them under,
//! and the smooth weighted round robin that fills the table.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use learning_ebpf_rs::maps;
use learning_ebpf_rs::skel::load_balancer::types;

// The limits, from bpf/load_balancer.h through the skeleton's BTF types.
pub const MAX_BACKENDS: u32 = types::lb_limits::LB_MAX_BACKENDS.0;
const TABLE_SIZE: u32 = types::lb_limits::LB_TABLE_SIZE.0;
const NO_BACKEND: u32 = types::lb_limits::LB_NO_BACKEND.0;
pub const GEN_MASK: u32 = (1 << types::lb_limits::LB_GEN_BITS.0) - 1;

pub use types::lb_backend_state as State;

/// A backend's state as `stats` names it.
pub fn state_name(state: u32) -> &'static str {
    match State(state) {
        State::LB_BACKEND_ACTIVE => "active",
        State::LB_BACKEND_DRAINING => "draining",
        State::LB_BACKEND_REMOVED => "removed",
        State::LB_BACKEND_PENDING => "pending",
        _ => "failed",
    }
}

/// The management commands and the balancer change the backends and the
/// table under this lock (flock on the pin directory), one at a time.
pub struct Lock {
    pub _file: std::fs::File,
}

impl Lock {
    pub fn take(dir: &Path) -> Result<Lock> {
        let file =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "locking {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Lock { _file: file })
    }
}

/// `IP:PORT[,WEIGHT]` from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddrV4,
    pub weight: u32,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        let (addr, weight) = match s.split_once(',') {
            Some((a, w)) => (a, w),
            None => (s, "1"),
        };
        let addr: SocketAddrV4 = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 address and port (IP:PORT)"))?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(format!("'{addr}': the address and the port must not be 0"));
        }
        let weight: u32 = weight
            .parse()
            .ok()
            .filter(|w| (1..=1000).contains(w))
            .ok_or_else(|| format!("weight '{weight}' must be a whole number from 1 to 1000"))?;
        Ok(Backend { addr, weight })
    }
}

pub fn read_backend(map: &impl MapCore, i: u32) -> Result<types::lb_backend> {
    let value = map
        .lookup(&i.to_ne_bytes(), MapFlags::ANY)?
        .ok_or_else(|| anyhow!("backend slot {i} missing"))?;
    maps::from_bytes(&value)
}

pub fn write_backend(map: &impl MapCore, i: u32, be: &types::lb_backend) -> Result<()> {
    map.update(&i.to_ne_bytes(), maps::bytes_of(be), MapFlags::ANY)
        .context("updating a backend")
}

pub fn all_backends(map: &impl MapCore) -> Result<Vec<types::lb_backend>> {
    (0..MAX_BACKENDS).map(|i| read_backend(map, i)).collect()
}

pub fn socket_addr(be: &types::lb_backend) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(be.addr)), be.port as u16)
}

/// Refills the selection table with a smooth weighted round robin over the
/// active backends: each gets slots in proportion to its weight, spread out
/// (weights 1 and 3 give A B B B A B B B..., not A A B B B B B B), so that any
/// run of consecutive new flows is split close to the weights. Every slot
/// says "no backend" when none is active.
pub fn rebuild_table(backends: &impl MapCore, table: &impl MapCore) -> Result<()> {
    let active: Vec<(u32, i64)> = all_backends(backends)?
        .iter()
        .enumerate()
        .filter(|(_, b)| b.addr != 0 && b.state == State::LB_BACKEND_ACTIVE.0)
        .map(|(i, b)| (i as u32, i64::from(b.weight)))
        .collect();
    let total: i64 = active.iter().map(|(_, w)| w).sum();
    let mut current = vec![0i64; active.len()];
    let slots: Vec<u32> = (0..TABLE_SIZE)
        .map(|_| {
            if total == 0 {
                return NO_BACKEND;
            }
            // Everyone gains its weight; the richest is picked and pays the total.
            for (c, (_, w)) in current.iter_mut().zip(&active) {
                *c += w;
            }
            let best = (0..active.len())
                .max_by_key(|&i| (current[i], -(i as i64)))
                .unwrap_or(0);
            current[best] -= total;
            active[best].0
        })
        .collect();
    for (slot, idx) in slots.iter().enumerate() {
        table.update(
            &(slot as u32).to_ne_bytes(),
            &idx.to_ne_bytes(),
            MapFlags::ANY,
        )?;
    }
    Ok(())
}

/// Where `addr` is, if it is a backend in any state.
pub fn position(all: &[types::lb_backend], addr: &SocketAddrV4) -> Option<u32> {
    all.iter()
        .position(|x| x.addr != 0 && socket_addr(x) == *addr)
        .map(|i| i as u32)
}

/// The slot of an active or draining backend.
pub fn find(backends: &impl MapCore, addr: &SocketAddrV4) -> Result<u32> {
    let all = all_backends(backends)?;
    position(&all, addr)
        .filter(|&i| {
            let state = all[i as usize].state;
            state == State::LB_BACKEND_ACTIVE.0 || state == State::LB_BACKEND_DRAINING.0
        })
        .ok_or_else(|| anyhow!("{addr} is not an active or draining backend"))
}

/// A slot for a new backend: one never used, else the first whose backend
/// was removed (its later packets are then counted as "retired").
pub fn free_slot(all: &[types::lb_backend]) -> Result<u32> {
    all.iter()
        .position(|x| x.addr == 0)
        .or_else(|| {
            all.iter()
                .position(|x| x.state == State::LB_BACKEND_REMOVED.0)
        })
        .map(|i| i as u32)
        .ok_or_else(|| anyhow!("all {MAX_BACKENDS} backend slots are in use"))
}

/// A new backend in `slot`: the slot's next generation, so that the flows
/// of a removed backend that had it keep apart from the new one's.
pub fn new_backend(old: &types::lb_backend, b: &Backend, state: State) -> types::lb_backend {
    types::lb_backend {
        addr: u32::from(*b.addr.ip()).to_be(),
        port: u32::from(b.addr.port()),
        weight: b.weight,
        state: state.0,
        gen: if old.addr == 0 {
            old.gen
        } else {
            (old.gen + 1) & GEN_MASK
        },
    }
}

/// Rejects a backend given twice on the command line.
pub fn check_unique(backends: &[Backend]) -> Result<()> {
    let mut seen = HashSet::new();
    for b in backends {
        if !seen.insert(b.addr) {
            bail!(
                "backend {} is given twice; give each backend once, with its weight (IP:PORT,WEIGHT)",
                b.addr
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(addr: u32, state: State, gen: u32) -> types::lb_backend {
        types::lb_backend {
            addr,
            port: 80,
            weight: 1,
            state: state.0,
            gen,
        }
    }

    #[test]
    fn new_backends_take_unused_slots_first_then_removed_ones() {
        let b: Backend = "10.0.0.9:80".parse().unwrap();
        let mut all = vec![
            slot(1, State::LB_BACKEND_REMOVED, 4),
            slot(2, State::LB_BACKEND_ACTIVE, 0),
        ];
        all.resize(MAX_BACKENDS as usize, types::lb_backend::default());
        assert_eq!(free_slot(&all).unwrap(), 2);
        // An unused slot keeps its generation; a reused one gets the next.
        assert_eq!(new_backend(&all[2], &b, State::LB_BACKEND_PENDING).gen, 0);
        for s in all.iter_mut().skip(2) {
            *s = slot(3, State::LB_BACKEND_DRAINING, 0);
        }
        assert_eq!(free_slot(&all).unwrap(), 0);
        assert_eq!(new_backend(&all[0], &b, State::LB_BACKEND_PENDING).gen, 5);
        // The generation wraps within the bits the conntrack mark has.
        let last = slot(1, State::LB_BACKEND_REMOVED, GEN_MASK);
        assert_eq!(new_backend(&last, &b, State::LB_BACKEND_PENDING).gen, 0);
        all[0] = slot(1, State::LB_BACKEND_ACTIVE, 0);
        assert!(free_slot(&all).is_err());
    }

    #[test]
    fn a_backend_given_twice_is_refused() {
        let b = |s: &str| s.parse::<Backend>().unwrap();
        assert!(check_unique(&[b("10.0.0.1:80"), b("10.0.0.2:80,3")]).is_ok());
        let err = check_unique(&[b("10.0.0.1:80,1"), b("10.0.0.1:80,3")]).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }
}
