//! Who holds a run's lease: the [`Lease`] a claim returns (owner and fencing
//! epoch), owner names, and whether the process behind one is gone. The
//! store grants and fences leases (`RunStore::claim`, `RunStore::heartbeat`,
//! and every write); these helpers name the owners.

/// How many claims in a row may find a run without progress before the
/// next claim sends it to the dead-letter queue as `poison`.
pub const MAX_IDLE_CLAIMS: u32 = 5;

/// A run's lease as its holder knows it. Every write names it, and the store
/// accepts the write only while the run's epoch is still `epoch`: once
/// another process claims the run (which bumps the epoch under the row
/// lock), every late write of the old holder is refused, however late it
/// arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run_id: String,
    /// Who holds it (from [`process_owner`]).
    pub owner: String,
    /// The fencing token: bumped by every claim.
    pub epoch: u64,
    /// Claims in a row, this one included, since the run last made progress
    /// (a step or the run reached an end).
    pub idle_claims: u32,
}

impl Lease {
    /// The lease a new run starts with: its creator's, epoch 1.
    pub fn first(run: &super::NewRun) -> Self {
        Self { run_id: run.run_id.clone(), owner: run.owner.clone(), epoch: 1, idle_claims: 0 }
    }

    /// A lease that was never granted: every write with it is refused.
    pub fn unclaimed(run_id: &str, owner: &str) -> Self {
        Self { run_id: run_id.into(), owner: owner.into(), epoch: 0, idle_claims: 0 }
    }

    /// Whether the run was claimed too often without progress.
    pub fn is_poison(&self) -> bool {
        self.idle_claims > MAX_IDLE_CLAIMS
    }
}

/// This process's owner name: `host:pid:random`.
pub fn process_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            let tag = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}:{}:{}", std::process::id(), &tag[..8])
        })
        .clone()
}

/// Whether an owner name (from [`process_owner`]) is a process on this host
/// that no longer exists: its lease can be taken over at once.
pub fn owner_is_dead(owner: &str) -> bool {
    let mine = process_owner();
    let host = |o: &str| o.rsplitn(3, ':').nth(2).map(str::to_string);
    if owner == mine || host(owner) != host(&mine) {
        return false;
    }
    match owner.rsplit(':').nth(1).and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) if cfg!(target_os = "linux") => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}
