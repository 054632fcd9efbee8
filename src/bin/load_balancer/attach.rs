//! Where the program is attached, and the balancer's side of `add`:
//! attaching where a new backend's replies will arrive before it may take
//! flows.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use libbpf_rs::MapCore;

use learning_ebpf_rs::netif;
use learning_ebpf_rs::skel::load_balancer::types;
use learning_ebpf_rs::tc::{TcAttachment, TcDirection, TcMode};

use crate::backends::{all_backends, rebuild_table, socket_addr, write_backend, Lock, State};

/// Where the program is attached: TC ingress of the clients' interface and
/// of every interface a backend is reached through, since the replies must
/// pass the program too. A backend added at run time may bring a new one.
pub struct Attachments<'p> {
    pub prog: &'p libbpf_rs::Program<'p>,
    pub mode: TcMode,
    pub ifaces: Vec<(String, TcAttachment)>,
}

impl<'p> Attachments<'p> {
    /// Attaches to `iface` unless already there; true if it attached now.
    pub fn attach(&mut self, iface: &str) -> Result<bool> {
        if self.ifaces.iter().any(|(name, _)| name == iface) {
            return Ok(false);
        }
        let ifindex = netif::ifindex(iface)?;
        let attachment =
            TcAttachment::attach(ifindex, self.mode, &[(TcDirection::Ingress, self.prog)])
                .with_context(|| format!("attaching to {iface}"))?;
        self.ifaces.push((iface.to_string(), attachment));
        Ok(true)
    }

    /// Attaches where the traffic of the backend at `ip` goes.
    pub fn attach_for(&mut self, ip: Ipv4Addr) -> Result<()> {
        let iface = netif::route_iface(ip)?
            .ok_or_else(|| anyhow!("no route to backend {ip} in this network namespace"))?;
        if self.attach(&iface)? {
            eprintln!("Backend {ip} is reached through {iface}: attached to {iface} too.");
        }
        Ok(())
    }

    /// Takes up the backends that `add` left pending: the program goes on
    /// their interface first, and only then do they become active and
    /// enter the selection table. One that cannot be reached is marked
    /// failed, which `add` reports.
    pub fn take_up_pending(
        &mut self,
        pin_dir: &Path,
        backends: &impl MapCore,
        table: &impl MapCore,
    ) -> Result<()> {
        let pending = |b: &types::lb_backend| b.addr != 0 && b.state == State::LB_BACKEND_PENDING.0;
        if !all_backends(backends)?.iter().any(pending) {
            return Ok(());
        }
        let _lock = Lock::take(pin_dir)?;
        let mut activated = false;
        for (i, be) in all_backends(backends)?.iter().enumerate() {
            if !pending(be) {
                continue;
            }
            let state = match self.attach_for(*socket_addr(be).ip()) {
                Ok(()) => {
                    activated = true;
                    State::LB_BACKEND_ACTIVE
                }
                Err(e) => {
                    eprintln!("warning: backend {} not taken up: {e:#}", socket_addr(be));
                    State::LB_BACKEND_FAILED
                }
            };
            let be = types::lb_backend {
                state: state.0,
                ..*be
            };
            write_backend(backends, i as u32, &be)?;
        }
        if activated {
            rebuild_table(backends, table)?;
        }
        Ok(())
    }

    pub fn names(&self) -> String {
        let names: Vec<&str> = self.ifaces.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }
}
