//! Three namespaces in a line: a client, a router that runs lwt_filter,
//! and a server that holds an address in the filtered prefix and one in
//! another prefix, both routed through the router.

use anyhow::Result;

use testkit::{add_addr, veth, NetNs};

pub const CLIENT: &str = "10.11.0.2";
/// A second client address, for the source-prefix policy.
pub const CLIENT_DENIED: &str = "10.11.0.3";
pub const CLIENT6: &str = "fd00:11::2";
pub const GATEWAY: &str = "10.12.0.2";
pub const GATEWAY6: &str = "fd00:12::2";
/// In the filtered prefix.
pub const FILTERED: &str = "10.30.0.1";
pub const FILTERED_PREFIX: &str = "10.30.0.0/24";
pub const FILTERED6: &str = "fd00:30::1";
pub const FILTERED6_PREFIX: &str = "fd00:30::/64";
/// In a prefix routed the same way, without the program.
pub const OTHER: &str = "10.31.0.1";

pub struct Routed {
    pub client: NetNs,
    pub router: NetNs,
    pub server: NetNs,
}

impl Routed {
    pub fn new() -> Result<Routed> {
        let t = Routed {
            client: NetNs::new()?,
            router: NetNs::new()?,
            server: NetNs::new()?,
        };
        // No duplicate address detection: addresses, link-local ones
        // included, are usable as soon as they are added.
        for ns in [&t.client, &t.router, &t.server] {
            ns.sysctl("net/ipv6/conf/default/accept_dad", "0")?;
        }
        veth(&t.client, "c0", &t.router, "r0")?;
        veth(&t.router, "r1", &t.server, "s0")?;
        add_addr(&t.client, "c0", &format!("{CLIENT}/24"))?;
        add_addr(&t.client, "c0", &format!("{CLIENT_DENIED}/24"))?;
        add_addr(&t.router, "r0", "10.11.0.1/24")?;
        add_addr(&t.router, "r1", "10.12.0.1/24")?;
        add_addr(&t.server, "s0", &format!("{GATEWAY}/24"))?;
        for (ns, dev, addr) in [
            (&t.client, "c0", format!("{CLIENT6}/64")),
            (&t.router, "r0", "fd00:11::1/64".to_string()),
            (&t.router, "r1", "fd00:12::1/64".to_string()),
            (&t.server, "s0", format!("{GATEWAY6}/64")),
        ] {
            ns.ip(&["addr", "add", &addr, "dev", dev, "nodad"])?;
        }
        for addr in [FILTERED, OTHER] {
            t.server
                .ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
        }
        t.server
            .ip(&["addr", "add", &format!("{FILTERED6}/128"), "dev", "lo"])?;
        t.client
            .ip(&["route", "add", "default", "via", "10.11.0.1"])?;
        t.client
            .ip(&["-6", "route", "add", "default", "via", "fd00:11::1"])?;
        t.server
            .ip(&["route", "add", "10.11.0.0/24", "via", "10.12.0.1"])?;
        t.server
            .ip(&["-6", "route", "add", "fd00:11::/64", "via", "fd00:12::1"])?;
        t.router.sysctl("net/ipv4/ip_forward", "1")?;
        t.router.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        // The other prefix: routed like the filtered one, by the test.
        t.router
            .ip(&["route", "add", "10.31.0.0/24", "via", GATEWAY])?;
        Ok(t)
    }
}
