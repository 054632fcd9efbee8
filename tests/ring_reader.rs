//! RingReader, the batched ring buffer consumer that the ring buffer
//! benchmark compares with libbpf's, against the real kernel: every
//! event arrives once, in order, whole, also when records wrap around the
//! end of a small ring and when they are not a multiple of 8 bytes; and a
//! full ring refuses new records rather than overwriting old ones.
//!
//! Neither test depends on how fast the reader is: the first paces the
//! producer so the ring never fills, the second fills it on purpose before
//! reading, so the counts are exact on a loaded machine too.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use learning_ebpf_rs::skel::bufbench::{BufbenchSkel, BufbenchSkelBuilder};
use testkit::require_privileges;
use testkit::ring_reader::RingReader;

const EVENTS: u64 = 50_000;
/// 64 KiB: 50,000 records of 48 bytes go round it about 36 times.
const RING: u32 = 64 * 1024;
/// The program counts every getpgid() of this process, from any thread:
/// the tests must not produce at the same time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How many records of `event_size` bytes a ring of RING bytes holds: each
/// takes an 8-byte header and is padded to 8 bytes, and the kernel refuses
/// a reservation that would put the producer more than RING - 1 bytes
/// ahead of the consumer.
fn ring_holds(event_size: u32) -> u64 {
    let record = (event_size as u64 + 8).next_multiple_of(8);
    (RING as u64 - 1) / record
}

fn load<'obj>(
    object: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
    event_size: u32,
    wakeup_every: u32,
) -> BufbenchSkel<'obj> {
    let mut open = BufbenchSkelBuilder::default().open(object).unwrap();
    open.maps.rb.set_max_entries(RING).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.targ_tgid = std::process::id();
    rodata.event_size = event_size;
    rodata.wakeup_every = wakeup_every;
    let mut skel = open.load().unwrap();
    skel.attach().unwrap();
    skel
}

fn dropped(skel: &BufbenchSkel<'_>) -> u64 {
    let bss = skel.maps.bss_data.as_deref().unwrap();
    // SAFETY: the kernel updates this mmapped value; read it fresh.
    unsafe { std::ptr::read_volatile(&bss.dropped) }
}

/// An event's sequence number: its first 8 bytes.
fn seq(event: &[u8]) -> u64 {
    u64::from_ne_bytes(event[..8].try_into().unwrap())
}

fn produce(events: u64) {
    for _ in 0..events {
        // SAFETY: getpgid(0) only reads this process's group id.
        unsafe { libc::getpgid(0) };
    }
}

/// Reads EVENTS events of `event_size` bytes while a second thread makes
/// them in bursts of half the ring, each after the reader has caught up
/// with the one before. Returns the sequence numbers read, in order, and
/// the program's count of refused reservations.
fn read_paced(event_size: u32, wakeup_every: u32) -> (Vec<u64>, u64) {
    let mut object = MaybeUninit::uninit();
    let skel = load(&mut object, event_size, wakeup_every);
    let reader = RingReader::new(skel.maps.rb.as_fd(), RING as usize).unwrap();
    // Half the ring: a burst fits even while the reader has yet to store
    // its position after the burst before.
    let burst = ring_holds(event_size) / 2;
    let read = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seqs = Vec::with_capacity(EVENTS as usize);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut made = 0;
            while made < EVENTS && Instant::now() < deadline {
                if read.load(Ordering::Acquire) < made {
                    std::thread::yield_now();
                    continue;
                }
                let n = burst.min(EVENTS - made);
                produce(n);
                made += n;
            }
        });
        while (seqs.len() as u64) < EVENTS && Instant::now() < deadline {
            reader.wait(Duration::from_millis(10));
            reader.drain(|event| {
                assert_eq!(event.len(), event_size as usize, "a record's length");
                seqs.push(seq(event));
            });
            read.store(seqs.len() as u64, Ordering::Release);
        }
    });
    (seqs, dropped(&skel))
}

#[test]
fn every_event_once_in_order_across_wraps() {
    require_privileges!("every_event_once_in_order_across_wraps");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 44 bytes: records padded to 48 in the ring; then a size that fills
    // whole 8-byte words; each with a different wakeup policy.
    for (size, wakeup) in [(44, 64), (16, 1), (200, 0)] {
        let (seqs, dropped) = read_paced(size, wakeup);
        println!(
            "size {size}, wakeup every {wakeup}: read {} in bursts of {}, dropped {dropped}",
            seqs.len(),
            ring_holds(size) / 2
        );
        assert_eq!(
            dropped, 0,
            "size {size}: the paced producer never fills the ring"
        );
        // The program numbers an event only once its reservation succeeded,
        // so what arrives is 0, 1, 2... with nothing missing or repeated.
        assert_eq!(
            seqs,
            (0..EVENTS).collect::<Vec<_>>(),
            "size {size}: events missing, repeated or out of order"
        );
    }
}

#[test]
fn a_full_ring_refuses_and_never_overwrites() {
    require_privileges!("a_full_ring_refuses_and_never_overwrites");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const EXTRA: u64 = 100;
    for size in [16, 44, 200] {
        let mut object = MaybeUninit::uninit();
        let skel = load(&mut object, size, 0);
        let reader = RingReader::new(skel.maps.rb.as_fd(), RING as usize).unwrap();
        let holds = ring_holds(size);
        // Nobody reads while these are made: the ring fills, then refuses.
        produce(holds + EXTRA);
        let mut seqs = Vec::new();
        reader.drain(|event| seqs.push(seq(event)));
        println!(
            "size {size}: made {}, read {}, refused {}",
            holds + EXTRA,
            seqs.len(),
            dropped(&skel)
        );
        assert_eq!(
            seqs,
            (0..holds).collect::<Vec<_>>(),
            "size {size}: the first {holds} records, the ones that fit, and no others"
        );
        assert_eq!(
            dropped(&skel),
            EXTRA,
            "size {size}: every record after that refused"
        );
        // Once read, the room is there again.
        produce(1);
        let mut next = Vec::new();
        reader.drain(|event| next.push(seq(event)));
        assert_eq!(
            next,
            [holds],
            "size {size}: numbering goes on after the refusals"
        );
    }
}
