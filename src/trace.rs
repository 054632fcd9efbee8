//! Helpers for the tracing lessons: strings and timestamps from BPF events,
//! the loop that reads a ring or perf buffer until Ctrl-C, and the tracefs
//! check that tracepoint programs need.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::signals::Stop;

/// Where the events arrive: a ring buffer or a perf buffer, built with its
/// callback, behind one interface.
pub enum Events<'a> {
    Ring(libbpf_rs::RingBuffer<'a>),
    Perf(libbpf_rs::PerfBuffer<'a>),
}

impl Events<'_> {
    /// Waits up to `timeout` for events and hands them to the callback.
    /// Ctrl-C interrupts the wait: not an error.
    pub fn poll(&self, timeout: Duration) -> Result<()> {
        interrupted_is_ok(match self {
            Events::Ring(ring) => ring.poll(timeout),
            Events::Perf(perf) => perf.poll(timeout),
        })
    }

    /// Hands whatever is still buffered to the callback.
    pub fn consume(&self) -> Result<()> {
        interrupted_is_ok(match self {
            Events::Ring(ring) => ring.consume(),
            Events::Perf(perf) => perf.consume(),
        })
    }

    /// Polls (every 100 ms, so that Ctrl-C and the duration are noticed)
    /// until a stop is requested or `duration` seconds have passed, then
    /// drains what is left. `after_poll` runs after every poll and after
    /// the drain: the place to check loss counters.
    pub fn until_stopped(
        &self,
        stop: &Stop,
        duration: Option<u64>,
        mut after_poll: impl FnMut(),
    ) -> Result<()> {
        let deadline = duration.map(|d| Instant::now() + Duration::from_secs(d));
        while !stop.requested() && deadline.is_none_or(|d| Instant::now() < d) {
            self.poll(Duration::from_millis(100))?;
            after_poll();
        }
        self.consume()?;
        after_poll();
        Ok(())
    }
}

fn interrupted_is_ok(result: libbpf_rs::Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() != libbpf_rs::ErrorKind::Interrupted => {
            Err(e).context("polling for events")
        }
        _ => Ok(()),
    }
}

/// A NUL-terminated C string from a fixed-size BPF buffer.
pub fn cstr(bytes: &[i8]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Converts `bpf_ktime_get_ns()` stamps (CLOCK_MONOTONIC) to wall-clock
/// time, using the offset between the two clocks measured once at start.
pub struct EventClock {
    offset_ns: i128,
}

impl Default for EventClock {
    fn default() -> Self {
        Self::new()
    }
}

impl EventClock {
    pub fn new() -> EventClock {
        EventClock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    /// Local time of a BPF timestamp as HH:MM:SS.mmm.
    pub fn format(&self, ktime_ns: u64) -> String {
        let wall = i128::from(ktime_ns) + self.offset_ns;
        let secs = (wall / 1_000_000_000) as libc::time_t;
        let millis = (wall % 1_000_000_000) / 1_000_000;
        format!("{}.{millis:03}", crate::report::local_time(secs))
    }
}

/// Tracepoint (`tp/`) programs are attached by ids read from tracefs, which
/// a fresh machine may not have mounted.
pub fn require_tracefs() -> Result<()> {
    let events = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ];
    if events.iter().any(|p| Path::new(p).is_dir()) {
        return Ok(());
    }
    bail!(
        "tracefs is not mounted: run `make setup`, or `mount -t tracefs tracefs /sys/kernel/tracing`"
    )
}
