//! The benchmarks' plots: how a cost grows with the work, drawn as SVG by
//! plotters (its SVG backend writes text elements itself, so no font files
//! are needed). Each point is a median with its spread (the lowest and the
//! highest run) drawn as an error bar; a plot can carry horizontal lines for
//! ceilings and targets, and a caption with the machine, the command and the
//! date.
//!
//! A benchmark builds its [`Plot`] with a function of its own in
//! [`crate::plots`], from its measurements; `tests/bench_plots.rs` calls the
//! same functions with a small sample, so the drawing cannot rot between
//! benchmark runs.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use plotters::prelude::*;

/// One measured point: the median of several runs and their range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Point {
    /// The median and range of `runs` (at least one) at `x`.
    pub fn from_runs(x: f64, runs: &[f64]) -> Point {
        assert!(!runs.is_empty(), "a point needs at least one run");
        let (low, high) = bounds(runs.iter().copied());
        Point {
            x,
            median: crate::bench::median(runs.to_vec()),
            low,
            high,
        }
    }
}

/// One curve.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// A horizontal line across the plot (a ceiling, a target).
#[derive(Clone, Debug)]
pub struct Level {
    pub name: String,
    pub y: f64,
}

#[derive(Clone, Debug)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic x axis, for work that grows by factors (10, 1k, 10k).
    pub x_log: bool,
    pub series: Vec<Series>,
    pub levels: Vec<Level>,
    /// Machine, command and date: one line under the plot.
    pub caption: String,
    /// Where the legend goes: the corner the curves leave empty.
    pub legend: Corner,
}

/// A corner of the plotting area.
#[derive(Clone, Copy, Debug, Default)]
pub enum Corner {
    #[default]
    LowerRight,
    UpperLeft,
    UpperRight,
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

impl Plot {
    /// The plot as an SVG document.
    pub fn svg(&self) -> Result<String> {
        let points = || self.series.iter().flat_map(|s| &s.points);
        ensure!(points().next().is_some(), "{}: nothing to plot", self.title);
        ensure!(
            !self.x_log || points().all(|p| p.x > 0.0),
            "{}: a logarithmic axis needs x > 0",
            self.title
        );
        let (x_min, x_max) = bounds(points().map(|p| p.x));
        let y_max = points()
            .map(|p| p.high)
            .chain(self.levels.iter().map(|l| l.y))
            .fold(0.0, f64::max)
            * 1.12;

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE)?;
            let (chart_area, caption_area) = root.split_vertically(HEIGHT - 22);
            caption_area.draw_text(
                &self.caption,
                &("sans-serif", 12).into_font().color(&BLACK.mix(0.7)),
                (10, 4),
            )?;
            let mut builder = ChartBuilder::on(&chart_area);
            builder
                .caption(&self.title, ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(64);
            if self.x_log {
                let mut chart = builder.build_cartesian_2d(
                    (x_min / 1.5..x_max * 1.5).log_scale(),
                    0.0..y_max.max(f64::MIN_POSITIVE),
                )?;
                self.draw_into(&mut chart, x_min / 1.5, x_max * 1.5)?;
            } else {
                let pad = (x_max - x_min).max(1.0) * 0.05;
                let mut chart = builder.build_cartesian_2d(
                    x_min - pad..x_max + pad,
                    0.0..y_max.max(f64::MIN_POSITIVE),
                )?;
                self.draw_into(&mut chart, x_min - pad, x_max + pad)?;
            }
            root.present()?;
        }
        Ok(svg)
    }

    fn draw_into<'a, X>(
        &self,
        chart: &mut ChartContext<
            'a,
            SVGBackend<'a>,
            Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
        >,
        x_from: f64,
        x_to: f64,
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .light_line_style(BLACK.mix(0.04))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .draw()?;
        for (i, level) in self.levels.iter().enumerate() {
            let color = BLACK.mix(0.55 - 0.15 * (i % 2) as f64);
            chart
                .draw_series(LineSeries::new(
                    [(x_from, level.y), (x_to, level.y)],
                    color.stroke_width(2),
                ))?
                .label(&level.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().map(|p| (p.x, p.median)),
                    color.stroke_width(2),
                ))?
                .label(&series.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            // The range as a bar, with a dot at the median.
            chart.draw_series(series.points.iter().map(|p| {
                ErrorBar::new_vertical(p.x, p.low, p.median, p.high, color.filled(), 8)
            }))?;
        }
        chart
            .configure_series_labels()
            .position(match self.legend {
                Corner::LowerRight => SeriesLabelPosition::LowerRight,
                Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
                Corner::UpperRight => SeriesLabelPosition::UpperRight,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        Ok(())
    }

    /// Writes the SVG to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let svg = self.svg()?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
        Ok(())
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// 1500 -> "1.5k", 2000000 -> "2M": axis labels that fit.
pub fn short(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// "2 CPUs (MODEL), Linux RELEASE": the machine line of a caption.
pub fn machine() -> String {
    // Not available_parallelism(): a benchmark pins itself to one CPU.
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", release.trim())
}

/// Today's date, as `date -u +%F` prints it.
pub fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
