//! Bad input: one line, a non-zero exit, and nothing added to netfilter or
//! pinned. Every case runs in a namespace of its own, so that a mistake
//! could add no rule to the machine's ruleset.

use testkit::{assert_bad_inputs, require_privileges, BadInput, Exit, HostPinDir, NetNs};

use crate::BIN;

#[test]
fn bad_input_gives_one_line_and_leaves_nothing() {
    require_privileges!("bad_input_gives_one_line_and_leaves_nothing");
    let ns = NetNs::new().unwrap();
    let pin = HostPinDir::new("nfb-bad").unwrap();
    let pin_arg = pin.path().to_string_lossy().into_owned();
    let cases = [
        BadInput {
            name: "no way",
            args: &["--deny-port", "23"],
            exit: Exit::Code(2),
            says: "--way",
        },
        BadInput {
            name: "an unknown way",
            args: &["--way", "nftables"],
            exit: Exit::Code(2),
            says: "nftables",
        },
        BadInput {
            name: "a prefix with host bits set",
            args: &["--way", "hook", "--deny-src", "10.0.0.1/24"],
            exit: Exit::Code(2),
            says: "has host bits set",
        },
        BadInput {
            name: "port 0",
            args: &["--way", "hook", "--deny-port", "0"],
            exit: Exit::Code(2),
            says: "0",
        },
        BadInput {
            name: "a pin directory off bpffs",
            args: &["--way", "iptables", "--pin", "/tmp/not-bpffs/nfb"],
            exit: Exit::Code(1),
            says: "not on a bpf filesystem",
        },
        BadInput {
            name: "add to a policy nobody runs",
            args: &["add", "--port", "80", "--pin", &pin_arg],
            exit: Exit::Code(1),
            says: "no running netfilter_bpf",
        },
        BadInput {
            name: "add with neither --src nor --port",
            args: &["add", "--pin", &pin_arg],
            exit: Exit::Code(2),
            says: "required",
        },
    ];
    // A kernel older than the lesson's minimum refuses a run before the
    // pin directory is looked at (its refusal is tested in main.rs).
    let release = learning_ebpf_rs::lessons::kernel_release();
    let too_old = learning_ebpf_rs::lessons::find("netfilter_bpf")
        .and_then(|l| l.too_old(&release))
        .is_some();
    let cases: Vec<BadInput> = cases
        .into_iter()
        .filter(|c| !(too_old && c.name == "a pin directory off bpffs"))
        .collect();
    assert_bad_inputs(
        &cases,
        |case| {
            let mut cmd = ns.nsenter(BIN);
            cmd.args(case.args);
            cmd
        },
        |case| {
            let rules = ns.nsenter("iptables-save").output().unwrap();
            assert!(
                !String::from_utf8_lossy(&rules.stdout).contains("netfilter_bpf"),
                "{}: a rule was left",
                case.name
            );
            assert!(!pin.path().exists(), "{}: pins were left", case.name);
        },
    );
}
