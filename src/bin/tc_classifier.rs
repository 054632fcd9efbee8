//! tc_classifier: per-protocol packet and byte counters on an interface's
//! ingress and egress, and a drop policy for listed destination ports.
//!
//! The kernel side is bpf/tc_classifier.bpf.c; the chapter is
//! docs/01-tc_classifier.md.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, Program};
use serde::Serialize;

use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::tc_classifier::{types, TcClassifierSkelBuilder};
use learning_ebpf_rs::tc::{TcAttachment, TcDirection, TcMode};
use learning_ebpf_rs::{cli, errors, maps, netif, report, signals};

const EXAMPLES: &str = "\
EXAMPLES:
    tc_classifier -i eth0                      # count, print every second
    tc_classifier -i eth0 --drop-port 23       # also drop TCP/UDP to port 23
    tc_classifier -i eth0 --attach tcx         # attach with a bpf_link (6.6+)
    tc_classifier -i eth0 --json -c 5          # five JSON reports, then exit";

/// Count packets per protocol at the TC hook, and drop listed destination ports.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Interface to attach to, on ingress and egress
    #[arg(short, long, value_name = "IFACE")]
    iface: String,
    /// Drop TCP and UDP packets to this destination port (repeatable)
    #[arg(long = "drop-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    drop_ports: Vec<u16>,
    /// tc: clsact qdisc + cls_bpf filter; tcx: bpf_link (Linux 6.6+)
    #[arg(long, value_enum, default_value_t = TcMode::Tc)]
    attach: TcMode,
    #[command(flatten)]
    report: cli::ReportArgs,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

const DIRS: [(types::tc_dir, &str); 2] = [
    (types::tc_dir::TC_DIR_INGRESS, "ingress"),
    (types::tc_dir::TC_DIR_EGRESS, "egress"),
];
const PROTOS: [(types::tc_proto, &str); 5] = [
    (types::tc_proto::TC_PROTO_TCP, "tcp"),
    (types::tc_proto::TC_PROTO_UDP, "udp"),
    (types::tc_proto::TC_PROTO_ICMP, "icmp"),
    (types::tc_proto::TC_PROTO_ICMPV6, "icmpv6"),
    (types::tc_proto::TC_PROTO_OTHER, "other"),
];

/// One row of a report: totals since start, rates since the last report.
#[derive(Serialize)]
struct Row {
    dir: &'static str,
    proto: &'static str,
    packets: u64,
    bytes: u64,
    dropped: u64,
    pps: f64,
    bps: f64,
}

impl report::TableRow for Row {
    fn header() -> String {
        format!(
            "{:<8} {:<7} {:>10} {:>12} {:>9} {:>10} {:>12}",
            "DIR", "PROTO", "PACKETS", "BYTES", "DROPPED", "PKT/S", "BIT/S"
        )
    }

    fn line(&self) -> String {
        format!(
            "{:<8} {:<7} {:>10} {:>12} {:>9} {:>10.1} {:>12.1}",
            self.dir, self.proto, self.packets, self.bytes, self.dropped, self.pps, self.bps
        )
    }
}

/// Totals per (direction, protocol), summed over CPUs, in DIRS x PROTOS order.
fn read_totals(map: &impl MapCore) -> Result<Vec<types::tc_counter>> {
    let mut totals = Vec::new();
    for (dir, _) in DIRS {
        for (proto, _) in PROTOS {
            let key = dir.0 * types::tc_proto::TC_PROTO_MAX.0 + proto.0;
            totals.push(maps::percpu_sum(map, &key.to_ne_bytes())?);
        }
    }
    Ok(totals)
}

fn report(
    now: &[types::tc_counter],
    prev: &[types::tc_counter],
    secs: f64,
    json: bool,
) -> Result<()> {
    let names = DIRS
        .iter()
        .flat_map(|(_, d)| PROTOS.iter().map(move |(_, p)| (*d, *p)));
    let counters: Vec<Row> = names
        .zip(now.iter().zip(prev))
        .map(|((dir, proto), (n, p))| Row {
            dir,
            proto,
            packets: n.packets,
            bytes: n.bytes,
            dropped: n.dropped,
            pps: report::rate(n.packets - p.packets, secs),
            bps: report::rate(n.bytes - p.bytes, secs) * 8.0,
        })
        .collect();
    report::print_counters(counters, secs, json)
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("tc_classifier")?;
    cli::init_libbpf_log(args.verbose);
    // Check the input before anything is loaded, so a mistake leaves no trace.
    let ifindex = netif::ifindex(&args.iface)?;
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open the skeleton: the object is parsed, nothing is in the kernel yet.
    let mut object = MaybeUninit::uninit();
    let open = TcClassifierSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;

    // Load: the verifier checks both programs; maps are created.
    let skel = open.load().map_err(errors::load_error)?;

    // Fill the policy before attaching, so no packet sees an empty policy.
    for port in &args.drop_ports {
        skel.maps
            .drop_ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding port {port} to drop_ports"))?;
    }

    // Attach to both directions. Dropping `attachment` detaches.
    let attachment = TcAttachment::attach(
        ifindex,
        args.attach,
        &[
            (TcDirection::Ingress, &skel.progs.tc_ingress),
            (TcDirection::Egress, &skel.progs.tc_egress),
        ],
    )
    .with_context(|| format!("attaching to {}", args.iface))?;
    eprintln!(
        "Attached tc_ingress (prog id {}) and tc_egress (prog id {}) to {} with {}{}. \
         Hit Ctrl-C to end.",
        Program::id_from_fd(skel.progs.tc_ingress.as_fd())?,
        Program::id_from_fd(skel.progs.tc_egress.as_fd())?,
        args.iface,
        args.attach.name(),
        if attachment.created_clsact() {
            " (created the clsact qdisc)"
        } else {
            ""
        }
    );
    // ANCHOR_END: spine

    // Report every interval from counter deltas; on Ctrl-C one last report.
    let mut prev = read_totals(&skel.maps.counters)?;
    stop.every(args.report.interval_or(1), args.report.count(), |secs| {
        let now = read_totals(&skel.maps.counters)?;
        report(&now, &prev, secs, args.report.json)?;
        prev = now;
        Ok(())
    })?;

    // Detach (and remove the clsact qdisc if this run created it).
    drop(attachment);
    eprintln!("Detached from {}.", args.iface);
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
