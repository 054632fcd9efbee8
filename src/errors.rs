//! libbpf's errors turned into lines that say what to do next.

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
