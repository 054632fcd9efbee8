//! Sample outputs in the chapters, checked against what the programs print.
//!
//! A chapter marks a sample with a comment on the line before its code
//! fence: `<!-- output: NAME -->`. A test that produces that output calls
//! [`assert_sample`] with the chapter, the name and what the program printed.
//! Only what varies from run to run may differ:
//!
//! - every number (counts, times, pids, addresses in hex, program tags)
//!   matches any number;
//! - runs of spaces match any run of spaces (columns widen with the numbers);
//! - the bar of a histogram row (`|****   |`) matches any bar, and rows that
//!   read the same once numbers and bars are ignored match any count of
//!   such rows (a histogram has as many rows as its data needs);
//! - a sample line `...` stands for any lines the chapter leaves out;
//! - a line starting with `$ ` is a command, not output: the sample shows
//!   the command to type, a demo echoes the one it ran, with its own paths.
//!
//! The sample is an excerpt: it may start and end anywhere in the output.

use std::path::Path;

/// The sample named `name` in `chapter` (a path from the repository's root,
/// such as `docs/01-tc_classifier.md`).
pub fn sample(chapter: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(chapter);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let marker = format!("<!-- output: {name} -->");
    let at = text
        .find(&marker)
        .unwrap_or_else(|| panic!("{chapter} has no {marker}"));
    let rest = &text[at + marker.len()..];
    let fence = rest
        .find("```")
        .unwrap_or_else(|| panic!("{chapter}: no code block after {marker}"));
    let body = &rest[fence..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body
        .find("\n```")
        .unwrap_or_else(|| panic!("{chapter}: the block after {marker} is not closed"));
    body[..end].to_string()
}

/// One line as the comparison sees it.
pub fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '0' && chars.peek() == Some(&'x') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                chars.next();
            }
            out.push_str("0x#");
        } else if c.is_ascii_hexdigit() && hex_word(c, chars.clone()) {
            // A hash or tag written as a long hex word: a number too.
            while chars.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                chars.next();
            }
            out.push('#');
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
            }
            // A decimal fraction is part of the number: ping prints "56%"
            // one run and "55.8%" the next.
            let mut ahead = chars.clone();
            if ahead.next() == Some('.') && ahead.next().is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                    chars.next();
                }
            }
            out.push('#');
        } else if c.is_whitespace() {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            out.push(' ');
        } else if c == '|' && bar_follows(chars.clone()) {
            while chars.next() != Some('|') {}
            out.push_str("|bar|");
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `first` and the word that follows it are a hex number of 8
/// digits or more with at least one decimal digit (a program tag, a hash),
/// and not, say, a word such as `deadbeef` in prose.
fn hex_word(first: char, rest: impl Iterator<Item = char>) -> bool {
    let word: String = std::iter::once(first)
        .chain(rest.take_while(|c| c.is_ascii_alphanumeric()))
        .collect();
    word.len() >= 8
        && word.chars().all(|c| c.is_ascii_hexdigit())
        && word.chars().any(|c| c.is_ascii_digit())
}

/// Whether the characters after a `|` are a histogram bar: stars and
/// spaces up to the closing `|`.
fn bar_follows(mut rest: impl Iterator<Item = char>) -> bool {
    let mut any = false;
    loop {
        match rest.next() {
            Some('|') => return any,
            Some('*' | ' ') => any = true,
            _ => return false,
        }
    }
}

/// Normalized lines, with each run of identical lines kept once.
fn lines_of(text: &str, skip_commands: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if skip_commands && line.starts_with("$ ") {
            continue;
        }
        let norm = normalize(line);
        if out.last() != Some(&norm) || norm == "..." {
            out.push(norm);
        }
    }
    out
}

/// Whether `sample` (with `...` gaps) matches `actual` from `at` on.
fn matches_from(sample: &[String], actual: &[String], at: usize) -> bool {
    match sample.split_first() {
        None => true,
        Some((first, rest)) if first == "..." => {
            (at..=actual.len()).any(|skip| matches_from(rest, actual, skip))
        }
        Some((first, rest)) => actual.get(at) == Some(first) && matches_from(rest, actual, at + 1),
    }
}

/// Asserts that the chapter's sample `name` is what `actual` shows, up to
/// the parts that vary (see the module's comment).
pub fn assert_sample(chapter: &str, name: &str, actual: &str) {
    assert_sample_where(chapter, name, actual, |_| true);
}

/// [`assert_sample`] on the lines `keep` accepts, of the sample and of
/// `actual` both: for a kernel that lacks what a line of the sample shows
/// (the chapter says which, and the test prints it).
pub fn assert_sample_where(chapter: &str, name: &str, actual: &str, keep: impl Fn(&str) -> bool) {
    let filter = |text: &str| {
        text.lines()
            .filter(|l| keep(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let sample_text = filter(&sample(chapter, name));
    let sample = lines_of(&sample_text, true);
    let got = lines_of(&filter(actual), true);
    let found = (0..got.len().max(1)).any(|start| matches_from(&sample, &got, start));
    assert!(
        found,
        "{chapter}'s sample {name:?} is not what the program printed.\n\
         --- the sample, as compared ---\n{}\n--- the output, as compared ---\n{}",
        sample.join("\n"),
        got.join("\n")
    );
}

/// What a terminal shows for a lesson that says one line on stderr as it
/// starts, prints its report on stdout, and says the rest on stderr as it
/// ends: the order in which the chapters show them.
pub fn as_terminal(stdout: &[String], stderr: &[String]) -> String {
    let (first, rest) = stderr
        .split_first()
        .map_or((None, &[][..]), |(f, r)| (Some(f), r));
    first
        .into_iter()
        .chain(stdout)
        .chain(rest)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with the directory of the running test's binaries written as the
/// chapters write it, `target/debug`: a checkout's target directory may be
/// anywhere.
pub fn with_target_debug(text: &str, some_binary: &str) -> String {
    let dir = Path::new(some_binary)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    text.replace(&dir, "target/debug")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_spaces_and_bars_vary() {
        assert_eq!(normalize("ingress  udp    10   480"), "ingress udp # #");
        assert_eq!(normalize("04:11:12.547"), "#:#:#");
        assert_eq!(normalize("56% packet loss"), normalize("55.8% packet loss"));
        assert_eq!(normalize("atoi(0xc, 0x7ffd1)"), "atoi(0x#, 0x#)");
        assert_eq!(normalize("tag 505120ca20527525 jited"), "tag # jited");
        assert_eq!(normalize("name tc_ingress"), "name tc_ingress");
        assert_eq!(
            normalize("  8 -> 15 : 3  |****      |"),
            normalize("16 -> 31 : 120 |**********|")
        );
        assert_ne!(normalize("a | b | c"), normalize("a |bar| c"));
    }

    #[test]
    fn gaps_commands_and_repeated_rows() {
        let sample = lines_of("$ run it\nhead\n...\n1 -> 2 : 3 |*|\nend", true);
        let actual = lines_of(
            "noise\nhead\nx\ny\n1 -> 2 : 3 |*|\n4 -> 8 : 0 | |\n8 -> 16 : 1 |**|\nend\nmore",
            false,
        );
        assert!((0..actual.len()).any(|s| matches_from(&sample, &actual, s)));
        let wrong = lines_of("head\nend", false);
        assert!(!(0..wrong.len()).any(|s| matches_from(&sample, &wrong, s)));
    }
}
