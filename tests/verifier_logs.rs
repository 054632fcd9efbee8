//! The verifier logs the chapters quote, reproduced: each is built here the
//! way build.rs builds the lessons, with one change that the chapter names
//! (a check removed with -D, or the shape of code it warns about), loaded,
//! refused, and its log compared with the chapter's quote line by line. A
//! quote that no longer matches (a moved line, a changed message) fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use libbpf_rs::{ObjectBuilder, PrintLevel};

use testkit::require_privileges;

/// On a kernel older than verifier's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "verifier",
        std::process::Command::new(env!("CARGO_BIN_EXE_verifier"))
            .args(["packet_bounds"] as [&str; 1]),
    )
}

/// libbpf's messages, the verifier log among them. One test at a time
/// owns it (libbpf's print callback is global).
static LOG: Mutex<String> = Mutex::new(String::new());
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn collect(_level: PrintLevel, msg: String) {
    LOG.lock().unwrap().push_str(&msg);
}

/// Compiles `src` with build.rs's compiler and flags, plus `extra`.
fn compile(src: &str, extra: &[&str]) -> PathBuf {
    let args = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/bpf-clang-args")).unwrap();
    let mut args = args.lines();
    let out = std::env::temp_dir().join(format!(
        "lebpf-verifier-{}-{}.o",
        std::process::id(),
        Path::new(src).file_stem().unwrap().to_string_lossy()
    ));
    let status = Command::new(args.next().unwrap())
        .args(args)
        .args(extra)
        .arg("-c")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(src))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "clang failed on {src}");
    out
}

/// Loads `obj`, which must be refused; returns the verifier's log.
fn refused_log(obj: &Path) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    LOG.lock().unwrap().clear();
    libbpf_rs::set_print(Some((PrintLevel::Debug, collect)));
    let result = ObjectBuilder::default()
        .open_file(obj)
        .and_then(|open| open.load());
    libbpf_rs::set_print(None);
    let _ = std::fs::remove_file(obj);
    assert!(
        result.is_err(),
        "{} loaded; the chapter says it is refused",
        obj.display()
    );
    let log = LOG.lock().unwrap().clone();
    log
}

/// The first fenced block after the first line of `chapter` that contains
/// `marker`.
fn quote(chapter: &str, marker: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(chapter)).unwrap();
    let after = &text[text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {chapter}"))..];
    after
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("```"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("```"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Linux 7 prints a packet pointer's constant offset last, as an immediate
/// (`pkt(r=42,imm=30)`), where earlier kernels print it first
/// (`pkt(off=30,r=42)`): the older spelling, which the chapter quotes.
fn off_first(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("pkt(r=") {
        out.push_str(&rest[..i]);
        let inner_end = rest[i..].find(')').map_or(rest.len(), |e| i + e);
        let inner = &rest[i + 4..inner_end];
        match inner.split_once(",imm=") {
            Some((r, imm)) if !imm.contains(',') => {
                out.push_str(&format!("pkt(off={imm},{r}"));
            }
            _ => out.push_str(&rest[i..inner_end]),
        }
        rest = &rest[inner_end..];
    }
    out.push_str(rest);
    out
}

/// Every quoted line stands in the log, in order. "..." in a quote stands
/// for what the chapter left out, within a line or as a line of its own.
fn assert_quoted(quote: &[String], log: &str) {
    // Kernels before 6.4 print a source line without its place
    // ("; h_proto = eth->h_proto;"), later ones add " @ file:line": compare
    // without it where the log has none.
    let places = log
        .lines()
        .any(|l| l.starts_with("; ") && l.contains(" @ "));
    let mut lines = log.lines();
    for q in quote.iter().filter(|q| q.as_str() != "...") {
        let q = match q.split_once(" @ ") {
            Some((source, _)) if !places && q.starts_with("; ") => source,
            _ => q.as_str(),
        };
        let parts: Vec<&str> = q
            .split("...")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let found = lines.by_ref().any(|l| {
            // Older kernels mark written registers (R3_w=) and print a
            // zero immediate in pointers (imm=0), which 6.4 and later leave
            // out: compare without them.
            // Linux 7 words a packet read past the proven bytes "min value is
            // outside of the allowed memory range"; the chapters quote the
            // older "offset is outside of the packet".
            let l = off_first(&l.replace("_w=", "=").replace(",imm=0", "").replace(
                " min value is outside of the allowed memory range",
                " offset is outside of the packet",
            ));
            let mut rest = l.as_str();
            parts.iter().all(|p| match rest.find(p) {
                Some(i) => {
                    rest = &rest[i + p.len()..];
                    true
                }
                None => false,
            })
        });
        assert!(
            found,
            "the chapter quotes {q:?}, which is not in the log (in order):\n{log}"
        );
    }
}

#[test]
fn packet_offsets_read_the_same_on_every_kernel() {
    assert_eq!(
        off_first("32: (71) r4 = *(u8 *)(r2 +0) ; R2=pkt(r=42,imm=22) R3=pkt(r=42)"),
        "32: (71) r4 = *(u8 *)(r2 +0) ; R2=pkt(off=22,r=42) R3=pkt(r=42)"
    );
    assert_eq!(off_first("R1=pkt(off=22,r=42)"), "R1=pkt(off=22,r=42)");
}

#[test]
fn tc_classifier_without_the_ethernet_check() {
    require_privileges!("tc_classifier_without_the_ethernet_check");
    if refused("tc_classifier_without_the_ethernet_check") {
        return;
    }
    let log = refused_log(&compile("bpf/tc_classifier.bpf.c", &["-DOMIT_P1"]));
    assert_quoted(
        &quote("docs/01-tc_classifier.md", "log ends like this"),
        &log,
    );
}

#[test]
fn xdp_firewall_split_branches() {
    require_privileges!("xdp_firewall_split_branches");
    if refused("xdp_firewall_split_branches") {
        return;
    }
    let log = refused_log(&compile("tests/verifier/split_branches.bpf.c", &[]));
    assert_quoted(
        &quote("docs/02-xdp_firewall.md", "split_branches.bpf.c"),
        &log,
    );
}
