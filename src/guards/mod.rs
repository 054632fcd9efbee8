//! What the two security lessons, lsm_guard and cgroup_guard, share: the
//! options both take, the policy and its map keys ([`policy`]), the cgroup
//! the policy applies to ([`cgroup`]), and the report of denials read from
//! the ring buffer ([`report`]). The C side of the same is
//! bpf/lib/guard_types.h (the types) and bpf/lib/guard_policy.h (the maps
//! and the address checks).

pub mod cgroup;
pub mod policy;
pub mod report;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::privileges::User;
use crate::signals::Stop;

pub use cgroup::TargetCgroup;
pub use policy::{AddrRule, GuardKind, PathRule, Policy};
pub use report::{Counts, Denial};

/// The options both guards take.
#[derive(clap::Args, Debug)]
pub struct GuardArgs {
    /// Deny connecting and sending to ADDR (IPv4 or IPv6) on PORT, or on
    /// every port when none is given; repeat for more rules
    #[arg(long = "deny", value_name = "ADDR[:PORT]")]
    pub deny: Vec<AddrRule>,
    /// Apply the policy to the processes of this cgroup (a cgroup v2
    /// directory) and the cgroups below it, until Ctrl-C
    #[arg(long, value_name = "PATH", conflicts_with = "command")]
    pub cgroup: Option<PathBuf>,
    /// One JSON object per denial
    #[arg(long)]
    pub json: bool,
    /// Show libbpf's debug output, including the verifier log
    #[arg(short, long)]
    pub verbose: bool,
    /// Run COMMAND as USER (a name or a uid), without privileges, so that it
    /// cannot leave the cgroup or stop the guard [default: nobody]. USER's
    /// other processes are outside the policy: pick one that runs nothing
    /// else. `--user root` keeps root's privileges, with which the command
    /// can leave the policy
    #[arg(long, value_name = "USER", value_parser = parse_user, conflicts_with = "cgroup")]
    pub user: Option<User>,
    /// Run COMMAND in a new cgroup under the policy, and exit with its status
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_user(s: &str) -> Result<User, String> {
    User::lookup(s).map_err(|e| e.to_string())
}

/// Who runs a guarded command: `--user`, else nobody.
pub fn command_user(args: &GuardArgs) -> Result<User> {
    match &args.user {
        Some(user) => Ok(user.clone()),
        None => User::lookup("nobody")
            .context("no user 'nobody' to run the command as: give one with --user USER"),
    }
}

/// Where the guard's policy applies: `--cgroup PATH`, or a new cgroup for
/// `-- COMMAND`.
pub fn target(args: &GuardArgs, lesson: &str) -> Result<TargetCgroup> {
    if let Some(program) = args.command.first() {
        // Before anything is loaded or made: a typo costs nothing.
        let path =
            cgroup::find_program(program).with_context(|| format!("cannot run '{program}'"))?;
        let user = command_user(args)?;
        cgroup::user_can_run(&path, &user)
            .with_context(|| format!("cannot run '{program}' as {}", user.name))?;
    }
    match (&args.cgroup, args.command.is_empty()) {
        (Some(path), _) => TargetCgroup::open(path),
        (None, false) => TargetCgroup::make(lesson),
        (None, true) => bail!(
            "give the cgroup to guard (--cgroup PATH) or a command to run under the policy \
             (-- COMMAND ARGS...)"
        ),
    }
}

/// What `--user root` gives up, said when the command starts.
pub const ROOT_WARNING: &str = "warning: the command runs as root (--user root), which can leave \
    the policy: move itself to another cgroup, stop the guard, reconfigure the network; run it \
    as a user to hold it to the policy";

/// A guard's run once its programs are attached: start the command in the
/// cgroup (or say which cgroup is guarded), [`report::watch`] until it
/// ends, then empty and remove a cgroup made for it, before the caller
/// detaches the programs, so that nothing it held runs unguarded.
pub fn serve(
    cgroup: TargetCgroup,
    args: &GuardArgs,
    policy: &Policy,
    denials: &dyn libbpf_rs::MapCore,
    counts: Counts,
    stop: &Stop,
) -> Result<i32> {
    let child = if args.command.is_empty() {
        eprintln!(
            "Guarding cgroup {}... Hit Ctrl-C to end.",
            cgroup.path().display()
        );
        None
    } else {
        let user = command_user(args)?;
        if user.is_root() {
            eprintln!("{ROOT_WARNING}");
        }
        Some(cgroup.spawn(&args.command, &user)?)
    };
    let status = report::watch(denials, policy, args.json, stop, child, counts);
    drop(cgroup);
    status
}
