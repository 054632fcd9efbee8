//! The binary between two namespaces: what it prints is exactly the
//! traffic the test sent and the filter names, no more, no less.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use etherparse::{PacketBuilder, VlanId};

use testkit::chapter::{as_terminal, assert_sample};
use testkit::{require_privileges, Running, TwoHosts, DEV_A, DEV_B, IP4_A, IP4_B, IP6_A, IP6_B};

use crate::BIN;

/// Starts socket_filter in A's namespace with `args`; returns once it is
/// capturing.
fn start(hosts: &TwoHosts, args: &[&str]) -> Running {
    let mut cmd: Command = hosts.a.command(BIN);
    cmd.args(args);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    running
}

/// Sends one datagram per payload from B (`from`, port 40000) to `to`.
fn send_from_b(hosts: &TwoHosts, from: IpAddr, to: SocketAddr, payloads: &[&[u8]]) {
    hosts.b.run(|| {
        // The port of the previous call's socket may not be free at once
        // (seen once on Debian's 5.10): retry for up to two seconds.
        let addr = SocketAddr::new(from, 40000);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let sock = loop {
            match UdpSocket::bind(addr) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other.unwrap_or_else(|e| panic!("bind {addr}: {e}")),
            }
        };
        for p in payloads {
            sock.send_to(p, to).unwrap();
        }
    });
}

/// Stops the capture; its JSON lines and its summary.
fn stop(running: Running) -> (Vec<Value>, String) {
    std::thread::sleep(Duration::from_millis(300)); // the last frames in flight
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let lines = stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (lines, stderr.last().cloned().unwrap_or_default())
}

/// (src, sport, dst, dport, length) of each line.
fn flows(lines: &[Value]) -> Vec<(String, u64, String, u64, u64)> {
    let mut flows: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["src"].as_str().unwrap().to_string(),
                l["sport"].as_u64().unwrap(),
                l["dst"].as_str().unwrap().to_string(),
                l["dport"].as_u64().unwrap(),
                l["length"].as_u64().unwrap(),
            )
        })
        .collect();
    flows.sort();
    flows
}

/// Frame length of a UDP datagram with `payload` bytes: Ethernet 14, IP
/// 20 or 40, UDP 8.
fn frame_len(v6: bool, payload: usize) -> u64 {
    (14 + if v6 { 40 } else { 20 } + 8 + payload) as u64
}

#[test]
fn prints_exactly_the_matching_traffic() {
    require_privileges!("prints_exactly_the_matching_traffic");
    let hosts = TwoHosts::new().unwrap();
    let capture = start(
        &hosts,
        &["-i", DEV_A, "--json", "udp", "and", "port", "9000"],
    );
    let payloads: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
    send_from_b(
        &hosts,
        IP4_B.into(),
        SocketAddr::new(IP4_A.into(), 9000),
        &payloads,
    );
    send_from_b(
        &hosts,
        IP6_B.into(),
        SocketAddr::new(IP6_A.into(), 9000),
        &payloads[..2],
    );
    // Not to be printed: another port, and (A answers the datagrams above
    // with ICMP port unreachable) ICMP.
    send_from_b(
        &hosts,
        IP4_B.into(),
        SocketAddr::new(IP4_A.into(), 9001),
        &payloads,
    );
    let (lines, summary) = stop(capture);

    let mut expected: Vec<_> = payloads
        .iter()
        .map(|p| {
            (
                IP4_B.to_string(),
                40000,
                IP4_A.to_string(),
                9000,
                frame_len(false, p.len()),
            )
        })
        .chain(payloads[..2].iter().map(|p| {
            (
                IP6_B.to_string(),
                40000,
                IP6_A.to_string(),
                9000,
                frame_len(true, p.len()),
            )
        }))
        .collect();
    expected.sort();
    assert_eq!(flows(&lines), expected, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["proto"] == "udp" && l["vlan"].is_null()));
    assert!(
        summary.starts_with("5 packets kept, "),
        "5 kept, the rest rejected: {summary}"
    );
}

#[test]
fn snap_length_cuts_each_frame() {
    require_privileges!("snap_length_cuts_each_frame");
    let hosts = TwoHosts::new().unwrap();
    let capture = start(
        &hosts,
        &["-i", DEV_A, "--json", "-s", "40", "udp", "port", "9000"],
    );
    send_from_b(
        &hosts,
        IP4_B.into(),
        SocketAddr::new(IP4_A.into(), 9000),
        &[&[7u8; 100]],
    );
    let (lines, _) = stop(capture);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["length"], frame_len(false, 100));
    assert_eq!(lines[0]["captured"], 40);
    // The ports sit in bytes 34-37: still read at 40.
    assert_eq!(lines[0]["dport"], 9000);
}

/// Sends `frame` as it is out of B's DEV_B, with an AF_PACKET socket.
fn send_frame_from_b(hosts: &TwoHosts, frame: &[u8]) {
    let ifindex = hosts.b.ifindex(DEV_B).unwrap();
    hosts.b.run(|| {
        // SAFETY: plain socket calls on an fd we own; sockaddr_ll is
        // filled in before sendto reads it.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            libc::close(fd);
            assert_eq!(
                sent,
                frame.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
        }
    });
}

#[test]
fn vlan_tagged_traffic() {
    require_privileges!("vlan_tagged_traffic");
    let hosts = TwoHosts::new().unwrap();
    let capture = start(
        &hosts,
        &["-i", DEV_A, "--json", "vlan", "100", "udp", "port", "9000"],
    );
    // A frame tagged with VLAN 100, written byte for byte and sent from B;
    // then the same datagram untagged, through B's stack.
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(hosts.b.mac(DEV_B).unwrap(), hosts.a.mac(DEV_A).unwrap())
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4(IP4_B.octets(), IP4_A.octets(), 64)
        .udp(40000, 9000)
        .write(&mut tagged, b"tagged")
        .unwrap();
    send_frame_from_b(&hosts, &tagged);
    send_from_b(
        &hosts,
        IP4_B.into(),
        SocketAddr::new(IP4_A.into(), 9000),
        &[b"untagged"],
    );
    let (lines, _) = stop(capture);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["vlan"], 100);
    assert_eq!(lines[0]["src"], IP4_B.to_string());
    // A's stack took the tag out of the frame into the packet's metadata
    // before the AF_PACKET socket saw it: the frame is 4 bytes shorter.
    assert_eq!(lines[0]["captured"], frame_len(false, 6));
    assert_eq!(lines[0]["captured"], tagged.len() as u64 - 4);
}

#[test]
fn a_udp_sockets_own_filter() {
    require_privileges!("a_udp_sockets_own_filter");
    let hosts = TwoHosts::new().unwrap();
    let mut cmd: Command = hosts.a.command(BIN);
    cmd.args(["--udp", "9000", "--prefix", "keep", "-s", "8"]);
    let mut receiver = Running::spawn(cmd).unwrap();
    receiver
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let to = SocketAddr::new(IP4_A.into(), 9000);
    send_from_b(
        &hosts,
        IP4_B.into(),
        to,
        &[b"keep: one", b"drop: two", b"keep", b"kee"],
    );
    let to6 = SocketAddr::new(IP6_A.into(), 9000);
    send_from_b(&hosts, IP6_B.into(), to6, &[b"keep6"]);
    std::thread::sleep(Duration::from_millis(300));
    receiver.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = receiver.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    // Kept: the datagrams that start with "keep", cut to 8 bytes of payload.
    let expected = [
        format!("from {IP4_B}:40000: 8 bytes \"keep: on\""),
        format!("from {IP4_B}:40000: 4 bytes \"keep\""),
        format!("from [{IP6_B}]:40000: 5 bytes \"keep6\""),
    ];
    assert_eq!(stdout.len(), expected.len(), "{stdout:?}");
    for (line, want) in stdout.iter().zip(&expected) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
    assert_eq!(
        stderr.last().unwrap(),
        "3 packets kept, 2 rejected by the filter"
    );
    assert_sample(
        "docs/10-socket_filter.md",
        "socket_filter_udp",
        &as_terminal(&stdout, &stderr),
    );
}
