//! Ctrl-C and SIGTERM: set a flag that the main loop polls, so the binary
//! leaves through its normal path and detaches what it attached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Becomes true on SIGINT, SIGTERM or SIGHUP.
#[derive(Clone)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Installs the handler (once per process).
    pub fn install() -> Result<Stop> {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C/SIGTERM handler")?;
        Ok(Stop(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps for `period` in short steps. Returns false if a stop was
    /// requested meanwhile.
    pub fn sleep(&self, period: Duration) -> bool {
        let deadline = Instant::now() + period;
        while !self.requested() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        false
    }

    /// The report loop every aggregating tool has: calls `report` with the
    /// seconds since the previous call, every `interval`, until `count`
    /// reports are done or a stop is requested (then once more, so that
    /// nothing counted since the last report is lost).
    pub fn every(
        &self,
        interval: Duration,
        count: Option<u64>,
        report: impl FnMut(f64) -> Result<()>,
    ) -> Result<()> {
        self.every_doing(interval, count, Duration::MAX, || Ok(()), report)
    }

    /// [`Stop::every`], and meanwhile `chore` every `step` (a tool that
    /// also has work to do between reports). `step` is at most `interval`.
    pub fn every_doing(
        &self,
        interval: Duration,
        count: Option<u64>,
        step: Duration,
        mut chore: impl FnMut() -> Result<()>,
        mut report: impl FnMut(f64) -> Result<()>,
    ) -> Result<()> {
        let mut since = Instant::now();
        let mut done = 0;
        loop {
            let mut stopped = false;
            while !stopped && since.elapsed() < interval {
                let left = interval.saturating_sub(since.elapsed());
                stopped = !self.sleep(left.min(step));
                chore()?;
            }
            report(since.elapsed().as_secs_f64())?;
            since = Instant::now();
            done += 1;
            if stopped || count.is_some_and(|c| done >= c) {
                return Ok(());
            }
        }
    }
}
