//! The raw path: the object from `make raw` (plain clang, no Rust) loaded
//! by iproute2's `tc`, counting traffic.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use libbpf_rs::{MapCore, MapHandle};

use learning_ebpf_rs::maps;
use learning_ebpf_rs::skel::tc_classifier::types;
use testkit::chapter::assert_sample;
use testkit::{require_privileges, run_cmd, TwoHosts, DEV_A, IP4_A};

use crate::{run_tc, ICMP, INGRESS, PROTO_MAX};

#[test]
fn raw_object_loaded_by_iproute2_counts_traffic() {
    require_privileges!("raw_object_loaded_by_iproute2_counts_traffic");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_cmd(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(root)
            .arg("raw"),
    )
    .unwrap();
    let obj = root.join("build/tc_classifier.bpf.o");

    let hosts = TwoHosts::new().unwrap();
    run_tc(&hosts.a, &["qdisc", "add", "dev", DEV_A, "clsact"]);
    run_tc(
        &hosts.a,
        &[
            "filter",
            "add",
            "dev",
            DEV_A,
            "ingress",
            "bpf",
            "da",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "tc",
        ],
    );
    let shown = run_tc(&hosts.a, &["filter", "show", "dev", DEV_A, "ingress"]);
    assert_sample("docs/01-tc_classifier.md", "tc_filter_show", &shown);
    assert!(
        shown.contains("tc_ingress"),
        "iproute2 loaded the first program of section tc: {shown}"
    );
    let prog_id: u32 = shown
        .split(" id ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no prog id in {shown}"));

    let ping = hosts
        .b
        .command("ping")
        .args(["-c", "4", "-i", "0.2", &IP4_A.to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success());

    // Find the program's counters map the way `bpftool map dump name
    // counters` would: by the program's map ids.
    let info =
        run_cmd(Command::new("bpftool").args(["-j", "prog", "show", "id", &prog_id.to_string()]))
            .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let (map_id, map) = info["map_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap() as u32)
        .map(|id| (id, MapHandle::from_map_id(id).unwrap()))
        .find(|(_, m)| m.name().to_str() == Some("counters"))
        .expect("counters map");
    let key = INGRESS * PROTO_MAX + ICMP;
    let packets = maps::percpu_sum::<types::tc_counter>(&map, &key.to_ne_bytes())
        .unwrap()
        .packets;
    assert!(
        packets >= 4,
        "ingress icmp counted by the raw object: {packets}"
    );
    let _ = map.as_fd();

    // What the chapter shows `bpftool map dump` print (here by id: other
    // programs on the machine may have a map named counters too).
    let dump =
        run_cmd(Command::new("bpftool").args(["map", "dump", "id", &map_id.to_string()])).unwrap();
    assert_sample(
        "docs/01-tc_classifier.md",
        "bpftool_map_dump",
        &String::from_utf8_lossy(&dump.stdout),
    );
}
