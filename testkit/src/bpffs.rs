//! Places to pin in: a directory on the host's /sys/fs/bpf, or a private
//! bpf filesystem.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;

use crate::run_cmd;

static NEXT_FS: AtomicU32 = AtomicU32::new(0);

/// A pin directory on the host's bpffs, /sys/fs/bpf (mounted first if it
/// is not, as `make setup` does), where the lessons pin by default; removed
/// with whatever is left in it on drop.
pub struct HostPinDir {
    path: std::path::PathBuf,
}

impl HostPinDir {
    pub fn new(name: &str) -> Result<HostPinDir> {
        let root = std::path::Path::new("/sys/fs/bpf");
        if !learning_ebpf_rs::pin::is_bpffs(root) {
            run_cmd(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(root))?;
        }
        let path = root.join(format!("lebpf-test-{}-{name}", std::process::id()));
        Ok(HostPinDir { path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for HostPinDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A private bpf filesystem mounted on a fresh directory, unmounted and
/// removed on drop (with anything pinned in it). `ip netns exec` remounts
/// /sys, hiding /sys/fs/bpf, but a bpffs mounted elsewhere stays visible.
pub struct BpfFs {
    dir: std::path::PathBuf,
}

impl BpfFs {
    pub fn new() -> Result<BpfFs> {
        let dir = std::env::temp_dir().join(format!(
            "lebpf-bpffs-{}-{}",
            std::process::id(),
            NEXT_FS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let fs = BpfFs { dir };
        run_cmd(
            Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&fs.dir),
        )?;
        Ok(fs)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        // Unmounting a bpffs drops the references its pins held.
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
