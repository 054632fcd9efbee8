//! The binary in a pair of network namespaces: both directions counted,
//! the listed port dropped, and clean-up (clsact kept when it was there
//! before; a tcx link gone after SIGKILL).

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use testkit::{prog_gone, require_privileges, Running, TwoHosts, DEV_A, IP4_A, IP6_A};

use crate::{run_tc, tc_state, BIN};

/// Program ids from the binary's "Attached ... (prog id N) ..." line.
fn prog_ids(line: &str) -> Vec<u32> {
    line.split("prog id ")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no id in {line:?}"))
        })
        .collect()
}

/// The totals of the last JSON report: (dir, proto) -> (packets, dropped).
fn last_report(stdout: &[String]) -> std::collections::HashMap<(String, String), (u64, u64)> {
    let last = stdout
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON report");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    report["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                (
                    row["dir"].as_str().unwrap().to_string(),
                    row["proto"].as_str().unwrap().to_string(),
                ),
                (
                    row["packets"].as_u64().unwrap(),
                    row["dropped"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// No filter on either hook, the programs `ids` gone, and a clsact qdisc
/// present exactly when `clsact_expected`.
fn assert_detached(hosts: &TwoHosts, ids: &[u32], clsact_expected: bool) {
    let (qdiscs, ingress, egress) = tc_state(hosts);
    assert_eq!(
        qdiscs.contains("clsact"),
        clsact_expected,
        "qdiscs: {qdiscs}"
    );
    assert!(
        ingress.trim().is_empty() && egress.trim().is_empty(),
        "filters left: {ingress}{egress}"
    );
    for id in ids {
        assert!(prog_gone(*id), "program {id} still loaded");
    }
}

fn start(hosts: &TwoHosts, extra: &[&str]) -> (Running, Vec<u32>) {
    let mut cmd = hosts.a.command(BIN);
    cmd.args(["-i", DEV_A, "--json"]).args(extra);
    let mut running = Running::spawn(cmd).unwrap();
    let line = running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    (running, prog_ids(&line))
}

#[test]
fn netns_counts_both_directions_and_drops_listed_port() {
    require_privileges!("netns_counts_both_directions_and_drops_listed_port");
    let hosts = TwoHosts::new().unwrap();
    let (running, ids) = start(&hosts, &["--drop-port", "5002"]);
    assert_eq!(ids.len(), 2);

    // Receivers on A: UDP on an allowed and a dropped port, TCP on an
    // allowed port. Sockets keep the namespace they were made in.
    let (udp_ok, udp_dropped, tcp_ok) = hosts.a.run(|| {
        let ok = UdpSocket::bind("0.0.0.0:5001").unwrap();
        let dropped = UdpSocket::bind("0.0.0.0:5002").unwrap();
        for s in [&ok, &dropped] {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        (ok, dropped, TcpListener::bind("0.0.0.0:6001").unwrap())
    });

    // B sends 20 datagrams to each UDP port, connects over TCP to the
    // allowed port and tries the dropped one, and pings A over v4 and v6.
    let blocked = hosts.b.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..20 {
            sock.send_to(b"allowed", (IP4_A, 5001)).unwrap();
            sock.send_to(b"dropped", (IP4_A, 5002)).unwrap();
        }
        TcpStream::connect_timeout(&SocketAddr::from((IP4_A, 6001)), Duration::from_secs(2))
            .expect("TCP to an allowed port connects");
        TcpStream::connect_timeout(&SocketAddr::from((IP4_A, 5002)), Duration::from_millis(700))
            .is_err()
    });
    assert!(blocked, "TCP to the dropped port must not connect");
    let accepted = tcp_ok.accept();
    assert!(accepted.is_ok(), "A accepted the allowed TCP connection");
    for (target, flag) in [(IP4_A.to_string(), "-4"), (IP6_A.to_string(), "-6")] {
        let ping = hosts
            .b
            .command("ping")
            .args([flag, "-c", "3", "-i", "0.2", "-W", "2", &target])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {target}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }

    let count = |s: &UdpSocket| {
        let mut buf = [0u8; 64];
        std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
    };
    assert_eq!(
        count(&udp_ok),
        20,
        "every datagram to the allowed port arrives"
    );
    assert_eq!(
        count(&udp_dropped),
        0,
        "no datagram to the dropped port arrives"
    );

    // Ctrl-C: the binary prints a final report and detaches.
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}, stderr {stderr:?}");
    let totals = last_report(&stdout);
    let get = |dir: &str, proto: &str| totals[&(dir.to_string(), proto.to_string())];
    let (udp_in, udp_in_dropped) = get("ingress", "udp");
    assert!(udp_in >= 40, "ingress udp packets {udp_in}");
    assert_eq!(udp_in_dropped, 20, "ingress udp drops");
    let (tcp_in, tcp_in_dropped) = get("ingress", "tcp");
    assert!(
        tcp_in >= 3 && tcp_in_dropped >= 1,
        "ingress tcp {tcp_in} dropped {tcp_in_dropped}"
    );
    assert!(get("egress", "tcp").0 >= 2, "egress tcp (SYN-ACK, ACKs)");
    assert!(
        get("ingress", "icmp").0 >= 3 && get("egress", "icmp").0 >= 3,
        "icmp both ways"
    );
    assert!(
        get("ingress", "icmpv6").0 >= 3 && get("egress", "icmpv6").0 >= 3,
        "icmpv6 both ways"
    );
    assert_eq!(get("egress", "udp").1, 0, "nothing dropped on egress");

    // Nothing remains: no filter, no clsact qdisc (this run created it), and
    // the programs themselves are gone.
    assert_detached(&hosts, &ids, false);
}

#[test]
fn netns_sigterm_keeps_a_clsact_it_did_not_create() {
    require_privileges!("netns_sigterm_keeps_a_clsact_it_did_not_create");
    let hosts = TwoHosts::new().unwrap();
    run_tc(&hosts.a, &["qdisc", "add", "dev", DEV_A, "clsact"]);
    let (running, ids) = start(&hosts, &[]);
    let (_, ingress, _) = tc_state(&hosts);
    assert!(ingress.contains("tc_ingress"), "filter attached: {ingress}");

    running.signal(libc::SIGTERM).unwrap();
    let (status, _, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}, stderr {stderr:?}");
    // The pre-existing clsact must stay; only the filters go.
    assert_detached(&hosts, &ids, true);
}

#[test]
fn netns_tcx_link_detaches_on_sigkill() {
    require_privileges!("netns_tcx_link_detaches_on_sigkill");
    if !testkit::kernel::has_feature(
        "netns_tcx_link_detaches_on_sigkill",
        "tc_classifier",
        "tcx",
        (6, 6),
    ) {
        return;
    }
    let hosts = TwoHosts::new().unwrap();
    let (running, ids) = start(&hosts, &["--attach", "tcx", "--drop-port", "5002"]);

    // While it runs, the policy is in force.
    let (dropped, receiver) = hosts.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:5002").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        (s.try_clone().unwrap(), s)
    });
    let send = || {
        hosts.b.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"x", (IP4_A, 5002)).unwrap();
        })
    };
    send();
    let mut buf = [0u8; 8];
    assert!(
        dropped.recv(&mut buf).is_err(),
        "dropped while tcx link is attached"
    );

    // SIGKILL gives the binary no chance to clean up: the kernel does it,
    // because the link's only reference was the dead process's fd.
    running.signal(libc::SIGKILL).unwrap();
    let (status, _, _) = running.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    for id in ids {
        assert!(prog_gone(id), "program {id} still loaded after SIGKILL");
    }
    send();
    assert!(
        receiver.recv(&mut buf).is_ok(),
        "traffic flows again after the link is gone"
    );
    let (qdiscs, _, _) = tc_state(&hosts);
    assert!(!qdiscs.contains("clsact"), "tcx creates no qdisc: {qdiscs}");
}
