//! fentry: a kernel function's latency as a log2 histogram, from fentry and
//! fexit programs (BPF trampolines), bcc funclatency-style.
//!
//! The kernel side is bpf/fentry.bpf.c; the chapter is docs/06-fentry.md.
//! Kernels that refuse BPF trampolines answer EPERM even for root; the
//! binary says so in one line.

use std::mem::MaybeUninit;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use libbpf_rs::btf::{types, Btf};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::fentry::FentrySkelBuilder;
use learning_ebpf_rs::{cli, errors, hist, signals, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    fentry -f vfs_fsync            # fsync latency, one histogram on Ctrl-C
    fentry -f do_unlinkat 1 5      # unlink latency every second, five times
    fentry -f do_unlinkat,filename_unlinkat  # the first name this kernel has
    fentry -f vfs_read -p 1234 -m  # read latency of process 1234, in ms";

/// Time a kernel function with fentry/fexit and print a latency histogram.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Kernel function to time (as named in /proc/kallsyms and the kernel's
    /// BTF); several, comma-separated, for one that has had other names:
    /// the first this kernel has is timed
    #[arg(short, long, value_name = "FUNC[,FUNC...]")]
    function: String,
    /// Only this process
    #[arg(short, long, value_name = "PID")]
    pid: Option<u32>,
    /// Milliseconds instead of microseconds
    #[arg(short, long, conflicts_with = "nanoseconds")]
    milliseconds: bool,
    /// Nanoseconds instead of microseconds
    #[arg(short, long)]
    nanoseconds: bool,
    #[command(flatten)]
    report: cli::ReportArgs,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

fn load_error(e: libbpf_rs::Error, function: &str) -> anyhow::Error {
    match errors::os_error(&e) {
        Some(libc::EPERM) => anyhow!(
            "this kernel refuses fentry/fexit programs (EPERM even as root: BPF trampolines are \
             not allowed here); run this lesson on a kernel that allows them, e.g. in a VM (see \
             docs/06-fentry.md)"
        ),
        Some(libc::ESRCH) | Some(libc::ENOENT) => anyhow!(
            "kernel function '{function}' not found in this kernel's BTF (is it spelled as in \
             /proc/kallsyms, and not inlined?)"
        ),
        _ => errors::load_error(e),
    }
}

// ANCHOR: pick
/// The first of `names` (comma-separated) that this kernel's BTF has as a
/// function. Function names are not relocated by CO-RE: a kernel function
/// can be renamed (Linux 7 calls `do_unlinkat` `filename_unlinkat`) or
/// inlined away, so a tool that must run on many kernels offers the names
/// it knows, as bcc's libbpf-tools do with `fentry_can_attach()`.
fn pick_function(names: &str) -> Result<String> {
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    if names.len() == 1 {
        // One name: libbpf's own lookup says what is wrong with it.
        return Ok(names[0].to_string());
    }
    let btf = Btf::from_vmlinux().context("reading the kernel's BTF")?;
    names
        .iter()
        .find(|n| btf.type_by_name::<types::Func>(n).is_some())
        .map(|n| n.to_string())
        .ok_or_else(|| {
            anyhow!(
                "none of the kernel functions {} is in this kernel's BTF (are they spelled as in \
                 /proc/kallsyms, and not inlined?)",
                names.join(", ")
            )
        })
}
// ANCHOR_END: pick

fn run(mut args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("fentry")?;
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf, Cap::Perfmon])?;
    args.function = pick_function(&args.function)?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open; point both programs at the function; set filter and unit.
    let mut object = MaybeUninit::uninit();
    let mut open = FentrySkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    for prog in [&mut open.progs.handle_entry, &mut open.progs.handle_exit] {
        // libbpf looks the function up in the kernel's BTF right here.
        prog.set_attach_target(0, Some(args.function.clone()))
            .map_err(|e| load_error(e, &args.function))?;
    }
    let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
    rodata.targ_tgid = args.pid.unwrap_or(0);
    let (unit_ns, unit) = match (args.milliseconds, args.nanoseconds) {
        (true, _) => (1_000_000, "msecs"),
        (_, true) => (1, "nsecs"),
        _ => (1_000, "usecs"),
    };
    rodata.unit_ns = unit_ns;

    // Load: libbpf finds the function's BTF id; the kernel builds the
    // trampoline when we attach.
    let mut skel = open.load().map_err(|e| load_error(e, &args.function))?;
    skel.attach()
        .map_err(|e| load_error(e, &args.function))
        .context("attaching fentry/fexit")?;
    eprintln!("Tracing {} latency... Hit Ctrl-C to end.", args.function);
    // ANCHOR_END: spine

    hist::report_deltas(
        &skel.maps.hist,
        &stop,
        &args.report,
        &hist::Style::new(unit),
    )?;
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
