//! map_types: the maps a BPF program meets first, fed one known workload.
//! Each event runs the `workload` program once through BPF_PROG_TEST_RUN;
//! then the binary reads what every map holds. An LRU hash is filled past
//! its size by a second program, to show what it evicts. `--bench` times
//! one lookup and one update of each map type instead.
//!
//! The kernel side is bpf/map_types.bpf.c; the chapter is docs/13-map_types.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, RingBufferBuilder};
use serde::Serialize;

use learning_ebpf_rs::cidr::Cidr;
use learning_ebpf_rs::maps::{bytes_of, from_bytes, percpu};
use learning_ebpf_rs::privileges::{self, Cap};
use learning_ebpf_rs::skel::map_types::types::{bench_op, event, map_sizes};
use learning_ebpf_rs::skel::map_types::{MapTypesSkel, MapTypesSkelBuilder};
use learning_ebpf_rs::{cli, errors, report, skel, test_run};

const EXAMPLES: &str = "\
EXAMPLES:
    map_types               # run the workload, print what each map holds
    map_types --json        # the same as one JSON object
    map_types --bench       # the cost of a lookup and an update, per map type
    map_types --cpus 2,3    # the workload's events on CPUs 2 and 3";

/// Feed one known workload to each kind of BPF map and print what each
/// holds; or measure what their lookups and updates cost.
#[derive(Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// The two CPUs the events run on (even events on A, odd ones on B)
    #[arg(long, value_name = "A,B", value_delimiter = ',', default_values_t = [0usize, 1])]
    cpus: Vec<usize>,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Time one lookup and one update of each map type instead
    #[arg(long)]
    bench: bool,
    /// With --bench: runs of each operation per measurement
    #[arg(short = 'n', long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    runs: u32,
    /// With --bench: measurements per operation (the median is shown)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=101))]
    rounds: u32,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    verbose: bool,
}

// ANCHOR: workload
/// The workload: event i has key KEYS[i], value i + 1, address
/// ADDRS[i % 4], and runs on the first CPU if i is even, the second if odd.
const KEYS: [u32; 10] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
const ADDRS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 1, 7),
    Ipv4Addr::new(10, 1, 2, 3),
    Ipv4Addr::new(192, 0, 2, 1),
];
/// The prefixes user space puts in the LPM trie before the workload.
const PREFIXES: [&str; 3] = ["10.0.0.0/8", "10.0.0.0/24", "10.1.0.0/16"];
/// The LRU hash's keys, in order: fill it (1-8), use half of it again
/// (1-4), then insert four more than fit (9-12).
const LRU_KEYS: [u32; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12];
// ANCHOR_END: workload

/// One event of the workload, as it is printed.
#[derive(Clone, Serialize)]
struct Event {
    key: u32,
    value: u32,
    addr: Ipv4Addr,
    cpu: usize,
}

fn workload(cpus: &[usize]) -> Vec<Event> {
    KEYS.iter()
        .enumerate()
        .map(|(i, &key)| Event {
            key,
            value: i as u32 + 1,
            addr: ADDRS[i % ADDRS.len()],
            cpu: cpus[i % 2],
        })
        .collect()
}

/// The frame that carries `ev` to a program (XDP wants at least an
/// Ethernet header's worth of bytes; the rest is zeros).
fn frame(key: u32, value: u32, addr: Ipv4Addr) -> [u8; 64] {
    let ev = event {
        key,
        value,
        addr: u32::from_ne_bytes(addr.octets()),
    };
    let mut frame = [0u8; 64];
    let bytes = bytes_of(&ev);
    frame[..bytes.len()].copy_from_slice(bytes);
    frame
}

/// What every map holds after the workload.
#[derive(Serialize)]
struct Contents {
    events: Vec<Event>,
    /// By slot.
    array: Vec<u64>,
    hash: BTreeMap<u32, u64>,
    /// By slot, then by CPU (every possible CPU).
    percpu_array: Vec<Vec<u64>>,
    percpu_hash: BTreeMap<u32, Vec<u64>>,
    /// Events counted under each prefix, and those no prefix holds.
    lpm: Vec<(String, u64)>,
    lpm_unmatched: u64,
    /// In the order they came out: oldest first for the queue, newest
    /// first for the stack.
    queue: Vec<u32>,
    stack: Vec<u32>,
    stack_full: u64,
    /// The keys of the ring buffer's records, in the order they arrived.
    ringbuf: Vec<u32>,
    ringbuf_full: u64,
    /// One hash per inner map.
    groups: Vec<BTreeMap<u32, u64>>,
    lru_keys: Vec<u32>,
    lru: BTreeMap<u32, u64>,
}

/// Every key and value of a hash map of u32 keys and u64 values.
fn hash_contents(map: &dyn MapCore) -> Result<BTreeMap<u32, u64>> {
    let mut contents = BTreeMap::new();
    for key in map.keys() {
        if let Some(value) = map.lookup(&key, MapFlags::ANY)? {
            contents.insert(from_bytes(&key)?, from_bytes(&value)?);
        }
    }
    Ok(contents)
}

/// Pops a queue or stack until it is empty, from user space.
fn drain(map: &dyn MapCore) -> Result<Vec<u32>> {
    let mut values = Vec::new();
    while let Some(value) = map.lookup_and_delete(&[])? {
        values.push(from_bytes(&value)?);
    }
    Ok(values)
}

// ANCHOR: read
/// Reads what each map holds (and empties the queue, the stack and the
/// ring buffer, which hand each value out once).
fn read_contents(skel: &MapTypesSkel, events: Vec<Event>) -> Result<Contents> {
    let maps = &skel.maps;
    let slots = 0..map_sizes::ARRAY_SLOTS.0;
    let array = slots
        .clone()
        .map(|slot| {
            let value = maps.array.lookup(&slot.to_ne_bytes(), MapFlags::ANY)?;
            from_bytes(&value.context("an array slot is missing")?)
        })
        .collect::<Result<_>>()?;
    let percpu_array = slots
        .map(|slot| percpu::<u64>(&maps.percpu_array, &slot.to_ne_bytes()))
        .collect::<Result<_>>()?;
    let mut percpu_hash = BTreeMap::new();
    for key in maps.percpu_hash.keys() {
        percpu_hash.insert(from_bytes(&key)?, percpu::<u64>(&maps.percpu_hash, &key)?);
    }
    let mut lpm = BTreeMap::new();
    for key in maps.lpm.keys() {
        let prefix = Cidr::from_lpm_key(&key).context("a malformed LPM key")?;
        let hits = maps.lpm.lookup(&key, MapFlags::ANY)?.unwrap_or_default();
        lpm.insert(prefix, from_bytes::<u64>(&hits)?);
    }
    let lpm: Vec<(String, u64)> = lpm.into_iter().map(|(p, n)| (p.to_string(), n)).collect();
    // A map of maps holds map IDs when read from user space: open each.
    let mut groups = Vec::new();
    for group in 0..map_sizes::INNER_MAPS.0 {
        let id = maps.groups.lookup(&group.to_ne_bytes(), MapFlags::ANY)?;
        let id: u32 = from_bytes(&id.context("an inner map is missing")?)?;
        let inner = MapHandle::from_map_id(id).context("opening an inner map by its id")?;
        groups.push(hash_contents(&inner)?);
    }
    let ringbuf = RefCell::new(Vec::new());
    let mut builder = RingBufferBuilder::new();
    builder.add(&maps.events, |data| match from_bytes::<event>(data) {
        Ok(ev) => {
            ringbuf.borrow_mut().push(ev.key);
            0
        }
        Err(_) => -1,
    })?;
    builder
        .build()?
        .consume()
        .context("reading the ring buffer")?;
    let bss = skel::bss(maps.bss_data.as_deref())?;
    let matched: u64 = lpm.iter().map(|(_, n)| n).sum();
    Ok(Contents {
        lpm_unmatched: events.len() as u64 - matched,
        events,
        array,
        hash: hash_contents(&maps.hash)?,
        percpu_array,
        percpu_hash,
        lpm,
        queue: drain(&maps.queue)?,
        stack: drain(&maps.stack)?,
        stack_full: bss.stack_full,
        ringbuf: ringbuf.into_inner(),
        ringbuf_full: bss.ringbuf_full,
        groups,
        lru_keys: LRU_KEYS.to_vec(),
        lru: hash_contents(&maps.lru)?,
    })
}
// ANCHOR_END: read

fn run_workload(skel: &MapTypesSkel, args: &Args) -> Result<()> {
    // ANCHOR: spine
    let maps = &skel.maps;
    // The LPM trie's prefixes come from user space.
    for prefix in PREFIXES {
        let prefix: Cidr = prefix.parse().map_err(anyhow::Error::msg)?;
        maps.lpm
            .update(&prefix.lpm_key(), &0u64.to_ne_bytes(), MapFlags::ANY)?;
    }
    // Each event through `workload`, on its CPU.
    let events = workload(&args.cpus);
    for ev in &events {
        let frame = frame(ev.key, ev.value, ev.addr);
        let prog = skel.progs.workload.as_fd();
        let out = test_run::run_on_cpu(prog, &frame, 1, ev.cpu)?;
        if out.retval != libbpf_sys::XDP_PASS {
            bail!(
                "the workload program returned {} for key {}",
                out.retval,
                ev.key
            );
        }
    }
    // The LRU hash's keys through `lru_touch`, all on the first CPU.
    for key in LRU_KEYS {
        let frame = frame(key, 1, Ipv4Addr::UNSPECIFIED);
        let prog = skel.progs.lru_touch.as_fd();
        test_run::run_on_cpu(prog, &frame, 1, args.cpus[0])?;
    }
    let contents = read_contents(skel, events)?;
    // ANCHOR_END: spine
    if args.json {
        report::print_json(&contents)
    } else {
        print_contents(&contents, &args.cpus);
        Ok(())
    }
}

/// `key: value` pairs, comma-separated.
fn pairs<K: std::fmt::Display, V: std::fmt::Display>(
    items: impl IntoIterator<Item = (K, V)>,
) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    items.join(", ")
}

fn numbers(items: &[u32]) -> String {
    let items: Vec<String> = items.iter().map(u32::to_string).collect();
    items.join(" ")
}

fn print_contents(c: &Contents, cpus: &[usize]) {
    println!(
        "{} events through `workload` (even ones on CPU {}, odd ones on CPU {}):",
        c.events.len(),
        cpus[0],
        cpus[1]
    );
    for ev in &c.events {
        print!(" {}={}", ev.key, ev.value);
    }
    println!(" (key=value)");
    println!(
        "{} keys through `lru_touch` on CPU {}: {}\n",
        c.lru_keys.len(),
        cpus[0],
        numbers(&c.lru_keys)
    );
    let per_cpu = |values: &Vec<u64>| format!("{}+{}", values[cpus[0]], values[cpus[1]]);
    println!("{:<13} WHAT IT HOLDS", "MAP");
    println!(
        "{:<13} {}   (sum of values, slot = key % {})",
        "array",
        pairs(c.array.iter().enumerate()),
        c.array.len()
    );
    println!("{:<13} {}   (sum of values by key)", "hash", pairs(&c.hash));
    println!(
        "{:<13} {}   (CPU {}+CPU {})",
        "percpu_array",
        pairs(c.percpu_array.iter().map(per_cpu).enumerate()),
        cpus[0],
        cpus[1]
    );
    println!(
        "{:<13} {}",
        "percpu_hash",
        pairs(c.percpu_hash.iter().map(|(k, v)| (k, per_cpu(v))))
    );
    println!(
        "{:<13} {}   (events by longest prefix; {} in none)",
        "lpm",
        pairs(c.lpm.iter().map(|(p, n)| (p, n))),
        c.lpm_unmatched
    );
    println!(
        "{:<13} {}   (oldest first; the oldest made room when full)",
        "queue",
        numbers(&c.queue)
    );
    println!(
        "{:<13} {}   (newest first; {} pushes refused when full)",
        "stack",
        numbers(&c.stack),
        c.stack_full
    );
    println!(
        "{:<13} {}   (keys, in order; {} lost)",
        "events",
        numbers(&c.ringbuf),
        c.ringbuf_full
    );
    for (i, group) in c.groups.iter().enumerate() {
        let name = format!("groups[{i}]");
        println!(
            "{name:<13} {}   (key % {} == {i})",
            pairs(group),
            c.groups.len()
        );
    }
    let mut evicted: Vec<u32> = c.lru_keys.clone();
    evicted.sort_unstable();
    evicted.dedup();
    evicted.retain(|k| !c.lru.contains_key(k));
    println!(
        "{:<13} {}   (uses by key; evicted: {})",
        "lru",
        pairs(&c.lru),
        numbers(&evicted)
    );
}

/// The operations `--bench` times, in the order it prints them.
const BENCH: [(bench_op, &str); 18] = [
    (bench_op::OP_NOTHING, "nothing (the floor)"),
    (bench_op::OP_ARRAY_LOOKUP, "array lookup"),
    (bench_op::OP_ARRAY_UPDATE, "array update"),
    (bench_op::OP_PERCPU_ARRAY_LOOKUP, "percpu_array lookup"),
    (bench_op::OP_PERCPU_ARRAY_UPDATE, "percpu_array update"),
    (bench_op::OP_HASH_LOOKUP, "hash lookup"),
    (bench_op::OP_HASH_UPDATE, "hash update"),
    (bench_op::OP_PERCPU_HASH_LOOKUP, "percpu_hash lookup"),
    (bench_op::OP_PERCPU_HASH_UPDATE, "percpu_hash update"),
    (bench_op::OP_LRU_LOOKUP, "lru lookup"),
    (bench_op::OP_LRU_UPDATE, "lru update"),
    (bench_op::OP_LPM_LOOKUP, "lpm lookup"),
    (bench_op::OP_LPM_UPDATE, "lpm update"),
    (bench_op::OP_QUEUE_PEEK, "queue peek"),
    (bench_op::OP_QUEUE_PUSH_POP, "queue push+pop"),
    (bench_op::OP_STACK_PEEK, "stack peek"),
    (bench_op::OP_STACK_PUSH_POP, "stack push+pop"),
    (bench_op::OP_MAP_OF_MAPS_LOOKUP, "map of maps lookup"),
];

/// One operation's cost.
#[derive(Serialize)]
struct Cost {
    op: &'static str,
    /// Median over the rounds of the kernel's average ns per run.
    ns_per_run: f64,
    /// The slowest and fastest round.
    min: f64,
    max: f64,
    /// ns_per_run divided by the array lookup's, measured in the same run.
    vs_array_lookup: f64,
}

fn run_bench(skel: &mut MapTypesSkel, args: &Args) -> Result<()> {
    // Key 1 in every map (the array has it already), so that each lookup
    // finds something and each update replaces something.
    let maps = &skel.maps;
    let one = 1u32.to_ne_bytes();
    let value = 1u64.to_ne_bytes();
    maps.hash.update(&one, &value, MapFlags::ANY)?;
    maps.lru.update(&one, &value, MapFlags::ANY)?;
    let every_cpu = vec![value.to_vec(); libbpf_rs::num_possible_cpus()?];
    maps.percpu_hash
        .update_percpu(&one, &every_cpu, MapFlags::ANY)?;
    let host: Cidr = "10.0.0.1/32".parse().map_err(anyhow::Error::msg)?;
    maps.lpm.update(&host.lpm_key(), &value, MapFlags::ANY)?;
    maps.queue.update(&[], &one, MapFlags::ANY)?;
    maps.stack.update(&[], &one, MapFlags::ANY)?;
    let id = maps
        .groups
        .lookup(&one, MapFlags::ANY)?
        .context("no inner map 1")?;
    let inner = MapHandle::from_map_id(from_bytes(&id)?)?;
    inner.update(&one, &value, MapFlags::ANY)?;

    // ANCHOR: bench
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); BENCH.len()];
    let frame = [0u8; 64];
    for _ in 0..args.rounds {
        for (i, (op, name)) in BENCH.iter().enumerate() {
            let bss = skel::bss_mut(skel.maps.bss_data.as_deref_mut())?;
            bss.bench_op = op.0;
            let prog = skel.progs.bench.as_fd();
            let out = test_run::run_on_cpu(prog, &frame, args.runs, args.cpus[0])?;
            if out.retval != libbpf_sys::XDP_PASS {
                bail!("{name}: the operation failed (verdict {})", out.retval);
            }
            samples[i].push(out.ns_per_run);
        }
    }
    // ANCHOR_END: bench
    let median = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let medians: Vec<f64> = samples.iter_mut().map(median).collect();
    let array_lookup = medians[1];
    if !args.json {
        println!(
            "{} runs of each operation on CPU {}, median of {} rounds:",
            args.runs, args.cpus[0], args.rounds
        );
        println!(
            "{:<22} {:>9} {:>15} {:>14}",
            "OPERATION", "NS/RUN", "(MIN-MAX)", "VS ARRAY LOOKUP"
        );
    }
    for (i, (_, op)) in BENCH.iter().enumerate() {
        let cost = Cost {
            op,
            ns_per_run: medians[i],
            min: samples[i][0],
            max: samples[i][samples[i].len() - 1],
            vs_array_lookup: medians[i] / array_lookup,
        };
        if args.json {
            report::print_json(&cost)?;
        } else {
            println!(
                "{:<22} {:>9.1} {:>15} {:>13.2}x",
                cost.op,
                cost.ns_per_run,
                format!("({:.1}-{:.1})", cost.min, cost.max),
                cost.vs_array_lookup
            );
        }
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    learning_ebpf_rs::lessons::require_kernel("map_types")?;
    if args.cpus.len() != 2 {
        bail!("--cpus takes two CPUs, A,B (not {})", args.cpus.len());
    }
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(cpu) = args.cpus.iter().find(|&&c| c >= online) {
        bail!("CPU {cpu} is not available here (this process may use {online} CPUs)");
    }
    cli::init_libbpf_log(args.verbose);
    privileges::require(&[Cap::Bpf])?;

    let mut object = MaybeUninit::uninit();
    let open = MapTypesSkelBuilder::default()
        .open(&mut object)
        .context("opening the BPF object")?;
    let mut skel = open.load().map_err(errors::load_error)?;
    if args.bench {
        run_bench(&mut skel, &args)
    } else {
        run_workload(&skel, &args)
    }
}

fn main() {
    let args = cli::parse::<Args>();
    cli::run(|| run(args));
}
