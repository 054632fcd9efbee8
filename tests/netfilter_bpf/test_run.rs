//! BPF_PROG_TEST_RUN: both programs on frames built with etherparse. Both
//! test runs take the Ethernet frame and hand the program what follows its
//! header, the IP packet, as iptables and the hook do. Each case checks
//! both verdicts and the counters.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput};

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::skel::netfilter_bpf::types::{nfb_count, nfb_verdict, nfb_way};
use learning_ebpf_rs::skel::netfilter_bpf::{NetfilterBpfSkel, NetfilterBpfSkelBuilder};
use testkit::packets::{packet, simple, v6_chain, IpOpts, Vlan, L4, V4_SRC, V6_SRC};
use testkit::require_privileges;

use crate::refused;

const NF_INET_LOCAL_IN: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const DENIED_PORT: u16 = 53;

fn load<'o>(
    object: &'o mut MaybeUninit<libbpf_rs::OpenObject>,
    deny_src: &[Cidr],
) -> NetfilterBpfSkel<'o> {
    let skel = NetfilterBpfSkelBuilder::default()
        .open(object)
        .unwrap()
        .load()
        .expect("load netfilter_bpf");
    for prefix in deny_src {
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

/// The size of the kernel's `struct nf_hook_state`, from its BTF: test_run
/// takes the whole struct, with every field but the first two zero.
fn hook_state_size() -> usize {
    use libbpf_rs::btf::{types::Struct, Btf, HasSize};
    let btf = Btf::from_vmlinux().expect("the kernel's BTF");
    btf.type_by_name::<Struct>("nf_hook_state")
        .expect("struct nf_hook_state in the kernel's BTF")
        .size()
}

/// Both programs' answers for `frame`: (the match's, the hook's).
fn run(skel: &NetfilterBpfSkel, frame: &[u8]) -> (u32, u32) {
    let matched = skel
        .progs
        .nfb_match
        .test_run(ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        })
        .unwrap();
    // The netfilter program's context is the hook's state, of which
    // test_run takes the first two fields, the hook and the protocol
    // family. On LOCAL_IN it takes an Ethernet frame, like the socket
    // filter's test_run, and hands the program what follows the header.
    let family = if u16::from_be_bytes([frame[12], frame[13]]) == 0x86dd {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    };
    let mut state = vec![0u8; hook_state_size()];
    state[..2].copy_from_slice(&[NF_INET_LOCAL_IN, family]);
    let hooked = skel
        .progs
        .nfb_hook
        .test_run(ProgramInput {
            data_in: Some(frame),
            context_in: Some(&mut state),
            ..Default::default()
        })
        .unwrap();
    (matched.return_value, hooked.return_value)
}

/// The packets each way counted, per verdict.
fn counted(skel: &NetfilterBpfSkel, way: nfb_way) -> [u64; 3] {
    std::array::from_fn(|v| {
        let key = way.0 * nfb_verdict::NFB_VERDICT_MAX.0 + v as u32;
        percpu_sum::<nfb_count>(&skel.maps.verdicts, &key.to_ne_bytes())
            .unwrap()
            .packets
    })
}

#[test]
fn both_programs_give_the_policys_verdict() {
    require_privileges!("both_programs_give_the_policys_verdict");
    if refused("both_programs_give_the_policys_verdict") {
        return;
    }
    let other_v4: Cidr = "203.0.113.0/24".parse().unwrap();
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &[other_v4]);
    let udp = |dport| L4::Udp {
        sport: 40000,
        dport,
    };
    let tcp = |dport| L4::Tcp {
        sport: 40000,
        dport,
    };
    let later_fragment = |v6| IpOpts {
        v6,
        fragment: Some((8, false)),
        ..Default::default()
    };
    // (what, frame, denied?, by which verdict)
    let cases: Vec<(&str, Vec<u8>, Option<usize>)> = vec![
        ("IPv4 UDP to an allowed port", simple(false, udp(80)), None),
        (
            "IPv4 UDP to the denied port",
            simple(false, udp(DENIED_PORT)),
            Some(2),
        ),
        (
            "IPv4 TCP to the denied port",
            simple(false, tcp(DENIED_PORT)),
            Some(2),
        ),
        ("IPv4 ICMP", simple(false, L4::IcmpEcho), None),
        (
            "IPv6 UDP to the denied port",
            simple(true, udp(DENIED_PORT)),
            Some(2),
        ),
        ("IPv6 TCP to an allowed port", simple(true, tcp(443)), None),
        (
            "IPv6 behind 5 extension headers",
            v6_chain(5, udp(DENIED_PORT)),
            Some(2),
        ),
        (
            "IPv6 behind 6 extension headers",
            v6_chain(6, udp(80)),
            Some(2),
        ),
        (
            "IPv4 later fragment (no ports)",
            packet(Vlan::None, &later_fragment(false), udp(DENIED_PORT), b"x"),
            None,
        ),
        (
            "IPv6 later fragment (no ports)",
            packet(Vlan::None, &later_fragment(true), udp(DENIED_PORT), b"x"),
            None,
        ),
    ];
    let mut expect_counts = [0u64; 3];
    for (what, frame, denied) in &cases {
        let want = match denied {
            Some(_) => (1, NF_DROP),
            None => (0, NF_ACCEPT),
        };
        assert_eq!(run(&skel, frame), want, "{what}");
        expect_counts[denied.unwrap_or(0)] += 1;
    }
    assert_eq!(counted(&skel, nfb_way::NFB_WAY_IPTABLES), expect_counts);
    assert_eq!(counted(&skel, nfb_way::NFB_WAY_HOOK), expect_counts);
}

#[test]
fn a_denied_source_is_dropped_whatever_its_port() {
    require_privileges!("a_denied_source_is_dropped_whatever_its_port");
    if refused("a_denied_source_is_dropped_whatever_its_port") {
        return;
    }
    let v4 = Cidr::from_parts(&V4_SRC.octets(), 24).unwrap();
    let v6 = Cidr::from_parts(&V6_SRC.octets(), 64).unwrap();
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &[v4, v6]);
    for v6 in [false, true] {
        for l4 in [
            L4::Udp {
                sport: 1,
                dport: 80,
            },
            L4::Tcp {
                sport: 1,
                dport: 80,
            },
            if v6 { L4::Icmpv6Echo } else { L4::IcmpEcho },
        ] {
            assert_eq!(run(&skel, &simple(v6, l4)), (1, NF_DROP), "{v6} {l4:?}");
        }
        // A later fragment has no ports, but it has a source.
        let frag = IpOpts {
            v6,
            fragment: Some((8, false)),
            ..Default::default()
        };
        let frame = packet(
            Vlan::None,
            &frag,
            L4::Udp {
                sport: 1,
                dport: 80,
            },
            b"x",
        );
        assert_eq!(run(&skel, &frame), (1, NF_DROP), "{v6} later fragment");
    }
    assert_eq!(counted(&skel, nfb_way::NFB_WAY_HOOK), [0, 8, 0]);
}

#[test]
fn cut_off_packets_pass_without_a_read_past_the_end() {
    require_privileges!("cut_off_packets_pass_without_a_read_past_the_end");
    if refused("cut_off_packets_pass_without_a_read_past_the_end") {
        return;
    }
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, &[]);
    // The stack drops a packet shorter than its headers before iptables or
    // the hook sees it; the programs must still read only what is there.
    let frame = simple(
        false,
        L4::Udp {
            sport: 1,
            dport: DENIED_PORT,
        },
    );
    for len in 14 + 20..frame.len() {
        let (m, h) = run(&skel, &frame[..len]);
        let ports_there = len >= 14 + 20 + 4;
        let want = if ports_there {
            (1, NF_DROP)
        } else {
            (0, NF_ACCEPT)
        };
        assert_eq!((m, h), want, "cut to {len} bytes");
    }
}
