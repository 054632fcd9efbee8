//! Connections per second and requests per second through the conntrack-kfunc
//! load balancer, against the same topology balanced by nftables DNAT with
//! numgen, measured in one run. `cargo bench --bench load_balancer` (root).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use learning_ebpf_rs::bench::median;
use learning_ebpf_rs::privileges::{has_cap, Cap};
use learning_ebpf_rs::testing::lb_topology::{
    backend_arg, backend_ip, connect_to, one_connection_to, Topology, BACKEND_PORT, VIP, VIP_PORT,
};
use learning_ebpf_rs::testing::{run_cmd, BpfFs, Running};

const CONNECTIONS: usize = 2000;
const WORKERS: usize = 4;
const PERSISTENT: usize = 16;
const REQUESTS: usize = 1000;
const ROUNDS: usize = 3;

/// Where connection `n` goes: the VIP, or (for the routing-only
/// reference) the backends directly, in turn.
type Target = fn(usize) -> SocketAddr;

fn vip(_: usize) -> SocketAddr {
    SocketAddr::from((VIP, VIP_PORT))
}

fn direct(n: usize) -> SocketAddr {
    SocketAddr::from((backend_ip(n % 3), BACKEND_PORT))
}

/// Connections per second: CONNECTIONS short connections (three lines
/// each), WORKERS at a time.
fn cps(topo: &Topology, target: Target) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                for n in 0..CONNECTIONS / WORKERS {
                    one_connection_to(&topo.client, target(w + n * WORKERS));
                }
            });
        }
    });
    CONNECTIONS as f64 / start.elapsed().as_secs_f64()
}

/// Requests per second: PERSISTENT connections, REQUESTS round trips each,
/// all at once.
fn rps(topo: &Topology, target: Target) -> f64 {
    let mut conns: Vec<_> = (0..PERSISTENT)
        .map(|n| connect_to(&topo.client, target(n)))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for conn in conns.iter_mut() {
            s.spawn(move || {
                for i in 0..REQUESTS {
                    conn.ask(&i.to_string());
                }
            });
        }
    });
    (PERSISTENT * REQUESTS) as f64 / start.elapsed().as_secs_f64()
}

type Measure = fn(&Topology, Target) -> f64;

fn routing_only(topo: &Topology, f: Measure) -> f64 {
    f(topo, direct)
}

fn with_ebpf(topo: &Topology, f: Measure) -> f64 {
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

fn with_nftables(topo: &Topology, f: Measure) -> f64 {
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
        "add rule ip lebpf_nat pre ip daddr {VIP} tcp dport {VIP_PORT} dnat to numgen inc mod 3 map {{ {map} }} :{BACKEND_PORT}"
    );
    run_cmd(topo.lb.command("nft").arg(&rule)).unwrap();
    let result = f(topo, vip);
    nft(&["delete", "table", "ip", "lebpf_nat"]);
    result
}

fn main() {
    if !(has_cap(Cap::Bpf) && has_cap(Cap::NetAdmin)) {
        eprintln!("SKIPPED load_balancer bench: needs root");
        return;
    }
    let topo = Topology::new().unwrap();
    let setups: [fn(&Topology, Measure) -> f64; 3] = [with_nftables, with_ebpf, routing_only];
    let measures: [Measure; 2] = [cps, rps];
    // results[measure][setup]: one value per round.
    let mut results = vec![vec![Vec::new(); setups.len()]; measures.len()];
    for _ in 0..ROUNDS {
        for (m, measure) in measures.iter().enumerate() {
            for (s, setup) in setups.iter().enumerate() {
                results[m][s].push(setup(&topo, *measure));
            }
        }
    }
    println!(
        "client -> load balancer -> 3 backends, all in network namespaces on this machine; {ROUNDS} rounds, medians"
    );
    println!(
        "{:<34} {:>14} {:>17} {:>8} {:>14} {:>8}",
        "measure", "nftables DNAT", "conntrack kfuncs", "ratio", "routing only", "ratio"
    );
    for (m, name) in [
        format!("connections/s ({CONNECTIONS}, {WORKERS} at a time)"),
        format!("requests/s ({PERSISTENT} conns x {REQUESTS})"),
    ]
    .iter()
    .enumerate()
    {
        let [nft, ebpf, routed] = [0, 1, 2].map(|s| median(results[m][s].clone()));
        println!(
            "{name:<34} {nft:>14.0} {ebpf:>17.0} {:>8.2} {routed:>14.0} {:>8.2}",
            ebpf / nft,
            routed / nft
        );
    }
    println!("target: at least 1.5x nftables (routing only: the same hops, no balancing at all)");
}
