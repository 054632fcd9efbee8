//! Connections per second and requests per second through the conntrack-kfunc
//! load balancer, against the same topology balanced by nftables DNAT with
//! numgen, measured in one run. `cargo bench --bench load_balancer` (root).
//!
//! Three views: end to end (what the client sees, with the client and the
//! backends on the same 2 CPUs); per second of the balancer's CPU (its
//! packet work steered to one CPU and measured there, with what that CPU's
//! time went to); and UDP floods that keep that CPU busy. docs/benchmarks.md
//! has the method and the results.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use learning_ebpf_rs::privileges::Cap;
use testkit::bench::{can_run, cpu_idle_secs, flood, median, softirqs};
use testkit::packets::{self, Segment};

// The tests' topology (client, router, three backends), shared by path.
#[path = "../tests/load_balancer/topology.rs"]
#[allow(dead_code)]
mod topology;

use testkit::{pin_process, run_cmd, BpfFs, NetNs, Running};
use topology::{
    backend_arg, backend_ip, connect_to, one_connection_to, Topology, BACKEND_PORT, VIP, VIP_PORT,
};

const CONNECTIONS: usize = 2000;
const WORKERS: usize = 4;
const PERSISTENT: usize = 16;
const REQUESTS: usize = 1000;
/// View 2 does this many times the work of view 1: LB_CPU is busy for
/// only a fraction of the time, and /proc/stat counts in 10 ms ticks, so a
/// sample must keep it busy for much longer than a tick.
const CPU_SCALE: usize = 3;
const ROUNDS: usize = 3;
/// The CPU the balancer's packet work is steered to in views 2 and 3.
const LB_CPU: usize = 1;
/// View 3: UDP floods from a raw socket in the client namespace.
const FLOWS: usize = 256;
const FLOOD_PACKETS: usize = 400_000;
const NEW_FLOWS: usize = 60_000;
const FLOOD_LIMIT: Duration = Duration::from_secs(10);

/// Where connection `n` goes: the VIP, or (for the routing-only
/// reference) the backends directly, in turn.
type Target = fn(usize) -> SocketAddr;

fn vip(_: usize) -> SocketAddr {
    SocketAddr::from((VIP, VIP_PORT))
}

fn direct(n: usize) -> SocketAddr {
    SocketAddr::from((backend_ip(n % 3), BACKEND_PORT))
}

/// One measurement: operations done, wall seconds, the seconds LB_CPU was
/// busy meanwhile, and how often its NET_RX softirq ran (with steering:
/// how often it was woken for packets).
struct Sample {
    ops: f64,
    wall: f64,
    lb_cpu: f64,
    net_rx: f64,
}

fn timed(ops: usize, f: impl FnOnce()) -> Sample {
    let idle0 = cpu_idle_secs(LB_CPU);
    let rx0 = softirqs(LB_CPU, "NET_RX");
    let start = Instant::now();
    f();
    let wall = start.elapsed().as_secs_f64();
    // Let the last packets' softirq work finish, and count it.
    std::thread::sleep(Duration::from_millis(20));
    let lb_cpu = start.elapsed().as_secs_f64() - (cpu_idle_secs(LB_CPU) - idle0);
    Sample {
        ops: ops as f64,
        wall,
        lb_cpu,
        net_rx: (softirqs(LB_CPU, "NET_RX") - rx0) as f64,
    }
}

/// Connections: CONNECTIONS short connections (three lines each), WORKERS
/// at a time.
fn cps(topo: &Topology, target: Target) -> Sample {
    connections(topo, target, CONNECTIONS)
}

/// [`cps`] with CPU_SCALE times the connections, for view 2.
fn cps_cpu(topo: &Topology, target: Target) -> Sample {
    connections(topo, target, CONNECTIONS * CPU_SCALE)
}

fn connections(topo: &Topology, target: Target, count: usize) -> Sample {
    timed(count, || {
        std::thread::scope(|s| {
            for w in 0..WORKERS {
                s.spawn(move || {
                    for n in 0..count / WORKERS {
                        one_connection_to(&topo.client, target(w + n * WORKERS));
                    }
                });
            }
        })
    })
}

/// Requests: PERSISTENT connections, REQUESTS round trips each, all at once.
fn rps(topo: &Topology, target: Target) -> Sample {
    requests(topo, target, REQUESTS)
}

/// [`rps`] with CPU_SCALE times the round trips, for view 2.
fn rps_cpu(topo: &Topology, target: Target) -> Sample {
    requests(topo, target, REQUESTS * CPU_SCALE)
}

fn requests(topo: &Topology, target: Target, each: usize) -> Sample {
    let mut conns: Vec<_> = (0..PERSISTENT)
        .map(|n| connect_to(&topo.client, target(n)))
        .collect();
    timed(PERSISTENT * each, || {
        std::thread::scope(|s| {
            for conn in conns.iter_mut() {
                s.spawn(move || {
                    for i in 0..each {
                        conn.ask(&i.to_string());
                    }
                });
            }
        })
    })
}

type Measure = fn(&Topology, Target) -> Sample;
type Setup = fn(&Topology, Measure) -> Sample;

const SETUPS: [(&str, Setup); 3] = [
    ("nftables DNAT", with_nftables),
    ("conntrack kfuncs", with_ebpf),
    ("routing only", routing_only),
];

fn routing_only(topo: &Topology, f: Measure) -> Sample {
    f(topo, direct)
}

fn with_ebpf(topo: &Topology, f: Measure) -> Sample {
    let fs = BpfFs::new().unwrap();
    let mut cmd = topo.lb.command(env!("CARGO_BIN_EXE_load_balancer"));
    cmd.args([
        "-i",
        "c0",
        "--vip",
        &format!("{VIP}:{VIP_PORT}"),
        "--interval",
        "3600",
        "--pin",
    ])
    .arg(fs.path().join("lb"));
    for i in 0..3 {
        cmd.args(["--backend", &backend_arg(i)]);
    }
    let mut lb = Running::spawn(cmd).unwrap();
    lb.wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let result = f(topo, vip);
    lb.signal(libc::SIGINT).unwrap();
    lb.finish(Duration::from_secs(10)).unwrap();
    result
}

fn with_nftables(topo: &Topology, f: Measure) -> Sample {
    let nft = |args: &[&str]| run_cmd(topo.lb.command("nft").args(args)).unwrap();
    nft(&["add", "table", "ip", "lebpf_nat"]);
    nft(&[
        "add",
        "chain",
        "ip",
        "lebpf_nat",
        "pre",
        "{ type nat hook prerouting priority dstnat; }",
    ]);
    let map = (0..3)
        .map(|i| format!("{i} : {}", backend_ip(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let rule = format!(
        "add rule ip lebpf_nat pre ip daddr {VIP} meta l4proto {{ tcp, udp }} th dport {VIP_PORT} \
         dnat to numgen inc mod 3 map {{ {map} }} :{BACKEND_PORT}"
    );
    run_cmd(topo.lb.command("nft").arg(&rule)).unwrap();
    let result = f(topo, vip);
    nft(&["delete", "table", "ip", "lebpf_nat"]);
    result
}

/// One UDP frame per flow, from the client to `target(flow)`: source
/// ports 1024 and up.
fn udp_frames(topo: &Topology, target: Target, flows: usize) -> Vec<Vec<u8>> {
    let src_mac = topo.client.mac("eth0").unwrap();
    let dst_mac = topo.lb.mac("c0").unwrap();
    (0..flows)
        .map(|n| {
            let dst = target(n);
            let SocketAddr::V4(dst) = dst else {
                unreachable!()
            };
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 20, 0, 2), 1024 + n as u16);
            packets::ipv4((src_mac, dst_mac), src, dst, Segment::Udp, &[0u8; 18])
        })
        .collect()
}

/// Packets the balancer (or router) sent towards the backends.
fn delivered(topo: &Topology) -> f64 {
    ["b1", "b2", "b3"]
        .iter()
        .map(|dev| topo.lb.tx_packets(dev).unwrap())
        .sum::<u64>() as f64
}

fn flush_conntrack(topo: &Topology) {
    run_cmd(topo.lb.command("conntrack").arg("-F")).unwrap();
}

/// Packets of established flows: FLOWS flows get their first packet, then
/// FLOOD_PACKETS more follow, taking the flows in turn.
fn established_flood(topo: &Topology, target: Target) -> Sample {
    let frames = udp_frames(topo, target, FLOWS);
    flood(&topo.client, "eth0", &frames, FLOWS, FLOOD_LIMIT);
    std::thread::sleep(Duration::from_millis(100));
    let before = delivered(topo);
    let mut sample = timed(0, || {
        flood(&topo.client, "eth0", &frames, FLOOD_PACKETS, FLOOD_LIMIT);
    });
    sample.ops = delivered(topo) - before;
    sample
}

/// New flows: NEW_FLOWS packets, each the first of a flow of its own.
fn new_flow_flood(topo: &Topology, target: Target) -> Sample {
    flush_conntrack(topo);
    let frames = udp_frames(topo, target, NEW_FLOWS);
    let before = delivered(topo);
    let mut sample = timed(0, || {
        flood(&topo.client, "eth0", &frames, NEW_FLOWS, FLOOD_LIMIT);
    });
    sample.ops = delivered(topo) - before;
    flush_conntrack(topo);
    sample
}

/// In each backend: drop the flood's datagrams as they arrive, before any
/// socket sees them (and answers).
fn sink(topo: &Topology, on: bool) {
    for b in &topo.backends {
        let script = if on {
            format!(
                "table netdev lebpf_sink {{ chain in {{ type filter hook ingress device eth0 \
                 priority 0; udp dport {BACKEND_PORT} drop; }}; }}"
            )
        } else {
            "delete table netdev lebpf_sink".to_string()
        };
        run_cmd(b.command("nft").arg(&script)).unwrap();
    }
}

/// Receive packet steering: with `on`, packets arriving on the balancer's
/// interfaces are processed on LB_CPU, and those arriving at the client
/// and the backends on CPU 0; without, where they arrive (the default).
fn steer(topo: &Topology, on: bool) {
    let set = |ns: &NetNs, dev: &str, mask: u32| {
        let mask = if on { mask } else { 0 };
        let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
        run_cmd(
            ns.command("sh")
                .args(["-c", &format!("echo {mask:x} > {path}")]),
        )
        .unwrap();
    };
    for dev in ["c0", "b1", "b2", "b3"] {
        set(&topo.lb, dev, 1 << LB_CPU);
    }
    set(&topo.client, "eth0", 1);
    for b in &topo.backends {
        set(b, "eth0", 1);
    }
}

/// Runs every setup with each measure, ROUNDS times, alternating; returns
/// the samples, [measure][setup][round].
fn rounds(topo: &Topology, measures: &[Measure]) -> Vec<Vec<Vec<Sample>>> {
    let mut results: Vec<Vec<Vec<Sample>>> = measures
        .iter()
        .map(|_| SETUPS.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..ROUNDS {
        for (m, measure) in measures.iter().enumerate() {
            for (s, (_, setup)) in SETUPS.iter().enumerate() {
                // Entries an earlier setup left in conntrack would decide
                // this one's flows: each starts with an empty table.
                flush_conntrack(topo);
                results[m][s].push(setup(topo, *measure));
            }
        }
    }
    results
}

/// The median of `value` over each setup's rounds of one measure.
fn medians(samples: &[Vec<Sample>], value: impl Fn(&Sample) -> f64) -> Vec<f64> {
    samples
        .iter()
        .map(|rounds| median(rounds.iter().map(&value).collect()))
        .collect()
}

fn print_table(title: &str, unit: &str, rows: &[(String, Vec<f64>)]) {
    println!("\n{title}");
    println!(
        "{:<40} {:>14} {:>17} {:>7} {:>13} {:>7}",
        unit, SETUPS[0].0, SETUPS[1].0, "ratio", SETUPS[2].0, "ratio"
    );
    // Rates in whole numbers; small values (per operation) with decimals.
    let num = |v: f64| match v.abs() < 100.0 {
        true => format!("{v:.2}"),
        false => format!("{v:.0}"),
    };
    for (name, v) in rows {
        println!(
            "{name:<40} {:>14} {:>17} {:>7.2} {:>13} {:>7.2}",
            num(v[0]),
            num(v[1]),
            v[1] / v[0],
            num(v[2]),
            v[2] / v[0]
        );
    }
}

fn main() {
    if !can_run("load_balancer", &[Cap::Bpf, Cap::NetAdmin]) {
        return;
    }
    let topo = Topology::new().unwrap();
    // Every connection to the VIP leaves the client's port in TIME_WAIT for
    // a minute: the whole range, so that a run does not run out.
    topo.client
        .sysctl("net/ipv4/ip_local_port_range", "1024 65535")
        .unwrap();
    println!(
        "client -> load balancer -> 3 backends, all in network namespaces on this machine; \
         {ROUNDS} rounds, alternating, medians"
    );

    // 1. End to end: how fast the client gets its answers. The client's and
    // backends' TCP stacks and threads share the 2 CPUs with the balancer.
    let tcp = rounds(&topo, &[cps, rps]);
    let rate = |s: &Sample| s.ops / s.wall;
    print_table(
        "1. End to end (everything on both CPUs)",
        "per second",
        &[
            (
                format!("connections/s ({CONNECTIONS}, {WORKERS} at a time)"),
                medians(&tcp[0], rate),
            ),
            (
                format!("requests/s ({PERSISTENT} conns x {REQUESTS})"),
                medians(&tcp[1], rate),
            ),
        ],
    );

    // 2. The balancer's own cost: its packet work alone on LB_CPU (receive
    // packet steering sends every packet that arrives on one of its
    // interfaces there), everything else on CPU 0. What one CPU of
    // balancer carries per second of its time.
    steer(&topo, true);
    pin_process(&[0]);
    let tcp = rounds(&topo, &[cps_cpu, rps_cpu]);
    // 3. The same, under UDP floods that keep LB_CPU busy: capacity.
    sink(&topo, true);
    let floods = rounds(&topo, &[new_flow_flood, established_flood]);
    sink(&topo, false);
    steer(&topo, false);
    pin_process(&[0, 1]);

    let per_cpu_s = |s: &Sample| s.ops / s.lb_cpu;
    let load = |s: &Sample| s.lb_cpu / s.wall * 100.0;
    let wakeups = |s: &Sample| s.net_rx / s.ops;
    let busy_us_per_wakeup = |s: &Sample| s.lb_cpu / s.net_rx * 1e6;
    print_table(
        &format!(
            "2. Per second of the balancer's CPU (its packets steered to CPU {LB_CPU}, the rest \
             pinned to CPU 0; CPU {LB_CPU} {:.0}% busy for nftables' requests)",
            medians(&tcp[1], load)[0]
        ),
        "per CPU-second",
        &[
            (
                format!(
                    "connections ({}, {WORKERS} at a time)",
                    CONNECTIONS * CPU_SCALE
                ),
                medians(&tcp[0], per_cpu_s),
            ),
            (
                format!("requests ({PERSISTENT} conns x {})", REQUESTS * CPU_SCALE),
                medians(&tcp[1], per_cpu_s),
            ),
        ],
    );
    // Why view 2 moves between runs: CPU LB_CPU is idle half the time, and
    // every burst of steered packets wakes it. What a wake-up costs does
    // not depend on the balancer, and how many there are per operation
    // depends on how the bursts fall.
    print_table(
        &format!("2b. What CPU {LB_CPU}'s time in view 2 went to (medians)"),
        "per operation, or per wake-up",
        &[
            (
                "NET_RX runs per connection".into(),
                medians(&tcp[0], wakeups),
            ),
            ("NET_RX runs per request".into(), medians(&tcp[1], wakeups)),
            (
                "busy us per NET_RX run, connections".into(),
                medians(&tcp[0], busy_us_per_wakeup),
            ),
            (
                "busy us per NET_RX run, requests".into(),
                medians(&tcp[1], busy_us_per_wakeup),
            ),
        ],
    );
    print_table(
        &format!(
            "3. UDP floods from a raw socket, per second of the balancer's CPU (CPU {LB_CPU} \
             {:.0}% busy for nftables' established flows)",
            medians(&floods[1], load)[0]
        ),
        "per CPU-second",
        &[
            (
                format!("new flows ({NEW_FLOWS}, a packet each)"),
                medians(&floods[0], per_cpu_s),
            ),
            (
                format!("packets of {FLOWS} established flows"),
                medians(&floods[1], per_cpu_s),
            ),
        ],
    );
    println!(
        "\nmeasures: new flows per CPU-second at least 1.5x nftables; packets of known flows per \
         CPU-second at least routing only (the same hops, no balancing at all)"
    );
}
