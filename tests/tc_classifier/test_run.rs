//! BPF_PROG_TEST_RUN: the program's verdict and counters for built packets,
//! truncated frames, long IPv6 extension chains, and a policy that follows
//! the map.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput, ProgramMut};

use learning_ebpf_rs::maps;
use learning_ebpf_rs::skel::tc_classifier::{types, TcClassifierSkel, TcClassifierSkelBuilder};
use testkit::packets::{packet, IpOpts, Vlan, L4};
use testkit::require_privileges;

use crate::{
    DROP_PORT, EGRESS, ICMP, ICMPV6, INGRESS, OTHER, PROTO_MAX, TCP, TC_ACT_OK, TC_ACT_SHOT, UDP,
};

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
            testkit::packets::triple_vlan(DROP_PORT),
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
        ("arp is other", testkit::packets::arp(), OTHER, TC_ACT_OK),
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
    let five = testkit::packets::v6_chain(5, to(DROP_PORT));
    check(
        &skel,
        INGRESS,
        "five, to the dropped port",
        &five,
        TCP,
        TC_ACT_SHOT,
    );
    let five = testkit::packets::v6_chain(5, to(80));
    check(
        &skel,
        INGRESS,
        "five, to another port",
        &five,
        TCP,
        TC_ACT_OK,
    );
    let six = testkit::packets::v6_chain(6, to(80));
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
