//! Build time: a cold build, then the rebuild after touching one `.bpf.c`,
//! against a rebuild of every BPF object (what a build.rs without
//! dependency tracking does on any change), as the number of BPF objects
//! grows. `cargo bench --bench rebuild`.
//!
//! It works on a copy of the project's files under target/bench-build (its
//! own sources and target directory, debug profile, binaries only), so your
//! build is left alone. More objects are copies of bpf/tc_classifier.bpf.c
//! added to that copy. Each rebuild checks, from the objects' timestamps,
//! which objects were compiled again. Writes docs/images/bench-rebuild.svg.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use testkit::plot::{self, Point};
use testkit::plots;

/// Touch-one rebuilds per size, and rebuilds of everything per size.
const TOUCH_ROUNDS: usize = 5;
const ALL_ROUNDS: usize = 3;
/// The object counts measured, as multiples of the project's own.
const MULTIPLES: [usize; 3] = [1, 2, 4];
/// The source touched, and copied to make more objects.
const LESSON: &str = "tc_classifier";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The same cargo that runs this benchmark.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Copies the project's files as they are now (those git tracks, and new
/// ones it does not ignore) to `dest`.
fn copy_project(dest: &Path) {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .expect("run git ls-files (the benchmark copies the files git tracks)");
    assert!(out.status.success(), "git ls-files failed");
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).expect("a UTF-8 file name");
        let (from, to) = (root().join(name), dest.join(name));
        if !from.is_file() {
            continue; // deleted in the working copy
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
}

/// `cargo build --bins` in `tree`; returns the wall seconds and the build
/// script's OUT_DIR.
fn build(tree: &Path, target: &Path, bpf_cflags: Option<&str>) -> (f64, PathBuf) {
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--bins", "--message-format=json"])
        .current_dir(tree)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("BPF_CFLAGS");
    if let Some(flags) = bpf_cflags {
        cmd.env("BPF_CFLAGS", flags);
    }
    let start = Instant::now();
    let out = cmd.output().expect("run cargo build");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "cargo build failed in {}:\n{}",
        tree.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out_dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "build-script-executed")
        .filter(|m| {
            m["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("learning-ebpf-rs"))
        })
        .find_map(|m| m["out_dir"].as_str().map(PathBuf::from))
        .expect("cargo reported the build script's OUT_DIR");
    (secs, out_dir)
}

/// Each BPF object's modification time.
fn objects(out_dir: &Path) -> BTreeMap<String, SystemTime> {
    std::fs::read_dir(out_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bpf.o"))
        .map(|e| {
            let t = e.metadata().unwrap().modified().unwrap();
            (e.file_name().to_string_lossy().into_owned(), t)
        })
        .collect()
}

/// How many objects changed between two listings.
fn rebuilt(before: &BTreeMap<String, SystemTime>, after: &BTreeMap<String, SystemTime>) -> usize {
    after
        .iter()
        .filter(|(name, t)| before.get(*name) != Some(t))
        .count()
}

/// The BPF sources build.rs compiles.
fn sources(tree: &Path) -> usize {
    ["bpf", "bpf/bench", "bpf/doctor"]
        .iter()
        .flat_map(|d| std::fs::read_dir(tree.join(d)).unwrap())
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".bpf.c"))
        })
        .count()
}

/// Leaves `extra` copies of the lesson's source in `tree`'s bpf/.
fn set_copies(tree: &Path, extra: usize) {
    for e in std::fs::read_dir(tree.join("bpf")).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("bench_copy_") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let source = tree.join(format!("bpf/{LESSON}.bpf.c"));
    for i in 0..extra {
        std::fs::copy(&source, tree.join(format!("bpf/bench_copy_{i:03}.bpf.c"))).unwrap();
    }
}

/// Sets the file's modification time to now.
fn touch(path: &Path) {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    f.set_modified(SystemTime::now()).unwrap();
}

fn main() {
    let work = root().join("target/bench-build");
    let (tree, target) = (work.join("tree"), work.join("target"));
    let _ = std::fs::remove_dir_all(&work);
    copy_project(&tree);
    let own = sources(&tree);
    println!(
        "a copy of the project in {}: {own} BPF sources; touching bpf/{LESSON}.bpf.c; \
         medians of {TOUCH_ROUNDS} touches and {ALL_ROUNDS} full rebuilds [lowest, highest]",
        work.display()
    );

    let (cold, _) = build(&tree, &target, None);
    println!("cold build (all dependencies, libbpf from source): {cold:.2} s\n");
    println!(
        "{:>11} {:>26} {:>26} {:>7}",
        "BPF objects", "touch one, s", "rebuild all, s", "ratio"
    );

    let (mut touch_points, mut all_points) = (Vec::new(), Vec::new());
    for multiple in MULTIPLES {
        let total = own * multiple;
        set_copies(&tree, total - own);
        let (_, out_dir) = build(&tree, &target, None);
        assert_eq!(objects(&out_dir).len(), total, "objects in {out_dir:?}");

        let mut touch_runs = Vec::new();
        for _ in 0..TOUCH_ROUNDS {
            let before = objects(&out_dir);
            touch(&tree.join(format!("bpf/{LESSON}.bpf.c")));
            let (secs, _) = build(&tree, &target, None);
            let n = rebuilt(&before, &objects(&out_dir));
            assert_eq!(n, 1, "touching one source rebuilt {n} objects");
            touch_runs.push(secs);
        }
        // A changed compiler command line makes every object stale.
        let mut all_runs = Vec::new();
        for round in 0..ALL_ROUNDS {
            let before = objects(&out_dir);
            let flags = format!("-DBENCH_REBUILD_ALL={multiple}{round}");
            let (secs, _) = build(&tree, &target, Some(&flags));
            let n = rebuilt(&before, &objects(&out_dir));
            assert_eq!(n, total, "a changed command line rebuilt {n} objects");
            all_runs.push(secs);
        }
        let (t, a) = (
            Point::from_runs(total as f64, &touch_runs),
            Point::from_runs(total as f64, &all_runs),
        );
        println!(
            "{total:>11} {:>8.2} [{:>6.2}, {:>6.2}] {:>8.2} [{:>6.2}, {:>6.2}] {:>7.2}",
            t.median,
            t.low,
            t.high,
            a.median,
            a.low,
            a.high,
            t.median / a.median
        );
        touch_points.push(t);
        all_points.push(a);
    }
    let _ = std::fs::remove_dir_all(&work);

    plots::rebuild_by_objects(
        touch_points,
        all_points,
        plots::caption("cargo bench --bench rebuild", &plot::today()),
    )
    .write(&root().join("docs/images/bench-rebuild.svg"))
    .unwrap();
}
