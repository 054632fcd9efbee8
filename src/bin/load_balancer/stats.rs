//! What `stats` and the running balancer report: each backend's
//! connections, packets and bytes, and the program-wide counters.

use anyhow::{Context, Result};
use libbpf_rs::MapCore;
use serde::Serialize;

use learning_ebpf_rs::skel::load_balancer::types;
use learning_ebpf_rs::{maps, report};

use crate::backends::{all_backends, socket_addr, state_name};

#[derive(Serialize)]
pub struct BackendReport {
    pub backend: String,
    pub state: &'static str,
    pub weight: u32,
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct Report {
    pub backends: Vec<BackendReport>,
    /// The program-wide counters, summed over the CPUs.
    pub new_flows: u64,
    pub dropped_no_backend: u64,
    pub dropped_stray: u64,
    pub dropped_unroutable: u64,
    pub conntrack_errors: u64,
    /// Packets and bytes of removed backends' flows, after a new backend
    /// took their slot (and so their row).
    pub retired_packets: u64,
    pub retired_bytes: u64,
}

pub fn report(
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

pub fn print_report(r: &Report, json: bool) -> Result<()> {
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
