//! load_balancer proven in the kernel, in a topology of namespaces this test
//! makes: a client, the load balancer, and three backends that answer with
//! their own name. 1,000 TCP connections spread by weight and each stays on
//! one backend; draining and removing backends at run time; UDP flows; clean
//! up after exit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use std::mem::MaybeUninit;
use std::net::Ipv4Addr;

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput, ProgramMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use learning_ebpf_rs::skel::load_balancer::{types, LoadBalancerSkelBuilder};
use learning_ebpf_rs::testing::lb_topology::{
    backend_arg, backend_ip, connect, one_connection, udp_flow, Conn, Topology, BACKEND_PORT, VIP,
    VIP_PORT,
};
use learning_ebpf_rs::testing::{
    assert_one_line_error, run_cmd, BpfFs, HostPinDir, Running, HIDDEN_BY_IP_NETNS_EXEC,
};
use learning_ebpf_rs::{maps, require_privileges, skel};

const BIN: &str = env!("CARGO_BIN_EXE_load_balancer");

struct Lb {
    running: Running,
    fs: BpfFs,
}

fn start_lb(topo: &Topology, backends: &[String]) -> Lb {
    let fs = BpfFs::new().unwrap();
    let mut cmd = topo.lb.command(BIN);
    cmd.args([
        "-i",
        "c0",
        "--vip",
        &format!("{VIP}:{VIP_PORT}"),
        "--json",
        "--pin",
    ])
    .arg(fs.path().join("lb"));
    for b in backends {
        cmd.args(["--backend", b]);
    }
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    Lb { running, fs }
}

impl Lb {
    fn manage(&self, args: &[&str]) -> String {
        let out = run_cmd(
            Command::new(BIN)
                .args(args)
                .arg("--pin")
                .arg(self.fs.path().join("lb")),
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Backend -> connections, from `stats --json`.
    fn connections(&self) -> HashMap<String, u64> {
        let stats: serde_json::Value =
            serde_json::from_str(&self.manage(&["stats", "--json"])).unwrap();
        stats["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["backend"].as_str().unwrap().to_string(),
                    b["connections"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn stop(self, topo: &Topology) {
        self.running.signal(libc::SIGINT).unwrap();
        let (status, _, stderr) = self.running.finish(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "{stderr:?}");
        // The program was on the clients' interface and on the replies'.
        for dev in ["c0", "b1", "b2", "b3"] {
            let tc = |what: &str| {
                let out = run_cmd(topo.lb.command("tc").args([what, "show", "dev", dev]).args(
                    if what == "filter" {
                        &["ingress"][..]
                    } else {
                        &[][..]
                    },
                ))
                .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            assert!(tc("filter").is_empty(), "a TC filter is left on {dev}");
            assert!(
                !tc("qdisc").contains("clsact"),
                "a clsact qdisc is left on {dev}"
            );
        }
        assert!(!self.fs.path().join("lb").exists(), "pins left behind");
    }
}

fn tally(names: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for n in names {
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

#[test]
fn thousand_connections_spread_by_weight() {
    require_privileges!("thousand_connections_spread_by_weight");
    let topo = Topology::new().unwrap();
    topo.verify_checksums().unwrap();
    let weights = [1usize, 2, 3];
    let args: Vec<String> = (0..3)
        .map(|i| format!("{},{}", backend_arg(i), weights[i]))
        .collect();
    let lb = start_lb(&topo, &args);

    // 1,000 connections, four at a time.
    let names: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..250)
                        .map(|_| one_connection(&topo.client))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(names.len(), 1000);
    let counts = tally(names);
    let total: usize = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let expected = 1000.0 * *w as f64 / total as f64;
        let got = counts.get(&format!("b{}", i + 1)).copied().unwrap_or(0) as f64;
        assert!(
            (got - expected).abs() <= expected * 0.15,
            "b{}: {got} connections, expected {expected:.0} +-15%: {counts:?}",
            i + 1
        );
    }
    // The program's own count agrees with what the backends saw.
    let stats = lb.connections();
    for i in 0..3 {
        let seen = counts.get(&format!("b{}", i + 1)).copied().unwrap_or(0) as u64;
        assert_eq!(stats[&backend_arg(i)], seen, "stats for b{}", i + 1);
    }
    lb.stop(&topo);
}

#[test]
fn drain_and_remove_at_run_time() {
    require_privileges!("drain_and_remove_at_run_time");
    let topo = Topology::new().unwrap();
    let args: Vec<String> = (0..3).map(backend_arg).collect();
    let lb = start_lb(&topo, &args);

    // 30 connections that stay open, spread over all three.
    let mut open: Vec<(Conn, String)> = (0..30)
        .map(|_| {
            let mut c = connect(&topo.client);
            let name = c.ask("hello");
            (c, name)
        })
        .collect();
    assert_eq!(tally(open.iter().map(|(_, n)| n.clone())).len(), 3);

    // Drain b1: its connections carry on, new ones avoid it.
    lb.manage(&["drain", &backend_arg(0)]);
    for (c, name) in open.iter_mut() {
        assert_eq!(&c.ask("still there?"), name, "an open connection moved");
    }
    let new = tally((0..60).map(|_| one_connection(&topo.client)));
    assert!(
        !new.contains_key("b1"),
        "a new connection went to the drained b1: {new:?}"
    );
    assert!(new.contains_key("b2") && new.contains_key("b3"));

    // Remove b2: new connections avoid it; the others' connections carry on.
    lb.manage(&["remove", &backend_arg(1)]);
    let new = tally((0..30).map(|_| one_connection(&topo.client)));
    assert_eq!(
        new.get("b3"),
        Some(&30),
        "only b3 takes new connections: {new:?}"
    );
    for (c, name) in open.iter_mut().filter(|(_, n)| n != "b2") {
        assert_eq!(&c.ask("and now?"), name, "an open connection moved");
    }

    // Bring b2 back: it takes new connections again.
    lb.manage(&["add", &backend_arg(1)]);
    let new = tally((0..30).map(|_| one_connection(&topo.client)));
    assert!(new.contains_key("b2"), "b2 is back: {new:?}");
    drop(open);
    lb.stop(&topo);
}

#[test]
fn a_backend_on_a_new_interface_is_attached_there() {
    require_privileges!("a_backend_on_a_new_interface_is_attached_there");
    let topo = Topology::new().unwrap();
    // Backend 3, behind b3, is not there at the start...
    let lb = start_lb(&topo, &[backend_arg(0), backend_arg(1)]);
    // ...and added later: its replies only reach the client if the program
    // is on b3 too, to turn their source back into the VIP. `add` returns
    // only once that is so: flows sent straight after it must all work,
    // UDP (each reply must come from the VIP) and TCP alike.
    let out = lb.manage(&["add", &backend_arg(2)]);
    assert!(out.contains("added"), "{out}");
    let udp = tally((0..30).map(|i| udp_flow(&topo.client, 42000 + i)));
    assert!(udp.contains_key("b3"), "no UDP flow reached b3: {udp:?}");
    // Every connection completes (one_connection fails otherwise), b3's
    // too. About a third go to b3: each CPU walks the table with its own
    // cursor, so not exactly 10.
    let counts = tally((0..30).map(|_| one_connection(&topo.client)));
    let b3 = counts.get("b3").copied().unwrap_or(0);
    assert!((5..=15).contains(&b3), "b3 took {b3} of 30: {counts:?}");
    lb.stop(&topo);
}

/// A backend's row in `stats --json`: (state, connections, packets).
fn row(stats: &serde_json::Value, backend: &str) -> Option<(String, u64, u64)> {
    stats["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == backend)
        .map(|b| {
            (
                b["state"].as_str().unwrap().to_string(),
                b["connections"].as_u64().unwrap(),
                b["packets"].as_u64().unwrap(),
            )
        })
}

#[test]
fn a_new_backend_starts_at_zero() {
    require_privileges!("a_new_backend_starts_at_zero");
    let topo = Topology::new().unwrap();
    let args: Vec<String> = (0..3).map(backend_arg).collect();
    let lb = start_lb(&topo, &args);
    let stats =
        || -> serde_json::Value { serde_json::from_str(&lb.manage(&["stats", "--json"])).unwrap() };

    // Connections that stay open, b2's among them.
    let mut open: Vec<(Conn, String)> = (0..12)
        .map(|_| {
            let mut c = connect(&topo.client);
            let name = c.ask("hello");
            (c, name)
        })
        .collect();
    let on_b2 = open.iter().filter(|(_, n)| n == "b2").count() as u64;
    assert!(on_b2 > 0, "no connection on b2");

    // Removed, b2 keeps its row, its address and its counts.
    lb.manage(&["remove", &backend_arg(1)]);
    let (state, conns, packets) = row(&stats(), &backend_arg(1)).expect("b2's row");
    assert_eq!((state.as_str(), conns), ("removed", on_b2));

    // A new backend (a second address in b2's namespace) starts at zero.
    topo.backends[1]
        .ip(&["addr", "add", "10.21.2.3/24", "dev", "eth0"])
        .unwrap();
    let newcomer = format!("10.21.2.3:{BACKEND_PORT}");
    lb.manage(&["add", &newcomer]);
    assert_eq!(
        row(&stats(), &newcomer),
        Some(("active".into(), 0, 0)),
        "{}",
        stats()
    );

    // The removed backend's open connections go on, and count for it only.
    for (c, name) in open.iter_mut() {
        assert_eq!(&c.ask("still there?"), name, "an open connection moved");
    }
    let after = stats();
    let (_, _, packets_after) = row(&after, &backend_arg(1)).unwrap();
    assert!(
        packets_after > packets,
        "b2's packets: {packets} then {packets_after}"
    );
    assert_eq!(
        row(&after, &newcomer),
        Some(("active".into(), 0, 0)),
        "{after}"
    );

    // Adding what is there says what it changed.
    let out = lb.manage(&["add", &format!("{},3", backend_arg(0))]);
    assert!(out.contains("weight 1 -> 3"), "{out}");
    let out = lb.manage(&["add", &format!("{},3", backend_arg(0))]);
    assert!(out.contains("nothing changed"), "{out}");
    drop(open);
    lb.stop(&topo);
}

/// The chapter's way to run the balancer in a namespace: `nsenter --net`,
/// pins in the host's /sys/fs/bpf, managed from another shell (here, the
/// test itself in the host's namespaces). `ip netns exec` hides
/// /sys/fs/bpf, and the error says so and names the way that works.
#[test]
fn runs_in_a_namespace_and_is_managed_from_another_shell() {
    require_privileges!("runs_in_a_namespace_and_is_managed_from_another_shell");
    let topo = Topology::new().unwrap();
    let pin = HostPinDir::new("lb").unwrap();
    let vip = format!("{VIP}:{VIP_PORT}");

    let out = topo
        .lb
        .command(BIN)
        .args(["-i", "c0", "--vip", &vip, "--backend", &backend_arg(0)])
        .output()
        .unwrap();
    assert_one_line_error(&out, &HIDDEN_BY_IP_NETNS_EXEC);

    let mut cmd = topo.lb.nsenter(BIN);
    cmd.args(["-i", "c0", "--vip", &vip, "--pin"])
        .arg(pin.path());
    for i in 0..3 {
        cmd.args(["--backend", &backend_arg(i)]);
    }
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let manage = |args: &[&str]| {
        let out = run_cmd(Command::new(BIN).args(args).arg("--pin").arg(pin.path())).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    manage(&["drain", &backend_arg(0)]);
    let new = tally((0..20).map(|_| one_connection(&topo.client)));
    assert!(
        !new.contains_key("b1"),
        "the drained b1 took new ones: {new:?}"
    );
    let stats: serde_json::Value = serde_json::from_str(&manage(&["stats", "--json"])).unwrap();
    assert_eq!(row(&stats, &backend_arg(0)).unwrap().0, "draining");

    running.signal(libc::SIGINT).unwrap();
    let (status, _, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    assert!(!pin.path().exists(), "pins left behind");
}

#[test]
fn udp_flows_follow_the_same_rules() {
    require_privileges!("udp_flows_follow_the_same_rules");
    let topo = Topology::new().unwrap();
    topo.verify_checksums().unwrap();
    let args: Vec<String> = (0..3).map(backend_arg).collect();
    let lb = start_lb(&topo, &args);

    // Each flow is one client socket with a source port of its own.
    let next_port = std::sync::atomic::AtomicU16::new(41000);
    let flow = || udp_flow(&topo.client, next_port.fetch_add(1, Ordering::Relaxed));
    let counts = tally((0..150).map(|_| flow()));
    for i in 1..=3 {
        let got = counts.get(&format!("b{i}")).copied().unwrap_or(0);
        assert!(
            (40..=60).contains(&got),
            "b{i}: {got} of 150 flows: {counts:?}"
        );
    }
    lb.manage(&["drain", &backend_arg(2)]);
    let counts = tally((0..30).map(|_| flow()));
    assert!(
        !counts.contains_key("b3"),
        "a new UDP flow went to the drained b3: {counts:?}"
    );
    lb.stop(&topo);
}

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    let topo = Topology::new().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["-i", "c0", "--vip", "10.30.0.100"], "IP:PORT"),
        (
            &[
                "-i",
                "c0",
                "--vip",
                "10.30.0.100:80",
                "--backend",
                "10.21.1.2:8080,0",
            ],
            "weight",
        ),
        (
            &[
                "-i",
                "c0",
                "--vip",
                "10.30.0.100:80",
                "--backend",
                "nohost:80",
            ],
            "IPv4 address and port",
        ),
        (
            &[
                "-i",
                "c0",
                "--vip",
                "10.30.0.100:80",
                "--backend",
                "10.21.1.2:8080,1",
                "--backend",
                "10.21.1.2:8080,3",
            ],
            "backend 10.21.1.2:8080 is given twice",
        ),
        (
            &["-i", "nosuchif0", "--vip", "10.30.0.100:80"],
            "interface 'nosuchif0' not found",
        ),
        (
            &["-i", "eth0", "--vip", "10.30.0.100:80"],
            "IPv4 forwarding is off",
        ),
    ];
    for (args, needle) in cases {
        // The last case runs in the client namespace, where forwarding is off.
        let ns = if needle.contains("forwarding") {
            &topo.client
        } else {
            &topo.lb
        };
        let out = ns.command(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------
// BPF_PROG_TEST_RUN: the program's translation, packet by packet, checked
// with etherparse and an independent checksum. It runs in the load
// balancer's namespace of a Topology, as if arriving on c0 (or b1), so
// that conntrack and the route lookups are the real ones.

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
    let ip =
        PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC).ipv4(src.ip().octets(), dst.ip().octets(), 64);
    let mut out = Vec::new();
    match seg {
        Segment::Syn => ip
            .tcp(src.port(), dst.port(), 1000, 64240)
            .syn()
            .write(&mut out, payload),
        Segment::Ack => ip
            .tcp(src.port(), dst.port(), 1001, 64240)
            .ack(1)
            .write(&mut out, payload),
        Segment::Udp { .. } => ip.udp(src.port(), dst.port()).write(&mut out, payload),
    }
    .unwrap();
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
