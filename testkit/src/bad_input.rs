//! The shape of every error a lesson prints: one line on stderr that says
//! what is wrong, a non-zero exit, and nothing left attached or pinned.

use std::process::{Command, Output};

/// How a bad command line must end.
#[derive(Clone, Copy, Debug)]
pub enum Exit {
    /// With this exit code: 2 for what the argument parser refuses, 1 for
    /// what the lesson finds wrong once it runs.
    Code(i32),
    /// With any code but 0.
    Fails,
}

/// One bad command line and what the lesson must answer.
#[derive(Clone, Copy, Debug)]
pub struct BadInput<'a> {
    /// What is wrong, for the assertion messages.
    pub name: &'a str,
    pub args: &'a [&'a str],
    pub exit: Exit,
    /// Text the one line of stderr holds.
    pub says: &'a str,
}

/// Runs each case as `command(case)` (the lesson's binary in the place it
/// needs, with `case.args`), checks the exit and the one line of stderr,
/// then calls `leaves_nothing(case)`, which asserts that the machine holds
/// nothing of the run (no attachment, no pin).
pub fn assert_bad_inputs(
    cases: &[BadInput],
    mut command: impl FnMut(&BadInput) -> Command,
    mut leaves_nothing: impl FnMut(&BadInput),
) {
    for case in cases {
        let out = command(case)
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run the lesson: {e}", case.name));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match case.exit {
            Exit::Code(code) => assert_eq!(
                out.status.code(),
                Some(code),
                "{}: exit code; stderr {stderr:?}",
                case.name
            ),
            Exit::Fails => assert!(
                !out.status.success(),
                "{}: it succeeded; stderr {stderr:?}",
                case.name
            ),
        }
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}: one line, got {lines:?}", case.name);
        assert!(
            lines[0].contains(case.says),
            "{}: {:?} lacks {:?}",
            case.name,
            lines[0],
            case.says
        );
        leaves_nothing(case);
    }
}

/// [`assert_bad_inputs`] for a lesson run as `bin ARGS` whose every
/// attachment is a bpf_link its process holds: nothing of it can outlive the
/// process, so there is nothing to look for afterwards.
pub fn assert_bad_args(bin: &str, cases: &[BadInput]) {
    assert_bad_inputs(
        cases,
        |case| {
            let mut cmd = Command::new(bin);
            cmd.args(case.args);
            cmd
        },
        |_| {},
    );
}

/// Asserts that a command failed with one line on stderr holding every
/// one of `needles`.
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
