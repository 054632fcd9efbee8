//! What the running kernel can do, for tests of a feature that older
//! kernels lack (tcx links before 6.6, for example). Such a test says by
//! name that it did not run, and why. Under CI=true that is allowed only
//! where the lesson's row in docs/lessons.md names the feature with its
//! minimum (`tcx: 6.6`), so a test cannot quietly stop running anywhere else.

use std::path::Path;

/// The running kernel's version, (major, minor).
pub fn version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    learning_ebpf_rs::lessons::parse_release(release.trim()).unwrap_or((0, 0))
}

/// Whether `test` of `lesson` can run here, given that it needs `feature`,
/// which arrived in Linux `min`. If not, prints
/// `NOT RUN <test>: needs <feature> (Linux X.Y+), this kernel is A.B` and
/// returns false; under CI=true it panics instead, unless the lesson's row
/// in docs/lessons.md says `<feature>: X.Y`.
pub fn has_feature(test: &str, lesson: &str, feature: &str, min: (u32, u32)) -> bool {
    let (major, minor) = version();
    if (major, minor) >= min {
        return true;
    }
    let why = format!(
        "needs {feature} (Linux {}.{}+), this kernel is {major}.{minor}",
        min.0, min.1
    );
    if crate::in_ci() {
        let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lessons.md");
        let table = std::fs::read_to_string(&table).unwrap_or_default();
        let row = table
            .lines()
            .find(|l| l.contains(&format!("`{lesson}`")))
            .unwrap_or_default();
        assert!(
            row.contains(&format!("{feature}: {}.{}", min.0, min.1)),
            "{test} {why}, and the {lesson} row of docs/lessons.md does not say \
             \"{feature}: {}.{}\"; with CI=true only a documented gap may leave a test not run",
            min.0,
            min.1
        );
    }
    eprintln!("NOT RUN {test}: {why}");
    false
}

/// BPF programs and links loaded anywhere on this kernel, and the names at
/// the top of /sys/fs/bpf: what a refused lesson must leave as it was.
fn bpf_objects() -> (Vec<u32>, Vec<u32>, Vec<String>) {
    let progs = libbpf_rs::query::ProgInfoIter::default()
        .map(|p| p.id)
        .collect();
    let links = libbpf_rs::query::LinkInfoIter::default()
        .map(|l| l.id)
        .collect();
    let mut pins: Vec<String> = std::fs::read_dir("/sys/fs/bpf")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    pins.sort();
    (progs, links, pins)
}

/// On a kernel older than `lesson`'s minimum (src/lessons.rs), checks the
/// refusal instead of the test: `cmd` (the lesson's binary, with arguments
/// that would load it) exits with status 1 and one line, "error: LESSON
/// needs Linux X.Y or newer (FEATURE); this kernel is RELEASE", prints
/// nothing else, and loads, attaches and pins nothing. Then prints
/// `REFUSED <test>: <that line>` (the test results count the lesson as
/// refused on this kernel, not as run) and returns true: the test returns.
/// On a kernel the lesson runs on it returns false at once.
pub fn lesson_refused(test: &str, lesson: &str, cmd: &mut std::process::Command) -> bool {
    use learning_ebpf_rs::lessons;
    let l = lessons::find(lesson).unwrap_or_else(|| panic!("no lesson {lesson}"));
    let release = lessons::kernel_release();
    let Some(why) = l.too_old(&release) else {
        return false;
    };
    let before = bpf_objects();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{test}: {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{test} on {release}: {stderr}");
    assert_eq!(stderr, format!("error: {why}\n"), "{test} on {release}");
    assert!(out.stdout.is_empty(), "{test} on {release}: {out:?}");
    let after = bpf_objects();
    assert_eq!(
        before, after,
        "{test}: the refused {lesson} left BPF objects behind"
    );
    eprintln!("REFUSED {test}: {why}");
    true
}
