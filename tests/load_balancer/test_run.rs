//! BPF_PROG_TEST_RUN: the program's translation, packet by packet, checked
//! with etherparse and an independent checksum. It runs in the load
//! balancer's namespace of a Topology, as if arriving on c0 (or b1), so
//! that conntrack and the route lookups are the real ones.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr};

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput, ProgramMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use learning_ebpf_rs::skel::load_balancer::{types, LoadBalancerSkelBuilder};
use learning_ebpf_rs::{maps, skel};
use testkit::{packets, require_privileges, run_cmd};

use crate::topology::{backend_ip, Topology, BACKEND_PORT, VIP, VIP_PORT};

// The verdicts, from bpf/lib/parsing.h through the skeleton's types.
const TC_ACT_OK: u32 = types::tc_verdict::TC_ACT_OK.0;
const TC_ACT_SHOT: u32 = types::tc_verdict::TC_ACT_SHOT.0;
const TC_ACT_REDIRECT: u32 = types::tc_verdict::TC_ACT_REDIRECT.0;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x1b];

/// The one's complement sum of `data` (RFC 1071), folded, starting at `sum`.
fn ones_sum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Checks both checksums of an IPv4 TCP or UDP frame (with none, for a UDP
/// checksum of 0), and returns its addresses, ports and TTL.
fn check_frame(frame: &[u8]) -> (SocketAddr, SocketAddr, u8, Option<u16>) {
    let headers = PacketHeaders::from_ethernet_slice(frame).expect("a parsable frame");
    let Some(NetHeaders::Ipv4(ip, _)) = &headers.net else {
        panic!("not IPv4")
    };
    let ip_len = ip.header_len();
    let ip_bytes = &frame[14..14 + ip_len];
    assert_eq!(ones_sum(ip_bytes, 0), 0xffff, "IPv4 header checksum");
    let l4 = &frame[14 + ip_len..14 + usize::from(ip.total_len)];
    let (sport, dport, proto, csum) = match headers.transport.as_ref().expect("L4") {
        TransportHeader::Tcp(t) => (t.source_port, t.destination_port, 6u8, Some(t.checksum)),
        TransportHeader::Udp(u) => (
            u.source_port,
            u.destination_port,
            17u8,
            (u.checksum != 0).then_some(u.checksum),
        ),
        other => panic!("unexpected L4 {other:?}"),
    };
    if csum.is_some() {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip.source);
        pseudo.extend_from_slice(&ip.destination);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let sum = ones_sum(&pseudo, 0);
        assert_eq!(ones_sum(l4, u32::from(sum)), 0xffff, "L4 checksum");
    }
    (
        SocketAddr::from((ip.source, sport)),
        SocketAddr::from((ip.destination, dport)),
        ip.time_to_live,
        csum,
    )
}

/// What a test frame carries: TCP (SYN or ACK), or UDP with a checksum or
/// without one (0, which IPv4 allows).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Segment {
    Syn,
    Ack,
    Udp { zero_checksum: bool },
}

fn frame(src: SocketAddr, dst: SocketAddr, seg: Segment, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        unreachable!()
    };
    let segment = match seg {
        Segment::Syn => packets::Segment::Syn,
        Segment::Ack => packets::Segment::Ack,
        Segment::Udp { .. } => packets::Segment::Udp,
    };
    let mut out = packets::ipv4((CLIENT_MAC, LB_MAC), src, dst, segment, payload);
    if seg
        == (Segment::Udp {
            zero_checksum: true,
        })
    {
        out[14 + 20 + 6] = 0;
        out[14 + 20 + 7] = 0;
    }
    out
}

/// Runs the program on `frame` as if it arrived on `ifindex`: the verdict
/// and the frame as the program left it.
fn run_on(prog: &ProgramMut, ifindex: u32, frame: &[u8]) -> (u32, Vec<u8>) {
    // The start of struct __sk_buff, up to ifindex (the kernel zero-fills
    // the rest); the offsets come from the skeleton's copy of the struct.
    use std::mem::{offset_of, size_of};
    let field = |offset: usize| offset..offset + size_of::<u32>();
    let ingress = field(offset_of!(types::__sk_buff, ingress_ifindex));
    let dev = field(offset_of!(types::__sk_buff, ifindex));
    let mut ctx = vec![0u8; dev.end];
    ctx[ingress].copy_from_slice(&ifindex.to_ne_bytes());
    ctx[dev].copy_from_slice(&ifindex.to_ne_bytes());
    let ctx_bytes = &mut ctx[..];
    let mut out = vec![0u8; frame.len() + 64];
    let input = ProgramInput {
        context_in: Some(ctx_bytes),
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..Default::default()
    };
    let output = prog.test_run(input).expect("test_run");
    let verdict = output.return_value;
    let len = output.data.map(|d| d.len()).unwrap();
    out.truncate(len);
    (verdict, out)
}

/// One flow through the program: the client's packet goes to the backend,
/// the backend's answer comes back from the VIP; both rewritten with
/// valid checksums and one less TTL.
#[derive(Clone, Debug)]
struct Flow {
    client: Ipv4Addr,
    sport: u16,
    tcp: bool,
    zero_checksum: bool,
    payload: Vec<u8>,
}

fn flow_strategy() -> impl Strategy<Value = Flow> {
    (
        any::<[u8; 4]>(),
        1024u16..,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(ip, sport, tcp, zero_checksum, payload)| Flow {
            // Any address on the clients' subnet (the LB routes there).
            client: Ipv4Addr::new(10, 20, 0, ip[3].clamp(2, 254)),
            sport,
            tcp,
            zero_checksum: zero_checksum && !tcp,
            payload,
        })
}

#[test]
fn test_run_translates_both_ways() {
    require_privileges!("test_run_translates_both_ways");
    if crate::refused("test_run_translates_both_ways") {
        return;
    }
    let topo = Topology::new().unwrap();
    // The backend's MAC in the LB's neighbour table, so that the route
    // lookup in the program finds it (not only the next hop).
    run_cmd(
        topo.lb
            .command("ping")
            .args(["-c1", "-W2", &backend_ip(0).to_string()]),
    )
    .unwrap();
    run_cmd(topo.lb.command("ping").args(["-c1", "-W2", "10.20.0.2"])).unwrap();
    let backend_mac = topo.backends[0].mac("eth0").unwrap();
    let c0_mac = topo.lb.mac("c0").unwrap();
    let b1_mac = topo.lb.mac("b1").unwrap();
    let client_mac = topo.client.mac("eth0").unwrap();
    let (c0, b1) = (
        topo.lb.ifindex("c0").unwrap(),
        topo.lb.ifindex("b1").unwrap(),
    );
    let backend = SocketAddr::from((backend_ip(0), BACKEND_PORT));
    let vip = SocketAddr::from((VIP, VIP_PORT));

    topo.lb.run(|| {
        let mut object = MaybeUninit::uninit();
        let mut open = LoadBalancerSkelBuilder::default()
            .open(&mut object)
            .unwrap();
        let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut()).unwrap();
        rodata.vip_addr = u32::from(VIP).to_be();
        rodata.vip_port = VIP_PORT;
        let skel = open.load().unwrap();
        // One backend, in every slot of the table.
        let be = types::lb_backend {
            addr: u32::from(backend_ip(0)).to_be(),
            port: u32::from(BACKEND_PORT),
            weight: 1,
            state: 0,
            gen: 0,
        };
        skel.maps
            .backends
            .update(&0u32.to_ne_bytes(), maps::bytes_of(&be), MapFlags::ANY)
            .unwrap();
        for slot in 0..1024u32 {
            skel.maps
                .table
                .update(&slot.to_ne_bytes(), &0u32.to_ne_bytes(), MapFlags::ANY)
                .unwrap();
        }
        let prog = &skel.progs.lb_ingress;

        let mut runner = TestRunner::new(Config {
            cases: 200,
            max_shrink_iters: 100,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&flow_strategy(), |f| {
            let client = SocketAddr::from((f.client, f.sport));
            let first = if f.tcp {
                Segment::Syn
            } else {
                Segment::Udp {
                    zero_checksum: f.zero_checksum,
                }
            };
            let (verdict, out) = run_on(prog, c0, &frame(client, vip, first, &f.payload));
            prop_assert_eq!(verdict, TC_ACT_REDIRECT, "client -> VIP");
            let (src, dst, ttl, csum) = check_frame(&out);
            prop_assert_eq!((src, dst, ttl), (client, backend, 63));
            prop_assert_eq!(
                csum.is_none(),
                f.zero_checksum,
                "UDP without a checksum stays so"
            );
            prop_assert_eq!(&out[..6], &backend_mac[..], "to the backend's MAC");
            prop_assert_eq!(&out[6..12], &b1_mac[..], "from the LB's b1");

            let answer = if f.tcp { Segment::Ack } else { first };
            let (verdict, out) = run_on(prog, b1, &frame(backend, client, answer, &f.payload));
            prop_assert_eq!(verdict, TC_ACT_REDIRECT, "backend -> client");
            let (src, dst, ttl, _) = check_frame(&out);
            prop_assert_eq!((src, dst, ttl), (vip, client, 63));
            // Only 10.20.0.2 exists (and is in the neighbour table, after
            // the ping below): for the others the kernel is left to resolve
            // the MAC (bpf_redirect_neigh), and the frame keeps its own.
            if f.client == Ipv4Addr::new(10, 20, 0, 2) {
                prop_assert_eq!(&out[..6], &client_mac[..], "to the client's MAC");
                prop_assert_eq!(&out[6..12], &c0_mac[..], "from the LB's c0");
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("a translation went wrong (minimal case below):\n{e}");
        }

        // Traffic that is not for the VIP and belongs to no flow passes.
        let other = frame(
            SocketAddr::from((Ipv4Addr::new(10, 20, 0, 2), 5000)),
            backend,
            Segment::Syn,
            b"",
        );
        let (verdict, out) = run_on(prog, c0, &other);
        assert_eq!(
            (verdict, &out),
            (TC_ACT_OK, &other),
            "unrelated traffic untouched"
        );

        // A TCP segment of no known flow is dropped and counted.
        let stray = frame(
            SocketAddr::from((Ipv4Addr::new(10, 20, 0, 2), 5001)),
            vip,
            Segment::Ack,
            b"",
        );
        assert_eq!(run_on(prog, c0, &stray).0, TC_ACT_SHOT, "a stray segment");
        let counters: types::lb_counters =
            maps::percpu_sum(&skel.maps.counters, &0u32.to_ne_bytes()).unwrap();
        assert_eq!(counters.stray, 1);

        // A new backend takes slot 0 (the next generation) while a flow of
        // the old one is open: the flow goes on to the old backend, and its
        // packets count as retired, never for the newcomer.
        let client = SocketAddr::from((Ipv4Addr::new(10, 20, 0, 2), 5003));
        assert_eq!(
            run_on(prog, c0, &frame(client, vip, Segment::Syn, b"")).0,
            TC_ACT_REDIRECT
        );
        let newcomer = types::lb_backend {
            addr: u32::from(Ipv4Addr::new(10, 21, 1, 3)).to_be(),
            gen: 1,
            ..be
        };
        skel.maps
            .backends
            .update(
                &0u32.to_ne_bytes(),
                maps::bytes_of(&newcomer),
                MapFlags::ANY,
            )
            .unwrap();
        let (verdict, out) = run_on(prog, c0, &frame(client, vip, Segment::Ack, b"x"));
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_eq!(
            check_frame(&out).1,
            backend,
            "the flow stays on its backend"
        );
        let counters: types::lb_counters =
            maps::percpu_sum(&skel.maps.counters, &0u32.to_ne_bytes()).unwrap();
        assert_eq!(counters.retired_packets, 1);
        let stats: Vec<types::lb_stats> =
            maps::percpu(&skel.maps.stats, &0u32.to_ne_bytes()).unwrap();
        assert!(
            stats.iter().all(|s| s.gen == 0),
            "no CPU's copy was started over for the newcomer: {stats:?}"
        );

        // No active backend: a new flow is dropped and counted.
        skel.maps
            .table
            .update(&0u32.to_ne_bytes(), &u32::MAX.to_ne_bytes(), MapFlags::ANY)
            .unwrap();
        for slot in 0..1024u32 {
            skel.maps
                .table
                .update(&slot.to_ne_bytes(), &u32::MAX.to_ne_bytes(), MapFlags::ANY)
                .unwrap();
        }
        let syn = frame(
            SocketAddr::from((Ipv4Addr::new(10, 20, 0, 2), 5002)),
            vip,
            Segment::Syn,
            b"",
        );
        assert_eq!(run_on(prog, c0, &syn).0, TC_ACT_SHOT, "no backend");
        let counters: types::lb_counters =
            maps::percpu_sum(&skel.maps.counters, &0u32.to_ne_bytes()).unwrap();
        assert_eq!(counters.no_backend, 1);
    });

    // The flows are the kernel's own conntrack entries, NAT included.
    let listing = run_cmd(topo.lb.command("conntrack").args(["-L"]))
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    let ours = listing
        .lines()
        .filter(|l| {
            l.contains(&format!("dst={VIP}")) && l.contains(&format!("src={}", backend_ip(0)))
        })
        .count();
    assert!(
        ours >= 100,
        "{ours} entries for the VIP in conntrack:\n{listing}"
    );
}
