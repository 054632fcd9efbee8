//! Each lesson's kernel minimum has one home, src/lessons.rs: the lesson
//! table in docs/lessons.md says the same; on an older kernel each lesson
//! refuses in one line that names the minimum and the feature that sets
//! it, before it loads anything; and the doctor calls exactly those
//! lessons not runnable. An older kernel is faked with
//! LEBPF_ASSUME_KERNEL (the lessons) and --kernel (the doctor); the
//! kernel matrix's VMs run the real ones.

use std::process::Command;

use learning_ebpf_rs::lessons::{self, LESSONS};
use serde_json::Value;

/// How to start each lesson's binary far enough to reach its kernel check
/// (the arguments it requires). An interface that does not exist: should
/// the check not stop it, nothing is attached anywhere.
fn command(lesson: &str) -> Command {
    let (bin, args): (&str, &[&str]) = match lesson {
        "tc_classifier" | "xdp_firewall" | "socket_filter" => (lesson, &["-i", "lebpf-none0"]),
        "load_balancer" => (lesson, &["-i", "lebpf-none0", "--vip", "10.0.0.1:80"]),
        "uprobe" => (lesson, &["--binary", "/bin/true", "--function", "main"]),
        "fentry" => (lesson, &["--function", "do_unlinkat"]),
        "lwt_filter" => (lesson, &["--route", "10.0.0.0/8", "--via", "10.0.0.1"]),
        "verifier" => (lesson, &["packet_bounds"]),
        "netfilter_bpf" => (
            lesson,
            &["--way", "hook", "--pin", "/sys/fs/bpf/lebpf-none"],
        ),
        // Lesson 16 runs lesson 14's program.
        "debugging" => ("pinning", &[]),
        _ => (lesson, &[]),
    };
    let mut cmd = Command::new(binary(bin));
    cmd.args(args);
    cmd
}

fn binary(name: &str) -> &'static str {
    match name {
        "tc_classifier" => env!("CARGO_BIN_EXE_tc_classifier"),
        "xdp_firewall" => env!("CARGO_BIN_EXE_xdp_firewall"),
        "execsnoop" => env!("CARGO_BIN_EXE_execsnoop"),
        "runqlat" => env!("CARGO_BIN_EXE_runqlat"),
        "uprobe" => env!("CARGO_BIN_EXE_uprobe"),
        "fentry" => env!("CARGO_BIN_EXE_fentry"),
        "load_balancer" => env!("CARGO_BIN_EXE_load_balancer"),
        "lsm_guard" => env!("CARGO_BIN_EXE_lsm_guard"),
        "cgroup_guard" => env!("CARGO_BIN_EXE_cgroup_guard"),
        "socket_filter" => env!("CARGO_BIN_EXE_socket_filter"),
        "lwt_filter" => env!("CARGO_BIN_EXE_lwt_filter"),
        "races" => env!("CARGO_BIN_EXE_races"),
        "map_types" => env!("CARGO_BIN_EXE_map_types"),
        "pinning" => env!("CARGO_BIN_EXE_pinning"),
        "verifier" => env!("CARGO_BIN_EXE_verifier"),
        "netfilter_bpf" => env!("CARGO_BIN_EXE_netfilter_bpf"),
        "doctor" => env!("CARGO_BIN_EXE_doctor"),
        _ => panic!("no binary {name}"),
    }
}

#[test]
fn the_lesson_table_states_each_minimum() {
    let table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lessons.md")).unwrap();
    let rows: Vec<(String, String)> = table
        .lines()
        .filter(|l| {
            l.split('|')
                .nth(1)
                .is_some_and(|n| n.trim().parse::<u32>().is_ok())
        })
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[2].split('`').nth(1).unwrap_or("").to_string();
            (name, cells[4].to_string())
        })
        .collect();
    assert_eq!(rows.len(), LESSONS.len(), "one row per lesson");
    for (lesson, (name, cell)) in LESSONS.iter().zip(&rows) {
        assert_eq!(&lesson.name, name, "the table's order is src/lessons.rs's");
        assert_eq!(cell, &lesson.minimum_text(), "{name}'s kernel minimum");
    }
}

#[test]
fn each_lesson_refuses_an_older_kernel_in_one_line() {
    for lesson in &LESSONS {
        let (major, minor) = lesson.minimum;
        // The release just before the minimum.
        let older = if minor > 0 {
            format!("{major}.{}.0", minor - 1)
        } else {
            format!("{}.19.0", major - 1)
        };
        let out = command(lesson.name)
            .env("LEBPF_ASSUME_KERNEL", &older)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", lesson.name);
        // Lesson 16's program is lesson 14's, which says its own minimum.
        let program = lessons::find(if lesson.name == "debugging" {
            "pinning"
        } else {
            lesson.name
        })
        .unwrap();
        assert_eq!(program.minimum, lesson.minimum, "{}", lesson.name);
        let expected = format!(
            "error: {} needs Linux {major}.{minor} or newer ({}); this kernel is {older}\n",
            program.name, program.why
        );
        assert_eq!(stderr, expected, "{}", lesson.name);
    }
}

#[test]
fn the_doctor_says_which_lessons_an_older_kernel_cannot_run() {
    let doctor = binary("doctor");
    for release in ["5.10.0-32-amd64", "5.15.0", "6.0.0"] {
        let out = Command::new(doctor)
            .args(["--json", "--kernel", release])
            .output()
            .unwrap();
        let json: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        for l in json["lessons"].as_array().unwrap() {
            let name = l["lesson"].as_str().unwrap();
            let lesson = lessons::find(name).unwrap();
            let reason = l["reason"].as_str().unwrap_or("");
            match lesson.too_old(release) {
                Some(why) => {
                    assert_eq!(l["runs"], false, "{name} on {release}");
                    assert!(reason.contains(&why), "{name} on {release}: {reason}");
                }
                None => assert!(
                    !reason.contains("needs Linux"),
                    "{name} on {release}: {reason}"
                ),
            }
        }
    }
}
