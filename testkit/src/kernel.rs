//! What the running kernel can do, for tests of a feature that older
//! kernels lack (tcx links before 6.6, for example). Such a test says by
//! name that it did not run, and why. Under CI=true that is allowed only
//! where the lesson's row in docs/lessons.md names the feature with its
//! minimum (`tcx: 6.6`), so a test cannot quietly stop running anywhere else.

use std::path::Path;

/// The running kernel's version, (major, minor).
pub fn version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
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
