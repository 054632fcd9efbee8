//! uprobe proven in the kernel: the arguments and return values of calls
//! that the project's target program makes, in its own function and in
//! libc, filtered to that one process; and bad input.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use testkit::chapter::{as_terminal, assert_sample, with_target_debug};
use testkit::{assert_bad_args, require_privileges, BadInput, Exit, Running};

const BIN: &str = env!("CARGO_BIN_EXE_uprobe");
const TARGET: &str = env!("CARGO_BIN_EXE_uprobe_target");
const CALLS: u64 = 3;

/// Starts the target (it waits), traces `function` in `binary` for the
/// target's pid only, lets the target make its calls, and returns the events.
fn trace_target(binary: &str, function: &str, extra: &[&str]) -> (u32, Vec<Value>) {
    trace_target_with(&[], binary, function, extra)
}

/// [`trace_target`], with `target_args` for the target.
fn trace_target_with(
    target_args: &[&str],
    binary: &str,
    function: &str,
    extra: &[&str],
) -> (u32, Vec<Value>) {
    let mut cmd = Command::new(TARGET);
    cmd.args(["--wait", "--calls", &CALLS.to_string()])
        .args(target_args);
    let mut target = Running::spawn_with_stdin(cmd).unwrap();
    let pid = target.pid();
    target
        .wait_for_stdout("pid ", Duration::from_secs(10))
        .unwrap();

    let mut cmd = Command::new(BIN);
    cmd.args([
        "-b",
        binary,
        "-f",
        function,
        "-p",
        &pid.to_string(),
        "--json",
    ])
    .args(extra);
    let mut probe = Running::spawn(cmd).unwrap();
    probe
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    target.write_stdin("go\n").unwrap();
    let (status, _, _) = target.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));

    probe.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = probe.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let events = stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (pid, events)
}

fn split(events: &[Value]) -> (Vec<&Value>, Vec<&Value>) {
    (
        events.iter().filter(|e| e["event"] == "entry").collect(),
        events.iter().filter(|e| e["event"] == "return").collect(),
    )
}

#[test]
fn own_function_arguments_and_return_value() {
    require_privileges!("own_function_arguments_and_return_value");
    let (pid, events) = trace_target(TARGET, "lebpf_add", &[]);
    let (entries, returns) = split(&events);
    assert_eq!(entries.len() as u64, CALLS, "{events:?}");
    assert_eq!(returns.len() as u64, CALLS, "{events:?}");
    for (i, (entry, ret)) in entries.iter().zip(&returns).enumerate() {
        assert_eq!(entry["pid"], pid);
        assert_eq!(entry["comm"], "uprobe_target");
        assert_eq!(entry["args"][0], i as u64, "first argument of call {i}");
        assert_eq!(entry["args"][1], 40, "second argument of call {i}");
        assert_eq!(ret["ret"], i as u64 + 40, "return value of call {i}");
    }
}

#[test]
fn libc_function_with_a_string_argument() {
    require_privileges!("libc_function_with_a_string_argument");
    let (pid, events) = trace_target("libc.so.6", "atoi", &["--string-arg", "0"]);
    let (entries, returns) = split(&events);
    // Only the target's own calls: the filter is the pid.
    assert!(events.iter().all(|e| e["pid"] == pid), "{events:?}");
    let strings: Vec<&str> = entries
        .iter()
        .map(|e| e["string"].as_str().unwrap())
        .collect();
    let values: Vec<u64> = returns.iter().map(|e| e["ret"].as_u64().unwrap()).collect();
    assert_eq!(strings, ["1000", "1001", "1002"]);
    assert_eq!(values, [1000, 1001, 1002]);
}

/// glibc's atoi returns `(int) strtol(...)`: the return register holds the
/// 64-bit long, and the caller uses its low 32 bits. `--ret int` shows what
/// the caller gets; the default shows the whole register.
#[test]
fn return_value_as_the_c_type_holds_it() {
    require_privileges!("return_value_as_the_c_type_holds_it");
    let atoi = ["--atoi", "99999999999"];
    let returns = |extra: &[&str]| -> Vec<i64> {
        let (pid, events) = trace_target_with(&atoi, "libc.so.6", "atoi", extra);
        assert!(events.iter().all(|e| e["pid"] == pid), "{events:?}");
        let (_, returns) = split(&events);
        returns.iter().map(|e| e["ret"].as_i64().unwrap()).collect()
    };
    assert_eq!(returns(&["--ret", "int"]), [1215752191; CALLS as usize]);
    assert_eq!(returns(&[]), [99999999999; CALLS as usize]);
}

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    let cases = [
        BadInput {
            name: "unknown function",
            args: &["-b", TARGET, "-f", "no_such_function"],
            exit: Exit::Fails,
            says: "function 'no_such_function' not found",
        },
        BadInput {
            name: "no such binary",
            args: &["-b", "/nonexistent/prog", "-f", "main"],
            exit: Exit::Fails,
            says: "/nonexistent/prog does not exist",
        },
        BadInput {
            name: "no such process",
            args: &["-b", TARGET, "-f", "lebpf_add", "-p", "999999999"],
            exit: Exit::Fails,
            says: "no process with pid 999999999",
        },
        BadInput {
            name: "string argument out of range",
            args: &["-b", TARGET, "-f", "lebpf_add", "--string-arg", "3"],
            exit: Exit::Fails,
            says: "--string-arg",
        },
    ];
    assert_bad_args(BIN, &cases);
}

/// Runs the chapter's commands: the target with `target_args`, and the
/// probe with `probe_args` for 3 seconds, as text. What the terminal shows.
fn run_as_the_chapter(target_args: &[&str], probe_args: &[&str]) -> String {
    let mut cmd = Command::new(TARGET);
    cmd.arg("--wait").args(target_args);
    let mut target = Running::spawn_with_stdin(cmd).unwrap();
    target
        .wait_for_stdout("pid ", Duration::from_secs(10))
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(probe_args)
        .args(["-p", &target.pid().to_string(), "-d", "3"]);
    let mut probe = Running::spawn(cmd).unwrap();
    probe
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    target.write_stdin("\n").unwrap();
    let (status, _, _) = target.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    let (status, stdout, stderr) = probe.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    with_target_debug(&as_terminal(&stdout, &stderr), TARGET)
}

#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    let shown = run_as_the_chapter(&[], &["-b", TARGET, "-f", "lebpf_add"]);
    assert_sample("docs/05-uprobe.md", "uprobe_run", &shown);
    let atoi = ["--calls", "1", "--atoi", "99999999999"];
    let probe = ["-b", "libc.so.6", "-f", "atoi", "--string-arg", "0"];
    let shown = run_as_the_chapter(&atoi, &probe);
    assert_sample("docs/05-uprobe.md", "uprobe_atoi_long", &shown);
    let shown = run_as_the_chapter(&atoi, &[&probe[..], &["--ret", "int"]].concat());
    assert_sample("docs/05-uprobe.md", "uprobe_atoi_int", &shown);
}
