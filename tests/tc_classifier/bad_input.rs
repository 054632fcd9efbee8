//! Bad input: one line, a non-zero exit, nothing attached.

use testkit::{assert_bad_inputs, require_privileges, BadInput, Exit, TwoHosts, DEV_A};

use crate::{tc_state, BIN};

#[test]
fn bad_input_gives_one_line_and_attaches_nothing() {
    require_privileges!("bad_input_gives_one_line_and_attaches_nothing");
    let hosts = TwoHosts::new().unwrap();
    let cases = [
        BadInput {
            name: "unknown interface",
            args: &["-i", "nosuchif0"],
            exit: Exit::Code(1),
            says: "interface 'nosuchif0' not found",
        },
        BadInput {
            name: "port out of range",
            args: &["-i", DEV_A, "--drop-port", "70000"],
            exit: Exit::Code(2),
            says: "--drop-port",
        },
        BadInput {
            name: "port zero",
            args: &["-i", DEV_A, "--drop-port", "0"],
            exit: Exit::Code(2),
            says: "--drop-port",
        },
        BadInput {
            name: "port not a number",
            args: &["-i", DEV_A, "--drop-port", "http"],
            exit: Exit::Code(2),
            says: "--drop-port",
        },
        BadInput {
            name: "no interface given",
            args: &[],
            exit: Exit::Code(2),
            says: "--iface",
        },
        BadInput {
            name: "no privileges",
            args: &["-i", DEV_A],
            exit: Exit::Code(1),
            says: "missing privileges (CAP_BPF, CAP_NET_ADMIN)",
        },
    ];
    assert_bad_inputs(
        &cases,
        |case| {
            let mut cmd = if case.name == "no privileges" {
                // The lesson run with the capabilities it needs taken away.
                let mut cmd = hosts.a.command("setpriv");
                cmd.args([
                    "--bounding-set=-bpf,-net_admin,-sys_admin,-perfmon",
                    "--",
                    BIN,
                ]);
                cmd
            } else {
                hosts.a.command(BIN)
            };
            cmd.args(case.args);
            cmd
        },
        |case| {
            let (qdiscs, ingress, egress) = tc_state(&hosts);
            assert!(
                !qdiscs.contains("clsact") && ingress.is_empty() && egress.is_empty(),
                "{}: something was attached: {qdiscs}{ingress}{egress}",
                case.name
            );
        },
    );
}
