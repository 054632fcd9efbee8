//! xdp_firewall: drop malformed packets, blocklisted sources and sources
//! over a rate limit at XDP, and manage the running firewall from a second
//! invocation through its pinned maps.
//!
//! The kernel side is bpf/xdp_firewall.bpf.c; the chapter is
//! docs/02-xdp_firewall.md. This file is the spine (options; open,
//! configure, load, fill, pin, attach, report, detach); `manage` holds the
//! management commands and `stats` the report.

mod manage;
mod stats;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::Program;

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::pin::{self, OnExit, Pins};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::xdp_firewall::XdpFirewallSkelBuilder;
use learning_ebpf_rs::{cli, errors, link, netif, signals, skel};

use manage::{
    add_to, insert, list, remove_from, stats, List, ALLOW_V4, ALLOW_V6, BLOCK_V4, BLOCK_V6,
    COUNTERS,
};
use stats::{read_counters, report};

const DEFAULT_PIN: &str = "/sys/fs/bpf/xdp_firewall";

const EXAMPLES: &str = "\
EXAMPLES:
    xdp_firewall -i eth0 --block 203.0.113.0/24       # drop a network's traffic
    xdp_firewall -i eth0 --rate 1000 --burst 2000     # at most 1000 pkt/s per source
    xdp_firewall -i eth0 --allow 192.0.2.10 --rate 100  # exempt one host from the limit
    xdp_firewall -i eth0 --mode skb                   # generic XDP (any driver)
  While it runs, from another shell:
    xdp_firewall block 198.51.100.0/24                # takes effect at once
    xdp_firewall unblock 198.51.100.0/24
    xdp_firewall list
    xdp_firewall stats --json";

/// Drop malformed packets, blocklisted sources and floods at XDP.
#[derive(Parser)]
#[command(
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    manage: Option<Manage>,
    /// Absent when a management command runs instead.
    #[command(flatten)]
    run: Option<RunArgs>,
    /// Beside the run's arguments, not among them: clap cannot tell an
    /// optional group that holds another group apart from an absent one.
    #[command(flatten)]
    report: cli::ReportArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Interface to protect (its ingress)
    #[arg(short, long, value_name = "IFACE")]
    iface: String,
    /// skb: generic XDP, any driver; native: in the driver; auto: native if the driver can
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    /// Drop traffic from this source prefix (repeatable; IPv4 or IPv6)
    #[arg(long = "block", value_name = "CIDR")]
    block: Vec<Cidr>,
    /// Always pass traffic from this source prefix (repeatable; beats --block and --rate)
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// Per-source limit in packets per second (an IPv6 source is its /64)
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rate: Option<u64>,
    /// Packets a source may send at once before the rate applies [default: PPS]
    #[arg(long, value_name = "N", requires = "rate", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    burst: Option<u64>,
    /// Directory (on a bpffs) to pin the maps in, for the management commands
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
    /// Leave the pinned maps in place on exit
    #[arg(long)]
    keep_pinned: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct PinArg {
    /// The running firewall's --pin directory
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
}

#[derive(Subcommand)]
enum Manage {
    /// Add source prefixes to the running firewall's blocklist
    Block {
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<Cidr>,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Remove source prefixes from the blocklist
    Unblock {
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<Cidr>,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Add source prefixes to the allowlist
    Allow {
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<Cidr>,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Remove source prefixes from the allowlist
    Unallow {
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<Cidr>,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the blocklist and allowlist with their hit counts
    List {
        #[command(flatten)]
        pin: PinArg,
        /// One JSON object per entry
        #[arg(long)]
        json: bool,
    },
    /// Show the verdict counters
    Stats {
        #[command(flatten)]
        pin: PinArg,
        /// As one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Skb,
    Native,
    Auto,
}

/// The resolution of CLOCK_MONOTONIC_COARSE, which bpf_ktime_get_coarse_ns()
/// reads: one scheduler tick.
fn coarse_tick_ns() -> u64 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes into the struct we pass.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } != 0 {
        return 10_000_000; // HZ=100, the coarsest common tick
    }
    res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64
}

/// The program reads a clock that advances once per tick. Within a tick a
/// source can only spend its burst, so a burst smaller than one tick's worth
/// of packets would cap the rate at burst/tick instead of --rate.
fn check_burst(rate: u64, burst: u64) -> Result<()> {
    let tick = coarse_tick_ns();
    let min = (rate * tick).div_ceil(1_000_000_000);
    if burst < min {
        bail!(
            "--burst {burst} is too small for --rate {rate}: the kernel's coarse clock ticks every \
             {:.1} ms, so the burst must be at least {min} packets (rate x tick)",
            tick as f64 / 1e6
        );
    }
    Ok(())
}

/// Attaches through a bpf_link in the requested mode.
fn attach(prog: &Program, ifindex: u32, iface: &str, mode: Mode) -> Result<OwnedFd> {
    let flags = match mode {
        Mode::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
        Mode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
        Mode::Auto => 0,
    };
    link::create(prog, ifindex, libbpf_sys::BPF_XDP, flags).map_err(|err| {
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) if mode == Mode::Native => {
                anyhow!("XDP native mode is not supported on {iface}; retry with --mode skb")
            }
            Some(libc::EBUSY) | Some(libc::EEXIST) => anyhow!(
                "{iface} already has an XDP program attached (see `bpftool net show dev {iface}`)"
            ),
            _ => anyhow!("attaching XDP to {iface} failed: {err}"),
        }
    })
}

/// The mode the kernel actually chose (relevant with --mode auto).
fn attached_mode(ifindex: u32) -> &'static str {
    let mut opts = libbpf_sys::bpf_xdp_query_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: opts is initialised and outlives the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    match (rc, u32::from(opts.attach_mode)) {
        (0, libbpf_sys::XDP_ATTACHED_DRV) => "native",
        (0, libbpf_sys::XDP_ATTACHED_SKB) => "skb",
        (0, libbpf_sys::XDP_ATTACHED_HW) => "offload",
        _ => "unknown",
    }
}

fn run(args: RunArgs, report_args: &cli::ReportArgs) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("xdp_firewall")?;
    cli::init_libbpf_log(args.verbose);
    let iface = args.iface.clone();
    // Check the input before anything is loaded, so a mistake leaves no trace.
    if let Some(rate) = args.rate {
        check_burst(rate, args.burst.unwrap_or(rate))?;
    }
    let ifindex = netif::ifindex(&iface)?;
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    let on_exit = match args.keep_pinned {
        true => OnExit::Keep,
        false => OnExit::Unpin,
    };
    let mut pins = Pins::new(&args.pin, on_exit)?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open, and configure the rate limit: read-only data the verifier sees.
    let mut object = MaybeUninit::uninit();
    let mut open = XdpFirewallSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    if let Some(rate) = args.rate {
        let burst = args.burst.unwrap_or(rate);
        let interval = 1_000_000_000 / rate;
        let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
        rodata.cfg_interval_ns = interval;
        rodata.cfg_tolerance_ns = (burst - 1) * interval;
    }

    // Load: the verifier checks the program; maps are created.
    let mut skel = open.load().map_err(errors::load_error)?;

    // Fill the lists before attaching.
    for cidr in &args.block {
        let map = match cidr {
            Cidr::V4(..) => &skel.maps.block_v4,
            Cidr::V6(..) => &skel.maps.block_v6,
        };
        insert(map, cidr)?;
    }
    for cidr in &args.allow {
        let map = match cidr {
            Cidr::V4(..) => &skel.maps.allow_v4,
            Cidr::V6(..) => &skel.maps.allow_v6,
        };
        insert(map, cidr)?;
    }

    // Pin the maps the management commands use; the watchdog removes the
    // pins even if this process is killed.
    let m = &mut skel.maps;
    pins.pin_and_watch([
        (&mut m.block_v4, BLOCK_V4),
        (&mut m.block_v6, BLOCK_V6),
        (&mut m.allow_v4, ALLOW_V4),
        (&mut m.allow_v6, ALLOW_V6),
        (&mut m.counters, COUNTERS),
    ])?;

    // Attach through a bpf_link: it goes away with this process.
    let xdp_link = attach(&skel.progs.xdp_firewall, ifindex, &iface, args.mode)?;
    eprintln!(
        "Attached xdp_firewall (prog id {}) to {iface} in {} mode; maps pinned in {}{}. \
         Hit Ctrl-C to end.",
        Program::id_from_fd(skel.progs.xdp_firewall.as_fd())?,
        attached_mode(ifindex),
        pins.dir().display(),
        if args.keep_pinned {
            " (kept on exit)"
        } else {
            ""
        },
    );
    // ANCHOR_END: spine

    // Report every interval from counter deltas; on Ctrl-C one last report.
    let mut prev = read_counters(&skel.maps.counters)?;
    stop.every(report_args.interval_or(1), report_args.count(), |secs| {
        let now = read_counters(&skel.maps.counters)?;
        report(&now, &prev, secs, report_args.json)?;
        prev = now;
        Ok(())
    })?;

    // Detach, then unpin (unless kept).
    drop(xdp_link);
    drop(pins);
    eprintln!("Detached from {iface}.");
    Ok(())
}

fn main() {
    pin::run_watchdog_if_asked();
    let cli = cli::parse::<Cli>();
    cli::run(|| match (cli.manage, cli.run) {
        (None, Some(args)) => run(args, &cli.report),
        // clap asks for the run's arguments when no command is given.
        (None, None) => anyhow::bail!("give -i IFACE to run, or a command (see --help)"),
        (Some(Manage::Block { cidrs, pin }), _) => add_to(List::Block, &cidrs, &pin.pin),
        (Some(Manage::Unblock { cidrs, pin }), _) => remove_from(List::Block, &cidrs, &pin.pin),
        (Some(Manage::Allow { cidrs, pin }), _) => add_to(List::Allow, &cidrs, &pin.pin),
        (Some(Manage::Unallow { cidrs, pin }), _) => remove_from(List::Allow, &cidrs, &pin.pin),
        (Some(Manage::List { pin, json }), _) => list(&pin.pin, json),
        (Some(Manage::Stats { pin, json }), _) => stats(&pin.pin, json),
    });
}
