//! Bad input: one line, a non-zero exit, and no route added. Every case
//! runs in a namespace of its own, so that a mistake could add nothing to
//! the machine's routes.

use testkit::{assert_bad_inputs, require_privileges, BadInput, Exit, NetNs};

use crate::BIN;

#[test]
fn bad_input_gives_one_line_and_adds_no_route() {
    require_privileges!("bad_input_gives_one_line_and_adds_no_route");
    let ns = NetNs::new().unwrap();
    let cases = [
        BadInput {
            name: "a prefix with host bits set",
            args: &["--route", "10.30.0.1/24", "--via", "10.12.0.2"],
            exit: Exit::Code(2),
            says: "has host bits set",
        },
        BadInput {
            name: "no gateway and no interface",
            args: &["--route", "10.30.0.0/24"],
            exit: Exit::Code(2),
            says: "--via",
        },
        BadInput {
            name: "an unknown interface",
            args: &["--route", "10.30.0.0/24", "--dev", "no-such-if0"],
            exit: Exit::Code(1),
            says: "no-such-if0",
        },
        BadInput {
            name: "families that differ",
            args: &["--route", "10.30.0.0/24", "--via", "fd00::1"],
            exit: Exit::Code(1),
            says: "different IP families",
        },
        BadInput {
            name: "a gateway no route leads to",
            args: &["--route", "10.30.0.0/24", "--via", "10.99.0.1"],
            exit: Exit::Code(1),
            says: "not reachable",
        },
        BadInput {
            name: "port 0",
            args: &[
                "--route",
                "10.30.0.0/24",
                "--via",
                "10.12.0.2",
                "--deny-port",
                "0",
            ],
            exit: Exit::Code(2),
            says: "--deny-port",
        },
        BadInput {
            name: "a malformed source prefix",
            args: &[
                "--route",
                "10.30.0.0/24",
                "--via",
                "10.12.0.2",
                "--deny-src",
                "10.0.0/8",
            ],
            exit: Exit::Code(2),
            says: "10.0.0/8",
        },
    ];
    assert_bad_inputs(
        &cases,
        |case| {
            let mut cmd = ns.command(BIN);
            cmd.args(case.args);
            cmd
        },
        |case| {
            let routes = ns.ip(&["route", "show"]).unwrap();
            assert!(!routes.contains("10.30.0.0"), "{}: {routes}", case.name);
        },
    );
}
