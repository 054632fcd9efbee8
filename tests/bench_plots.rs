//! The benchmarks' plots, drawn from a small sample of results with the same
//! functions `make bench` uses, so that the drawing code cannot rot between
//! benchmark runs. No kernel needed.

use testkit::plot::{short, Point};
use testkit::plots;

/// The SVG's `<circle>` elements: one per plotted median.
fn circles(svg: &str) -> usize {
    svg.matches("<circle").count()
}

fn assert_well_formed(svg: &str) {
    assert!(svg.trim_start().starts_with("<svg"), "{svg:.200}");
    assert!(
        svg.trim_end().ends_with("</svg>"),
        "the document is not closed"
    );
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "unbalanced text elements"
    );
}

#[test]
fn a_point_is_the_median_and_range_of_its_runs() {
    let p = Point::from_runs(10.0, &[3.0, 1.0, 2.0, 5.0, 4.0]);
    assert_eq!((p.x, p.median, p.low, p.high), (10.0, 3.0, 1.0, 5.0));
    assert_eq!(short(1_000.0), "1k");
    assert_eq!(short(262_144.0), "262.14k");
    assert_eq!(short(2_500_000.0), "2.5M");
    assert_eq!(short(3.0), "3");
}

#[test]
fn xdp_pass_by_prefixes() {
    let sizes = [10.0, 1e3, 1e4, 1e5, 262_144.0];
    let plain: Vec<Point> = sizes
        .iter()
        .map(|&n| Point::from_runs(n, &[2.2, 2.3, 2.4]))
        .collect();
    let limited: Vec<Point> = sizes
        .iter()
        .map(|&n| Point::from_runs(n, &[3.9, 4.2, 4.3]))
        .collect();
    let svg =
        plots::xdp_pass_by_prefixes(plain, limited, "sample machine; `cmd`, 2026-01-01".into())
            .svg()
            .unwrap();
    assert_well_formed(&svg);
    if let Ok(path) = std::env::var("LEBPF_PLOT_SAMPLE") {
        std::fs::write(path, &svg).unwrap();
    }
    for text in [
        "xdp_firewall pass path",
        "pass, no rate limit",
        "pass, with rate limit",
        "3x the no-op",
        "IPv4 blocklist prefixes",
        "sample machine; `cmd`, 2026-01-01",
    ] {
        assert!(svg.contains(text), "{text:?} is not in the plot");
    }
    assert_eq!(circles(&svg), 10, "one marker per median");
}

#[test]
fn nothing_to_plot_is_an_error() {
    let err = plots::xdp_pass_by_prefixes(vec![], vec![], String::new())
        .svg()
        .unwrap_err();
    assert!(err.to_string().contains("nothing to plot"), "{err}");
}

fn sample(xs: &[f64], around: f64) -> Vec<Point> {
    xs.iter()
        .map(|&x| Point::from_runs(x, &[around * 0.9, around, around * 1.05]))
        .collect()
}

#[test]
fn buffers_by_batch_and_size() {
    let batches = [1.0, 8.0, 64.0, 512.0];
    let sizes = [16.0, 64.0, 256.0, 1024.0, 4096.0];
    for (plot, xs) in [
        (
            plots::buffers_by_batch(
                [
                    sample(&batches, 1.5e6),
                    sample(&batches, 1.9e6),
                    sample(&batches, 1.1e6),
                ],
                2.4e6,
                "m; `c`, d".into(),
            ),
            batches.len(),
        ),
        (
            plots::buffers_by_size(
                [
                    sample(&sizes, 1.5e6),
                    sample(&sizes, 1.9e6),
                    sample(&sizes, 1.1e6),
                ],
                2.4e6,
                64,
                "m; `c`, d".into(),
            ),
            sizes.len(),
        ),
    ] {
        let svg = plot.svg().unwrap();
        assert_well_formed(&svg);
        for text in [
            "ring buffer, libbpf consumer",
            "ring buffer, RingReader",
            "perf buffer",
            "the producer alone (ceiling)",
            "75% of the ceiling",
            "events per second",
        ] {
            assert!(svg.contains(text), "{text:?} is not in {}", plot.title);
        }
        assert_eq!(circles(&svg), 3 * xs, "{}", plot.title);
    }
}

#[test]
fn rebuild_by_objects() {
    let counts = [23.0, 46.0, 92.0];
    let plot = plots::rebuild_by_objects(
        sample(&counts, 4.0),
        sample(&counts, 12.0),
        "m; `cargo bench --bench rebuild`, d".into(),
    );
    let svg = plot.svg().unwrap();
    assert_well_formed(&svg);
    for text in [
        "Rebuild time against the number of BPF objects",
        "one .bpf.c touched",
        "every object rebuilt (changed flags)",
        "BPF objects in the build",
        "`cargo bench --bench rebuild`",
    ] {
        assert!(svg.contains(text), "{text:?} is not in the plot");
    }
    assert_eq!(circles(&svg), 2 * counts.len());
}

#[test]
fn lb_by_flows() {
    let flows = [100.0, 1e3, 1e4, 1e5, 1e6];
    let plot = plots::lb_by_flows(
        [
            sample(&flows, 6e5),
            sample(&flows, 4e5),
            sample(&flows, 7e5),
        ],
        "m; `cargo bench --bench load_balancer`, d".into(),
    );
    let svg = plot.svg().unwrap();
    assert_well_formed(&svg);
    for text in [
        "packets of established flows per CPU-second",
        "conntrack kfuncs",
        "nftables DNAT",
        "routing only",
        "established flows",
    ] {
        assert!(svg.contains(text), "{text:?} is not in the plot");
    }
    assert_eq!(circles(&svg), 3 * flows.len());
}
