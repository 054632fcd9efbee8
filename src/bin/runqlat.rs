//! runqlat: scheduler run queue latency as a log2 histogram, aggregated in
//! the kernel and printed every interval, bcc-style.
//!
//! The kernel side is bpf/runqlat.bpf.c; the chapter is docs/04-runqlat.md.

use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::runqlat::RunqlatSkelBuilder;
use learning_ebpf_rs::{cli, errors, hist, signals, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    runqlat              # one histogram when you hit Ctrl-C
    runqlat 1 10         # every second, ten times
    runqlat -m 5         # milliseconds, every 5 seconds
    runqlat -p 185 1     # only process 185
    runqlat --tid 4321   # only thread 4321";

/// Summarize how long runnable threads wait for a CPU, as a log2 histogram.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Only threads of this process
    #[arg(short, long, value_name = "PID")]
    pid: Option<u32>,
    /// Only this thread
    #[arg(long, value_name = "TID")]
    tid: Option<u32>,
    /// Milliseconds instead of microseconds
    #[arg(short, long)]
    milliseconds: bool,
    /// Print a timestamp before each histogram
    #[arg(short = 'T', long)]
    timestamp: bool,
    #[command(flatten)]
    report: cli::ReportArgs,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("runqlat")?;
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf, Cap::Perfmon])?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open and set the filters before load.
    let mut object = MaybeUninit::uninit();
    let mut open = RunqlatSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
    rodata.targ_tgid = args.pid.unwrap_or(0);
    rodata.targ_tid = args.tid.unwrap_or(0);
    rodata.targ_ms = args.milliseconds;

    // Load and attach the three tp_btf programs.
    let mut skel = open.load().map_err(errors::load_error)?;
    skel.attach()
        .context("attaching to the scheduler tracepoints")?;
    let unit = if args.milliseconds { "msecs" } else { "usecs" };
    eprintln!("Tracing run queue latency... Hit Ctrl-C to end.");
    // ANCHOR_END: spine

    // Each histogram is the difference between two readings of the
    // counters, which the kernel only ever increments.
    let style = hist::Style::new(unit).with_timestamps(args.timestamp);
    hist::report_deltas(&skel.maps.hist, &stop, &args.report, &style)?;
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
