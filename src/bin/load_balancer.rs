//! load_balancer: an L4 load balancer for one virtual address, built on the
//! kernel's conntrack through kfuncs. Backends can be added, removed or
//! drained while it runs, through its pinned maps.
//!
//! The kernel side is bpf/load_balancer.bpf.c; the chapter is
//! docs/07-load_balancer.md.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use serde::Serialize;

use learning_ebpf_rs::pin::{self, OnExit, Pins};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::load_balancer::{types, LoadBalancerSkelBuilder};
use learning_ebpf_rs::tc::{TcAttachment, TcDirection, TcMode};
use learning_ebpf_rs::{cli, errors, maps, netif, report, signals, skel};

const DEFAULT_PIN: &str = "/sys/fs/bpf/load_balancer";
// The limits, from bpf/load_balancer.h through the skeleton's BTF types.
const MAX_BACKENDS: u32 = types::lb_limits::LB_MAX_BACKENDS.0;
const TABLE_SIZE: u32 = types::lb_limits::LB_TABLE_SIZE.0;
const NO_BACKEND: u32 = types::lb_limits::LB_NO_BACKEND.0;
const GEN_MASK: u32 = (1 << types::lb_limits::LB_GEN_BITS.0) - 1;
/// How long `add` waits for the running balancer to take a new backend up.
const ADD_TIMEOUT: Duration = Duration::from_secs(5);

use types::lb_backend_state as State;

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
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Interface the clients' traffic arrives on
    #[arg(short, long, value_name = "IFACE", required = true)]
    iface: Option<String>,
    /// Virtual address and port the clients connect to
    #[arg(long, value_name = "IP:PORT", required = true)]
    vip: Option<SocketAddrV4>,
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
    #[command(flatten)]
    report: cli::ReportArgs,
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

/// `IP:PORT[,WEIGHT]` from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backend {
    addr: SocketAddrV4,
    weight: u32,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        let (addr, weight) = match s.split_once(',') {
            Some((a, w)) => (a, w),
            None => (s, "1"),
        };
        let addr: SocketAddrV4 = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 address and port (IP:PORT)"))?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(format!("'{addr}': the address and the port must not be 0"));
        }
        let weight: u32 = weight
            .parse()
            .ok()
            .filter(|w| (1..=1000).contains(w))
            .ok_or_else(|| format!("weight '{weight}' must be a whole number from 1 to 1000"))?;
        Ok(Backend { addr, weight })
    }
}

/// The load balancer's maps, opened from their pins by a management command.
struct LbMaps {
    backends: MapHandle,
    table: MapHandle,
    stats: MapHandle,
    counters: MapHandle,
}

fn read_backend(map: &impl MapCore, i: u32) -> Result<types::lb_backend> {
    let value = map
        .lookup(&i.to_ne_bytes(), MapFlags::ANY)?
        .ok_or_else(|| anyhow!("backend slot {i} missing"))?;
    maps::from_bytes(&value)
}

fn write_backend(map: &impl MapCore, i: u32, be: &types::lb_backend) -> Result<()> {
    map.update(&i.to_ne_bytes(), maps::bytes_of(be), MapFlags::ANY)
        .context("updating a backend")
}

fn all_backends(map: &impl MapCore) -> Result<Vec<types::lb_backend>> {
    (0..MAX_BACKENDS).map(|i| read_backend(map, i)).collect()
}

fn socket_addr(be: &types::lb_backend) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(be.addr)), be.port as u16)
}

/// Refills the selection table with a smooth weighted round robin over the
/// active backends: each gets slots in proportion to its weight, spread out
/// (weights 1 and 3 give A B B B A B B B..., not A A B B B B B B), so that any
/// run of consecutive new flows is split close to the weights. Every slot
/// says "no backend" when none is active.
fn rebuild_table(backends: &impl MapCore, table: &impl MapCore) -> Result<()> {
    let active: Vec<(u32, i64)> = all_backends(backends)?
        .iter()
        .enumerate()
        .filter(|(_, b)| b.addr != 0 && b.state == State::LB_BACKEND_ACTIVE.0)
        .map(|(i, b)| (i as u32, i64::from(b.weight)))
        .collect();
    let total: i64 = active.iter().map(|(_, w)| w).sum();
    let mut current = vec![0i64; active.len()];
    let slots: Vec<u32> = (0..TABLE_SIZE)
        .map(|_| {
            if total == 0 {
                return NO_BACKEND;
            }
            // Everyone gains its weight; the richest is picked and pays the total.
            for (c, (_, w)) in current.iter_mut().zip(&active) {
                *c += w;
            }
            let best = (0..active.len())
                .max_by_key(|&i| (current[i], -(i as i64)))
                .unwrap_or(0);
            current[best] -= total;
            active[best].0
        })
        .collect();
    for (slot, idx) in slots.iter().enumerate() {
        table.update(
            &(slot as u32).to_ne_bytes(),
            &idx.to_ne_bytes(),
            MapFlags::ANY,
        )?;
    }
    Ok(())
}

/// Where `addr` is, if it is a backend in any state.
fn position(all: &[types::lb_backend], addr: &SocketAddrV4) -> Option<u32> {
    all.iter()
        .position(|x| x.addr != 0 && socket_addr(x) == *addr)
        .map(|i| i as u32)
}

/// The slot of an active or draining backend.
fn find(backends: &impl MapCore, addr: &SocketAddrV4) -> Result<u32> {
    let all = all_backends(backends)?;
    position(&all, addr)
        .filter(|&i| {
            let state = all[i as usize].state;
            state == State::LB_BACKEND_ACTIVE.0 || state == State::LB_BACKEND_DRAINING.0
        })
        .ok_or_else(|| anyhow!("{addr} is not an active or draining backend"))
}

/// A slot for a new backend: one never used, else the first whose backend
/// was removed (its later packets are then counted as "retired").
fn free_slot(all: &[types::lb_backend]) -> Result<u32> {
    all.iter()
        .position(|x| x.addr == 0)
        .or_else(|| {
            all.iter()
                .position(|x| x.state == State::LB_BACKEND_REMOVED.0)
        })
        .map(|i| i as u32)
        .ok_or_else(|| anyhow!("all {MAX_BACKENDS} backend slots are in use"))
}

/// A new backend in `slot`: the slot's next generation, so that the flows
/// of a removed backend that had it keep apart from the new one's.
fn new_backend(old: &types::lb_backend, b: &Backend, state: State) -> types::lb_backend {
    types::lb_backend {
        addr: u32::from(*b.addr.ip()).to_be(),
        port: u32::from(b.addr.port()),
        weight: b.weight,
        state: state.0,
        gen: if old.addr == 0 {
            old.gen
        } else {
            (old.gen + 1) & GEN_MASK
        },
    }
}

/// Rejects a backend given twice on the command line.
fn check_unique(backends: &[Backend]) -> Result<()> {
    let mut seen = HashSet::new();
    for b in backends {
        if !seen.insert(b.addr) {
            bail!(
                "backend {} is given twice; give each backend once, with its weight (IP:PORT,WEIGHT)",
                b.addr
            );
        }
    }
    Ok(())
}

/// The management commands and the balancer change the backends and the
/// table under this lock (flock on the pin directory), one at a time.
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take(dir: &Path) -> Result<Lock> {
        let file =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "locking {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Lock { _file: file })
    }
}

#[derive(Serialize)]
struct BackendReport {
    backend: String,
    state: &'static str,
    weight: u32,
    connections: u64,
    packets: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Report {
    backends: Vec<BackendReport>,
    /// The program-wide counters, summed over the CPUs.
    new_flows: u64,
    dropped_no_backend: u64,
    dropped_stray: u64,
    dropped_unroutable: u64,
    conntrack_errors: u64,
    /// Packets and bytes of removed backends' flows, after a new backend
    /// took their slot (and so their row).
    retired_packets: u64,
    retired_bytes: u64,
}

fn state_name(state: u32) -> &'static str {
    match State(state) {
        State::LB_BACKEND_ACTIVE => "active",
        State::LB_BACKEND_DRAINING => "draining",
        State::LB_BACKEND_REMOVED => "removed",
        State::LB_BACKEND_PENDING => "pending",
        _ => "failed",
    }
}

fn report(
    backends: &impl MapCore,
    stats: &impl MapCore,
    counters: &impl MapCore,
) -> Result<Report> {
    let mut rows = Vec::new();
    for (i, be) in all_backends(backends)?.iter().enumerate() {
        if be.addr == 0 {
            continue;
        }
        // Each CPU's copy counts for this backend only if the program has
        // started it over for the backend's generation.
        let per_cpu: Vec<types::lb_stats> = maps::percpu(stats, &(i as u32).to_ne_bytes())?;
        let (connections, packets, bytes) = per_cpu
            .iter()
            .filter(|s| s.gen == u64::from(be.gen))
            .fold((0, 0, 0), |(c, p, b), s| {
                (c + s.connections, p + s.packets, b + s.bytes)
            });
        rows.push(BackendReport {
            backend: socket_addr(be).to_string(),
            state: state_name(be.state),
            weight: be.weight,
            connections,
            packets,
            bytes,
        });
    }
    let c: types::lb_counters = maps::percpu_sum(counters, &0u32.to_ne_bytes())?;
    Ok(Report {
        backends: rows,
        new_flows: c.new_flows,
        dropped_no_backend: c.no_backend,
        dropped_stray: c.stray,
        dropped_unroutable: c.unroutable,
        conntrack_errors: c.ct_errors,
        retired_packets: c.retired_packets,
        retired_bytes: c.retired_bytes,
    })
}

fn print_report(r: &Report, json: bool) -> Result<()> {
    if json {
        let mut report = serde_json::to_value(r).context("encoding the JSON output")?;
        report["time"] = report::clock().into();
        return report::print_json(&report);
    }
    println!("\n{}", report::clock());
    println!(
        "{:<22} {:<9} {:>6} {:>12} {:>12} {:>14}",
        "BACKEND", "STATE", "WEIGHT", "CONNECTIONS", "PACKETS", "BYTES"
    );
    for b in &r.backends {
        println!(
            "{:<22} {:<9} {:>6} {:>12} {:>12} {:>14}",
            b.backend, b.state, b.weight, b.connections, b.packets, b.bytes
        );
    }
    println!(
        "new flows {}; dropped: no backend {}, stray {}, unroutable {}; conntrack errors {}",
        r.new_flows,
        r.dropped_no_backend,
        r.dropped_stray,
        r.dropped_unroutable,
        r.conntrack_errors
    );
    if r.retired_packets > 0 {
        println!(
            "removed backends, after their slot was reused: {} packets, {} bytes",
            r.retired_packets, r.retired_bytes
        );
    }
    Ok(())
}

/// Where the program is attached: TC ingress of the clients' interface and
/// of every interface a backend is reached through, since the replies must
/// pass the program too. A backend added at run time may bring a new one.
struct Attachments<'p> {
    prog: &'p libbpf_rs::Program<'p>,
    mode: TcMode,
    ifaces: Vec<(String, TcAttachment)>,
}

impl<'p> Attachments<'p> {
    /// Attaches to `iface` unless already there; true if it attached now.
    fn attach(&mut self, iface: &str) -> Result<bool> {
        if self.ifaces.iter().any(|(name, _)| name == iface) {
            return Ok(false);
        }
        let ifindex = netif::ifindex(iface)?;
        let attachment =
            TcAttachment::attach(ifindex, self.mode, &[(TcDirection::Ingress, self.prog)])
                .with_context(|| format!("attaching to {iface}"))?;
        self.ifaces.push((iface.to_string(), attachment));
        Ok(true)
    }

    /// Attaches where the traffic of the backend at `ip` goes.
    fn attach_for(&mut self, ip: Ipv4Addr) -> Result<()> {
        let iface = netif::route_iface(ip)?
            .ok_or_else(|| anyhow!("no route to backend {ip} in this network namespace"))?;
        if self.attach(&iface)? {
            eprintln!("Backend {ip} is reached through {iface}: attached to {iface} too.");
        }
        Ok(())
    }

    /// Takes up the backends that `add` left pending: the program goes on
    /// their interface first, and only then do they become active and
    /// enter the selection table. One that cannot be reached is marked
    /// failed, which `add` reports.
    fn take_up_pending(
        &mut self,
        pin_dir: &Path,
        backends: &impl MapCore,
        table: &impl MapCore,
    ) -> Result<()> {
        let pending = |b: &types::lb_backend| b.addr != 0 && b.state == State::LB_BACKEND_PENDING.0;
        if !all_backends(backends)?.iter().any(pending) {
            return Ok(());
        }
        let _lock = Lock::take(pin_dir)?;
        let mut activated = false;
        for (i, be) in all_backends(backends)?.iter().enumerate() {
            if !pending(be) {
                continue;
            }
            let state = match self.attach_for(*socket_addr(be).ip()) {
                Ok(()) => {
                    activated = true;
                    State::LB_BACKEND_ACTIVE
                }
                Err(e) => {
                    eprintln!("warning: backend {} not taken up: {e:#}", socket_addr(be));
                    State::LB_BACKEND_FAILED
                }
            };
            let be = types::lb_backend {
                state: state.0,
                ..*be
            };
            write_backend(backends, i as u32, &be)?;
        }
        if activated {
            rebuild_table(backends, table)?;
        }
        Ok(())
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.ifaces.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }
}

fn run(args: RunArgs) -> Result<()> {
    cli::init_libbpf_log(args.verbose);
    let iface = args.iface.clone().unwrap_or_default();
    let vip = args.vip.ok_or_else(|| anyhow!("--vip is required"))?;
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
    for b in &args.backends {
        if netif::route_iface(*b.addr.ip())?.is_none() {
            bail!(
                "no route to backend {} in this network namespace",
                b.addr.ip()
            );
        }
    }
    let mut pins = Pins::new(&args.pin, OnExit::Unpin)?;
    let stop = signals::Stop::install()?;

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
    // them built in, like this project's CI, has nothing to load).
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
    for b in &args.backends {
        if let Some(iface) = netif::route_iface(*b.addr.ip())? {
            attached.attach(&iface)?;
        }
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

    // Every --interval: report (and once more at the end); meanwhile,
    // every 200 ms, take up the backends that `add` asked for.
    let take_up = || attached.take_up_pending(pins.dir(), &skel.maps.backends, &skel.maps.table);
    stop.every_doing(
        Duration::from_secs(args.report.interval),
        args.report.count,
        (Duration::from_millis(200), take_up),
        |_| {
            let r = report(&skel.maps.backends, &skel.maps.stats, &skel.maps.counters)?;
            print_report(&r, args.report.json)
        },
    )?;
    let names = attached.names();
    drop(attached);
    eprintln!("Detached from {names}.");
    Ok(())
}

fn open_pinned(dir: &Path) -> Result<LbMaps> {
    let open = |name: &str| pin::open_map(dir, name, "load_balancer");
    Ok(LbMaps {
        backends: open("backends")?,
        table: open("table")?,
        stats: open("stats")?,
        counters: open("counters")?,
    })
}

/// Gives the backend at `addr` a new state (draining or removed) and takes
/// it out of the selection table.
fn retire(lb: &LbMaps, dir: &Path, addr: &SocketAddrV4, state: State) -> Result<()> {
    let _lock = Lock::take(dir)?;
    let slot = find(&lb.backends, addr)?;
    let be = types::lb_backend {
        state: state.0,
        ..read_backend(&lb.backends, slot)?
    };
    write_backend(&lb.backends, slot, &be)?;
    rebuild_table(&lb.backends, &lb.table)
}

/// `add`: an existing backend changes in place; a new one is left pending
/// for the running balancer, which attaches to its interface before it
/// lets flows go there, and we wait for that.
fn add(lb: &LbMaps, dir: &Path, b: &Backend) -> Result<String> {
    let lock = Lock::take(dir)?;
    let all = all_backends(&lb.backends)?;
    let found = position(&all, &b.addr);
    if let Some(slot) = found {
        let old = all[slot as usize];
        let state = State(old.state);
        if state != State::LB_BACKEND_PENDING && state != State::LB_BACKEND_FAILED {
            let be = types::lb_backend {
                weight: b.weight,
                state: State::LB_BACKEND_ACTIVE.0,
                ..old
            };
            write_backend(&lb.backends, slot, &be)?;
            rebuild_table(&lb.backends, &lb.table)?;
            let weight = match old.weight == b.weight {
                true => format!("weight {}", b.weight),
                false => format!("weight {} -> {}", old.weight, b.weight),
            };
            return Ok(match state {
                State::LB_BACKEND_ACTIVE if old.weight == b.weight => {
                    format!(
                        "{} is already a backend with weight {}: nothing changed",
                        b.addr, b.weight
                    )
                }
                State::LB_BACKEND_ACTIVE => format!("{} was already a backend: {weight}", b.addr),
                _ => format!(
                    "{} was {}: active again, {weight}",
                    b.addr,
                    state_name(old.state)
                ),
            });
        }
    }
    let slot = match found {
        Some(slot) => slot,
        None => free_slot(&all)?,
    };
    let old = all[slot as usize];
    write_backend(
        &lb.backends,
        slot,
        &new_backend(&old, b, State::LB_BACKEND_PENDING),
    )?;
    drop(lock);

    let deadline = Instant::now() + ADD_TIMEOUT;
    loop {
        let state = State(read_backend(&lb.backends, slot)?.state);
        if state == State::LB_BACKEND_ACTIVE {
            return Ok(format!("{} added (weight {})", b.addr, b.weight));
        }
        if state != State::LB_BACKEND_PENDING || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not taken up: give the slot back as it was, unless the balancer got
    // there in the meantime.
    let _lock = Lock::take(dir)?;
    match State(read_backend(&lb.backends, slot)?.state) {
        State::LB_BACKEND_ACTIVE => Ok(format!("{} added (weight {})", b.addr, b.weight)),
        State::LB_BACKEND_FAILED => {
            write_backend(&lb.backends, slot, &old)?;
            bail!(
                "the running load_balancer could not take up {}: no route to it in its network \
                 namespace, or attaching to its interface failed (its output says which)",
                b.addr
            )
        }
        _ => {
            write_backend(&lb.backends, slot, &old)?;
            bail!(
                "the load_balancer using {} did not take up {} within {}s: is it still running?",
                dir.display(),
                b.addr,
                ADD_TIMEOUT.as_secs()
            )
        }
    }
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
    cli::run(|| match cli.manage {
        None => run(cli.run),
        Some(cmd) => manage(cmd),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(addr: u32, state: State, gen: u32) -> types::lb_backend {
        types::lb_backend {
            addr,
            port: 80,
            weight: 1,
            state: state.0,
            gen,
        }
    }

    #[test]
    fn new_backends_take_unused_slots_first_then_removed_ones() {
        let b: Backend = "10.0.0.9:80".parse().unwrap();
        let mut all = vec![
            slot(1, State::LB_BACKEND_REMOVED, 4),
            slot(2, State::LB_BACKEND_ACTIVE, 0),
        ];
        all.resize(MAX_BACKENDS as usize, types::lb_backend::default());
        assert_eq!(free_slot(&all).unwrap(), 2);
        // An unused slot keeps its generation; a reused one gets the next.
        assert_eq!(new_backend(&all[2], &b, State::LB_BACKEND_PENDING).gen, 0);
        for s in all.iter_mut().skip(2) {
            *s = slot(3, State::LB_BACKEND_DRAINING, 0);
        }
        assert_eq!(free_slot(&all).unwrap(), 0);
        assert_eq!(new_backend(&all[0], &b, State::LB_BACKEND_PENDING).gen, 5);
        // The generation wraps within the bits the conntrack mark has.
        let last = slot(1, State::LB_BACKEND_REMOVED, GEN_MASK);
        assert_eq!(new_backend(&last, &b, State::LB_BACKEND_PENDING).gen, 0);
        all[0] = slot(1, State::LB_BACKEND_ACTIVE, 0);
        assert!(free_slot(&all).is_err());
    }

    #[test]
    fn a_backend_given_twice_is_refused() {
        let b = |s: &str| s.parse::<Backend>().unwrap();
        assert!(check_unique(&[b("10.0.0.1:80"), b("10.0.0.2:80,3")]).is_ok());
        let err = check_unique(&[b("10.0.0.1:80,1"), b("10.0.0.1:80,3")]).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }
}
