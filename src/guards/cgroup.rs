//! The cgroup a guard's policy applies to: an existing cgroup v2
//! directory, or one made to run a command in, which is emptied and
//! removed on exit; and starting the command inside it, without
//! privileges.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::privileges::User;

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

/// Where `program` is, as exec would find it (a path, or a name in PATH).
pub fn find_program(program: &str) -> Result<PathBuf> {
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
pub fn user_can_run(path: &Path, user: &User) -> Result<()> {
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
