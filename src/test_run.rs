//! Running a loaded program from user space with BPF_PROG_TEST_RUN, on a
//! chosen CPU: how lessons without an event source of their own (races,
//! map_types) drive their programs, and time them.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Result};

/// What one BPF_PROG_TEST_RUN call reports.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// The program's return value on the last run (an XDP verdict, ...).
    pub retval: u32,
    /// The kernel's average time per run, in ns.
    pub ns_per_run: f64,
}

/// Keeps the calling thread on `cpu`.
pub fn pin_thread(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it, and
    // sched_setaffinity reads a set of the size we pass.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set)
    };
    if rc != 0 {
        bail!(
            "cannot run on CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs the program `prog` on `data`, `repeat` times back to back on the
/// calling thread's CPU. Takes a file descriptor, not libbpf-rs' Program,
/// so that it can be called from any thread.
pub fn run(prog: BorrowedFd<'_>, data: &[u8], repeat: u32) -> Result<Outcome> {
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: data.as_ptr().cast(),
        data_size_in: data.len() as u32,
        repeat: repeat as i32,
        ..Default::default()
    };
    // SAFETY: opts points to `data`, which outlives the call.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if rc != 0 {
        bail!(
            "BPF_PROG_TEST_RUN: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
    }
    Ok(Outcome {
        retval: opts.retval,
        ns_per_run: f64::from(opts.duration),
    })
}

/// [`run`] on CPU `cpu`, from a thread pinned there for the call.
pub fn run_on_cpu(prog: BorrowedFd<'_>, data: &[u8], repeat: u32, cpu: usize) -> Result<Outcome> {
    std::thread::scope(|s| {
        s.spawn(move || {
            pin_thread(cpu)?;
            run(prog, data, repeat)
        })
        .join()
        .unwrap_or_else(|_| bail!("the thread running on CPU {cpu} panicked"))
    })
}
