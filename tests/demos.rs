//! The demos (`make demo-<lesson>`) run as a reader runs them: each shows
//! its lesson doing what the chapter says, and leaves no namespace, pin or
//! process behind, also when interrupted with Ctrl-C.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use testkit::chapter::assert_sample;
use testkit::{require_privileges, Running};

/// The directory of the lesson binaries that cargo built for this test.
fn target() -> &'static str {
    Path::new(env!("CARGO_BIN_EXE_tc_classifier"))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
}

fn demo(lesson: &str) -> Command {
    let mut cmd = Command::new(format!(
        "{}/scripts/demo/{lesson}.sh",
        env!("CARGO_MANIFEST_DIR")
    ));
    cmd.env("LEBPF_TARGET", target());
    cmd
}

/// Nothing of the demo whose shell had `pid` is left.
fn assert_clean(pid: u32) {
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    let suffix = format!("-{pid}");
    assert!(
        !netns
            .lines()
            .any(|l| l.split_whitespace().next().unwrap_or("").ends_with(&suffix)),
        "namespaces left behind: {netns}"
    );
    for pin in ["fw", "lb"] {
        let dir = format!("/sys/fs/bpf/lebpf-demo-{pin}-{pid}");
        assert!(!Path::new(&dir).exists(), "{dir} left behind");
    }
}

/// One demo at a time, as a reader runs them: each makes and removes
/// namespaces and processes of its own, and two at once would only test
/// how they get in each other's way.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(lesson: &str) -> String {
    let _one = one_at_a_time();
    let child = demo(lesson)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    println!("{stdout}");
    assert!(
        status.success(),
        "{lesson} demo: {status}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    assert_clean(pid);
    stdout
}

/// The numbers in the line that starts with `start`.
fn numbers(out: &str, start: &str) -> Vec<f64> {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{out}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn tc_classifier_demo_drops_port_9000() {
    require_privileges!("tc_classifier_demo_drops_port_9000");
    let out = run("tc_classifier");
    // DIR PROTO PACKETS BYTES DROPPED ...: 10 UDP datagrams in, 5 dropped.
    let udp = numbers(&out, "ingress  udp");
    assert_eq!((udp[0], udp[2]), (10.0, 5.0), "{out}");
    assert_sample("README.md", "tc_classifier_demo", &out);
    assert_sample("docs/01-tc_classifier.md", "tc_classifier_run", &out);
}

#[test]
fn xdp_firewall_demo_blocks_and_cuts_a_flood() {
    require_privileges!("xdp_firewall_demo_blocks_and_cuts_a_flood");
    let out = run("xdp_firewall");
    assert_sample("docs/02-xdp_firewall.md", "xdp_firewall_demo", &out);
    let pings: Vec<Vec<f64>> = out
        .lines()
        .filter(|l| l.contains("packets transmitted"))
        .map(|l| numbers(l, ""))
        .collect();
    // Before the block both addresses get through; after, only .3.
    let got: Vec<(f64, f64)> = pings.iter().map(|p| (p[0], p[1])).collect();
    assert_eq!(
        &got[..4],
        &[(10.0, 10.0), (10.0, 10.0), (10.0, 0.0), (10.0, 10.0)]
    );
    // The flood: the burst of 50, then 50 per second.
    let (sent, through) = got[4];
    let expected = *numbers(&out, "expected through").last().unwrap();
    assert_eq!(sent, 500.0);
    assert!(
        through >= 50.0 && (through - expected).abs() <= 10.0,
        "{through} of the flood got through, expected {expected}\n{out}"
    );
    assert_eq!(numbers(&out, "blocked")[0], 10.0, "{out}");
}

/// The backend -> connections tallies the demo printed, in order.
fn tallies(out: &str) -> Vec<Vec<(String, f64)>> {
    let mut all: Vec<Vec<(String, f64)>> = Vec::new();
    let mut in_tally = false;
    for line in out.lines() {
        match line.trim().split_once(" answered ") {
            Some((name, n)) => {
                if !in_tally {
                    all.push(Vec::new());
                }
                all.last_mut()
                    .unwrap()
                    .push((name.to_string(), n.parse().unwrap()));
                in_tally = true;
            }
            None => in_tally = false,
        }
    }
    all
}

#[test]
fn load_balancer_demo_spreads_by_weight_then_drains() {
    require_privileges!("load_balancer_demo_spreads_by_weight_then_drains");
    let out = run("load_balancer");
    assert_sample("docs/07-load_balancer.md", "load_balancer_demo", &out);
    let t = tallies(&out);
    assert_eq!(t.len(), 2, "{out}");
    // Weights 1, 2, 3 over 60 connections: 10, 20, 30 from one cursor,
    // near it with one per CPU.
    let first: Vec<&str> = t[0].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(first, ["b1", "b2", "b3"], "{out}");
    assert_eq!(t[0].iter().map(|(_, n)| n).sum::<f64>(), 60.0);
    for (i, (_, n)) in t[0].iter().enumerate() {
        let share = 10.0 * (i + 1) as f64;
        assert!((n - share).abs() <= share * 0.5, "{:?}\n{out}", t[0]);
    }
    // Drained, b3 takes no new connection.
    assert!(t[1].iter().all(|(n, _)| n != "b3"), "{out}");
    assert_eq!(t[1].iter().map(|(_, n)| n).sum::<f64>(), 30.0);
}

#[test]
fn a_demo_interrupted_by_ctrl_c_leaves_nothing() {
    require_privileges!("a_demo_interrupted_by_ctrl_c_leaves_nothing");
    let _one = one_at_a_time();
    let mut cmd = demo("load_balancer");
    // Its own process group, which Ctrl-C in a terminal signals whole.
    cmd.process_group(0);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stdout("60 connections", Duration::from_secs(30))
        .unwrap();
    let pid = running.pid();
    // SAFETY: signalling the process group we created.
    assert_eq!(unsafe { libc::kill(-(pid as i32), libc::SIGINT) }, 0);
    let (status, _, stderr) = running.finish(Duration::from_secs(20)).unwrap();
    assert!(!status.success(), "the demo went on to the end: {stderr:?}");
    assert_clean(pid);
}

#[test]
fn socket_filter_demo_prints_only_port_9000() {
    require_privileges!("socket_filter_demo_prints_only_port_9000");
    let out = run("socket_filter");
    let captured: Vec<&str> = out.lines().filter(|l| l.contains(" IP ")).collect();
    assert_eq!(captured.len(), 3, "{out}");
    assert!(
        captured
            .iter()
            .all(|l| l.contains(" > 10.11.0.1.9000: udp, length 50")),
        "{out}"
    );
    assert_sample("docs/10-socket_filter.md", "socket_filter_demo", &out);
}

#[test]
fn lwt_filter_demo_drops_port_9000_on_its_route() {
    require_privileges!("lwt_filter_demo_drops_port_9000_on_its_route");
    let out = run("lwt_filter");
    // VERDICT PACKETS BYTES: 3 datagrams pass, 3 dropped by port; the
    // ones to 10.31.0.1 never meet the program.
    assert_eq!(numbers(&out, "pass")[0], 3.0, "{out}");
    assert_eq!(numbers(&out, "drop-port")[0], 3.0, "{out}");
    assert_eq!(numbers(&out, "drop-source")[0], 0.0, "{out}");
    assert_sample("docs/11-lwt_filter.md", "lwt_filter_demo", &out);
}
