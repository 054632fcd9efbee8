//! Reading map values into the types the skeletons generate.

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};
use plain::Plain;

/// Copies `bytes` into a `T` (a type declared in a lesson's shared header).
pub fn from_bytes<T: Plain + Default>(bytes: &[u8]) -> Result<T> {
    let mut value = T::default();
    plain::copy_from_bytes(&mut value, bytes)
        .map_err(|e| anyhow::anyhow!("value of {} bytes does not fit: {e:?}", bytes.len()))?;
    Ok(value)
}

/// Every CPU's copy of the value at `key` in a per-CPU map (empty if the key
/// is absent).
pub fn percpu<T: Plain + Default>(map: &impl MapCore, key: &[u8]) -> Result<Vec<T>> {
    let values = map
        .lookup_percpu(key, MapFlags::ANY)
        .with_context(|| format!("reading per-CPU map {:?}", map.name()))?
        .unwrap_or_default();
    values.iter().map(|v| from_bytes(v)).collect()
}

/// A shared struct of integers whose per-CPU copies add up field by field
/// (counters). build.rs implements it for every struct in a lesson's header
/// whose fields are all `__u64`.
pub trait Counters: Plain + Default {
    /// Adds `other`'s fields to this one's.
    fn add(&mut self, other: &Self);
}

/// The value at `key` in a per-CPU map, summed over the CPUs field by field.
pub fn percpu_sum<T: Counters>(map: &impl MapCore, key: &[u8]) -> Result<T> {
    let mut total = T::default();
    for value in percpu::<T>(map, key)? {
        total.add(&value);
    }
    Ok(total)
}

/// The bytes of `value`, for a map update. Meant for the types of a lesson's
/// shared header, which by the project's rule hold integers only and leave
/// no padding between fields.
pub fn bytes_of<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: T is Plain (integers only) and, by the shared-header rule, has
    // no padding, so every byte is initialised.
    unsafe { plain::as_bytes(value) }
}

/// Reads a global variable of a skeleton's `.bss` or `.data` (a counter)
/// that the BPF side may be updating meanwhile. The skeleton maps those
/// sections into this process; a volatile read makes the compiler load the
/// value from that memory each time instead of reusing an earlier read.
pub fn read_global<T: Copy>(value: &T) -> T {
    // SAFETY: `value` is a valid, aligned reference into the mapped section;
    // the BPF side writes such counters whole (aligned stores or atomic
    // adds), so the read sees an old or a new value, never a torn one.
    unsafe { std::ptr::read_volatile(value) }
}
