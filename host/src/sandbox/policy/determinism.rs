//! The compute world's determinism: a compute step sees a wall clock stuck at
//! the Unix epoch, a monotonic clock that never moves, and random bytes
//! seeded from its idempotency key (a memoized step's: its memo key), so
//! that its retries see the same world.
//! Effect steps get the host's clocks and randomness.

use super::super::StepWorld;
use super::Grants;
use super::capability::{AttemptWasi, Capability};
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The compute world's frozen clocks and seeded randomness.
pub struct Determinism;

impl Determinism {
    /// The 32-byte seed of the random source `domain` for the step whose
    /// idempotency key is `key`: stable across its retries, distinct per step.
    pub fn seed(domain: &str, key: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        h.finalize().into()
    }
}

impl Capability for Determinism {
    fn name(&self) -> &'static str {
        "determinism"
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, _grants: &Grants) -> Result<(), String> {
        if attempt.world != StepWorld::Compute {
            return Ok(());
        }
        let key = attempt.ctx.seed_key.as_deref().unwrap_or(&attempt.ctx.idempotency_key);
        let insecure = Self::seed("weft/compute/insecure-seed", key);
        let mut low = [0u8; 16];
        low.copy_from_slice(&insecure[..16]);
        attempt
            .builder
            .secure_random(rand::rngs::StdRng::from_seed(Self::seed("weft/compute/random", key)))
            .insecure_random(rand::rngs::StdRng::from_seed(Self::seed("weft/compute/insecure", key)))
            .insecure_random_seed(u128::from_le_bytes(low))
            .wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock);
        Ok(())
    }
}

/// A wall clock stuck at the Unix epoch: compute steps see no real time.
pub struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that never advances: compute steps cannot time anything.
///
/// It reads one second, not zero: language runtimes take a zero monotonic
/// reading for a broken clock (Go's aborts with "nanotime returning zero").
pub struct FrozenMonotonicClock;

/// What the frozen monotonic clock always reads, in nanoseconds.
pub const FROZEN_MONOTONIC_NS: u64 = 1_000_000_000;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        FROZEN_MONOTONIC_NS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compute_step_gets_the_same_seed_on_every_retry_and_another_step_another_seed() {
        let first = Determinism::seed("weft/compute/random", "run-1/price");
        assert_eq!(first, Determinism::seed("weft/compute/random", "run-1/price"));
        assert_ne!(first, Determinism::seed("weft/compute/random", "run-1/tax"));
        assert_ne!(first, Determinism::seed("weft/compute/insecure", "run-1/price"));
    }

    #[test]
    fn frozen_clocks_do_not_move() {
        assert_eq!(FrozenWallClock.now(), Duration::ZERO);
        assert_eq!(FrozenMonotonicClock.now(), FrozenMonotonicClock.now());
        assert_ne!(FrozenMonotonicClock.now(), 0, "Go's runtime aborts on a zero monotonic clock");
    }
}
