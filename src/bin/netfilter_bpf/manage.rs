//! The management commands (`add`, `del`, `list`), run from another shell:
//! they change the running policy through its pinned maps, and both ways
//! into netfilter see the change on their next packet.

use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use serde::Serialize;

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::pin;
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::report;

// The pinned maps' file names.
pub const DENY_SRC_V4: &str = "deny_src_v4";
pub const DENY_SRC_V6: &str = "deny_src_v6";
pub const DENY_PORTS: &str = "deny_ports";
pub const VERDICTS: &str = "verdicts";

/// A rule of the policy, as `add` and `del` take it.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Rule {
    /// A source prefix (IPv4 or IPv6)
    #[arg(long = "src", value_name = "PREFIX")]
    pub src: Option<Cidr>,
    /// A TCP and UDP destination port
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
}

fn src_map(cidr: &Cidr) -> &'static str {
    match cidr {
        Cidr::V4(..) => DENY_SRC_V4,
        Cidr::V6(..) => DENY_SRC_V6,
    }
}

/// The rule's map (opened from its pin) and key.
fn target(rule: &Rule, dir: &Path) -> Result<(MapHandle, Vec<u8>, String)> {
    let open = |name| pin::open_map(dir, name, "netfilter_bpf");
    match (&rule.src, rule.port) {
        (Some(cidr), _) => Ok((
            open(src_map(cidr))?,
            cidr.lpm_key(),
            format!("--src {cidr}"),
        )),
        (None, Some(port)) => Ok((
            open(DENY_PORTS)?,
            port.to_ne_bytes().to_vec(),
            format!("--port {port}"),
        )),
        (None, None) => bail!("give --src PREFIX or --port PORT"),
    }
}

/// Writes `src` prefixes and `ports` into the maps (at start, and by `add`).
pub fn deny(
    v4: &impl MapCore,
    v6: &impl MapCore,
    ports: &impl MapCore,
    src: &[Cidr],
    port: &[u16],
) -> Result<()> {
    for cidr in src {
        let map: &dyn MapCore = match cidr {
            Cidr::V4(..) => v4,
            Cidr::V6(..) => v6,
        };
        map.update(&cidr.lpm_key(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding --deny-src {cidr}"))?;
    }
    for p in port {
        ports
            .update(&p.to_ne_bytes(), &[1], MapFlags::ANY)
            .with_context(|| format!("adding --deny-port {p}"))?;
    }
    Ok(())
}

pub fn add(rule: &Rule, dir: &Path) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    let (map, key, what) = target(rule, dir)?;
    match map.update(&key, &[1], MapFlags::NO_EXIST) {
        Ok(()) => println!("denied: {what}"),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => {
            println!("already denied: {what}")
        }
        Err(e) => return Err(e).with_context(|| format!("adding {what}")),
    }
    Ok(())
}

pub fn del(rule: &Rule, dir: &Path) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    let (map, key, what) = target(rule, dir)?;
    match map.delete(&key) {
        Ok(()) => println!("no longer denied: {what}"),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => bail!("not denied: {what}"),
        Err(e) => return Err(e).with_context(|| format!("removing {what}")),
    }
    Ok(())
}

/// One rule of the running policy, as `list --json` prints it.
#[derive(Serialize)]
struct Listed {
    src: Option<String>,
    port: Option<u16>,
}

pub fn list(dir: &Path, json: bool) -> Result<()> {
    privileges::require(&[Cap::Bpf])?;
    let mut rules = Vec::new();
    for name in [DENY_SRC_V4, DENY_SRC_V6] {
        let map = pin::open_map(dir, name, "netfilter_bpf")?;
        let mut prefixes: Vec<Cidr> = map.keys().filter_map(|k| Cidr::from_lpm_key(&k)).collect();
        prefixes.sort();
        rules.extend(prefixes.into_iter().map(|c| Listed {
            src: Some(c.to_string()),
            port: None,
        }));
    }
    let map = pin::open_map(dir, DENY_PORTS, "netfilter_bpf")?;
    let mut ports: Vec<u16> = map
        .keys()
        .filter_map(|k| Some(u16::from_ne_bytes(k.get(..2)?.try_into().ok()?)))
        .collect();
    ports.sort_unstable();
    rules.extend(ports.into_iter().map(|p| Listed {
        src: None,
        port: Some(p),
    }));
    for rule in &rules {
        if json {
            report::print_json(rule)?;
        } else {
            match (&rule.src, rule.port) {
                (Some(src), _) => println!("deny --src {src}"),
                (None, Some(port)) => println!("deny --port {port}"),
                (None, None) => {}
            }
        }
    }
    Ok(())
}
