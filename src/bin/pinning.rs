//! pinning: a program, its maps and its attachment pinned in a bpf
//! filesystem, so that they outlive the process that loaded them. The
//! loader pins and exits; later runs open the pins to read and change the
//! maps (`--show`, `--pause`, `--resume`), a second load replaces the
//! program but keeps the maps' contents (libbpf's map reuse), and
//! `--unpin` removes everything.
//!
//! The kernel side is bpf/pinning.bpf.c; the chapter is docs/14-pinning.md.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser};
use libbpf_rs::query::LinkInfo;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Program};
use serde::Serialize;

use learning_ebpf_rs::maps::{bytes_of, from_bytes};
use learning_ebpf_rs::pin;
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::pinning::types::{comm_key, settings};
use learning_ebpf_rs::skel::pinning::PinningSkelBuilder;
use learning_ebpf_rs::{cli, errors, report, skel};

const EXAMPLES: &str = "\
EXAMPLES:
    pinning                      # load, attach, pin everything, exit
    pinning --show               # read the pinned counts (any process)
    pinning --show --comm bash   # only bash's
    pinning --pause              # change a pinned map: stop counting
    pinning                      # again: a new program, the same maps
    pinning --unpin              # remove the pins: the program detaches";

/// The default pin directory.
const PIN_DIR: &str = "/sys/fs/bpf/learning-ebpf-rs-pinning";

/// Count exec()s by command name with a program that lives in a bpf
/// filesystem, not in a process.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
#[command(group(ArgGroup::new("action").args(["show", "pause", "resume", "unpin"])))]
struct Args {
    /// Directory on a bpffs for the pins
    #[arg(long, value_name = "DIR", default_value = PIN_DIR)]
    pin: PathBuf,
    /// Print the pinned counts (and what is pinned) instead of loading
    #[arg(long)]
    show: bool,
    /// With --show: only these command names
    #[arg(long, value_name = "NAME", requires = "show")]
    comm: Vec<String>,
    /// Stop counting, through the pinned settings map
    #[arg(long)]
    pause: bool,
    /// Count again
    #[arg(long)]
    resume: bool,
    /// Remove every pin (the program detaches, the maps are freed)
    #[arg(long)]
    unpin: bool,
    /// One JSON object instead of text (with --show)
    #[arg(long)]
    json: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
    /// When loading: also write each exec() to the kernel's trace buffer
    /// (bpf_printk; read it with `bpftool prog tracelog`)
    #[arg(long)]
    trace: bool,
}

/// The pins, by name in the directory.
const MAPS: [&str; 2] = ["counts", "settings"];
const PROG: &str = "prog";
const LINK: &str = "link";

/// Ids of what is pinned, as `bpftool` shows them.
#[derive(Serialize)]
struct Pinned {
    prog_id: u32,
    link_id: u32,
    /// The program the link runs (the same as prog_id unless replaced).
    link_prog_id: u32,
    counts_id: u32,
    settings_id: u32,
}

fn pinned_ids(dir: &Path) -> Result<Pinned> {
    let prog =
        Program::fd_from_pinned_path(dir.join(PROG)).context("opening the pinned program")?;
    let link = Link::open(dir.join(LINK)).context("opening the pinned link")?;
    let link = LinkInfo::from_fd(link.as_fd())?;
    let map_id = |name: &str| -> Result<u32> {
        let map = MapHandle::from_pinned_path(dir.join(name))
            .with_context(|| format!("opening the pinned map {name}"))?;
        Ok(map.info()?.info.id)
    };
    Ok(Pinned {
        prog_id: Program::id_from_fd(prog.as_fd())?,
        link_id: link.id,
        link_prog_id: link.prog_id,
        counts_id: map_id("counts")?,
        settings_id: map_id("settings")?,
    })
}

/// Fails with one line unless `dir` holds this lesson's pins.
fn require_pins(dir: &Path) -> Result<()> {
    if !dir.join("counts").exists() {
        if !pin::is_bpffs(dir) && !pin::is_bpffs(dir.parent().unwrap_or(dir)) {
            bail!(pin::not_bpffs(dir));
        }
        bail!(
            "nothing is pinned in {}: load first with `pinning --pin {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

// ANCHOR: load
/// Loads the program with its maps at their pins in `dir` (reused when they
/// exist), attaches it, pins the program and the link in place of any old
/// ones, and returns: the pins keep everything alive.
fn load_and_pin(dir: &Path, trace: bool) -> Result<()> {
    let mut object = MaybeUninit::uninit();
    let mut open = PinningSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    // (1) A pin path per map: at load, libbpf reuses the map pinned there
    // if there is one (and its type and sizes match), or creates the map
    // and pins it there.
    open.maps.counts.set_pin_path(dir.join("counts"))?;
    open.maps.settings.set_pin_path(dir.join("settings"))?;
    skel::rodata(open.maps.rodata_data.as_deref_mut())?.trace = trace;
    let mut skel = open.load().map_err(errors::load_error)?;

    // (2) Attach: a bpf_link. Then replace the old link's pin with the new
    // one: the old link loses its last reference, and the old program
    // detaches. (For a moment both run: an exec() then counts twice.)
    let mut link = skel
        .progs
        .count_exec
        .attach()
        .context("attaching count_exec")?;
    for name in [LINK, PROG] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    link.pin(dir.join(LINK)).context("pinning the link")?;
    skel.progs
        .count_exec
        .pin(dir.join(PROG))
        .context("pinning the program")?;
    Ok(())
}
// ANCHOR_END: load

fn load(args: &Args) -> Result<()> {
    let dir = &args.pin;
    let created = pin::prepare_dir(dir)?;
    let reused: Vec<bool> = MAPS.iter().map(|m| dir.join(m).exists()).collect();
    if let Err(e) = load_and_pin(dir, args.trace) {
        // Leave nothing behind that this run pinned (libbpf unpins the maps
        // it created if the load fails, but not if attaching fails).
        for (map, reused) in MAPS.iter().zip(&reused) {
            if !reused {
                let _ = std::fs::remove_file(dir.join(map));
            }
        }
        if created {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e);
    }

    let ids = pinned_ids(dir)?;
    let maps: Vec<String> = MAPS
        .iter()
        .zip(&reused)
        .map(|(m, r)| format!("{m} ({})", if *r { "reused" } else { "new" }))
        .collect();
    println!(
        "Loaded count_exec (prog id {}) and attached it (link id {}); maps {}; pinned in {}.",
        ids.prog_id,
        ids.link_id,
        maps.join(", "),
        dir.display()
    );
    println!("Exiting: the pins keep the program attached. Remove them with --unpin.");
    Ok(())
}

/// What `--show` prints.
#[derive(Serialize)]
struct Shown {
    pinned: Pinned,
    paused: bool,
    /// exec()s by command name.
    counts: BTreeMap<String, u64>,
}

// ANCHOR: show
/// Reads the pinned maps, from any process: no skeleton, no program, only
/// the paths.
fn show(args: &Args) -> Result<()> {
    let dir = &args.pin;
    require_pins(dir)?;
    let counts = MapHandle::from_pinned_path(dir.join("counts"))?;
    let mut shown = BTreeMap::new();
    for key in counts.keys() {
        let comm: comm_key = from_bytes(&key)?;
        let name = learning_ebpf_rs::trace::cstr(&comm.comm);
        if !args.comm.is_empty() && !args.comm.contains(&name) {
            continue;
        }
        if let Some(value) = counts.lookup(&key, MapFlags::ANY)? {
            shown.insert(name, from_bytes::<u64>(&value)?);
        }
    }
    let shown = Shown {
        pinned: pinned_ids(dir)?,
        paused: read_settings(dir)?.paused != 0,
        counts: shown,
    };
    // ANCHOR_END: show
    if args.json {
        return report::print_json(&shown);
    }
    let p = &shown.pinned;
    println!(
        "Pinned in {}: program {} attached by link {}, maps counts {} and settings {}; {}.",
        dir.display(),
        p.prog_id,
        p.link_id,
        p.counts_id,
        p.settings_id,
        if shown.paused { "paused" } else { "counting" }
    );
    println!("{:>8}  COMMAND", "EXECS");
    for (name, n) in &shown.counts {
        println!("{n:>8}  {name}");
    }
    Ok(())
}

fn read_settings(dir: &Path) -> Result<settings> {
    let map = MapHandle::from_pinned_path(dir.join("settings"))?;
    let value = map
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)?
        .context("the settings map is empty")?;
    from_bytes(&value)
}

/// Writes the pinned settings map: the running program sees the change at
/// its next run.
fn set_paused(dir: &Path, paused: bool) -> Result<()> {
    require_pins(dir)?;
    let map = MapHandle::from_pinned_path(dir.join("settings"))?;
    let value = settings {
        paused: u32::from(paused),
    };
    map.update(&0u32.to_ne_bytes(), bytes_of(&value), MapFlags::ANY)?;
    println!(
        "{} (settings map in {}).",
        if paused { "Paused" } else { "Counting again" },
        dir.display()
    );
    Ok(())
}

// ANCHOR: unpin
/// Removes the pins. Each was a reference: without the link's, the program
/// detaches; without the program's and the maps', they are freed (unless
/// some process still holds a file descriptor to them).
fn unpin(dir: &Path) -> Result<()> {
    require_pins(dir)?;
    for name in [LINK, PROG].iter().chain(&MAPS) {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    println!(
        "Removed the pins in {}: the program is detached and unloaded.",
        dir.display()
    );
    Ok(())
}
// ANCHOR_END: unpin

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("pinning")?;
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf])?;
    if args.show {
        show(&args)
    } else if args.pause || args.resume {
        set_paused(&args.pin, args.pause)
    } else if args.unpin {
        unpin(&args.pin)
    } else {
        load(&args)
    }
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
