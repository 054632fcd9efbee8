//! RingReader, the batched ring buffer consumer that the ring buffer
//! benchmark compares with libbpf's, against the real kernel: every
//! event arrives once, in order, whole, also when records wrap around the
//! end of a small ring and when they are not a multiple of 8 bytes.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use learning_ebpf_rs::skel::bufbench::BufbenchSkelBuilder;
use testkit::require_privileges;
use testkit::ring_reader::RingReader;

const EVENTS: u64 = 50_000;
/// 64 KiB: 50,000 records of 48 bytes go round it about 36 times.
const RING: u32 = 64 * 1024;

fn read_all(event_size: u32, wakeup_every: u32) -> (Vec<u64>, u64) {
    let mut object = MaybeUninit::uninit();
    let mut open = BufbenchSkelBuilder::default().open(&mut object).unwrap();
    open.maps.rb.set_max_entries(RING).unwrap();
    let rodata = open.maps.rodata_data.as_deref_mut().unwrap();
    rodata.targ_tgid = std::process::id();
    rodata.event_size = event_size;
    rodata.wakeup_every = wakeup_every;
    let mut skel = open.load().unwrap();
    skel.attach().unwrap();
    let reader = RingReader::new(skel.maps.rb.as_fd(), RING as usize).unwrap();
    let dropped = || {
        let bss = skel.maps.bss_data.as_deref().unwrap();
        // SAFETY: the kernel updates this mmapped value; read it fresh.
        unsafe { std::ptr::read_volatile(&bss.dropped) }
    };

    let producer = std::thread::spawn(|| {
        for _ in 0..EVENTS {
            // SAFETY: getpgid(0) only reads this process's group id.
            unsafe { libc::getpgid(0) };
        }
    });
    let mut seqs = Vec::with_capacity(EVENTS as usize);
    let start = Instant::now();
    while (seqs.len() as u64) + dropped() < EVENTS && start.elapsed() < Duration::from_secs(30) {
        reader.wait(Duration::from_millis(10));
        reader.drain(|event| {
            assert_eq!(event.len(), event_size as usize, "a record's length");
            seqs.push(u64::from_ne_bytes(event[..8].try_into().unwrap()));
        });
    }
    producer.join().unwrap();
    (seqs, dropped())
}

#[test]
fn every_event_once_in_order_across_wraps() {
    require_privileges!("every_event_once_in_order_across_wraps");
    // 44 bytes: records padded to 48 in the ring; then a size that fills
    // whole 8-byte words.
    for (size, wakeup) in [(44, 64), (16, 1), (200, 0)] {
        let (seqs, dropped) = read_all(size, wakeup);
        assert_eq!(
            seqs.len() as u64 + dropped,
            EVENTS,
            "size {size}: every event read or counted as dropped"
        );
        // The program numbers an event only once its reservation succeeded,
        // so what arrives is 0, 1, 2... with nothing missing or repeated.
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "size {size}: events missing, repeated or out of order"
        );
        // A full ring refuses a reservation (counted), it never overwrites:
        // most events must get through with a reader keeping up.
        assert!(
            seqs.len() as u64 > EVENTS / 2,
            "size {size}: only {} of {EVENTS} read, {dropped} dropped",
            seqs.len()
        );
    }
}
