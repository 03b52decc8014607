//! splitmix64: a small seedable generator that gives the same numbers on every platform (the
//! browser's wasm included), for the seeded genetic search and the mask generator. Not for
//! secrets: keys and nonces come from the operating system.

/// The generator; its one word of state is public so that a run can be checkpointed and resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` ≥ 1; the modulo bias is negligible for the small `n` used here).
    pub fn below(&mut self, n: usize) -> usize {
        // The remainder is below n, which is a usize.
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.next_u64() % n as u64) as usize;
        i
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let hit = ((self.next_u64() >> 11) as f64) < p * (1_u64 << 53) as f64;
        hit
    }

    /// Uniform in `[0, 1)`, 24 bits.
    pub fn unit_f32(&mut self) -> f32 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next_u64() >> 40) as f32 / (1_u64 << 24) as f32;
        v
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, [lo, hi]: [f32; 2]) -> f32 {
        lo + (hi - lo) * self.unit_f32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64s() {
        // The first outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut rng = SplitMix64(7);
        assert!(
            (0..1000)
                .map(|_| rng.unit_f32())
                .all(|v| (0.0..1.0).contains(&v))
        );
        assert!((0..1000).map(|_| rng.below(3)).all(|v| v < 3));
    }
}
