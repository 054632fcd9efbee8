//! Attaching programs to the TC hook, in the two ways the kernel offers:
//!
//! - `tc`: the classic way. A `clsact` qdisc on the interface and a `cls_bpf`
//!   filter on its ingress and egress hooks, made over netlink (what libbpf's
//!   `bpf_tc_*` API and `tc filter add ... bpf` do). The filter stays until
//!   someone deletes it: it survives the process, even a SIGKILL.
//! - `tcx`: a `bpf_link` (Linux 6.6+). Closing the link's last descriptor
//!   detaches it, so the kernel cleans up when the process dies, however it
//!   dies.
//!
//! [`TcAttachment`] undoes what it did when dropped, and removes the clsact
//! qdisc only if it created it (another tool may be using an existing one).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use libbpf_rs::{Program, TcHook, TcHookBuilder, TC_EGRESS, TC_INGRESS};

/// How to attach a TC program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TcMode {
    /// clsact qdisc + cls_bpf filter (any kernel with BPF)
    Tc,
    /// tcx bpf_link (Linux 6.6+), detached by the kernel when the process dies
    Tcx,
}

impl TcMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TcMode::Tc => "tc",
            TcMode::Tcx => "tcx",
        }
    }
}

/// Which TC hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcDirection {
    Ingress,
    Egress,
}

impl std::fmt::Display for TcDirection {
    /// As tc spells it: `ingress`, `egress`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            TcDirection::Ingress => "ingress",
            TcDirection::Egress => "egress",
        })
    }
}

/// The filter handle and priority used for `tc` mode, so that `tc filter
/// show` output can be matched to this project.
pub const FILTER_HANDLE: u32 = 0xeb9f;
pub const FILTER_PRIORITY: u32 = 1;

/// Programs attached to one interface; dropping it detaches them.
pub struct TcAttachment {
    ifindex: i32,
    mode: TcMode,
    filters: Vec<TcHook>,
    links: Vec<OwnedFd>,
    created_clsact: bool,
}

impl TcAttachment {
    /// Attaches each `(direction, program)` to interface `ifindex`.
    pub fn attach(ifindex: u32, mode: TcMode, progs: &[(TcDirection, &Program)]) -> Result<Self> {
        let mut attachment = TcAttachment {
            ifindex: ifindex as i32,
            mode,
            filters: Vec::new(),
            links: Vec::new(),
            created_clsact: false,
        };
        // On an error below, `attachment` is dropped and undoes what was done.
        match mode {
            TcMode::Tc => attachment.attach_tc(progs)?,
            TcMode::Tcx => attachment.attach_tcx(progs)?,
        }
        Ok(attachment)
    }

    /// True when this run created the clsact qdisc (and will remove it).
    pub fn created_clsact(&self) -> bool {
        self.created_clsact
    }

    fn clsact_hook(&self) -> libbpf_sys::bpf_tc_hook {
        libbpf_sys::bpf_tc_hook {
            sz: std::mem::size_of::<libbpf_sys::bpf_tc_hook>() as _,
            ifindex: self.ifindex,
            attach_point: TC_INGRESS | TC_EGRESS,
            ..Default::default()
        }
    }

    fn attach_tc(&mut self, progs: &[(TcDirection, &Program)]) -> Result<()> {
        // (T1) The clsact qdisc holds the ingress and egress hooks. libbpf-rs's
        // TcHook::create() hides whether it existed, so ask libbpf directly.
        let mut hook = self.clsact_hook();
        // SAFETY: hook is a valid, fully initialised bpf_tc_hook.
        let err = unsafe { libbpf_sys::bpf_tc_hook_create(&mut hook) };
        match -err {
            0 => self.created_clsact = true,
            libc::EEXIST => {}
            errno => {
                return Err(io::Error::from_raw_os_error(errno))
                    .context("creating the clsact qdisc");
            }
        }
        // (T2) One cls_bpf filter per direction, in direct-action mode: the
        // program's return value is the verdict (TC_ACT_OK, TC_ACT_SHOT).
        for (direction, prog) in progs {
            let point = match direction {
                TcDirection::Ingress => TC_INGRESS,
                TcDirection::Egress => TC_EGRESS,
            };
            let mut filter = TcHookBuilder::new(prog.as_fd())
                .ifindex(self.ifindex)
                .handle(FILTER_HANDLE)
                .priority(FILTER_PRIORITY)
                .hook(point);
            match filter.attach() {
                Ok(attached) => self.filters.push(attached),
                Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => bail!(
                    "a TC filter with handle {FILTER_HANDLE:#x} priority {FILTER_PRIORITY} is \
                     already on the {direction} hook (another run, or one left by a killed \
                     run: remove it with `tc filter del dev IFACE {direction} handle \
                     {FILTER_HANDLE:#x} prio {FILTER_PRIORITY} bpf`)"
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("attaching the {direction} filter"))
                }
            }
        }
        Ok(())
    }

    fn attach_tcx(&mut self, progs: &[(TcDirection, &Program)]) -> Result<()> {
        for (direction, prog) in progs {
            let attach_type = match direction {
                TcDirection::Ingress => libbpf_sys::BPF_TCX_INGRESS,
                TcDirection::Egress => libbpf_sys::BPF_TCX_EGRESS,
            };
            // (T3) A bpf_link: the kernel detaches it when its last fd closes.
            let link =
                crate::link::create(prog, self.ifindex as u32, attach_type, 0).map_err(|err| {
                    let hint = if err.raw_os_error() == Some(libc::EINVAL) {
                        ": tcx needs Linux 6.6 or newer, retry with --attach tc"
                    } else {
                        ""
                    };
                    anyhow::anyhow!("attaching the {direction} tcx link failed ({err}){hint}")
                })?;
            self.links.push(link);
        }
        Ok(())
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        // tcx: closing the link fds (dropping `links`) detaches the programs.
        if self.mode == TcMode::Tcx {
            return;
        }
        for filter in &mut self.filters {
            if let Err(e) = filter.detach() {
                eprintln!("warning: detaching TC filter: {e}");
            }
        }
        if self.created_clsact {
            let mut hook = self.clsact_hook();
            // SAFETY: hook is a valid, fully initialised bpf_tc_hook.
            let err = unsafe { libbpf_sys::bpf_tc_hook_destroy(&mut hook) };
            if err != 0 {
                eprintln!(
                    "warning: removing the clsact qdisc: {}",
                    io::Error::from_raw_os_error(-err)
                );
            }
        }
    }
}
