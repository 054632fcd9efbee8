//! Connections per second and requests per second through the conntrack-kfunc
//! load balancer, against the same topology balanced by nftables DNAT with
//! numgen, measured in one run. `cargo bench --bench load_balancer` (root).
//!
//! Four views: end to end (what the client sees, with the client and the
//! backends on the same 2 CPUs); per second of the balancer's CPU (its
//! packet work steered to one CPU and measured there, with what that CPU's
//! time went to); UDP floods that keep that CPU busy; and, as a curve
//! (docs/images/bench-lb-flows.svg), packets of 100 to 1,000,000
//! established flows. `-- --curve-only` runs the curve alone.
//! docs/benchmarks.md has the method and the results.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use learning_ebpf_rs::privileges::Cap;
use testkit::bench::{can_run, cpu_idle_secs, flood, median, softirqs, steal_secs};
use testkit::packets::{self, Segment};
use testkit::plot::{self, Point};
use testkit::plots;

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
/// View 4: packets of this many established flows, CURVE_ROUNDS rounds.
const CURVE_FLOWS: [usize; 5] = [100, 1_000, 10_000, 100_000, 1_000_000];
const CURVE_ROUNDS: usize = 5;
const CURVE_LIMIT: Duration = Duration::from_secs(30);
/// First packets sent again (all of them) until conntrack holds every flow:
/// a pass can lose some to the balancer CPU's full backlog.
const ESTABLISH_PASSES: usize = 5;
/// Source ports per client address in the floods' frames.
const PORTS: usize = 60_000;

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
///
/// `lb_cpu` is wall time less the idle, iowait and steal time /proc/stat
/// gives for LB_CPU (the kernel measures idle time exactly, where the busy
/// fields are sampled by a tick that a CPU waking for moments of work
/// rarely sees); `stolen` is the steal time alone.
struct Sample {
    ops: f64,
    wall: f64,
    lb_cpu: f64,
    stolen: f64,
    net_rx: f64,
}

fn timed(ops: usize, f: impl FnOnce()) -> Sample {
    let idle0 = cpu_idle_secs(LB_CPU);
    let steal0 = steal_secs(LB_CPU);
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
        stolen: steal_secs(LB_CPU) - steal0,
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

type Measure<'a> = &'a dyn Fn(&Topology, Target) -> Sample;
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

/// One UDP frame per flow, from the client's subnet to `target(flow)`:
/// source ports 1024 and up, PORTS of them from 10.20.0.2, the next PORTS
/// from 10.20.0.3, and so on.
fn udp_frames(topo: &Topology, target: Target, flows: usize) -> Vec<Vec<u8>> {
    assert!(flows <= 250 * PORTS, "the client's /24 runs out of sources");
    let src_mac = topo.client.mac("eth0").unwrap();
    let dst_mac = topo.lb.mac("c0").unwrap();
    (0..flows)
        .map(|n| {
            let dst = target(n);
            let SocketAddr::V4(dst) = dst else {
                unreachable!()
            };
            let host = 2 + (n / PORTS) as u8;
            let port = 1024 + (n % PORTS) as u16;
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 20, 0, host), port);
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

/// The conntrack entries in the balancer's namespace.
fn ct_count(topo: &Topology) -> usize {
    topo.lb
        .run(|| std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// View 4: packets of `flows` established flows. Every flow gets its first
/// packet (again, until conntrack holds them all, when the setup tracks
/// flows), then max(FLOOD_PACKETS, flows) more follow, taking the flows in
/// turn, so that each is seen at least once.
fn flows_flood(topo: &Topology, target: Target, flows: usize) -> Sample {
    let tracked = target(0) == vip(0);
    let frames = udp_frames(topo, target, flows);
    for _ in 0..ESTABLISH_PASSES {
        flood(&topo.client, "eth0", &frames, flows, CURVE_LIMIT);
        std::thread::sleep(Duration::from_millis(100));
        if !tracked || ct_count(topo) >= flows {
            break;
        }
    }
    let tracking = ct_count(topo);
    assert!(
        !tracked || tracking >= flows,
        "conntrack holds {tracking} of {flows} flows after {ESTABLISH_PASSES} passes"
    );
    let packets = FLOOD_PACKETS.max(flows);
    let before = delivered(topo);
    let mut sample = timed(0, || {
        let sent = flood(&topo.client, "eth0", &frames, packets, CURVE_LIMIT);
        assert_eq!(sent, packets, "the flood stopped at its time limit");
    });
    sample.ops = delivered(topo) - before;
    // No flow may have expired or been added meanwhile.
    assert!(
        !tracked || ct_count(topo) == tracking,
        "conntrack went from {tracking} to {} entries during the measurement",
        ct_count(topo)
    );
    sample
}

/// A sysctl of the initial network namespace raised for the run, and put
/// back when dropped.
struct Raised {
    path: &'static str,
    old: String,
}

impl Raised {
    fn at_least(path: &'static str, value: u64) -> Option<Raised> {
        let old = std::fs::read_to_string(path).unwrap().trim().to_string();
        if old.parse::<u64>().unwrap() >= value {
            return None;
        }
        std::fs::write(path, value.to_string()).unwrap();
        println!(
            "{path}: {old} -> {value} for this run, put back at its end \
             (if the run is cut short: echo {old} > {path})"
        );
        Some(Raised { path, old })
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.path, &self.old) {
            eprintln!("could not put {} back to {}: {e}", self.path, self.old);
        }
    }
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

/// Runs every setup with each measure, `count` times, alternating; returns
/// the samples, [measure][setup][round].
fn rounds(topo: &Topology, measures: &[Measure], count: usize) -> Vec<Vec<Vec<Sample>>> {
    let mut results: Vec<Vec<Vec<Sample>>> = measures
        .iter()
        .map(|_| SETUPS.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..count {
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
    println!("client -> load balancer -> 3 backends, all in network namespaces on this machine");
    let curve_only = std::env::args().any(|a| a == "--curve-only");
    if !curve_only {
        views(&topo);
    }
    curve(
        &topo,
        match curve_only {
            true => "cargo bench --bench load_balancer -- --curve-only",
            false => "cargo bench --bench load_balancer",
        },
    );
}

/// Views 1 to 3: tables.
fn views(topo: &Topology) {
    println!("{ROUNDS} rounds, alternating, medians");
    // 1. End to end: how fast the client gets its answers. The client's and
    // backends' TCP stacks and threads share the 2 CPUs with the balancer.
    let tcp = rounds(topo, &[&cps, &rps], ROUNDS);
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
    steer(topo, true);
    pin_process(&[0]);
    let tcp = rounds(topo, &[&cps_cpu, &rps_cpu], ROUNDS);
    // 3. The same, under UDP floods that keep LB_CPU busy: capacity.
    sink(topo, true);
    let floods = rounds(topo, &[&new_flow_flood, &established_flood], ROUNDS);
    sink(topo, false);
    steer(topo, false);
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

/// Operations per second of LB_CPU's time, counting its steal time as
/// busy. Under floods that leave LB_CPU idle between bursts, most steal is
/// the hypervisor's delay in waking it, time the kernel has already counted
/// as idle: taking it out again made samples' busy time small or negative,
/// and their rates swing tenfold. Counted as busy, the rate is a lower
/// bound (steal while it works is counted as its work), and steady.
fn busy_with_steal(s: &Sample) -> f64 {
    s.ops / (s.lb_cpu + s.stolen)
}

/// View 4: packets of established flows per CPU-second of LB_CPU, against
/// the number of flows, as a curve.
/// `command`: how it was run, for the plot's caption.
fn curve(topo: &Topology, command: &str) {
    let max = *CURVE_FLOWS.iter().max().unwrap();
    // Every entry counts against the kernel's global limit.
    let _limit = Raised::at_least(
        "/proc/sys/net/netfilter/nf_conntrack_max",
        max as u64 * 11 / 10,
    );
    steer(topo, true);
    sink(topo, true);
    pin_process(&[0]);
    // One closure type, one value per flow count.
    let measures: Vec<_> = CURVE_FLOWS
        .iter()
        .map(|&n| move |t: &Topology, target: Target| flows_flood(t, target, n))
        .collect();
    let measures: Vec<Measure> = measures.iter().map(|m| m as Measure).collect();
    let samples = rounds(topo, &measures, CURVE_ROUNDS);
    flush_conntrack(topo);
    sink(topo, false);
    steer(topo, false);
    pin_process(&[0, 1]);

    println!(
        "\n4. Packets of established flows per second of CPU {LB_CPU}, its steal time counted as \
         busy ({CURVE_ROUNDS} rounds: median [lowest, highest]; CPU {LB_CPU} busy; median steal \
         in the sample; the median rate with steal left out of busy)"
    );
    println!(
        "{:>9} {:>48} {:>48} {:>48}",
        "flows", SETUPS[0].0, SETUPS[1].0, SETUPS[2].0
    );
    // The plot's order: kfuncs, nftables, routing only.
    let mut curves: [Vec<Point>; 3] = Default::default();
    for (i, &flows) in CURVE_FLOWS.iter().enumerate() {
        let points: Vec<Point> = samples[i]
            .iter()
            .map(|runs| {
                let rates: Vec<f64> = runs.iter().map(busy_with_steal).collect();
                Point::from_runs(flows as f64, &rates)
            })
            .collect();
        let load = medians(&samples[i], |s| (s.lb_cpu + s.stolen) / s.wall * 100.0);
        let stolen = medians(&samples[i], |s| s.stolen * 1e3);
        let without_steal = medians(&samples[i], |s| s.ops / s.lb_cpu);
        let cell = |s: usize| {
            let p = &points[s];
            format!(
                "{:.0} [{:.0}, {:.0}] {:.0}% {:.0}ms {:.0}",
                p.median, p.low, p.high, load[s], stolen[s], without_steal[s]
            )
        };
        println!("{flows:>9} {:>48} {:>48} {:>48}", cell(0), cell(1), cell(2));
        for (curve, setup) in curves.iter_mut().zip([1, 0, 2]) {
            curve.push(points[setup]);
        }
    }
    plots::lb_by_flows(curves, plots::caption(command, &plot::today()))
        .write(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images/bench-lb-flows.svg"))
        .unwrap();
}
