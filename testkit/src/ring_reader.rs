//! A BPF ring buffer read straight from its memory mapping, telling the
//! kernel how far it has read once per batch instead of once per event.
//!
//! libbpf's consumer (`ring_buffer__poll`, and libbpf-rs's `RingBuffer` on
//! top of it) stores the consumer position after every record. The producer
//! reads that position at every reservation to see how much room is left, so
//! each store moves a cache line from the consumer's CPU to the producer's
//! and back. Reading a whole batch and storing the position once keeps that
//! line still while the producer works. The layout read here is the kernel's
//! (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h):
//!
//! - page 0, writable: the consumer position;
//! - page 1, read-only: the producer position;
//! - then the data, mapped twice in a row, so that a record that wraps
//!   around the end reads as one piece;
//! - each record: a 32-bit length with the BUSY (still being written) and
//!   DISCARD bits, 32 bits the kernel uses, then the event, padded to 8
//!   bytes.
//!
//! The benchmark `ringbuf_vs_perfbuf` measures it against libbpf's consumer,
//! to see whether the per-record store costs the producer anything.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: u64 = 8;

/// A reader of one BPF_MAP_TYPE_RINGBUF map, from its fd.
pub struct RingReader {
    fd: i32,
    consumer: *mut libc::c_void,
    producer: *mut libc::c_void,
    page: usize,
    size: usize,
}

impl RingReader {
    /// Maps the ring buffer whose map fd is `map` and whose size is
    /// `max_entries` bytes (a power of two, as the kernel requires).
    pub fn new(map: BorrowedFd<'_>, max_entries: usize) -> io::Result<RingReader> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.as_raw_fd();
        // SAFETY: mapping a ring buffer map as the kernel documents: the
        // consumer page read-write at offset 0, the rest read-only after it.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; the data area is mapped twice by the kernel.
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page + 2 * max_entries,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            // SAFETY: unmapping what was mapped just above.
            unsafe { libc::munmap(consumer, page) };
            return Err(err);
        }
        Ok(RingReader {
            fd,
            consumer,
            producer,
            page,
            size: max_entries,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first word of the consumer page, mapped while self lives.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first word of the producer page, mapped while self lives.
        unsafe { &*(self.producer as *const AtomicU64) }
    }

    /// Calls `event` for every record committed so far, in order, then
    /// stores the new consumer position once. Returns how many were read.
    pub fn drain(&self, mut event: impl FnMut(&[u8])) -> usize {
        let mask = self.size as u64 - 1;
        // SAFETY: the data area starts one page into the second mapping.
        let data = unsafe { (self.producer as *const u8).add(self.page) };
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        let mut read = 0;
        'outer: loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            while cons < prod {
                // SAFETY: cons & mask is inside the data area, and a record
                // header is 8-byte aligned there.
                let record = unsafe { data.add((cons & mask) as usize) };
                // SAFETY: as above; the kernel writes the header atomically.
                let len = unsafe { &*(record as *const AtomicU32) }.load(Ordering::Acquire);
                if len & BUSY != 0 {
                    break 'outer; // still being written: the next drain gets it
                }
                let bytes = (len & !(BUSY | DISCARD)) as u64;
                if len & DISCARD == 0 {
                    // SAFETY: the record's bytes follow its header; the double
                    // mapping makes a record that wraps contiguous.
                    event(unsafe {
                        std::slice::from_raw_parts(record.add(HEADER as usize), bytes as usize)
                    });
                    read += 1;
                }
                cons += (bytes + HEADER + 7) & !7;
            }
        }
        self.consumer_pos().store(cons, Ordering::Release);
        read
    }

    /// Waits up to `timeout` for the kernel to wake the reader (the ring
    /// buffer's fd is pollable); true if it did.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) > 0 }
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        // SAFETY: unmapping the two mappings made in new().
        unsafe {
            libc::munmap(self.consumer, self.page);
            libc::munmap(self.producer, self.page + 2 * self.size);
        }
    }
}
