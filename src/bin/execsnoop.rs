//! execsnoop: every exec() and process exit as it happens, bcc-style,
//! delivered through a BPF ring buffer (default) or a perf buffer
//! (`--perf-buffer`), with lost events counted and reported.
//!
//! The kernel side is bpf/execsnoop.bpf.c; the chapter is
//! docs/03-execsnoop.md.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{PerfBufferBuilder, RingBufferBuilder};
use serde::Serialize;

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::execsnoop::{types, ExecsnoopSkelBuilder};
use learning_ebpf_rs::trace::{cstr, require_tracefs, EventClock, Events};
use learning_ebpf_rs::{cli, errors, maps, report, signals, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    execsnoop                    # every exec and exit on the machine
    execsnoop -p 1234            # process 1234 and its children
    execsnoop -d 10 --json       # ten seconds, one JSON object per event
    execsnoop --perf-buffer      # the same events through a perf buffer";

/// Trace exec() and process exit through a BPF ring buffer or perf buffer.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Only this process and its children
    #[arg(short, long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pid: Option<u32>,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS")]
    duration: Option<u64>,
    /// One JSON object per event
    #[arg(long)]
    json: bool,
    /// Deliver events through a perf buffer (per CPU) instead of the ring buffer
    #[arg(long)]
    perf_buffer: bool,
    /// Buffer size in KiB: the ring buffer's, or each CPU's perf buffer (a power of two, >= 4)
    #[arg(long, value_name = "KIB", default_value_t = 256, value_parser = parse_kib)]
    buffer_kib: u32,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

fn parse_kib(s: &str) -> Result<u32, String> {
    let kib: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if kib < 4 || !kib.is_power_of_two() || kib > 1 << 20 {
        return Err(format!("{kib} must be a power of two from 4 to 1048576"));
    }
    Ok(kib)
}

#[derive(Serialize)]
struct EventOut {
    time: String,
    ts_ns: u64,
    event: &'static str,
    pid: u32,
    ppid: u32,
    uid: u32,
    cpu: u32,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<u32>,
}

/// Prints events and keeps the tally.
struct Printer {
    json: bool,
    clock: EventClock,
    events: u64,
    lost: u64,
}

impl Printer {
    fn header(&self) {
        if !self.json {
            println!(
                "{:<12} {:<5} {:<7} {:<7} {:<16} FILENAME / EXIT",
                "TIME", "EVENT", "PID", "PPID", "COMM"
            );
        }
    }

    fn event(&mut self, data: &[u8]) -> Result<()> {
        let e: types::exec_event = maps::from_bytes(data)?;
        self.events += 1;
        let exit = e.r#type == types::exec_event_type::EXEC_EVENT_EXIT.0;
        // wait(2) encoding: exit status in bits 8-15, killing signal in 0-6.
        let (status, signal) = (e.exit_code >> 8 & 0xff, e.exit_code & 0x7f);
        let out = EventOut {
            time: self.clock.format(e.ts_ns),
            ts_ns: e.ts_ns,
            event: if exit { "exit" } else { "exec" },
            pid: e.pid,
            ppid: e.ppid,
            uid: e.uid,
            cpu: e.cpu,
            comm: cstr(&e.comm),
            filename: (!exit).then(|| cstr(&e.filename)),
            exit_status: (exit && signal == 0).then_some(status),
            signal: (exit && signal != 0).then_some(signal),
        };
        if self.json {
            return report::print_json(&out);
        }
        let last = match (&out.filename, out.exit_status, out.signal) {
            (Some(f), _, _) => f.clone(),
            (None, _, Some(sig)) => format!("killed by signal {sig}"),
            (None, status, _) => status.unwrap_or(0).to_string(),
        };
        println!(
            "{:<12} {:<5} {:<7} {:<7} {:<16} {last}",
            out.time,
            out.event.to_uppercase(),
            out.pid,
            out.ppid,
            out.comm
        );
        Ok(())
    }

    /// Records `total` lost events so far; warns when the count grows.
    fn lost_total(&mut self, total: u64) {
        if total > self.lost {
            eprintln!(
                "WARNING: {} events lost ({} so far): the buffer was full; a larger --buffer-kib helps",
                total - self.lost,
                total
            );
            self.lost = total;
        }
    }
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("execsnoop")?;
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf, Cap::Perfmon])?;
    require_tracefs()?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open; set the filter, the transport and the ring size before load.
    let mut object = MaybeUninit::uninit();
    let mut open = ExecsnoopSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
    rodata.targ_pid = args.pid.unwrap_or(0);
    rodata.use_perf_buffer = args.perf_buffer;
    open.maps
        .events_rb
        .set_max_entries(args.buffer_kib * 1024)
        .context("sizing the ring buffer")?;

    // Load and attach both tracepoints.
    let mut skel = open.load().map_err(errors::load_error)?;
    skel.attach().context("attaching the tracepoints")?;

    let printer = RefCell::new(Printer {
        json: args.json,
        clock: EventClock::new(),
        events: 0,
        lost: 0,
    });
    let on_event = |data: &[u8]| match printer.borrow_mut().event(data) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: bad event: {e:#}");
            -1
        }
    };
    // ANCHOR_END: spine
    // What the program counted as not fitting in the buffer (both transports).
    let bss = skel::bss(skel.maps.bss_data.as_deref())?;
    let dropped = || maps::read_global(&bss.dropped);
    // The kernel's own count of lost perf records arrives in this callback,
    // lazily: in a record written before the next sample that fits into that
    // CPU's buffer. It is shown for comparison; `dropped` is the figure used.
    let perf_lost = RefCell::new(0u64);

    // Set up the consumer before saying we are ready: a perf event array is
    // empty until the perf buffer opens each CPU's event, and output before
    // that fails. (A ring buffer holds events from load on.)
    let events = if args.perf_buffer {
        Events::Perf(
            PerfBufferBuilder::new(&skel.maps.events_pb)
                .pages(args.buffer_kib as usize / 4)
                .sample_cb(|_cpu, data| {
                    on_event(data);
                })
                .lost_cb(|_cpu, count| *perf_lost.borrow_mut() += count)
                .build()
                .context("setting up the perf buffer")?,
        )
    } else {
        let mut builder = RingBufferBuilder::new();
        builder.add(&skel.maps.events_rb, on_event)?;
        Events::Ring(builder.build().context("setting up the ring buffer")?)
    };
    eprintln!(
        "Tracing exec() and exit{} through a {}. Hit Ctrl-C to end.",
        args.pid
            .map_or(String::new(), |p| format!(" of {p} and its children")),
        if args.perf_buffer {
            "perf buffer"
        } else {
            "ring buffer"
        }
    );
    printer.borrow().header();

    // ANCHOR: poll
    // Poll until Ctrl-C or -d. Each poll waits at most 100 ms for events
    // (and hands them to on_event), so that a stop is noticed quickly;
    // after each, warn if the loss grew. Then drain what is left.
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs(d));
    while !stop.requested() && deadline.is_none_or(|d| Instant::now() < d) {
        events.poll(Duration::from_millis(100))?;
        printer.borrow_mut().lost_total(dropped());
    }
    events.consume()?;
    printer.borrow_mut().lost_total(dropped());
    // ANCHOR_END: poll
    if args.perf_buffer {
        eprintln!(
            "(the perf buffer's own lost-record notices so far: {})",
            perf_lost.borrow()
        );
    }

    let p = printer.borrow();
    eprintln!("{} events, {} lost.", p.events, p.lost);
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
