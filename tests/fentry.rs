//! fentry: either the kernel runs the programs and the histogram counts the
//! calls this test makes, or it refuses them and the binary says so in one
//! line. This project's CI host refuses BPF trampolines (EPERM), so there
//! the latency test reports itself as not run, by name: the one test allowed
//! to, until the project can run tests in a VM with another kernel.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use testkit::chapter::{as_terminal, assert_sample};
use testkit::{require_privileges, Running};

const BIN: &str = env!("CARGO_BIN_EXE_fentry");

/// The unlink function, by the names it has had: Linux 7 renamed
/// `do_unlinkat` to `filename_unlinkat`; fentry times the first one the
/// kernel has.
const UNLINK: &str = "do_unlinkat,filename_unlinkat";

/// The name of [`UNLINK`] that this kernel has, from /proc/kallsyms.
fn unlink_here() -> &'static str {
    let syms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    if syms.lines().any(|l| l.ends_with(" do_unlinkat")) {
        "do_unlinkat"
    } else {
        "filename_unlinkat"
    }
}

/// Both tests attach to the unlink function. While one attaches or detaches, the
/// kernel rebuilds the function's trampoline for both, and calls made
/// meanwhile can go untimed (seen on 6.1: 96 of 100): one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `fentry` for one second; Ok(stdout) when it worked, Err(stderr).
fn one_second(function: &str) -> Result<String, (Option<i32>, String)> {
    let out = Command::new(BIN)
        .args(["-f", function, "--json", "1", "1"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

fn kernel_refuses_fentry() -> bool {
    matches!(one_second(UNLINK), Err((_, e)) if e.contains("refuses fentry/fexit"))
}

#[test]
fn works_or_refuses_in_one_line() {
    require_privileges!("works_or_refuses_in_one_line");
    let _one = one_at_a_time();
    match one_second(UNLINK) {
        Ok(stdout) => {
            let hist: Value = serde_json::from_str(stdout.trim()).unwrap();
            assert_eq!(hist["unit"], "usecs");
        }
        Err((code, stderr)) => {
            assert_eq!(code, Some(1));
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(
                stderr.contains("refuses fentry/fexit programs (EPERM"),
                "{stderr}"
            );
            assert_sample("docs/06-fentry.md", "fentry_refusal", &stderr);
        }
    }
    // An unknown function is named, whatever the kernel allows.
    let Err((code, stderr)) = one_second("no_such_kernel_function") else {
        panic!("an unknown function must fail");
    };
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("'no_such_kernel_function' not found"),
        "{stderr}"
    );
}

/// Creates and removes `n` files in `dir` (made and removed here): `n`
/// calls of the unlink function.
fn unlink_files(dir: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let file = dir.join(i.to_string());
        std::fs::write(&file, b"x").unwrap();
        std::fs::remove_file(&file).unwrap();
    }
    std::fs::remove_dir(dir).unwrap();
}

#[test]
fn measures_unlink_latency() {
    require_privileges!("measures_unlink_latency");
    let _one = one_at_a_time();
    if kernel_refuses_fentry() {
        eprintln!(
            "REFUSED measures_unlink_latency: this kernel refuses fentry/fexit programs (EPERM); \
             it runs where BPF trampolines load (e.g. Debian's 6.1 or 6.12 kernels)"
        );
        return;
    }
    let me = std::process::id();
    let mut cmd = Command::new(BIN);
    cmd.args(["-f", UNLINK, "-p", &me.to_string(), "--json"]);
    let mut probe = Running::spawn(cmd).unwrap();
    probe
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("lebpf-fentry-{me}"));
    unlink_files(&dir, 100);
    probe.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = probe.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let hist: Value = serde_json::from_str(stdout.last().unwrap()).unwrap();
    let calls: u64 = hist["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert!(calls >= 100, "{calls} unlinks timed, expected at least 100");

    // The chapter's run, as text: one histogram while 100 files go.
    let mut cmd = Command::new(BIN);
    cmd.args(["-f", UNLINK, "2", "1"]);
    let mut probe = Running::spawn(cmd).unwrap();
    probe
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    unlink_files(&dir, 100);
    let (status, stdout, stderr) = probe.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    // The name it picked is the one this kernel has; the chapter's run is
    // from a kernel that calls it do_unlinkat, and says so.
    let picked = unlink_here();
    assert_eq!(
        stderr[0],
        format!("Tracing {picked} latency... Hit Ctrl-C to end.")
    );
    let text = as_terminal(&stdout, &stderr).replace(picked, "do_unlinkat");
    assert_sample("docs/06-fentry.md", "fentry_run", &text);
}
