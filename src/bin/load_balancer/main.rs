//! load_balancer: an L4 load balancer for one virtual address, built on the
//! kernel's conntrack through kfuncs. Backends can be added, removed or
//! drained while it runs, through its pinned maps.
//!
//! The kernel side is bpf/load_balancer.bpf.c; the chapter is
//! docs/07-load_balancer.md. This file is the spine (options; open,
//! configure, load, attach, report, detach; the management commands); the
//! modules hold the details: `backends` (slots, states, generations, the
//! weighted table), `attach` (where the program goes), `manage` (the
//! commands' work on the pinned maps) and `stats` (the report).

mod attach;
mod backends;
mod manage;
mod stats;

use std::mem::MaybeUninit;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use learning_ebpf_rs::pin::{self, OnExit, Pins};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::load_balancer::{types, LoadBalancerSkelBuilder};
use learning_ebpf_rs::tc::TcMode;
use learning_ebpf_rs::{cli, errors, netif, signals, skel};

use attach::Attachments;
use backends::{check_unique, new_backend, rebuild_table, write_backend, Backend, State};
use manage::{add, open_pinned, retire};
use stats::{print_report, report};

const DEFAULT_PIN: &str = "/sys/fs/bpf/load_balancer";

const EXAMPLES: &str = "\
EXAMPLES:
    load_balancer -i eth0 --vip 10.0.0.100:80 --backend 10.1.0.1:8080 --backend 10.1.0.2:8080,3
  While it runs, from another shell:
    load_balancer add 10.1.0.3:8080,2       # a new backend with weight 2
    load_balancer drain 10.1.0.1:8080       # keep its connections, send it no new ones
    load_balancer remove 10.1.0.2:8080      # new connections avoid it
    load_balancer stats --json";

/// Balance TCP and UDP flows to a virtual IP across backends, with conntrack kfuncs.
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
    /// Interface the clients' traffic arrives on
    #[arg(short, long, value_name = "IFACE")]
    iface: String,
    /// Virtual address and port the clients connect to
    #[arg(long, value_name = "IP:PORT")]
    vip: SocketAddrV4,
    /// A backend, with an optional weight (default 1); repeatable
    #[arg(long = "backend", value_name = "IP:PORT[,WEIGHT]")]
    backends: Vec<Backend>,
    /// Which protocols to balance
    #[arg(long, value_enum, default_value_t = Proto::Both)]
    proto: Proto,
    /// tc: clsact + cls_bpf; tcx: bpf_link (Linux 6.6+)
    #[arg(long, value_enum, default_value_t = TcMode::Tc)]
    attach: TcMode,
    /// Directory (on a bpffs) to pin the maps in, for the management commands
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct PinArg {
    /// The running load balancer's --pin directory
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN)]
    pin: PathBuf,
}

#[derive(Subcommand)]
enum Manage {
    /// Add a backend, or make an existing one active with this weight.
    /// Returns once the running balancer can send it flows.
    Add {
        #[arg(value_name = "IP:PORT[,WEIGHT]")]
        backend: Backend,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Remove a backend: new connections avoid it, open ones go on; its
    /// row stays in `stats` until a new backend needs its slot
    Remove {
        #[arg(value_name = "IP:PORT")]
        backend: Backend,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Drain a backend: its connections continue, no new ones start
    Drain {
        #[arg(value_name = "IP:PORT")]
        backend: Backend,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the backends and their statistics
    Stats {
        #[command(flatten)]
        pin: PinArg,
        /// As one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
    Both,
}

fn run(args: RunArgs, report_args: &cli::ReportArgs) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("load_balancer")?;
    cli::init_libbpf_log(args.verbose);
    let iface = args.iface.clone();
    let vip = args.vip;
    // Check everything that can be checked before touching the kernel.
    netif::ifindex(&iface)?;
    check_unique(&args.backends)?;
    privileges::require(&[Cap::Bpf, Cap::NetAdmin])?;
    // The program forwards like a router, and the kernel's route lookup
    // for it (bpf_fib_lookup) refuses when forwarding is off.
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim() != "1")
        .unwrap_or(true)
    {
        bail!("IPv4 forwarding is off in this network namespace: enable it with `sysctl -w net.ipv4.ip_forward=1`");
    }
    // Where each backend is reached: its replies arrive there, so the
    // program goes there too.
    let backend_ifaces = args
        .backends
        .iter()
        .map(|b| {
            netif::route_iface(*b.addr.ip())?.ok_or_else(|| {
                anyhow!(
                    "no route to backend {} in this network namespace",
                    b.addr.ip()
                )
            })
        })
        .collect::<Result<Vec<String>>>()?;
    let mut pins = Pins::new(&args.pin, OnExit::Unpin)?;
    let stop = signals::Stop::install()?;

    // ANCHOR: spine
    // Open; the virtual address and protocols are read-only data.
    let mut object = MaybeUninit::uninit();
    let mut open = LoadBalancerSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let rodata = skel::rodata(open.maps.rodata_data.as_deref_mut())?;
    rodata.vip_addr = u32::from(*vip.ip()).to_be();
    rodata.vip_port = vip.port();
    rodata.balance_tcp = args.proto != Proto::Udp;
    rodata.balance_udp = args.proto != Proto::Tcp;

    // Load: libbpf resolves the kfuncs against the kernel's BTF here. Where
    // conntrack and NAT are modules (Debian's kernels), their BTF exists
    // only once they are loaded: ask for them first (quietly; a kernel with
    // them built in has nothing to load).
    let _ = Command::new("modprobe")
        .args(["-q", "nf_nat"])
        .stderr(std::process::Stdio::null())
        .status();
    let mut skel = open.load().map_err(|e| {
        let err = errors::load_error(e);
        anyhow!("{err:#} (the conntrack kfuncs need Linux 6.1+ with nf_conntrack and nf_nat)")
    })?;

    // Backends and the selection table, before the program sees a packet.
    for (slot, b) in args.backends.iter().enumerate() {
        let be = new_backend(&types::lb_backend::default(), b, State::LB_BACKEND_ACTIVE);
        write_backend(&skel.maps.backends, slot as u32, &be)?;
    }
    rebuild_table(&skel.maps.backends, &skel.maps.table)?;
    let m = &mut skel.maps;
    pins.pin_and_watch([
        (&mut m.backends, "backends"),
        (&mut m.table, "table"),
        (&mut m.stats, "stats"),
        (&mut m.counters, "counters"),
    ])?;

    // Attach: first where the backends' replies arrive, then where the
    // clients' packets do, so that no flow starts before its way back is
    // in place.
    let mut attached = Attachments {
        prog: &skel.progs.lb_ingress,
        mode: args.attach,
        ifaces: Vec::new(),
    };
    for backend_iface in &backend_ifaces {
        attached.attach(backend_iface)?;
    }
    attached.attach(&iface)?;
    eprintln!(
        "Balancing {vip} ({}) across {} backends, attached to {}; maps pinned in {}. Hit Ctrl-C to end.",
        match args.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Both => "tcp and udp",
        },
        args.backends.len(),
        attached.names(),
        pins.dir().display()
    );
    // ANCHOR_END: spine

    // Every --interval: report (and once more at the end); meanwhile,
    // every 200 ms, take up the backends that `add` asked for.
    let take_up = || attached.take_up_pending(pins.dir(), &skel.maps.backends, &skel.maps.table);
    stop.every_doing(
        report_args.interval_or(1),
        report_args.count(),
        Duration::from_millis(200),
        take_up,
        |_| {
            let r = report(&skel.maps.backends, &skel.maps.stats, &skel.maps.counters)?;
            print_report(&r, report_args.json)
        },
    )?;
    let names = attached.names();
    drop(attached);
    eprintln!("Detached from {names}.");
    Ok(())
}

fn manage(cmd: Manage) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    match cmd {
        Manage::Add { backend, pin } => {
            println!("{}", add(&open_pinned(&pin.pin)?, &pin.pin, &backend)?);
        }
        Manage::Remove { backend, pin } => {
            let lb = open_pinned(&pin.pin)?;
            retire(&lb, &pin.pin, &backend.addr, State::LB_BACKEND_REMOVED)?;
            println!(
                "{} removed: no new flows; its open ones go on",
                backend.addr
            );
        }
        Manage::Drain { backend, pin } => {
            let lb = open_pinned(&pin.pin)?;
            retire(&lb, &pin.pin, &backend.addr, State::LB_BACKEND_DRAINING)?;
            println!("{} draining", backend.addr);
        }
        Manage::Stats { pin, json } => {
            let lb = open_pinned(&pin.pin)?;
            print_report(&report(&lb.backends, &lb.stats, &lb.counters)?, json)?;
        }
    }
    Ok(())
}

fn main() {
    pin::run_watchdog_if_asked();
    let cli = cli::parse::<Cli>();
    cli::run(|| match (cli.manage, cli.run) {
        (None, Some(args)) => run(args, &cli.report),
        // clap asks for the run's arguments when no command is given.
        (None, None) => anyhow::bail!("give -i IFACE to run, or a command (see --help)"),
        (Some(cmd), _) => manage(cmd),
    });
}
