//! BPF_PROG_TEST_RUN cost of tc_classifier, as a ratio to a no-op TC program
//! measured in the same run (bpf/bench/noop.bpf.c). The kernel times the repeats
//! itself and reports the average per run.
//!
//! `cargo bench --bench tc_classifier` (root).

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};

use libbpf_rs::{MapCore, MapFlags};

use learning_ebpf_rs::privileges::Cap;
use learning_ebpf_rs::skel::noop::NoopSkelBuilder;
use learning_ebpf_rs::skel::tc_classifier::TcClassifierSkelBuilder;
use testkit::bench::{can_run, load, median, test_run_ns};
use testkit::packets::{self, Segment, MAC_A, MAC_B};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 5;

/// A 118-byte IPv4/TCP frame to `dport`.
fn tcp_frame(dport: u16) -> Vec<u8> {
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), dport);
    packets::ipv4((MAC_B, MAC_A), src, dst, Segment::Syn, &[0u8; 64])
}

fn main() {
    if !can_run("tc_classifier", &[Cap::Bpf, Cap::NetAdmin]) {
        return;
    }
    let mut noop_obj = MaybeUninit::uninit();
    let noop = load(NoopSkelBuilder::default(), &mut noop_obj);
    let mut obj = MaybeUninit::uninit();
    let skel = load(TcClassifierSkelBuilder::default(), &mut obj);
    for port in [23u16, 2323, 8023] {
        skel.maps
            .drop_ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .unwrap();
    }
    let pass = tcp_frame(80);
    let drop = tcp_frame(23);

    // Interleave the programs round by round, so that machine noise hits
    // all of them alike; report medians.
    let (mut base, mut pass_ns, mut drop_ns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        base.push(test_run_ns(&noop.progs.tc_noop, &pass, REPEAT));
        pass_ns.push(test_run_ns(&skel.progs.tc_ingress, &pass, REPEAT));
        drop_ns.push(test_run_ns(&skel.progs.tc_ingress, &drop, REPEAT));
    }
    let (base, pass_ns, drop_ns) = (median(base), median(pass_ns), median(drop_ns));
    println!(
        "BPF_PROG_TEST_RUN, {REPEAT} repeats x {ROUNDS} rounds (median), 118-byte IPv4/TCP frame"
    );
    println!("{:<32} {:>10} {:>8}", "program", "ns/packet", "ratio");
    println!("{:<32} {:>10.1} {:>8.2}", "tc_noop (baseline)", base, 1.0);
    println!(
        "{:<32} {:>10.1} {:>8.2}",
        "tc_classifier, pass (port 80)",
        pass_ns,
        pass_ns / base
    );
    println!(
        "{:<32} {:>10.1} {:>8.2}",
        "tc_classifier, drop (port 23)",
        drop_ns,
        drop_ns / base
    );
}
