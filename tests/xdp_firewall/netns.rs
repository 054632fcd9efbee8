//! The binary in network namespaces: live block/unblock through the
//! pinned maps, a flood cut to the rate, --keep-pinned, and a run managed
//! from another shell.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testkit::{
    add_addr, assert_one_line_error, prog_gone, require_privileges, wait_until, BpfFs, HostPinDir,
    Running, TwoHosts, DEV_A, DEV_B, HIDDEN_BY_IP_NETNS_EXEC, IP4_A, IP4_B, IP6_A,
};

use crate::{manage, xdp_attached, BIN};

/// A second IPv4 address on B, so B can send as two sources.
const IP4_B2: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 11, 0, 3);

struct Firewall {
    running: Running,
    prog_id: u32,
}

fn start(hosts: &TwoHosts, fs: &BpfFs, extra: &[&str]) -> Firewall {
    let pin = fs.path().join("fw");
    let mut cmd = hosts.a.command(BIN);
    cmd.args(["-i", DEV_A, "--json", "--pin"])
        .arg(&pin)
        .args(extra);
    let mut running = Running::spawn(cmd).unwrap();
    let line = running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let prog_id = line
        .split("prog id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no prog id in {line:?}"));
    Firewall { running, prog_id }
}

/// Sends `count` datagrams from each of B's two addresses to A:port, and
/// returns how many A received from each.
fn exchange(hosts: &TwoHosts, port: u16, count: usize) -> HashMap<IpAddr, usize> {
    let receiver = hosts.a.run(|| {
        let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    hosts.b.run(|| {
        for src in [IP4_B, IP4_B2] {
            let s = UdpSocket::bind((src, 0)).unwrap();
            for _ in 0..count {
                s.send_to(b"hello", (IP4_A, port)).unwrap();
            }
        }
    });
    let mut got = HashMap::new();
    let mut buf = [0u8; 64];
    while let Ok((_, from)) = receiver.recv_from(&mut buf) {
        *got.entry(from.ip()).or_insert(0) += 1;
    }
    got
}

#[test]
fn netns_blocks_a_source_and_takes_changes_live() {
    require_privileges!("netns_blocks_a_source_and_takes_changes_live");
    if crate::refused("netns_blocks_a_source_and_takes_changes_live") {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    add_addr(&hosts.b, DEV_B, &format!("{IP4_B2}/24")).unwrap();
    let fs = BpfFs::new().unwrap();
    let fw = start(&hosts, &fs, &["--block", &format!("{IP4_B}/32")]);

    let got = exchange(&hosts, 7001, 10);
    assert_eq!(got.get(&IpAddr::V4(IP4_B)), None, "blocked source: {got:?}");
    assert_eq!(
        got.get(&IpAddr::V4(IP4_B2)),
        Some(&10),
        "other source: {got:?}"
    );

    // Unblock B, block B2: at once, no restart.
    let (code, _, err) = manage(&fs, &["unblock", &format!("{IP4_B}/32")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = manage(&fs, &["block", &format!("{IP4_B2}/32")]);
    assert_eq!(code, 0, "{err}");
    let got = exchange(&hosts, 7002, 10);
    assert_eq!(got.get(&IpAddr::V4(IP4_B)), Some(&10), "unblocked: {got:?}");
    assert_eq!(got.get(&IpAddr::V4(IP4_B2)), None, "newly blocked: {got:?}");

    // list shows the rule and its hits; stats the drops.
    let (_, list, _) = manage(&fs, &["list", "--json"]);
    let entry: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(entry["prefix"], format!("{IP4_B2}/32"));
    assert_eq!(entry["hits"], 10);
    let (_, stats, _) = manage(&fs, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["counters"][2]["reason"], "blocked");
    assert_eq!(stats["counters"][2]["packets"], 20);

    // IPv6 passes untouched (no rule for it): ping6 works.
    let ping = hosts
        .b
        .command("ping")
        .args(["-6", "-c", "2", "-i", "0.2", "-W", "2", &IP6_A.to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success(), "ping6 through the firewall");

    fw.running.signal(libc::SIGINT).unwrap();
    let (status, stdout, _) = fw.running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    assert!(
        stdout.iter().any(|l| l.starts_with('{')),
        "a final JSON report"
    );
    assert!(!xdp_attached(&hosts), "XDP still attached after SIGINT");
    assert!(prog_gone(fw.prog_id), "program still loaded");
    assert!(!fs.path().join("fw").exists(), "pins left after SIGINT");
}

#[test]
fn netns_flood_is_cut_to_the_rate() {
    require_privileges!("netns_flood_is_cut_to_the_rate");
    if crate::refused("netns_flood_is_cut_to_the_rate") {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    let fs = BpfFs::new().unwrap();
    let (rate, burst) = (200.0, 20.0);
    let fw = start(&hosts, &fs, &["--rate", "200", "--burst", "20"]);

    let receiver = hosts.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:7100").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    // Count on a thread while the flood runs: read only afterwards, and the
    // socket's receive buffer (about 230 small datagrams) would overflow.
    // It stops at the first quiet 300 ms after the flood, not during it: a
    // sender held up by a busy machine must not end the count early.
    let sent = 3000;
    let flooded = AtomicBool::new(false);
    let (elapsed, received) = std::thread::scope(|scope| {
        let counter = scope.spawn(|| {
            let mut received = 0usize;
            let mut buf = [0u8; 16];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match receiver.recv(&mut buf) {
                    Ok(_) => received += 1,
                    Err(_) if flooded.load(Ordering::Acquire) => break,
                    Err(_) => {}
                }
            }
            received
        });
        // A bounded flood: 3,000 datagrams over about 1.5 s (2,000 pkt/s).
        let elapsed = hosts.b.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let start = Instant::now();
            for i in 0..sent {
                s.send_to(b"flood", SocketAddr::from((IP4_A, 7100)))
                    .unwrap();
                let due = Duration::from_micros(500 * (i as u64 + 1));
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            start.elapsed().as_secs_f64()
        });
        flooded.store(true, Ordering::Release);
        (elapsed, counter.join().unwrap())
    });
    let expected = burst + rate * elapsed;
    eprintln!(
        "flood: sent {sent} in {elapsed:.2}s, received {received}, expected about {expected:.0}"
    );
    assert!(
        (received as f64) > expected * 0.75 && (received as f64) < expected * 1.25,
        "received {received}, expected about {expected:.0}"
    );
    let (_, stats, _) = manage(&fs, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let limited = stats["counters"][3]["packets"].as_u64().unwrap() as usize;
    let passed = stats["counters"][0]["packets"].as_u64().unwrap() as usize;
    // Every datagram is either passed (and received) or rate limited; a few
    // ARP or neighbour packets also pass.
    assert_eq!(
        limited + received,
        sent,
        "rate_limited {limited} + received {received}"
    );
    assert!(
        passed >= received && passed < received + 10,
        "passed {passed}, received {received}"
    );

    // SIGKILL: the link and, through the watchdog, the pins go too.
    fw.running.signal(libc::SIGKILL).unwrap();
    let _ = fw.running.finish(Duration::from_secs(10)).unwrap();
    assert!(prog_gone(fw.prog_id), "program still loaded after SIGKILL");
    assert!(!xdp_attached(&hosts), "XDP still attached after SIGKILL");
    assert!(
        wait_until(Duration::from_secs(5), || !fs.path().join("fw").exists()),
        "pins left after SIGKILL"
    );
}

#[test]
fn netns_keep_pinned_keeps_the_maps() {
    require_privileges!("netns_keep_pinned_keeps_the_maps");
    if crate::refused("netns_keep_pinned_keeps_the_maps") {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    let fs = BpfFs::new().unwrap();
    let fw = start(&hosts, &fs, &["--keep-pinned", "--block", "192.0.2.0/24"]);
    fw.running.signal(libc::SIGTERM).unwrap();
    let (status, _, _) = fw.running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    assert!(
        !xdp_attached(&hosts),
        "XDP detached even when maps are kept"
    );
    let (code, list, err) = manage(&fs, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        list.contains("192.0.2.0/24"),
        "the kept blocklist is readable: {list}"
    );
    // The BpfFs guard unmounts, which removes the kept pins with it.
}

/// The chapter's way to run the firewall in a namespace: `nsenter --net`,
/// pins in the host's /sys/fs/bpf, managed from another shell (here, the
/// test itself in the host's namespaces). `ip netns exec` hides
/// /sys/fs/bpf, and the error says so and names the way that works.
#[test]
fn runs_in_a_namespace_and_is_managed_from_another_shell() {
    require_privileges!("runs_in_a_namespace_and_is_managed_from_another_shell");
    if crate::refused("runs_in_a_namespace_and_is_managed_from_another_shell") {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    add_addr(&hosts.b, DEV_B, &format!("{IP4_B2}/24")).unwrap();
    let pin = HostPinDir::new("fw").unwrap();

    let out = hosts.a.command(BIN).args(["-i", DEV_A]).output().unwrap();
    assert_one_line_error(&out, &HIDDEN_BY_IP_NETNS_EXEC);

    let mut cmd = hosts.a.nsenter(BIN);
    cmd.args(["-i", DEV_A, "--pin"]).arg(pin.path());
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["block", &format!("{IP4_B}/32"), "--pin"])
        .arg(pin.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = exchange(&hosts, 7005, 10);
    assert_eq!(got.get(&IpAddr::V4(IP4_B)), None, "blocked source: {got:?}");
    assert_eq!(got.get(&IpAddr::V4(IP4_B2)), Some(&10), "{got:?}");

    running.signal(libc::SIGINT).unwrap();
    let (status, _, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    assert!(!pin.path().exists(), "pins left behind");
}
