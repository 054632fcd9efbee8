//! The README's map of the repository ("How the repository fits together")
//! against the tree: every path it names exists, and every file in the
//! repository is covered by one of its lines. A file added in a place the map
//! does not describe, or a line left behind by a move, fails here.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Top-level files every Rust project has, which the map does not list.
const OBVIOUS: [&str; 3] = ["Cargo.toml", "Cargo.lock", "README.md"];
/// Generated or local directories, not part of the repository.
const SKIPPED: [&str; 3] = [".git", "target", "build"];

/// The path column of the map: `(pattern, line)` for each path, where a
/// pattern may hold `*`, `<lesson>`, `<arch>` and `NN`, and ends in `/` for a
/// whole directory. A name without a directory on a line that lists several
/// shares the directory of the line's first path.
fn map_patterns() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("## How the repository fits together")
        .expect("the README's map section");
    let block = readme[start..]
        .split("```")
        .nth(1)
        .expect("the map's code block");
    let mut out = Vec::new();
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
    {
        // The path column: paths separated by ", ", then the description.
        let mut column = Vec::new();
        for token in line.split_whitespace() {
            let path = token.strip_suffix(',');
            column.push(path.unwrap_or(token));
            if path.is_none() {
                break;
            }
        }
        let mut dir = String::new();
        for (i, path) in column.into_iter().enumerate() {
            let path = if i > 0 && !path.contains('/') {
                format!("{dir}{path}")
            } else {
                path.to_string()
            };
            if i == 0 {
                dir = path
                    .rfind('/')
                    .map_or(String::new(), |at| path[..=at].to_string());
            }
            out.push((path, line.to_string()));
        }
    }
    assert!(out.len() > 10, "the map has too few lines: {out:?}");
    out
}

/// Whether `file` (relative, with `/`) is matched by `pattern`.
fn matches(pattern: &str, file: &str) -> bool {
    /// `*`, `<lesson>` and `<arch>` stand for one or more characters, `NN`
    /// for two digits; the rest of a segment is literal.
    fn segment(pat: &str, name: &str) -> bool {
        for wild in ["*", "<lesson>", "<arch>"] {
            if let Some(rest) = pat.strip_prefix(wild) {
                return (1..=name.len()).any(|n| segment(rest, &name[n..]));
            }
        }
        if let Some(rest) = pat.strip_prefix("NN") {
            let digits = name.bytes().take(2).filter(u8::is_ascii_digit).count();
            return digits == 2 && segment(rest, &name[2..]);
        }
        match (pat.chars().next(), name.chars().next()) {
            (None, None) => true,
            (Some(p), Some(n)) if p == n => segment(&pat[p.len_utf8()..], &name[n.len_utf8()..]),
            _ => false,
        }
    }
    let (pat, dir_only) = match pattern.strip_suffix('/') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let pats: Vec<&str> = pat.split('/').collect();
    let names: Vec<&str> = file.split('/').collect();
    if dir_only {
        names.len() > pats.len() && pats.iter().zip(&names).all(|(p, n)| segment(p, n))
    } else {
        names.len() == pats.len() && pats.iter().zip(&names).all(|(p, n)| segment(p, n))
    }
}

fn files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        let rel = path
            .strip_prefix(ROOT)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if SKIPPED.contains(&rel.as_str()) {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(rel);
        }
    }
}

#[test]
fn the_map_names_only_what_exists() {
    let mut all = Vec::new();
    files(Path::new(ROOT), &mut all);
    for (pattern, line) in map_patterns() {
        assert!(
            all.iter().any(|f| matches(&pattern, f)),
            "the README's map names {pattern:?}, which matches no file (line: {line:?})"
        );
    }
}

#[test]
fn every_file_is_on_the_map() {
    let patterns = map_patterns();
    let mut all = Vec::new();
    files(Path::new(ROOT), &mut all);
    let missing: Vec<&String> = all
        .iter()
        .filter(|f| !(OBVIOUS.contains(&f.as_str()) || (f.starts_with('.') && !f.contains('/'))))
        .filter(|f| !patterns.iter().any(|(p, _)| matches(p, f)))
        .collect();
    assert!(
        missing.is_empty(),
        "files the README's map does not cover (add a line to \"How the repository fits together\"): {missing:?}"
    );
}

#[test]
fn patterns_match_as_the_map_means() {
    assert!(matches(
        "tests/<lesson>/",
        "tests/xdp_firewall/model/frames.rs"
    ));
    assert!(matches("docs/NN-<lesson>.md", "docs/01-tc_classifier.md"));
    assert!(!matches("docs/NN-<lesson>.md", "docs/benchmarks.md"));
    assert!(matches("bpf/<lesson>.bpf.c", "bpf/runqlat.bpf.c"));
    assert!(!matches("bpf/<lesson>.bpf.c", "bpf/lib/parsing.h"));
    assert!(matches(
        "tests/verifier/*.bpf.c",
        "tests/verifier/split_branches.bpf.c"
    ));
    assert!(!matches("src/*.rs", "src/bin/fentry.rs"));
}
