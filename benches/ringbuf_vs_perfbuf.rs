//! Events per second delivered to user space with zero loss: BPF ring
//! buffer against perf buffer, same producer, same run.
//!
//! The producer is bpf/bench/bufbench.bpf.c on the getpgid() syscall tracepoint;
//! a thread pinned to CPU 0 calls getpgid() EVENTS times as fast as it can,
//! while the main thread, pinned to CPU 1, consumes. Buffers are large
//! enough that nothing is lost (checked). Time runs from the first call to
//! the last event consumed. `cargo bench --bench ringbuf_vs_perfbuf` (root).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{PerfBufferBuilder, RingBufferBuilder};

use learning_ebpf_rs::privileges::Cap;
use learning_ebpf_rs::skel::bufbench::BufbenchSkelBuilder;
use testkit::bench::{can_run, median};
use testkit::pin_thread;

const EVENTS: u64 = 2_000_000;
const ROUNDS: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The producer alone: the program counts, outputs nothing.
    CountOnly,
    /// Ring buffer, the kernel decides when to wake the consumer.
    Ring,
    /// Ring buffer, a wakeup every 512th event only.
    RingBatched,
    /// Perf buffer, libbpf's default: a wakeup per event.
    Perf,
    /// Perf buffer, a wakeup every 512th event (wakeup_events = 512).
    PerfBatched,
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
) -> RawPerfBuffer {
    use std::os::fd::{AsFd, AsRawFd};
    // SAFETY: a zeroed perf_event_attr is valid; we set what we need.
    let mut attr: libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_sys::PERF_TYPE_SOFTWARE;
    attr.size = std::mem::size_of::<libbpf_sys::perf_event_attr>() as u32;
    attr.config = libbpf_sys::PERF_COUNT_SW_BPF_OUTPUT as u64;
    attr.sample_type = libbpf_sys::PERF_SAMPLE_RAW as u64;
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 512;
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

/// One run: (events delivered, events dropped, seconds).
fn run(mode: Mode) -> (u64, u64, f64) {
    let perf = matches!(mode, Mode::Perf | Mode::PerfBatched);
    let mut object = MaybeUninit::uninit();
    let mut open = BufbenchSkelBuilder::default().open(&mut object).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.targ_tgid = std::process::id();
    rodata.use_perf_buffer = perf;
    rodata.count_only = mode == Mode::CountOnly;
    rodata.wakeup_every = if mode == Mode::RingBatched { 512 } else { 0 };
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
    let poll: Box<dyn Fn()> = if mode == Mode::PerfBatched {
        raw_perf = batched_perf_buffer(&skel.maps.pb, &received, 4096);
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
        } else {
            Box::new(|| ring.poll(Duration::from_millis(10)).unwrap())
        }
    };

    pin_thread(1);
    let start = Instant::now();
    let producer = std::thread::spawn(|| {
        pin_thread(0);
        for _ in 0..EVENTS {
            // SAFETY: getpgid(0) only reads this process's group id.
            unsafe { libc::getpgid(0) };
        }
    });
    if mode == Mode::CountOnly {
        producer.join().unwrap();
        let secs = start.elapsed().as_secs_f64();
        return (produced(), 0, secs);
    }
    while received.get() + dropped() < EVENTS && start.elapsed() < LIMIT {
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
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!("{EVENTS} 16-byte events per run from getpgid() on one CPU, consumed on another; {ROUNDS} rounds, medians");
    println!(
        "{:<34} {:>12} {:>8} {:>14}",
        "transport", "events/s", "lost", "ratio to perf"
    );
    for (i, (_, name)) in modes.iter().enumerate() {
        println!(
            "{name:<34} {:>12.0} {:>8} {:>14.2}",
            medians[i],
            lost[i],
            medians[i] / medians[1]
        );
    }
    println!(
        "same notification policy: ring / perf {:.2}x by default, {:.2}x with a wakeup every 512",
        medians[2] / medians[1],
        medians[3] / medians[4]
    );
    println!("targets: ring buffer at least 3x the perf buffer, and at least 1,000,000 events/s, with no loss");
}
