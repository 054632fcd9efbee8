//! execsnoop_threads: a process whose threads make exit and exec tricky to
//! report, for the execsnoop lesson to trace.
//!
//! - `execsnoop_threads leader-first STATUS`: the main thread leaves first
//!   (the raw exit system call, which ends only the calling thread, as
//!   `pthread_exit` does); a second thread then ends the process with
//!   `exit(STATUS)`. The process ends once, with STATUS.
//! - `execsnoop_threads exec-from-thread PROGRAM`: a second thread execs
//!   PROGRAM. The kernel ends every other thread, the main one included,
//!   and the process lives on as PROGRAM, with the same pid.

use std::ffi::CString;
use std::thread;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: execsnoop_threads leader-first STATUS | exec-from-thread PROGRAM");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["leader-first", status] => {
            let status: i32 = status.parse().unwrap_or_else(|_| usage());
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(100));
                // SAFETY: _exit ends the process without returning.
                unsafe { libc::_exit(status) }
            });
            // SAFETY: SYS_exit ends this thread only; nothing it owns is
            // used again (the other thread touches none of it).
            unsafe { libc::syscall(libc::SYS_exit, 0) };
        }
        ["exec-from-thread", program] => {
            let program = CString::new(program).unwrap_or_else(|_| usage());
            let worker = thread::spawn(move || {
                let argv = [program.as_ptr(), std::ptr::null()];
                // SAFETY: a NUL-terminated argv of valid C strings.
                unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
                eprintln!("exec failed: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            });
            let _ = worker.join();
        }
        _ => usage(),
    }
}
