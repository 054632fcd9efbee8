//! execsnoop proven in the kernel: the events of processes this test starts
//! (exec, exit status, death by signal) over the ring buffer and the perf
//! buffer, and overflow: lost events counted by the kernel and reported.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use testkit::chapter::{as_terminal, assert_sample, with_target_debug};
use testkit::{assert_bad_args, require_privileges, BadInput, Exit, Running};

const BIN: &str = env!("CARGO_BIN_EXE_execsnoop");
const THREADS: &str = env!("CARGO_BIN_EXE_execsnoop_threads");

/// Every test here starts processes that are children of this test
/// process, and the tests that trace `-p <this process>` would see the
/// other tests' processes too (and lose an event that lands while their
/// perf buffer is still being set up): one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts execsnoop for process `pid` and its children; returns once the
/// tracepoints are attached.
fn start(pid: u32, extra: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "-p", &pid.to_string()]).args(extra);
    let mut running = Running::spawn(cmd).unwrap();
    running
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    running
}

fn stop(running: Running) -> (Vec<Value>, Vec<String>) {
    running.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = running.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "execsnoop failed: {stderr:?}");
    let events = stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (events, stderr)
}

fn find<'a>(events: &'a [Value], event: &str, pid: u32) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == event && e["pid"] == pid)
        .unwrap_or_else(|| panic!("no {event} event for pid {pid} in {events:?}"))
}

/// Children of this test process: `sh -c "exit 7"`, `/bin/true`, and a
/// `sleep` killed with SIGKILL. Each event must say exactly what happened.
fn events_of_own_children(transport: &[&str]) {
    let me = std::process::id();
    let snoop = start(me, transport);

    let mut sh = Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .spawn()
        .unwrap();
    let sh_pid = sh.id();
    assert_eq!(sh.wait().unwrap().code(), Some(7));
    let mut t = Command::new("/bin/true").spawn().unwrap();
    let true_pid = t.id();
    t.wait().unwrap();
    let mut sleep = Command::new("/bin/sleep").arg("10").spawn().unwrap();
    let sleep_pid = sleep.id();
    std::thread::sleep(Duration::from_millis(100));
    sleep.kill().unwrap();
    sleep.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (events, stderr) = stop(snoop);
    let exec = find(&events, "exec", sh_pid);
    assert_eq!(exec["ppid"], me);
    assert_eq!(exec["comm"], "sh");
    assert_eq!(exec["filename"], "/bin/sh");
    assert_eq!(exec["uid"], 0);
    assert_eq!(find(&events, "exit", sh_pid)["exit_status"], 7);
    assert_eq!(find(&events, "exec", true_pid)["filename"], "/bin/true");
    assert_eq!(find(&events, "exit", true_pid)["exit_status"], 0);
    let killed = find(&events, "exit", sleep_pid);
    assert_eq!(killed["signal"], libc::SIGKILL);
    assert_eq!(killed["comm"], "sleep");
    // Every event is a child of this test (or the test itself).
    assert!(events.iter().all(|e| e["pid"] == me || e["ppid"] == me));
    assert!(
        stderr.iter().any(|l| l.ends_with(" 0 lost.")),
        "nothing lost: {stderr:?}"
    );
}

#[test]
fn ring_buffer_events_of_own_children() {
    require_privileges!("ring_buffer_events_of_own_children");
    let _one = one_at_a_time();
    events_of_own_children(&[]);
}

#[test]
fn perf_buffer_events_of_own_children() {
    require_privileges!("perf_buffer_events_of_own_children");
    let _one = one_at_a_time();
    events_of_own_children(&["--perf-buffer"]);
}

/// What execsnoop said of `pid`, in order: ("exec", filename) and
/// ("exit", status or "signal N").
fn story(events: &[Value], pid: u32) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["pid"] == pid)
        .map(|e| {
            let what = match (&e["filename"], &e["exit_status"]) {
                (Value::String(f), _) => f.clone(),
                (_, Value::Number(n)) => n.to_string(),
                _ => format!("signal {}", e["signal"]),
            };
            (e["event"].as_str().unwrap().to_string(), what)
        })
        .collect()
}

/// A process ends when its last thread does: one EXIT then, with the
/// status its parent sees, whichever thread leaves last; and an exec from
/// a second thread (which ends the main one) is no exit at all.
#[test]
fn one_exit_per_process_when_its_last_thread_leaves() {
    require_privileges!("one_exit_per_process_when_its_last_thread_leaves");
    let _one = one_at_a_time();
    let snoop = start(std::process::id(), &[]);

    let mut leader_first = Command::new(THREADS)
        .args(["leader-first", "5"])
        .spawn()
        .unwrap();
    assert_eq!(leader_first.wait().unwrap().code(), Some(5));
    let mut exec_from_thread = Command::new(THREADS)
        .args(["exec-from-thread", "/bin/true"])
        .spawn()
        .unwrap();
    assert_eq!(exec_from_thread.wait().unwrap().code(), Some(0));
    std::thread::sleep(Duration::from_millis(300));

    let (events, _) = stop(snoop);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        story(&events, leader_first.id()),
        [pair("exec", THREADS), pair("exit", "5")]
    );
    assert_eq!(
        story(&events, exec_from_thread.id()),
        [
            pair("exec", THREADS),
            pair("exec", "/bin/true"),
            pair("exit", "0")
        ]
    );
}

/// A 4 KiB buffer holds about 13 events. The consumer is frozen (SIGSTOP)
/// while a shell runs /bin/true 60 times: 121 events (60 exec, 60 exit, the
/// shell's own exit) for 13 places. Delivered plus lost must add up, and the
/// loss must be reported.
///
/// The shell exits only after the consumer is running again: a perf buffer
/// reports its losses lazily, in a record the kernel writes just before the
/// next sample that fits, so one more event must come after the drain.
fn overflow(transport: &[&str]) {
    let mut shell = Command::new("/bin/sh");
    shell.args([
        "-c",
        "read go; i=0; while [ $i -lt 60 ]; do /bin/true; i=$((i+1)); done; echo looped; read done",
    ]);
    let mut shell = Running::spawn_with_stdin(shell).unwrap();
    let mut args = vec!["--buffer-kib", "4"];
    args.extend_from_slice(transport);
    let snoop = start(shell.pid(), &args);

    snoop.signal(libc::SIGSTOP).unwrap();
    shell.write_stdin("go\n").unwrap();
    shell
        .wait_for_stdout("looped", Duration::from_secs(30))
        .unwrap();
    snoop.signal(libc::SIGCONT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    shell.write_stdin("done\n").unwrap();
    let (status, _, _) = shell.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));

    let (events, stderr) = stop(snoop);
    let summary = stderr
        .iter()
        .find(|l| l.ends_with(" lost."))
        .expect("a summary line");
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (delivered, lost) = (numbers[0], numbers[1]);
    assert_eq!(delivered, events.len() as u64, "{summary}");
    assert!(lost > 0, "nothing lost: {summary}");
    assert_eq!(delivered + lost, 121, "{summary}");
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("WARNING:") && l.contains("lost")),
        "the loss was reported: {stderr:?}"
    );
}

#[test]
fn ring_buffer_overflow_is_counted() {
    require_privileges!("ring_buffer_overflow_is_counted");
    let _one = one_at_a_time();
    overflow(&[]);
}

#[test]
fn perf_buffer_overflow_is_counted() {
    require_privileges!("perf_buffer_overflow_is_counted");
    let _one = one_at_a_time();
    overflow(&["--perf-buffer"]);
}

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    let _one = one_at_a_time();
    let cases = [
        BadInput {
            name: "buffer size not a power of two",
            args: &["--buffer-kib", "3"],
            exit: Exit::Code(2),
            says: "power of two",
        },
        BadInput {
            name: "pid zero",
            args: &["-p", "0"],
            exit: Exit::Code(2),
            says: "--pid",
        },
        BadInput {
            name: "unknown option",
            args: &["--bogus"],
            exit: Exit::Code(2),
            says: "--bogus",
        },
    ];
    assert_bad_args(BIN, &cases);
}

/// The chapter's "Run it": the same script, traced by its pid, as text.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    let _one = one_at_a_time();
    let script = format!(
        "sleep 1; sh -c \"exit 3\"; /bin/true; sleep 3 & p=$!; sleep 0.2; kill -9 $p; wait $p; \
         {THREADS} leader-first 5; exit 0"
    );
    let script = Running::spawn({
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script]);
        cmd
    })
    .unwrap();
    // The chapter's reader relies on execsnoop attaching within the
    // script's first second. A slow machine (an emulated VM) can take
    // longer, so hold the script's `sleep 1` stopped from its exec until
    // execsnoop has attached: its EXEC is then always missed and its EXIT
    // always seen, as the chapter says.
    let sleeper = child_named(script.pid(), "sleep", Duration::from_secs(20))
        .expect("the script's first child, sleep, did not start");
    // SAFETY: kill(2) on a child of the script this test started.
    assert_eq!(unsafe { libc::kill(sleeper, libc::SIGSTOP) }, 0);
    let mut cmd = Command::new(BIN);
    cmd.args(["-p", &script.pid().to_string()]);
    let mut snoop = Running::spawn(cmd).unwrap();
    let attached = snoop.wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20));
    // SAFETY: as above; resume the sleep even if execsnoop failed.
    assert_eq!(unsafe { libc::kill(sleeper, libc::SIGCONT) }, 0);
    attached.unwrap();
    let (status, _, _) = script.finish(Duration::from_secs(20)).unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    snoop.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = snoop.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let shown = with_target_debug(&as_terminal(&stdout, &stderr), THREADS);
    assert_sample("docs/03-execsnoop.md", "execsnoop_run", &shown);
}

/// The pid of the first child of `parent` whose command name is `comm`, once
/// it has one (after its exec), or None after `timeout`.
fn child_named(parent: u32, comm: &str, timeout: Duration) -> Option<i32> {
    let mut found = None;
    testkit::wait_until(timeout, || {
        let children = format!("/proc/{parent}/task/{parent}/children");
        let children = std::fs::read_to_string(children).unwrap_or_default();
        found = children.split_whitespace().find_map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (name.trim_end() == comm).then(|| pid.parse().ok())?
        });
        found.is_some()
    });
    found
}
