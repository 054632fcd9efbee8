//! Capability checks, so that a binary without privileges says so in one
//! line before it loads or attaches anything.

use anyhow::{bail, Result};

/// The capabilities the lessons need (bit numbers from linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    NetRaw = 13,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// True when the process holds `cap` (CAP_SYS_ADMIN stands in for CAP_BPF
/// and CAP_PERFMON, as it did before Linux 5.8 split them off).
pub fn has_cap(cap: Cap) -> bool {
    let caps = effective_caps();
    let held = |c: Cap| caps & (1u64 << c as u32) != 0;
    held(cap) || (matches!(cap, Cap::Bpf | Cap::Perfmon) && held(Cap::SysAdmin))
}

/// Fails with one line naming every missing capability.
pub fn require(caps: &[Cap]) -> Result<()> {
    let missing: Vec<&str> = caps
        .iter()
        .filter(|c| !has_cap(**c))
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing privileges ({}): run as root, e.g. with sudo",
            missing.join(", ")
        );
    }
    Ok(())
}

/// A user to run a command as: what `setgroups`, `setgid` and `setuid`
/// need, looked up before `fork()` (the lookups are not safe between fork
/// and exec).
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups, from the group database.
    pub groups: Vec<u32>,
    pub home: std::path::PathBuf,
}

impl User {
    /// `name` or a numeric uid, from the password database.
    pub fn lookup(name: &str) -> Result<User> {
        use std::ffi::{CStr, CString};
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found = std::ptr::null_mut();
        let by_uid = name.parse::<u32>().ok();
        let cname = CString::new(name)?;
        // SAFETY: pwd, buf and found outlive the call; buf's length is given.
        let rc = unsafe {
            match by_uid {
                Some(uid) => {
                    libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found)
                }
                None => libc::getpwnam_r(
                    cname.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut found,
                ),
            }
        };
        if rc != 0 || found.is_null() {
            bail!("no user '{name}' in the password database (--user)");
        }
        // SAFETY: getpw*_r filled pwd with pointers into buf.
        let (pw_name, home) = unsafe {
            (
                CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned(),
            )
        };
        let groups = supplementary_groups(&pw_name, pwd.pw_gid)?;
        Ok(User {
            name: pw_name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            groups,
            home: home.into(),
        })
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Becomes this user, in a child between `fork()` and `exec()`: the
    /// supplementary groups, the group, then the user (setuid last: after it
    /// the others are no longer allowed). A process that changes all of
    /// its uids from 0 to another loses every capability. Only
    /// async-signal-safe calls.
    pub fn become_in_child(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on values owned by self.
        unsafe {
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
                || libc::setresgid(self.gid, self.gid, self.gid) != 0
                || libc::setresuid(self.uid, self.uid, self.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The groups `name` belongs to, its primary group `gid` included.
fn supplementary_groups(name: &str, gid: u32) -> Result<Vec<u32>> {
    let cname = std::ffi::CString::new(name)?;
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: groups holds n entries; getgrouplist writes at most n and
        // says how many it needs.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        if n as usize <= groups.len() || groups.len() > 65536 {
            bail!("cannot list the groups of user '{name}'");
        }
        groups.resize(n as usize, 0);
    }
}
