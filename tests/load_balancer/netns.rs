//! The binary in the topology: 1,000 TCP connections spread by weight,
//! drain/remove/add at run time, a backend on a new interface, UDP flows,
//! and a run in a namespace managed from another shell.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use testkit::{
    assert_one_line_error, require_privileges, run_cmd, BpfFs, HostPinDir, Running,
    HIDDEN_BY_IP_NETNS_EXEC,
};

use crate::topology::{
    backend_arg, connect, one_connection, udp_flow, Conn, Topology, BACKEND_PORT, VIP, VIP_PORT,
};
use crate::BIN;

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
    if crate::refused("thousand_connections_spread_by_weight") {
        return;
    }
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
    if crate::refused("drain_and_remove_at_run_time") {
        return;
    }
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
    if crate::refused("a_backend_on_a_new_interface_is_attached_there") {
        return;
    }
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
    if crate::refused("a_new_backend_starts_at_zero") {
        return;
    }
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
    if crate::refused("runs_in_a_namespace_and_is_managed_from_another_shell") {
        return;
    }
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
    if crate::refused("udp_flows_follow_the_same_rules") {
        return;
    }
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
