//! load_balancer proven in the kernel, in a topology of namespaces this test
//! makes: a client, the load balancer, and three backends that answer with
//! their own name. 1,000 TCP connections spread by weight and each stays on
//! one backend; draining and removing backends at run time; UDP flows; clean
//! up after exit.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use learning_ebpf_rs::require_privileges;
use learning_ebpf_rs::testing::lb_topology::{
    backend_arg, connect, one_connection, Conn, Topology, VIP, VIP_PORT,
};
use learning_ebpf_rs::testing::{run_cmd, BpfFs, Running};

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
        let tables = run_cmd(topo.lb.command("nft").args(["list", "tables"])).unwrap();
        assert!(
            !String::from_utf8_lossy(&tables.stdout).contains("lebpf_lb"),
            "the nftables table is left behind"
        );
        let filters = run_cmd(
            topo.lb
                .command("tc")
                .args(["filter", "show", "dev", "c0", "ingress"]),
        )
        .unwrap();
        assert!(filters.stdout.is_empty(), "a TC filter is left behind");
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
fn udp_flows_follow_the_same_rules() {
    require_privileges!("udp_flows_follow_the_same_rules");
    let topo = Topology::new().unwrap();
    let args: Vec<String> = (0..3).map(backend_arg).collect();
    let lb = start_lb(&topo, &args);

    // Each flow is one client socket with a source port of its own: three
    // datagrams, one backend. (A reused port would make the same 5-tuple as
    // an earlier flow, which conntrack rightly treats as that flow.)
    let next_port = std::sync::atomic::AtomicU16::new(41000);
    let flow = || {
        let port = next_port.fetch_add(1, Ordering::Relaxed);
        let sock = topo
            .client
            .run(|| UdpSocket::bind(("0.0.0.0", port)).unwrap());
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut seen = Vec::new();
        for msg in ["a", "b", "c"] {
            sock.send_to(msg.as_bytes(), (VIP, VIP_PORT)).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf).expect("a reply");
            assert_eq!(
                from,
                SocketAddr::from((VIP, VIP_PORT)),
                "replies come from the VIP"
            );
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (name, echoed) = reply.split_once(' ').unwrap();
            assert_eq!(echoed, msg);
            seen.push(name.to_string());
        }
        assert!(
            seen.iter().all(|n| *n == seen[0]),
            "a UDP flow changed backend: {seen:?}"
        );
        seen.remove(0)
    };
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
    let cases: [(&[&str], &str); 5] = [
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
