//! load_balancer proven in the kernel, in a topology of namespaces this test
//! makes: a client, the load balancer, and three backends that answer with
//! their own name. 1,000 TCP connections spread by weight and each stays on
//! one backend; draining and removing backends at run time; UDP flows; clean
//! up after exit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use learning_ebpf_rs::require_privileges;
use learning_ebpf_rs::testing::{add_addr, run_cmd, veth, BpfFs, NetNs, Running};

const BIN: &str = env!("CARGO_BIN_EXE_load_balancer");
const VIP: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 100);
const VIP_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;

fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 21, i as u8 + 1, 2)
}

fn backend_arg(i: usize) -> String {
    format!("{}:{BACKEND_PORT}", backend_ip(i))
}

/// client (10.20.0.2) -- c0 [lb] b1/b2/b3 -- backend i (10.21.i.2). The VIP
/// is outside every subnet, so the client routes it to the load balancer.
struct Topology {
    client: NetNs,
    lb: NetNs,
    backends: Vec<NetNs>,
    stop: Arc<AtomicBool>,
    servers: Vec<thread::JoinHandle<()>>,
}

impl Topology {
    fn new() -> Topology {
        let client = NetNs::new().unwrap();
        let lb = NetNs::new().unwrap();
        veth(&client, "eth0", &lb, "c0").unwrap();
        add_addr(&client, "eth0", "10.20.0.2/24").unwrap();
        add_addr(&lb, "c0", "10.20.0.1/24").unwrap();
        client
            .ip(&["route", "add", "default", "via", "10.20.0.1"])
            .unwrap();
        let mut backends = Vec::new();
        for i in 0..3 {
            let b = NetNs::new().unwrap();
            let lb_dev = format!("b{}", i + 1);
            veth(&b, "eth0", &lb, &lb_dev).unwrap();
            add_addr(&b, "eth0", &format!("{}/24", backend_ip(i))).unwrap();
            add_addr(&lb, &lb_dev, &format!("10.21.{}.1/24", i + 1)).unwrap();
            b.ip(&[
                "route",
                "add",
                "default",
                "via",
                &format!("10.21.{}.1", i + 1),
            ])
            .unwrap();
            backends.push(b);
        }
        run_cmd(lb.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"])).unwrap();
        let mut topo = Topology {
            client,
            lb,
            backends,
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
        };
        topo.start_servers();
        topo
    }

    /// In each backend: a TCP server that answers every line with
    /// "b<i> <line>", and a UDP server that does the same per datagram.
    fn start_servers(&mut self) {
        for (i, ns) in self.backends.iter().enumerate() {
            let name = format!("b{}", i + 1);
            let (tcp, udp) = ns.run(|| {
                let tcp = TcpListener::bind(("0.0.0.0", BACKEND_PORT)).unwrap();
                let udp = UdpSocket::bind(("0.0.0.0", BACKEND_PORT)).unwrap();
                (tcp, udp)
            });
            tcp.set_nonblocking(true).unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let stop = self.stop.clone();
            let tcp_name = name.clone();
            self.servers.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((conn, _)) => {
                            let name = tcp_name.clone();
                            thread::spawn(move || echo(conn, &name));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            }));
            let stop = self.stop.clone();
            self.servers.push(thread::spawn(move || {
                let mut buf = [0u8; 256];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        let reply = format!("{name} {}", String::from_utf8_lossy(&buf[..n]));
                        let _ = udp.send_to(reply.as_bytes(), from);
                    }
                }
            }));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.servers.drain(..) {
            let _ = s.join();
        }
    }
}

/// Each reply goes out in one write, with Nagle off: `writeln!` on a bare
/// TcpStream makes several small writes, and Nagle holds the later ones
/// back until the peer's delayed ACK, some 40 ms per line.
fn echo(conn: TcpStream, name: &str) {
    conn.set_nonblocking(false).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { break };
        if writer
            .write_all(format!("{name} {line}\n").as_bytes())
            .is_err()
        {
            break;
        }
    }
}

/// A client connection through the VIP.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Sends a line and returns the name of the backend that answered.
    fn ask(&mut self, msg: &str) -> String {
        self.stream
            .write_all(format!("{msg}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let (name, echoed) = line.trim().split_once(' ').unwrap();
        assert_eq!(echoed, msg);
        name.to_string()
    }
}

fn connect(client: &NetNs) -> Conn {
    let stream = client.run(|| {
        TcpStream::connect_timeout(&SocketAddr::from((VIP, VIP_PORT)), Duration::from_secs(3))
            .expect("connect to the VIP")
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    Conn { stream, reader }
}

/// Opens a connection, exchanges three lines, checks they all reached the
/// same backend, and closes it. Returns that backend.
fn one_connection(client: &NetNs) -> String {
    let mut conn = connect(client);
    let first = conn.ask("one");
    assert_eq!(conn.ask("two"), first, "a connection changed backend");
    assert_eq!(conn.ask("three"), first, "a connection changed backend");
    first
}

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
    let topo = Topology::new();
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
    let topo = Topology::new();
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
    let topo = Topology::new();
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
    let topo = Topology::new();
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
