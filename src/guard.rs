//! What the two security lessons, lsm_guard and cgroup_guard, share: the
//! policy given on the command line and its map keys (bpf/guard.h), the
//! cgroup the policy applies to (given, or made to run a command in), and
//! the report of denials read from the ring buffer.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, RingBufferBuilder};

use crate::privileges::User;
use crate::signals::Stop;
use crate::trace::cstr;

/// Both objects build `struct denial` from bpf/guard.h; this is its Rust
/// type (the same in either skeleton).
pub type Denial = crate::skel::cgroup_guard::types::denial;
/// What a denied process tried (`enum guard_kind` in bpf/guard.h).
pub type GuardKind = crate::skel::cgroup_guard::types::guard_kind;

/// The options both guards take.
#[derive(clap::Args, Debug)]
pub struct GuardArgs {
    /// Deny connecting and sending to ADDR (IPv4 or IPv6) on PORT, or on
    /// every port when none is given; repeat for more rules
    #[arg(long = "deny", value_name = "ADDR[:PORT]")]
    pub deny: Vec<AddrRule>,
    /// Apply the policy to the processes of this cgroup (a cgroup v2
    /// directory) and the cgroups below it, until Ctrl-C
    #[arg(long, value_name = "PATH", conflicts_with = "command")]
    pub cgroup: Option<PathBuf>,
    /// One JSON object per denial
    #[arg(long)]
    pub json: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    pub verbose: bool,
    /// Run COMMAND as USER (a name or a uid), without privileges, so that it
    /// cannot leave the cgroup or stop the guard [default: nobody]. USER's
    /// other processes are outside the policy: pick one that runs nothing
    /// else. `--user root` keeps root's privileges, with which the command
    /// can leave the policy
    #[arg(long, value_name = "USER", value_parser = parse_user, conflicts_with = "cgroup")]
    pub user: Option<User>,
    /// Run COMMAND in a new cgroup under the policy, and exit with its status
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_user(s: &str) -> Result<User, String> {
    User::lookup(s).map_err(|e| e.to_string())
}

/// Who runs a guarded command: `--user`, else nobody.
pub fn command_user(args: &GuardArgs) -> Result<User> {
    match &args.user {
        Some(user) => Ok(user.clone()),
        None => User::lookup("nobody")
            .context("no user 'nobody' to run the command as: give one with --user USER"),
    }
}

/// A `--deny ADDR[:PORT]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrRule {
    pub addr: IpAddr,
    /// 0: every port.
    pub port: u16,
}

impl FromStr for AddrRule {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrRule, String> {
        let bad = || format!("'{s}' is not ADDR, ADDR:PORT or [IPv6]:PORT");
        if let Ok(sa) = SocketAddr::from_str(s) {
            if sa.port() == 0 {
                return Err(format!(
                    "'{s}': port 0 is not a port (leave it out for every port)"
                ));
            }
            return Ok(AddrRule {
                addr: sa.ip(),
                port: sa.port(),
            });
        }
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        let addr = IpAddr::from_str(bare.unwrap_or(s)).map_err(|_| bad())?;
        Ok(AddrRule { addr, port: 0 })
    }
}

impl fmt::Display for AddrRule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (self.addr, self.port) {
            (addr, 0) => write!(f, "{addr}"),
            (addr, port) => write!(f, "{}", SocketAddr::new(addr, port)),
        }
    }
}

/// An address as the BPF side keys it: IPv6, with IPv4 mapped into it.
fn as_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// `struct addr_key`: the address in network order, then the port.
pub fn addr_key(addr: IpAddr, port: u16) -> [u8; 20] {
    let mut key = [0; 20];
    key[..16].copy_from_slice(&as_v6(addr).octets());
    key[16..].copy_from_slice(&u32::from(port).to_ne_bytes());
    key
}

/// A `--deny-path PATH` rule: the file's identity, from stat(2) on the path
/// (symlinks followed), so that every name of the file matches.
#[derive(Clone, Debug)]
pub struct PathRule {
    pub path: PathBuf,
    /// The kernel's own encoding of the device (`s_dev`): MAJOR << 20 | MINOR.
    pub dev: u64,
    pub ino: u64,
}

impl FromStr for PathRule {
    type Err = String;

    fn from_str(s: &str) -> Result<PathRule, String> {
        let meta = std::fs::metadata(s).map_err(|e| format!("'{s}': {e}"))?;
        // st_dev is user space's encoding; the kernel's s_dev keeps the
        // minor number in the low 20 bits.
        let dev = (u64::from(libc::major(meta.dev())) << 20) | u64::from(libc::minor(meta.dev()));
        Ok(PathRule {
            path: PathBuf::from(s),
            dev,
            ino: meta.ino(),
        })
    }
}

/// `struct file_key`.
pub fn file_key(rule: &PathRule) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&rule.dev.to_ne_bytes());
    key[8..].copy_from_slice(&rule.ino.to_ne_bytes());
    key
}

/// The rules, numbered from 1: the `--deny` ones first, then `--deny-path`.
pub struct Policy {
    pub addrs: Vec<AddrRule>,
    pub paths: Vec<PathRule>,
}

impl Policy {
    pub fn new(addrs: Vec<AddrRule>, paths: Vec<PathRule>) -> Result<Policy> {
        if addrs.is_empty() && paths.is_empty() {
            bail!("nothing to deny: give at least one --deny ADDR[:PORT] (or --deny-path PATH)");
        }
        Ok(Policy { addrs, paths })
    }

    /// Rule `n` as it was written on the command line; rule 0, the
    /// guard's own refusal, by what it refused (`kind`).
    pub fn describe(&self, n: u32, kind: GuardKind) -> String {
        let i = n as usize;
        match i.checked_sub(1) {
            Some(i) if i < self.addrs.len() => format!("--deny {}", self.addrs[i]),
            Some(i) if i - self.addrs.len() < self.paths.len() => {
                format!(
                    "--deny-path {}",
                    self.paths[i - self.addrs.len()].path.display()
                )
            }
            None if kind == GuardKind::GUARD_SOCKET => {
                "a socket whose sends no rule could check is refused".into()
            }
            None if kind == GuardKind::GUARD_TUN => {
                "tun/tap devices are refused (what is written to them bypasses the rules)".into()
            }
            None => "the unspecified, broadcast and multicast addresses are refused \
                     (the kernel picks the hosts after the check)"
                .into(),
            _ => format!("rule {n}"),
        }
    }

    /// Writes the `--deny` rules into `deny_addrs`.
    pub fn fill_addrs(&self, deny_addrs: &dyn MapCore) -> Result<()> {
        for (n, rule) in (1u32..).zip(&self.addrs) {
            deny_addrs
                .update(
                    &addr_key(rule.addr, rule.port),
                    &n.to_ne_bytes(),
                    MapFlags::ANY,
                )
                .with_context(|| format!("adding --deny {rule}"))?;
        }
        Ok(())
    }

    /// Writes the `--deny-path` rules into `deny_files`.
    pub fn fill_paths(&self, deny_files: &dyn MapCore) -> Result<()> {
        let first = self.addrs.len() as u32 + 1;
        for (n, rule) in (first..).zip(&self.paths) {
            deny_files
                .update(&file_key(rule), &n.to_ne_bytes(), MapFlags::ANY)
                .with_context(|| format!("adding --deny-path {}", rule.path.display()))?;
        }
        Ok(())
    }
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
/// /sys/fs/cgroup/unified on systems that also mount cgroup v1).
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| PathBuf::from(f[1]))
        .context(
            "no cgroup v2 hierarchy is mounted: mount one with `mount -t cgroup2 none /sys/fs/cgroup`",
        )
}

fn is_cgroup2(dir: &File) -> bool {
    // SAFETY: fstatfs writes into the struct we pass, for an fd we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::fstatfs(dir.as_raw_fd(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
    }
}

/// The cgroup the policy applies to. One that this process made is emptied
/// (what still runs in it is killed) and removed on drop.
pub struct TargetCgroup {
    path: PathBuf,
    dir: File,
    made: bool,
}

impl TargetCgroup {
    /// An existing cgroup v2 directory.
    pub fn open(path: &Path) -> Result<TargetCgroup> {
        let dir = File::open(path).with_context(|| format!("cgroup {}", path.display()))?;
        if !is_cgroup2(&dir) || !path.is_dir() {
            bail!(
                "{} is not a cgroup v2 directory (they live under {})",
                path.display(),
                cgroup2_mount()?.display()
            );
        }
        Ok(TargetCgroup {
            path: path.to_path_buf(),
            dir,
            made: false,
        })
    }

    /// A new cgroup `<lesson>-<pid>` at the top of the cgroup v2 hierarchy.
    /// Also removes, if empty, the cgroups of earlier runs that were
    /// killed before they could remove their own.
    pub fn make(lesson: &str) -> Result<TargetCgroup> {
        let root = cgroup2_mount()?;
        remove_stale(&root, lesson);
        let path = root.join(format!("{lesson}-{}", std::process::id()));
        std::fs::create_dir(&path)
            .with_context(|| format!("creating the cgroup {}", path.display()))?;
        let dir = File::open(&path).with_context(|| format!("opening {}", path.display()));
        let dir = match dir {
            Ok(dir) => dir,
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                return Err(e);
            }
        };
        Ok(TargetCgroup {
            path,
            dir,
            made: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> i32 {
        self.dir.as_raw_fd()
    }

    // ANCHOR: spawn
    /// Starts `command` inside this cgroup, as `user`: the child moves
    /// itself in (writes "0" to cgroup.procs) between fork and exec, so the
    /// program runs under the policy from its first instruction; then it
    /// drops root for `user`, so that it cannot move itself out again.
    pub fn spawn(&self, command: &[String], user: &User) -> Result<Child> {
        let procs: OwnedFd = OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .with_context(|| format!("opening {}/cgroup.procs", self.path.display()))?
            .into();
        let fd = procs.as_raw_fd();
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..]);
        if !user.is_root() {
            cmd.env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        let user = user.clone();
        let guard_pid = std::process::id() as i32;
        // SAFETY: only async-signal-safe calls (write, setgroups, setresgid,
        // setresuid, prctl, fcntl, getppid) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // (1) Into the cgroup, while still root.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                // (2) Out of root: no capabilities, and no way back through
                // a set-user-ID program (no_new_privs).
                if !user.is_root() {
                    user.become_in_child()?;
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // (3) Only stdin, stdout and stderr cross into the command:
                // a socket inherited from outside the cgroup is outside the
                // policy too.
                close_on_exec_from(3);
                // (4) The command must not outlive its policy: the kernel
                // kills it if this process dies, even by SIGKILL. Set after
                // the uid change, which clears it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != guard_pid {
                    // The guard died before prctl took effect.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run '{}'", command[0]))?;
        drop(procs);
        Ok(child)
    }
    // ANCHOR_END: spawn
}

/// Marks every descriptor from `first` up close-on-exec (close_range,
/// Linux 5.11; a loop over the descriptor table before that).
/// Async-signal-safe.
fn close_on_exec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range and fcntl on this process's own descriptors.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 {
            return;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as i32
        } else {
            1024
        };
        for fd in first as i32..max {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// The processes in the cgroup `dir` (not those of cgroups below it).
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in the cgroup `dir` and waits (2 s at most) until
/// it is empty: `cgroup.kill` (Linux 5.14), or SIGKILL to each pid it
/// lists on older kernels. True when it is empty.
fn kill_all(dir: &Path) -> bool {
    if cgroup_pids(dir).is_empty() {
        return true;
    }
    let by_cgroup = std::fs::write(dir.join("cgroup.kill"), "1").is_ok();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids = cgroup_pids(dir);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        if !by_cgroup {
            for pid in pids {
                // SAFETY: kill(2) on a process of a cgroup this guard made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes `<lesson>-<pid>` cgroups whose guard no longer runs, ending
/// what still runs in them: processes a killed guard's command started,
/// which ran on without the policy.
fn remove_stale(root: &Path, lesson: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let pid = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
            n.strip_prefix(lesson)?
                .strip_prefix('-')?
                .parse::<u32>()
                .ok()
        });
        let Some(pid) = pid else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let left = cgroup_pids(&path).len();
        if kill_all(&path) && std::fs::remove_dir(&path).is_ok() {
            let ended = match left {
                0 => String::new(),
                n => format!(
                    " (ended {n} process{} it left running unguarded)",
                    if n == 1 { "" } else { "es" }
                ),
            };
            eprintln!(
                "note: removed {}, left by a {lesson} that was killed{ended}",
                path.display()
            );
        }
    }
}

impl Drop for TargetCgroup {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        // What the command left running (a daemon it started) would keep
        // the cgroup alive: end it first.
        kill_all(&self.path);
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!(
                "warning: cannot remove the cgroup {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Where the guard's policy applies: `--cgroup PATH`, or a new cgroup for
/// `-- COMMAND`.
pub fn target(args: &GuardArgs, lesson: &str) -> Result<TargetCgroup> {
    if let Some(program) = args.command.first() {
        // Before anything is loaded or made: a typo costs nothing.
        let path = find_program(program).with_context(|| format!("cannot run '{program}'"))?;
        let user = command_user(args)?;
        user_can_run(&path, &user)
            .with_context(|| format!("cannot run '{program}' as {}", user.name))?;
    }
    match (&args.cgroup, args.command.is_empty()) {
        (Some(path), _) => TargetCgroup::open(path),
        (None, false) => TargetCgroup::make(lesson),
        (None, true) => bail!(
            "give the cgroup to guard (--cgroup PATH) or a command to run under the policy \
             (-- COMMAND ARGS...)"
        ),
    }
}

/// Where `program` is, as exec would find it (a path, or a name in PATH).
fn find_program(program: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            bail!("no such executable file")
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .context("not found in PATH")
}

/// Whether `user` may execute `path`: search permission on every
/// directory on the way and execute permission on the file, by the mode
/// bits (owner, group, others) that apply to that user. The command drops
/// root before exec, so root's view says nothing.
fn user_can_run(path: &Path, user: &User) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if user.is_root() {
        return Ok(());
    }
    let path = std::fs::canonicalize(path)?;
    let allowed = |meta: &std::fs::Metadata, bit: u32| {
        let shift = if meta.uid() == user.uid {
            6
        } else if meta.gid() == user.gid || user.groups.contains(&meta.gid()) {
            3
        } else {
            0
        };
        meta.mode() & (bit << shift) != 0
    };
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::metadata(dir)?;
        if !allowed(&meta, 0o1) {
            bail!(
                "{} (mode {:o}) is not searchable by it; give --user a user who can reach it",
                dir.display(),
                meta.mode() & 0o7777
            );
        }
    }
    let meta = std::fs::metadata(&path)?;
    if !allowed(&meta, 0o1) {
        bail!("{} is not executable by it", path.display());
    }
    Ok(())
}

/// The socket a denial names: "tcp", "udp", "raw", "packet", ...
fn socket_name(d: &Denial) -> String {
    const SOCK_RAW: u32 = libc::SOCK_RAW as u32;
    const SOCK_PACKET: u32 = 10; // the old packet interface (libc deprecates it)
    let family = d.family as i32;
    match (family, d.r#type, d.protocol) {
        (libc::AF_PACKET, SOCK_PACKET, _) => "packet (SOCK_PACKET)".into(),
        (libc::AF_PACKET, SOCK_RAW, _) => "packet (SOCK_RAW)".into(),
        (libc::AF_PACKET, _, _) => "packet (SOCK_DGRAM)".into(),
        (libc::AF_INET | libc::AF_INET6 | 0, t, p) => match (t, p) {
            (SOCK_RAW, _) => "raw".into(),
            (_, p) => match p as i32 {
                libc::IPPROTO_TCP => "tcp".into(),
                libc::IPPROTO_UDP => "udp".into(),
                libc::IPPROTO_UDPLITE => "udplite".into(),
                libc::IPPROTO_SCTP => "sctp".into(),
                libc::IPPROTO_MPTCP => "mptcp".into(),
                libc::IPPROTO_ICMP => "icmp".into(),
                libc::IPPROTO_ICMPV6 => "icmpv6".into(),
                p => format!("proto {p}"),
            },
        },
        (f, _, _) => format!("family {f}"),
    }
}

/// The destination of a denied connect or send, IPv4 unmapped.
fn destination(d: &Denial) -> (IpAddr, u16) {
    let mut octets = [0u8; 16];
    for (chunk, word) in octets.chunks_mut(4).zip(d.addr) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let v6 = Ipv6Addr::from(octets);
    let addr = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    (addr, d.port as u16)
}

/// One denial as a line: what, by whom, which rule.
pub fn format_denial(d: &Denial, policy: &Policy, json: bool) -> String {
    let comm = cstr(&d.comm);
    // (A type alias of a tuple struct takes the braces form, not a call.)
    let kind = GuardKind { 0: d.kind };
    let action = match kind {
        GuardKind::GUARD_CONNECT => "connect",
        GuardKind::GUARD_SENDMSG => "sendmsg",
        GuardKind::GUARD_OPEN => "open",
        GuardKind::GUARD_SOCKET => "socket",
        GuardKind::GUARD_TUN => "tun",
        _ => "?",
    };
    let rule = policy.describe(d.rule, kind);
    let path = || {
        let i = (d.rule as usize).saturating_sub(policy.addrs.len() + 1);
        policy
            .paths
            .get(i)
            .map_or(String::new(), |p| p.path.display().to_string())
    };
    if json {
        let mut object = serde_json::json!({
            "pid": d.pid,
            "tid": d.tid,
            "comm": comm,
            "action": action,
        });
        match kind {
            GuardKind::GUARD_OPEN => object["path"] = path().into(),
            GuardKind::GUARD_SOCKET => object["proto"] = socket_name(d).into(),
            GuardKind::GUARD_TUN => {}
            _ => {
                let (addr, port) = destination(d);
                object["proto"] = socket_name(d).into();
                object["addr"] = addr.to_string().into();
                object["port"] = port.into();
            }
        }
        object["rule"] = d.rule.into();
        object["deny"] = rule.into();
        object.to_string()
    } else {
        let what = match kind {
            GuardKind::GUARD_OPEN => path(),
            GuardKind::GUARD_SOCKET => socket_name(d),
            GuardKind::GUARD_TUN => "/dev/net/tun".into(),
            _ => {
                let (addr, port) = destination(d);
                format!("{} {}", socket_name(d), SocketAddr::new(addr, port))
            }
        };
        format!(
            "DENIED {action:<7} {what:<24} pid {:<7} {comm:<16} rule {}: {rule}",
            d.pid, d.rule
        )
    }
}

/// How a guarded command ended, as a shell reports it: its exit code, or
/// 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// The counters the BPF side keeps in `.bss` (`denied`, `dropped`), read
/// whole while it may be updating them.
pub fn counts(denied: &u64, dropped: &u64) -> (u64, u64) {
    // SAFETY: both point into the skeleton's mapped .bss, which the BPF
    // side updates with atomic adds of aligned 64-bit values.
    unsafe {
        (
            std::ptr::read_volatile(denied),
            std::ptr::read_volatile(dropped),
        )
    }
}

/// What `--user root` gives up, said when the command starts.
pub const ROOT_WARNING: &str = "warning: the command runs as root (--user root), which can leave \
    the policy: move itself to another cgroup, stop the guard, reconfigure the network; run it \
    as a user to hold it to the policy";

/// A guard's run once its programs are attached: start the command in the
/// cgroup (or say which cgroup is guarded), [`watch`] until it ends, then
/// empty and remove a cgroup made for it, before the caller detaches the
/// programs, so that nothing it held runs unguarded.
pub fn serve(
    cgroup: TargetCgroup,
    args: &GuardArgs,
    denials: &dyn MapCore,
    policy: &Policy,
    stop: &Stop,
    counts: impl Fn() -> (u64, u64),
) -> Result<i32> {
    let child = if args.command.is_empty() {
        eprintln!(
            "Guarding cgroup {}... Hit Ctrl-C to end.",
            cgroup.path().display()
        );
        None
    } else {
        let user = command_user(args)?;
        if user.is_root() {
            eprintln!("{ROOT_WARNING}");
        }
        Some(cgroup.spawn(&args.command, &user)?)
    };
    let status = watch(denials, policy, args.json, stop, child, counts);
    drop(cgroup);
    status
}

/// Prints every denial until Ctrl-C/SIGTERM or, with a command, until the
/// command exits (a stop request ends the command first: it must not
/// outlive its policy). Then prints the counts: `counts()` reads the BPF
/// side's (denied, dropped). Returns the exit status to leave with.
pub fn watch(
    denials: &dyn MapCore,
    policy: &Policy,
    json: bool,
    stop: &Stop,
    mut child: Option<Child>,
    counts: impl Fn() -> (u64, u64),
) -> Result<i32> {
    let reported = std::cell::Cell::new(0u64);
    let mut builder = RingBufferBuilder::new();
    builder.add(denials, |bytes: &[u8]| {
        if let Ok(d) = crate::maps::from_bytes::<Denial>(bytes) {
            println!("{}", format_denial(&d, policy, json));
            let _ = std::io::stdout().flush();
            reported.set(reported.get() + 1);
        }
        0
    })?;
    let ring = builder.build()?;
    let poll = |timeout| match ring.poll(timeout) {
        Err(e) if e.kind() != libbpf_rs::ErrorKind::Interrupted => {
            Err(e).context("polling the ring buffer")
        }
        _ => Ok(()),
    };
    let mut status = 0;
    loop {
        poll(Duration::from_millis(100))?;
        if let Some(c) = child.as_mut() {
            if let Some(s) = c.try_wait()? {
                status = exit_code(s);
                break;
            }
        }
        if stop.requested() {
            if let Some(mut c) = child.take() {
                status = stop_child(&mut c)?;
            }
            break;
        }
    }
    ring.consume().ok();
    let (denied, dropped) = counts();
    let mut summary = format!("{denied} denied, {} reported", reported.get());
    if dropped > 0 {
        summary.push_str(&format!(
            ", {dropped} not reported (the ring buffer was full)"
        ));
    }
    eprintln!("{summary}");
    Ok(status)
}

/// SIGTERM, then SIGKILL after 5 s: the command was started here.
fn stop_child(child: &mut Child) -> Result<i32> {
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(exit_code(s));
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Ok(exit_code(child.wait()?));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let r: AddrRule = "10.0.0.1:443".parse().unwrap();
        assert_eq!((r.addr.to_string(), r.port), ("10.0.0.1".into(), 443));
        let r: AddrRule = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!((r.addr.to_string(), r.port), ("2001:db8::1".into(), 80));
        let r: AddrRule = "2001:db8::1".parse().unwrap();
        assert_eq!(r.port, 0);
        let r: AddrRule = "[::1]".parse().unwrap();
        assert_eq!(r.to_string(), "::1");
        for bad in [
            "1.2.3",
            "1.2.3.4:",
            "1.2.3.4:70000",
            "host:80",
            "1.2.3.4:0",
            "",
        ] {
            assert!(bad.parse::<AddrRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_and_plain_ipv4_are_one_key() {
        let plain = addr_key("192.0.2.1".parse().unwrap(), 80);
        let mapped = addr_key("::ffff:192.0.2.1".parse().unwrap(), 80);
        assert_eq!(plain, mapped);
        assert_eq!(
            std::mem::size_of::<Denial>(),
            std::mem::size_of::<crate::skel::lsm_guard::types::denial>()
        );
    }
}
