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

/// The interface the main routing table sends `dst` out of, read from
/// /proc/net/route (this network namespace's IPv4 routes): the longest
/// matching prefix, then the lowest metric. None when no route matches.
pub fn route_iface(dst: std::net::Ipv4Addr) -> Result<Option<String>> {
    let table = std::fs::read_to_string("/proc/net/route")?;
    Ok(best_route(&table, dst))
}

/// The lookup of [`route_iface`] over the text of /proc/net/route, whose
/// addresses are the kernel's big-endian words printed as native integers.
fn best_route(table: &str, dst: std::net::Ipv4Addr) -> Option<String> {
    let dst = u32::from_ne_bytes(dst.octets());
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, net, metric, mask) =
                (f.first()?, hex(f.get(1)?)?, f.get(6)?, hex(f.get(7)?)?);
            let metric: u32 = metric.parse().ok()?;
            (dst & mask == net).then(|| (mask.count_ones(), metric, iface.to_string()))
        })
        .max_by_key(|(prefix, metric, _)| (*prefix, std::cmp::Reverse(*metric)))
        .map(|(_, _, iface)| iface)
}

#[cfg(test)]
mod tests {
    use super::best_route;

    #[test]
    fn longest_prefix_then_lowest_metric() {
        // 10.21.1.0/24 on b1, 10.21.0.0/16 on b2, default via c0 (metric
        // 100) and via c1 (metric 50), as a little-endian machine prints it.
        let table = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
b1\t0001150A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
b2\t0000150A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
c0\t00000000\t0100140A\t0003\t0\t0\t100\t00000000\t0\t0\t0
c1\t00000000\t0100140A\t0003\t0\t0\t50\t00000000\t0\t0\t0
";
        if cfg!(target_endian = "big") {
            return; // the table above is written for little-endian
        }
        let route = |ip: &str| best_route(table, ip.parse().unwrap());
        assert_eq!(route("10.21.1.2").as_deref(), Some("b1"));
        assert_eq!(route("10.21.7.2").as_deref(), Some("b2"));
        assert_eq!(route("8.8.8.8").as_deref(), Some("c1"));
        assert_eq!(best_route("Iface\n", "8.8.8.8".parse().unwrap()), None);
    }
}
