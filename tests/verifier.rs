//! verifier: every case's bad program is refused, on every kernel, with
//! the message the case explains; every fixed program loads; the chapter's
//! logs are what the binary prints (compared in full on the kernel the
//! chapter shows them from, by the marked message on the others).

use std::process::{Command, Output};

use serde_json::Value;

use testkit::chapter::assert_sample;
use testkit::{assert_bad_args, require_privileges, BadInput, Exit};

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

/// On a kernel older than verifier's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "verifier",
        std::process::Command::new(BIN).args(["packet_bounds"] as [&str; 1]),
    )
}

/// The chapter shows the logs as this kernel series prints them.
const CHAPTER_KERNEL: &str = "6.18";

/// Each case and a part of its refusal that every kernel of the matrix
/// prints (alternatives where they differ).
const CASES: [(&str, &[&str]); 9] = [
    (
        "packet_bounds",
        &["invalid access to packet, off=12 size=2"],
    ),
    (
        "map_value_null",
        &["invalid mem access 'map_value_or_null'"],
    ),
    ("unbounded_loop", &["infinite loop detected"]),
    ("ringbuf_leak", &["Unreleased reference"]),
    (
        "helper_not_allowed",
        &[
            "unknown func bpf_skb_load_bytes#26",
            "program of this type cannot use helper bpf_skb_load_bytes#26",
        ],
    ),
    (
        "ctx_arith",
        &[
            "variable ctx access",
            "dereference of modified ctx ptr",
            "pointer arithmetic on ctx",
        ],
    ),
    ("scalar_as_pointer", &["invalid mem access 'scalar'"]),
    (
        "spin_lock_call",
        &["function calls are not allowed while holding a lock"],
    ),
    ("return_value", &["At program exit the register R0"]),
];

fn verifier(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap()
}

#[test]
fn the_list_is_the_cases() {
    if refused("the_list_is_the_cases") {
        return;
    }
    let out = verifier(&["--list"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let cases: Vec<&str> = CASES.iter().map(|(c, _)| *c).collect();
    assert_eq!(listed, cases);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_sample("docs/15-verifier.md", "verifier_list", &text);
}

#[test]
fn every_bad_program_is_refused_with_its_message() {
    require_privileges!("every_bad_program_is_refused_with_its_message");
    if refused("every_bad_program_is_refused_with_its_message") {
        return;
    }
    for (case, says) in CASES {
        let out = verifier(&[case, "--json"]);
        assert!(out.status.success(), "{case}: {out:?}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["loaded"], false, "{case}");
        let log: Vec<&str> = json["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(
            log.iter().any(|l| says.iter().any(|s| l.contains(s))),
            "{case}: none of {says:?} in its log:\n{}",
            log.join("\n")
        );
        // The text form marks the line and explains it.
        let out = verifier(&[case]);
        assert!(out.status.success(), "{case}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let marked = text
            .lines()
            .position(|l| l.starts_with("  ^^^ "))
            .unwrap_or_else(|| {
                panic!("{case}: no line marked:\n{text}");
            });
        let line = text.lines().nth(marked - 1).unwrap();
        assert!(
            says.iter().any(|s| line.contains(s)),
            "{case}: marked {line:?}"
        );
    }
}

#[test]
fn every_fixed_program_loads() {
    require_privileges!("every_fixed_program_loads");
    if refused("every_fixed_program_loads") {
        return;
    }
    for (case, _) in CASES {
        let out = verifier(&[case, "--fixed", "--json"]);
        assert!(out.status.success(), "{case}: {out:?}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["loaded"], true, "{case}");
        assert!(
            json["verified_insns"].as_u64().unwrap() > 0,
            "{case}: {json}"
        );
    }
}

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    if refused("bad_input_gives_one_line") {
        return;
    }
    assert_bad_args(
        BIN,
        &[
            BadInput {
                name: "an unknown case",
                args: &["no_such_case"],
                exit: Exit::Code(1),
                says: "the cases are: packet_bounds",
            },
            BadInput {
                name: "no case",
                args: &[],
                exit: Exit::Code(2),
                says: "<CASE>",
            },
        ],
    );
}

/// The chapter's logs: each case's output compared with its sample on the
/// kernel series the chapter shows; elsewhere the other tests check the
/// message each kernel prints.
#[test]
fn chapter_logs() {
    require_privileges!("chapter_logs");
    if refused("chapter_logs") {
        return;
    }
    let release = kernel_release();
    let same_series = release.starts_with(&format!("{CHAPTER_KERNEL}."));
    for (case, _) in CASES {
        let out = verifier(&[case]);
        assert!(out.status.success(), "{case}: {out:?}");
        if same_series {
            let text = String::from_utf8_lossy(&out.stdout);
            assert_sample("docs/15-verifier.md", &format!("verifier_{case}"), &text);
        }
    }
    let out = verifier(&["packet_bounds", "--fixed"]);
    assert!(out.status.success(), "{out:?}");
    if same_series {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_sample("docs/15-verifier.md", "verifier_fixed", &text);
    } else {
        eprintln!(
            "chapter_logs: the samples are {CHAPTER_KERNEL}'s; this kernel is {}",
            release.trim()
        );
    }
}
