//! Events per second delivered to user space with zero loss: BPF ring
//! buffer against perf buffer, same producer, same run.
//!
//! The producer is bpf/bench/bufbench.bpf.c on the getpgid() syscall tracepoint;
//! a thread pinned to CPU 0 calls getpgid() EVENTS times as fast as it can,
//! while the main thread, pinned to CPU 1, consumes. The table prints what
//! a full buffer refused; the curves (against the wakeup batch and the event
//! size, plotted under docs/images/) count it against the rate. Time runs
//! from the first call to the last event consumed.
//! `cargo bench --bench ringbuf_vs_perfbuf` (root); `-- --no-curves` prints
//! the table only.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{PerfBufferBuilder, RingBufferBuilder};

use learning_ebpf_rs::privileges::Cap;
use learning_ebpf_rs::skel::bufbench::BufbenchSkelBuilder;
use testkit::bench::{can_run, median};
use testkit::pin_thread;
use testkit::plot::{self, Point};
use testkit::plots;
use testkit::ring_reader::RingReader;

const EVENTS: u64 = 2_000_000;
/// The ring buffer's size in bufbench.bpf.c.
const RING_BYTES: usize = 16 * 1024 * 1024;
const ROUNDS: usize = 5;
/// Events per run of the curves.
const CURVE_EVENTS: u64 = 500_000;
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The producer alone: the program makes the event and leaves it in a
    /// per-CPU array (the producer's ceiling).
    CountOnly,
    /// Ring buffer, the kernel decides when to wake the consumer.
    Ring,
    /// Ring buffer, a wakeup every 512th event only.
    RingBatched,
    /// Perf buffer, libbpf's default: a wakeup per event.
    Perf,
    /// Perf buffer, a wakeup every 512th event (wakeup_events = 512).
    PerfBatched,
    /// Ring buffer, never a wakeup: the consumer spins on its own CPU.
    RingSpin,
    /// Ring buffer, a wakeup every 512th event, read by RingReader: the
    /// consumer position stored once per batch, not once per event.
    RingReader,
    /// Ring buffer, a wakeup every 512th event, consumed by libbpf with a C
    /// callback that counts, as the batched perf buffer is: the same
    /// consumer work on both sides.
    RingBatchedC,
}

/// A ring buffer consumed through libbpf's C API directly (libbpf-rs 0.27
/// calls a Rust closure per event through a trampoline).
struct RawRingBuffer(*mut libbpf_sys::ring_buffer);

impl Drop for RawRingBuffer {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ring_buffer__new.
        unsafe { libbpf_sys::ring_buffer__free(self.0) }
    }
}

/// Counts each record into the Cell<u64> that `ctx` points at.
unsafe extern "C" fn count_record(
    ctx: *mut std::ffi::c_void,
    _data: *mut std::ffi::c_void,
    _size: libbpf_sys::size_t,
) -> i32 {
    // SAFETY: ctx is the &Cell<u64> passed to ring_buffer__new, which
    // outlives the buffer.
    unsafe {
        let received = &*(ctx as *const Cell<u64>);
        received.set(received.get() + 1);
    }
    0
}

fn raw_ring_buffer(map: &libbpf_rs::MapMut, received: &Cell<u64>) -> RawRingBuffer {
    use std::os::fd::{AsFd, AsRawFd};
    // SAFETY: valid map fd and callback; `received` outlives the buffer.
    let rb = unsafe {
        libbpf_sys::ring_buffer__new(
            map.as_fd().as_raw_fd(),
            Some(count_record),
            received as *const Cell<u64> as *mut _,
            std::ptr::null(),
        )
    };
    assert!(
        !rb.is_null(),
        "ring_buffer__new: {}",
        std::io::Error::last_os_error()
    );
    RawRingBuffer(rb)
}

/// libbpf-rs 0.27 builds perf buffers with libbpf's default attributes (a
/// wakeup per event); batching wakeups needs perf_buffer__new_raw and our
/// own perf_event_attr.
struct RawPerfBuffer(*mut libbpf_sys::perf_buffer);

impl Drop for RawPerfBuffer {
    fn drop(&mut self) {
        // SAFETY: the pointer came from perf_buffer__new_raw.
        unsafe { libbpf_sys::perf_buffer__free(self.0) }
    }
}

/// Counts PERF_RECORD_SAMPLE records into the Cell<u64> that `ctx` points at.
unsafe extern "C" fn count_sample(
    ctx: *mut std::ffi::c_void,
    _cpu: i32,
    event: *mut libbpf_sys::perf_event_header,
) -> libbpf_sys::bpf_perf_event_ret {
    // SAFETY: ctx is the &Cell<u64> passed to perf_buffer__new_raw, which
    // outlives the buffer; libbpf passes a valid header.
    unsafe {
        if (*event).type_ == libbpf_sys::PERF_RECORD_SAMPLE {
            let received = &*(ctx as *const Cell<u64>);
            received.set(received.get() + 1);
        }
    }
    libbpf_sys::LIBBPF_PERF_EVENT_CONT
}

fn batched_perf_buffer(
    map: &libbpf_rs::MapMut,
    received: &Cell<u64>,
    pages: usize,
    batch: u32,
) -> RawPerfBuffer {
    use std::os::fd::{AsFd, AsRawFd};
    // SAFETY: a zeroed perf_event_attr is valid; we set what we need.
    let mut attr: libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_sys::PERF_TYPE_SOFTWARE;
    attr.size = std::mem::size_of::<libbpf_sys::perf_event_attr>() as u32;
    attr.config = libbpf_sys::PERF_COUNT_SW_BPF_OUTPUT as u64;
    attr.sample_type = libbpf_sys::PERF_SAMPLE_RAW as u64;
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = batch;
    // SAFETY: valid map fd, attr and callback; `received` outlives the buffer.
    let pb = unsafe {
        libbpf_sys::perf_buffer__new_raw(
            map.as_fd().as_raw_fd(),
            pages as _,
            &mut attr,
            Some(count_sample),
            received as *const Cell<u64> as *mut _,
            std::ptr::null(),
        )
    };
    assert!(
        !pb.is_null(),
        "perf_buffer__new_raw: {}",
        std::io::Error::last_os_error()
    );
    RawPerfBuffer(pb)
}

/// One run of the table: (events delivered, events dropped, seconds).
fn run(mode: Mode) -> (u64, u64, f64) {
    run_with(mode, 512, 16, EVENTS)
}

/// One run with `batch` as the wakeup batch of the batched modes and
/// `size`-byte events: (events delivered, events dropped, seconds).
fn run_with(mode: Mode, batch: u32, size: u32, events: u64) -> (u64, u64, f64) {
    let perf = matches!(mode, Mode::Perf | Mode::PerfBatched);
    let mut object = MaybeUninit::uninit();
    let mut open = BufbenchSkelBuilder::default().open(&mut object).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.targ_tgid = std::process::id();
    rodata.use_perf_buffer = perf;
    rodata.count_only = mode == Mode::CountOnly;
    rodata.event_size = size;
    rodata.wakeup_every = match mode {
        Mode::RingBatched | Mode::RingReader | Mode::RingBatchedC => batch,
        Mode::RingSpin => u32::MAX,
        _ => 0,
    };
    let mut skel = open.load().unwrap();
    skel.attach().unwrap();

    let received = Cell::new(0u64);
    let produced = || {
        let bss = skel.maps.bss_data.as_deref().unwrap();
        // SAFETY: the kernel updates this mmapped value; read it fresh.
        unsafe { std::ptr::read_volatile(&bss.produced) }
    };
    let dropped = || {
        let bss = skel.maps.bss_data.as_deref().unwrap();
        // SAFETY: the kernel updates this mmapped value; read it fresh.
        unsafe { std::ptr::read_volatile(&bss.dropped) }
    };
    let ring;
    let perf_buf;
    let raw_perf;
    let raw_ring;
    let reader;
    let poll: Box<dyn Fn()> = if mode == Mode::RingBatchedC {
        raw_ring = raw_ring_buffer(&skel.maps.rb, &received);
        Box::new(|| {
            // SAFETY: the buffer is alive for as long as this closure.
            unsafe {
                libbpf_sys::ring_buffer__poll(raw_ring.0, 10);
                libbpf_sys::ring_buffer__consume(raw_ring.0);
            }
        })
    } else if mode == Mode::RingReader {
        use std::os::fd::AsFd;
        reader = RingReader::new(skel.maps.rb.as_fd(), RING_BYTES).unwrap();
        Box::new(|| {
            reader.wait(Duration::from_millis(10));
            let n = reader.drain(|_| {});
            received.set(received.get() + n as u64);
        })
    } else if mode == Mode::PerfBatched {
        raw_perf = batched_perf_buffer(&skel.maps.pb, &received, 4096, batch);
        // With batched wakeups the last few events per CPU wake nobody:
        // after each wait, also drain what is there.
        Box::new(|| {
            // SAFETY: the buffer is alive for as long as this closure.
            unsafe {
                libbpf_sys::perf_buffer__poll(raw_perf.0, 10);
                libbpf_sys::perf_buffer__consume(raw_perf.0);
            }
        })
    } else if perf {
        // 16 MiB per CPU, like the ring buffer's 16 MiB in all.
        perf_buf = PerfBufferBuilder::new(&skel.maps.pb)
            .pages(4096)
            .sample_cb(|_, _| received.set(received.get() + 1))
            .build()
            .unwrap();
        Box::new(|| perf_buf.poll(Duration::from_millis(10)).unwrap())
    } else {
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&skel.maps.rb, |_| {
                received.set(received.get() + 1);
                0
            })
            .unwrap();
        ring = builder.build().unwrap();
        if mode == Mode::RingBatched {
            Box::new(|| {
                ring.poll(Duration::from_millis(10)).unwrap();
                ring.consume().unwrap();
            })
        } else if mode == Mode::RingSpin {
            // No wakeups at all: the consumer keeps its CPU and reads
            // whatever is there, without a system call per batch.
            Box::new(|| {
                ring.consume().unwrap();
            })
        } else {
            Box::new(|| ring.poll(Duration::from_millis(10)).unwrap())
        }
    };

    pin_thread(1);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        pin_thread(0);
        for _ in 0..events {
            // SAFETY: getpgid(0) only reads this process's group id.
            unsafe { libc::getpgid(0) };
        }
    });
    if mode == Mode::CountOnly {
        producer.join().unwrap();
        let secs = start.elapsed().as_secs_f64();
        return (produced(), 0, secs);
    }
    while received.get() + dropped() < events && start.elapsed() < LIMIT {
        poll();
    }
    let secs = start.elapsed().as_secs_f64();
    producer.join().unwrap();
    (received.get(), dropped(), secs)
}

fn main() {
    if !can_run("ringbuf_vs_perfbuf", &[Cap::Bpf, Cap::Perfmon]) {
        return;
    }
    let modes = [
        (Mode::CountOnly, "no output (the producer alone)"),
        (Mode::Perf, "perf buffer"),
        (Mode::Ring, "ring buffer"),
        (Mode::RingBatched, "ring buffer, wakeup every 512"),
        (Mode::PerfBatched, "perf buffer, wakeup every 512"),
        (Mode::RingSpin, "ring buffer, no wakeups, consumer spins"),
        (
            Mode::RingReader,
            "ring buffer, wakeup every 512, RingReader",
        ),
        (
            Mode::RingBatchedC,
            "ring buffer, wakeup every 512, C callback",
        ),
    ];
    let mut rates = vec![Vec::new(); modes.len()];
    let mut lost = vec![0u64; modes.len()];
    for _ in 0..ROUNDS {
        for (i, (mode, _)) in modes.iter().enumerate() {
            let (received, dropped, secs) = run(*mode);
            rates[i].push(received as f64 / secs);
            lost[i] += dropped;
        }
    }
    let ranges: Vec<(f64, f64)> = rates
        .iter()
        .map(|r| {
            let p = Point::from_runs(0.0, r);
            (p.low, p.high)
        })
        .collect();
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!("{EVENTS} 16-byte events per run from getpgid() on one CPU, consumed on another; {ROUNDS} rounds, medians");
    println!(
        "{:<40} {:>12} {:>8} {:>14} {:>12}",
        "transport", "events/s", "lost", "ratio to perf", "of ceiling"
    );
    for (i, (_, name)) in modes.iter().enumerate() {
        let (lo, hi) = ranges[i];
        println!(
            "{name:<40} {:>12.0} {:>8} {:>14.2} {:>11.0}% [{:.0}-{:.0}%]",
            medians[i],
            lost[i],
            medians[i] / medians[1],
            100.0 * medians[i] / medians[0],
            100.0 * lo / medians[0],
            100.0 * hi / medians[0],
        );
    }
    println!(
        "same notification policy: ring / perf {:.2}x by default, {:.2}x with a wakeup every 512 \
         ({:.2}x with the same C callback on both sides)",
        medians[2] / medians[1],
        medians[3] / medians[4],
        medians[7] / medians[4]
    );
    println!("targets: ring buffer at least 3x the perf buffer, and at least 1,000,000 events/s, with no loss");
    println!();
    println!("apart: {DRAIN_EVENTS} events made with nobody reading, then read in one go on the other CPU; {ROUNDS} rounds, medians");
    println!(
        "{:<54} {:>22} {:>26}",
        "consumer", "producer, nobody reads", "the read alone"
    );
    for (name, fill, drain) in drain_rates() {
        println!(
            "{name:<54} {fill:>9.0}/s ({:>3.0}% ceil) {drain:>13.0}/s ({:>4.0}x ceil)",
            100.0 * fill / medians[0],
            drain / medians[0]
        );
    }
    println!();
    if !std::env::args().any(|a| a == "--no-curves") {
        curves();
    }
}

/// Fewer events than either buffer holds (16 MiB: 24 bytes a record in the
/// ring buffer, 32 in the perf buffer), so that none is refused.
const DRAIN_EVENTS: u64 = 400_000;

/// The producer and the consumer apart: DRAIN_EVENTS events made first,
/// with nothing reading (a wakeup every 512, which nobody waits for), then
/// read in one go on the other CPU. Events/s of each: what the transport
/// costs the producer by itself, and how fast each consumer reads when the
/// producer is not the limit.
fn drain_rates() -> Vec<(&'static str, f64, f64)> {
    let kinds = [
        "ring buffer, libbpf-rs (a Rust closure per event)",
        "ring buffer, libbpf's C API (a C callback per event)",
        "ring buffer, RingReader",
        "perf buffer, libbpf's C API (a C callback per event)",
    ];
    let mut fills = vec![Vec::new(); kinds.len()];
    let mut drains = vec![Vec::new(); kinds.len()];
    for _ in 0..ROUNDS {
        for k in 0..kinds.len() {
            let (fill, drain) = drain_once(k);
            fills[k].push(fill);
            drains[k].push(drain);
        }
    }
    kinds
        .iter()
        .zip(fills.into_iter().zip(drains))
        .map(|(name, (f, d))| (*name, median(f), median(d)))
        .collect()
}

/// One fill and drain by consumer `kind` (drain_rates's order): events/s
/// of the producer writing into the buffer with nobody reading, and of the
/// read.
fn drain_once(kind: usize) -> (f64, f64) {
    use std::os::fd::AsFd;
    let perf = kind == 3;
    let mut object = MaybeUninit::uninit();
    let mut open = BufbenchSkelBuilder::default().open(&mut object).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.targ_tgid = std::process::id();
    rodata.use_perf_buffer = perf;
    // A wakeup every 512, as the batched transports (nobody waits for it).
    rodata.wakeup_every = 512;
    let mut skel = open.load().unwrap();
    let received = Cell::new(0u64);
    // The consumer exists before the events (the perf buffer's events go
    // to buffers that it maps), but reads only after.
    let ring = (kind == 0).then(|| {
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&skel.maps.rb, |_| {
                received.set(received.get() + 1);
                0
            })
            .unwrap();
        builder.build().unwrap()
    });
    let raw_ring = (kind == 1).then(|| raw_ring_buffer(&skel.maps.rb, &received));
    let reader = (kind == 2).then(|| RingReader::new(skel.maps.rb.as_fd(), RING_BYTES).unwrap());
    let raw_perf = perf.then(|| batched_perf_buffer(&skel.maps.pb, &received, 4096, 512));
    skel.attach().unwrap();
    let fill = std::thread::spawn(|| {
        pin_thread(0);
        let start = Instant::now();
        for _ in 0..DRAIN_EVENTS {
            // SAFETY: getpgid(0) only reads this process's group id.
            unsafe { libc::getpgid(0) };
        }
        start.elapsed().as_secs_f64()
    })
    .join()
    .unwrap();
    pin_thread(1);
    let start = Instant::now();
    if let Some(ring) = &ring {
        ring.consume().unwrap();
    }
    if let Some(rb) = &raw_ring {
        // SAFETY: the buffer is alive.
        unsafe { libbpf_sys::ring_buffer__consume(rb.0) };
    }
    if let Some(reader) = &reader {
        let n = reader.drain(|_| {});
        received.set(n as u64);
    }
    if let Some(pb) = &raw_perf {
        // SAFETY: the buffer is alive.
        unsafe { libbpf_sys::perf_buffer__consume(pb.0) };
    }
    let secs = start.elapsed().as_secs_f64();
    let bss = skel.maps.bss_data.as_deref().unwrap();
    // SAFETY: the kernel updates this mmapped value; read it fresh.
    let dropped = unsafe { std::ptr::read_volatile(&bss.dropped) };
    assert_eq!(
        dropped, 0,
        "the buffer refused events: make DRAIN_EVENTS smaller"
    );
    assert_eq!(received.get(), DRAIN_EVENTS, "every event read");
    (DRAIN_EVENTS as f64 / fill, received.get() as f64 / secs)
}

const BATCHES: [u32; 4] = [1, 8, 64, 512];
const SIZES: [u32; 5] = [16, 64, 256, 1024, 4096];
/// The wakeup batch of the event-size curve.
const SIZE_BATCH: u32 = 64;

/// Events/s against the wakeup batch (16-byte events) and against the
/// event size (a wakeup every SIZE_BATCH), ring and perf buffer, with the
/// producer's ceiling; printed and plotted under docs/images/.
fn curves() {
    // Events a full buffer refused are not delivered: they count against
    // the rate, and the total is printed at the end.
    let lost = Cell::new(0u64);
    let rate = |mode, batch, size| {
        let (received, dropped, secs) = run_with(mode, batch, size, CURVE_EVENTS);
        lost.set(lost.get() + dropped);
        received as f64 / secs
    };
    let mut ceiling = vec![];
    // Per x: runs of the ring buffer through libbpf, through RingReader,
    // and of the perf buffer.
    let mut by_batch = vec![[vec![], vec![], vec![]]; BATCHES.len()];
    let mut by_size = vec![[vec![], vec![], vec![]]; SIZES.len()];
    let transports = [Mode::RingBatched, Mode::RingReader, Mode::PerfBatched];
    for _ in 0..ROUNDS {
        ceiling.push(rate(Mode::CountOnly, 0, 16));
        for (i, &b) in BATCHES.iter().enumerate() {
            for (t, mode) in transports.iter().enumerate() {
                by_batch[i][t].push(rate(*mode, b, 16));
            }
        }
        for (i, &size) in SIZES.iter().enumerate() {
            for (t, mode) in transports.iter().enumerate() {
                by_size[i][t].push(rate(*mode, SIZE_BATCH, size));
            }
        }
    }
    let ceiling = Point::from_runs(0.0, &ceiling);
    println!(
        "curves: {CURVE_EVENTS} events per run, {ROUNDS} rounds, median events/s [lowest, highest]; the producer alone: {:.0} [{:.0}, {:.0}]",
        ceiling.median, ceiling.low, ceiling.high
    );
    let names = ["ring (libbpf)", "ring (RingReader)", "perf"];
    let points = |xs: &[u32], runs: &[[Vec<f64>; 3]], what: &str| {
        let mut out = [vec![], vec![], vec![]];
        for (x, per) in xs.iter().zip(runs) {
            print!("{what} {x:>5}:");
            for t in 0..3 {
                let p = Point::from_runs(*x as f64, &per[t]);
                print!(
                    "  {} {:.0} [{:.0}, {:.0}] {:.0}%",
                    names[t],
                    p.median,
                    p.low,
                    p.high,
                    100.0 * p.median / ceiling.median
                );
                out[t].push(p);
            }
            println!();
        }
        out
    };
    println!(
        "events lost in the curves' runs, all points: {}",
        lost.get()
    );
    let command = "cargo bench --bench ringbuf_vs_perfbuf";
    let [ring, reader, perf] = points(&BATCHES, &by_batch, "wakeup batch");
    plots::buffers_by_batch(
        [ring, reader, perf],
        ceiling.median,
        plots::caption(command, &plot::today()),
    )
    .write(&images().join("bench-buffers-batch.svg"))
    .unwrap();
    let [ring, reader, perf] = points(&SIZES, &by_size, "event bytes");
    plots::buffers_by_size(
        [ring, reader, perf],
        ceiling.median,
        SIZE_BATCH,
        plots::caption(command, &plot::today()),
    )
    .write(&images().join("bench-buffers-size.svg"))
    .unwrap();
}

/// Where the plots go: the book's images.
fn images() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images")
}
