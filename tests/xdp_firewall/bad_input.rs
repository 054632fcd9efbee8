//! Bad input: one line, a non-zero exit, nothing attached and nothing pinned.

use testkit::chapter::assert_sample;
use testkit::{assert_bad_inputs, require_privileges, BadInput, BpfFs, Exit, TwoHosts, DEV_A};

use crate::{manage, xdp_attached, BIN};

#[test]
fn bad_input_gives_one_line_and_leaves_nothing() {
    require_privileges!("bad_input_gives_one_line_and_leaves_nothing");
    if crate::refused("bad_input_gives_one_line_and_leaves_nothing") {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    let fs = BpfFs::new().unwrap();
    let pin = fs.path().join("fw");
    let cases = [
        BadInput {
            name: "invalid CIDR",
            args: &["-i", DEV_A, "--block", "10.0.0.0/33"],
            exit: Exit::Code(2),
            says: "prefix length must be 0 to 32",
        },
        BadInput {
            name: "host bits set",
            args: &["-i", DEV_A, "--block", "10.0.0.1/8"],
            exit: Exit::Code(2),
            says: "did you mean 10.0.0.0/8",
        },
        BadInput {
            name: "not an address",
            args: &["-i", DEV_A, "--allow", "example.com"],
            exit: Exit::Code(2),
            says: "not an IPv4 or IPv6",
        },
        BadInput {
            name: "unknown interface",
            args: &["-i", "nosuchif0"],
            exit: Exit::Code(1),
            says: "interface 'nosuchif0' not found",
        },
        BadInput {
            name: "native mode unsupported",
            args: &["-i", "lo", "--mode", "native"],
            exit: Exit::Code(1),
            says: "retry with --mode skb",
        },
        BadInput {
            name: "burst without rate",
            args: &["-i", DEV_A, "--burst", "5"],
            exit: Exit::Code(2),
            says: "--rate",
        },
        BadInput {
            name: "burst below one clock tick",
            args: &["-i", DEV_A, "--rate", "100000", "--burst", "10"],
            exit: Exit::Code(1),
            says: "--burst 10 is too small",
        },
        BadInput {
            name: "pin outside bpffs",
            args: &["-i", DEV_A, "--pin", "/tmp/not-bpffs/fw"],
            exit: Exit::Code(1),
            says: "not on a bpf filesystem",
        },
    ];
    assert_bad_inputs(
        &cases,
        |case| {
            let mut cmd = hosts.a.command(BIN);
            cmd.args(case.args);
            if !case.args.contains(&"--pin") {
                cmd.arg("--pin").arg(&pin);
            }
            cmd
        },
        |case| {
            assert!(!xdp_attached(&hosts), "{}: XDP attached", case.name);
            assert!(!pin.exists(), "{}: pins left", case.name);
        },
    );
    // The refusal the chapter shows, word for word.
    let out = hosts
        .a
        .command(BIN)
        .args(["-i", DEV_A, "--rate", "100000", "--burst", "10", "--pin"])
        .arg(&pin)
        .output()
        .unwrap();
    assert_sample(
        "docs/02-xdp_firewall.md",
        "burst_too_small",
        &String::from_utf8_lossy(&out.stderr),
    );
    // Managing a firewall that is not running.
    let (code, _, err) = manage(&fs, &["block", "10.0.0.0/8"]);
    assert_eq!(code, 1);
    assert!(err.contains("no running xdp_firewall"), "{err}");
}
