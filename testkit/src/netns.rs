//! Network namespaces and the links between them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use anyhow::{Context, Result};

use crate::run_cmd;

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with every interface in it) on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// A new namespace with a unique name and its loopback up.
    pub fn new() -> Result<NetNs> {
        let name = format!(
            "lebpf-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::SeqCst)
        );
        run_cmd(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // A new namespace copies IPv4 settings such as forwarding from the
        // host's: a host that routes (Docker, Kubernetes) would hand every
        // test a router. Start from the kernel's defaults instead; a test
        // that needs forwarding turns it on.
        ns.sysctl("net/ipv4/ip_forward", "0")?;
        Ok(ns)
    }

    /// Sets `key` (a path under /proc/sys, such as `net/ipv4/ip_forward`)
    /// inside this namespace: /proc/sys/net shows the namespace of the task
    /// that opens it.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        self.run(|| std::fs::write(&path, value))
            .with_context(|| format!("setting {path} to {value} in {}", self.name))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`, returning stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run_cmd(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs `program` inside this namespace (`ip netns exec`,
    /// which execs it, so the child's pid is the program's pid).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A command that runs `program` in this network namespace only, the
    /// way the chapters run pinned lessons: `nsenter --net` keeps the mount
    /// namespace, so the host's /sys/fs/bpf and its pins stay visible to
    /// the lesson and to commands from other shells (`ip netns exec` mounts
    /// a private /sys that hides them).
    pub fn nsenter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns on a valid namespace fd; affects this thread only.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The index of `dev` inside this namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        let dev = dev.to_string();
        self.run(move || learning_ebpf_rs::netif::ifindex(&dev))
    }

    /// The MAC address of `dev` inside this namespace.
    pub fn mac(&self, dev: &str) -> Result<[u8; 6]> {
        let json = self.ip(&["-j", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)?;
        let text = links[0]["address"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{dev} has no MAC address"))?;
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(part, 16)?;
        }
        Ok(mac)
    }

    /// Packets sent out of `dev` inside this namespace, from its counters.
    pub fn tx_packets(&self, dev: &str) -> Result<u64> {
        let json = self.ip(&["-j", "-s", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)?;
        links[0]["stats64"]["tx"]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no tx counter for {dev}"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins two namespaces with a veth pair, `a_dev` in `a` and `b_dev` in `b`.
/// The pair is created directly inside the namespaces, never in the root
/// one, so names only need to be unique per namespace.
pub fn veth(a: &NetNs, a_dev: &str, b: &NetNs, b_dev: &str) -> Result<()> {
    run_cmd(Command::new("ip").args([
        "-n", &a.name, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]))?;
    a.ip(&["link", "set", a_dev, "up"])?;
    b.ip(&["link", "set", b_dev, "up"])?;
    Ok(())
}

/// Adds an address (`10.0.0.1/24`, `fd00::1/64`); IPv6 skips duplicate
/// address detection so the address is usable at once.
pub fn add_addr(ns: &NetNs, dev: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
    } else {
        ns.ip(&["addr", "add", cidr, "dev", dev])?;
    }
    Ok(())
}
