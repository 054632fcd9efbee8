//! For the tests of the security lessons (lsm_guard, cgroup_guard): a
//! cgroup the test makes, a namespace with addresses to connect to, and
//! guard_probe's answers.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{assert_bad_inputs, wait_until, BadInput, Exit, NetNs, Running};

/// The addresses in [`Targets`]' namespace (documentation ranges, on its
/// loopback only).
pub const TARGET4: &str = "192.0.2.1";
pub const TARGET6: &str = "2001:db8::1";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The cgroup v2 mount point, from /proc/mounts.
pub fn cgroup2_root() -> PathBuf {
    learning_ebpf_rs::guards::cgroup::cgroup2_mount().expect("a cgroup v2 hierarchy")
}

/// A cgroup made for a test; dropping it kills what still runs in it (the
/// test's own children) and removes it, children cgroups first.
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    pub fn new() -> Result<TestCgroup> {
        let name = format!(
            "lebpf-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Self::at(cgroup2_root().join(name))
    }

    fn at(path: PathBuf) -> Result<TestCgroup> {
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(TestCgroup { path })
    }

    /// A cgroup below this one.
    pub fn child(&self, name: &str) -> Result<TestCgroup> {
        Self::at(self.path.join(name))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `cmd` start inside this cgroup (it moves itself in before exec).
    pub fn put(&self, cmd: &mut Command) -> Result<()> {
        let procs = OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))?;
        // SAFETY: only write(2) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || (&procs).write_all(b"0"));
        }
        Ok(())
    }

    fn procs(&self) -> String {
        std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if !self.procs().trim().is_empty() {
            let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
            wait_until(Duration::from_secs(2), || self.procs().trim().is_empty());
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The cgroups a guard made (`<lesson>-<pid>`) that outlived it: those of
/// guards still running (another test's) do not count.
pub fn cgroups_left_by(lesson: &str) -> Vec<PathBuf> {
    std::fs::read_dir(cgroup2_root())
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix(&format!("{lesson}-")))
                        .and_then(|pid| pid.parse::<u32>().ok())
                        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A namespace with TARGET4 and TARGET6 on its loopback, TCP listeners on
/// ports 80 and 81 of both and on port 80 of the loopback addresses
/// (127.0.0.1, ::1), UDP and UDP-Lite sockets bound there too, ping
/// sockets allowed for every group, and no reverse-path filter (a packet
/// written to a tun device comes from an address with no route back).
/// [`Targets::deliveries`] says what reached them.
pub struct Targets {
    ns: NetNs,
    listeners: Vec<TcpListener>,
    /// UDP and UDP-Lite sockets, with what to call them in a delivery.
    datagram: Vec<(String, OwnedFd)>,
}

/// The endpoints [`Targets`] listens on.
const ENDPOINTS: [(&str, u16); 6] = [
    (TARGET4, 80),
    (TARGET4, 81),
    (TARGET6, 80),
    (TARGET6, 81),
    ("127.0.0.1", 80),
    ("::1", 80),
];

/// Whether this kernel makes sockets of `family` (a kernel loads the
/// family's module on the first try, where it may).
fn has_family(family: libc::c_int) -> bool {
    // SAFETY: socket(2) returns a new fd or -1; a new fd is closed here.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        // SAFETY: fd is ours, and nothing else uses it.
        unsafe { libc::close(fd) };
    }
    fd >= 0
}

/// Whether this kernel has UDP-Lite (Debian's 7.2 kernel has none).
pub fn has_udplite() -> bool {
    Path::new("/proc/net/udplite").exists()
}

/// A datagram socket (`protocol` UDP or UDP-Lite) bound to `addr`,
/// non-blocking.
fn bound_datagram(addr: SocketAddr, protocol: libc::c_int) -> Result<OwnedFd> {
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: socket(2) returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = socket2_addr(addr);
    // SAFETY: sa is a valid sockaddr of the length given.
    if unsafe { libc::bind(fd.as_raw_fd(), sa.0.as_ptr().cast(), sa.1) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("bind {addr}"));
    }
    Ok(fd)
}

/// `addr` as the bytes of a sockaddr_in or sockaddr_in6, with its length.
fn socket2_addr(addr: SocketAddr) -> ([u8; 28], libc::socklen_t) {
    let mut b = [0u8; 28];
    match addr {
        SocketAddr::V4(v4) => {
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v4.port().to_be_bytes());
            b[4..8].copy_from_slice(&v4.ip().octets());
            (b, 16)
        }
        SocketAddr::V6(v6) => {
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v6.port().to_be_bytes());
            b[8..24].copy_from_slice(&v6.ip().octets());
            (b, 28)
        }
    }
}

impl Targets {
    pub fn new() -> Result<Targets> {
        let ns = NetNs::new()?;
        ns.ip(&["addr", "add", &format!("{TARGET4}/32"), "dev", "lo"])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{TARGET6}/128"),
            "dev",
            "lo",
            "nodad",
        ])?;
        ns.sysctl("net/ipv4/ping_group_range", "0 2147483647")?;
        ns.sysctl("net/ipv4/conf/all/rp_filter", "0")?;
        ns.sysctl("net/ipv4/conf/default/rp_filter", "0")?;
        let (listeners, datagram) = ns.run(|| -> Result<_> {
            let mut tcp = Vec::new();
            let mut datagram = Vec::new();
            for (ip, port) in ENDPOINTS {
                let addr = SocketAddr::new(ip.parse()?, port);
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                tcp.push(listener);
                datagram.push((
                    format!("udp {addr}"),
                    bound_datagram(addr, libc::IPPROTO_UDP)?,
                ));
                if has_udplite() {
                    datagram.push((
                        format!("udplite {addr}"),
                        bound_datagram(addr, libc::IPPROTO_UDPLITE)?,
                    ));
                }
            }
            Ok((tcp, datagram))
        })?;
        Ok(Targets {
            ns,
            listeners,
            datagram,
        })
    }

    /// What reached the endpoints since the last call: the text each
    /// connection or datagram carried (guard_probe sends `guard_probe VERB
    /// ARG`), after the endpoint: "udp 192.0.2.1:80 guard_probe sendto-udp
    /// ...". A connection that sent nothing is "tcp ADDR:PORT (connection)".
    pub fn deliveries(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for listener in &self.listeners {
            let local = listener.local_addr().unwrap();
            while let Ok((mut stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                if text.is_empty() {
                    text = "(connection)".into();
                }
                seen.push(format!("tcp {local} {text}"));
            }
        }
        for (name, fd) in &self.datagram {
            let mut buf = [0u8; 2048];
            loop {
                // SAFETY: buf is valid for its length; the socket is ours.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    break;
                }
                seen.push(format!(
                    "{name} {}",
                    String::from_utf8_lossy(&buf[..n as usize])
                ));
            }
        }
        seen
    }

    /// `nsenter --net=... PROBE ARGS`: guard_probe in this namespace, as the
    /// words of a command line.
    pub fn probe(&self, probe: &str, args: &[&str]) -> Vec<String> {
        let mut words = self.enter();
        words.push(probe.to_string());
        words.extend(args.iter().map(|a| a.to_string()));
        words
    }

    /// `nsenter --net=...`: what runs a command in this namespace.
    pub fn enter(&self) -> Vec<String> {
        vec![
            "nsenter".to_string(),
            format!("--net=/run/netns/{}", self.ns.name()),
        ]
    }
}

/// guard_probe's answers: its pid, and each action with its outcome
/// ("ok", "denied", or "error: ...").
pub struct ProbeOutput {
    pub pid: u32,
    pub answers: Vec<(String, String)>,
}

impl ProbeOutput {
    /// Reads the probe's lines out of `stdout` (which may hold other lines:
    /// a guard's reports share the terminal).
    pub fn parse(stdout: &[String]) -> ProbeOutput {
        let pid = stdout
            .iter()
            .find_map(|l| l.strip_prefix("guard_probe pid "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no guard_probe pid line in {stdout:?}"));
        let answers = stdout
            .iter()
            .filter(|l| {
                !l.starts_with('{')
                    && !l.starts_with("DENIED ")
                    && !l.starts_with("guard_probe pid ")
                    && l.split(' ').count() >= 3
            })
            .map(|l| {
                let mut words = l.splitn(3, ' ');
                let action = format!(
                    "{} {}",
                    words.next().unwrap_or(""),
                    words.next().unwrap_or("")
                );
                (action, words.next().unwrap_or("").to_string())
            })
            .collect();
        ProbeOutput { pid, answers }
    }

    /// The outcome of `action` ("connect-tcp 192.0.2.1:80"), the first time.
    pub fn outcome(&self, action: &str) -> &str {
        self.answers
            .iter()
            .find(|(a, _)| a == action)
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("no answer for {action} in {:?}", self.answers))
    }
}

/// One thing guard_probe tries under the policy [`POLICY`], and the rule
/// that must deny it (None: it must be let through).
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub action: &'static str,
    pub rule: Option<u32>,
}

pub const fn case(action: &'static str, rule: Option<u32>) -> Case {
    Case { action, rule }
}

/// The connect policy both lessons are tested with: rule 1 denies one port
/// of TARGET4, rule 2 every port of TARGET6.
pub const POLICY: [&str; 4] = ["--deny", "192.0.2.1:80", "--deny", "2001:db8::1"];

/// What both guards must deny and allow under [`POLICY`], whatever the
/// program type: TCP over both families, the IPv4 address written as an
/// IPv4-mapped IPv6 one and in the NAT64 prefix, UDP with sendto() and
/// with connect(), TCP Fast Open (a sendto() that connects), ICMP echo and
/// raw sockets; the broadcast and multicast addresses (rule 0, the
/// guard's own refusal).
pub const CONNECT_CASES: [Case; 18] = [
    case("connect-tcp 192.0.2.1:80", Some(1)),
    case("connect-tcp [2001:db8::1]:81", Some(2)),
    case("connect-tcp [::ffff:192.0.2.1]:80", Some(1)),
    case("connect-tcp [64:ff9b::192.0.2.1]:80", Some(1)),
    case("sendto-udp 192.0.2.1:80", Some(1)),
    case("sendto-udp [2001:db8::1]:80", Some(2)),
    case("connect-udp 192.0.2.1:80", Some(1)),
    case("sendto-tcp 192.0.2.1:80", Some(1)),
    case("connect-ping 2001:db8::1", Some(2)),
    case("sendto-ping 2001:db8::1", Some(2)),
    case("sendto-raw 2001:db8::1", Some(2)),
    case("sendto-udp 255.255.255.255:80", Some(0)),
    case("sendto-udp 224.0.0.1:80", Some(0)),
    case("sendto-udp [ff02::1]:80", Some(0)),
    case("connect-tcp 192.0.2.1:81", None),
    case("connect-tcp [::ffff:192.0.2.1]:81", None),
    case("sendto-udp 192.0.2.1:81", None),
    case("connect-udp 192.0.2.1:81", None),
];

/// A guard's run: the probe's answers, the denials it reported (its JSON
/// lines), and its stderr.
pub struct GuardRun {
    pub probe: ProbeOutput,
    pub denials: Vec<serde_json::Value>,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

/// Runs `nsenter ... guard --json ARGS -- probe ACTIONS` to the end.
pub fn run_guarded(
    guard: &str,
    args: &[&str],
    targets: &Targets,
    probe: &str,
    actions: &[&str],
) -> GuardRun {
    run_guarded_in(Path::new("."), guard, args, targets, probe, actions)
}

/// [`run_guarded`] in the directory `cwd` (for the probe's relative paths).
pub fn run_guarded_in(
    cwd: &Path,
    guard: &str,
    args: &[&str],
    targets: &Targets,
    probe: &str,
    actions: &[&str],
) -> GuardRun {
    let words: Vec<&str> = actions.iter().flat_map(|a| a.split(' ')).collect();
    // The guard runs in the namespace (nsenter execs it): the command it
    // starts may have no privileges with which to enter one.
    let enter = targets.enter();
    let out = Command::new(&enter[0])
        .current_dir(cwd)
        .args(&enter[1..])
        .arg(guard)
        .arg("--json")
        .args(args)
        .arg("--")
        .arg(probe)
        .args(&words)
        .output()
        .expect("running the guard");
    let stdout: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let denials = stdout
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    GuardRun {
        probe: ProbeOutput::parse(&stdout),
        denials,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    }
}

/// Checks each case's outcome, and that each denial was reported once, by
/// the probe's pid, with its rule; `socket_rule` is the rule a guard
/// reports when it refuses the socket itself rather than its destination
/// (cgroup_guard's raw and ping sockets), or None.
pub fn assert_cases(run: &GuardRun, cases: &[Case], socket_rule: Option<(u32, &[&str])>) {
    let mut expected_rules = Vec::new();
    for case in cases {
        let outcome = run.probe.outcome(case.action);
        match case.rule {
            Some(rule) => {
                assert_eq!(outcome, "denied", "{}: {:?}", case.action, run.stderr);
                let refused_socket =
                    socket_rule.filter(|(_, kinds)| kinds.iter().any(|k| case.action.contains(k)));
                expected_rules.push(refused_socket.map_or(rule, |(r, _)| r));
            }
            None => assert!(
                outcome == "ok",
                "{} must be allowed, got {outcome}",
                case.action
            ),
        }
    }
    let mut reported: Vec<u32> = run
        .denials
        .iter()
        .map(|d| {
            assert_eq!(d["pid"], run.probe.pid, "{d}");
            assert_eq!(d["comm"], "guard_probe", "{d}");
            d["rule"].as_u64().unwrap() as u32
        })
        .collect();
    reported.sort();
    expected_rules.sort();
    assert_eq!(
        reported, expected_rules,
        "the rules of the reported denials"
    );
    let summary = format!(
        "{} denied, {} reported",
        expected_rules.len(),
        expected_rules.len()
    );
    assert!(
        run.stderr.contains(&summary),
        "{:?} lacks {summary:?}",
        run.stderr
    );
}

/// guard_probe with `actions`, started in `cgroup` (or where the test runs).
pub fn probe_in(
    probe: &str,
    targets: &Targets,
    cgroup: Option<&TestCgroup>,
    actions: &[&str],
) -> ProbeOutput {
    let words = targets.probe(probe, actions);
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    if let Some(cgroup) = cgroup {
        cgroup.put(&mut cmd).unwrap();
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ProbeOutput::parse(&lines)
}

/// `guard --json --deny 192.0.2.1:80 --cgroup CGROUP`, once it is attached.
fn guard_cgroup(guard: &str, cgroup: &TestCgroup) -> Running {
    let mut cmd = Command::new(guard);
    cmd.args(["--json", "--deny", "192.0.2.1:80", "--cgroup"])
        .arg(cgroup.path());
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    running
}

const DENIED: &str = "connect-tcp 192.0.2.1:80";
const TRY_DENIED: [&str; 2] = ["connect-tcp", "192.0.2.1:80"];

/// The policy holds in the cgroup and below it, not outside it, and only
/// while the guard runs: SIGTERM and SIGKILL both take it away.
pub fn assert_scoped_to_cgroup(guard: &str, probe: &str) {
    let targets = Targets::new().unwrap();
    let cgroup = TestCgroup::new().unwrap();
    let below = cgroup.child("below").unwrap();
    let outcome = |cgroup: Option<&TestCgroup>| {
        probe_in(probe, &targets, cgroup, &TRY_DENIED)
            .outcome(DENIED)
            .to_string()
    };
    let running = guard_cgroup(guard, &cgroup);
    assert_eq!(outcome(None), "ok", "outside the cgroup");
    assert_eq!(outcome(Some(&cgroup)), "denied", "in the cgroup");
    assert_eq!(outcome(Some(&below)), "denied", "in a cgroup below it");

    running.signal(libc::SIGTERM).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    assert_eq!(stdout.len(), 2, "one report per denial: {stdout:?}");
    assert!(
        stderr.iter().any(|l| l == "2 denied, 2 reported"),
        "{stderr:?}"
    );
    assert_eq!(outcome(Some(&cgroup)), "ok", "after SIGTERM");

    // SIGKILL gives the guard no chance to clean up: its links close with
    // the process, and the programs go with them.
    let running = guard_cgroup(guard, &cgroup);
    running.signal(libc::SIGKILL).unwrap();
    let _ = running.finish(Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || outcome(Some(&cgroup)) == "ok"),
        "after SIGKILL the policy must be gone"
    );
}

/// A stopped guard reads nothing: 2,000 denials overflow its 64 KiB ring
/// buffer (about 900 records), and its summary counts what was lost.
pub fn assert_counts_drops(guard: &str, probe: &str) {
    let targets = Targets::new().unwrap();
    let cgroup = TestCgroup::new().unwrap();
    let running = guard_cgroup(guard, &cgroup);
    running.signal(libc::SIGSTOP).unwrap();
    let mut actions = vec!["--repeat", "2000"];
    actions.extend(TRY_DENIED);
    let tried = probe_in(probe, &targets, Some(&cgroup), &actions);
    running.signal(libc::SIGCONT).unwrap();
    assert_eq!(tried.answers.len(), 2000);
    assert!(tried.answers.iter().all(|(_, o)| o == "denied"));
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let summary = stderr.last().unwrap();
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [denied, reported, dropped] = numbers[..] else {
        panic!("{summary:?}: denied, reported and not reported");
    };
    assert_eq!(denied, 2000, "{summary}");
    assert_eq!(reported, stdout.len() as u64, "{summary}");
    assert!(dropped > 0, "{summary}");
    assert_eq!(reported + dropped, denied, "{summary}");
}

/// The bad command lines both guards refuse in one line, leaving no cgroup.
pub const BAD_INPUTS: [BadInput<'static>; 8] = [
    BadInput {
        name: "a user that does not exist",
        args: &[
            "--deny",
            "192.0.2.1",
            "--user",
            "no-such-user",
            "--",
            "true",
        ],
        exit: Exit::Code(2),
        says: "no user 'no-such-user' in the password database (--user)",
    },
    BadInput {
        name: "a cgroup that does not exist",
        args: &[
            "--deny",
            "192.0.2.1",
            "--cgroup",
            "/sys/fs/cgroup/no-such-cgroup",
        ],
        exit: Exit::Code(1),
        says: "no-such-cgroup",
    },
    BadInput {
        name: "a directory that is not a cgroup",
        args: &["--deny", "192.0.2.1", "--cgroup", "/"],
        exit: Exit::Code(1),
        says: "not a cgroup v2 directory",
    },
    BadInput {
        name: "a malformed address",
        args: &["--deny", "192.0.2", "--", "true"],
        exit: Exit::Code(2),
        says: "'192.0.2' is not ADDR",
    },
    BadInput {
        name: "a port out of range",
        args: &["--deny", "192.0.2.1:65536", "--", "true"],
        exit: Exit::Code(2),
        says: "192.0.2.1:65536",
    },
    BadInput {
        name: "no cgroup and no command",
        args: &["--deny", "192.0.2.1"],
        exit: Exit::Code(1),
        says: "give the cgroup to guard",
    },
    BadInput {
        name: "no rule",
        args: &["--", "true"],
        exit: Exit::Code(1),
        says: "nothing to deny",
    },
    BadInput {
        name: "a command that cannot run",
        args: &["--deny", "192.0.2.1", "--", "/no/such/command"],
        exit: Exit::Code(1),
        says: "cannot run '/no/such/command'",
    },
];

/// Runs `cases` against `guard` (named `lesson`), checking after each that
/// it left no cgroup behind.
pub fn assert_bad_guard_inputs(guard: &str, lesson: &str, cases: &[BadInput]) {
    assert_bad_inputs(
        cases,
        |case| {
            let mut cmd = Command::new(guard);
            cmd.args(case.args);
            cmd
        },
        |case| {
            let left = cgroups_left_by(lesson);
            assert!(left.is_empty(), "{}: left {left:?}", case.name)
        },
    );
}

/// A guarded probe's run as the chapters show it: the probe's answers,
/// then the guard's reports, then its counts (on a terminal the two
/// programs' lines interleave in whatever order they were written).
pub fn as_chapter_shows(stdout: &[String], stderr: &[String]) -> String {
    let (reports, answers): (Vec<&String>, Vec<&String>) =
        stdout.iter().partition(|l| l.starts_with("DENIED "));
    answers
        .into_iter()
        .chain(reports)
        .chain(stderr)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `guard ARGS -- probe ACTIONS` (no namespace: every network action
/// of a chapter's run is denied, so nothing is sent) and returns the text
/// [`as_chapter_shows`] makes of it.
pub fn chapter_run(guard: &str, args: &[&str], probe: &str, actions: &[&str]) -> String {
    // The command runs as nobody (no sudo here): a copy it can run.
    let probe = ProbeCopy::new(probe);
    let out = Command::new(guard)
        .args(args)
        .arg("--")
        .arg(probe.path())
        .args(actions)
        .output()
        .expect("running the guard");
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert!(out.status.success(), "{out:?}");
    as_chapter_shows(&lines(&out.stdout), &lines(&out.stderr))
}

/// The cgroup a guard running `-- COMMAND` made for it.
fn made_cgroup(lesson: &str, guard_pid: u32) -> PathBuf {
    cgroup2_root().join(format!("{lesson}-{guard_pid}"))
}

/// Whether process `pid` is gone (or a zombie: dead, waiting to be reaped
/// by whoever inherited it).
fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// With `-- COMMAND`: SIGTERM ends the command and removes the cgroup; a
/// process the command left behind is ended with the cgroup; SIGKILL of the
/// guard kills the command too (it must not run unguarded), and the next
/// run removes the cgroup the killed guard could not.
pub fn assert_command_mode_leaves_nothing(guard: &str, lesson: &str) {
    let rule = ["--deny", "192.0.2.1"];
    let start = |command: &[&str]| {
        let mut cmd = Command::new(guard);
        cmd.args(rule).arg("--").args(command);
        let running = Running::spawn(cmd).unwrap();
        let cgroup = made_cgroup(lesson, running.pid());
        let procs = cgroup.join("cgroup.procs");
        assert!(
            wait_until(Duration::from_secs(20), || {
                std::fs::read_to_string(&procs).is_ok_and(|p| !p.trim().is_empty())
            }),
            "the command never ran in {}",
            cgroup.display()
        );
        let pid: u32 = std::fs::read_to_string(&procs)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (running, cgroup, pid)
    };

    // SIGTERM: the command ends (the guard exits with its status, 128 + 15).
    let (running, cgroup, sleep) = start(&["sleep", "30"]);
    running.signal(libc::SIGTERM).unwrap();
    let (status, _, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr:?}");
    assert!(wait_until(Duration::from_secs(5), || is_gone(sleep)));
    assert!(!cgroup.exists(), "{} was left", cgroup.display());

    // A command that leaves a process behind: it goes with the cgroup.
    let mut cmd = Command::new(guard);
    cmd.args(rule)
        .args(["--", "sh", "-c", "sleep 30 & echo $!"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let left: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || is_gone(left)),
        "pid {left} outlived its cgroup"
    );
    assert!(cgroups_left_by(lesson).is_empty());

    // The next run, which removes what killed guards left.
    let run_again = || {
        let next = Command::new(guard)
            .args(rule)
            .args(["--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&next.stderr).into_owned();
        assert!(next.status.success(), "{stderr}");
        stderr
    };

    // SIGKILL: the command dies with the guard; the cgroup stays until the
    // next run.
    let (running, cgroup, sleep) = start(&["sleep", "30"]);
    running.signal(libc::SIGKILL).unwrap();
    let _ = running.finish(Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || is_gone(sleep)),
        "the command outlived its guard"
    );
    let stderr = run_again();
    assert!(
        stderr.contains(&format!(
            "note: removed {}, left by a {lesson} that was killed\n",
            cgroup.display()
        )),
        "{stderr}"
    );
    assert!(!cgroup.exists());

    // SIGKILL again, with a process the command started in the background:
    // it outlives the guard, in the cgroup and unguarded, until the next
    // run ends it.
    // (The sleep must not hold the guard's output open: finish() reads it to
    // the end.)
    let (running, cgroup, _) = start(&["sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & wait"]);
    let procs = cgroup.join("cgroup.procs");
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    // The shell is the guard's child; the sleep is the shell's.
    let mut pair = None;
    wait_until(Duration::from_secs(5), || {
        let pids: Vec<u32> = std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        let shell = pids
            .iter()
            .copied()
            .find(|&p| parent_of(p) == Some(running.pid()));
        let sleep = shell.and_then(|sh| pids.iter().copied().find(|&p| parent_of(p) == Some(sh)));
        pair = shell.zip(sleep);
        pair.is_some()
    });
    let (shell, background) = pair.expect("the shell and its background sleep in the cgroup");
    running.signal(libc::SIGKILL).unwrap();
    let _ = running.finish(Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || is_gone(shell)));
    assert!(!is_gone(background), "the chapter says it runs on");
    let stderr = run_again();
    assert!(
        stderr.contains("(ended 1 process it left running unguarded)"),
        "{stderr}"
    );
    assert!(wait_until(Duration::from_secs(5), || is_gone(background)));
    assert!(!cgroup.exists());
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One guard test at a time: a guard run with `-- COMMAND` removes the
/// cgroups that killed guards left, and the tests look for those.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of guard_probe that any user can run, removed on drop: a guarded
/// command runs as an unprivileged user, who may not reach the checkout
/// (a clone under /root, say).
pub struct ProbeCopy {
    dir: PathBuf,
    path: PathBuf,
}

impl ProbeCopy {
    pub fn new(probe: &str) -> ProbeCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "lebpf-probe-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("guard_probe");
        std::fs::copy(probe, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        ProbeCopy { dir, path }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ProbeCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The policy the ways around are tried against: TARGET4's port 80, every
/// port of TARGET6, and the loopback addresses that the unspecified
/// address stands for.
pub const BYPASS_POLICY: [&str; 8] = [
    "--deny",
    "192.0.2.1:80",
    "--deny",
    "2001:db8::1",
    "--deny",
    "127.0.0.1:80",
    "--deny",
    "::1",
];

/// A way around an address policy: a guard_probe action and the endpoint
/// of [`Targets`] it reaches when nothing stops it (as [`Targets::deliveries`]
/// names it), denied by [`BYPASS_POLICY`].
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub action: &'static str,
    pub reaches: &'static str,
    /// Only root can try it (a raw or packet socket, a tun device).
    pub needs_root: bool,
    /// What no cgroup program sees: packet sockets and tun devices.
    pub below_ip: bool,
}

const fn attempt(action: &'static str, reaches: &'static str) -> Attempt {
    Attempt {
        action,
        reaches,
        needs_root: false,
        below_ip: false,
    }
}

const fn as_root(a: Attempt, below_ip: bool) -> Attempt {
    Attempt {
        needs_root: true,
        below_ip,
        ..a
    }
}

/// Other protocols (UDP-Lite; MPTCP and SMC, which fall back to TCP with a
/// plain TCP listener, SMC through a TCP socket the kernel makes for it),
/// the unspecified address in every spelling (with and
/// without a bound source), AF_UNSPEC, 24-byte IPv6 addresses, other send
/// paths (sendmmsg, io_uring), raw sockets whose header or payload names
/// the port or the address, packet sockets and a tun device.
pub const ATTEMPTS: [Attempt; 30] = [
    attempt("connect-udplite 192.0.2.1:80", "udplite 192.0.2.1:80"),
    attempt("sendto-udplite 192.0.2.1:80", "udplite 192.0.2.1:80"),
    attempt(
        "connect-udplite [2001:db8::1]:80",
        "udplite [2001:db8::1]:80",
    ),
    attempt("connect-tcp 0.0.0.0:80", "tcp 127.0.0.1:80"),
    attempt("connect-tcp [::]:80", "tcp [::1]:80"),
    attempt("connect-tcp 0.0.0.0:80,from=192.0.2.1", "tcp 192.0.2.1:80"),
    attempt(
        "connect-tcp [::ffff:0.0.0.0]:80,from=::ffff:192.0.2.1",
        "tcp 192.0.2.1:80",
    ),
    attempt("sendto-udp 0.0.0.0:80", "udp 127.0.0.1:80"),
    attempt("sendto-udp [::]:80", "udp [::1]:80"),
    attempt("sendto-udp 0.0.0.0:80,from=192.0.2.1", "udp 192.0.2.1:80"),
    attempt(
        "sendto-udp [::ffff:0.0.0.0]:80,from=::ffff:192.0.2.1",
        "udp 192.0.2.1:80",
    ),
    attempt("connect-udp 0.0.0.0:80,from=192.0.2.1", "udp 192.0.2.1:80"),
    attempt("sendto-udp 192.0.2.1:80,family=unspec", "udp 192.0.2.1:80"),
    attempt(
        "sendto-udplite 192.0.2.1:80,family=unspec",
        "udplite 192.0.2.1:80",
    ),
    attempt(
        "connect-tcp [2001:db8::1]:80,len=24",
        "tcp [2001:db8::1]:80",
    ),
    attempt(
        "connect-tcp [::ffff:192.0.2.1]:80,len=24",
        "tcp 192.0.2.1:80",
    ),
    attempt("sendto-udp [2001:db8::1]:80,len=24", "udp [2001:db8::1]:80"),
    attempt(
        "connect-udp [::ffff:192.0.2.1]:80,len=24",
        "udp 192.0.2.1:80",
    ),
    attempt("connect-mptcp 192.0.2.1:80", "tcp 192.0.2.1:80"),
    attempt("connect-smc 192.0.2.1:80", "tcp 192.0.2.1:80"),
    attempt("connect-smc [2001:db8::1]:80", "tcp [2001:db8::1]:80"),
    attempt("sendmmsg-udp 192.0.2.1:80", "udp 192.0.2.1:80"),
    attempt("uring-connect-tcp 192.0.2.1:80", "tcp 192.0.2.1:80"),
    attempt("uring-sendmsg-udp [2001:db8::1]:80", "udp [2001:db8::1]:80"),
    as_root(attempt("raw-udp 192.0.2.1:80", "udp 192.0.2.1:80"), false),
    as_root(
        attempt("raw-hdrincl 192.0.2.1:80,via=127.0.0.2", "udp 192.0.2.1:80"),
        false,
    ),
    as_root(attempt("packet-raw 192.0.2.1:80", "udp 192.0.2.1:80"), true),
    as_root(
        attempt("packet-dgram 192.0.2.1:80", "udp 192.0.2.1:80"),
        true,
    ),
    as_root(
        attempt("packet-sockpacket 192.0.2.1:80", "udp 192.0.2.1:80"),
        true,
    ),
    as_root(attempt("tun 192.0.2.1:80", "udp 192.0.2.1:80"), true),
];

impl Attempt {
    /// Whether this kernel has the protocol the attempt uses: a kernel built
    /// without MPTCP (Debian's 5.10), or without UDP-Lite (Debian's 7.2),
    /// offers no way round through it.
    pub fn on_this_kernel(&self) -> bool {
        if self.action.contains("mptcp") {
            return Path::new("/proc/sys/net/mptcp").exists();
        }
        if self.action.contains("smc") {
            return has_family(43); // AF_SMC (linux/socket.h)
        }
        !self.action.contains("udplite") || has_udplite()
    }

    /// What [`Targets::deliveries`] shows when this attempt got through.
    pub fn delivery(&self) -> String {
        format!("{} guard_probe {}", self.reaches, self.action)
    }
}

/// Each attempt, with no guard, reaches its endpoint: the attempts are real
/// ways to the denied addresses on this kernel.
pub fn assert_attempts_reach(targets: &Targets, probe: &str) {
    // A kernel that builds tun as a module makes /dev/net/tun when it loads.
    if !Path::new("/dev/net/tun").exists() {
        let _ = Command::new("modprobe").arg("tun").status();
    }
    let words: Vec<&str> = ATTEMPTS.iter().flat_map(|a| a.action.split(' ')).collect();
    let out = probe_in(probe, targets, None, &words);
    let delivered = targets.deliveries();
    for a in ATTEMPTS {
        if !a.on_this_kernel() {
            eprintln!(
                "{}: this kernel has no such protocol, so no way round through it",
                a.action
            );
            continue;
        }
        assert_eq!(out.outcome(a.action), "ok", "{} without a guard", a.action);
        assert!(
            delivered.contains(&a.delivery()),
            "{} did not reach {} without a guard: {delivered:?}",
            a.action,
            a.reaches
        );
    }
}

/// Every attempt under `guard --user USER` and [`BYPASS_POLICY`]: the
/// run, and what reached the targets.
pub fn attempts_under(
    guard: &str,
    user: &str,
    targets: &Targets,
    probe: &str,
) -> (GuardRun, Vec<String>) {
    let mut args = BYPASS_POLICY.to_vec();
    args.extend(["--user", user]);
    let actions: Vec<&str> = ATTEMPTS.iter().map(|a| a.action).collect();
    targets.deliveries();
    let run = run_guarded(guard, &args, targets, probe, &actions);
    assert!(run.status.success(), "{}", run.stderr);
    let delivered = targets.deliveries();
    (run, delivered)
}

/// Asserts that `attempt` failed under the guard and nothing of it arrived.
pub fn assert_stopped(run: &GuardRun, delivered: &[String], attempt: &Attempt, user: &str) {
    let outcome = run.probe.outcome(attempt.action);
    assert_ne!(outcome, "ok", "{} as {user} got through", attempt.action);
    assert!(
        !delivered.contains(&attempt.delivery()),
        "{} as {user} reached {} ({outcome})",
        attempt.action,
        attempt.reaches
    );
}

/// The ways out of the policy itself, tried by the guarded command: is it
/// allowed to signal the guard (signal 0 only asks), can it move itself
/// into `elsewhere`, and then reach the denied address?
fn escape_actions(elsewhere: &Path) -> Vec<String> {
    vec![
        "signal-parent 0".into(),
        format!("leave-cgroup {}", elsewhere.display()),
        "connect-tcp 192.0.2.1:80".into(),
    ]
}

/// As nobody: signal 0 to the guard is refused, the move to another cgroup
/// is refused, and the denied address stays denied, also after the command
/// made itself a user namespace (in which it holds every capability, over
/// that namespace only); a raw socket stays refused there too. As root:
/// the three succeed, and the guard said they would.
pub fn assert_cannot_leave(guard: &str, probe: &str) {
    let targets = Targets::new().unwrap();
    let probe = ProbeCopy::new(probe);
    let elsewhere = TestCgroup::new().unwrap();
    let escape = escape_actions(elsewhere.path());
    let mut in_userns = vec!["unshare-user 0".to_string()];
    in_userns.extend(escape.iter().cloned());
    in_userns.push("sendto-raw 192.0.2.1".into());
    for (user, actions, expect_ok) in [
        ("nobody", &escape, false),
        ("nobody", &in_userns, false),
        ("root", &escape, true),
    ] {
        let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
        let mut args = POLICY.to_vec();
        args.extend(["--user", user]);
        let run = run_guarded(guard, &args, &targets, probe.path(), &actions);
        assert!(run.status.success(), "{}", run.stderr);
        for action in &actions {
            let outcome = run.probe.outcome(action);
            if *action == "unshare-user 0" {
                // Some kernels refuse user namespaces to unprivileged users
                // (Debian's 6.1 does): then there is no such way to try.
                if outcome != "ok" {
                    eprintln!("unshare-user as {user}: {outcome} (no user namespace here)");
                }
                continue;
            }
            assert_eq!(outcome == "ok", expect_ok, "{action} as {user}: {outcome}");
        }
        assert_eq!(
            run.stderr.contains("warning: the command runs as root"),
            expect_ok,
            "{}",
            run.stderr
        );
    }
}

/// A command its user cannot reach (here, in a directory only root may
/// enter) is refused before anything loads, in one line naming the
/// directory, and leaves no cgroup.
pub fn assert_unreachable_command_refused(guard: &str, lesson: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!(
        "lebpf-private-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let program = dir.join("true");
    std::fs::copy("/bin/true", &program).unwrap();
    let out = Command::new(guard)
        .args(["--deny", "192.0.2.1", "--"])
        .arg(&program)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!(
        "as nobody: {} (mode 700) is not searchable by it",
        dir.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(cgroups_left_by(lesson).is_empty());
}
