//! xdp_firewall benchmarks, each a ratio against a baseline measured in the
//! same run:
//!
//! 1. BPF_PROG_TEST_RUN ns/packet with 10,000 blocklist prefixes loaded
//!    (pass path, pass path with the rate limiter, drop path), against a
//!    no-op XDP program.
//! 2. The pass path against the blocklist's size (10 to 262,144 prefixes),
//!    without and with the rate limiter, plotted as
//!    docs/images/bench-xdp-prefixes.svg.
//! 3. A bounded flood over a veth pair dropped by XDP (skb and native mode)
//!    against an nftables drop rule (netdev ingress, nftables' earliest
//!    hook): packets dropped per CPU-second.
//!
//! `cargo bench --bench xdp_firewall` (root).

use std::mem::MaybeUninit;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramMut};

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::privileges::Cap;
use learning_ebpf_rs::skel::noop::NoopSkelBuilder;
use learning_ebpf_rs::skel::trafficgen::TrafficgenSkelBuilder;
use learning_ebpf_rs::skel::xdp_firewall::{XdpFirewallSkel, XdpFirewallSkelBuilder};
use libbpf_rs::OpenObject;
use testkit::bench::{can_run, clock_ticks, cpu_jiffies, flood, load, median, test_run_ns};
use testkit::packets::{self, Segment, MAC_A, MAC_B};
use testkit::plot::{self, Point};
use testkit::plots;
use testkit::{run_cmd, BpfFs, NetNs, Running, TwoHosts, DEV_A, DEV_B, IP4_A, IP4_B};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 5;
const PREFIXES: u32 = 10_000;

/// A 60-byte IPv4/UDP frame from `src` to `dst`, port 9.
fn udp_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let src = SocketAddrV4::new(src.into(), 40000);
    let dst = SocketAddrV4::new(dst.into(), 9);
    packets::ipv4((MAC_B, MAC_A), src, dst, Segment::Udp, &[0u8; 18])
}

/// 10,000 distinct prefixes in 100.64.0.0/10, /20 to /32: none contains the
/// passing source, and the trie gets real depth.
fn blocklist() -> Vec<Cidr> {
    (0..PREFIXES)
        .map(|i| {
            let len = 20 + (i % 13) as u8;
            let addr = 0x6440_0000u32 | (i.wrapping_mul(2_654_435_761) & 0x003f_ffff);
            let bytes = learning_ebpf_rs::cidr::mask_bits(&addr.to_be_bytes(), len);
            Cidr::from_parts(&bytes, len).unwrap()
        })
        .collect()
}

/// The firewall with the rate limiter on, set so high that it never limits:
/// the cost of the bucket update is what the benchmarks see.
fn load_limited(object: &mut MaybeUninit<OpenObject>) -> XdpFirewallSkel<'_> {
    let mut open = XdpFirewallSkelBuilder::default().open(object).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.cfg_interval_ns = 1;
    rodata.cfg_tolerance_ns = u64::MAX / 2;
    open.load().unwrap()
}

fn test_run_bench() {
    let mut noop_obj = MaybeUninit::uninit();
    let noop = load(NoopSkelBuilder::default(), &mut noop_obj);

    // Two firewalls: one without, one with the rate limiter.
    let mut plain_obj = MaybeUninit::uninit();
    let plain = load(XdpFirewallSkelBuilder::default(), &mut plain_obj);
    let mut limited_obj = MaybeUninit::uninit();
    let limited = load_limited(&mut limited_obj);

    let rule = 0u64.to_ne_bytes();
    let prefixes = blocklist();
    for skel in [&plain, &limited] {
        for p in &prefixes {
            skel.maps
                .block_v4
                .update(&p.lpm_key(), &rule, MapFlags::ANY)
                .unwrap();
        }
        let blocked: Cidr = "192.0.2.0/24".parse().unwrap();
        skel.maps
            .block_v4
            .update(&blocked.lpm_key(), &rule, MapFlags::ANY)
            .unwrap();
    }
    let pass = udp_frame([10, 0, 0, 1], [10, 0, 0, 2]);
    let drop = udp_frame([192, 0, 2, 1], [10, 0, 0, 2]);
    // The peer's list: as many source addresses (its map holds exact
    // addresses, 10,000 at most), the blocked one among them.
    let mut addrs: Vec<[u8; 4]> = prefixes
        .iter()
        .take(PREFIXES as usize - 1)
        .map(|p| p.lpm_key()[4..8].try_into().unwrap())
        .collect();
    addrs.push([192, 0, 2, 1]);
    let peer = XdpFilter::load(&addrs);

    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("xdp_noop (baseline)", vec![]),
        ("pass, no rate limit", vec![]),
        ("pass, with rate limit", vec![]),
        ("drop (blocklisted)", vec![]),
        ("xdp-filter pass", vec![]),
        ("xdp-filter drop", vec![]),
    ];
    for _ in 0..ROUNDS {
        if let Some(peer) = &peer {
            // Its verdicts are checked: the peer must do the same job.
            let ns = |frame: &[u8], verdict: u32| {
                let out = learning_ebpf_rs::test_run::run(peer.fd(), frame, REPEAT).unwrap();
                assert_eq!(out.retval, verdict, "xdp-filter's verdict");
                out.ns_per_run
            };
            rows[4].1.push(ns(&pass, XDP_PASS));
            rows[5].1.push(ns(&drop, XDP_DROP));
        }
        rows[0]
            .1
            .push(test_run_ns(&noop.progs.xdp_noop, &pass, REPEAT));
        rows[1]
            .1
            .push(test_run_ns(&plain.progs.xdp_firewall, &pass, REPEAT));
        rows[2]
            .1
            .push(test_run_ns(&limited.progs.xdp_firewall, &pass, REPEAT));
        rows[3]
            .1
            .push(test_run_ns(&plain.progs.xdp_firewall, &drop, REPEAT));
    }
    let medians: Vec<(&str, f64)> = rows
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n, median(v)))
        .collect();
    let base = medians[0].1;
    println!(
        "BPF_PROG_TEST_RUN, {REPEAT} repeats x {ROUNDS} rounds (median), {} blocklist prefixes, {}-byte IPv4/UDP frame",
        PREFIXES + 1,
        pass.len()
    );
    println!("{:<28} {:>10} {:>8}", "program", "ns/packet", "ratio");
    for (name, ns) in &medians {
        println!("{name:<28} {ns:>10.1} {:>8.2}", ns / base);
    }
    if medians.len() == 6 {
        println!(
            "ours / xdp-filter on the same frames: pass {:.2}, drop {:.2}",
            medians[1].1 / medians[4].1,
            medians[3].1 / medians[5].1
        );
    }
    println!("target: pass path at most 4x the no-op\n");
}

// ---------------------------------------------------------------------------
// The peer: xdp-filter (xdp-tools), on the same frames
// ---------------------------------------------------------------------------

/// xdp-filter's program, loaded by xdp-filter itself on a veth of a
/// namespace of its own, with `-f ipv4,ipv6` (address filtering only, as
/// the firewall's blocklist) and `n` source addresses to drop written into
/// its pinned `filter_ipv4` map. Unloaded (pins and all) on drop.
struct XdpFilter {
    ns: NetNs,
    prog: std::os::fd::OwnedFd,
    made_xdp_dir: bool,
}

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_FILTER_MAP: &str = "/sys/fs/bpf/xdp-filter/filter_ipv4";
/// libxdp's own directory in bpffs, made on first use.
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";

impl XdpFilter {
    /// None (and why) when xdp-filter is not installed.
    fn load(addrs: &[[u8; 4]]) -> Option<XdpFilter> {
        if Command::new("xdp-filter").arg("help").output().is_err() {
            println!(
                "xdp-filter not found: the peer's rows need xdp-tools (`make setup` installs it)\n"
            );
            return None;
        }
        let made_xdp_dir = !std::path::Path::new(LIBXDP_DIR).exists();
        let ns = NetNs::new().unwrap();
        ns.ip(&["link", "add", "xf0", "type", "veth", "peer", "name", "xf1"])
            .unwrap();
        ns.ip(&["link", "set", "xf0", "up"]).unwrap();
        ns.ip(&["link", "set", "xf1", "up"]).unwrap();
        // nsenter, not `ip netns exec`: xdp-filter pins under /sys/fs/bpf,
        // which `ip netns exec` hides behind a new /sys.
        let enter = format!("--net=/run/netns/{}", ns.name());
        run_cmd(Command::new("nsenter").args([
            enter.as_str(),
            "xdp-filter",
            "load",
            "-m",
            "skb",
            "-f",
            "ipv4,ipv6",
            "xf0",
        ]))
        .unwrap();
        let filter = XdpFilter {
            ns,
            prog: prog_of(&enter),
            made_xdp_dir,
        };
        let map = libbpf_rs::MapHandle::from_pinned_path(XDP_FILTER_MAP).unwrap();
        // The value is per CPU: bit 0 (drop by source) on every CPU.
        let cpus = libbpf_rs::num_possible_cpus().unwrap();
        let value = vec![1u64.to_ne_bytes().to_vec(); cpus];
        for a in addrs {
            map.update_percpu(a, &value, MapFlags::ANY).unwrap();
        }
        Some(filter)
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.prog.as_fd()
    }
}

/// The XDP program attached to xf0 in the namespace `enter` names, by id.
fn prog_of(enter: &str) -> std::os::fd::OwnedFd {
    let out =
        run_cmd(Command::new("nsenter").args([enter, "ip", "-j", "-d", "link", "show", "xf0"]))
            .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = json[0]["xdp"]["prog"]["id"]
        .as_u64()
        .expect("xdp-filter's program id") as u32;
    // SAFETY: a new fd for the program with this id, or -1.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    assert!(fd >= 0, "no program with id {id}");
    // SAFETY: the fd is new and ours.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        let enter = format!("--net=/run/netns/{}", self.ns.name());
        let _ = Command::new("nsenter")
            .args([enter.as_str(), "xdp-filter", "unload", "xf0"])
            .output();
        if self.made_xdp_dir {
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}

// ---------------------------------------------------------------------------
// Scaling: the pass path against the blocklist's size
// ---------------------------------------------------------------------------

/// The sizes plotted: from a handful of rules to the trie's max_entries.
const SIZES: [u32; 5] = [10, 1_000, 10_000, 100_000, 262_144];

/// `n` distinct IPv4 prefixes, /16 to /32, spread over 1.0.0.0 to
/// 99.255.255.255 without 10.0.0.0/8 (the passing source is 10.0.0.1).
fn distinct_blocklist(n: u32) -> Vec<Cidr> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n as usize);
    let mut i = 0u32;
    while out.len() < n as usize {
        i += 1;
        let len = 16 + (i % 17) as u8;
        let mixed = i.wrapping_mul(2_654_435_761);
        let first = 1 + (mixed >> 24) % 99;
        if first == 10 {
            continue;
        }
        let addr = (first << 24) | (mixed & 0x00ff_ffff);
        let bytes = learning_ebpf_rs::cidr::mask_bits(&addr.to_be_bytes(), len);
        if seen.insert((bytes.clone(), len)) {
            out.push(Cidr::from_parts(&bytes, len).unwrap());
        }
    }
    out
}

/// The pass path without and with the rate limiter, as ratios to the no-op
/// in the same round, for each blocklist size in SIZES; printed, and
/// plotted into docs/images/bench-xdp-prefixes.svg.
fn scaling_bench() {
    let mut noop_obj = MaybeUninit::uninit();
    let noop = load(NoopSkelBuilder::default(), &mut noop_obj);
    let pass = udp_frame([10, 0, 0, 1], [10, 0, 0, 2]);
    let (mut plain_points, mut limited_points) = (vec![], vec![]);
    println!("pass path against the blocklist's size: ratio to the no-op, median of {ROUNDS} rounds [lowest, highest]");
    println!(
        "{:>9} {:>22} {:>22}",
        "prefixes", "no rate limit", "with rate limit"
    );
    for n in SIZES {
        let mut plain_obj = MaybeUninit::uninit();
        let plain = load(XdpFirewallSkelBuilder::default(), &mut plain_obj);
        let mut limited_obj = MaybeUninit::uninit();
        let limited = load_limited(&mut limited_obj);
        let rule = 0u64.to_ne_bytes();
        let prefixes = distinct_blocklist(n);
        for map in [&plain.maps.block_v4, &limited.maps.block_v4] {
            for p in &prefixes {
                map.update(&p.lpm_key(), &rule, MapFlags::ANY).unwrap();
            }
        }
        let (mut plain_runs, mut limited_runs) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            let base = test_run_ns(&noop.progs.xdp_noop, &pass, REPEAT);
            plain_runs.push(test_run_ns(&plain.progs.xdp_firewall, &pass, REPEAT) / base);
            limited_runs.push(test_run_ns(&limited.progs.xdp_firewall, &pass, REPEAT) / base);
        }
        let (p, l) = (
            Point::from_runs(n as f64, &plain_runs),
            Point::from_runs(n as f64, &limited_runs),
        );
        println!(
            "{n:>9} {:>8.2} [{:.2}, {:.2}] {:>8.2} [{:.2}, {:.2}]",
            p.median, p.low, p.high, l.median, l.low, l.high
        );
        plain_points.push(p);
        limited_points.push(l);
    }
    let plot = plots::xdp_pass_by_prefixes(
        plain_points,
        limited_points,
        plots::caption(
            match std::env::args().any(|a| a == "--no-flood") {
                true => "cargo bench --bench xdp_firewall -- --no-flood",
                false => "cargo bench --bench xdp_firewall",
            },
            &plot::today(),
        ),
    );
    plot.write(&images().join("bench-xdp-prefixes.svg"))
        .unwrap();
    println!();
}

/// Where the plots go: the book's images.
fn images() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images")
}

// ---------------------------------------------------------------------------
// Flood: packets dropped per CPU-second
// ---------------------------------------------------------------------------

const FLOOD_PACKETS: usize = 2_000_000;
const FLOOD_LIMIT: Duration = Duration::from_secs(20);

/// Sends FLOOD_PACKETS xdp_frames into `dev` in namespace `ns`: the
/// trafficgen program run in live-frames mode redirects each repeat there.
fn flood_xdp_frames(ns: &NetNs, gen: &ProgramMut, frame: &[u8]) -> usize {
    // The program is not Sync; its fd (a number) crosses into the thread.
    let prog_fd = gen.as_fd().as_raw_fd();
    ns.run(|| {
        // SAFETY: the options point at `frame`, which outlives the call.
        let rc = unsafe {
            let mut opts: libbpf_sys::bpf_test_run_opts = std::mem::zeroed();
            opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
            opts.data_in = frame.as_ptr().cast();
            opts.data_size_in = frame.len() as u32;
            opts.repeat = FLOOD_PACKETS as i32;
            opts.flags = libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES;
            libbpf_sys::bpf_prog_test_run_opts(prog_fd, &mut opts)
        };
        assert_eq!(
            rc,
            0,
            "live-frames test_run: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
    });
    FLOOD_PACKETS
}

#[derive(Clone, Copy)]
enum Generator<'a> {
    /// A raw packet socket: the sender builds an sk_buff per frame.
    AfPacket,
    /// xdp_frames redirected by trafficgen: no sk_buff, as from a NIC.
    XdpFrames(&'a ProgramMut<'a>),
}

/// Floods and returns (packets sent, busy CPU-seconds, wall seconds).
fn measure(hosts: &TwoHosts, gen: Generator, frame: &[u8]) -> (usize, f64, f64) {
    let hz = clock_ticks();
    let (busy0, _) = cpu_jiffies(None);
    let t0 = Instant::now();
    let sent = match gen {
        Generator::AfPacket => flood(
            &hosts.b,
            DEV_B,
            &[frame.to_vec()],
            FLOOD_PACKETS,
            FLOOD_LIMIT,
        ),
        Generator::XdpFrames(prog) => flood_xdp_frames(&hosts.b, prog, frame),
    };
    let wall = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(50)); // let softirq backlog drain
    let (busy1, _) = cpu_jiffies(None);
    (sent, (busy1 - busy0) as f64 / hz, wall)
}

/// Packets the interface saw dropped, from its XDP or nft counters.
fn nft_drops(ns: &NetNs) -> u64 {
    let out = run_cmd(
        ns.command("nft")
            .args(["-j", "list", "table", "netdev", "lebpf"]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum()
}

fn firewall_drops(fs: &BpfFs) -> u64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdp_firewall"))
        .args(["stats", "--json", "--pin"])
        .arg(fs.path().join("fw"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["counters"][2]["packets"].as_u64().unwrap()
}

/// One flood: packets sent, busy CPU-seconds, wall seconds, packets dropped.
struct Run {
    sent: usize,
    cpu: f64,
    wall: f64,
    dropped: u64,
}

fn flood_bench(gen: Generator, title: &str) {
    let hosts = TwoHosts::new().unwrap();
    let frame = udp_frame(IP4_B.octets(), IP4_A.octets());
    let fs = BpfFs::new().unwrap();
    if let Generator::XdpFrames(_) = gen {
        // A veth accepts xdp_frames only with NAPI on: GRO turns it on
        // without attaching an XDP program (the nftables case needs that).
        run_cmd(hosts.a.command("ethtool").args(["-K", DEV_A, "gro", "on"])).unwrap();
    }
    let nft_setup = [
        "add table netdev lebpf".to_string(),
        format!(
            "add chain netdev lebpf in {{ type filter hook ingress device {DEV_A} priority 0; }}"
        ),
        format!("add rule netdev lebpf in ip saddr {IP4_B} counter drop"),
    ];
    // Warm up (caches, page pools).
    measure(&hosts, gen, &frame);

    let mut results: Vec<(&str, Vec<Run>)> = vec![
        ("sender only (peer down)", vec![]),
        ("nftables netdev ingress drop", vec![]),
        ("XDP drop, skb mode", vec![]),
        ("XDP drop, native mode", vec![]),
    ];
    for _ in 0..3 {
        // Sender only: with the peer down, veth drops at once.
        hosts.a.ip(&["link", "set", DEV_A, "down"]).unwrap();
        let (sent, cpu, wall) = measure(&hosts, gen, &frame);
        hosts.a.ip(&["link", "set", DEV_A, "up"]).unwrap();
        results[0].1.push(Run {
            sent,
            cpu,
            wall,
            dropped: 0,
        });

        for cmd in &nft_setup {
            run_cmd(hosts.a.command("nft").arg(cmd)).unwrap();
        }
        let (sent, cpu, wall) = measure(&hosts, gen, &frame);
        let dropped = nft_drops(&hosts.a);
        run_cmd(
            hosts
                .a
                .command("nft")
                .args(["delete", "table", "netdev", "lebpf"]),
        )
        .unwrap();
        results[1].1.push(Run {
            sent,
            cpu,
            wall,
            dropped,
        });

        for (i, mode) in [(2, "skb"), (3, "native")] {
            let mut cmd = hosts.a.command(env!("CARGO_BIN_EXE_xdp_firewall"));
            cmd.args(["-i", DEV_A, "--mode", mode, "--interval", "3600", "--block"])
                .arg(format!("{IP4_B}/32"))
                .arg("--pin")
                .arg(fs.path().join("fw"));
            let mut fw = Running::spawn(cmd).unwrap();
            fw.wait_for_stderr("Hit Ctrl-C", Duration::from_secs(20))
                .unwrap();
            let (sent, cpu, wall) = measure(&hosts, gen, &frame);
            let dropped = firewall_drops(&fs);
            fw.signal(libc::SIGINT).unwrap();
            fw.finish(Duration::from_secs(10)).unwrap();
            results[i].1.push(Run {
                sent,
                cpu,
                wall,
                dropped,
            });
        }
    }

    let med = |runs: &[Run], f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let sender_cpu_per_pkt = med(&results[0].1, &|r| r.cpu / r.sent as f64);
    println!(
        "Flood over a veth pair, {title}: {FLOOD_PACKETS} x {}-byte UDP frames from a blocked \
         source; 3 rounds, medians",
        frame.len()
    );
    println!(
        "{:<30} {:>9} {:>10} {:>9} {:>14} {:>16}",
        "dropper", "sent/s", "dropped", "CPU-s", "drops/CPU-s", "drops/rx-CPU-s"
    );
    let mut per_cpu = Vec::new();
    for (name, runs) in &results {
        let rate = med(runs, &|r| r.sent as f64 / r.wall);
        let cpu = med(runs, &|r| r.cpu);
        let dropped = med(runs, &|r| r.dropped as f64);
        let per_cpu_s = med(runs, &|r| r.dropped as f64 / r.cpu);
        // Receive side only: the sender's CPU per packet subtracted.
        let rx = med(runs, &|r| {
            r.dropped as f64 / (r.cpu - sender_cpu_per_pkt * r.sent as f64).max(1e-3)
        });
        per_cpu.push((per_cpu_s, rx));
        println!("{name:<30} {rate:>9.0} {dropped:>10.0} {cpu:>9.2} {per_cpu_s:>14.0} {rx:>16.0}");
    }
    let (nft, nft_rx) = per_cpu[1];
    for (i, label) in [(2, "skb"), (3, "native")] {
        let (x, x_rx) = per_cpu[i];
        println!(
            "XDP {label} / nftables: {:.2}x per CPU-second, {:.2}x per receive CPU-second",
            x / nft,
            x_rx / nft_rx
        );
    }
    println!("target: native XDP at least 3x nftables\n");
}

fn main() {
    if !can_run("xdp_firewall", &[Cap::Bpf, Cap::NetAdmin]) {
        return;
    }
    test_run_bench();
    scaling_bench();
    if std::env::args().any(|a| a == "--no-flood") {
        return;
    }
    // The generator's program: the veth-b index is the same in every
    // namespace TwoHosts makes (the pair is created inside them).
    let probe = TwoHosts::new().unwrap();
    let ifindex = probe.b.ifindex(DEV_B).unwrap();
    drop(probe);
    let mut gen_obj = MaybeUninit::uninit();
    let mut open = TrafficgenSkelBuilder::default().open(&mut gen_obj).unwrap();
    open.maps.rodata_data.as_deref_mut().unwrap().target_ifindex = ifindex;
    let gen = open.load().unwrap();
    flood_bench(
        Generator::XdpFrames(&gen.progs.xdp_trafficgen),
        "xdp_frames redirected in (no sk_buff, as from a NIC)",
    );
    flood_bench(
        Generator::AfPacket,
        "AF_PACKET sendmmsg x64 (the sender builds an sk_buff)",
    );
}
