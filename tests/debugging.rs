//! The debugging chapter's commands, each run against lesson 14's program
//! loaded with --trace (pinned in a directory of this test's own, removed
//! on drop, which detaches it), and compared with the chapter's samples.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::chapter::assert_sample;
use testkit::{require_privileges, HostPinDir, Running};

const PINNING: &str = env!("CARGO_BIN_EXE_pinning");
const CHAPTER: &str = "docs/16-debugging.md";
/// The chapter's pin directory, as its samples show it.
const CHAPTER_DIR: &str = "/sys/fs/bpf/learning-ebpf-rs-pinning";

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bpftool(args: &[&str], dir: &Path) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace(CHAPTER_DIR, &dir.to_string_lossy()))
        .collect();
    run(Command::new("bpftool").args(&args)).0
}

#[test]
fn every_command_in_the_chapter() {
    require_privileges!("every_command_in_the_chapter");
    let pins = HostPinDir::new("debugging").unwrap();
    let dir = pins.path();
    let as_chapter = |s: &str| s.replace(&*dir.to_string_lossy(), CHAPTER_DIR);
    run(Command::new(PINNING).arg("--pin").arg(dir).arg("--trace"));
    // A copy of true named as in the chapter, in a directory of our own.
    let bin_dir = std::env::temp_dir().join(format!("lebpf-debugging-{}", std::process::id()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let hello = bin_dir.join("hello-pins");
    std::fs::copy("/bin/true", &hello).unwrap();

    // The trace buffer, through bpftool, while the program runs 3 times.
    let mut tracelog = Running::spawn({
        let mut cmd = Command::new("bpftool");
        cmd.args(["prog", "tracelog"]);
        cmd
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert!(Command::new(&hello).status().unwrap().success());
    }
    tracelog
        .wait_for_stdout("exec hello-pins", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tracelog.signal(libc::SIGINT).unwrap();
    let (_, lines, _) = tracelog.finish(Duration::from_secs(5)).unwrap();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.ends_with("bpf_trace_printk: exec hello-pins"))
        .collect();
    assert!(!ours.is_empty(), "{lines:?}");
    for line in &ours {
        // task-tid [CPU] flags seconds: bpf_trace_printk: exec hello-pins
        let f: Vec<&str> = line.split_whitespace().collect();
        let tid = f[0].rsplit_once('-').map(|(_, t)| t).unwrap_or("");
        assert!(tid.parse::<u32>().is_ok(), "task field: {line}");
        assert!(
            f[1].starts_with('[') && f[1].ends_with(']'),
            "CPU field: {line}"
        );
        let secs = f[3].trim_end_matches(':');
        assert!(secs.parse::<f64>().is_ok(), "timestamp: {line}");
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    if release.starts_with("6.18.") {
        // The task column names the task while the tracer still has its
        // name in its small cache of names (saved_cmdlines), else it shows
        // `<...>`, as the chapter says; on a busy machine the name can be
        // gone before the line is read. Compare a named line whole, or
        // else everything after the task column.
        // The flags say what the CPU was doing at that instant (a pending
        // reschedule shows as N), so they are compared by their shape.
        let sample = testkit::chapter::sample(CHAPTER, "debugging_tracelog");
        let sample_flags = sample.split_whitespace().nth(2).unwrap();
        let as_sample = |l: &str| {
            let flags = l.split_whitespace().nth(2).unwrap_or("");
            assert!(
                flags.len() == 5
                    && flags
                        .chars()
                        .all(|c| ".dXNnpbhHsz".contains(c) || c.is_ascii_digit()),
                "flags field: {l}"
            );
            l.replacen(flags, sample_flags, 1)
        };
        match ours
            .iter()
            .find(|l| l.trim_start().starts_with("hello-pins-"))
        {
            Some(named) => assert_sample(CHAPTER, "debugging_tracelog", &as_sample(named)),
            None => {
                let after_task = |l: &str| {
                    let rest = l.trim_start().split_once(' ').map_or("", |(_, r)| r);
                    testkit::chapter::normalize(rest)
                };
                assert!(ours[0].trim_start().starts_with("<...>-"), "{}", ours[0]);
                assert_eq!(after_task(&as_sample(ours[0])), after_task(&sample));
            }
        }
    }

    // The same lines through trace_pipe.
    let mut pipe = Running::spawn({
        let mut cmd = Command::new("cat");
        cmd.arg("/sys/kernel/tracing/trace_pipe");
        cmd
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new(&hello).status().unwrap().success());
    pipe.wait_for_stdout("bpf_trace_printk: exec hello-pins", Duration::from_secs(10))
        .unwrap();
    pipe.signal(libc::SIGTERM).unwrap();
    let _ = pipe.finish(Duration::from_secs(5));

    let out = bpftool(&["prog", "show", "name", "count_exec"], dir);
    assert_sample(CHAPTER, "debugging_prog_show", &out);
    let path = format!("{CHAPTER_DIR}/counts");
    let out = bpftool(&["map", "show", "pinned", &path], dir);
    assert_sample(CHAPTER, "debugging_map_show", &out);
    let link = format!("{CHAPTER_DIR}/link");
    let out = bpftool(&["link", "show", "pinned", &link], dir);
    assert_sample(CHAPTER, "debugging_link_show", &out);
    let out = bpftool(&["map", "dump", "pinned", &path], dir);
    assert_sample(CHAPTER, "debugging_map_dump", &out);
    let out = bpftool(&["prog", "dump", "xlated", "name", "count_exec"], dir);
    assert_sample(CHAPTER, "debugging_xlated", &out);

    // -v on a second load: libbpf says it reused the pinned maps.
    let (_, stderr) = run(Command::new(PINNING).arg("--pin").arg(dir).arg("-v"));
    let reused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("reused pinned map"))
        .collect();
    assert_sample(
        CHAPTER,
        "debugging_verbose",
        &as_chapter(&reused.join("\n")),
    );

    run(Command::new(PINNING).arg("--pin").arg(dir).arg("--unpin"));
    let _ = std::fs::remove_dir_all(&bin_dir);
}
