//! races: the same counter, updated from two CPUs at once in five ways.
//! Each way's program runs N times on each of two CPUs, at the same time,
//! through BPF_PROG_TEST_RUN; the binary compares what each counted with
//! the 2N runs, and what each update cost.
//!
//! The kernel side is bpf/races.bpf.c; the chapter is docs/12-races.md.

use std::mem::MaybeUninit;
use std::sync::Barrier;

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use std::os::fd::{AsFd, BorrowedFd};

use libbpf_rs::{MapCore, MapFlags, ProgramMut};
use serde::Serialize;

use learning_ebpf_rs::maps::{from_bytes, percpu};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::races::{RacesSkel, RacesSkelBuilder};
use learning_ebpf_rs::{cli, errors, report, test_run};

const EXAMPLES: &str = "\
EXAMPLES:
    races                    # 1,000,000 updates per CPU, each way
    races -n 100000 --json   # fewer, as JSON
    races --cpus 2,3         # on CPUs 2 and 3";

/// Count the same events from two CPUs five ways: what each loses, what
/// each costs.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Updates per CPU, for each way
    #[arg(short = 'n', long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    runs: u32,
    /// The two CPUs to run on
    #[arg(long, value_name = "A,B", value_delimiter = ',', default_values_t = [0usize, 1])]
    cpus: Vec<usize>,
    /// One JSON object per way
    #[arg(long)]
    json: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

/// An XDP program needs a frame to run on; its content does not matter.
const FRAME: [u8; 64] = [0; 64];

// ANCHOR: both_cpus
/// Runs the program `prog` `runs` times on each of `cpus`, both at once (a
/// barrier starts them together), with BPF_PROG_TEST_RUN on FRAME. Returns
/// the kernel's average ns per run, over both CPUs.
fn run_on_both(prog: BorrowedFd<'_>, runs: u32, cpus: &[usize]) -> Result<f64> {
    let start = Barrier::new(cpus.len());
    let times: Vec<Result<f64>> = std::thread::scope(|s| {
        let threads: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let start = &start;
                s.spawn(move || -> Result<f64> {
                    test_run::pin_thread(cpu)?;
                    start.wait();
                    Ok(test_run::run(prog, &FRAME, runs)?.ns_per_run)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let times = times.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok(times.iter().sum::<f64>() / times.len() as f64)
}
// ANCHOR_END: both_cpus

// ANCHOR: forced
/// The plain increment's race, made to happen: CPU A loads, CPU B loads,
/// CPU A stores, CPU B stores, one step at a time. Returns how much the
/// counter went up for those two increments.
fn forced(skel: &RacesSkel, cpus: &[usize]) -> Result<u64> {
    let step = |prog: &ProgramMut, cpu: usize| -> Result<()> {
        test_run::run_on_cpu(prog.as_fd(), &FRAME, 1, cpu).map(drop)
    };
    let before = bss(skel)?.plain_count;
    step(&skel.progs.plain_load, cpus[0])?;
    step(&skel.progs.plain_load, cpus[1])?;
    step(&skel.progs.plain_store, cpus[0])?;
    step(&skel.progs.plain_store, cpus[1])?;
    Ok(bss(skel)?.plain_count - before)
}
// ANCHOR_END: forced

/// One way's result.
#[derive(Serialize)]
struct Row {
    way: &'static str,
    expected: u64,
    observed: u64,
    lost: u64,
    ns_per_update: f64,
    /// Cost relative to the plain increment, measured in the same run.
    vs_plain: f64,
    /// What else the way has to say (the CAS loop's retries).
    note: String,
}

/// The forced interleaving's line of `--json`.
#[derive(Serialize)]
struct ForcedReport {
    forced_interleaving: Forced,
}

#[derive(Serialize)]
struct Forced {
    increments: u32,
    counted: u64,
}

fn bss<'a>(skel: &'a RacesSkel<'_>) -> Result<&'a learning_ebpf_rs::skel::races::types::bss> {
    learning_ebpf_rs::skel::bss(skel.maps.bss_data.as_deref())
}

/// What each way counted, read after its runs.
fn observed(skel: &RacesSkel, way: &str) -> Result<u64> {
    let zero = 0u32.to_ne_bytes();
    Ok(match way {
        "plain" => bss(skel)?.plain_count,
        "atomic" => bss(skel)?.atomic_count,
        "per-cpu" => percpu::<u64>(&skel.maps.percpu_count, &zero)?.iter().sum(),
        "spin-lock" => {
            let value = skel
                .maps
                .locked_count
                .lookup(&zero, MapFlags::ANY)?
                .context("no value in locked_count")?;
            // struct locked: the lock (4 bytes, padded to 8), then count.
            from_bytes::<u64>(&value[8..16])?
        }
        "cas" => bss(skel)?.cas_count,
        _ => unreachable!(),
    })
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("races")?;
    cli::init_libbpf_log(args.verbose);
    if args.cpus.len() != 2 {
        bail!("--cpus takes two CPUs, A,B (not {})", args.cpus.len());
    }
    if args.cpus[0] == args.cpus[1] {
        bail!(
            "--cpus needs two different CPUs, not {} twice",
            args.cpus[0]
        );
    }
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(cpu) = args.cpus.iter().find(|&&c| c >= online) {
        bail!("CPU {cpu} is not available here (this process may use {online} CPUs)");
    }
    privileges::require(&[Cap::Bpf])?;

    // ANCHOR: spine
    let mut object = MaybeUninit::uninit();
    let open = RacesSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let skel = open.load().map_err(errors::load_error)?;
    let progs = &skel.progs;
    let ways: [(&str, &ProgramMut); 5] = [
        ("plain", &progs.count_plain),
        ("atomic", &progs.count_atomic),
        ("per-cpu", &progs.count_percpu),
        ("spin-lock", &progs.count_spinlock),
        ("cas", &progs.count_cas),
    ];
    let mut rows = Vec::new();
    for (way, prog) in ways {
        let ns = run_on_both(prog.as_fd(), args.runs, &args.cpus)?;
        let expected = 2 * u64::from(args.runs);
        let observed = observed(&skel, way)?;
        rows.push((way, expected, observed, ns));
    }
    // ANCHOR_END: spine

    let plain_ns = rows[0].3;
    let cas = &bss(&skel)?.cas;
    for (way, expected, observed, ns) in rows {
        let row = Row {
            way,
            expected,
            observed,
            lost: expected.saturating_sub(observed),
            ns_per_update: ns,
            vs_plain: ns / plain_ns,
            note: if way == "cas" {
                format!("{} retries, {} gave up", cas.retries, cas.gave_up)
            } else {
                String::new()
            },
        };
        if args.json {
            report::print_json(&row)?;
        } else {
            if way == "plain" {
                println!(
                    "{:<10} {:>10} {:>10} {:>10} {:>10} {:>9}",
                    "WAY", "EXPECTED", "OBSERVED", "LOST", "NS/UPDATE", "VS PLAIN"
                );
            }
            println!(
                "{:<10} {:>10} {:>10} {:>10} {:>10.1} {:>8.2}x  {}",
                row.way,
                row.expected,
                row.observed,
                row.lost,
                row.ns_per_update,
                row.vs_plain,
                row.note
            );
        }
    }
    let went_up = forced(&skel, &args.cpus)?;
    if args.json {
        report::print_json(&ForcedReport {
            forced_interleaving: Forced {
                increments: 2,
                counted: went_up,
            },
        })?;
    } else {
        println!(
            "\nForced interleaving (CPU {a} loads, CPU {b} loads, CPU {a} stores, CPU {b} stores): \
             2 increments, counted {went_up}.",
            a = args.cpus[0],
            b = args.cpus[1]
        );
    }
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
