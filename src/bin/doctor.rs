//! doctor: what this machine can run. It checks the kernel and BTF, the
//! filesystems the lessons use, the privileges in effect, the BPF settings,
//! and the toolchain; then it probes the kernel features some lessons need
//! by loading (and where that is the question, attaching) the smallest
//! program of each kind, from bpf/doctor/probes.bpf.c. It ends with the
//! lessons and, for each that cannot run here, why.
//!
//! Exit status: 1 when a lesson cannot run for a reason this machine can
//! fix (a privilege, a mount, a tool); a feature the kernel lacks is
//! reported, and is not a failure. The chapter is docs/doctor.md.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde::Serialize;

use learning_ebpf_rs::privileges::{has_cap, Cap};
use learning_ebpf_rs::skel::ct_probe::CtProbeSkelBuilder;
use learning_ebpf_rs::skel::probes::{ProbesSkel, ProbesSkelBuilder};
use learning_ebpf_rs::{cli, lessons, pin, report};

const EXAMPLES: &str = "\
EXAMPLES:
    doctor                   # the checks, then the lessons
    doctor --json            # the same as one JSON object
    doctor --kernel 5.15.0   # which lessons a 5.15 kernel is too old for";

/// Say what this machine can run, and what to do about what it cannot.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// One JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Show libbpf's messages while probing (why a probe failed)
    #[arg(short, long)]
    verbose: bool,
    /// Judge the lessons' kernel minimums against RELEASE (5.15.0, say)
    /// instead of this kernel's; the probes still test this kernel
    #[arg(long, value_name = "RELEASE")]
    kernel: Option<String>,
}

/// How a check came out.
#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Works.
    Ok,
    /// The kernel does not have or allow it: lessons that need it cannot
    /// run here, and nothing on this machine's side would change that.
    No,
    /// Missing, and fixable here (the line says how).
    Fail,
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    /// What to do about it (for Fail and No).
    fix: Option<String>,
}

fn check(name: &'static str, status: Status, detail: String, fix: Option<&str>) -> Check {
    Check {
        name,
        status,
        detail,
        fix: fix.map(str::to_string),
    }
}

const TRACEFS_MAGIC: i64 = 0x74726163;
const SECURITYFS_MAGIC: i64 = 0x73636673;
const CGROUP2_MAGIC: i64 = 0x63677270;

fn mount_check(name: &'static str, paths: &[&str], magic: i64, mount: &str) -> Check {
    match paths
        .iter()
        .find(|p| pin::fs_type(Path::new(p)) == Some(magic))
    {
        Some(p) => check(name, Status::Ok, format!("mounted on {p}"), None),
        None => check(
            name,
            Status::Fail,
            format!("not mounted on {}", paths[0]),
            Some(mount),
        ),
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn kernel_checks() -> Vec<Check> {
    let release = read("/proc/sys/kernel/osrelease").unwrap_or_default();
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let mut checks = vec![if btf {
        check("kernel", Status::Ok, format!("{release}, with BTF"), None)
    } else {
        check(
            "kernel",
            Status::No,
            format!("{release}, without BTF (/sys/kernel/btf/vmlinux)"),
            Some("use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions' are)"),
        )
    }];
    checks.push(mount_check(
        "bpffs",
        &["/sys/fs/bpf"],
        pin::BPF_FS_MAGIC,
        "mount -t bpf bpf /sys/fs/bpf (make setup does)",
    ));
    checks.push(mount_check(
        "tracefs",
        &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"],
        TRACEFS_MAGIC,
        "mount -t tracefs tracefs /sys/kernel/tracing (make setup does)",
    ));
    checks.push(mount_check(
        "securityfs",
        &["/sys/kernel/security"],
        SECURITYFS_MAGIC,
        "mount -t securityfs securityfs /sys/kernel/security (make setup does)",
    ));
    checks.push(mount_check(
        "cgroup2",
        &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"],
        CGROUP2_MAGIC,
        "mount -t cgroup2 none /sys/fs/cgroup/unified",
    ));
    let caps = [Cap::Bpf, Cap::Perfmon, Cap::NetAdmin, Cap::SysAdmin];
    let missing: Vec<&str> = caps
        .iter()
        .filter(|c| !has_cap(**c))
        .map(|c| c.name())
        .collect();
    checks.push(if missing.is_empty() {
        check(
            "privileges",
            Status::Ok,
            "CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN".into(),
            None,
        )
    } else {
        check(
            "privileges",
            Status::Fail,
            format!("missing {}", missing.join(", ")),
            Some("run as root (sudo)"),
        )
    });
    let unpriv = read("/proc/sys/kernel/unprivileged_bpf_disabled").unwrap_or_default();
    let meaning = match unpriv.as_str() {
        "0" => "unprivileged users may load some programs",
        "1" => "only privileged users may use bpf(), until reboot",
        "2" => "only privileged users may use bpf() (an admin may change it)",
        _ => "unknown",
    };
    checks.push(check(
        "unprivileged_bpf",
        Status::Ok,
        format!("unprivileged_bpf_disabled={unpriv}: {meaning}; the lessons run as root"),
        None,
    ));
    let jit = read("/proc/sys/net/core/bpf_jit_enable").unwrap_or_default();
    checks.push(if jit == "1" || jit == "2" {
        check("jit", Status::Ok, format!("bpf_jit_enable={jit}"), None)
    } else {
        check(
            "jit",
            Status::Fail,
            format!("bpf_jit_enable={jit}: programs run in the interpreter, slowly"),
            Some("sysctl net.core.bpf_jit_enable=1"),
        )
    });
    checks.push(match read("/sys/kernel/security/lsm") {
        Some(lsms) if lsms.split(',').any(|l| l == "bpf") => {
            check("bpf_lsm", Status::Ok, format!("active LSMs: {lsms}"), None)
        }
        Some(lsms) => check(
            "bpf_lsm",
            Status::No,
            format!("bpf is not among the active LSMs: {lsms}"),
            Some("add bpf to the lsm= boot parameter (the list in /sys/kernel/security/lsm, plus bpf)"),
        ),
        None => check(
            "bpf_lsm",
            Status::Fail,
            "cannot read /sys/kernel/security/lsm".into(),
            Some("mount securityfs: mount -t securityfs securityfs /sys/kernel/security"),
        ),
    });
    checks
}

// ANCHOR: probe
/// Loads the one program `name` of the probes' object, every other one
/// switched off, and hands it to `then` (to attach it, or try a link).
fn probe(name: &str, then: impl FnOnce(&ProbesSkel) -> Result<()>) -> Result<()> {
    let mut object = MaybeUninit::uninit();
    let mut open = ProbesSkelBuilder::default().open(&mut object)?;
    let mut found = false;
    for mut prog in open.open_object_mut().progs_mut() {
        let wanted = prog.name() == name;
        found |= wanted;
        prog.set_autoload(wanted);
    }
    anyhow::ensure!(found, "no probe named {name}");
    let skel = open.load()?;
    then(&skel)
}
// ANCHOR_END: probe

/// The error's errno as text ("Operation not permitted"), or the error.
fn why(e: &anyhow::Error) -> String {
    match learning_ebpf_rs::errors::os_error(e) {
        Some(errno) => {
            let text = std::io::Error::from_raw_os_error(errno).to_string();
            text.split(" (os error")
                .next()
                .unwrap_or_default()
                .to_string()
        }
        None => format!("{e:#}"),
    }
}

/// A probe's outcome as a check: ok with `works`, or no with `fails`, the
/// kernel's answer and what would change it.
fn probed(
    name: &'static str,
    result: Result<()>,
    works: &str,
    fails: &str,
    fix: Option<&str>,
) -> Check {
    match result {
        Ok(()) => check(name, Status::Ok, works.into(), None),
        Err(e) => check(name, Status::No, format!("{fails}: {}", why(&e)), fix),
    }
}

fn feature_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let fentry = probe("probe_fentry", |s| {
        let _link = s.progs.probe_fentry.attach()?; // detached again on drop
        Ok(())
    });
    checks.push(probed(
        "fentry",
        fentry,
        "BPF trampolines load and attach",
        "this kernel refuses BPF trampolines (fentry/fexit)",
        Some("use a kernel that allows them: `make vm-test KERNEL=6.12` runs the lessons under Debian's 6.12"),
    ));
    let kprobe = probe("probe_kprobe", |s| {
        let _link = s.progs.probe_kprobe.attach()?; // detached again on drop
        Ok(())
    });
    checks.push(probed(
        "kprobe",
        kprobe,
        "kprobes attach",
        "kprobes do not attach",
        Some("a kernel with CONFIG_KPROBES=y"),
    ));
    let lsm = probe("probe_lsm", |s| {
        let _link = s.progs.probe_lsm.attach()?; // detached again on drop
        Ok(())
    });
    checks.push(probed(
        "lsm_programs",
        lsm,
        "BPF LSM programs load and attach",
        "BPF LSM programs do not load or attach",
        Some("a kernel with CONFIG_BPF_LSM=y, bpf in lsm=, and BPF trampolines allowed"),
    ));
    // ANCHOR: tcx
    // tcx (6.6): a link of attach type BPF_TCX_INGRESS to an interface
    // that does not exist. A kernel that knows tcx says ENODEV (no such
    // interface); one that does not says EINVAL (no such attach type).
    let tcx = probe("probe_tc", |s| {
        let fd = s.progs.probe_tc.as_fd().as_raw_fd();
        // SAFETY: a plain syscall wrapper; no options.
        let rc = unsafe {
            libbpf_sys::bpf_link_create(
                fd,
                0x7fff_fff0,
                libbpf_sys::BPF_TCX_INGRESS,
                std::ptr::null(),
            )
        };
        match -rc {
            libc::ENODEV => Ok(()),
            errno => Err(anyhow::Error::from(std::io::Error::from_raw_os_error(
                errno,
            ))),
        }
    });
    // ANCHOR_END: tcx
    checks.push(match tcx {
        Ok(()) => check("tcx", Status::Ok, "tcx links (6.6+)".into(), None),
        Err(e) => check(
            "tcx",
            Status::No,
            format!(
                "no tcx links ({}); TC programs attach through clsact instead",
                why(&e)
            ),
            None,
        ),
    });
    // Where conntrack is a module, load_balancer loads it (with nf_nat)
    // before it loads its program; the probe does the same, so that its
    // verdict is what the lesson will meet (a kernel with them built in has
    // nothing to load).
    let _ = Command::new("modprobe")
        .args(["-q", "nf_nat"])
        .stderr(std::process::Stdio::null())
        .status();
    let mut object = MaybeUninit::uninit();
    let ct = CtProbeSkelBuilder::default()
        .open(&mut object)
        .and_then(|open| open.load())
        .map(drop)
        .map_err(anyhow::Error::from);
    checks.push(match ct {
        Ok(()) => check(
            "conntrack_kfuncs",
            Status::Ok,
            "bpf_skb_ct_lookup and bpf_ct_release resolve".into(),
            None,
        ),
        Err(e) => check(
            "conntrack_kfuncs",
            Status::No,
            format!("the conntrack kfuncs do not load: {}", why(&e)),
            Some("a 6.1+ kernel with nf_conntrack and nf_nat"),
        ),
    });
    checks
}

fn tool_checks() -> Vec<Check> {
    let clang = std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into());
    let mut checks = Vec::new();
    let version = Command::new(&clang).arg("--version").output();
    checks.push(match version {
        Ok(out) if out.status.success() => {
            let first = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let targets = Command::new(&clang).arg("-print-targets").output();
            let bpf = targets.is_ok_and(|t| String::from_utf8_lossy(&t.stdout).contains("bpf"));
            if bpf {
                check(
                    "clang",
                    Status::Ok,
                    format!("{first}, with the BPF target"),
                    None,
                )
            } else {
                check(
                    "clang",
                    Status::Fail,
                    format!("{first}, without the BPF target"),
                    Some("install a clang built with the BPF target (make setup)"),
                )
            }
        }
        _ => check(
            "clang",
            Status::Fail,
            format!("{clang} not found"),
            Some("make setup (or set BPF_CLANG)"),
        ),
    });
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    let shown = if limit.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} KiB", limit.rlim_cur / 1024)
    };
    checks.push(check(
        "memlock",
        Status::Ok,
        format!("{shown}; kernels since 5.11 charge BPF memory to the cgroup instead"),
        None,
    ));
    checks
}

#[derive(Serialize)]
struct Lesson {
    lesson: &'static str,
    runs: bool,
    /// Why not, when it cannot run here.
    reason: Option<String>,
    /// The checks that failed for it, fixable here (FAIL).
    #[serde(skip)]
    fixable: bool,
}

// ANCHOR: lessons
/// Each lesson of src/lessons.rs, judged: the kernel's release against the
/// lesson's minimum, then the checks it needs (BTF and the privileges, and
/// its own).
fn lessons(checks: &[Check], release: &str) -> Vec<Lesson> {
    lessons::LESSONS
        .iter()
        .map(|lesson| {
            let blocking: Vec<&Check> = ["kernel", "privileges"]
                .iter()
                .chain(lesson.needs.iter())
                .filter_map(|n| checks.iter().find(|c| c.name == *n))
                .filter(|c| c.status != Status::Ok)
                .collect();
            let mut why: Vec<String> = lesson.too_old(release).into_iter().collect();
            why.extend(blocking.iter().map(|c| format!("{}: {}", c.name, c.detail)));
            Lesson {
                lesson: lesson.name,
                runs: why.is_empty(),
                reason: (!why.is_empty()).then(|| why.join("; ")),
                fixable: blocking.iter().any(|c| c.status == Status::Fail),
            }
        })
        .collect()
}
// ANCHOR_END: lessons

#[derive(Serialize)]
struct Report {
    checks: Vec<Check>,
    lessons: Vec<Lesson>,
}

fn run(args: Args) -> Result<i32> {
    // The probes fail on purpose where the kernel lacks a feature: keep
    // libbpf's messages about it off the terminal, unless asked.
    cli::init_libbpf_log(args.verbose);
    let mut checks = kernel_checks();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    checks.push(if cpus >= 2 {
        check("two_cpus", Status::Ok, format!("{cpus} CPUs"), None)
    } else {
        check(
            "two_cpus",
            Status::No,
            format!("{cpus} CPU: the lessons that race two CPUs need two"),
            Some("a machine (or VM) with two CPUs or more"),
        )
    });
    // The probes need the privileges; without them they would only repeat
    // that.
    if has_cap(Cap::Bpf) && has_cap(Cap::Perfmon) {
        checks.extend(feature_checks());
    }
    checks.extend(tool_checks());
    let release = args.kernel.clone().unwrap_or_else(lessons::kernel_release);
    let lessons = lessons(&checks, &release);
    // Fixable: a lesson blocked by a check that failed (not one the kernel
    // lacks).
    let fixable = lessons.iter().any(|l| l.fixable)
        || checks
            .iter()
            .any(|c| c.name == "clang" && c.status == Status::Fail);
    let report = Report { checks, lessons };
    if args.json {
        report::print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(i32::from(fixable))
}

fn print_report(report: &Report) {
    for c in &report.checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::No => "no",
            Status::Fail => "FAIL",
        };
        print!("{status:<5} {:<17} {}", c.name, c.detail);
        match &c.fix {
            Some(fix) if c.status != Status::Ok => println!(" -> {fix}"),
            _ => println!(),
        }
    }
    println!("\n{:<15} RUNS HERE", "LESSON");
    for l in &report.lessons {
        match &l.reason {
            None => println!("{:<15} yes", l.lesson),
            Some(why) => println!("{:<15} no: {why}", l.lesson),
        }
    }
}

fn main() {
    // `doctor | head` should stop quietly, as other command-line tools do,
    // rather than panic on a closed pipe (nothing is attached by then).
    // SAFETY: restoring the default disposition of SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args = cli::parse::<Args>();
    cli::run_status(|| run(args));
}
