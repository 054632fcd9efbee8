//! The management commands (`block`, `unblock`, `allow`, `unallow`, `list`,
//! `stats`), run from another shell: they reach the running firewall
//! through its pinned maps.

use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps;
use learning_ebpf_rs::pin;
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::xdp_firewall::types;

use crate::stats::{read_counters, report};

// The pinned maps' file names, which the management commands open.
pub const BLOCK_V4: &str = "block_v4";
pub const BLOCK_V6: &str = "block_v6";
pub const ALLOW_V4: &str = "allow_v4";
pub const ALLOW_V6: &str = "allow_v6";
pub const COUNTERS: &str = "counters";

/// Which list a prefix goes in; the map names double as pin names.
#[derive(Clone, Copy)]
pub enum List {
    Block,
    Allow,
}

impl List {
    pub fn map_name(self, cidr: &Cidr) -> &'static str {
        match (self, cidr) {
            (List::Block, Cidr::V4(..)) => BLOCK_V4,
            (List::Block, Cidr::V6(..)) => BLOCK_V6,
            (List::Allow, Cidr::V4(..)) => ALLOW_V4,
            (List::Allow, Cidr::V6(..)) => ALLOW_V6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            List::Block => "blocklist",
            List::Allow => "allowlist",
        }
    }
}

/// Adds `cidr` to a list map. Returns false if it was there already.
pub fn insert(map: &impl MapCore, cidr: &Cidr) -> Result<bool> {
    let rule = types::fw_rule::default();
    match map.update(&cidr.lpm_key(), maps::bytes_of(&rule), MapFlags::NO_EXIST) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("adding {cidr}")),
    }
}

pub fn open_pinned(dir: &Path, name: &str) -> Result<MapHandle> {
    pin::open_map(dir, name, "xdp_firewall")
}

/// Adds `cidrs` to the running firewall's `list`.
pub fn add_to(list: List, cidrs: &[Cidr], dir: &Path) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    for cidr in cidrs {
        let map = open_pinned(dir, list.map_name(cidr))?;
        if insert(&map, cidr)? {
            println!("{cidr} added to the {}", list.name());
        } else {
            println!("{cidr} is already on the {}", list.name());
        }
    }
    Ok(())
}

/// Removes `cidrs` from the running firewall's `list`.
pub fn remove_from(list: List, cidrs: &[Cidr], dir: &Path) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    for cidr in cidrs {
        let map = open_pinned(dir, list.map_name(cidr))?;
        match map.delete(&cidr.lpm_key()) {
            Ok(()) => println!("{cidr} removed from the {}", list.name()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {
                bail!("{cidr} is not on the {}", list.name())
            }
            Err(e) => return Err(e).with_context(|| format!("removing {cidr}")),
        }
    }
    Ok(())
}

pub fn list(dir: &Path, json: bool) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    if !json {
        println!("{:<10} {:<44} {:>12}", "LIST", "PREFIX", "HITS");
    }
    for (list, name) in [
        ("allow", ALLOW_V4),
        ("allow", ALLOW_V6),
        ("block", BLOCK_V4),
        ("block", BLOCK_V6),
    ] {
        let map = open_pinned(dir, name)?;
        let mut entries = Vec::new();
        for key in map.keys() {
            let Some(cidr) = Cidr::from_lpm_key(&key) else {
                continue;
            };
            let hits = match map.lookup(&key, MapFlags::ANY)? {
                Some(v) => maps::from_bytes::<types::fw_rule>(&v)?.hits,
                None => continue, // removed meanwhile
            };
            entries.push((cidr, hits));
        }
        entries.sort();
        for (cidr, hits) in entries {
            if json {
                let entry =
                    serde_json::json!({"list": list, "prefix": cidr.to_string(), "hits": hits});
                println!("{entry}");
            } else {
                println!("{list:<10} {:<44} {hits:>12}", cidr.to_string());
            }
        }
    }
    Ok(())
}

pub fn stats(dir: &Path, json: bool) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    let counters = read_counters(&open_pinned(dir, COUNTERS)?)?;
    report(&counters, &counters, 0.0, json)
}
