//! The components a sandbox keeps pre-linked in memory, by digest and
//! world, least recently used dropped beyond a cap.

use super::{LoadedComponent, StepWorld};
use std::collections::HashMap;
use std::sync::Arc;

/// Pre-linked components by digest and world, least recently used dropped
/// beyond a cap.
#[derive(Default)]
pub(super) struct Loaded {
    map: HashMap<(String, StepWorld), (Arc<LoadedComponent>, u64)>,
    clock: u64,
}

impl Loaded {
    pub(super) fn get(&mut self, digest: &str, world: StepWorld) -> Option<Arc<LoadedComponent>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(&(digest.to_string(), world)).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    pub(super) fn insert(&mut self, c: Arc<LoadedComponent>, cap: usize) {
        self.clock += 1;
        let key = (c.digest.clone(), c.world);
        // Replacing an entry (two loads raced) evicts nothing.
        while !self.map.contains_key(&key) && self.map.len() >= cap.max(1) {
            let Some(oldest) = self.map.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.map.insert(key, (c, self.clock));
    }
}
