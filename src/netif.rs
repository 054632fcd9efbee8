//! Network interface lookup.

use std::ffi::CString;

use anyhow::{bail, Result};

/// The index of interface `name` in the current network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let Ok(c_name) = CString::new(name) else {
        bail!("interface name {name:?} contains a NUL byte");
    };
    // SAFETY: c_name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        bail!("interface '{name}' not found (list interfaces with `ip link`)");
    }
    Ok(index)
}
