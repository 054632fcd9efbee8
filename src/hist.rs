//! Log2 histograms, printed the way bcc's tools print them:
//!
//! ```text
//!      usecs               : count    distribution
//!          0 -> 1          : 3        |**                                      |
//!          2 -> 3          : 52       |****************************************|
//! ```
//!
//! Slot 0 holds values 0 and 1; slot i >= 1 holds [2^i, 2^(i+1) - 1]. The BPF
//! side computes the slot with the same rule (log2 of the value, rounded
//! down).

/// The slot a value lands in.
pub fn slot(value: u64) -> usize {
    if value == 0 {
        0
    } else {
        63 - value.leading_zeros() as usize
    }
}

/// The range of values in slot `i`.
pub fn slot_range(i: usize) -> (u64, u64) {
    if i == 0 {
        (0, 1)
    } else {
        (1 << i, (1 << (i + 1)) - 1)
    }
}

/// The histogram as text, up to the last non-empty slot; `unit` heads the
/// value column ("usecs", "msecs", "nsecs").
pub fn format_log2(slots: &[u64], unit: &str) -> String {
    const WIDTH: u64 = 40;
    let last = slots.iter().rposition(|c| *c > 0);
    let max = slots.iter().copied().max().unwrap_or(0);
    let mut out = format!("{unit:>10}{:<11}: count    distribution\n", "");
    let Some(last) = last else {
        return out;
    };
    for (i, count) in slots.iter().enumerate().take(last + 1) {
        let (low, high) = slot_range(i);
        let stars = (count * WIDTH).div_ceil(max.max(1)) as usize;
        out.push_str(&format!(
            "{low:>10} -> {high:<10} : {count:<8} |{:<40}|\n",
            "*".repeat(stars.min(WIDTH as usize))
        ));
    }
    out
}

/// Reads every slot of a BPF array map of u64 counters (key: slot number).
pub fn read_map(map: &impl libbpf_rs::MapCore) -> anyhow::Result<Vec<u64>> {
    (0..map.max_entries())
        .map(|slot| {
            let value = map
                .lookup(&slot.to_ne_bytes(), libbpf_rs::MapFlags::ANY)?
                .ok_or_else(|| anyhow::anyhow!("histogram slot {slot} missing"))?;
            Ok(u64::from_ne_bytes(value[..8].try_into()?))
        })
        .collect()
}

#[derive(serde::Serialize)]
struct JsonSlot {
    low: u64,
    high: u64,
    count: u64,
}

#[derive(serde::Serialize)]
struct JsonHistogram<'a> {
    time: String,
    unit: &'a str,
    slots: Vec<JsonSlot>,
}

/// How a tool prints its histograms.
pub struct Style<'a> {
    /// The unit of the values: "usecs", "msecs"...
    pub unit: &'a str,
    /// A time line before each histogram (bars only; JSON has a time field).
    pub timestamp: bool,
}

impl<'a> Style<'a> {
    /// Bars in `unit`, without time lines.
    pub fn new(unit: &'a str) -> Style<'a> {
        Style {
            unit,
            timestamp: false,
        }
    }

    /// The same, with a time line before each histogram when `on` (`-T`).
    pub fn with_timestamps(self, on: bool) -> Style<'a> {
        Style {
            timestamp: on,
            ..self
        }
    }
}

/// Prints a histogram as bcc does (or, with `json`, as one JSON object per
/// line), with an optional timestamp line first.
pub fn print(slots: &[u64], style: &Style, json: bool) -> anyhow::Result<()> {
    let Style { unit, timestamp } = *style;
    if json {
        let hist = JsonHistogram {
            time: crate::report::clock(),
            unit,
            slots: slots
                .iter()
                .enumerate()
                .map(|(i, count)| {
                    let (low, high) = slot_range(i);
                    JsonSlot {
                        low,
                        high,
                        count: *count,
                    }
                })
                .collect(),
        };
        return crate::report::print_json(&hist);
    }
    if timestamp {
        println!("{}", crate::report::clock());
    }
    println!("{}", format_log2(slots, unit));
    Ok(())
}

/// Prints, every interval (or once, at Ctrl-C, without one), the histogram
/// of what the kernel counted since the previous print: the difference of two
/// readings, as the kernel only ever increments.
pub fn report_deltas(
    map: &impl libbpf_rs::MapCore,
    stop: &crate::signals::Stop,
    report: &crate::cli::ReportArgs,
    style: &Style,
) -> anyhow::Result<()> {
    let interval = report.interval_or(u64::MAX / 4);
    let mut prev = read_map(map)?;
    stop.every(interval, report.count(), |_| {
        let now = read_map(map)?;
        let delta: Vec<u64> = now.iter().zip(&prev).map(|(n, p)| n - p).collect();
        prev = now;
        print(&delta, style, report.json)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_log2() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(1), 0);
        assert_eq!(slot(2), 1);
        assert_eq!(slot(3), 1);
        assert_eq!(slot(4), 2);
        assert_eq!(slot(15_000), 13);
        for i in 1..20 {
            let (low, high) = slot_range(i);
            assert_eq!((slot(low), slot(high)), (i, i));
        }
    }

    #[test]
    fn formats_like_bcc() {
        let text = format_log2(&[0, 2, 4, 0, 0], "usecs");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            4,
            "header + slots up to the last non-empty one"
        );
        assert!(lines[0].contains("usecs") && lines[0].contains("distribution"));
        assert!(lines[2].contains("2 -> 3") && lines[2].contains(&"*".repeat(20)));
        assert!(lines[3].contains("4 -> 7") && lines[3].contains(&"*".repeat(40)));
        assert_eq!(format_log2(&[0; 4], "usecs").lines().count(), 1);
    }
}
