//! Helpers for the tests and benchmarks: privilege gating, network
//! namespaces joined by veth pairs, and child processes, each a guard that
//! removes what it made when dropped, also when a test panics.
//!
//! setns() changes only the calling thread's namespace, so code that must
//! run inside a namespace goes through [`NetNs::run`], which uses a thread of
//! its own. A socket keeps the namespace it was created in: create it inside
//! `run`, then use it from anywhere.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::privileges::{has_cap, Cap};

pub mod lb_topology;

/// True when CI=true: then a test that cannot run fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a test that needs root can run. Without the privileges it prints
/// why it skips, or panics under CI, where a skip counts as a failure.
pub fn privileged(test: &str) -> bool {
    if has_cap(Cap::Bpf) && has_cap(Cap::NetAdmin) {
        return true;
    }
    let why = "needs root (CAP_BPF and CAP_NET_ADMIN): run `sudo make test`";
    if in_ci() {
        panic!("{test} {why}; with CI=true a skip is a failure");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Returns from the calling test early (after saying why) when it cannot
/// run; see [`privileged`].
#[macro_export]
macro_rules! require_privileges {
    ($test:expr) => {
        if !$crate::testing::privileged($test) {
            return;
        }
    };
}

/// Runs a command to completion; an error carries its stderr.
pub fn run_cmd(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Asserts that a command failed with one line on stderr holding every
/// one of `needles`: the shape of every error a lesson prints.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    }
}

/// What a pinned lesson says when `ip netns exec` hides /sys/fs/bpf.
pub const HIDDEN_BY_IP_NETNS_EXEC: [&str; 2] =
    ["`ip netns exec` mounts a private /sys", "nsenter --net"];

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with every interface in it) on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// A new namespace with a unique name and its loopback up.
    pub fn new() -> Result<NetNs> {
        let name = format!(
            "lebpf-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::SeqCst)
        );
        run_cmd(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // A new namespace copies IPv4 settings such as forwarding from the
        // host's: a host that routes (Docker, Kubernetes) would hand every
        // test a router. Start from the kernel's defaults instead; a test
        // that needs forwarding turns it on.
        ns.sysctl("net/ipv4/ip_forward", "0")?;
        Ok(ns)
    }

    /// Sets `key` (a path under /proc/sys, such as `net/ipv4/ip_forward`)
    /// inside this namespace: /proc/sys/net shows the namespace of the task
    /// that opens it.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        self.run(|| std::fs::write(&path, value))
            .with_context(|| format!("setting {path} to {value} in {}", self.name))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`, returning stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run_cmd(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs `program` inside this namespace (`ip netns exec`,
    /// which execs it, so the child's pid is the program's pid).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A command that runs `program` in this network namespace only, the
    /// way the chapters run pinned lessons: `nsenter --net` keeps the mount
    /// namespace, so the host's /sys/fs/bpf and its pins stay visible to
    /// the lesson and to commands from other shells (`ip netns exec` mounts
    /// a private /sys that hides them).
    pub fn nsenter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns on a valid namespace fd; affects this thread only.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The index of `dev` inside this namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        let dev = dev.to_string();
        self.run(move || crate::netif::ifindex(&dev))
    }

    /// The MAC address of `dev` inside this namespace.
    pub fn mac(&self, dev: &str) -> Result<[u8; 6]> {
        let json = self.ip(&["-j", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)?;
        let text = links[0]["address"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{dev} has no MAC address"))?;
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(part, 16)?;
        }
        Ok(mac)
    }

    /// Packets sent out of `dev` inside this namespace, from its counters.
    pub fn tx_packets(&self, dev: &str) -> Result<u64> {
        let json = self.ip(&["-j", "-s", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)?;
        links[0]["stats64"]["tx"]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no tx counter for {dev}"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins two namespaces with a veth pair, `a_dev` in `a` and `b_dev` in `b`.
/// The pair is created directly inside the namespaces, never in the root
/// one, so names only need to be unique per namespace.
pub fn veth(a: &NetNs, a_dev: &str, b: &NetNs, b_dev: &str) -> Result<()> {
    run_cmd(Command::new("ip").args([
        "-n", &a.name, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]))?;
    a.ip(&["link", "set", a_dev, "up"])?;
    b.ip(&["link", "set", b_dev, "up"])?;
    Ok(())
}

/// Adds an address (`10.0.0.1/24`, `fd00::1/64`); IPv6 skips duplicate
/// address detection so the address is usable at once.
pub fn add_addr(ns: &NetNs, dev: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
    } else {
        ns.ip(&["addr", "add", cidr, "dev", dev])?;
    }
    Ok(())
}

/// Two hosts on one link: the shape most packet lessons test with.
pub struct TwoHosts {
    /// Runs the program under test on `DEV_A`.
    pub a: NetNs,
    /// Sends traffic to `a` from `DEV_B`.
    pub b: NetNs,
}

pub const DEV_A: &str = "veth-a";
pub const DEV_B: &str = "veth-b";
pub const IP4_A: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
pub const IP4_B: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
pub const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 1);
pub const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);

impl TwoHosts {
    pub fn new() -> Result<TwoHosts> {
        let hosts = TwoHosts {
            a: NetNs::new()?,
            b: NetNs::new()?,
        };
        veth(&hosts.a, DEV_A, &hosts.b, DEV_B)?;
        add_addr(&hosts.a, DEV_A, &format!("{IP4_A}/24"))?;
        add_addr(&hosts.b, DEV_B, &format!("{IP4_B}/24"))?;
        add_addr(&hosts.a, DEV_A, &format!("{IP6_A}/64"))?;
        add_addr(&hosts.b, DEV_B, &format!("{IP6_B}/64"))?;
        Ok(hosts)
    }
}

/// A child process with its output read line by line. Dropping it kills the
/// child (by its own pid) if it still runs.
pub struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout_rx: Receiver<String>,
    stderr_rx: Receiver<String>,
    readers: Vec<thread::JoinHandle<()>>,
}

fn read_lines(
    source: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    forward: Option<std::sync::mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &forward {
                let _ = tx.send(line);
            }
        }
    })
}

impl Running {
    /// Starts `cmd` with stdin closed.
    pub fn spawn(cmd: Command) -> Result<Running> {
        Self::start(cmd, false)
    }

    /// Starts `cmd` with a pipe to its stdin (see [`Running::write_stdin`]).
    pub fn spawn_with_stdin(cmd: Command) -> Result<Running> {
        Self::start(cmd, true)
    }

    fn start(mut cmd: Command, stdin: bool) -> Result<Running> {
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (out_tx, stdout_rx) = channel();
        let (err_tx, stderr_rx) = channel();
        let readers = vec![
            read_lines(child.stdout.take().unwrap(), stdout.clone(), Some(out_tx)),
            read_lines(child.stderr.take().unwrap(), stderr.clone(), Some(err_tx)),
        ];
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            stdout_rx,
            stderr_rx,
            readers,
        })
    }

    /// Writes `text` to the child's stdin (started with `spawn_with_stdin`).
    pub fn write_stdin(&mut self, text: &str) -> Result<()> {
        use std::io::Write;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("started without a stdin pipe"))?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits until a line of stdout contains `needle`; returns that line.
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.stdout_rx, &self.stdout, needle, timeout, "stdout")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stderr contains `needle`; returns that line.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.stderr_rx, &self.stderr, needle, timeout, "stderr")
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill() on the pid of a child we started and have not reaped.
        if unsafe { libc::kill(self.child.id() as i32, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill");
        }
        Ok(())
    }

    /// Waits for the child to exit (killing it after `timeout`) and returns
    /// its status and all of its stdout and stderr lines.
    pub fn finish(mut self, timeout: Duration) -> Result<(ExitStatus, Vec<String>, Vec<String>)> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(anyhow!("the process did not exit within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        Ok((status, out, err))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

static NEXT_FS: AtomicU32 = AtomicU32::new(0);

/// A private bpf filesystem mounted on a fresh directory, unmounted and
/// removed on drop (with anything pinned in it). `ip netns exec` remounts
/// /sys, hiding /sys/fs/bpf, but a bpffs mounted elsewhere stays visible.
/// A pin directory on the host's bpffs, /sys/fs/bpf (mounted first if it
/// is not, as `make setup` does), where the lessons pin by default; removed
/// with whatever is left in it on drop.
pub struct HostPinDir {
    path: std::path::PathBuf,
}

impl HostPinDir {
    pub fn new(name: &str) -> Result<HostPinDir> {
        let root = std::path::Path::new("/sys/fs/bpf");
        if !crate::pin::is_bpffs(root) {
            run_cmd(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(root))?;
        }
        let path = root.join(format!("lebpf-test-{}-{name}", std::process::id()));
        Ok(HostPinDir { path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for HostPinDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

pub struct BpfFs {
    dir: std::path::PathBuf,
}

impl BpfFs {
    pub fn new() -> Result<BpfFs> {
        let dir = std::env::temp_dir().join(format!(
            "lebpf-bpffs-{}-{}",
            std::process::id(),
            NEXT_FS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let fs = BpfFs { dir };
        run_cmd(
            Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&fs.dir),
        )?;
        Ok(fs)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        // Unmounting a bpffs drops the references its pins held.
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn wait_for_line(
    rx: &Receiver<String>,
    seen: &Mutex<Vec<String>>,
    needle: &str,
    timeout: Duration,
    stream: &str,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => bail!(
                "no {stream} line with {needle:?} within {timeout:?}; {stream} so far: {:?}",
                seen.lock().unwrap()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!(
                "the process closed {stream} before printing {needle:?}; {stream}: {:?}",
                seen.lock().unwrap()
            ),
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A CPU set holding `cpus`, for sched_setaffinity.
pub fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// Keeps the calling thread on `cpu` from now on.
pub fn pin_thread(cpu: usize) {
    let set = cpu_set(&[cpu]);
    // SAFETY: sched_setaffinity on the calling thread (0) with a valid set.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// True once no BPF program with this id exists (the kernel frees it after
/// its last reference goes, which may take a moment).
pub fn prog_gone(id: u32) -> bool {
    wait_until(Duration::from_secs(5), || {
        libbpf_rs::Program::fd_from_id(id).is_err()
    })
}
