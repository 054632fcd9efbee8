//! The lessons and the kernel each needs: one table, which the doctor
//! judges a kernel against, each lesson checks before it loads anything,
//! and docs/lessons.md's "Kernel minimum" column must match (a test reads
//! it).

use anyhow::{bail, Result};

/// A lesson, the oldest kernel its programs load on, and why that one.
pub struct Lesson {
    pub name: &'static str,
    /// The oldest kernel release (major, minor) the lesson runs on.
    pub minimum: (u32, u32),
    /// The feature that sets the minimum (and older ones worth knowing).
    pub why: &'static str,
    /// The doctor's checks that must be ok, beyond the kernel, BTF and the
    /// privileges.
    pub needs: &'static [&'static str],
}

const fn lesson(
    name: &'static str,
    minimum: (u32, u32),
    why: &'static str,
    needs: &'static [&'static str],
) -> Lesson {
    Lesson {
        name,
        minimum,
        why,
        needs,
    }
}

// ANCHOR: lessons
/// Every lesson, in the book's order.
pub const LESSONS: [Lesson; 17] = [
    lesson(
        "tc_classifier",
        (5, 1),
        "the objects are built with `-mcpu=v3`, whose 32-bit jumps need 5.1; tcx: 6.6",
        &[],
    ),
    lesson(
        "xdp_firewall",
        (5, 12),
        "atomic compare-and-swap; coarse clock 5.11",
        &["bpffs"],
    ),
    lesson("execsnoop", (5, 8), "ring buffer", &["tracefs"]),
    lesson(
        "runqlat",
        (5, 5),
        "`tp_btf`; `task->__state`, named `state` before 5.14, read through a CO-RE flavor",
        &[],
    ),
    lesson("uprobe", (5, 8), "ring buffer", &[]),
    lesson("fentry", (5, 5), "BPF trampolines", &["fentry"]),
    lesson(
        "load_balancer",
        (6, 1),
        "the conntrack kfuncs, `bpf_ct_set_nat_info` among them",
        &["conntrack_kfuncs"],
    ),
    lesson(
        "lsm_guard",
        (5, 8),
        "ring buffer; BPF LSM 5.7, with `CONFIG_BPF_LSM` and `bpf` in the active LSMs",
        &["securityfs", "bpf_lsm", "lsm_programs"],
    ),
    lesson(
        "cgroup_guard",
        (5, 8),
        "ring buffer; cgroup links 5.7",
        &["cgroup2"],
    ),
    lesson(
        "socket_filter",
        (5, 2),
        "its configuration is `.rodata` global data; `bpf_skb_load_bytes_relative` 4.18",
        &[],
    ),
    lesson(
        "lwt_filter",
        (5, 1),
        "`-mcpu=v3`; BPF as a route's encapsulation 4.10, LPM trie 4.11",
        &[],
    ),
    lesson(
        "races",
        (5, 12),
        "compare-and-swap; `bpf_spin_lock` 5.1",
        &["two_cpus"],
    ),
    lesson(
        "map_types",
        (5, 8),
        "ring buffer; queue and stack 4.20",
        &["two_cpus"],
    ),
    lesson(
        "pinning",
        (5, 8),
        "a link's info (`LinkInfo::from_fd`); pinned links 5.7, `tp_btf` 5.5",
        &["bpffs"],
    ),
    lesson(
        "verifier",
        (5, 18),
        "`bpf_xdp_load_bytes` in a fixed case",
        &[],
    ),
    lesson("debugging", (5, 8), "as lesson 14", &["bpffs", "tracefs"]),
    lesson(
        "netfilter_bpf",
        (6, 4),
        "the netfilter program type; iptables' bpf match with pinned programs 4.10",
        &["bpffs"],
    ),
];
// ANCHOR_END: lessons

impl Lesson {
    /// "5.8 (ring buffer)": the lesson table's cell.
    pub fn minimum_text(&self) -> String {
        format!("{}.{} ({})", self.minimum.0, self.minimum.1, self.why)
    }

    /// Why this lesson cannot run on `release`, or None when it can.
    pub fn too_old(&self, release: &str) -> Option<String> {
        let have = parse_release(release)?;
        (have < self.minimum).then(|| {
            format!(
                "{} needs Linux {}.{} or newer ({}); this kernel is {release}",
                self.name, self.minimum.0, self.minimum.1, self.why
            )
        })
    }
}

/// The lesson named `name`.
pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.name == name)
}

/// (major, minor) of a release such as "6.18.0-1-amd64".
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's release, or the one `LEBPF_ASSUME_KERNEL` names
/// (to see what a lesson says on an older kernel without booting one).
pub fn kernel_release() -> String {
    std::env::var("LEBPF_ASSUME_KERNEL").unwrap_or_else(|_| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

/// Fails in one line when this kernel is older than `lesson` needs.
pub fn require_kernel(lesson: &str) -> Result<()> {
    let Some(l) = find(lesson) else {
        bail!("no lesson '{lesson}' in src/lessons.rs");
    };
    if let Some(why) = l.too_old(&kernel_release()) {
        bail!("{why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_compare() {
        assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_release("5.10.0-32-amd64"), Some((5, 10)));
        assert_eq!(parse_release("7.2"), Some((7, 2)));
        assert_eq!(parse_release("garbage"), None);
        let verifier = find("verifier").unwrap();
        assert!(verifier.too_old("5.18.0").is_none());
        assert!(verifier.too_old("6.1.0-57-amd64").is_none());
        assert_eq!(
            verifier.too_old("5.15.0-91-generic").unwrap(),
            "verifier needs Linux 5.18 or newer (`bpf_xdp_load_bytes` in a fixed case); \
             this kernel is 5.15.0-91-generic"
        );
    }
}
