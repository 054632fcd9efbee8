//! netfilter_bpf proven in the kernel: BPF_PROG_TEST_RUN of both programs
//! on built packets (they must agree with each other and with the policy),
//! the binary between two namespaces in each way (exactly the listed
//! traffic dropped, iptables' counters and the program's agree, a policy
//! change from another process takes effect at once, nothing left behind,
//! also after SIGKILL), and bad input.

mod bad_input;
mod netns;
mod test_run;

const BIN: &str = env!("CARGO_BIN_EXE_netfilter_bpf");

/// On a kernel older than the lesson's minimum, checks its one-line
/// refusal instead (and the test returns).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "netfilter_bpf",
        std::process::Command::new(BIN).args([
            "--way",
            "hook",
            "--pin",
            "/sys/fs/bpf/lebpf-nfb-refused",
        ]),
    )
}
