//! The binary in host A of two namespaces, in each way into netfilter:
//! exactly the listed traffic dropped (UDP, TCP and ICMP, IPv4 and IPv6),
//! iptables' own rule counters agreeing with the program's, a policy change
//! from another process taking effect at once, and nothing left behind on
//! exit, also after SIGKILL.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use testkit::{add_addr, require_privileges, wait_until, HostPinDir, Running};
use testkit::{TwoHosts, DEV_B, IP4_A, IP6_A};

use crate::{refused, BIN};

/// Host B's second addresses, which the policy denies as sources.
const DENIED4: &str = "10.11.0.3";
const DENIED6: &str = "fd00:11::3";
/// UDP and TCP ports on host A: the first denied, the second not.
const DENIED_PORT: u16 = 9000;
const OPEN_PORT: u16 = 9001;

struct Setup {
    hosts: TwoHosts,
    pin: HostPinDir,
}

fn setup(name: &str) -> Setup {
    let hosts = TwoHosts::new().unwrap();
    add_addr(&hosts.b, DEV_B, &format!("{DENIED4}/24")).unwrap();
    add_addr(&hosts.b, DEV_B, &format!("{DENIED6}/64")).unwrap();
    // Duplicate address detection would hold the new IPv6 addresses back.
    wait_until(Duration::from_secs(5), || {
        !hosts
            .b
            .ip(&["-6", "addr", "show", "tentative"])
            .unwrap()
            .contains("inet6")
    });
    Setup {
        hosts,
        pin: HostPinDir::new(name).unwrap(),
    }
}

fn start(s: &Setup, way: &str, extra: &[&str]) -> Running {
    let mut cmd = s.hosts.a.nsenter(BIN);
    cmd.args(["--way", way, "--json", "--pin"])
        .arg(s.pin.path())
        .args([
            "--deny-src",
            &format!("{DENIED4}/32"),
            "--deny-src",
            &format!("{DENIED6}/128"),
        ])
        .args(["--deny-port", &DENIED_PORT.to_string()])
        .args(extra);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    running
}

/// What got through from B to A: for each (source, destination port), how
/// many of 3 UDP datagrams arrived, and whether a TCP connection opened.
fn probe(s: &Setup, sources: &[&str], port: u16) -> Vec<(usize, bool)> {
    let addrs = |src: &str| -> IpAddr {
        if src.contains(':') {
            IpAddr::V6(IP6_A)
        } else {
            IpAddr::V4(IP4_A)
        }
    };
    sources
        .iter()
        .map(|src| {
            let dst = SocketAddr::new(addrs(src), port);
            let (udp, tcp) = s.hosts.a.run(|| {
                let udp = UdpSocket::bind(dst).unwrap();
                udp.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let tcp = TcpListener::bind(dst).unwrap();
                (udp, tcp)
            });
            let connected = s.hosts.b.run(|| {
                let from: IpAddr = src.parse().unwrap();
                let sock = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
                for _ in 0..3 {
                    sock.send_to(b"hello", dst).unwrap();
                }
                let tcp = socket_from(from);
                tcp.connect_timeout(&dst.into(), Duration::from_millis(500))
                    .is_ok()
            });
            drop(tcp);
            let mut n = 0;
            let mut buf = [0u8; 16];
            while udp.recv_from(&mut buf).is_ok() {
                n += 1;
            }
            (n, connected)
        })
        .collect()
}

/// A TCP socket bound to `from`, to connect from that address.
fn socket_from(from: IpAddr) -> socket2::Socket {
    let domain = if from.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock
}

/// The packets each verdict counted, from the binary's last report.
fn last_counts(stdout: &[String]) -> [u64; 3] {
    let last: Value = serde_json::from_str(stdout.last().expect("a report")).unwrap();
    std::array::from_fn(|i| last["counters"][i]["packets"].as_u64().unwrap())
}

/// Packets dropped by our rules, by iptables' and ip6tables' counters.
fn rule_drops(s: &Setup) -> u64 {
    ["iptables", "ip6tables"]
        .iter()
        .map(|tool| {
            let out = s
                .hosts
                .a
                .nsenter(tool)
                .args(["-L", "INPUT", "-v", "-x", "-n"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("netfilter_bpf:"))
                .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
                .sum::<u64>()
        })
        .sum()
}

fn ruleset(s: &Setup) -> String {
    ["iptables-save", "ip6tables-save"]
        .iter()
        .map(|tool| {
            let out = s.hosts.a.nsenter(tool).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

const OPEN4: &str = "10.11.0.2";
const OPEN6: &str = "fd00:11::2";

fn drops_exactly_the_policy(way: &str) {
    let s = setup(&format!("nfb-{way}"));
    let running = start(&s, way, &["1"]);
    // From the denied sources nothing gets through, to any port; from the
    // others only the denied port is closed.
    for port in [DENIED_PORT, OPEN_PORT] {
        assert_eq!(
            probe(&s, &[DENIED4, DENIED6], port),
            [(0, false); 2],
            "{way} denied sources, port {port}"
        );
    }
    assert_eq!(
        probe(&s, &[OPEN4, OPEN6], DENIED_PORT),
        [(0, false); 2],
        "{way} the denied port"
    );
    assert_eq!(
        probe(&s, &[OPEN4, OPEN6], OPEN_PORT),
        [(3, true); 2],
        "{way} an open port"
    );
    for src in [DENIED4, DENIED6] {
        let ping = s
            .hosts
            .b
            .command("ping")
            .args(["-c", "1", "-W", "1", "-I", src])
            .arg(if src.contains(':') {
                IP6_A.to_string()
            } else {
                IP4_A.to_string()
            })
            .output()
            .unwrap();
        assert!(
            !ping.status.success(),
            "{way}: ping from {src} got an answer"
        );
    }

    // A second process changes the policy: the open port closes at once.
    let add = Command::new(BIN)
        .args(["add", "--port", &OPEN_PORT.to_string(), "--pin"])
        .arg(s.pin.path())
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    assert_eq!(
        probe(&s, &[OPEN4, OPEN6], OPEN_PORT),
        [(0, false); 2],
        "{way} after add"
    );
    let list = Command::new(BIN)
        .args(["list", "--pin"])
        .arg(s.pin.path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for rule in [
        &format!("deny --src {DENIED4}/32"),
        &format!("deny --port {OPEN_PORT}"),
    ] {
        assert!(
            list.contains(rule.as_str()),
            "{way}: list lacks {rule}: {list}"
        );
    }

    let iptables_drops = (way == "iptables").then(|| rule_drops(&s));
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{way}: {stderr:?}");
    let [pass, source, port] = last_counts(&stdout);
    assert!(pass > 0, "{way}: nothing passed? {stdout:?}");
    if let Some(rules) = iptables_drops {
        // iptables counts what its rules dropped; the program counts why.
        assert_eq!(
            rules,
            source + port,
            "{way}: iptables' counters and the program's"
        );
    }
    // Every kind of drop was seen (how many packets each probe took
    // depends on neighbour discovery and retransmits, not on the policy).
    assert!(source > 0 && port > 0, "{way}: {source} {port}");

    // Nothing left: no rule, no pins, and the traffic flows again.
    assert!(
        !ruleset(&s).contains("netfilter_bpf"),
        "{way}: a rule was left behind"
    );
    assert!(
        !s.pin.path().exists(),
        "{way}: pins left in {}",
        s.pin.path().display()
    );
    assert_eq!(
        probe(&s, &[DENIED4, OPEN4], DENIED_PORT),
        [(3, true); 2],
        "{way} after exit"
    );
}

#[test]
fn iptables_rule_drops_exactly_the_policy() {
    require_privileges!("iptables_rule_drops_exactly_the_policy");
    if refused("iptables_rule_drops_exactly_the_policy") {
        return;
    }
    drops_exactly_the_policy("iptables");
}

#[test]
fn netfilter_hook_drops_exactly_the_policy() {
    require_privileges!("netfilter_hook_drops_exactly_the_policy");
    if refused("netfilter_hook_drops_exactly_the_policy") {
        return;
    }
    drops_exactly_the_policy("hook");
}

#[test]
fn sigkill_leaves_nothing_the_next_run_does_not_remove() {
    require_privileges!("sigkill_leaves_nothing_the_next_run_does_not_remove");
    if refused("sigkill_leaves_nothing_the_next_run_does_not_remove") {
        return;
    }
    let s = setup("nfb-kill");
    // The hook's links go with the process; the watchdog removes the pins.
    let hook = start(&s, "hook", &[]);
    hook.signal(libc::SIGKILL).unwrap();
    drop(hook);
    assert!(
        wait_until(Duration::from_secs(5), || !s.pin.path().exists()),
        "pins after SIGKILL"
    );
    assert_eq!(
        probe(&s, &[OPEN4], DENIED_PORT),
        [(3, true)],
        "the hook after SIGKILL"
    );

    // An iptables rule outlives its process (it holds the program); the
    // next run removes it, and says so.
    let rule = start(&s, "iptables", &[]);
    rule.signal(libc::SIGKILL).unwrap();
    drop(rule);
    assert!(
        ruleset(&s).contains("netfilter_bpf:"),
        "the rule should outlive SIGKILL"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !s.pin.path().exists()),
        "pins after SIGKILL"
    );
    let next = start(&s, "iptables", &[]);
    next.signal(libc::SIGINT).unwrap();
    let (status, _, stderr) = next.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("left by a netfilter_bpf that was killed")),
        "{stderr:?}"
    );
    assert!(
        !ruleset(&s).contains("netfilter_bpf"),
        "a rule was left behind"
    );
    assert_eq!(
        probe(&s, &[OPEN4], DENIED_PORT),
        [(3, true)],
        "after the next run"
    );
}

/// The chapter's "Run it": the hook way, a policy change from a second
/// shell, the report, and iptables' way seen with `iptables -L`.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    if refused("chapter_run_it_output") {
        return;
    }
    let s = setup("nfb-chapter");
    let mut cmd = s.hosts.a.nsenter(BIN);
    cmd.args(["--way", "iptables", "--pin"])
        .arg(s.pin.path())
        .args([
            "--deny-src",
            &format!("{DENIED4}/32"),
            "--deny-port",
            "9000",
        ]);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    probe(&s, &[DENIED4, OPEN4], DENIED_PORT);
    probe(&s, &[OPEN4], OPEN_PORT);
    let add = Command::new(BIN)
        .args(["add", "--port", "9001", "--pin"])
        .arg(s.pin.path())
        .output()
        .unwrap();
    probe(&s, &[OPEN4], OPEN_PORT);
    let rules = s
        .hosts
        .a
        .nsenter("iptables")
        .args(["-L", "INPUT", "-v", "-n"])
        .output()
        .unwrap();
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    // The figures the chapter explains: 3 datagrams and 1 SYN per probe
    // that is dropped, 6 packets for one that passes (the datagrams, and
    // the handshake with its close); iptables counts what the program did.
    let count = |verdict: &str| -> u64 {
        let line = stdout
            .iter()
            .rev()
            .find(|l| l.starts_with(verdict))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(
        (count("pass"), count("drop-source"), count("drop-port")),
        (6, 4, 8),
        "{stdout:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("The iptables rule dropped 12 packets ")),
        "{stderr:?}"
    );
    let pin = s.pin.path().to_string_lossy().into_owned();
    let text = [
        "# netfilter_bpf --way iptables --deny-src 10.11.0.3/32 --deny-port 9000".to_string(),
        stderr[0].replace(&pin, "/sys/fs/bpf/netfilter_bpf"),
        "# netfilter_bpf add --port 9001          (in another shell)".into(),
        String::from_utf8_lossy(&add.stdout).trim_end().into(),
        "# iptables -L INPUT -v -n".into(),
        String::from_utf8_lossy(&rules.stdout)
            .replace(&pin, "/sys/fs/bpf/netfilter_bpf")
            .trim_end()
            .into(),
        "^C".into(),
        stdout.join("\n"),
    ]
    .join("\n")
        + "\n"
        + &stderr[1..].join("\n");
    testkit::chapter::assert_sample("docs/17-netfilter_bpf.md", "run_it", &text);
}
