//! Who holds a run's lease: owner names, and whether the process behind one
//! is gone. The store grants and fences leases (`RunStore::claim`,
//! `RunStore::heartbeat`, and every write); these helpers name the owners.

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
