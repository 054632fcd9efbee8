//! The binary on the router: it drops exactly what the policy says, only
//! for the traffic of its route, reports each verdict, and removes its
//! route when it stops.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use testkit::{require_privileges, Running};

use crate::topology::*;
use crate::BIN;

fn start(t: &Routed, args: &[&str]) -> Running {
    let mut cmd: Command = t.router.command(BIN);
    cmd.args(args).args(["--json"]);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    running
}

/// UDP sockets on the server, one per (address, port), reading with a
/// short timeout.
fn listen(t: &Routed, addrs: &[(&str, u16)]) -> Vec<UdpSocket> {
    t.server.run(|| {
        addrs
            .iter()
            .map(|(a, p)| {
                let sock = UdpSocket::bind(SocketAddr::new(a.parse().unwrap(), *p)).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                sock
            })
            .collect()
    })
}

/// `n` datagrams from the client's `from` to `to`.
fn send(t: &Routed, from: &str, to: (&str, u16), n: usize) {
    t.client.run(|| {
        let sock = UdpSocket::bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
        for _ in 0..n {
            sock.send_to(b"hello", SocketAddr::new(to.0.parse().unwrap(), to.1))
                .unwrap();
        }
    });
}

/// How many datagrams each socket received, by sender address.
fn received(socks: &[UdpSocket]) -> Vec<BTreeMap<IpAddr, usize>> {
    socks
        .iter()
        .map(|s| {
            let mut from = BTreeMap::new();
            let mut buf = [0u8; 64];
            while let Ok((_, addr)) = s.recv_from(&mut buf) {
                *from.entry(addr.ip()).or_insert(0) += 1;
            }
            from
        })
        .collect()
}

/// The last report's packets per verdict: pass, drop-source, drop-port.
fn last_counts(stdout: &[String]) -> [u64; 3] {
    let last: Value = serde_json::from_str(stdout.last().expect("a report")).unwrap();
    std::array::from_fn(|i| last["verdicts"][i]["packets"].as_u64().unwrap())
}

fn routes(t: &Routed, v6: bool) -> String {
    t.router
        .ip(&[if v6 { "-6" } else { "-4" }, "route", "show"])
        .unwrap()
}

#[test]
fn drops_what_the_policy_says_only_on_its_route() {
    require_privileges!("drops_what_the_policy_says_only_on_its_route");
    let t = Routed::new().unwrap();
    let filter = start(
        &t,
        &[
            "--route",
            FILTERED_PREFIX,
            "--via",
            GATEWAY,
            "--deny-port",
            "9000",
            "--deny-src",
            &format!("{CLIENT_DENIED}/32"),
        ],
    );
    let shown = routes(&t, false);
    assert!(
        shown.contains(&format!(
            "{FILTERED_PREFIX}  encap bpf in lwt_in_filter via {GATEWAY}"
        )),
        "{shown}"
    );
    let socks = listen(
        &t,
        &[
            (FILTERED, 9000),
            (FILTERED, 9001),
            (OTHER, 9000),
            (OTHER, 9001),
        ],
    );
    send(&t, CLIENT, (FILTERED, 9000), 3); // dropped: port
    send(&t, CLIENT, (FILTERED, 9001), 3); // passes
    send(&t, CLIENT_DENIED, (FILTERED, 9001), 2); // dropped: source
    send(&t, CLIENT, (OTHER, 9000), 3); // another route: untouched
    send(&t, CLIENT_DENIED, (OTHER, 9001), 2); // another route: untouched
    let got = received(&socks);
    let client: IpAddr = CLIENT.parse().unwrap();
    let denied: IpAddr = CLIENT_DENIED.parse().unwrap();
    assert_eq!(got[0], BTreeMap::new(), "{FILTERED}:9000");
    assert_eq!(got[1], BTreeMap::from([(client, 3)]), "{FILTERED}:9001");
    assert_eq!(got[2], BTreeMap::from([(client, 3)]), "{OTHER}:9000");
    assert_eq!(got[3], BTreeMap::from([(denied, 2)]), "{OTHER}:9001");

    filter.signal(libc::SIGTERM).unwrap();
    let (status, stdout, stderr) = filter.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    assert_eq!(last_counts(&stdout), [3, 2, 3], "{stdout:?}");
    assert!(stderr
        .iter()
        .any(|l| l == &format!("Removed the route to {FILTERED_PREFIX}.")));
    let shown = routes(&t, false);
    assert!(
        !shown.contains(FILTERED_PREFIX),
        "the route stayed: {shown}"
    );
    assert!(
        shown.contains("10.31.0.0/24 via"),
        "the other route must stay: {shown}"
    );
}

#[test]
fn an_ipv6_route_and_sigint() {
    require_privileges!("an_ipv6_route_and_sigint");
    let t = Routed::new().unwrap();
    let filter = start(
        &t,
        &[
            "--route",
            FILTERED6_PREFIX,
            "--via",
            GATEWAY6,
            "--deny-port",
            "9000",
        ],
    );
    let socks = listen(&t, &[(FILTERED6, 9000), (FILTERED6, 9001)]);
    send(&t, CLIENT6, (FILTERED6, 9000), 2);
    send(&t, CLIENT6, (FILTERED6, 9001), 2);
    let got = received(&socks);
    let client: IpAddr = CLIENT6.parse().unwrap();
    assert_eq!(got[0], BTreeMap::new());
    assert_eq!(got[1], BTreeMap::from([(client, 2)]));
    filter.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = filter.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    // Neighbour discovery is link-local, not routed: only the datagrams.
    assert_eq!(last_counts(&stdout), [2, 0, 2], "{stdout:?}");
    assert!(!routes(&t, true).contains("fd00:30::/64"));
}

#[test]
fn an_existing_route_is_not_replaced() {
    require_privileges!("an_existing_route_is_not_replaced");
    let t = Routed::new().unwrap();
    t.router
        .ip(&["route", "add", FILTERED_PREFIX, "via", GATEWAY])
        .unwrap();
    let out = t
        .router
        .command(BIN)
        .args(["--route", FILTERED_PREFIX, "--via", GATEWAY])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    let shown = routes(&t, false);
    assert!(
        shown.contains(&format!("{FILTERED_PREFIX} via {GATEWAY}")) && !shown.contains("encap"),
        "the route must be as it was: {shown}"
    );
}

/// The chapter's iproute2 command: the object from `make raw`, attached by
/// `ip route add ... encap bpf in obj FILE section lwt_in`.
#[test]
fn iproute2_attaches_the_raw_object() {
    require_privileges!("iproute2_attaches_the_raw_object");
    let t = Routed::new().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    testkit::run_cmd(Command::new("make").args(["-s", "-C", root, "raw"])).unwrap();
    let object = format!("{root}/build/lwt_filter.bpf.o");
    t.router
        .ip(&[
            "route",
            "add",
            FILTERED_PREFIX,
            "encap",
            "bpf",
            "in",
            "obj",
            &object,
            "section",
            "lwt_in",
            "via",
            GATEWAY,
        ])
        .unwrap();
    let shown = routes(&t, false);
    assert!(
        shown.contains(&format!(
            "{FILTERED_PREFIX}  encap bpf in lwt_filter.bpf.o:[lwt_in] via {GATEWAY}"
        )),
        "{shown}"
    );
    // An empty policy: everything passes.
    let socks = listen(&t, &[(FILTERED, 9000)]);
    send(&t, CLIENT, (FILTERED, 9000), 2);
    let client: IpAddr = CLIENT.parse().unwrap();
    assert_eq!(received(&socks)[0], BTreeMap::from([(client, 2)]));
    t.router.ip(&["route", "del", FILTERED_PREFIX]).unwrap();
}
