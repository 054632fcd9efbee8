//! The management commands (`add`, `drain`, `remove`, `stats`), run from
//! another shell: they reach the running balancer through its pinned maps,
//! and take turns with it through a lock on the pin directory.

use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use libbpf_rs::MapHandle;

use learning_ebpf_rs::pin;
use learning_ebpf_rs::skel::load_balancer::types;

use crate::backends::{
    all_backends, find, free_slot, new_backend, position, read_backend, rebuild_table, state_name,
    write_backend, Backend, Lock, State,
};

/// How long `add` waits for the running balancer to take a new backend up.
const ADD_TIMEOUT: Duration = Duration::from_secs(5);

/// The load balancer's maps, opened from their pins by a management command.
pub struct LbMaps {
    pub backends: MapHandle,
    pub table: MapHandle,
    pub stats: MapHandle,
    pub counters: MapHandle,
}

pub fn open_pinned(dir: &Path) -> Result<LbMaps> {
    let open = |name: &str| pin::open_map(dir, name, "load_balancer");
    Ok(LbMaps {
        backends: open("backends")?,
        table: open("table")?,
        stats: open("stats")?,
        counters: open("counters")?,
    })
}

/// Gives the backend at `addr` a new state (draining or removed) and takes
/// it out of the selection table.
pub fn retire(lb: &LbMaps, dir: &Path, addr: &SocketAddrV4, state: State) -> Result<()> {
    let _lock = Lock::take(dir)?;
    let slot = find(&lb.backends, addr)?;
    let be = types::lb_backend {
        state: state.0,
        ..read_backend(&lb.backends, slot)?
    };
    write_backend(&lb.backends, slot, &be)?;
    rebuild_table(&lb.backends, &lb.table)
}

/// `add`: an existing backend changes in place; a new one is left pending
/// for the running balancer, which attaches to its interface before it
/// lets flows go there, and we wait for that.
pub fn add(lb: &LbMaps, dir: &Path, b: &Backend) -> Result<String> {
    let lock = Lock::take(dir)?;
    let all = all_backends(&lb.backends)?;
    let found = position(&all, &b.addr);
    if let Some(slot) = found {
        let old = all[slot as usize];
        let state = State(old.state);
        if state != State::LB_BACKEND_PENDING && state != State::LB_BACKEND_FAILED {
            let be = types::lb_backend {
                weight: b.weight,
                state: State::LB_BACKEND_ACTIVE.0,
                ..old
            };
            write_backend(&lb.backends, slot, &be)?;
            rebuild_table(&lb.backends, &lb.table)?;
            let weight = match old.weight == b.weight {
                true => format!("weight {}", b.weight),
                false => format!("weight {} -> {}", old.weight, b.weight),
            };
            return Ok(match state {
                State::LB_BACKEND_ACTIVE if old.weight == b.weight => {
                    format!(
                        "{} is already a backend with weight {}: nothing changed",
                        b.addr, b.weight
                    )
                }
                State::LB_BACKEND_ACTIVE => format!("{} was already a backend: {weight}", b.addr),
                _ => format!(
                    "{} was {}: active again, {weight}",
                    b.addr,
                    state_name(old.state)
                ),
            });
        }
    }
    let slot = match found {
        Some(slot) => slot,
        None => free_slot(&all)?,
    };
    let old = all[slot as usize];
    write_backend(
        &lb.backends,
        slot,
        &new_backend(&old, b, State::LB_BACKEND_PENDING),
    )?;
    drop(lock);

    let deadline = Instant::now() + ADD_TIMEOUT;
    loop {
        let state = State(read_backend(&lb.backends, slot)?.state);
        if state == State::LB_BACKEND_ACTIVE {
            return Ok(format!("{} added (weight {})", b.addr, b.weight));
        }
        if state != State::LB_BACKEND_PENDING || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not taken up: give the slot back as it was, unless the balancer got
    // there in the meantime.
    let _lock = Lock::take(dir)?;
    match State(read_backend(&lb.backends, slot)?.state) {
        State::LB_BACKEND_ACTIVE => Ok(format!("{} added (weight {})", b.addr, b.weight)),
        State::LB_BACKEND_FAILED => {
            write_backend(&lb.backends, slot, &old)?;
            bail!(
                "the running load_balancer could not take up {}: no route to it in its network \
                 namespace, or attaching to its interface failed (its output says which)",
                b.addr
            )
        }
        _ => {
            write_backend(&lb.backends, slot, &old)?;
            bail!(
                "the load_balancer using {} did not take up {} within {}s: is it still running?",
                dir.display(),
                b.addr,
                ADD_TIMEOUT.as_secs()
            )
        }
    }
}
