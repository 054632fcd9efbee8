//! Keeping threads and processes on chosen CPUs.

/// A CPU set holding `cpus`, for sched_setaffinity.
pub fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// Keeps the calling thread on `cpu` from now on.
pub fn pin_thread(cpu: usize) {
    let set = cpu_set(&[cpu]);
    // SAFETY: sched_setaffinity on the calling thread (0) with a valid set.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Restricts every thread of this process (and what they start later) to
/// the CPUs in `cpus`.
pub fn pin_process(cpus: &[usize]) {
    let set = cpu_set(cpus);
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let tid: libc::pid_t = task.unwrap().file_name().to_string_lossy().parse().unwrap();
        // SAFETY: a valid cpu_set_t of the size passed. A thread that has
        // ended meanwhile gives ESRCH, which is fine.
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    }
}

/// True when this process may use two CPUs or more, as the tests that run a
/// program on two CPUs at once need. Otherwise says that `test` is skipped
/// (a failure under CI) and returns false.
pub fn two_cpus(test: &str) -> bool {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n >= 2 {
        return true;
    }
    assert!(
        !crate::in_ci(),
        "{test} needs two CPUs; this machine has {n}"
    );
    eprintln!("SKIPPED {test}: needs two CPUs, this machine has {n}");
    false
}
