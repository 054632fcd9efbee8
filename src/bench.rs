//! Small helpers the benchmarks share.

/// The median of some measurements (the upper one of the middle two for an
/// even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
