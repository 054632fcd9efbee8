//! Small helpers the benchmarks share.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;

use learning_ebpf_rs::privileges::{has_cap, Cap};

/// The median of some measurements (the upper one of the middle two for an
/// even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// What BPF_PROG_TEST_RUN measured: the average ns per run of `prog` on
/// `frame` over `repeat` runs (the kernel times the repeats itself).
pub fn test_run_ns(prog: &libbpf_rs::ProgramMut, frame: &[u8], repeat: u32) -> f64 {
    let input = libbpf_rs::ProgramInput {
        data_in: Some(frame),
        repeat,
        ..Default::default()
    };
    prog.test_run(input).expect("test_run").duration.as_nanos() as f64
}

/// Busy and total jiffies (USER_HZ ticks) from /proc/stat, of all CPUs
/// (`cpu: None`) or of one. Busy is everything but idle, iowait and steal
/// (time a hypervisor gave to someone else while this CPU wanted to run:
/// not work of ours).
pub fn cpu_jiffies(cpu: Option<usize>) -> (u64, u64) {
    let fields = cpu_stat(cpu);
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields[4] + fields[7];
    (total - idle, total)
}

/// Seconds of steal time of CPU `cpu` since boot, from /proc/stat.
pub fn steal_secs(cpu: usize) -> f64 {
    cpu_stat(Some(cpu))[7] as f64 / clock_ticks()
}

/// The numbers on /proc/stat's line for all CPUs or for one: user, nice,
/// system, idle, iowait, irq, softirq, steal, ...
fn cpu_stat(cpu: Option<usize>) -> Vec<u64> {
    let name = cpu.map_or("cpu".to_string(), |c| format!("cpu{c}"));
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    stat.lines()
        .map(|l| l.split_whitespace())
        .find_map(|mut f| (f.next() == Some(name.as_str())).then_some(f))
        .unwrap_or_else(|| panic!("no {name} line in /proc/stat"))
        .map(|f| f.parse().expect("a number in /proc/stat"))
        .collect()
}

/// Clock ticks per second, the unit of /proc/stat.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// How many times softirq `name` (NET_RX, TIMER...) has run on CPU `cpu`
/// since boot, from /proc/softirqs. For the packets that receive packet
/// steering sends to an idle CPU, each NET_RX run is one wake-up of it.
pub fn softirqs(cpu: usize, name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/softirqs").expect("/proc/softirqs");
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}:")))
        .and_then(|l| l.split_whitespace().nth(cpu + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Seconds CPU `cpu` has spent idle (idle + iowait, and steal) since boot. Unlike the
/// busy fields of /proc/stat, which a tick samples (and a tickless idle CPU
/// that wakes for a moment of softirq work is never sampled), the kernel
/// measures idle time exactly: busy time is wall time minus this.
pub fn cpu_idle_secs(cpu: usize) -> f64 {
    let (busy, total) = cpu_jiffies(Some(cpu));
    (total - busy) as f64 / clock_ticks()
}

/// Sends `count` frames out of `dev` in namespace `ns` through a raw packet
/// socket, 64 per sendmmsg, taking `frames` in turn (one frame: a single
/// flow; many: many flows), and stopping early after `limit`. Returns the
/// number sent. The sender pays for an sk_buff per frame.
pub fn flood(
    ns: &crate::NetNs,
    dev: &str,
    frames: &[Vec<u8>],
    count: usize,
    limit: std::time::Duration,
) -> usize {
    const BATCH: usize = 64;
    let ifindex = ns.ifindex(dev).expect("the flood's interface");
    ns.run(|| {
        // SAFETY: plain socket calls on structures we own, checked below;
        // the iovecs point into `frames`, which outlives every call.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            let rc = libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut iovs: Vec<libc::iovec> = vec![std::mem::zeroed(); BATCH];
            let mut msgs: Vec<libc::mmsghdr> = vec![std::mem::zeroed(); BATCH];
            let start = std::time::Instant::now();
            let mut sent = 0;
            while sent < count && start.elapsed() < limit {
                let n = BATCH.min(count - sent);
                for i in 0..n {
                    let frame = &frames[(sent + i) % frames.len()];
                    iovs[i] = libc::iovec {
                        iov_base: frame.as_ptr() as *mut _,
                        iov_len: frame.len(),
                    };
                    msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                let rc = libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0);
                if rc < 0 {
                    let err = std::io::Error::last_os_error();
                    if err.raw_os_error() == Some(libc::ENOBUFS) {
                        continue;
                    }
                    panic!("sendmmsg: {err}");
                }
                sent += rc as usize;
            }
            libc::close(fd);
            sent
        }
    })
}

/// Opens and loads a skeleton as it is (no configuration between the two
/// steps): the baselines and the lessons in their default setting.
pub fn load<'obj, B: SkelBuilder<'obj>>(
    builder: B,
    object: &'obj mut MaybeUninit<OpenObject>,
) -> <B::Output as OpenSkel<'obj>>::Output {
    builder
        .open(object)
        .expect("opening the BPF object")
        .load()
        .expect("loading the BPF object")
}

/// Whether the benchmark `name` has the capabilities it needs; if not, it
/// says so and should return (a benchmark is run by hand, never in CI).
pub fn can_run(name: &str, caps: &[Cap]) -> bool {
    let missing: Vec<&Cap> = caps.iter().filter(|&&cap| !has_cap(cap)).collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("SKIPPED {name} bench: needs root (missing {missing:?})");
    false
}
