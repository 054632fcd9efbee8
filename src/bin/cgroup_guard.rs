//! cgroup_guard: lsm_guard's connect policy with cgroup socket-address
//! programs (connect4, connect6, sendmsg4, sendmsg6) and a sock_create
//! program that allows only TCP and UDP sockets, attached to one cgroup
//! with bpf_link.
//!
//! The kernel side is bpf/cgroup_guard.bpf.c; the chapter is
//! docs/09-cgroup_guard.md.

use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use learning_ebpf_rs::guards::{self, Counts, GuardArgs, Policy};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::cgroup_guard::CgroupGuardSkelBuilder;
use learning_ebpf_rs::{cli, errors, signals, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    cgroup_guard --deny 192.0.2.1:443 -- bash
                                     # a shell, as nobody, that cannot reach 192.0.2.1:443
    cgroup_guard --deny 2001:db8::1 --cgroup /sys/fs/cgroup/app
                                     # every port of 2001:db8::1, for a cgroup";

/// Deny a cgroup's processes some addresses, with cgroup socket-address programs.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    guard: GuardArgs,
}

fn run(args: Args) -> Result<i32> {
    learning_ebpf_rs::lessons::require_kernel("cgroup_guard")?;
    cli::init_libbpf_log(args.guard.verbose);
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    let policy = Policy::new(args.guard.deny.clone(), Vec::new())?;
    let cgroup = guards::target(&args.guard, "cgroup_guard")?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open, load, and write the rules.
    let mut object = MaybeUninit::uninit();
    let open = CgroupGuardSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let skel = open.load().map_err(errors::load_error)?;
    policy.fill_addrs(&skel.maps.deny_addrs)?;

    // Attach each program to the cgroup, with a bpf_link: the cgroup's
    // processes and those of the cgroups below it run them. The links
    // live as long as these values (or the process: even SIGKILL).
    let progs = &skel.progs;
    let mut links = Vec::new();
    for prog in [
        &progs.guard_connect4,
        &progs.guard_connect6,
        &progs.guard_sendmsg4,
        &progs.guard_sendmsg6,
        &progs.guard_sock_create,
    ] {
        links.push(
            prog.attach_cgroup(cgroup.fd())
                .with_context(|| format!("attaching to the cgroup {}", cgroup.path().display()))?,
        );
    }
    // ANCHOR_END: spine

    // Report each denial until the command ends (or Ctrl-C).
    let bss = skel::bss(skel.maps.bss_data.as_deref())?;
    let counts = Counts {
        denied: &bss.denied,
        dropped: &bss.dropped,
    };
    guards::serve(
        cgroup,
        &args.guard,
        &policy,
        &skel.maps.denials,
        counts,
        &stop,
    )
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run_status(|| run(args));
}
