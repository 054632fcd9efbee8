//! cgroup_guard: the connect policy denies exactly what it lists, for the
//! processes of one cgroup and the cgroups below it, whatever socket they
//! use; every denial is reported once; nothing remains after exit.

use testkit::chapter::assert_sample;
use testkit::guard::{
    assert_bad_guard_inputs, assert_cases, assert_command_mode_leaves_nothing, assert_counts_drops,
    assert_scoped_to_cgroup, case, cgroups_left_by, chapter_run, run_guarded, serial, Targets,
    BAD_INPUTS, CONNECT_CASES, POLICY,
};
use testkit::require_privileges;

const BIN: &str = env!("CARGO_BIN_EXE_cgroup_guard");
const PROBE: &str = env!("CARGO_BIN_EXE_guard_probe");

#[test]
fn denies_what_is_listed_and_nothing_else() {
    require_privileges!("denies_what_is_listed_and_nothing_else");
    let _serial = serial();
    let targets = Targets::new().unwrap();
    // Raw and ping sockets are refused when they are made, whatever their
    // destination (rule 0): the address programs never see their sends.
    let mut cases = CONNECT_CASES.to_vec();
    cases.push(case("connect-ping 192.0.2.1", Some(0)));
    cases.push(case("connect-raw 192.0.2.1", Some(0)));
    let actions: Vec<&str> = cases.iter().map(|c| c.action).collect();
    let run = run_guarded(BIN, &POLICY, &targets, PROBE, &actions);
    assert!(run.status.success(), "{}", run.stderr);
    assert_cases(&run, &cases, Some((0, &["-ping", "-raw"])));
    assert!(cgroups_left_by("cgroup_guard").is_empty());
}

#[test]
fn only_the_cgroup_and_below_and_only_while_it_runs() {
    require_privileges!("only_the_cgroup_and_below_and_only_while_it_runs");
    let _serial = serial();
    assert_scoped_to_cgroup(BIN, PROBE);
}

#[test]
fn counts_what_a_full_ring_buffer_drops() {
    require_privileges!("counts_what_a_full_ring_buffer_drops");
    let _serial = serial();
    assert_counts_drops(BIN, PROBE);
}

#[test]
fn bad_input_gives_one_line_and_leaves_nothing() {
    require_privileges!("bad_input_gives_one_line_and_leaves_nothing");
    let _serial = serial();
    assert_bad_guard_inputs(BIN, "cgroup_guard", &BAD_INPUTS);
}

/// The chapter's "Run it", as it shows it.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    let _serial = serial();
    let text = chapter_run(
        BIN,
        &["--deny", "192.0.2.1:80", "--deny", "2001:db8::1"],
        PROBE,
        &[
            "connect-tcp",
            "192.0.2.1:80",
            "connect-tcp",
            "[::ffff:192.0.2.1]:80",
            "sendto-udp",
            "[2001:db8::1]:53",
            "sendto-tcp",
            "192.0.2.1:80",
            "sendto-raw",
            "192.0.2.7",
        ],
    );
    assert_sample("docs/09-cgroup_guard.md", "cgroup_guard_run", &text);
}

#[test]
fn a_command_leaves_nothing_behind() {
    require_privileges!("a_command_leaves_nothing_behind");
    let _serial = serial();
    assert_command_mode_leaves_nothing(BIN, "cgroup_guard");
}
