//! Bad input: one line, a non-zero exit, nothing attached.

use testkit::{assert_bad_inputs, require_privileges, run_cmd, BadInput, Exit};

use crate::topology::Topology;
use crate::BIN;

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    if crate::refused("bad_input_gives_one_line") {
        return;
    }
    let topo = Topology::new().unwrap();
    let vip = ["-i", "c0", "--vip", "10.30.0.100:80"];
    let with_vip = |more: &[&'static str]| [&vip[..], more].concat();
    let (zero_weight, no_host, twice) = (
        with_vip(&["--backend", "10.21.1.2:8080,0"]),
        with_vip(&["--backend", "nohost:80"]),
        with_vip(&[
            "--backend",
            "10.21.1.2:8080,1",
            "--backend",
            "10.21.1.2:8080,3",
        ]),
    );
    let cases = [
        BadInput {
            name: "VIP without a port",
            args: &["-i", "c0", "--vip", "10.30.0.100"],
            exit: Exit::Fails,
            says: "IP:PORT",
        },
        BadInput {
            name: "zero weight",
            args: &zero_weight,
            exit: Exit::Fails,
            says: "weight",
        },
        BadInput {
            name: "backend not an address",
            args: &no_host,
            exit: Exit::Fails,
            says: "IPv4 address and port",
        },
        BadInput {
            name: "backend given twice",
            args: &twice,
            exit: Exit::Fails,
            says: "backend 10.21.1.2:8080 is given twice",
        },
        BadInput {
            name: "unknown interface",
            args: &["-i", "nosuchif0", "--vip", "10.30.0.100:80"],
            exit: Exit::Fails,
            says: "interface 'nosuchif0' not found",
        },
        BadInput {
            name: "forwarding off",
            args: &["-i", "eth0", "--vip", "10.30.0.100:80"],
            exit: Exit::Fails,
            says: "IPv4 forwarding is off",
        },
    ];
    assert_bad_inputs(
        &cases,
        |case| {
            // The last case runs in the client's namespace, where
            // forwarding is off; the others in the load balancer's.
            let ns = if case.name == "forwarding off" {
                &topo.client
            } else {
                &topo.lb
            };
            let mut cmd = ns.command(BIN);
            cmd.args(case.args);
            cmd
        },
        |case| {
            // bpftool lists TC programs attached either way (clsact or tcx).
            let shown = run_cmd(
                topo.lb
                    .command("bpftool")
                    .args(["-j", "net", "show", "dev", "c0"]),
            )
            .unwrap();
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
            assert_eq!(
                shown[0]["tc"],
                serde_json::json!([]),
                "{}: attached",
                case.name
            );
        },
    );
}
