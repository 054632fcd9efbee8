//! verifier: classic verifier rejections, one case at a time. Each case is
//! a pair of programs in bpf/verifier.bpf.c, `<case>_bad` and `<case>_ok`;
//! `verifier CASE` loads the bad one and prints the end of the verifier's
//! log with the lines that matter marked and explained; `--fixed` loads the
//! good one and says what the verifier did to accept it.
//!
//! The chapter is docs/15-verifier.md.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::PrintLevel;
use serde::Serialize;

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::verifier::VerifierSkelBuilder;
use learning_ebpf_rs::{cli, report};

const EXAMPLES: &str = "\
EXAMPLES:
    verifier --list              # the cases
    verifier packet_bounds       # load the refused program, read its log
    verifier packet_bounds --fixed
    verifier unbounded_loop --full   # the whole log (long)";

/// Load a program the verifier refuses, and read why.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// The case to load (see --list)
    #[arg(required_unless_present = "list")]
    case: Option<String>,
    /// Load the fixed program instead of the refused one
    #[arg(long)]
    fixed: bool,
    /// List the cases
    #[arg(long)]
    list: bool,
    /// Print the whole log, not only its end
    #[arg(long)]
    full: bool,
    /// One JSON object instead of text
    #[arg(long)]
    json: bool,
}

// ANCHOR: cases
/// One classic rejection.
struct Case {
    name: &'static str,
    /// The two programs in bpf/verifier.bpf.c.
    bad: &'static str,
    ok: &'static str,
    what: &'static str,
    /// Log lines to mark: a part of the line (any one of the spellings
    /// different kernels use) and what it says, in one sentence.
    marks: &'static [(&'static [&'static str], &'static str)],
    fix: &'static str,
}

const CASES: [Case; 9] = [
    Case {
        name: "packet_bounds",
        bad: "packet_bounds_bad",
        ok: "packet_bounds_ok",
        what: "packet access without a bounds check",
        marks: &[
            (
                &["invalid access to packet"],
                "the read (off = its offset, size = its length) goes past r, the bytes proved to be before data_end: none yet",
            ),
        ],
        fix: "compare data + the bytes to read with data_end first, and return if they do not fit",
    },
    Case {
        name: "map_value_null",
        bad: "map_value_null_bad",
        ok: "map_value_null_ok",
        what: "a map value used without a NULL check",
        marks: &[(
            &["invalid mem access 'map_value_or_null'"],
            "R0 holds what bpf_map_lookup_elem returned: a map value or NULL, and it may not be dereferenced before the program tells which",
        )],
        fix: "test the pointer (if (!value) ...) before using it",
    },
    Case {
        name: "unbounded_loop",
        bad: "unbounded_loop_bad",
        ok: "unbounded_loop_ok",
        what: "a loop the verifier cannot prove ends",
        marks: &[(
            &["infinite loop detected"],
            "the verifier came back to the loop's test in exactly the state of the pass before, so the loop can never end",
        )],
        fix: "make the loop progress (i++), and give it a constant bound as well (i < n && i < 64), or use bpf_loop()",
    },
    Case {
        name: "ringbuf_leak",
        bad: "ringbuf_leak_bad",
        ok: "ringbuf_leak_ok",
        what: "a ring buffer reservation neither submitted nor discarded",
        marks: &[(
            &["Unreleased reference"],
            "the reservation made at alloc_insn is still held when the program exits on one path",
        )],
        fix: "submit or discard the reservation on every path out of the program",
    },
    Case {
        name: "helper_not_allowed",
        bad: "helper_bad",
        ok: "helper_ok",
        what: "a helper the program type may not call",
        marks: &[(
            &["unknown func bpf_skb_load_bytes", "cannot use helper bpf_skb_load_bytes"],
            "bpf_skb_load_bytes works on a socket buffer, and is not among the helpers an XDP program may call",
        )],
        fix: "use a helper the type allows (bpftool feature probe lists them), or move the work to a program type that has it",
    },
    Case {
        name: "ctx_arith",
        bad: "ctx_arith_bad",
        ok: "ctx_arith_ok",
        what: "pointer arithmetic on the context",
        marks: &[(
            &["variable ctx access", "modified ctx ptr", "pointer arithmetic on ctx"],
            "the context pointer was moved by an amount the verifier cannot know, so it cannot tell which field is read",
        )],
        fix: "read context fields by name (constant offsets), then compute with the values",
    },
    Case {
        name: "scalar_as_pointer",
        bad: "scalar_ptr_bad",
        ok: "scalar_ptr_ok",
        what: "a number used as a pointer",
        marks: &[(
            &["invalid mem access 'scalar'", "invalid mem access 'inv'"],
            "the register holds a number (a scalar), and a program may read memory only through pointers the verifier gave it",
        )],
        fix: "read through a pointer the verifier knows (a map value, the stack, the context, the packet), or with bpf_probe_read_kernel() where the type allows it",
    },
    Case {
        name: "spin_lock_call",
        bad: "spin_lock_bad",
        ok: "spin_lock_ok",
        what: "a helper called while a bpf_spin_lock is held",
        marks: &[(
            &["function calls are not allowed while holding a lock"],
            "between bpf_spin_lock and bpf_spin_unlock the program called a helper",
        )],
        fix: "call the helper before taking the lock, and keep only plain loads and stores inside",
    },
    Case {
        name: "return_value",
        bad: "return_value_bad",
        ok: "return_value_ok",
        what: "a return value outside the program type's range",
        marks: &[(
            &["At program exit the register R0"],
            "a cgroup_skb ingress program must return 0 or 1, and R0 can be 2 here",
        )],
        fix: "return only the values the program type defines",
    },
];
// ANCHOR_END: cases

/// libbpf's messages while loading, the verifier log among them (libbpf
/// prints it when a load fails).
static LIBBPF_LOG: Mutex<String> = Mutex::new(String::new());

fn collect(_level: PrintLevel, msg: String) {
    LIBBPF_LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_str(&msg);
}

/// What loading one program gave.
#[derive(Serialize)]
struct Outcome {
    case: &'static str,
    program: &'static str,
    loaded: bool,
    /// The verifier's log when it refused the program.
    log: Vec<String>,
    /// Instructions the verifier processed to accept it (5.16+).
    verified_insns: Option<u32>,
}

/// The instructions the verifier processed to accept the program `prog`
/// (`verified_insns` in its info, 5.16 and later).
fn verified_insns(prog: BorrowedFd<'_>) -> Option<u32> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: the kernel writes at most `len` bytes into `info`.
    let rc = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            prog.as_raw_fd(),
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.verified_insns > 0).then_some(info.verified_insns)
}

// ANCHOR: load_one
/// Loads only the program `name` of the object (the others are switched
/// off before load, so that their verdicts do not matter).
fn load_one(case: &'static Case, name: &'static str) -> Result<Outcome> {
    let mut object = MaybeUninit::uninit();
    let mut open = VerifierSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    for mut prog in open.open_object_mut().progs_mut() {
        let wanted = prog.name() == name;
        prog.set_autoload(wanted);
    }
    LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
    libbpf_rs::set_print(Some((PrintLevel::Warn, collect)));
    let loaded = open.load();
    libbpf_rs::set_print(None);
    let text = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let log: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("-- BEGIN PROG LOAD LOG --"))
        .skip(1)
        .take_while(|l| !l.contains("-- END PROG LOAD LOG --"))
        .map(str::to_string)
        .collect();
    let verified_insns = match &loaded {
        Ok(skel) => {
            let prog = skel
                .object()
                .progs()
                .find(|p| p.name() == name)
                .context("the loaded program is missing")?;
            verified_insns(prog.as_fd())
        }
        Err(_) => None,
    };
    if let Err(e) = &loaded {
        if log.is_empty() {
            bail!("loading {name} failed with no verifier log: {e}");
        }
    }
    Ok(Outcome {
        case: case.name,
        program: name,
        loaded: loaded.is_ok(),
        log,
        verified_insns,
    })
}
// ANCHOR_END: load_one

/// Lines of the log to print: its end, from the source line before the
/// last instruction the verifier reached (or everything with --full).
fn tail(log: &[String], full: bool) -> &[String] {
    if full {
        return log;
    }
    let end = log
        .iter()
        .rposition(|l| l.starts_with("processed "))
        .unwrap_or(log.len());
    let insn = log[..end]
        .iter()
        .rposition(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .unwrap_or(0);
    let source = log[..insn]
        .iter()
        .rposition(|l| l.starts_with("; "))
        .unwrap_or(insn);
    &log[source.min(insn)..]
}

fn print_case(case: &Case, out: &Outcome, full: bool) {
    if out.loaded {
        print!(
            "{}: loaded {}; the verifier accepted it",
            case.name, out.program
        );
        match out.verified_insns {
            Some(n) => println!(" after processing {n} instructions."),
            None => println!("."),
        }
        return;
    }
    println!(
        "{}: {}. Loading {}: the verifier refused it.",
        case.name, case.what, out.program
    );
    println!("The end of its log (read it from the bottom up):\n");
    for line in tail(&out.log, full) {
        println!("  {line}");
        for (needles, why) in case.marks {
            if needles.iter().any(|n| line.contains(n)) {
                println!("  ^^^ {why}");
            }
        }
    }
    println!("\nFix: {}.", case.fix);
    println!("See {} (verifier {} --fixed).", case.ok, case.name);
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("verifier")?;
    if args.list {
        for case in &CASES {
            println!("{:<20} {}", case.name, case.what);
        }
        return Ok(());
    }
    let name = args.case.as_deref().unwrap_or_default();
    let Some(case) = CASES.iter().find(|c| c.name == name) else {
        let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        bail!("no case {name:?}; the cases are: {}", names.join(", "));
    };
    privileges::require(&[Cap::Bpf])?;
    let program = if args.fixed { case.ok } else { case.bad };
    let out = load_one(case, program)?;
    if args.json {
        report::print_json(&out)?;
    } else {
        print_case(case, &out, args.full);
    }
    // A refused fix, or an accepted bad program, is not what the case says.
    if out.loaded != args.fixed {
        bail!(
            "{program} was {}, which this case does not expect on this kernel",
            if out.loaded { "accepted" } else { "refused" }
        );
    }
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
