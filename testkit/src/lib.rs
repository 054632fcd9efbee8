//! The test and benchmark kit: what the tests, benchmarks and demo tests of
//! every lesson share, kept out of the lessons' library so that no lesson
//! binary builds it.
//!
//! Each thing that creates state on the machine (a network namespace, a
//! child process, a bpffs mount, a pin directory) is a guard that removes it
//! when dropped, also when a test panics.
//!
//! setns() changes only the calling thread's namespace, so code that must
//! run inside a namespace goes through [`NetNs::run`], which uses a thread of
//! its own. A socket keeps the namespace it was created in: create it inside
//! `run`, then use it from anywhere.

use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use learning_ebpf_rs::privileges::{has_cap, Cap};

mod bad_input;
pub mod bench;
mod bpffs;
pub mod chapter;
mod cpu;
pub mod guards;
pub mod kernel;
mod netns;
pub mod packets;
pub mod plot;
pub mod plots;
mod process;
pub mod ring_reader;
mod topology;

pub use bad_input::{
    assert_bad_args, assert_bad_inputs, assert_one_line_error, BadInput, Exit,
    HIDDEN_BY_IP_NETNS_EXEC,
};
pub use bpffs::{BpfFs, HostPinDir};
pub use cpu::{cpu_set, pin_process, pin_thread, two_cpus};
pub use netns::{add_addr, veth, NetNs};
pub use process::Running;
pub use topology::{TwoHosts, DEV_A, DEV_B, IP4_A, IP4_B, IP6_A, IP6_B};

/// True when CI=true: then a test that cannot run fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a test that needs root can run. Without the privileges it prints
/// why it skips, or panics under CI, where a skip counts as a failure.
pub fn privileged(test: &str) -> bool {
    if has_cap(Cap::Bpf) && has_cap(Cap::NetAdmin) {
        return true;
    }
    let why = "needs root (CAP_BPF and CAP_NET_ADMIN): run `sudo make test`";
    if in_ci() {
        panic!("{test} {why}; with CI=true a skip is a failure");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Returns from the calling test early (after saying why) when it cannot
/// run; see [`privileged`].
#[macro_export]
macro_rules! require_privileges {
    ($test:expr) => {
        if !$crate::privileged($test) {
            return;
        }
    };
}

/// Runs a command to completion; an error carries its stderr.
pub fn run_cmd(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True once no BPF program with this id exists (the kernel frees it after
/// its last reference goes, which may take a moment).
pub fn prog_gone(id: u32) -> bool {
    wait_until(Duration::from_secs(5), || {
        libbpf_rs::Program::fd_from_id(id).is_err()
    })
}

/// Runs `cmd`, which must succeed, and parses each line of its standard
/// output as one JSON value (the lessons' `--json`).
pub fn json_lines(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
