//! lwt_filter: a filter attached to a route. The program is the route's
//! lightweight-tunnel (LWT) encapsulation, so it runs only for the packets
//! that route carries; it drops those from denied source prefixes or to
//! denied ports, and counts each verdict. The route is this binary's own:
//! added over netlink when it starts, removed when it stops.
//!
//! The kernel side is bpf/lwt_filter.bpf.c; the chapter is
//! docs/11-lwt_filter.md.

mod netlink;

use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use serde::Serialize;

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::cli::{self, ReportArgs};
use learning_ebpf_rs::maps::percpu_sum;
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::lwt_filter::types::lwt_count;
use learning_ebpf_rs::skel::lwt_filter::LwtFilterSkelBuilder;
use learning_ebpf_rs::{errors, netif, report, signals};
use netlink::NextHop;

const EXAMPLES: &str = "\
EXAMPLES:
    lwt_filter --route 10.30.0.0/24 --via 10.12.0.2 --deny-port 23
    lwt_filter --route 2001:db8:30::/64 --dev eth1 --deny-src 2001:db8:66::/48";

/// Filter the traffic of one route with an LWT_IN program.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// The route to add: the prefix whose traffic runs the program
    #[arg(long, value_name = "PREFIX")]
    route: Cidr,
    /// The route's gateway
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "dev",
        conflicts_with = "dev"
    )]
    via: Option<IpAddr>,
    /// The route's interface, when the prefix is on that link (no gateway)
    #[arg(long, value_name = "IFACE")]
    dev: Option<String>,
    /// Drop packets from this source prefix; repeat for more
    #[arg(long = "deny-src", value_name = "PREFIX")]
    deny_src: Vec<Cidr>,
    /// Drop TCP and UDP packets to this destination port; repeat for more
    #[arg(long = "deny-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    deny_port: Vec<u16>,
    #[command(flatten)]
    report: ReportArgs,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

/// The route this process added; deleted on drop.
struct Route {
    prefix: Cidr,
    hop: NextHop,
}

impl Drop for Route {
    fn drop(&mut self) {
        match netlink::request(&netlink::del_route_message(&self.prefix, self.hop)) {
            Ok(()) => eprintln!("Removed the route to {}.", self.prefix),
            Err(e) => eprintln!("warning: removing the route to {}: {e}", self.prefix),
        }
    }
}

// ANCHOR: add_route
/// Adds the route to `prefix` with the program as its LWT_IN encapsulation.
fn add_route(prefix: Cidr, hop: NextHop, prog: &libbpf_rs::Program) -> Result<Route> {
    let fd = prog.as_fd().as_raw_fd();
    let msg = netlink::add_route_message(&prefix, hop, fd, "lwt_in_filter");
    match netlink::request(&msg) {
        Ok(()) => Ok(Route { prefix, hop }),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => bail!(
            "a route to {prefix} already exists: lwt_filter adds its own and replaces none \
             (if a killed lwt_filter left it behind, `ip route del {prefix}` removes it)"
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => {
            bail!("adding the route to {prefix}: its gateway is not reachable ({e})")
        }
        Err(e) => Err(e).with_context(|| format!("adding the route to {prefix}")),
    }
}
// ANCHOR_END: add_route

const VERDICTS: [&str; 3] = ["pass", "drop-source", "drop-port"];

#[derive(Serialize)]
struct Row {
    verdict: &'static str,
    packets: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Report {
    time: String,
    verdicts: Vec<Row>,
}

fn totals(map: &impl MapCore) -> Result<Vec<lwt_count>> {
    (0..VERDICTS.len() as u32)
        .map(|v| percpu_sum::<lwt_count>(map, &v.to_ne_bytes()))
        .collect()
}

fn print_report(now: &[lwt_count], json: bool) -> Result<()> {
    let report = Report {
        time: report::clock(),
        verdicts: VERDICTS
            .iter()
            .zip(now)
            .map(|(v, c)| Row {
                verdict: v,
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect(),
    };
    if json {
        return report::print_json(&report);
    }
    println!("\n{}", report.time);
    println!("{:<12} {:>10} {:>12}", "VERDICT", "PACKETS", "BYTES");
    for r in &report.verdicts {
        println!("{:<12} {:>10} {:>12}", r.verdict, r.packets, r.bytes);
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("lwt_filter")?;
    cli::init_libbpf_log(args.verbose);
    // Check the input before anything is loaded or added.
    let hop = match (&args.via, &args.dev) {
        (Some(gw), _) => {
            if gw.is_ipv4() != matches!(args.route, Cidr::V4(..)) {
                bail!(
                    "the gateway {gw} and the route {} are of different IP families",
                    args.route
                );
            }
            NextHop::Via(*gw)
        }
        (None, Some(dev)) => NextHop::Dev(netif::ifindex(dev)?),
        (None, None) => bail!("give the route's gateway (--via ADDR) or interface (--dev IFACE)"),
    };
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open and load; write the policy.
    let mut object = MaybeUninit::uninit();
    let open = LwtFilterSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let skel = open.load().map_err(errors::load_error)?;
    for prefix in &args.deny_src {
        let map = match prefix {
            Cidr::V4(..) => &skel.maps.deny_src_v4,
            Cidr::V6(..) => &skel.maps.deny_src_v6,
        };
        map.update(&prefix.lpm_key(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding --deny-src {prefix}"))?;
    }
    for port in &args.deny_port {
        skel.maps
            .deny_ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding --deny-port {port}"))?;
    }

    // Attach: add the route, with the program as its encapsulation. The
    // route holds the program; deleting the route (on drop) releases it.
    let route = add_route(args.route, hop, &skel.progs.lwt_in_filter)?;
    eprintln!(
        "Filtering the traffic routed to {}... Hit Ctrl-C to end.",
        args.route
    );
    // ANCHOR_END: spine

    stop.every(args.report.interval_or(1), args.report.count(), |_| {
        print_report(&totals(&skel.maps.verdicts)?, args.report.json)
    })?;
    drop(route);
    Ok(())
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
