//! pinning: the program, its maps and its link outlive the loader; other
//! processes read and change the maps through the pins; a second load
//! replaces the program and keeps the maps' contents; each pin is one
//! reference, and removing them one at a time detaches, then unloads, then
//! frees; `ip netns exec` hides the pins; bad input leaves nothing behind.
//! Every test pins under its own directory, removed on drop (which
//! detaches the program), also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use serde_json::Value;

use testkit::chapter::assert_sample;
use testkit::{
    assert_bad_args, prog_gone, require_privileges, BadInput, Exit, HostPinDir, NetNs,
    HIDDEN_BY_IP_NETNS_EXEC,
};

const BIN: &str = env!("CARGO_BIN_EXE_pinning");

/// A copy of /bin/true with a name of its own, so that its exec()s are the
/// only ones counted under that name; removed on drop.
struct Counted {
    dir: PathBuf,
    path: PathBuf,
    name: String,
}

impl Counted {
    fn new(name: &str) -> Counted {
        let dir = std::env::temp_dir().join(format!("lebpf-pinning-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::copy("/bin/true", &path).unwrap();
        Counted {
            dir,
            path,
            name: name.to_string(),
        }
    }

    /// Runs it `n` times.
    fn exec(&self, n: usize) {
        for _ in 0..n {
            assert!(self.run_once().success());
        }
    }

    /// One run. The copy was written through a file descriptor, and a
    /// child that another test forked at that moment holds a duplicate of
    /// it until its own exec; while it does, running the copy fails with
    /// ETXTBSY. That passes within milliseconds, so try again, for a while.
    fn run_once(&self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match Command::new(&self.path).status() {
                Err(e)
                    if e.raw_os_error() == Some(libc::ETXTBSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10))
                }
                status => return status.unwrap(),
            }
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pinning(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--pin")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = pinning(dir, args);
    assert!(out.status.success(), "pinning {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn show(dir: &Path, comm: &str) -> Value {
    serde_json::from_str(&ok(dir, &["--show", "--json", "--comm", comm])).unwrap()
}

fn count(shown: &Value, comm: &str) -> u64 {
    shown["counts"][comm].as_u64().unwrap_or(0)
}

fn map_exists(id: u64) -> bool {
    libbpf_rs::MapHandle::from_map_id(id as u32).is_ok()
}

/// The kernel frees a map once its last reference goes, and a program that
/// used it drops its references after an RCU grace period: wait a little.
fn map_gone(id: u64) -> bool {
    testkit::wait_until(std::time::Duration::from_secs(5), || !map_exists(id))
}

#[test]
fn pins_outlive_the_loader_and_a_reload_reuses_the_maps() {
    require_privileges!("pins_outlive_the_loader_and_a_reload_reuses_the_maps");
    let pins = HostPinDir::new("reuse").unwrap();
    let dir = pins.path();
    let prog = Counted::new(&format!("pinr{}", std::process::id()));

    // The loader pins and exits; the program keeps counting.
    let out = ok(dir, &[]);
    assert!(out.contains("counts (new), settings (new)"), "{out}");
    prog.exec(3);
    let first = show(dir, &prog.name);
    assert_eq!(count(&first, &prog.name), 3, "{first}");
    assert_eq!(first["paused"], false);

    // Another process changes a pinned map; the program sees it.
    ok(dir, &["--pause"]);
    prog.exec(2);
    assert_eq!(count(&show(dir, &prog.name), &prog.name), 3);
    ok(dir, &["--resume"]);
    prog.exec(1);
    assert_eq!(count(&show(dir, &prog.name), &prog.name), 4);

    // A second load: a new program on the same maps, the old one gone.
    let out = ok(dir, &[]);
    assert!(out.contains("counts (reused), settings (reused)"), "{out}");
    let second = show(dir, &prog.name);
    let (old, new) = (&first["pinned"], &second["pinned"]);
    assert_ne!(old["prog_id"], new["prog_id"]);
    assert_eq!(new["link_prog_id"], new["prog_id"]);
    assert_eq!(old["counts_id"], new["counts_id"]);
    assert_eq!(old["settings_id"], new["settings_id"]);
    assert!(prog_gone(old["prog_id"].as_u64().unwrap() as u32));
    assert_eq!(count(&second, &prog.name), 4, "{second}");
    prog.exec(1);
    assert_eq!(count(&show(dir, &prog.name), &prog.name), 5, "counted once");

    // --unpin: everything goes.
    let out = ok(dir, &["--unpin"]);
    assert!(out.contains("Removed the pins"), "{out}");
    assert!(!dir.exists());
    assert!(prog_gone(new["prog_id"].as_u64().unwrap() as u32));
    assert!(map_gone(new["counts_id"].as_u64().unwrap()));
    assert!(map_gone(new["settings_id"].as_u64().unwrap()));
}

/// The count of `comm` in the counts map, read through its pin alone.
fn pinned_count(dir: &Path, comm: &str) -> u64 {
    let mut key = [0u8; 16];
    key[..comm.len()].copy_from_slice(comm.as_bytes());
    let counts = libbpf_rs::MapHandle::from_pinned_path(dir.join("counts")).unwrap();
    libbpf_rs::MapCore::lookup(&counts, &key, libbpf_rs::MapFlags::ANY)
        .unwrap()
        .map_or(0, |v| u64::from_ne_bytes(v.try_into().unwrap()))
}

#[test]
fn each_pin_is_one_reference() {
    require_privileges!("each_pin_is_one_reference");
    let pins = HostPinDir::new("refs").unwrap();
    let dir = pins.path();
    let prog = Counted::new(&format!("pinl{}", std::process::id()));
    ok(dir, &[]);
    prog.exec(1);
    let ids = show(dir, &prog.name)["pinned"].clone();
    let prog_id = ids["prog_id"].as_u64().unwrap() as u32;

    // Without the link's pin the program is detached (it counts nothing
    // more), but its own pin keeps it loaded.
    std::fs::remove_file(dir.join("link")).unwrap();
    // The kernel releases a link whose last reference went in a deferred
    // work item: wait until an exec() of a second copy is no longer
    // counted, so that the two below come after the detach.
    let probe = Counted::new(&format!("pinp{}", std::process::id()));
    let detached = testkit::wait_until(Duration::from_secs(10), || {
        let before = pinned_count(dir, &probe.name);
        probe.exec(1);
        pinned_count(dir, &probe.name) == before
    });
    assert!(
        detached,
        "the program still counts after its link's pin went"
    );
    prog.exec(2);
    assert!(
        libbpf_rs::Program::fd_from_id(prog_id).is_ok(),
        "still loaded"
    );
    // Without the program's pin it is unloaded; the maps stay, pinned.
    std::fs::remove_file(dir.join("prog")).unwrap();
    assert!(prog_gone(prog_id));
    assert!(map_exists(ids["counts_id"].as_u64().unwrap()));
    // The counts, read through the map's pin alone: the exec()s after the
    // link went were not counted.
    assert_eq!(pinned_count(dir, &prog.name), 1);
    // Without the maps' pins (and no process holding them) they are freed.
    for map in ["counts", "settings"] {
        std::fs::remove_file(dir.join(map)).unwrap();
    }
    assert!(map_gone(ids["counts_id"].as_u64().unwrap()));
}

#[test]
fn bpftool_sees_the_pins() {
    require_privileges!("bpftool_sees_the_pins");
    let pins = HostPinDir::new("bpftool").unwrap();
    let dir = pins.path();
    ok(dir, &[]);
    let bpftool = |args: &[&str]| -> String {
        let out = Command::new("bpftool").args(args).output().unwrap();
        assert!(out.status.success(), "bpftool {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let ids = show(dir, "-")["pinned"].clone();
    let out = bpftool(&["prog", "show", "pinned", &path("prog")]);
    assert!(
        out.starts_with(&format!("{}: tracing  name count_exec", ids["prog_id"])),
        "{out}"
    );
    assert_sample("docs/14-pinning.md", "pinning_bpftool_prog", &out);
    let out = bpftool(&["link", "show", "pinned", &path("link")]);
    assert_sample("docs/14-pinning.md", "pinning_bpftool_link", &out);
    assert!(out.starts_with(&format!("{}: ", ids["link_id"])), "{out}");
    assert!(out.contains(&format!("prog {}", ids["prog_id"])), "{out}");
    assert!(out.contains("sched_process_exec"), "{out}");
    // bpftool writes a pinned map as well as it reads it.
    bpftool(&[
        "map",
        "update",
        "pinned",
        &path("settings"),
        "key",
        "0",
        "0",
        "0",
        "0",
        "value",
        "1",
        "0",
        "0",
        "0",
    ]);
    assert_eq!(show(dir, "-")["paused"], true);
    let out = bpftool(&["map", "dump", "pinned", &path("settings")]);
    assert!(out.contains("\"paused\": 1"), "{out}");
}

#[test]
fn ip_netns_exec_hides_the_pins_and_nsenter_does_not() {
    require_privileges!("ip_netns_exec_hides_the_pins_and_nsenter_does_not");
    let pins = HostPinDir::new("netns").unwrap();
    let dir = pins.path();
    ok(dir, &[]);
    let ns = NetNs::new().unwrap();
    let hidden = Command::new("ip")
        .args(["netns", "exec", ns.name(), BIN, "--show", "--pin"])
        .arg(dir)
        .output()
        .unwrap();
    testkit::assert_one_line_error(&hidden, &HIDDEN_BY_IP_NETNS_EXEC);
    let seen = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name()))
        .args([BIN, "--show", "--pin"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(seen.status.success(), "{seen:?}");
}

#[test]
fn bad_input_gives_one_line_and_pins_nothing() {
    require_privileges!("bad_input_gives_one_line_and_pins_nothing");
    let pins = HostPinDir::new("bad").unwrap();
    let missing = pins.path().to_string_lossy().into_owned();
    let not_bpffs = std::env::temp_dir().join(format!("lebpf-pinning-{}", std::process::id()));
    let not_bpffs = not_bpffs.to_string_lossy().into_owned();
    assert_bad_args(
        BIN,
        &[
            BadInput {
                name: "a pin directory outside a bpffs",
                args: &["--pin", &not_bpffs],
                exit: Exit::Code(1),
                says: "is not on a bpf filesystem",
            },
            BadInput {
                name: "--show with nothing pinned",
                args: &["--pin", &missing, "--show"],
                exit: Exit::Code(1),
                says: "nothing is pinned in",
            },
            BadInput {
                name: "--unpin with nothing pinned",
                args: &["--pin", &missing, "--unpin"],
                exit: Exit::Code(1),
                says: "nothing is pinned in",
            },
            BadInput {
                name: "two actions",
                args: &["--pause", "--unpin"],
                exit: Exit::Code(2),
                says: "cannot be used with",
            },
            BadInput {
                name: "--comm without --show",
                args: &["--comm", "bash"],
                exit: Exit::Code(2),
                says: "--show",
            },
        ],
    );
    assert!(!Path::new(&not_bpffs).exists());
    assert!(!pins.path().exists());
}

/// The chapter's "Run it": the commands in order, each output compared
/// with its sample.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    let pins = HostPinDir::new("chapter").unwrap();
    let dir = pins.path();
    let prog = Counted::new("hello-pins");
    // The chapter pins in the default directory; the samples show its path.
    let shown = |out: String| {
        out.replace(
            &*dir.to_string_lossy(),
            "/sys/fs/bpf/learning-ebpf-rs-pinning",
        )
    };
    assert_sample("docs/14-pinning.md", "pinning_load", &shown(ok(dir, &[])));
    prog.exec(3);
    let out = ok(dir, &["--show", "--comm", "hello-pins"]);
    assert_sample("docs/14-pinning.md", "pinning_show", &shown(out));
    assert_sample("docs/14-pinning.md", "pinning_reload", &shown(ok(dir, &[])));
    prog.exec(1);
    let out = ok(dir, &["--show", "--comm", "hello-pins"]);
    assert_sample("docs/14-pinning.md", "pinning_show_again", &shown(out));
    assert_sample(
        "docs/14-pinning.md",
        "pinning_unpin",
        &shown(ok(dir, &["--unpin"])),
    );
}
