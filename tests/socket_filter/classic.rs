//! The chapter's comparison with classic BPF: what tcpdump compiles a
//! filter to, as `tcpdump -d` prints it.

use testkit::chapter::assert_sample;
use testkit::{require_privileges, NetNs};

#[test]
fn tcpdump_compiles_udp_port_9000() {
    require_privileges!("tcpdump_compiles_udp_port_9000");
    // In a namespace of its own, tcpdump finds no interface up and assumes
    // Ethernet: it only compiles, it captures nothing.
    let ns = NetNs::new().unwrap();
    let out: std::process::Output = ns
        .command("tcpdump")
        .args(["-d", "udp", "port", "9000"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump ({e}): `make setup` installs it"));
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_sample("docs/10-socket_filter.md", "tcpdump_d", &listing);
}
