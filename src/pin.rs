//! Pinning maps in bpffs so that other processes can reach them, and making
//! sure the pins go away with the process that made them.
//!
//! A pin is a file in a bpf filesystem that holds a reference to a map (or
//! program, or link): the object lives as long as the pin does, whatever
//! happens to the process that created it. That is the point of pinning, and
//! also its trap: a process killed with SIGKILL cannot remove its pins.
//! [`Pins`] removes them on drop, and can start a watchdog, a second process
//! that waits for the first to exit (however it exits) and then removes them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::MapHandle;

/// The argument that turns a binary into its own pin watchdog; a binary
/// that uses [`Pins::arm_watchdog`] calls [`run_watchdog_if_asked`] first.
pub const WATCHDOG_ARG: &str = "__unpin-on-exit";

/// The filesystem type of a bpf filesystem, as statfs(2) reports it.
pub const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// The type of the filesystem `path` is on (statfs's f_type), if `path`
/// exists.
pub fn fs_type(path: &Path) -> Option<i64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we pass.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c_path.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// True when `path` is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    fs_type(path) == Some(BPF_FS_MAGIC)
}

/// The name of the network namespace this process runs in, when it runs
/// under `ip netns exec NAME`, whose private /sys hides /sys/fs/bpf. Its
/// signature: the namespace is /run/netns/NAME, and /sys is a sysfs that
/// iproute2 mounted with NAME as its source.
fn ip_netns_exec_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/proc/self/ns/net").ok()?;
    let name = std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| (m.dev(), m.ino()) == (ours.dev(), ours.ino()))
        })?
        .file_name()
        .into_string()
        .ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo
        .lines()
        .any(|l| {
            let (fields, fs) = l.split_once(" - ").unwrap_or((l, ""));
            fields.split(' ').nth(4) == Some("/sys") && fs.split(' ').nth(1) == Some(&name)
        })
        .then_some(name)
}

/// What to do when `dir` is not on a bpffs: one line.
pub fn not_bpffs(dir: &Path) -> String {
    if let Some(ns) = ip_netns_exec_name().filter(|_| dir.starts_with("/sys")) {
        format!(
            "{} is hidden here: `ip netns exec` mounts a private /sys without /sys/fs/bpf; run \
             in the namespace with `nsenter --net=/run/netns/{ns}` instead (it changes only the \
             network namespace), or pass --pin a directory on a bpffs mounted outside /sys",
            dir.display()
        )
    } else {
        format!(
            "{} is not on a bpf filesystem: mount one (`mount -t bpf bpf /sys/fs/bpf`) or \
             choose another --pin directory",
            dir.display()
        )
    }
}

/// Makes sure `dir` is a directory on a bpffs, creating it (inside a bpffs)
/// if it is missing. Returns whether it created it.
pub fn prepare_dir(dir: &Path) -> Result<bool> {
    if dir.exists() {
        if !is_bpffs(dir) {
            bail!(not_bpffs(dir));
        }
        return Ok(false);
    }
    if !is_bpffs(dir.parent().unwrap_or(Path::new("/"))) {
        bail!(not_bpffs(dir));
    }
    std::fs::create_dir(dir)
        .with_context(|| format!("creating pin directory {}", dir.display()))?;
    Ok(true)
}

/// Opens the map pinned as `<dir>/<name>` by a running `lesson`; the error
/// says what to do when there is none.
pub fn open_map(dir: &Path, name: &str, lesson: &str) -> Result<MapHandle> {
    let path = dir.join(name);
    MapHandle::from_pinned_path(&path).map_err(|e| {
        if path.exists() {
            anyhow!("opening {}: {e}", path.display())
        } else if !dir.exists() && !is_bpffs(dir.parent().unwrap_or(dir)) {
            anyhow!(not_bpffs(dir))
        } else {
            anyhow!(
                "no running {lesson} pinned its maps in {} (start one, or pass its --pin)",
                dir.display()
            )
        }
    })
}

/// What happens to the pins when their process ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Removed, also after SIGKILL (by the watchdog).
    Unpin,
    /// Left in place, with the maps they hold, for inspection.
    Keep,
}

/// Pins in one directory, removed on drop unless kept.
pub struct Pins {
    dir: PathBuf,
    names: Vec<String>,
    created_dir: bool,
    keep: bool,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Pins {
    /// Prepares `dir`, which must be on a bpffs (or be a new directory
    /// directly inside one).
    pub fn new(dir: &Path, on_exit: OnExit) -> Result<Pins> {
        let keep = on_exit == OnExit::Keep;
        let created_dir = prepare_dir(dir)?;
        Ok(Pins {
            dir: dir.to_path_buf(),
            names: Vec::new(),
            created_dir,
            keep,
            watchdog: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a new pin `name` goes. An existing pin of that name means
    /// another process (or a killed one) owns this directory.
    fn claim(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if path.exists() {
            bail!(
                "{} already exists: another instance is running with this --pin directory, or a \
                 killed one left it behind (remove it with `rm -r {}`)",
                path.display(),
                self.dir.display()
            );
        }
        Ok(path)
    }

    /// Pins `map` as `<dir>/<name>`.
    pub fn pin_map(&mut self, map: &mut libbpf_rs::MapMut, name: &str) -> Result<()> {
        let path = self.claim(name)?;
        map.pin(&path)
            .with_context(|| format!("pinning map at {}", path.display()))?;
        self.names.push(name.to_string());
        Ok(())
    }

    /// Pins `prog` as `<dir>/<name>`, for a tool that finds programs by
    /// path (an iptables rule, `bpftool prog show pinned`). Call it before
    /// [`Pins::arm_watchdog`], which removes what was pinned by then.
    pub fn pin_prog(&mut self, prog: &mut libbpf_rs::ProgramMut, name: &str) -> Result<PathBuf> {
        let path = self.claim(name)?;
        prog.pin(&path)
            .with_context(|| format!("pinning program at {}", path.display()))?;
        self.names.push(name.to_string());
        Ok(path)
    }

    /// Pins each map under its name, then arms the watchdog: what a lesson
    /// that is managed through its pins does once its maps are filled.
    pub fn pin_and_watch<'m, 'o: 'm>(
        &mut self,
        maps: impl IntoIterator<Item = (&'m mut libbpf_rs::MapMut<'o>, &'m str)>,
    ) -> Result<()> {
        for (map, name) in maps {
            self.pin_map(map, name)?;
        }
        self.arm_watchdog()
    }

    /// Starts the watchdog: this same binary, run with [`WATCHDOG_ARG`],
    /// which blocks reading a pipe from us. When we exit, even by SIGKILL,
    /// the kernel closes our end, its read returns, and it removes the pins.
    pub fn arm_watchdog(&mut self) -> Result<()> {
        if self.keep {
            return Ok(());
        }
        let exe = std::env::current_exe().context("finding our own executable")?;
        let mut child = Command::new(exe)
            .arg(WATCHDOG_ARG)
            .arg(&self.dir)
            .arg(if self.created_dir { "rmdir" } else { "keepdir" })
            .args(&self.names)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the pin watchdog")?;
        let stdin = child.stdin.take().expect("stdin was piped");
        self.watchdog = Some((child, stdin));
        Ok(())
    }
}

fn remove_pins(dir: &Path, names: &[String], remove_dir: bool) {
    for name in names {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if remove_dir {
        let _ = std::fs::remove_dir(dir);
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if !self.keep {
            remove_pins(&self.dir, &self.names, self.created_dir);
        }
        // Closing the pipe lets the watchdog finish (it finds nothing left).
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// If this process was started as a pin watchdog, does that job and exits;
/// otherwise returns at once. Call it first thing in `main`.
pub fn run_watchdog_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(WATCHDOG_ARG) || args.len() < 4 {
        return;
    }
    // Ctrl-C in a terminal signals the whole process group: the watchdog
    // must outlive its parent, so it ignores the signals that end it.
    // SAFETY: setting signal dispositions to SIG_IGN.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    remove_pins(Path::new(&args[2]), &args[4..], args[3] == "rmdir");
    std::process::exit(0);
}
