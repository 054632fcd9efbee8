//! map_types: after the known workload, each map holds what a model of it
//! computed here from the same events says (the LRU hash as a textbook
//! least-recently-used cache of its size); every lookup and update the
//! benchmark times succeeds; bad input gets one line.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use serde_json::{json, Value};

use testkit::{assert_bad_args, require_privileges, two_cpus, BadInput, Exit};

const BIN: &str = env!("CARGO_BIN_EXE_map_types");

/// The model's sizes: the same as bpf/map_types.h's enum map_sizes.
const ARRAY_SLOTS: u64 = 4;
const QUEUE_ENTRIES: usize = 4;
const LRU_ENTRIES: usize = 8;
const INNER_MAPS: u64 = 2;
/// The prefixes the binary puts in the LPM trie.
const PREFIXES: [(Ipv4Addr, u32); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 24),
    (Ipv4Addr::new(10, 1, 0, 0), 16),
];

fn run_json(args: &[&str]) -> Vec<Value> {
    testkit::json_lines(Command::new(BIN).args(args))
}

struct Event {
    key: u64,
    value: u64,
    addr: Ipv4Addr,
    cpu: usize,
}

/// A textbook LRU cache of `size` entries, counting uses, fed `keys` the
/// way `lru_touch` is: a key that is there is used, one that is not is
/// inserted, evicting the least recently used when full.
fn lru_model(keys: &[u64], size: usize) -> BTreeMap<u64, u64> {
    let mut order: Vec<u64> = Vec::new(); // least recently used first
    let mut uses = BTreeMap::new();
    for &key in keys {
        if let Some(at) = order.iter().position(|&k| k == key) {
            order.remove(at);
            *uses.get_mut(&key).unwrap() += 1;
        } else {
            if order.len() == size {
                uses.remove(&order.remove(0));
            }
            uses.insert(key, 1);
        }
        order.push(key);
    }
    uses
}

#[test]
fn each_map_holds_what_the_model_says() {
    require_privileges!("each_map_holds_what_the_model_says");
    if !two_cpus("each_map_holds_what_the_model_says") {
        return;
    }
    let out = &run_json(&["--json", "--cpus", "0,1"])[0];
    let events: Vec<Event> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Event {
            key: e["key"].as_u64().unwrap(),
            value: e["value"].as_u64().unwrap(),
            addr: e["addr"].as_str().unwrap().parse().unwrap(),
            cpu: e["cpu"].as_u64().unwrap() as usize,
        })
        .collect();
    assert_eq!(events.len(), 10);
    assert!(events.iter().any(|e| e.cpu == 0) && events.iter().any(|e| e.cpu == 1));

    // The model, computed from the events alone.
    let mut array = vec![0u64; ARRAY_SLOTS as usize];
    let mut hash: BTreeMap<u64, u64> = BTreeMap::new();
    let mut percpu_array = vec![[0u64; 2]; ARRAY_SLOTS as usize];
    let mut percpu_hash: BTreeMap<u64, [u64; 2]> = BTreeMap::new();
    let mut lpm: BTreeMap<String, u64> = PREFIXES
        .iter()
        .map(|(a, l)| (format!("{a}/{l}"), 0))
        .collect();
    let mut unmatched = 0;
    let mut groups = vec![BTreeMap::<u64, u64>::new(); INNER_MAPS as usize];
    for e in &events {
        array[(e.key % ARRAY_SLOTS) as usize] += e.value;
        *hash.entry(e.key).or_default() += e.value;
        percpu_array[(e.key % ARRAY_SLOTS) as usize][e.cpu] += e.value;
        percpu_hash.entry(e.key).or_default()[e.cpu] += e.value;
        let longest = PREFIXES
            .iter()
            .filter(|(net, len)| u32::from(e.addr) >> (32 - len) == u32::from(*net) >> (32 - len))
            .max_by_key(|(_, len)| *len);
        match longest {
            Some((net, len)) => *lpm.get_mut(&format!("{net}/{len}")).unwrap() += 1,
            None => unmatched += 1,
        }
        *groups[(e.key % INNER_MAPS) as usize]
            .entry(e.key)
            .or_default() += e.value;
    }
    let values: Vec<u64> = events.iter().map(|e| e.value).collect();
    let keys: Vec<u64> = events.iter().map(|e| e.key).collect();
    // A queue pushed with BPF_EXIST keeps the newest QUEUE_ENTRIES, oldest
    // first; a stack pushed with 0 keeps the first ones and refuses the
    // rest, and pops newest first.
    let queue = &values[values.len() - QUEUE_ENTRIES..];
    let stack: Vec<u64> = values[..QUEUE_ENTRIES].iter().rev().copied().collect();

    // What the maps held, side by side with the model.
    let per_cpu = |v: &Value| -> [u64; 2] {
        let v = v.as_array().unwrap();
        // Every other CPU's copy is untouched.
        assert!(v[2..].iter().all(|x| x == 0), "{v:?}");
        [v[0].as_u64().unwrap(), v[1].as_u64().unwrap()]
    };
    assert_eq!(out["array"], json!(array));
    assert_eq!(out["hash"], json!(hash));
    let seen: Vec<[u64; 2]> = out["percpu_array"]
        .as_array()
        .unwrap()
        .iter()
        .map(per_cpu)
        .collect();
    assert_eq!(seen, percpu_array);
    let seen: BTreeMap<u64, [u64; 2]> = out["percpu_hash"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), per_cpu(v)))
        .collect();
    assert_eq!(seen, percpu_hash);
    let seen: BTreeMap<String, u64> = out["lpm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, lpm);
    assert_eq!(out["lpm_unmatched"], unmatched);
    assert_eq!(out["queue"], json!(queue));
    assert_eq!(out["stack"], json!(stack));
    assert_eq!(out["stack_full"], values.len() - QUEUE_ENTRIES);
    assert_eq!(out["ringbuf"], json!(keys));
    assert_eq!(out["ringbuf_full"], 0);
    assert_eq!(out["groups"], json!(groups));

    // The LRU hash: full, it kept what was used again and what came last.
    let lru_keys: Vec<u64> = out["lru_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    let model = lru_model(&lru_keys, LRU_ENTRIES);
    assert_eq!(out["lru"], json!(model));
    assert_eq!(
        model.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4, 9, 10, 11, 12],
        "the chapter says 5-8 are evicted"
    );
}

#[test]
fn every_benchmarked_operation_succeeds() {
    require_privileges!("every_benchmarked_operation_succeeds");
    // The binary checks each operation's verdict (a failed lookup or update
    // returns XDP_DROP) and fails if one did not succeed.
    let rows = run_json(&["--bench", "--json", "-n", "1000", "--rounds", "3"]);
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops.len(), 18, "{ops:?}");
    assert_eq!(ops[1], "array lookup");
    for row in &rows {
        let (min, ns, max) = (
            row["min"].as_f64().unwrap(),
            row["ns_per_run"].as_f64().unwrap(),
            row["max"].as_f64().unwrap(),
        );
        assert!(min <= ns && ns <= max, "{row}");
    }
    assert_eq!(rows[1]["vs_array_lookup"], 1.0);
}

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    assert_bad_args(
        BIN,
        &[
            BadInput {
                name: "one CPU",
                args: &["--cpus", "0"],
                exit: Exit::Code(1),
                says: "--cpus takes two CPUs",
            },
            BadInput {
                name: "a CPU that is not there",
                args: &["--cpus", "0,4096"],
                exit: Exit::Code(1),
                says: "CPU 4096 is not available",
            },
            BadInput {
                name: "too few runs to time",
                args: &["--bench", "-n", "10"],
                exit: Exit::Code(2),
                says: "--runs",
            },
            BadInput {
                name: "no rounds",
                args: &["--bench", "--rounds", "0"],
                exit: Exit::Code(2),
                says: "--rounds",
            },
        ],
    );
}

/// The chapter's "Run it", as text.
#[test]
fn chapter_run_it_output() {
    require_privileges!("chapter_run_it_output");
    if !two_cpus("chapter_run_it_output") {
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    testkit::chapter::assert_sample("docs/13-map_types.md", "map_types_run", &stdout);
}

/// The chapter's benchmark sample: the same rows and columns (the figures
/// are this run's).
#[test]
fn chapter_bench_output() {
    require_privileges!("chapter_bench_output");
    let out = Command::new(BIN)
        .args(["--bench", "-n", "100000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    testkit::chapter::assert_sample("docs/13-map_types.md", "map_types_bench", &stdout);
}
