//! uprobe: trace calls of a function in a user-space program or library,
//! with its arguments (uprobe) and its return value (uretprobe).
//!
//! The kernel side is bpf/uprobe.bpf.c; the chapter is docs/05-uprobe.md.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{RingBufferBuilder, UprobeOpts};
use serde::Serialize;

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::uprobe::{types, UprobeSkelBuilder};
use learning_ebpf_rs::trace::{cstr, EventClock, Events};
use learning_ebpf_rs::{cli, errors, maps, report, signals, skel};

/// How many integer arguments the probe reports (UPROBE_ARGS in uprobe.h).
const ARGS: usize = types::uprobe_limits::UPROBE_ARGS.0 as usize;

const EXAMPLES: &str = "\
EXAMPLES:
    uprobe -b target/debug/uprobe_target -f lebpf_add      # the project's target
    uprobe -b libc.so.6 -f atoi --string-arg 0 --ret int  # libc's atoi, which returns an int
    uprobe -b libc.so.6 -f getenv --string-arg 0 -p 1234   # one process's getenv calls";

/// Trace a user-space function's arguments and return value.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Program or library holding the function (a path, or a library name such as libc.so.6)
    #[arg(short, long, value_name = "BINARY")]
    binary: String,
    /// Function to trace, by symbol name
    #[arg(short, long, value_name = "NAME")]
    function: String,
    /// Only this process (default: every process that runs BINARY)
    #[arg(short, long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pid: Option<u32>,
    /// Also read this argument (0, 1 or 2) as a C string
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..ARGS as i64))]
    string_arg: Option<u32>,
    /// Do not attach the uretprobe (no return values)
    #[arg(long)]
    no_return: bool,
    /// The function's return type: long (the whole 64-bit register) or int
    /// (its low 32 bits, all that a C int return value holds)
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = RetType::Long)]
    ret: RetType,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS")]
    duration: Option<u64>,
    /// One JSON object per event
    #[arg(long)]
    json: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

/// How to read the return value register.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RetType {
    Long,
    Int,
}

impl RetType {
    /// The value a caller of a function with this return type sees.
    fn value(self, register: u64) -> i64 {
        match self {
            RetType::Long => register as i64,
            RetType::Int => i64::from(register as u32 as i32),
        }
    }

    /// The bits of the register that make that value.
    fn bits(self, register: u64) -> u64 {
        match self {
            RetType::Long => register,
            RetType::Int => u64::from(register as u32),
        }
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    time: String,
    ts_ns: u64,
    event: &'static str,
    pid: u32,
    tid: u32,
    comm: String,
    function: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<[u64; ARGS]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ret: Option<i64>,
}

struct Printer<'a> {
    json: bool,
    ret_type: RetType,
    function: &'a str,
    clock: EventClock,
    events: u64,
}

impl Printer<'_> {
    fn event(&mut self, data: &[u8]) -> Result<()> {
        let e: types::uprobe_event = maps::from_bytes(data)?;
        self.events += 1;
        let entry = e.kind == types::uprobe_kind::UPROBE_ENTRY.0;
        let string = (e.str_arg < ARGS as u32).then(|| cstr(&e.str));
        let out = EventOut {
            time: self.clock.format(e.ts_ns),
            ts_ns: e.ts_ns,
            event: if entry { "entry" } else { "return" },
            pid: e.pid,
            tid: e.tid,
            comm: cstr(&e.comm),
            function: self.function,
            args: entry.then_some(e.args),
            string,
            ret: (!entry).then(|| self.ret_type.value(e.ret)),
        };
        if self.json {
            report::print_json(&out)?;
            return Ok(());
        }
        let call = if entry {
            let args: Vec<String> = e
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| match &out.string {
                    Some(s) if i as u32 == e.str_arg => format!("{s:?}"),
                    _ => format!("{a:#x}"),
                })
                .collect();
            format!("{}({})", self.function, args.join(", "))
        } else {
            let (value, bits) = (self.ret_type.value(e.ret), self.ret_type.bits(e.ret));
            format!("{} returned {value} ({bits:#x})", self.function)
        };
        println!(
            "{:<12} {:<7} {:<7} {:<16} {call}",
            out.time, out.pid, out.tid, out.comm
        );
        Ok(())
    }
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("uprobe")?;
    cli::init_libbpf_log(args.verbose);
    // A path must exist; a bare library name is looked up by libbpf.
    if args.binary.contains('/') && !Path::new(&args.binary).exists() {
        bail!("{} does not exist", args.binary);
    }
    if let Some(pid) = args.pid {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("no process with pid {pid}");
        }
    }
    privileges::require(&[Cap::Bpf, Cap::Perfmon])?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open, choose the string argument, load.
    let mut object = MaybeUninit::uninit();
    let mut open = UprobeSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    if let Some(n) = args.string_arg {
        skel::rodata(open.maps.rodata_data.as_deref_mut())?.str_arg = n;
    }
    skel::rodata(open.maps.rodata_data.as_deref_mut())?.targ_tgid = args.pid.unwrap_or(0);
    let skel = open.load().map_err(errors::load_error)?;

    // Attach by symbol name: libbpf finds the function's offset in the
    // binary's ELF symbols. pid -1 means every process.
    let pid = args.pid.map_or(-1, |p| p as i32);
    let attach = |prog: &libbpf_rs::ProgramMut, retprobe: bool| {
        let opts = UprobeOpts {
            func_name: Some(args.function.clone()),
            retprobe,
            ..Default::default()
        };
        prog.attach_uprobe_with_opts(pid, &args.binary, 0, opts)
            .map_err(|e| match errors::os_error(&e) {
                Some(libc::ENOENT) => anyhow!(
                    "function '{}' not found in {} (list its symbols with `nm -D` or `nm`)",
                    args.function,
                    args.binary
                ),
                _ => anyhow!("attaching to {} in {}: {e}", args.function, args.binary),
            })
    };
    let _entry = attach(&skel.progs.handle_entry, false)?;
    let _return = if args.no_return {
        None
    } else {
        Some(attach(&skel.progs.handle_return, true)?)
    };
    eprintln!(
        "Tracing {} in {}{}. Hit Ctrl-C to end.",
        args.function,
        args.binary,
        args.pid.map_or(String::new(), |p| format!(" (pid {p})"))
    );
    if !args.json {
        println!(
            "{:<12} {:<7} {:<7} {:<16} CALL",
            "TIME", "PID", "TID", "COMM"
        );
    }

    let printer = RefCell::new(Printer {
        json: args.json,
        ret_type: args.ret,
        function: &args.function,
        clock: EventClock::new(),
        events: 0,
    });
    let mut builder = RingBufferBuilder::new();
    builder.add(&skel.maps.events, |data| {
        match printer.borrow_mut().event(data) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: bad event: {e:#}");
                -1
            }
        }
    })?;
    let events = Events::Ring(builder.build().context("setting up the ring buffer")?);
    // ANCHOR_END: spine
    // Poll until Ctrl-C or -d, then drain what is left.
    events.until_stopped(&stop, args.duration, || {})?;
    let lost = maps::read_global(&skel::bss(skel.maps.bss_data.as_deref())?.dropped);
    eprintln!("{} events, {lost} lost.", printer.borrow().events);
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
