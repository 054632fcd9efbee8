//! The load balancer's test topology: a client, a router for the load
//! balancer, and three backends whose TCP and UDP servers answer every line
//! with their own name ("b1 <line>"). The benchmark uses it too
//! (benches/load_balancer.rs includes this file).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use testkit::{add_addr, run_cmd, veth, NetNs};

/// The virtual address clients connect to (outside every subnet, so the
/// client routes it to the load balancer).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 100);
pub const VIP_PORT: u16 = 80;
/// The port every backend listens on.
pub const BACKEND_PORT: u16 = 8080;

/// Backend i's address: 10.21.(i+1).2.
pub fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 21, i as u8 + 1, 2)
}

/// `IP:PORT` of backend i, as the load balancer's --backend takes it.
pub fn backend_arg(i: usize) -> String {
    format!("{}:{BACKEND_PORT}", backend_ip(i))
}

/// client (10.20.0.2) -- c0 [lb] b1/b2/b3 -- backend i (10.21.i.2). The VIP
/// is outside every subnet, so the client routes it to the load balancer.
pub struct Topology {
    pub client: NetNs,
    pub lb: NetNs,
    pub backends: Vec<NetNs>,
    stop: Arc<AtomicBool>,
    servers: Vec<thread::JoinHandle<()>>,
}

impl Topology {
    pub fn new() -> anyhow::Result<Topology> {
        let client = NetNs::new()?;
        let lb = NetNs::new()?;
        veth(&client, "eth0", &lb, "c0")?;
        add_addr(&client, "eth0", "10.20.0.2/24")?;
        add_addr(&lb, "c0", "10.20.0.1/24")?;
        client.ip(&["route", "add", "default", "via", "10.20.0.1"])?;
        let mut backends = Vec::new();
        for i in 0..3 {
            let b = NetNs::new()?;
            let lb_dev = format!("b{}", i + 1);
            veth(&b, "eth0", &lb, &lb_dev)?;
            add_addr(&b, "eth0", &format!("{}/24", backend_ip(i)))?;
            add_addr(&lb, &lb_dev, &format!("10.21.{}.1/24", i + 1))?;
            b.ip(&[
                "route",
                "add",
                "default",
                "via",
                &format!("10.21.{}.1", i + 1),
            ])?;
            backends.push(b);
        }
        lb.sysctl("net/ipv4/ip_forward", "1")?;
        let mut topo = Topology {
            client,
            lb,
            backends,
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
        };
        topo.start_servers();
        Ok(topo)
    }

    /// Makes every packet that crosses the load balancer have its checksums
    /// checked for real. Between veths they never are: a locally sent
    /// packet keeps "checksum to be filled in by the hardware", and a
    /// receiving veth trusts the rest. With transmit checksum offload off
    /// on the balancer's side, the kernel fills the checksum in as the
    /// packet leaves (from what the program left in the field); with
    /// receive offload off at the client and the backends, their stacks
    /// verify it, and drop a packet whose checksum is wrong.
    pub fn verify_checksums(&self) -> anyhow::Result<()> {
        let ethtool = |ns: &NetNs, dev: &str, what: &str| {
            run_cmd(ns.command("ethtool").args(["-K", dev, what, "off"])).map(|_| ())
        };
        for dev in ["c0", "b1", "b2", "b3"] {
            ethtool(&self.lb, dev, "tx")?;
        }
        ethtool(&self.client, "eth0", "rx")?;
        for b in &self.backends {
            ethtool(b, "eth0", "rx")?;
        }
        Ok(())
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
                    // Sleep in poll(2) until a connection is waiting (at
                    // most 50 ms, to notice `stop`): a fixed sleep between
                    // accept attempts would add up to its length to every
                    // connection, and the benchmark would measure that.
                    let mut pfd = libc::pollfd {
                        fd: tcp.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, for the duration of the call.
                    if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                        continue;
                    }
                    while let Ok((conn, _)) = tcp.accept() {
                        let name = tcp_name.clone();
                        thread::spawn(move || echo(conn, &name));
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
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Sends a line and returns the name of the backend that answered.
    pub fn ask(&mut self, msg: &str) -> String {
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

/// Connects from the client namespace to the VIP.
pub fn connect(client: &NetNs) -> Conn {
    connect_to(client, SocketAddr::from((VIP, VIP_PORT)))
}

/// Connects from the client namespace to `addr` (the VIP, or a backend
/// directly, for a baseline without balancing).
pub fn connect_to(client: &NetNs, addr: SocketAddr) -> Conn {
    let stream = client.run(|| {
        TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
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
pub fn one_connection(client: &NetNs) -> String {
    one_connection_to(client, SocketAddr::from((VIP, VIP_PORT)))
}

/// [`one_connection`] to `addr`.
pub fn one_connection_to(client: &NetNs, addr: SocketAddr) -> String {
    let mut conn = connect_to(client, addr);
    let first = conn.ask("one");
    assert_eq!(conn.ask("two"), first, "a connection changed backend");
    assert_eq!(conn.ask("three"), first, "a connection changed backend");
    first
}

/// One UDP flow from the client namespace, from its own source `port`:
/// three datagrams to the VIP, each answered from the VIP by the same
/// backend. Returns that backend. (Reusing a port would make the 5-tuple
/// of an earlier flow, which conntrack rightly treats as that flow.)
pub fn udp_flow(client: &NetNs, port: u16) -> String {
    let sock = client.run(|| UdpSocket::bind(("0.0.0.0", port)).unwrap());
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
}
