//! Creating a bpf_link directly, for attach points libbpf-rs 0.27 has no
//! helper for (tcx) or whose flags it does not expose (XDP's skb/native
//! modes). The link is an fd: closing it, which the kernel also does when
//! the process dies, detaches the program.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::Program;

/// `bpf_link_create(prog, target, attach_type, flags)`: `target` is an
/// ifindex for XDP and tcx.
pub fn create(
    prog: &Program,
    target: u32,
    attach_type: libbpf_sys::bpf_attach_type,
    flags: u32,
) -> io::Result<OwnedFd> {
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: the program fd is valid for the call; opts is initialised.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_fd().as_raw_fd(), target as i32, attach_type, &opts)
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: bpf_link_create returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
