//! The program under BPF_PROG_TEST_RUN next to the reference model: a
//! differential property test, fixed cases, and the rate limiter's bursts.

use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps;
use learning_ebpf_rs::skel::xdp_firewall::{types, XdpFirewallSkel, XdpFirewallSkelBuilder};
use testkit::chapter::assert_sample;
use testkit::require_privileges;

use crate::model::frames::{
    build, frame_strategy, prefix_strategy, Body, Damage, Ext, Frag, FrameSpec, L4,
};
use crate::model::{Model, RateConfig, Reason, REASONS};

/// Loads the program with the fake clock on and the given rate limit.
fn load(object: &mut MaybeUninit<libbpf_rs::OpenObject>, rate: RateConfig) -> XdpFirewallSkel<'_> {
    let mut open = XdpFirewallSkelBuilder::default()
        .open(object)
        .expect("open");
    let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
    rodata.cfg_fake_clock = true;
    rodata.cfg_interval_ns = rate.interval_ns;
    rodata.cfg_tolerance_ns = rate.tolerance_ns;
    open.load().expect("load xdp_firewall")
}

fn add_rules(skel: &XdpFirewallSkel, allow: &[Cidr], block: &[Cidr]) {
    let rule = types::fw_rule::default();
    for (list, is_block) in [(allow, false), (block, true)] {
        for cidr in list {
            let map = match (is_block, cidr) {
                (false, Cidr::V4(..)) => &skel.maps.allow_v4,
                (false, Cidr::V6(..)) => &skel.maps.allow_v6,
                (true, Cidr::V4(..)) => &skel.maps.block_v4,
                (true, Cidr::V6(..)) => &skel.maps.block_v6,
            };
            map.update(&cidr.lpm_key(), maps::bytes_of(&rule), MapFlags::ANY)
                .unwrap();
        }
    }
}

fn counters(skel: &XdpFirewallSkel) -> [(u64, u64); 5] {
    let mut out = [(0, 0); 5];
    for (i, slot) in out.iter_mut().enumerate() {
        let c: types::fw_counter =
            maps::percpu_sum(&skel.maps.counters, &(i as u32).to_ne_bytes()).unwrap();
        *slot = (c.packets, c.bytes);
    }
    out
}

fn block_hits(skel: &XdpFirewallSkel, prefix: &Cidr) -> u64 {
    let map = match prefix {
        Cidr::V4(..) => &skel.maps.block_v4,
        Cidr::V6(..) => &skel.maps.block_v6,
    };
    let value = map
        .lookup(&prefix.lpm_key(), MapFlags::ANY)
        .unwrap()
        .unwrap();
    maps::from_bytes::<types::fw_rule>(&value).unwrap().hits
}

/// Runs one frame at fake time `now`; returns the XDP action and the reason
/// whose counter moved.
fn run_frame(skel: &mut XdpFirewallSkel, frame: &[u8], now: u64) -> (i32, Option<Reason>) {
    skel.maps.bss_data.as_deref_mut().expect("bss").fake_now_ns = now;
    let before = counters(skel);
    let input = ProgramInput {
        data_in: Some(frame),
        ..Default::default()
    };
    let action = skel
        .progs
        .xdp_firewall
        .test_run(input)
        .expect("test_run")
        .return_value as i32;
    let after = counters(skel);
    let moved = REASONS
        .iter()
        .zip(before.iter().zip(&after))
        .find(|(_, (b, a))| a.0 != b.0)
        .map(|(r, _)| *r);
    (action, moved)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Debug)]
struct Scenario {
    allow: Vec<Cidr>,
    block: Vec<Cidr>,
    /// (pps, burst), or no rate limit.
    rate: Option<(u64, u64)>,
    /// (ns since the previous frame, frame)
    frames: Vec<(u64, FrameSpec)>,
}

const CASES: u32 = 40;

/// CASES, or proptest's own PROPTEST_CASES where it is set: the kernel
/// matrix's VMs, which emulate their CPUs, run 10 (2,500 frames).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}
const FRAMES_PER_CASE: usize = 250;

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    // Bursty traffic: mostly sub-millisecond gaps, now and then a pause
    // long enough for buckets to refill.
    let delta = prop_oneof![
        15 => Just(0u64),
        20 => 1u64..500_000,
        10 => 500_000u64..5_000_000,
        1 => 50_000_000u64..1_000_000_000,
    ];
    (
        prop::collection::vec(prefix_strategy(), 0..3),
        prop::collection::vec(prefix_strategy(), 0..8),
        // Mostly low rates: 16 sources sharing 250 frames must still hit
        // their limits often enough to test that path.
        prop::option::weighted(
            0.8,
            (prop_oneof![3 => 1u64..=20, 1 => 20u64..=2000], 1u64..=4),
        ),
        prop::collection::vec((delta, frame_strategy()), FRAMES_PER_CASE),
    )
        .prop_map(|(allow, block, rate, frames)| Scenario {
            allow,
            block,
            rate,
            frames,
        })
}

/// Runs a scenario through the kernel and the model; Err describes the first
/// disagreement, with the frame in hex so it can become a fixed test.
/// How often each reason came up over the whole run (0..5), so that the
/// test can show it exercised every path.
static SEEN: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];

fn differential(scenario: &Scenario, frames_run: &AtomicUsize) -> Result<(), String> {
    let rate = scenario.rate.map_or(RateConfig::default(), |(pps, burst)| {
        RateConfig::new(pps, burst)
    });
    let mut object = MaybeUninit::uninit();
    let mut skel = load(&mut object, rate);
    add_rules(&skel, &scenario.allow, &scenario.block);
    let mut model = Model::new(scenario.allow.clone(), scenario.block.clone(), rate);

    let mut now = 1_000_000_000u64;
    for (i, (delta, spec)) in scenario.frames.iter().enumerate() {
        now += delta;
        let (frame, _) = build(spec);
        let expected = model.process(&frame, now);
        let (action, moved) = run_frame(&mut skel, &frame, now);
        frames_run.fetch_add(1, Ordering::Relaxed);
        SEEN[expected as usize].fetch_add(1, Ordering::Relaxed);
        if action != expected.xdp_action() || moved != Some(expected) {
            return Err(format!(
                "frame #{i} at t={now}: model says {expected:?} (action {}), kernel returned \
                 action {action} and counted {moved:?}\n  spec: {spec:?}\n  frame: {}",
                expected.xdp_action(),
                hex(&frame)
            ));
        }
    }
    let kernel = counters(&skel);
    if kernel != model.counters {
        return Err(format!(
            "counters differ: kernel {kernel:?}, model {:?}",
            model.counters
        ));
    }
    let unique: BTreeSet<Cidr> = scenario.block.iter().copied().collect();
    for prefix in unique {
        let (k, m) = (
            block_hits(&skel, &prefix),
            model.hits.get(&prefix).copied().unwrap_or(0),
        );
        if k != m {
            return Err(format!("hits of {prefix}: kernel {k}, model {m}"));
        }
    }
    Ok(())
}

#[test]
fn differential_against_the_model() {
    require_privileges!("differential_against_the_model");
    if crate::refused("differential_against_the_model") {
        return;
    }
    let frames_run = AtomicUsize::new(0);
    let config = Config {
        cases: cases(),
        // Keep shrinking short: every step loads a program.
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    // Scenarios are random, so how often a verdict comes up varies from run
    // to run: with 10 scenarios, Allowed came up 39 to 542 times in 31 runs.
    // Rather than fail a run on a rare low draw, run another batch of new
    // scenarios, up to MAX_BATCHES; a generator that cannot reach a path
    // still fails.
    let seen = || -> Vec<(Reason, usize)> {
        REASONS
            .iter()
            .map(|r| (*r, SEEN[*r as usize].load(Ordering::Relaxed)))
            .collect()
    };
    let mut batches = 0;
    while batches < MAX_BATCHES && (batches == 0 || seen().iter().any(|(_, n)| *n < MIN_SEEN)) {
        if batches > 0 {
            // A runner counts the cases it passed: a new one for the next
            // batch, its random source split off the last one's.
            runner = TestRunner::new_with_rng(config.clone(), runner.new_rng());
        }
        batches += 1;
        let result = runner.run(&scenario_strategy(), |scenario| {
            differential(&scenario, &frames_run).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!(
                "the program and the model disagree (minimal case below; add it to \
                 fixed_cases):\n{e}"
            );
        }
    }
    let n = frames_run.load(Ordering::Relaxed);
    let want = batches * cases() as usize * FRAMES_PER_CASE;
    assert!(n >= want, "only {n} frames were compared, not {want}");
    let seen = seen();
    let summary = format!("differential: {n} frames, kernel and model agree; verdicts {seen:?}");
    eprintln!("{summary}");
    if batches > 1 {
        eprintln!("({batches} batches of {} scenarios)", cases());
    }
    assert_sample("docs/02-xdp_firewall.md", "differential_summary", &summary);
    for (reason, count) in seen {
        assert!(
            count >= MIN_SEEN,
            "{reason:?} came up only {count} times in {batches} batches: the generator misses a path"
        );
    }
}

/// Each verdict must come up at least this often...
const MIN_SEEN: usize = 50;
/// ...within this many batches of cases() scenarios.
const MAX_BATCHES: usize = 4;

fn ip_frame(src: usize, l4: L4) -> Body {
    Body::Ip {
        src,
        opts: 0,
        frag: Frag::None,
        exts: vec![],
        l4,
        payload: 4,
    }
}

fn spec(vlans: u8, body: Body, damage: Damage) -> FrameSpec {
    FrameSpec {
        vlans,
        body,
        damage,
    }
}

/// Cases chosen by hand, each with the reason the rules demand: they check
/// the model itself, and the kernel against it.
#[test]
fn fixed_cases() {
    require_privileges!("fixed_cases");
    if crate::refused("fixed_cases") {
        return;
    }
    let v6_exts = |n: usize| Body::Ip {
        src: 8,
        opts: 0,
        frag: Frag::None,
        exts: vec![Ext::Opts(60, 0); n],
        l4: L4::Udp,
        payload: 0,
    };
    let tcp_fragment = |frag: Frag| Body::Ip {
        src: 0,
        opts: 0,
        frag,
        exts: vec![],
        l4: L4::Tcp(0),
        payload: 0,
    };
    // Cut(n, d): at the end of header n (0: Ethernet, 1: IP, 2: L4...) plus d.
    let cases: Vec<(&str, FrameSpec, Reason)> = vec![
        (
            "ipv4 udp",
            spec(0, ip_frame(0, L4::Udp), Damage::None),
            Reason::Pass,
        ),
        (
            "ipv6 tcp",
            spec(0, ip_frame(8, L4::Tcp(2)), Damage::None),
            Reason::Pass,
        ),
        (
            "QinQ ipv4 icmp",
            spec(2, ip_frame(1, L4::Icmp), Damage::None),
            Reason::Pass,
        ),
        (
            "three VLAN tags",
            spec(3, ip_frame(0, L4::Udp), Damage::None),
            Reason::Malformed,
        ),
        (
            "ARP",
            spec(0, Body::NonIp(0x0806), Damage::None),
            Reason::Pass,
        ),
        (
            "ARP behind two tags",
            spec(2, Body::NonIp(0x0806), Damage::None),
            Reason::Pass,
        ),
        (
            "IHL 4",
            spec(0, ip_frame(0, L4::Udp), Damage::Ihl(4)),
            Reason::Malformed,
        ),
        (
            "IP version 6 in an IPv4 frame",
            spec(0, ip_frame(0, L4::Udp), Damage::Version(6)),
            Reason::Malformed,
        ),
        (
            "TCP data offset 4",
            spec(0, ip_frame(0, L4::Tcp(0)), Damage::TcpDoff(4)),
            Reason::Malformed,
        ),
        (
            "cut inside the IPv4 header",
            spec(0, ip_frame(0, L4::Udp), Damage::Cut(1, -1)),
            Reason::Malformed,
        ),
        (
            "cut inside the UDP header",
            spec(0, ip_frame(0, L4::Udp), Damage::Cut(2, -1)),
            Reason::Malformed,
        ),
        (
            "cut after the UDP header",
            spec(0, ip_frame(0, L4::Udp), Damage::Cut(2, 0)),
            Reason::Pass,
        ),
        (
            "tiny first fragment",
            spec(0, tcp_fragment(Frag::First), Damage::Cut(1, 4)),
            Reason::Malformed,
        ),
        (
            "later fragment has no L4 header",
            spec(0, tcp_fragment(Frag::Later), Damage::Cut(1, 0)),
            Reason::Pass,
        ),
        (
            "five IPv6 extension headers",
            spec(0, v6_exts(5), Damage::None),
            Reason::Pass,
        ),
        (
            "six IPv6 extension headers",
            spec(0, v6_exts(6), Damage::None),
            Reason::Malformed,
        ),
        (
            "IPv6 cut inside an extension header",
            spec(0, v6_exts(2), Damage::Cut(2, -1)),
            Reason::Malformed,
        ),
        (
            "allowlisted beats blocklisted",
            spec(0, ip_frame(4, L4::Udp), Damage::None),
            Reason::Allowed,
        ),
        (
            "blocked /24",
            spec(0, ip_frame(2, L4::Udp), Damage::None),
            Reason::Blocked,
        ),
        (
            "blocked /32 inside the /24",
            spec(0, ip_frame(3, L4::Udp), Damage::None),
            Reason::Blocked,
        ),
        (
            "blocked IPv6 /48",
            spec(0, ip_frame(11, L4::Udp), Damage::None),
            Reason::Blocked,
        ),
    ];
    let allow: Vec<Cidr> = vec!["192.0.2.0/24".parse().unwrap()];
    let block: Vec<Cidr> = [
        "192.0.2.1/32",
        "10.0.1.0/24",
        "10.0.1.200/32",
        "2001:db8:1::/48",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut object = MaybeUninit::uninit();
    let mut skel = load(&mut object, RateConfig::default());
    add_rules(&skel, &allow, &block);
    let mut model = Model::new(allow.clone(), block.clone(), RateConfig::default());
    for (name, spec, want) in cases {
        let (frame, _) = build(&spec);
        assert_eq!(
            model.process(&frame, 0),
            want,
            "{name}: the model ({})",
            hex(&frame)
        );
        let (action, moved) = run_frame(&mut skel, &frame, 0);
        assert_eq!(moved, Some(want), "{name}: the kernel ({})", hex(&frame));
        assert_eq!(action, want.xdp_action(), "{name}: the action");
    }
    // The most specific blocklist prefix takes the hit.
    assert_eq!(block_hits(&skel, &"10.0.1.200/32".parse().unwrap()), 1);
    assert_eq!(block_hits(&skel, &"10.0.1.0/24".parse().unwrap()), 1);
    assert_eq!(
        block_hits(&skel, &"192.0.2.1/32".parse().unwrap()),
        0,
        "allowlist won"
    );

    // Below 14 bytes the kernel refuses the test run itself.
    let err = skel
        .progs
        .xdp_firewall
        .test_run(ProgramInput {
            data_in: Some(&[0u8; 13]),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind(), libbpf_rs::ErrorKind::InvalidInput);
}

#[test]
fn rate_limit_bursts_then_refills() {
    require_privileges!("rate_limit_bursts_then_refills");
    if crate::refused("rate_limit_bursts_then_refills") {
        return;
    }
    // 10 packets per second (one per 100 ms), bursts of 3.
    let rate = RateConfig::new(10, 3);
    let mut object = MaybeUninit::uninit();
    let mut skel = load(&mut object, rate);
    let (a, _) = build(&spec(0, ip_frame(0, L4::Udp), Damage::None));
    let (b, _) = build(&spec(0, ip_frame(1, L4::Udp), Damage::None));
    let (v6_1, _) = build(&spec(0, ip_frame(8, L4::Udp), Damage::None));
    let (v6_2, _) = build(&spec(0, ip_frame(9, L4::Udp), Damage::None)); // same /64
    let t0 = 5_000_000_000;
    let mut expect = |frame: &[u8], now: u64, want: Reason, what: &str| {
        assert_eq!(run_frame(&mut skel, frame, now).1, Some(want), "{what}");
    };
    for i in 0..3 {
        expect(&a, t0, Reason::Pass, &format!("burst packet {i}"));
    }
    expect(&a, t0, Reason::RateLimited, "fourth at once");
    expect(&b, t0, Reason::Pass, "another source has its own bucket");
    expect(
        &a,
        t0 + 99_999_999,
        Reason::RateLimited,
        "just before one interval",
    );
    expect(&a, t0 + 100_000_000, Reason::Pass, "one interval later");
    expect(
        &a,
        t0 + 100_000_000,
        Reason::RateLimited,
        "only one token came back",
    );
    expect(&a, t0 + 10_000_000_000, Reason::Pass, "after a long pause");
    expect(&a, t0 + 10_000_000_000, Reason::Pass, "the burst is back");
    expect(&a, t0 + 10_000_000_000, Reason::Pass, "all of it");
    expect(&a, t0 + 10_000_000_000, Reason::RateLimited, "but no more");
    for i in 0..3 {
        expect(&v6_1, t0, Reason::Pass, &format!("IPv6 burst {i}"));
    }
    expect(
        &v6_2,
        t0,
        Reason::RateLimited,
        "an address in the same /64 shares the bucket",
    );
}
