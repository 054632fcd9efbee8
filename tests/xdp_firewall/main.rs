//! xdp_firewall proven in the kernel: a differential property test of the
//! real program against a Rust reference model (BPF_PROG_TEST_RUN), the
//! binary in network namespaces (live block/unblock, a rate-limited flood),
//! clean-up after SIGINT and SIGKILL, and bad input.

mod bad_input;
mod model;
mod netns;
mod test_run;

use testkit::{BpfFs, TwoHosts, DEV_A};

const BIN: &str = env!("CARGO_BIN_EXE_xdp_firewall");

/// On a kernel older than xdp_firewall's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "xdp_firewall",
        std::process::Command::new(BIN).args(["-i", "lebpf-none0"] as [&str; 2]),
    )
}

/// Runs a management command against the firewall pinned in `fs`.
fn manage(fs: &BpfFs, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--pin")
        .arg(fs.path().join("fw"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether DEV_A of `hosts.a` has an XDP program attached.
fn xdp_attached(hosts: &TwoHosts) -> bool {
    hosts
        .a
        .ip(&["link", "show", "dev", DEV_A])
        .unwrap()
        .contains("xdp")
}
