//! The firewall's report: packets and bytes per verdict, and the rate of
//! each over the last interval.

use anyhow::Result;
use libbpf_rs::MapCore;
use serde::Serialize;

use learning_ebpf_rs::skel::xdp_firewall::types;
use learning_ebpf_rs::{maps, report};

pub const REASONS: [(types::fw_reason, &str); 5] = [
    (types::fw_reason::FW_PASS, "pass"),
    (types::fw_reason::FW_ALLOWED, "allowed"),
    (types::fw_reason::FW_BLOCKED, "blocked"),
    (types::fw_reason::FW_RATE_LIMITED, "rate_limited"),
    (types::fw_reason::FW_MALFORMED, "malformed"),
];

/// Totals per reason, summed over CPUs, in REASONS order.
pub fn read_counters(map: &impl MapCore) -> Result<Vec<types::fw_counter>> {
    REASONS
        .iter()
        .map(|(reason, _)| maps::percpu_sum(map, &reason.0.to_ne_bytes()))
        .collect()
}

#[derive(Serialize)]
pub struct Row {
    pub reason: &'static str,
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
}

impl report::TableRow for Row {
    fn header() -> String {
        format!(
            "{:<13} {:>12} {:>14} {:>12}",
            "VERDICT", "PACKETS", "BYTES", "PKT/S"
        )
    }

    fn line(&self) -> String {
        format!(
            "{:<13} {:>12} {:>14} {:>12.1}",
            self.reason, self.packets, self.bytes, self.pps
        )
    }
}

pub fn report(
    now: &[types::fw_counter],
    prev: &[types::fw_counter],
    secs: f64,
    json: bool,
) -> Result<()> {
    let counters: Vec<Row> = REASONS
        .iter()
        .zip(now.iter().zip(prev))
        .map(|((_, reason), (n, p))| Row {
            reason,
            packets: n.packets,
            bytes: n.bytes,
            pps: report::rate(n.packets - p.packets, secs),
        })
        .collect();
    report::print_counters(counters, secs, json)
}
