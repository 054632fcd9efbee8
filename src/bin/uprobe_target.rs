//! uprobe_target: a small program for the uprobe lesson to trace. It calls
//! its own function `lebpf_add(a, b)` and libc's `atoi(s)` with known
//! arguments, so that what the probes report can be checked.
//!
//! `uprobe_target [--calls N] [--wait] [--atoi TEXT]`: with --wait it prints
//! its pid and waits for a line on stdin before calling (so a tracer can
//! attach first); with --atoi every call of atoi gets TEXT instead of
//! "1000", "1001"...

use std::ffi::CString;
use std::hint::black_box;
use std::io::BufRead;
use std::time::Duration;

/// Traced by name: `#[no_mangle]` keeps the symbol name as written, and
/// `#[inline(never)]` keeps a real function at that address to probe.
#[no_mangle]
#[inline(never)]
pub extern "C" fn lebpf_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

fn main() {
    let mut calls = 3u64;
    let mut wait = false;
    let mut atoi_text: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--calls" => calls = args.next().and_then(|n| n.parse().ok()).unwrap_or(calls),
            "--wait" => wait = true,
            "--atoi" => atoi_text = args.next(),
            _ => {
                eprintln!("usage: uprobe_target [--calls N] [--wait] [--atoi TEXT]");
                std::process::exit(2);
            }
        }
    }
    println!("pid {}", std::process::id());
    if wait {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    for i in 0..calls {
        let sum = lebpf_add(black_box(i), black_box(40));
        let text = atoi_text.clone().unwrap_or_else(|| format!("{}", 1000 + i));
        let c_text = CString::new(text.as_str()).expect("no NUL inside");
        // SAFETY: c_text is a valid NUL-terminated string.
        let number = unsafe { libc::atoi(black_box(c_text.as_ptr())) };
        println!("lebpf_add({i}, 40) = {sum}, atoi({text:?}) = {number}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
