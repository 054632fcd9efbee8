//! netfilter_bpf: one policy (drop packets from denied source prefixes or
//! to denied TCP/UDP ports) enforced inside netfilter in one of two ways:
//! `--way iptables` pins a socket filter program and adds an iptables (and
//! ip6tables) rule that runs it as its match; `--way hook` attaches a
//! netfilter program to the LOCAL_IN hook with a bpf_link. The policy lives
//! in pinned maps, which `add`, `del` and `list` change from another shell.
//!
//! The kernel side is bpf/netfilter_bpf.bpf.c; the chapter is
//! docs/17-netfilter_bpf.md.

mod iptables;
mod manage;

use std::mem::MaybeUninit;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, NetfilterOpts};
use serde::Serialize;

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::pin::{self, OnExit, Pins};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::netfilter_bpf::types::{nfb_count, nfb_verdict, nfb_way};
use learning_ebpf_rs::skel::netfilter_bpf::NetfilterBpfSkelBuilder;
use learning_ebpf_rs::{cli, errors, report, signals};

const DEFAULT_PIN: &str = "/sys/fs/bpf/netfilter_bpf";

const EXAMPLES: &str = "\
EXAMPLES:
    netfilter_bpf --way iptables --deny-src 198.51.100.0/24 --deny-port 23
    netfilter_bpf --way hook --deny-src 2001:db8:66::/48 5    # report every 5 s
  While it runs, from another shell:
    netfilter_bpf add --port 8080         # takes effect on the next packet
    netfilter_bpf del --src 198.51.100.0/24
    netfilter_bpf list";

/// Enforce a drop policy inside netfilter: a pinned BPF program as an
/// iptables match, or a netfilter BPF program on its own hook.
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
    /// Beside the run's arguments: clap cannot tell an optional group that
    /// holds another group apart from an absent one.
    #[command(flatten)]
    report: cli::ReportArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Way {
    /// A socket filter program, pinned, run by an iptables rule's bpf match
    Iptables,
    /// A netfilter program on the LOCAL_IN hook (Linux 6.4+)
    Hook,
}

#[derive(Args)]
struct RunArgs {
    /// How the policy enters netfilter
    #[arg(long, value_enum)]
    way: Way,
    /// Drop packets from this source prefix; repeat for more
    #[arg(long = "deny-src", value_name = "PREFIX")]
    deny_src: Vec<Cidr>,
    /// Drop TCP and UDP packets to this destination port; repeat for more
    #[arg(long = "deny-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    deny_port: Vec<u16>,
    /// The hook's priority (--way hook): lower runs earlier; iptables'
    /// filter table runs at 0
    #[arg(long, default_value_t = -100, allow_negative_numbers = true)]
    priority: i32,
    /// Where the maps (and the iptables way's program) are pinned
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct PinArg {
    /// The running netfilter_bpf's --pin directory
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
}

#[derive(Subcommand)]
enum Manage {
    /// Deny a source prefix or a port, at once
    Add {
        #[command(flatten)]
        rule: manage::Rule,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Stop denying a source prefix or a port
    Del {
        #[command(flatten)]
        rule: manage::Rule,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the running policy
    List {
        #[command(flatten)]
        pin: PinArg,
        /// One JSON object per rule
        #[arg(long)]
        json: bool,
    },
}

const VERDICTS: [(nfb_verdict, &str); 3] = [
    (nfb_verdict::NFB_PASS, "pass"),
    (nfb_verdict::NFB_DROP_SOURCE, "drop-source"),
    (nfb_verdict::NFB_DROP_PORT, "drop-port"),
];

#[derive(Serialize)]
struct Row {
    verdict: &'static str,
    packets: u64,
    bytes: u64,
    pps: f64,
}

impl report::TableRow for Row {
    fn header() -> String {
        format!(
            "{:<12} {:>10} {:>12} {:>10}",
            "VERDICT", "PACKETS", "BYTES", "PKT/S"
        )
    }

    fn line(&self) -> String {
        format!(
            "{:<12} {:>10} {:>12} {:>10.1}",
            self.verdict, self.packets, self.bytes, self.pps
        )
    }
}

/// The way's counters, per verdict, summed over the CPUs.
fn totals(map: &impl MapCore, way: nfb_way) -> Result<Vec<nfb_count>> {
    VERDICTS
        .iter()
        .map(|(v, _)| {
            let key = way.0 * nfb_verdict::NFB_VERDICT_MAX.0 + v.0;
            percpu_sum(map, &key.to_ne_bytes())
        })
        .collect()
}

fn print_report(now: &[nfb_count], prev: &[nfb_count], secs: f64, json: bool) -> Result<()> {
    let rows = VERDICTS
        .iter()
        .zip(now.iter().zip(prev))
        .map(|((_, verdict), (n, p))| Row {
            verdict,
            packets: n.packets,
            bytes: n.bytes,
            pps: report::rate(n.packets - p.packets, secs),
        })
        .collect();
    report::print_counters(rows, secs, json)
}

/// What holds the policy in netfilter: the iptables rules, or the links
/// (held only to be dropped: that detaches them).
enum Attached {
    Rules(iptables::Rules),
    Hooks(#[allow(dead_code)] Vec<Link>),
}

fn run(args: RunArgs, report_args: &cli::ReportArgs) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("netfilter_bpf")?;
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    if args.way == Way::Iptables {
        iptables::remove_stale()?;
    }
    let mut pins = Pins::new(&args.pin, OnExit::Unpin)?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open; load only the program of the chosen way.
    let mut object = MaybeUninit::uninit();
    let mut open = NetfilterBpfSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    open.progs.nfb_hook.set_autoload(args.way == Way::Hook);
    open.progs.nfb_match.set_autoload(args.way == Way::Iptables);
    let mut skel = open.load().map_err(errors::load_error)?;

    // The policy, then the pins that let `add`, `del` and `list` reach it.
    let m = &mut skel.maps;
    manage::deny(
        &m.deny_src_v4,
        &m.deny_src_v6,
        &m.deny_ports,
        &args.deny_src,
        &args.deny_port,
    )?;
    for (map, name) in [
        (&mut m.deny_src_v4, manage::DENY_SRC_V4),
        (&mut m.deny_src_v6, manage::DENY_SRC_V6),
        (&mut m.deny_ports, manage::DENY_PORTS),
        (&mut m.verdicts, manage::VERDICTS),
    ] {
        pins.pin_map(map, name)?;
    }

    // Into netfilter: an iptables rule that runs the pinned program, or
    // the program on its own hook (a link per IP family).
    let attached = match args.way {
        Way::Iptables => {
            let path = pins.pin_prog(&mut skel.progs.nfb_match, "match")?;
            pins.arm_watchdog()?;
            Attached::Rules(iptables::Rules::add(&path)?)
        }
        Way::Hook => {
            pins.arm_watchdog()?;
            let mut links = Vec::new();
            for family in [libbpf_rs::NFPROTO_IPV4, libbpf_rs::NFPROTO_IPV6] {
                let opts = NetfilterOpts {
                    protocol_family: family,
                    hooknum: libbpf_rs::NF_INET_LOCAL_IN,
                    priority: args.priority,
                    ..Default::default()
                };
                let link = skel
                    .progs
                    .nfb_hook
                    .attach_netfilter_with_opts(opts)
                    .context("attaching to netfilter's LOCAL_IN hook")?;
                links.push(link);
            }
            Attached::Hooks(links)
        }
    };
    eprintln!(
        "Filtering incoming traffic {}; policy pinned in {}. Hit Ctrl-C to end.",
        match args.way {
            Way::Iptables => "with an iptables rule (and an ip6tables one) that runs the program",
            Way::Hook => "with the program on the LOCAL_IN hook",
        },
        pins.dir().display()
    );
    // ANCHOR_END: spine

    let way = match args.way {
        Way::Iptables => nfb_way::NFB_WAY_IPTABLES,
        Way::Hook => nfb_way::NFB_WAY_HOOK,
    };
    let mut prev = totals(&skel.maps.verdicts, way)?;
    stop.every(report_args.interval_or(1), report_args.count(), |secs| {
        let now = totals(&skel.maps.verdicts, way)?;
        print_report(&now, &prev, secs, report_args.json)?;
        prev = now;
        Ok(())
    })?;
    if let Attached::Rules(rules) = &attached {
        for (tool, packets, bytes) in rules.counters()? {
            eprintln!("The {tool} rule dropped {packets} packets ({bytes} bytes).");
        }
    }
    drop(attached);
    eprintln!("Removed from netfilter.");
    Ok(())
}

fn manage(cmd: Manage) -> Result<()> {
    match cmd {
        Manage::Add { rule, pin } => manage::add(&rule, &pin.pin),
        Manage::Del { rule, pin } => manage::del(&rule, &pin.pin),
        Manage::List { pin, json } => manage::list(&pin.pin, json),
    }
}

fn main() {
    pin::run_watchdog_if_asked();
    let cli = cli::parse::<Cli>();
    cli::run(|| match (cli.manage, cli.run) {
        (None, Some(args)) => run(args, &cli.report),
        (None, None) => anyhow::bail!("give --way iptables|hook to run, or a command (see --help)"),
        (Some(cmd), _) => manage(cmd),
    });
}
