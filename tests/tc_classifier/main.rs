//! tc_classifier proven in the kernel: BPF_PROG_TEST_RUN on built packets,
//! the binary in a pair of network namespaces, the raw iproute2 path, and
//! bad input.

mod bad_input;
mod iproute2;
mod netns;
mod test_run;

use learning_ebpf_rs::skel::tc_classifier::types;
use testkit::{run_cmd, NetNs, TwoHosts, DEV_A};

// The verdicts, from bpf/lib/parsing.h through the skeleton's types.
const TC_ACT_OK: i32 = types::tc_verdict::TC_ACT_OK.0 as i32;
const TC_ACT_SHOT: i32 = types::tc_verdict::TC_ACT_SHOT.0 as i32;
const DROP_PORT: u16 = 23;
const BIN: &str = env!("CARGO_BIN_EXE_tc_classifier");

const TCP: u32 = types::tc_proto::TC_PROTO_TCP.0;
const UDP: u32 = types::tc_proto::TC_PROTO_UDP.0;
const ICMP: u32 = types::tc_proto::TC_PROTO_ICMP.0;
const ICMPV6: u32 = types::tc_proto::TC_PROTO_ICMPV6.0;
const OTHER: u32 = types::tc_proto::TC_PROTO_OTHER.0;
const PROTO_MAX: u32 = types::tc_proto::TC_PROTO_MAX.0;
const INGRESS: u32 = types::tc_dir::TC_DIR_INGRESS.0;
const EGRESS: u32 = types::tc_dir::TC_DIR_EGRESS.0;

/// What `tc` shows on DEV_A of `hosts.a`: qdiscs, ingress and egress filters.
fn tc_state(hosts: &TwoHosts) -> (String, String, String) {
    (
        run_tc(&hosts.a, &["qdisc", "show", "dev", DEV_A]),
        run_tc(&hosts.a, &["filter", "show", "dev", DEV_A, "ingress"]),
        run_tc(&hosts.a, &["filter", "show", "dev", DEV_A, "egress"]),
    )
}

/// `tc` inside the namespace, through `ip netns exec`: loading an object
/// makes iproute2 create its directories in bpffs, and this way they land in
/// a private mount namespace that disappears with the command.
fn run_tc(ns: &NetNs, args: &[&str]) -> String {
    let out = run_cmd(ns.command("tc").args(args)).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
