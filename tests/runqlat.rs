//! runqlat proven in the kernel: a workload with a known run queue delay
//! lands its counts in the expected log2 bucket; [interval] [count] works.

use std::process::Command;
use std::sync::mpsc::channel;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

use learning_ebpf_rs::hist::slot;
use testkit::chapter::{as_terminal, assert_sample};
use testkit::{pin_thread, require_privileges, Running};

const BIN: &str = env!("CARGO_BIN_EXE_runqlat");

/// On a kernel older than runqlat's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "runqlat",
        std::process::Command::new(BIN).args([] as [&str; 0]),
    )
}
const ROUNDS: usize = 10;
/// In the middle of the 8192 -> 16383 usecs bucket.
const HOG: Duration = Duration::from_millis(12);

fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Two threads on the same CPU, released together by a barrier each round:
/// a SCHED_FIFO "hog" that spins for 12 ms, and a normal "waiter". The
/// waiter is runnable from the moment the barrier opens, but a real-time
/// task owns the CPU, so it waits on the run queue for the whole spin. With
/// runqlat filtered to the waiter's thread id, the rounds must land in the
/// 8192 -> 16383 usecs bucket.
#[test]
fn known_delay_lands_in_its_bucket() {
    require_privileges!("known_delay_lands_in_its_bucket");
    if refused("known_delay_lands_in_its_bucket") {
        return;
    }
    let cpu = 1 % std::thread::available_parallelism().map_or(1, |n| n.get());
    let barrier = Arc::new(Barrier::new(2));
    let (tid_tx, tid_rx) = channel();
    let (go_tx, go_rx) = channel::<()>();

    let waiter_barrier = barrier.clone();
    let waiter = std::thread::spawn(move || {
        pin_thread(cpu);
        tid_tx.send(gettid()).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..ROUNDS {
            waiter_barrier.wait(); // runnable now, but the hog has the CPU
            waiter_barrier.wait(); // the hog is done
        }
    });
    let hog_barrier = barrier.clone();
    let (fifo_tx, fifo_rx) = channel();
    let hog = std::thread::spawn(move || {
        pin_thread(cpu);
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: setting this thread's own scheduling policy.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        let refused = (rc != 0).then(std::io::Error::last_os_error);
        fifo_tx.send(refused.is_none()).unwrap();
        if let Some(err) = refused {
            // Said by the test thread; leaving here keeps the waiter from
            // waiting for a hog that never comes.
            return Err(err);
        }
        for _ in 0..ROUNDS {
            hog_barrier.wait();
            let start = Instant::now();
            while start.elapsed() < HOG {
                std::hint::spin_loop();
            }
            hog_barrier.wait();
        }
        Ok(())
    });
    if !fifo_rx.recv().unwrap() {
        // A cgroup v1 cpu controller with real-time group scheduling gives a
        // container no real-time time (cpu.rt_runtime_us is 0) unless asked.
        panic!(
            "SCHED_FIFO refused: {}; in a container on a cgroup v1 host, run it with a \
             real-time budget (README.md, Docker)",
            hog.join().unwrap().unwrap_err()
        );
    }

    let tid = tid_rx.recv().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--tid", &tid.to_string(), "--json"]);
    let mut runqlat = Running::spawn(cmd).unwrap();
    runqlat
        .wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
        .unwrap();
    go_tx.send(()).unwrap();
    waiter.join().unwrap();
    hog.join().unwrap().unwrap();

    runqlat.signal(libc::SIGINT).unwrap();
    let (status, stdout, stderr) = runqlat.finish(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{stderr:?}");
    let hist: Value = serde_json::from_str(stdout.last().expect("a histogram")).unwrap();
    assert_eq!(hist["unit"], "usecs");
    let counts: Vec<u64> = hist["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    let expected = slot(HOG.as_micros() as u64); // 12,000 us -> 13
    println!("runqlat slots for the waiter: {counts:?}");
    assert_eq!(expected, 13);
    assert!(
        counts[expected] >= (ROUNDS as u64) * 8 / 10,
        "{} of {ROUNDS} waits in slot {expected}: {counts:?}",
        counts[expected]
    );
    // The other rounds are not bounded: on a busy machine one round has
    // waited 32-65 ms (another task ran between the hog and the waiter),
    // and under parallel builds fewer than 10 waits reached 8,192 us.
}

/// `runqlat 1 2` prints two histograms, one a second, and exits by itself.
#[test]
fn interval_and_count() {
    require_privileges!("interval_and_count");
    if refused("interval_and_count") {
        return;
    }
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["--json", "1", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10));
    // The machine schedules something every second: the histograms are not empty.
    let total: u64 = lines[0]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert!(total > 0, "an empty histogram for a whole second");
}

/// The chapter's "Run it": `runqlat 1 2` as text.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    if refused("chapter_run_it_output") {
        return;
    }
    let out = Command::new(BIN).args(["1", "2"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(String::from)
            .collect()
    };
    let shown = as_terminal(&lines(&out.stdout), &lines(&out.stderr));
    assert_sample("docs/04-runqlat.md", "runqlat_run", &shown);
}
