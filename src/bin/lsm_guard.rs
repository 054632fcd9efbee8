//! lsm_guard: deny the processes of one cgroup connecting to listed
//! addresses and opening listed files, with BPF LSM programs, and report
//! each denial.
//!
//! The kernel side is bpf/lsm_guard.bpf.c; the chapter is docs/08-lsm_guard.md.

use std::mem::MaybeUninit;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};

use learning_ebpf_rs::guards::{self, Counts, GuardArgs, PathRule, Policy};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::lsm_guard::LsmGuardSkelBuilder;
use learning_ebpf_rs::{cli, errors, signals, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    lsm_guard --deny 192.0.2.1:443 --deny-path /etc/hostname -- bash
                                     # a shell, as nobody, that can do neither
    lsm_guard --deny 2001:db8::1 --cgroup /sys/fs/cgroup/app
                                     # every port of 2001:db8::1, for a cgroup";

/// Deny a cgroup's processes some addresses and files, with BPF LSM programs.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    guard: GuardArgs,
    /// Deny opening this file, by any of its names; repeat for more
    #[arg(long = "deny-path", value_name = "PATH")]
    deny_path: Vec<PathRule>,
}

const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// BPF LSM programs run only where the kernel was built with
/// CONFIG_BPF_LSM and `bpf` is among the active LSMs.
fn require_bpf_lsm() -> Result<()> {
    check_lsm_list(std::fs::read_to_string(LSM_LIST).ok().as_deref())
}

/// The check on the contents of /sys/kernel/security/lsm (None: unreadable).
fn check_lsm_list(lsms: Option<&str>) -> Result<()> {
    let Some(lsms) = lsms else {
        bail!(
            "cannot read {LSM_LIST} to check that BPF LSM is active: mount securityfs \
             (`make setup`, or `mount -t securityfs securityfs /sys/kernel/security`)"
        );
    };
    let lsms = lsms.trim();
    if !lsms.split(',').any(|l| l == "bpf") {
        bail!(
            "BPF LSM is not active (the LSMs are {lsms}): boot with lsm={lsms},bpf on the kernel \
             command line, on a kernel built with CONFIG_BPF_LSM=y"
        );
    }
    Ok(())
}

fn load_error(e: libbpf_rs::Error) -> anyhow::Error {
    match errors::os_error(&e) {
        Some(libc::EPERM) => anyhow!(
            "this kernel refuses BPF LSM programs (EPERM even as root: they run through BPF \
             trampolines, which are not allowed here); run this lesson on a kernel that allows \
             them, e.g. in a VM (see docs/08-lsm_guard.md)"
        ),
        _ => errors::load_error(e),
    }
}

fn run(args: Args) -> Result<i32> {
    learning_ebpf_rs::lessons::require_kernel("lsm_guard")?;
    cli::init_libbpf_log(args.guard.verbose);
    privileges::require(&[Cap::Bpf, Cap::Perfmon, Cap::SysAdmin])?;
    require_bpf_lsm()?;
    let policy = Policy::new(args.guard.deny.clone(), args.deny_path.clone())?;
    let cgroup = guards::target(&args.guard, "lsm_guard")?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open and load: the programs check the target cgroup and the rules.
    let mut object = MaybeUninit::uninit();
    let open = LsmGuardSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let mut skel = open.load().map_err(load_error)?;

    // The policy: the cgroup (by fd) and the rules, before anything runs.
    skel.maps
        .target
        .update(
            &0u32.to_ne_bytes(),
            &cgroup.fd().to_ne_bytes(),
            MapFlags::ANY,
        )
        .context("setting the target cgroup")?;
    policy.fill_addrs(&skel.maps.deny_addrs)?;
    policy.fill_paths(&skel.maps.deny_files)?;

    // Attach: each program gets a bpf_link, closed on exit (even SIGKILL).
    skel.attach().map_err(load_error).context("attaching")?;
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

#[cfg(test)]
mod tests {
    use super::check_lsm_list;

    #[test]
    fn says_what_to_change_when_bpf_lsm_is_not_active() {
        assert!(check_lsm_list(Some("lockdown,capability,bpf\n")).is_ok());
        let e = check_lsm_list(Some("lockdown,capability,apparmor\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BPF LSM is not active (the LSMs are lockdown,capability,apparmor): boot with \
             lsm=lockdown,capability,apparmor,bpf on the kernel command line, on a kernel built \
             with CONFIG_BPF_LSM=y"
        );
        let e = check_lsm_list(None).unwrap_err();
        assert!(e.to_string().contains("mount securityfs"), "{e}");
    }
}
