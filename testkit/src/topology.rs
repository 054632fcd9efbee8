//! The topology most packet lessons test with. A lesson that needs more
//! (the load balancer's client, router and backends) keeps its own next to
//! its tests.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Result;

use crate::{add_addr, veth, NetNs};

/// Two hosts on one link: the shape most packet lessons test with.
pub struct TwoHosts {
    /// Runs the program under test on `DEV_A`.
    pub a: NetNs,
    /// Sends traffic to `a` from `DEV_B`.
    pub b: NetNs,
}

pub const DEV_A: &str = "veth-a";
pub const DEV_B: &str = "veth-b";
pub const IP4_A: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
pub const IP4_B: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
pub const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 1);
pub const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);

impl TwoHosts {
    pub fn new() -> Result<TwoHosts> {
        let hosts = TwoHosts {
            a: NetNs::new()?,
            b: NetNs::new()?,
        };
        veth(&hosts.a, DEV_A, &hosts.b, DEV_B)?;
        add_addr(&hosts.a, DEV_A, &format!("{IP4_A}/24"))?;
        add_addr(&hosts.b, DEV_B, &format!("{IP4_B}/24"))?;
        add_addr(&hosts.a, DEV_A, &format!("{IP6_A}/64"))?;
        add_addr(&hosts.b, DEV_B, &format!("{IP6_B}/64"))?;
        Ok(hosts)
    }
}
