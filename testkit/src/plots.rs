//! One function per benchmark plot: the titles, axes and reference lines,
//! around the points the benchmark measured. The benchmarks call them with
//! their results and write the SVG under docs/images/; tests/bench_plots.rs
//! calls them with a small sample.

use crate::plot::{Corner, Level, Plot, Point, Series};

/// A caption line: the machine, the command, the date.
pub fn caption(command: &str, date: &str) -> String {
    format!("{}; `{command}`, {date}", crate::plot::machine())
}

/// xdp_firewall's pass path, as a ratio to the no-op program, against the
/// number of blocklist prefixes: without and with the rate limiter.
pub fn xdp_pass_by_prefixes(plain: Vec<Point>, limited: Vec<Point>, caption: String) -> Plot {
    Plot {
        title: "xdp_firewall pass path: cost against blocklist size".into(),
        x_label: "IPv4 blocklist prefixes".into(),
        y_label: "ns per packet / no-op program".into(),
        x_log: true,
        series: vec![
            Series {
                name: "pass, no rate limit".into(),
                points: plain,
            },
            Series {
                name: "pass, with rate limit".into(),
                points: limited,
            },
        ],
        levels: vec![Level {
            name: "3x the no-op".into(),
            y: 3.0,
        }],
        caption,
        legend: Corner::LowerRight,
    }
}

/// Ring buffer (read by libbpf, and by `RingReader`) and perf buffer
/// events/s against the wakeup batch (16-byte events), with the producer's
/// own ceiling.
pub fn buffers_by_batch(curves: [Vec<Point>; 3], ceiling: f64, caption: String) -> Plot {
    buffers(
        "Events delivered against the wakeup batch (16-byte events)",
        "events per wakeup",
        curves,
        ceiling,
        caption,
    )
}

/// The same against the event size, a wakeup every `batch` events.
pub fn buffers_by_size(curves: [Vec<Point>; 3], ceiling: f64, batch: u32, caption: String) -> Plot {
    buffers(
        &format!("Events delivered against the event size (a wakeup every {batch})"),
        "bytes per event",
        curves,
        ceiling,
        caption,
    )
}

fn buffers(
    title: &str,
    x_label: &str,
    curves: [Vec<Point>; 3],
    ceiling: f64,
    caption: String,
) -> Plot {
    let names = [
        "ring buffer, libbpf consumer",
        "ring buffer, RingReader",
        "perf buffer",
    ];
    Plot {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "events per second".into(),
        x_log: true,
        series: named(names, curves),
        levels: vec![
            Level {
                name: "the producer alone (ceiling)".into(),
                y: ceiling,
            },
            Level {
                name: "75% of the ceiling".into(),
                y: 0.75 * ceiling,
            },
        ],
        caption,
        legend: Corner::LowerRight,
    }
}

/// The rebuild after touching one `.bpf.c`, and the rebuild of every
/// object, in seconds, against the number of BPF objects.
pub fn rebuild_by_objects(touch_one: Vec<Point>, all: Vec<Point>, caption: String) -> Plot {
    Plot {
        title: "Rebuild time against the number of BPF objects".into(),
        x_label: "BPF objects in the build".into(),
        y_label: "seconds (cargo build --bins, debug)".into(),
        x_log: false,
        series: vec![
            Series {
                name: "one .bpf.c touched".into(),
                points: touch_one,
            },
            Series {
                name: "every object rebuilt (changed flags)".into(),
                points: all,
            },
        ],
        levels: vec![],
        caption,
        legend: Corner::UpperLeft,
    }
}

/// The load balancer's packets of established flows per second of its CPU,
/// against the number of flows: the program with conntrack kfuncs,
/// nftables DNAT, and routing without balancing.
pub fn lb_by_flows(curves: [Vec<Point>; 3], caption: String) -> Plot {
    let names = ["conntrack kfuncs", "nftables DNAT", "routing only"];
    Plot {
        title: "load_balancer: packets of established flows per CPU-second".into(),
        x_label: "established flows".into(),
        y_label: "packets per second of the balancer's CPU".into(),
        x_log: true,
        series: named(names, curves),
        levels: vec![],
        caption,
        legend: Corner::UpperRight,
    }
}

/// One series per name, in order.
fn named<const N: usize>(names: [&str; N], curves: [Vec<Point>; N]) -> Vec<Series> {
    names
        .iter()
        .zip(curves)
        .map(|(name, points)| Series {
            name: name.to_string(),
            points,
        })
        .collect()
}
