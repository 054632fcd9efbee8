//! doctor: on each kernel of the matrix it finds what that kernel is known
//! to allow and refuse (the host refuses trampolines, LSM programs and
//! kprobes; 6.1 has no tcx; 5.10 has neither tcx nor the conntrack kfuncs;
//! the VMs run LSM programs), its lessons are the book's, and a fixable
//! problem (a missing mount) fails it with what to do. That its verdicts
//! match what each kernel's run did is checked by scripts/tested-on.sh.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use testkit::require_privileges;

const BIN: &str = env!("CARGO_BIN_EXE_doctor");

fn report(out: &std::process::Output) -> (BTreeMap<String, String>, BTreeMap<String, bool>) {
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let checks = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let status = c["status"].as_str().unwrap().to_string();
            (c["name"].as_str().unwrap().to_string(), status)
        })
        .collect();
    let lessons = json["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["lesson"].as_str().unwrap().to_string(),
                l["runs"].as_bool().unwrap(),
            )
        })
        .collect();
    (checks, lessons)
}

#[test]
fn finds_what_this_kernel_allows() {
    require_privileges!("finds_what_this_kernel_allows");
    // Where conntrack is a module (Debian's kernels), the doctor reports it
    // unloaded as a thing to fix; load it first, as its fix says.
    let _ = Command::new("modprobe")
        .args(["-q", "nf_conntrack"])
        .status();
    let out = Command::new(BIN).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (checks, lessons) = report(&out);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let series: String = release.split('.').take(2).collect::<Vec<_>>().join(".");
    // What each kernel of the matrix is known to do (docs/lessons.md's
    // "Tested on" column says the same from the lessons' own tests).
    let (expected, cannot): (&[(&str, &str)], &[&str]) = match series.as_str() {
        "6.18" => (
            &[
                ("fentry", "no"),
                ("lsm_programs", "no"),
                ("kprobe", "no"),
                ("tcx", "ok"),
                ("conntrack_kfuncs", "ok"),
            ],
            &["fentry", "lsm_guard"],
        ),
        "6.12" => (
            &[
                ("fentry", "ok"),
                ("lsm_programs", "ok"),
                ("bpf_lsm", "ok"),
                ("tcx", "ok"),
                ("conntrack_kfuncs", "ok"),
            ],
            &[],
        ),
        "5.10" => (
            &[
                ("fentry", "ok"),
                ("lsm_programs", "ok"),
                ("bpf_lsm", "ok"),
                ("kprobe", "ok"),
                ("tcx", "no"),
                ("conntrack_kfuncs", "no"),
            ],
            &[
                "xdp_firewall",
                "load_balancer",
                "races",
                "verifier",
                "netfilter_bpf",
            ],
        ),
        // Debian unstable's kernel, the newest of the matrix.
        s if s.starts_with("7.") => (
            &[
                ("fentry", "ok"),
                ("lsm_programs", "ok"),
                ("bpf_lsm", "ok"),
                ("kprobe", "ok"),
                ("tcx", "ok"),
                ("conntrack_kfuncs", "ok"),
            ],
            &[],
        ),
        "6.1" => (
            &[
                ("fentry", "ok"),
                ("lsm_programs", "ok"),
                ("bpf_lsm", "ok"),
                ("tcx", "no"),
                ("conntrack_kfuncs", "ok"),
            ],
            &["netfilter_bpf"],
        ),
        _ => {
            eprintln!("finds_what_this_kernel_allows: no expectations for {series}; checked the shape only");
            (&[], &[])
        }
    };
    for (name, status) in expected {
        assert_eq!(
            checks.get(*name).map(String::as_str),
            Some(*status),
            "{name} on {series}: {checks:?}"
        );
    }
    for (lesson, runs) in &lessons {
        assert_eq!(
            *runs,
            !cannot.contains(&lesson.as_str()),
            "{lesson} on {series}"
        );
    }
    if series == "6.18" {
        let text = Command::new(BIN).output().unwrap();
        testkit::chapter::assert_sample(
            "docs/doctor.md",
            "doctor_run",
            &String::from_utf8_lossy(&text.stdout),
        );
    }
    for name in [
        "kernel",
        "bpffs",
        "tracefs",
        "securityfs",
        "privileges",
        "jit",
        "clang",
    ] {
        assert_eq!(
            checks.get(name).map(String::as_str),
            Some("ok"),
            "{name}: {checks:?}"
        );
    }
}

#[test]
fn its_lessons_are_the_book_s() {
    let out = Command::new(BIN).arg("--json").output().unwrap();
    let (_, lessons) = report(&out);
    let table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lessons.md")).unwrap();
    let book: Vec<&str> = table
        .lines()
        .filter(|l| {
            l.starts_with("| ")
                && l.split('|')
                    .nth(1)
                    .is_some_and(|n| n.trim().parse::<u32>().is_ok())
        })
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let doctor: Vec<&str> = lessons.keys().map(String::as_str).collect();
    let mut sorted = book.clone();
    sorted.sort_unstable();
    assert_eq!(doctor, sorted, "the doctor's lessons and docs/lessons.md's");
}

/// A missing mount is fixable: the doctor says how and exits 1. The mount
/// goes only in a mount namespace of this test's own.
#[test]
fn a_missing_bpffs_fails_with_what_to_do() {
    require_privileges!("a_missing_bpffs_fails_with_what_to_do");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("umount /sys/fs/bpf && exec {BIN} --json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (checks, lessons) = report(&out);
    assert_eq!(checks["bpffs"], "fail");
    assert!(
        !lessons["pinning"] && !lessons["xdp_firewall"],
        "{lessons:?}"
    );
    // One that needs no bpffs, and runs on every kernel of the matrix.
    assert!(lessons["socket_filter"], "{lessons:?}");
    let text = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("umount /sys/fs/bpf && exec {BIN}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL  bpffs") && l.contains("-> mount -t bpf bpf /sys/fs/bpf")),
        "{text}"
    );
}
