//! Small helpers the benchmarks share.

/// The median of some measurements (the upper one of the middle two for an
/// even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// What BPF_PROG_TEST_RUN measured: the average ns per run of `prog` on
/// `frame` over `repeat` runs (the kernel times the repeats itself).
pub fn test_run_ns(prog: &libbpf_rs::ProgramMut, frame: &[u8], repeat: u32) -> f64 {
    let input = libbpf_rs::ProgramInput {
        data_in: Some(frame),
        repeat,
        ..Default::default()
    };
    prog.test_run(input).expect("test_run").duration.as_nanos() as f64
}
