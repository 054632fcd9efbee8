//! BPF_PROG_TEST_RUN: the capture filter's verdict (the snap length, or 0)
//! for frames built with etherparse, under each kind of filter.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::ProgramInput;

use learning_ebpf_rs::cidr;
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::skel::socket_filter::types::filter_counts;
use learning_ebpf_rs::skel::socket_filter::SocketFilterSkelBuilder;
use testkit::packets::{arp, packet, IpOpts, Vlan, L4, V4_DST, V6_SRC};
use testkit::require_privileges;

const SNAP: u32 = 96;

/// A filter as the binary sets it in .rodata.
#[derive(Default, Clone, Copy)]
struct Want {
    proto: u8,
    port: u16,
    host: Option<IpAddr>,
    vlan: u16,
}

/// Loads the filter for `want` and runs each frame through it: the
/// verdicts (None where BPF_PROG_TEST_RUN refused the frame itself, with
/// EINVAL), and the kept/rejected counts the program kept.
fn run_all(want: Want, frames: &[&[u8]]) -> (Vec<Option<u32>>, (u64, u64)) {
    let mut object = MaybeUninit::uninit();
    let mut open = SocketFilterSkelBuilder::default()
        .open(&mut object)
        .unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.want_proto = want.proto;
    rodata.want_port = want.port;
    if let Some(host) = want.host {
        rodata.want_host = true;
        rodata.host_addr = cidr::mapped_words(host);
    }
    rodata.want_vlan = want.vlan;
    rodata.snaplen = SNAP;
    let skel = open.load().expect("load socket_filter");
    let got = frames
        .iter()
        .map(|frame| {
            let input = ProgramInput {
                data_in: Some(frame),
                ..Default::default()
            };
            match skel.progs.capture.test_run(input) {
                Ok(out) => Some(out.return_value),
                Err(e) if e.kind() == libbpf_rs::ErrorKind::InvalidInput => None,
                Err(e) => panic!("test_run of {} bytes: {e}", frame.len()),
            }
        })
        .collect();
    let c: filter_counts = percpu_sum(&skel.maps.counts, &0u32.to_ne_bytes()).unwrap();
    (got, (c.kept, c.rejected))
}

/// [`run_all`] for frames that BPF_PROG_TEST_RUN must accept.
fn verdicts(want: Want, frames: &[&[u8]]) -> (Vec<u32>, (u64, u64)) {
    let (got, counts) = run_all(want, frames);
    let got = got
        .into_iter()
        .map(|v| v.expect("BPF_PROG_TEST_RUN refused a whole frame"))
        .collect();
    (got, counts)
}

fn v4(vlan: Vlan, l4: L4) -> Vec<u8> {
    packet(vlan, &IpOpts::default(), l4, b"hello")
}

fn v6(vlan: Vlan, l4: L4) -> Vec<u8> {
    let ip = IpOpts {
        v6: true,
        ..Default::default()
    };
    packet(vlan, &ip, l4, b"hello")
}

const UDP53: L4 = L4::Udp {
    sport: 40000,
    dport: 53,
};
const TCP80: L4 = L4::Tcp {
    sport: 80,
    dport: 40000,
};

#[test]
fn each_criterion_keeps_what_it_names() {
    require_privileges!("each_criterion_keeps_what_it_names");
    let frames = [
        v4(Vlan::None, UDP53),          // 0
        v6(Vlan::None, UDP53),          // 1
        v4(Vlan::None, TCP80),          // 2 (port 80 is the source)
        v6(Vlan::Single, TCP80),        // 3 (VLAN 100)
        v4(Vlan::Double, UDP53),        // 4 (outer 200, inner 100)
        v4(Vlan::None, L4::IcmpEcho),   // 5
        v6(Vlan::None, L4::Icmpv6Echo), // 6
        arp(),                          // 7
    ];
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let keep = |want: Want, kept: &[usize]| {
        let (got, (k, r)) = verdicts(want, &refs);
        let expected: Vec<u32> = (0..refs.len())
            .map(|i| if kept.contains(&i) { SNAP } else { 0 })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            (k, r),
            (kept.len() as u64, (refs.len() - kept.len()) as u64)
        );
    };
    keep(Want::default(), &[0, 1, 2, 3, 4, 5, 6, 7]);
    keep(
        Want {
            proto: 17,
            ..Default::default()
        },
        &[0, 1, 4],
    );
    keep(
        Want {
            proto: 6,
            ..Default::default()
        },
        &[2, 3],
    );
    keep(
        Want {
            proto: 1,
            ..Default::default()
        },
        &[5],
    );
    keep(
        Want {
            proto: 58,
            ..Default::default()
        },
        &[6],
    );
    keep(
        Want {
            port: 53,
            ..Default::default()
        },
        &[0, 1, 4],
    );
    keep(
        Want {
            port: 80,
            ..Default::default()
        },
        &[2, 3],
    );
    keep(
        Want {
            port: 40000,
            proto: 6,
            ..Default::default()
        },
        &[2, 3],
    );
    keep(
        Want {
            host: Some(IpAddr::V4(V4_DST)),
            ..Default::default()
        },
        &[0, 2, 4, 5],
    );
    keep(
        Want {
            host: Some(IpAddr::V6(V6_SRC)),
            ..Default::default()
        },
        &[1, 3, 6],
    );
    // The first tag: 100 for the single tag, 200 (the outer) for QinQ.
    keep(
        Want {
            vlan: 100,
            ..Default::default()
        },
        &[3],
    );
    keep(
        Want {
            vlan: 200,
            ..Default::default()
        },
        &[4],
    );
    keep(
        Want {
            vlan: 100,
            proto: 6,
            port: 80,
            ..Default::default()
        },
        &[3],
    );
}

/// A frame cut at every length from the Ethernet header on: rejected while
/// the headers the filter needs are incomplete, kept from the first length
/// at which they are all there, and never an error. BPF_PROG_TEST_RUN
/// itself refuses (EINVAL) a frame whose EtherType names IPv4 or IPv6 but
/// that is shorter than that IP header; those lengths are skipped, and each
/// case still runs lengths that cut the headers the filter reads.
#[test]
fn truncated_frames_at_every_length() {
    require_privileges!("truncated_frames_at_every_length");
    // (name, frame, length test_run needs, length the filter needs)
    for (name, frame, accepted, need) in [
        // Ethernet 14 + IPv4 20 + the two ports 4.
        ("ipv4 udp", v4(Vlan::None, UDP53), 34, 38),
        // Ethernet 14 + two tags 8 + IPv4 20 + ports 4; the EtherType is
        // the outer tag's, so test_run takes every length.
        ("qinq ipv4 udp", v4(Vlan::Double, UDP53), 14, 46),
        // Ethernet 14 + IPv6 40 + ports 4.
        ("ipv6 udp", v6(Vlan::None, UDP53), 54, 58),
    ] {
        let cuts: Vec<&[u8]> = (14..=frame.len()).map(|n| &frame[..n]).collect();
        let want = Want {
            proto: 17,
            port: 53,
            ..Default::default()
        };
        let (got, _) = run_all(want, &cuts);
        let mut cut_and_run = 0;
        for (i, verdict) in got.iter().enumerate() {
            let len = 14 + i;
            let Some(verdict) = verdict else {
                assert!(len < accepted, "{name}: test_run refused {len} bytes");
                continue;
            };
            let expected = if len >= need { SNAP } else { 0 };
            assert_eq!(*verdict, expected, "{name} cut at {len} bytes");
            cut_and_run += usize::from(len < need);
        }
        assert!(
            cut_and_run >= 4,
            "{name}: only {cut_and_run} short lengths ran"
        );
    }
}

/// Later IPv4 fragments carry no ports: a port filter rejects them, a
/// protocol filter keeps them.
#[test]
fn later_fragments_have_no_ports() {
    require_privileges!("later_fragments_have_no_ports");
    let ip = IpOpts {
        fragment: Some((10, false)),
        ..Default::default()
    };
    let frag = packet(Vlan::None, &ip, UDP53, b"hello");
    let (got, _) = verdicts(
        Want {
            port: 53,
            ..Default::default()
        },
        &[&frag],
    );
    assert_eq!(got, [0]);
    let (got, _) = verdicts(
        Want {
            proto: 17,
            ..Default::default()
        },
        &[&frag],
    );
    assert_eq!(got, [SNAP]);
}
