//! tc_classifier proven in the kernel: BPF_PROG_TEST_RUN on built packets,
//! the binary in a pair of network namespaces, the raw iproute2 path, and
//! bad input.

mod common;

use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{packet, IpOpts, Vlan, L4};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, ProgramInput, ProgramMut};

use learning_ebpf_rs::maps;
use learning_ebpf_rs::require_privileges;
use learning_ebpf_rs::skel::tc_classifier::{types, TcClassifierSkel, TcClassifierSkelBuilder};
use learning_ebpf_rs::testing::{
    prog_gone, run_cmd, NetNs, Running, TwoHosts, DEV_A, IP4_A, IP6_A,
};

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

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------

fn load(object: &mut MaybeUninit<libbpf_rs::OpenObject>) -> TcClassifierSkel<'_> {
    let skel = TcClassifierSkelBuilder::default()
        .open(object)
        .expect("open")
        .load()
        .expect("load tc_classifier");
    skel.maps
        .drop_ports
        .update(&DROP_PORT.to_ne_bytes(), &[1], MapFlags::ANY)
        .expect("add drop port");
    skel
}

/// Every slot of the counters map, summed over CPUs.
fn counters(skel: &TcClassifierSkel) -> Vec<types::tc_counter> {
    (0..2 * PROTO_MAX)
        .map(|key| maps::percpu_sum(&skel.maps.counters, &key.to_ne_bytes()).unwrap())
        .collect()
}

fn test_run(prog: &ProgramMut, frame: &[u8]) -> libbpf_rs::Result<i32> {
    let input = ProgramInput {
        data_in: Some(frame),
        ..Default::default()
    };
    prog.test_run(input).map(|out| out.return_value as i32)
}

/// Runs `frame` through the program for `dir` and checks the verdict, and
/// that exactly one counter slot moved: by one packet, the frame's length,
/// and one drop if the verdict was a drop.
fn check(skel: &TcClassifierSkel, dir: u32, name: &str, frame: &[u8], proto: u32, verdict: i32) {
    let prog = if dir == INGRESS {
        &skel.progs.tc_ingress
    } else {
        &skel.progs.tc_egress
    };
    let before = counters(skel);
    let got = test_run(prog, frame).unwrap_or_else(|e| panic!("{name}: test_run: {e}"));
    let after = counters(skel);
    assert_eq!(got, verdict, "{name}: verdict");
    let slot = (dir * PROTO_MAX + proto) as usize;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let (packets, bytes, dropped) = if i == slot {
            (1, frame.len() as u64, u64::from(verdict == TC_ACT_SHOT))
        } else {
            (0, 0, 0)
        };
        assert_eq!(
            a.packets - b.packets,
            packets,
            "{name}: packets in slot {i}"
        );
        assert_eq!(a.bytes - b.bytes, bytes, "{name}: bytes in slot {i}");
        assert_eq!(
            a.dropped - b.dropped,
            dropped,
            "{name}: dropped in slot {i}"
        );
    }
}

fn tcp(dport: u16) -> L4 {
    L4::Tcp {
        sport: 40000,
        dport,
    }
}

fn udp(dport: u16) -> L4 {
    L4::Udp {
        sport: 40000,
        dport,
    }
}

fn v4() -> IpOpts {
    IpOpts::default()
}

fn v6() -> IpOpts {
    IpOpts {
        v6: true,
        ..Default::default()
    }
}

/// (name, frame, expected protocol slot, expected verdict)
type Case = (&'static str, Vec<u8>, u32, i32);

fn cases() -> Vec<Case> {
    let none = Vlan::None;
    vec![
        (
            "ipv4 tcp",
            packet(none, &v4(), tcp(80), b"x"),
            TCP,
            TC_ACT_OK,
        ),
        (
            "ipv4 tcp to dropped port",
            packet(none, &v4(), tcp(DROP_PORT), b"x"),
            TCP,
            TC_ACT_SHOT,
        ),
        (
            "ipv4 udp",
            packet(none, &v4(), udp(53), b"x"),
            UDP,
            TC_ACT_OK,
        ),
        (
            "ipv4 udp to dropped port",
            packet(none, &v4(), udp(DROP_PORT), b"x"),
            UDP,
            TC_ACT_SHOT,
        ),
        (
            "ipv4 icmp",
            packet(none, &v4(), L4::IcmpEcho, b"x"),
            ICMP,
            TC_ACT_OK,
        ),
        (
            "ipv6 tcp",
            packet(none, &v6(), tcp(443), b"x"),
            TCP,
            TC_ACT_OK,
        ),
        (
            "ipv6 tcp to dropped port",
            packet(none, &v6(), tcp(DROP_PORT), b"x"),
            TCP,
            TC_ACT_SHOT,
        ),
        (
            "ipv6 udp to dropped port",
            packet(none, &v6(), udp(DROP_PORT), b"x"),
            UDP,
            TC_ACT_SHOT,
        ),
        (
            "ipv6 icmpv6",
            packet(none, &v6(), L4::Icmpv6Echo, b"x"),
            ICMPV6,
            TC_ACT_OK,
        ),
        (
            "source port is not the policy",
            packet(
                none,
                &v4(),
                L4::Tcp {
                    sport: DROP_PORT,
                    dport: 80,
                },
                b"x",
            ),
            TCP,
            TC_ACT_OK,
        ),
        (
            "802.1Q ipv4 tcp to dropped port",
            packet(Vlan::Single, &v4(), tcp(DROP_PORT), b"x"),
            TCP,
            TC_ACT_SHOT,
        ),
        (
            "QinQ ipv6 udp to dropped port",
            packet(Vlan::Double, &v6(), udp(DROP_PORT), b"x"),
            UDP,
            TC_ACT_SHOT,
        ),
        (
            "QinQ ipv4 icmp",
            packet(Vlan::Double, &v4(), L4::IcmpEcho, b"x"),
            ICMP,
            TC_ACT_OK,
        ),
        (
            "three VLAN tags is not parsed",
            common::triple_vlan(DROP_PORT),
            OTHER,
            TC_ACT_OK,
        ),
        (
            "ipv4 options (ihl 8) tcp to dropped port",
            packet(
                none,
                &IpOpts {
                    v4_options: vec![1; 12],
                    ..v4()
                },
                tcp(DROP_PORT),
                b"x",
            ),
            TCP,
            TC_ACT_SHOT,
        ),
        (
            "ipv6 hop-by-hop + dest opts, tcp to dropped port",
            packet(
                none,
                &IpOpts {
                    v6_ext_headers: true,
                    ..v6()
                },
                tcp(DROP_PORT),
                b"x",
            ),
            TCP,
            TC_ACT_SHOT,
        ),
        (
            "ipv4 first fragment to dropped port",
            packet(
                none,
                &IpOpts {
                    fragment: Some((0, true)),
                    ..v4()
                },
                udp(DROP_PORT),
                b"x",
            ),
            UDP,
            TC_ACT_SHOT,
        ),
        (
            "ipv4 later fragment has no ports",
            packet(
                none,
                &IpOpts {
                    fragment: Some((8, false)),
                    ..v4()
                },
                udp(DROP_PORT),
                b"x",
            ),
            UDP,
            TC_ACT_OK,
        ),
        (
            "ipv6 first fragment to dropped port",
            packet(
                none,
                &IpOpts {
                    fragment: Some((0, true)),
                    ..v6()
                },
                udp(DROP_PORT),
                b"x",
            ),
            UDP,
            TC_ACT_SHOT,
        ),
        (
            "ipv6 later fragment has no ports",
            packet(
                none,
                &IpOpts {
                    fragment: Some((8, false)),
                    ..v6()
                },
                udp(DROP_PORT),
                b"x",
            ),
            UDP,
            TC_ACT_OK,
        ),
        ("arp is other", common::arp(), OTHER, TC_ACT_OK),
    ]
}

#[test]
fn test_run_verdicts_and_counters() {
    require_privileges!("test_run_verdicts_and_counters");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object);
    for dir in [INGRESS, EGRESS] {
        for (name, frame, proto, verdict) in cases() {
            check(&skel, dir, name, &frame, proto, verdict);
        }
    }
}

fn total_packets(skel: &TcClassifierSkel) -> u64 {
    counters(skel).iter().map(|c| c.packets).sum()
}

/// Cuts `frame` at every length from 13 bytes to one short of complete.
/// Below `kernel_min` the kernel refuses the test run itself (EINVAL) and
/// the program never runs. From there on the program runs: `boundaries` are
/// (length from which, slot), and below the first boundary a frame is
/// "other". A truncated L4 header has no ports to read, so every cut frame
/// passes, even to the dropped port.
fn check_truncations(
    skel: &TcClassifierSkel,
    name: &str,
    frame: &[u8],
    kernel_min: usize,
    boundaries: &[(usize, u32)],
) {
    for len in 13..frame.len() {
        let what = format!("{name} cut at {len}");
        if len < kernel_min {
            let before = total_packets(skel);
            let err = test_run(&skel.progs.tc_ingress, &frame[..len])
                .expect_err(&format!("{what}: the kernel should refuse it"));
            assert_eq!(
                err.kind(),
                libbpf_rs::ErrorKind::InvalidInput,
                "{what}: {err}"
            );
            assert_eq!(total_packets(skel), before, "{what}: nothing counted");
            continue;
        }
        let slot = boundaries
            .iter()
            .rev()
            .find(|(from, _)| len >= *from)
            .map_or(OTHER, |(_, slot)| *slot);
        check(skel, INGRESS, &what, &frame[..len], slot, TC_ACT_OK);
    }
}

#[test]
fn test_run_truncated_frames() {
    require_privileges!("test_run_truncated_frames");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object);

    // The skb test run needs a whole Ethernet header (14 bytes), and for an
    // untagged IPv4 or IPv6 frame also the whole fixed IP header (6.18
    // checks this before running the program). Behind a VLAN tag it does
    // not look, which is how these cases reach the program's own checks.

    // 14 Ethernet + 4 VLAN + 20 IPv4 + 20 TCP: below 38 the IP header is
    // incomplete (other); from 38 the protocol is known (tcp), but the port
    // is not readable until the TCP header is complete at 58.
    let frame = packet(Vlan::Single, &v4(), tcp(DROP_PORT), b"");
    assert_eq!(frame.len(), 58);
    check_truncations(&skel, "802.1Q ipv4 tcp", &frame, 14, &[(38, TCP)]);
    check(
        &skel,
        INGRESS,
        "802.1Q ipv4 tcp complete",
        &frame,
        TCP,
        TC_ACT_SHOT,
    );

    // 14 + 4 + 40 IPv6 + 8 hop-by-hop + 8 dest opts + 8 UDP: the protocol
    // is known once the Next Header field of the last extension header (its
    // first byte) is in the packet, at 66 + 2 = 68 (the helper reads the
    // two-byte ipv6_opt_hdr).
    let ext = IpOpts {
        v6_ext_headers: true,
        ..v6()
    };
    let frame = packet(Vlan::Single, &ext, udp(DROP_PORT), b"");
    assert_eq!(frame.len(), 82);
    check_truncations(&skel, "802.1Q ipv6 ext udp", &frame, 14, &[(68, UDP)]);
    check(
        &skel,
        INGRESS,
        "802.1Q ipv6 ext udp complete",
        &frame,
        UDP,
        TC_ACT_SHOT,
    );

    // Untagged: the kernel refuses frames cut inside the fixed IP header.
    let frame = packet(Vlan::None, &v4(), udp(DROP_PORT), b"");
    check_truncations(&skel, "ipv4 udp", &frame, 34, &[(34, UDP)]);
    let frame = packet(Vlan::None, &ext, tcp(DROP_PORT), b"");
    check_truncations(&skel, "ipv6 ext tcp", &frame, 54, &[(64, TCP)]);
}

/// The parser accepts five IPv6 extension headers. Behind a sixth the
/// ports are out of its reach, so the port policy cannot tell where the
/// packet goes: it is counted as "other" and dropped.
#[test]
fn test_run_ipv6_chain_longer_than_the_parser_walks_is_dropped() {
    require_privileges!("test_run_ipv6_chain_longer_than_the_parser_walks_is_dropped");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object);
    let to = |dport| L4::Tcp { sport: 1000, dport };
    let five = common::v6_chain(5, to(DROP_PORT));
    check(
        &skel,
        INGRESS,
        "five, to the dropped port",
        &five,
        TCP,
        TC_ACT_SHOT,
    );
    let five = common::v6_chain(5, to(80));
    check(
        &skel,
        INGRESS,
        "five, to another port",
        &five,
        TCP,
        TC_ACT_OK,
    );
    let six = common::v6_chain(6, to(80));
    check(&skel, INGRESS, "six", &six, OTHER, TC_ACT_SHOT);
}

#[test]
fn test_run_policy_follows_the_map() {
    require_privileges!("test_run_policy_follows_the_map");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object);
    let frame = packet(Vlan::None, &v4(), udp(5353), b"x");
    check(&skel, INGRESS, "port not listed", &frame, UDP, TC_ACT_OK);
    skel.maps
        .drop_ports
        .update(&5353u16.to_ne_bytes(), &[1], MapFlags::ANY)
        .unwrap();
    check(&skel, INGRESS, "port listed", &frame, UDP, TC_ACT_SHOT);
    skel.maps.drop_ports.delete(&5353u16.to_ne_bytes()).unwrap();
    check(&skel, INGRESS, "port removed", &frame, UDP, TC_ACT_OK);
}

// ---------------------------------------------------------------------------
// The binary in network namespaces
// ---------------------------------------------------------------------------

/// Program ids from the binary's "Attached ... (prog id N) ..." line.
fn prog_ids(line: &str) -> Vec<u32> {
    line.split("prog id ")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no id in {line:?}"))
        })
        .collect()
}

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

/// The totals of the last JSON report: (dir, proto) -> (packets, dropped).
fn last_report(stdout: &[String]) -> std::collections::HashMap<(String, String), (u64, u64)> {
    let last = stdout
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON report");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    report["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                (
                    row["dir"].as_str().unwrap().to_string(),
                    row["proto"].as_str().unwrap().to_string(),
                ),
                (
                    row["packets"].as_u64().unwrap(),
                    row["dropped"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// No filter on either hook, the programs `ids` gone, and a clsact qdisc
/// present exactly when `clsact_expected`.
fn assert_detached(hosts: &TwoHosts, ids: &[u32], clsact_expected: bool) {
    let (qdiscs, ingress, egress) = tc_state(hosts);
    assert_eq!(
        qdiscs.contains("clsact"),
        clsact_expected,
        "qdiscs: {qdiscs}"
    );
    assert!(
        ingress.trim().is_empty() && egress.trim().is_empty(),
        "filters left: {ingress}{egress}"
    );
    for id in ids {
        assert!(prog_gone(*id), "program {id} still loaded");
    }
}

fn start(hosts: &TwoHosts, extra: &[&str]) -> (Running, Vec<u32>) {
    let mut cmd = hosts.a.command(BIN);
    cmd.args(["-i", DEV_A, "--json"]).args(extra);
    let mut running = Running::spawn(cmd).unwrap();
    let line = running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    (running, prog_ids(&line))
}

#[test]
fn netns_counts_both_directions_and_drops_listed_port() {
    require_privileges!("netns_counts_both_directions_and_drops_listed_port");
    let hosts = TwoHosts::new().unwrap();
    let (running, ids) = start(&hosts, &["--drop-port", "5002"]);
    assert_eq!(ids.len(), 2);

    // Receivers on A: UDP on an allowed and a dropped port, TCP on an
    // allowed port. Sockets keep the namespace they were made in.
    let (udp_ok, udp_dropped, tcp_ok) = hosts.a.run(|| {
        let ok = UdpSocket::bind("0.0.0.0:5001").unwrap();
        let dropped = UdpSocket::bind("0.0.0.0:5002").unwrap();
        for s in [&ok, &dropped] {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        (ok, dropped, TcpListener::bind("0.0.0.0:6001").unwrap())
    });

    // B sends 20 datagrams to each UDP port, connects over TCP to the
    // allowed port and tries the dropped one, and pings A over v4 and v6.
    let blocked = hosts.b.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..20 {
            sock.send_to(b"allowed", (IP4_A, 5001)).unwrap();
            sock.send_to(b"dropped", (IP4_A, 5002)).unwrap();
        }
        TcpStream::connect_timeout(&SocketAddr::from((IP4_A, 6001)), Duration::from_secs(2))
            .expect("TCP to an allowed port connects");
        TcpStream::connect_timeout(&SocketAddr::from((IP4_A, 5002)), Duration::from_millis(700))
            .is_err()
    });
    assert!(blocked, "TCP to the dropped port must not connect");
    let accepted = tcp_ok.accept();
    assert!(accepted.is_ok(), "A accepted the allowed TCP connection");
    for (target, flag) in [(IP4_A.to_string(), "-4"), (IP6_A.to_string(), "-6")] {
        let ping = hosts
            .b
            .command("ping")
            .args([flag, "-c", "3", "-i", "0.2", "-W", "2", &target])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {target}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }

    let count = |s: &UdpSocket| {
        let mut buf = [0u8; 64];
        std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
    };
    assert_eq!(
        count(&udp_ok),
        20,
        "every datagram to the allowed port arrives"
    );
    assert_eq!(
        count(&udp_dropped),
        0,
        "no datagram to the dropped port arrives"
    );

    // Ctrl-C: the binary prints a final report and detaches.
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}, stderr {stderr:?}");
    let totals = last_report(&stdout);
    let get = |dir: &str, proto: &str| totals[&(dir.to_string(), proto.to_string())];
    let (udp_in, udp_in_dropped) = get("ingress", "udp");
    assert!(udp_in >= 40, "ingress udp packets {udp_in}");
    assert_eq!(udp_in_dropped, 20, "ingress udp drops");
    let (tcp_in, tcp_in_dropped) = get("ingress", "tcp");
    assert!(
        tcp_in >= 3 && tcp_in_dropped >= 1,
        "ingress tcp {tcp_in} dropped {tcp_in_dropped}"
    );
    assert!(get("egress", "tcp").0 >= 2, "egress tcp (SYN-ACK, ACKs)");
    assert!(
        get("ingress", "icmp").0 >= 3 && get("egress", "icmp").0 >= 3,
        "icmp both ways"
    );
    assert!(
        get("ingress", "icmpv6").0 >= 3 && get("egress", "icmpv6").0 >= 3,
        "icmpv6 both ways"
    );
    assert_eq!(get("egress", "udp").1, 0, "nothing dropped on egress");

    // Nothing remains: no filter, no clsact qdisc (this run created it), and
    // the programs themselves are gone.
    assert_detached(&hosts, &ids, false);
}

#[test]
fn netns_sigterm_keeps_a_clsact_it_did_not_create() {
    require_privileges!("netns_sigterm_keeps_a_clsact_it_did_not_create");
    let hosts = TwoHosts::new().unwrap();
    run_tc(&hosts.a, &["qdisc", "add", "dev", DEV_A, "clsact"]);
    let (running, ids) = start(&hosts, &[]);
    let (_, ingress, _) = tc_state(&hosts);
    assert!(ingress.contains("tc_ingress"), "filter attached: {ingress}");

    running.signal(libc::SIGTERM).unwrap();
    let (status, _, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}, stderr {stderr:?}");
    // The pre-existing clsact must stay; only the filters go.
    assert_detached(&hosts, &ids, true);
}

#[test]
fn netns_tcx_link_detaches_on_sigkill() {
    require_privileges!("netns_tcx_link_detaches_on_sigkill");
    let hosts = TwoHosts::new().unwrap();
    let (running, ids) = start(&hosts, &["--attach", "tcx", "--drop-port", "5002"]);

    // While it runs, the policy is in force.
    let (dropped, receiver) = hosts.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:5002").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        (s.try_clone().unwrap(), s)
    });
    let send = || {
        hosts.b.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"x", (IP4_A, 5002)).unwrap();
        })
    };
    send();
    let mut buf = [0u8; 8];
    assert!(
        dropped.recv(&mut buf).is_err(),
        "dropped while tcx link is attached"
    );

    // SIGKILL gives the binary no chance to clean up: the kernel does it,
    // because the link's only reference was the dead process's fd.
    running.signal(libc::SIGKILL).unwrap();
    let (status, _, _) = running.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    for id in ids {
        assert!(prog_gone(id), "program {id} still loaded after SIGKILL");
    }
    send();
    assert!(
        receiver.recv(&mut buf).is_ok(),
        "traffic flows again after the link is gone"
    );
    let (qdiscs, _, _) = tc_state(&hosts);
    assert!(!qdiscs.contains("clsact"), "tcx creates no qdisc: {qdiscs}");
}

// ---------------------------------------------------------------------------
// The raw path: plain clang + iproute2, no Rust
// ---------------------------------------------------------------------------

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
    let map = info["map_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| MapHandle::from_map_id(id.as_u64().unwrap() as u32).unwrap())
        .find(|m| m.name().to_str() == Some("counters"))
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
}

// ---------------------------------------------------------------------------
// Bad input: one line, non-zero exit, nothing attached
// ---------------------------------------------------------------------------

fn run_bin(hosts: &TwoHosts, wrapper: &[&str], args: &[&str]) -> (i32, Vec<String>) {
    let mut cmd = hosts.a.command(wrapper.first().copied().unwrap_or(BIN));
    if !wrapper.is_empty() {
        cmd.args(&wrapper[1..]).arg(BIN);
    }
    let out = cmd.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(String::from)
        .collect();
    (out.status.code().unwrap_or(-1), stderr)
}

/// (name, wrapper command, arguments, exit code, text the one line holds)
type BadInput<'a> = (&'a str, &'a [&'a str], &'a [&'a str], i32, &'a str);

#[test]
fn bad_input_gives_one_line_and_attaches_nothing() {
    require_privileges!("bad_input_gives_one_line_and_attaches_nothing");
    let hosts = TwoHosts::new().unwrap();
    let drop_caps = [
        "setpriv",
        "--bounding-set=-bpf,-net_admin,-sys_admin,-perfmon",
        "--",
    ];
    let cases: [BadInput; 6] = [
        (
            "unknown interface",
            &[],
            &["-i", "nosuchif0"],
            1,
            "interface 'nosuchif0' not found",
        ),
        (
            "port out of range",
            &[],
            &["-i", DEV_A, "--drop-port", "70000"],
            2,
            "--drop-port",
        ),
        (
            "port zero",
            &[],
            &["-i", DEV_A, "--drop-port", "0"],
            2,
            "--drop-port",
        ),
        (
            "port not a number",
            &[],
            &["-i", DEV_A, "--drop-port", "http"],
            2,
            "--drop-port",
        ),
        ("no interface given", &[], &[], 2, "--iface"),
        (
            "no privileges",
            &drop_caps,
            &["-i", DEV_A],
            1,
            "missing privileges (CAP_BPF, CAP_NET_ADMIN)",
        ),
    ];
    for (name, wrapper, args, code, needle) in cases {
        let (got, stderr) = run_bin(&hosts, wrapper, args);
        assert_eq!(got, code, "{name}: exit code; stderr {stderr:?}");
        assert_eq!(stderr.len(), 1, "{name}: one line, got {stderr:?}");
        assert!(
            stderr[0].contains(needle),
            "{name}: {:?} lacks {needle:?}",
            stderr[0]
        );
        let (qdiscs, ingress, egress) = tc_state(&hosts);
        assert!(
            !qdiscs.contains("clsact") && ingress.is_empty() && egress.is_empty(),
            "{name}: something was attached: {qdiscs}{ingress}{egress}"
        );
    }
}
