//! races: the atomic, per-CPU, spin-lock and compare-and-swap ways lose
//! nothing when both CPUs update at once; the plain increment's race,
//! forced step by step, loses exactly one of two updates; the report says
//! what the natural race lost without any test depending on it.

use std::process::Command;

use serde_json::Value;

use testkit::{assert_bad_args, require_privileges, two_cpus, BadInput, Exit};

const BIN: &str = env!("CARGO_BIN_EXE_races");

/// On a kernel older than races's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "races",
        std::process::Command::new(BIN).args([] as [&str; 0]),
    )
}

fn run_json(runs: &str) -> Vec<Value> {
    testkit::json_lines(Command::new(BIN).args(["-n", runs, "--json"]))
}

#[test]
fn only_the_plain_increment_can_lose_updates() {
    require_privileges!("only_the_plain_increment_can_lose_updates");
    if refused("only_the_plain_increment_can_lose_updates") {
        return;
    }
    if !two_cpus("only_the_plain_increment_can_lose_updates") {
        return;
    }
    let lines = run_json("200000");
    let ways: Vec<&str> = lines[..5]
        .iter()
        .map(|l| l["way"].as_str().unwrap())
        .collect();
    assert_eq!(ways, ["plain", "atomic", "per-cpu", "spin-lock", "cas"]);
    for row in &lines[..5] {
        let expected = row["expected"].as_u64().unwrap();
        let observed = row["observed"].as_u64().unwrap();
        assert_eq!(expected, 400_000, "{row}");
        assert_eq!(row["lost"].as_u64().unwrap(), expected - observed, "{row}");
        assert!(row["ns_per_update"].as_f64().unwrap() > 0.0, "{row}");
        match row["way"].as_str().unwrap() {
            // Whatever the race cost this time, never more than was done.
            "plain" => assert!(observed <= expected, "{row}"),
            // Every update accounted for: counted, or counted as given up.
            "cas" => {
                let note = row["note"].as_str().unwrap();
                let gave_up: u64 = note
                    .split(", ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{note}"));
                assert_eq!(observed + gave_up, expected, "{row}");
            }
            _ => assert_eq!(observed, expected, "{row}"),
        }
    }
    // Load, load, store, store: two increments, one counted.
    assert_eq!(
        lines[5]["forced_interleaving"]["counted"], 1,
        "{}",
        lines[5]
    );
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
                name: "the same CPU twice",
                args: &["--cpus", "1,1"],
                exit: Exit::Code(1),
                says: "two different CPUs",
            },
            BadInput {
                name: "a CPU that is not there",
                args: &["--cpus", "0,4096"],
                exit: Exit::Code(1),
                says: "CPU 4096 is not available",
            },
            BadInput {
                name: "three CPUs",
                args: &["--cpus", "0,1,2"],
                exit: Exit::Code(1),
                says: "--cpus takes two CPUs",
            },
            BadInput {
                name: "zero runs",
                args: &["-n", "0"],
                exit: Exit::Code(2),
                says: "--runs",
            },
        ],
    );
}

/// The chapter's "Run it", as text.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    if refused("chapter_run_it_output") {
        return;
    }
    if !two_cpus("chapter_run_it_output") {
        return;
    }
    let out = Command::new(BIN).args(["-n", "200000"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    testkit::chapter::assert_sample("docs/12-races.md", "races_run", &stdout);
}
