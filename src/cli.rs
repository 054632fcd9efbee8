//! Command-line plumbing every binary uses: argument parsing, one-line
//! errors, libbpf's log, clock stamps.

use std::io::Write;
use std::process::exit;

use libbpf_rs::PrintLevel;

/// The options of every tool that reports counters at intervals; flatten it
/// into a binary's arguments with `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Seconds between reports
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Exit after this many reports (default: run until Ctrl-C)
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Print each report as one JSON object per line
    #[arg(long)]
    pub json: bool,
}

/// Parses the command line. A usage error prints clap's first line (the one
/// that says what is wrong) and exits with status 2; `--help` and `--version`
/// print in full and exit 0.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            // clap's message is its first paragraph (then comes usage):
            // fold that paragraph into one line.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            exit(2);
        }
        Err(e) => e.exit(),
    }
}

/// Runs a binary's body. An error is printed as one line, its context chain
/// joined by ": ", and the process exits 1. The body's values are dropped
/// before exiting, so attachments are detached on the error path too.
pub fn run(body: impl FnOnce() -> anyhow::Result<()>) -> ! {
    let result = body();
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit(1);
        }
    }
}

fn print_to_stderr(_level: PrintLevel, msg: String) {
    eprint!("{msg}");
}

/// libbpf's own messages. With `verbose`, everything down to debug level goes
/// to stderr, the verifier log included; without it libbpf stays quiet and
/// our one-line errors speak for it.
pub fn init_libbpf_log(verbose: bool) {
    if verbose {
        libbpf_rs::set_print(Some((PrintLevel::Debug, print_to_stderr)));
    } else {
        libbpf_rs::set_print(None);
    }
}

/// A skeleton's `.rodata` (its `const volatile` globals), to set between
/// open and load. libbpf-rs hands it out as an `Option` because the object
/// may have no such section, or libbpf may not have mapped it.
pub fn rodata<T>(data: Option<&mut T>) -> anyhow::Result<&mut T> {
    data.ok_or_else(|| anyhow::anyhow!("the BPF object has no .rodata to configure"))
}

/// Prints `value` as one line of JSON: the `--json` output of every tool.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)
        .map_err(|e| anyhow::anyhow!("encoding the JSON output: {e}"))?;
    println!("{line}");
    Ok(())
}

/// Local wall-clock time as HH:MM:SS, for report headers.
pub fn clock() -> String {
    // SAFETY: time() and localtime_r() only write into the struct we pass.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

/// The errno inside an error's message. libbpf-rs 0.27 does not expose
/// it, but std's io::Error displays an OS error as "... (os error N)".
pub fn os_error(e: &impl std::fmt::Display) -> Option<i32> {
    // The alternate form prints the whole chain, where the errno sits.
    let text = format!("{e:#}");
    let start = text.rfind("(os error ")? + "(os error ".len();
    text[start..].split(')').next()?.parse().ok()
}

/// Turns a failed skeleton load into an actionable message. EACCES and
/// EINVAL come from the verifier; EPERM means privileges (or a program type
/// this kernel does not allow).
pub fn load_error(e: libbpf_rs::Error) -> anyhow::Error {
    let hint = match os_error(&e) {
        Some(libc::EPERM) => {
            "the kernel said EPERM: run as root (CAP_BPF and CAP_NET_ADMIN or CAP_SYS_ADMIN); \
             if you are root, this kernel does not allow this program type"
        }
        Some(libc::EACCES) | Some(libc::EINVAL) => {
            "the verifier rejected the program: rerun with -v to see its log"
        }
        _ => "rerun with -v to see libbpf's log",
    };
    anyhow::anyhow!("loading BPF programs failed ({e}): {hint}")
}
