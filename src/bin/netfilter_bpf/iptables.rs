//! The iptables rules that run the pinned match program: one in INPUT for
//! IPv4 (iptables) and one for IPv6 (ip6tables), at the top of the chain,
//! each with a comment naming this process. They are found by that comment
//! to read their counters and to remove them, so a rule this binary did not
//! add is never touched; a rule whose process is gone (killed with SIGKILL)
//! is removed by the next run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// iptables for IPv4 rules, ip6tables for IPv6.
const TOOLS: [&str; 2] = ["iptables", "ip6tables"];
/// The comment's prefix; the pid of the process that added the rule follows.
const TAG: &str = "netfilter_bpf:";

/// Runs `tool ARGS`, waiting for the xtables lock; its stdout, or its
/// first line of complaint.
fn xtables(tool: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .with_context(|| {
            format!("{tool} not found: run `make setup` (Debian's package iptables)")
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("").trim().to_string();
    if stderr.contains("bpf") && !stderr.contains("failed to get bpf object") {
        bail!(
            "{tool} cannot use BPF matches here ({first}): the kernel needs xt_bpf \
             (CONFIG_NETFILTER_XT_MATCH_BPF; `modprobe xt_bpf`)"
        );
    }
    bail!("{tool} {}: {first}", args.join(" "))
}

/// One of our rules as `-L INPUT -v -x -n --line-numbers` shows it.
struct Listed {
    number: u32,
    packets: u64,
    bytes: u64,
    pid: u32,
}

/// Our rules in `tool`'s INPUT chain (those with our comment).
fn listed(tool: &str) -> Result<Vec<Listed>> {
    let text = xtables(tool, &["-L", "INPUT", "-v", "-x", "-n", "--line-numbers"])?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let comment = line.split("/* ").nth(1)?.split(" */").next()?;
            let pid = comment.strip_prefix(TAG)?.parse().ok()?;
            let mut f = line.split_whitespace();
            Some(Listed {
                number: f.next()?.parse().ok()?,
                packets: f.next()?.parse().ok()?,
                bytes: f.next()?.parse().ok()?,
                pid,
            })
        })
        .collect())
}

/// Deletes `tool`'s rules of process `pid`, last first (so the numbers of
/// the others stay put). Returns how many.
fn delete_rules_of(tool: &str, pid: impl Fn(u32) -> bool) -> Result<usize> {
    let mut numbers: Vec<u32> = listed(tool)?
        .iter()
        .filter(|r| pid(r.pid))
        .map(|r| r.number)
        .collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    for n in &numbers {
        xtables(tool, &["-D", "INPUT", &n.to_string()])?;
    }
    Ok(numbers.len())
}

/// Removes the rules of earlier runs that were killed before they could.
pub fn remove_stale() -> Result<()> {
    let gone = |pid: u32| !Path::new(&format!("/proc/{pid}")).exists();
    for tool in TOOLS {
        let n = delete_rules_of(tool, gone)?;
        if n > 0 {
            eprintln!("note: removed {n} {tool} rule(s) left by a netfilter_bpf that was killed");
        }
    }
    Ok(())
}

/// This process's rules; removed on drop.
pub struct Rules {
    added: Vec<&'static str>,
}

// ANCHOR: add
impl Rules {
    /// `-I INPUT -m bpf --object-pinned PROG -m comment --comment
    /// netfilter_bpf:PID -j DROP` for IPv4 and IPv6: the match runs the
    /// pinned program, DROP acts on its "matches".
    pub fn add(prog_pin: &Path) -> Result<Rules> {
        let pin = prog_pin.to_string_lossy();
        let comment = format!("{TAG}{}", std::process::id());
        let mut rules = Rules { added: Vec::new() };
        for tool in TOOLS {
            xtables(
                tool,
                &[
                    "-I",
                    "INPUT",
                    "-m",
                    "bpf",
                    "--object-pinned",
                    &pin,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                    "-j",
                    "DROP",
                ],
            )?;
            rules.added.push(tool);
        }
        Ok(rules)
    }
    // ANCHOR_END: add

    /// Packets and bytes each rule dropped, by iptables' own counters.
    pub fn counters(&self) -> Result<Vec<(&'static str, u64, u64)>> {
        let me = std::process::id();
        let mut out = Vec::new();
        for tool in &self.added {
            for r in listed(tool)?.into_iter().filter(|r| r.pid == me) {
                out.push((*tool, r.packets, r.bytes));
            }
        }
        Ok(out)
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        let me = std::process::id();
        for tool in &self.added {
            if let Err(e) = delete_rules_of(tool, |pid| pid == me) {
                eprintln!("warning: removing our {tool} rule: {e:#}");
            }
        }
    }
}
