//! lsm_guard: the same connect policy as cgroup_guard, checked by BPF LSM
//! programs, plus files denied by inode whichever name opens them. Where
//! the kernel refuses LSM programs (EPERM: this project's CI host), the
//! refusal is checked and the tests that need the programs say REFUSED;
//! they run in the kernel-matrix VMs (`make vm-test`).

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Command;

use testkit::chapter::assert_sample;
use testkit::guards::{
    assert_attempts_reach, assert_bad_guard_inputs, assert_cannot_leave, assert_cases,
    assert_command_mode_leaves_nothing, assert_counts_drops, assert_scoped_to_cgroup,
    assert_stopped, assert_unreachable_command_refused, attempts_under, case, cgroups_left_by,
    chapter_run, run_guarded_in, serial, ProbeCopy, Targets, ATTEMPTS, BAD_INPUTS, CONNECT_CASES,
    POLICY,
};
use testkit::{require_privileges, BadInput, Exit};

const BIN: &str = env!("CARGO_BIN_EXE_lsm_guard");
const PROBE: &str = env!("CARGO_BIN_EXE_guard_probe");
const REFUSED: &str = "this kernel refuses BPF LSM programs (EPERM";

/// `lsm_guard --deny 192.0.2.1 -- true`: loads the programs, runs `true`.
fn guard_true() -> std::process::Output {
    Command::new(BIN)
        .args(["--deny", "192.0.2.1", "--", "true"])
        .output()
        .unwrap()
}

/// Whether LSM programs load here; if not, says `REFUSED test` and why
/// (the results count lsm_guard as refused by this kernel).
fn lsm_runs_here(test: &str) -> bool {
    let out = guard_true();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return true;
    }
    assert!(stderr.contains(REFUSED), "{stderr}");
    eprintln!(
        "REFUSED {test}: this kernel refuses BPF LSM programs (EPERM); it runs where they load \
         (e.g. Debian's 6.1 or 6.12 kernels: make vm-test)"
    );
    false
}

#[test]
fn works_or_refuses_in_one_line() {
    require_privileges!("works_or_refuses_in_one_line");
    let _serial = serial();
    let out = guard_true();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert_eq!(stderr.trim(), "0 denied, 0 reported");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(REFUSED), "{stderr}");
        assert_sample("docs/08-lsm_guard.md", "lsm_guard_refusal", &stderr);
    }
    assert!(cgroups_left_by("lsm_guard").is_empty());
}

/// A directory with a file to deny, its other names, and a file to allow;
/// removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!("lebpf-lsm-guard-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("secret"), "secret\n").unwrap();
        std::fs::write(dir.join("other"), "other\n").unwrap();
        symlink("secret", dir.join("link")).unwrap();
        std::fs::hard_link(dir.join("secret"), dir.join("hard")).unwrap();
        Files { dir }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn denies_what_is_listed_and_nothing_else() {
    require_privileges!("denies_what_is_listed_and_nothing_else");
    let _serial = serial();
    if !lsm_runs_here("denies_what_is_listed_and_nothing_else") {
        return;
    }
    let targets = Targets::new().unwrap();
    let files = Files::new();
    let secret = files.dir.join("secret");
    let secret = secret.to_str().unwrap();
    let other = files.dir.join("other");
    let other = other.to_str().unwrap();
    // As root: the programs, not the missing privileges, must refuse.
    let mut args = POLICY.to_vec();
    args.extend(["--deny-path", secret, "--user", "root"]);
    // The address rules check the destination of ping sockets: one to
    // 192.0.2.1, whose rule names port 80, is let through (no port). Raw sockets are refused when
    // they are made (rule 0): their header and payload are the caller's.
    let mut cases = CONNECT_CASES.to_vec();
    cases.push(case("connect-ping 192.0.2.1", None));
    cases.push(case("connect-raw 192.0.2.1", Some(0)));
    // Rule 3, the file, by every name: the path itself, a symlink, a hard
    // link, a relative path through `..` (the probe runs in sub/), and a
    // descriptor reopened through /proc/self/fd.
    let opens = [
        format!("open {secret}"),
        "open ../link".to_string(),
        "open ../hard".to_string(),
        "open ../sub/../secret".to_string(),
        format!("reopen {secret}"),
        format!("open {other}"),
    ];
    for (i, open) in opens.iter().enumerate() {
        let rule = if i < 5 { Some(3) } else { None };
        cases.push(case(open.clone().leak(), rule));
    }
    let actions: Vec<&str> = cases.iter().map(|c| c.action).collect();
    let run = run_guarded_in(
        &files.dir.join("sub"),
        BIN,
        &args,
        &targets,
        PROBE,
        &actions,
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_cases(&run, &cases, Some((0, &["-raw"])));
    assert!(cgroups_left_by("lsm_guard").is_empty());
}

/// The ways around an address policy (other protocols, the unspecified
/// address, AF_UNSPEC, 24-byte IPv6 addresses, raw and packet sockets,
/// tun): each reaches its denied endpoint without the guard, and none
/// does under it, as an unprivileged user (the default) or as root.
#[test]
fn no_way_around_the_policy() {
    require_privileges!("no_way_around_the_policy");
    let _serial = serial();
    if !lsm_runs_here("no_way_around_the_policy") {
        return;
    }
    let targets = Targets::new().unwrap();
    let probe = ProbeCopy::new(PROBE);
    assert_attempts_reach(&targets, probe.path());
    for user in ["nobody", "root"] {
        let (run, delivered) = attempts_under(BIN, user, &targets, probe.path());
        for a in &ATTEMPTS {
            assert_stopped(&run, &delivered, a, user);
        }
        assert!(delivered.is_empty(), "as {user}: {delivered:?}");
    }
}

/// As an unprivileged user the command may not signal the guard or move
/// itself to another cgroup; as root it can (the chapter says so).
#[test]
fn the_command_cannot_leave_the_policy() {
    require_privileges!("the_command_cannot_leave_the_policy");
    let _serial = serial();
    if lsm_runs_here("the_command_cannot_leave_the_policy") {
        assert_cannot_leave(BIN, PROBE);
    }
}

#[test]
fn only_the_cgroup_and_below_and_only_while_it_runs() {
    require_privileges!("only_the_cgroup_and_below_and_only_while_it_runs");
    let _serial = serial();
    if lsm_runs_here("only_the_cgroup_and_below_and_only_while_it_runs") {
        assert_scoped_to_cgroup(BIN, PROBE);
    }
}

#[test]
fn counts_what_a_full_ring_buffer_drops() {
    require_privileges!("counts_what_a_full_ring_buffer_drops");
    let _serial = serial();
    if lsm_runs_here("counts_what_a_full_ring_buffer_drops") {
        assert_counts_drops(BIN, PROBE);
    }
}

/// Bad input is refused before anything loads, on any kernel.
#[test]
fn bad_input_gives_one_line_and_leaves_nothing() {
    require_privileges!("bad_input_gives_one_line_and_leaves_nothing");
    let _serial = serial();
    let mut cases = BAD_INPUTS.to_vec();
    cases.push(BadInput {
        name: "a path that does not exist",
        args: &["--deny-path", "/no/such/file", "--", "true"],
        exit: Exit::Code(2),
        says: "'/no/such/file': No such file or directory",
    });
    assert_bad_guard_inputs(BIN, "lsm_guard", &cases);
}

/// The chapter's "Run it", as it shows it, with the link it makes.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    let _serial = serial();
    if !lsm_runs_here("chapter_run_it_output") {
        return;
    }
    let link = PathBuf::from("/tmp/hostname-link");
    let _ = std::fs::remove_file(&link);
    symlink("/etc/hostname", &link).unwrap();
    let text = chapter_run(
        BIN,
        &["--deny", "192.0.2.1:80", "--deny-path", "/etc/hostname"],
        PROBE,
        &[
            "connect-tcp",
            "192.0.2.1:80",
            "connect-tcp",
            "[::ffff:192.0.2.1]:80,len=24",
            "sendto-udp",
            "192.0.2.1:80,family=unspec",
            "open",
            "/etc/hostname",
            "open",
            "/tmp/hostname-link",
            "reopen",
            "/etc/hostname",
            "open",
            "/etc/os-release",
        ],
    );
    std::fs::remove_file(&link).unwrap();
    assert_sample("docs/08-lsm_guard.md", "lsm_guard_run", &text);
}

#[test]
fn a_command_leaves_nothing_behind() {
    require_privileges!("a_command_leaves_nothing_behind");
    let _serial = serial();
    if lsm_runs_here("a_command_leaves_nothing_behind") {
        assert_command_mode_leaves_nothing(BIN, "lsm_guard");
    }
}

/// A command that the user it runs as cannot reach is refused in one line.
#[test]
fn a_command_its_user_cannot_reach_is_refused() {
    require_privileges!("a_command_its_user_cannot_reach_is_refused");
    let _serial = serial();
    assert_unreachable_command_refused(BIN, "lsm_guard");
}
