//! BPF_PROG_TEST_RUN: the LWT_IN program's verdict and counters for
//! packets built with etherparse (test_run takes an Ethernet frame and
//! hands the program what follows the Ethernet header, as a route would).

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput};

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::skel::lwt_filter::types::lwt_count;
use learning_ebpf_rs::skel::lwt_filter::{LwtFilterSkel, LwtFilterSkelBuilder};
use testkit::packets::{packet, IpOpts, Vlan, L4};
use testkit::require_privileges;

const OK: u32 = 0; // BPF_OK
const DROP: u32 = 2; // BPF_DROP
const DENIED_PORT: u16 = 53;

/// Loads the program with `deny_src` prefixes and port 53 denied.
fn load<'o>(
    object: &'o mut MaybeUninit<libbpf_rs::OpenObject>,
    deny_src: &[&str],
) -> LwtFilterSkel<'o> {
    let skel = LwtFilterSkelBuilder::default()
        .open(object)
        .unwrap()
        .load()
        .expect("load lwt_filter");
    for prefix in deny_src {
        let prefix: Cidr = prefix.parse().unwrap();
        let map = match prefix {
            Cidr::V4(..) => &skel.maps.deny_src_v4,
            Cidr::V6(..) => &skel.maps.deny_src_v6,
        };
        map.update(&prefix.lpm_key(), &[1], MapFlags::ANY).unwrap();
    }
    skel.maps
        .deny_ports
        .update(&DENIED_PORT.to_ne_bytes(), &[1], MapFlags::ANY)
        .unwrap();
    skel
}

/// The verdict for `frame`, or None where test_run refused the frame
/// itself (EINVAL: shorter than the IP header its EtherType names).
fn run(skel: &LwtFilterSkel, frame: &[u8]) -> Option<u32> {
    let input = ProgramInput {
        data_in: Some(frame),
        ..Default::default()
    };
    match skel.progs.lwt_in_filter.test_run(input) {
        Ok(out) => Some(out.return_value),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::InvalidInput => None,
        Err(e) => panic!("test_run of {} bytes: {e}", frame.len()),
    }
}

/// Packets per verdict: pass, drop-source, drop-port.
fn counts(skel: &LwtFilterSkel) -> [u64; 3] {
    std::array::from_fn(|v| {
        percpu_sum::<lwt_count>(&skel.maps.verdicts, &(v as u32).to_ne_bytes())
            .unwrap()
            .packets
    })
}

fn ip(v6: bool) -> IpOpts {
    IpOpts {
        v6,
        ..Default::default()
    }
}

fn udp(dport: u16) -> L4 {
    L4::Udp {
        sport: 40000,
        dport,
    }
}

#[test]
fn each_verdict_for_ipv4_and_ipv6() {
    require_privileges!("each_verdict_for_ipv4_and_ipv6");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &[]);
    let tcp53 = L4::Tcp {
        sport: 40000,
        dport: 53,
    };
    let ext = IpOpts {
        v6: true,
        v6_ext_headers: true,
        ..Default::default()
    };
    let later_fragment = IpOpts {
        fragment: Some((10, false)),
        ..Default::default()
    };
    for (name, frame, verdict) in [
        (
            "ipv4 udp 53",
            packet(Vlan::None, &ip(false), udp(53), b"x"),
            DROP,
        ),
        (
            "ipv4 udp 80",
            packet(Vlan::None, &ip(false), udp(80), b"x"),
            OK,
        ),
        (
            "ipv4 tcp 53",
            packet(Vlan::None, &ip(false), tcp53, b""),
            DROP,
        ),
        (
            "ipv6 udp 53",
            packet(Vlan::None, &ip(true), udp(53), b"x"),
            DROP,
        ),
        (
            "ipv6 udp 80",
            packet(Vlan::None, &ip(true), udp(80), b"x"),
            OK,
        ),
        // The port behind two extension headers is found all the same.
        (
            "ipv6 ext udp 53",
            packet(Vlan::None, &ext, udp(53), b"x"),
            DROP,
        ),
        // A later fragment has no ports: nothing to deny it by.
        (
            "ipv4 fragment",
            packet(Vlan::None, &later_fragment, udp(53), b"x"),
            OK,
        ),
        (
            "icmp",
            packet(Vlan::None, &ip(false), L4::IcmpEcho, b"x"),
            OK,
        ),
    ] {
        assert_eq!(run(&skel, &frame), Some(verdict), "{name}");
    }
    assert_eq!(counts(&skel), [4, 0, 4]);
}

#[test]
fn source_prefixes_by_longest_match() {
    require_privileges!("source_prefixes_by_longest_match");
    let mut object = MaybeUninit::uninit();
    // The test packets come from 192.0.2.1 and 2001:db8::1.
    let skel = load(&mut object, &["192.0.2.0/24", "2001:db8::/64"]);
    for v6 in [false, true] {
        let frame = packet(Vlan::None, &ip(v6), udp(80), b"x");
        assert_eq!(run(&skel, &frame), Some(DROP), "v6: {v6}");
    }
    assert_eq!(counts(&skel), [0, 2, 0]);
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &["192.0.3.0/24", "2001:db8:1::/64"]);
    for v6 in [false, true] {
        let frame = packet(Vlan::None, &ip(v6), udp(80), b"x");
        assert_eq!(run(&skel, &frame), Some(OK), "v6: {v6}");
    }
}

/// Cut at every length: a packet passes (the stack drops what is
/// malformed) until its ports are all there, and is dropped from then on;
/// never an error.
#[test]
fn truncated_packets_at_every_length() {
    require_privileges!("truncated_packets_at_every_length");
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &[]);
    // (name, frame, length test_run needs, length the ports need)
    for (name, frame, accepted, need) in [
        (
            "ipv4",
            packet(Vlan::None, &ip(false), udp(53), b"x"),
            34,
            42,
        ),
        ("ipv6", packet(Vlan::None, &ip(true), udp(53), b"x"), 54, 62),
    ] {
        let mut short_runs = 0;
        for len in 14..=frame.len() {
            let Some(verdict) = run(&skel, &frame[..len]) else {
                assert!(len < accepted, "{name}: test_run refused {len} bytes");
                continue;
            };
            let expected = if len >= need { DROP } else { OK };
            assert_eq!(verdict, expected, "{name} cut at {len} bytes");
            short_runs += usize::from(len < need);
        }
        assert!(
            short_runs >= 8,
            "{name}: only {short_runs} short lengths ran"
        );
    }
}
