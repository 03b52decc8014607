//! The few numpy and Python behaviours the reference code depends on, reproduced exactly:
//! the legacy `RandomState` (MT19937) draws, numpy's pairwise summation and `round`,
//! `max`/`min` on arrays holding NaN, and the stable small-array `argsort`.

/// The legacy numpy generator `np.random.RandomState` (MT19937 with `init_genrand` seeding).
#[derive(Debug, Clone)]
pub struct RandomState {
    state: [u32; 624],
    index: usize,
}

impl RandomState {
    /// `np.random.seed(seed)` for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut state = [0_u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253_u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// The next raw 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `RandomState.choice(n, size)` with replacement: legacy `randint(0, n)` by masked
    /// rejection sampling on 32-bit outputs. `None` when `n == 0` (numpy raises "'a' cannot
    /// be empty") or `n > 2^32 − 1` (numpy's 64-bit branch, not reproduced).
    pub fn choice(&mut self, n: usize, size: usize) -> Option<Vec<usize>> {
        let range = u32::try_from(n.checked_sub(1)?)
            .ok()
            .filter(|&r| r < u32::MAX)?;
        if range == 0 {
            // numpy returns the offset without drawing.
            return Some(vec![0; size]);
        }
        let mask = u32::MAX >> range.leading_zeros();
        Some(
            (0..size)
                .map(|_| {
                    loop {
                        let value = self.next_u32() & mask;
                        if value <= range {
                            break value as usize;
                        }
                    }
                })
                .collect(),
        )
    }
}

/// numpy's pairwise summation of a contiguous `float64` array (`np.sum`, `np.mean`).
pub fn np_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        let mut sum = -0.0;
        for &v in values {
            sum += v;
        }
        sum
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (k, acc) in r.iter_mut().enumerate() {
                *acc += values[i + k];
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[whole..] {
            sum += v;
        }
        sum
    } else {
        let mut half = n / 2;
        half -= half % 8;
        np_sum(&values[..half]) + np_sum(&values[half..])
    }
}

/// `np.mean` of a non-empty contiguous `float64` array (NaN when empty, as numpy).
pub fn np_mean(values: &[f64]) -> f64 {
    np_sum(values) / values.len() as f64
}

/// `round(x, digits)` of a numpy `float64` (`np.round`): scale by `10^digits`, round half to
/// even, scale back. Not Python's correctly rounded `round` of a `float`: `0.2875` (stored just
/// below) gives `0.288` here.
pub fn np_round(x: f64, digits: i32) -> f64 {
    let scale = 10_f64.powi(digits);
    (x * scale).round_ties_even() / scale
}

/// Python's builtin `max` over an array: the first element, replaced by each later one that
/// compares greater (so a NaN is kept only when it comes first).
pub fn py_max(values: &[f64]) -> Option<f64> {
    let (&first, rest) = values.split_first()?;
    Some(rest.iter().fold(first, |m, &v| if v > m { v } else { m }))
}

/// Python's builtin `min` over an array (see [`py_max`]).
pub fn py_min(values: &[f64]) -> Option<f64> {
    let (&first, rest) = values.split_first()?;
    Some(rest.iter().fold(first, |m, &v| if v < m { v } else { m }))
}

/// `np.argsort` of a short array: stable ascending order, NaN last. numpy's default sort is
/// an insertion sort (so stable) only below 17 elements; teams are that small, longer arrays
/// may order ties differently in numpy.
pub fn argsort(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

/// EnsembleBench's `normalize01` with Python's `max`/`min`: rescaled to `[0, 1]`, or returned
/// unchanged when the maximum equals the minimum (divergence 7).
pub fn normalize01(values: &[f64]) -> Vec<f64> {
    let (Some(max), Some(min)) = (py_max(values), py_min(values)) else {
        return Vec::new();
    };
    // Python's == on the two floats, as the reference.
    #[allow(clippy::float_cmp)]
    let constant = max == min;
    if constant {
        return values.to_vec();
    }
    values.iter().map(|&v| (v - min) / (max - min)).collect()
}

/// `np.average(values, weights=weights)`. numpy raises `ZeroDivisionError` when the weights sum
/// to zero; here that gives NaN (argsort weights of a team of two or more never sum to zero).
pub fn np_average(values: &[f64], weights: &[f64]) -> f64 {
    let products: Vec<f64> = values.iter().zip(weights).map(|(v, w)| v * w).collect();
    np_sum(&products) / np_sum(weights)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point of these tests
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_stream() {
        // The first outputs of init_genrand(5489), the reference implementation's default seed.
        let mut rng = RandomState::new(5489);
        let first: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
    }

    #[test]
    fn pairwise_sum_matches_sequential_for_short_arrays_and_blocks_long_ones() {
        assert_eq!(np_sum(&[1.0, 2.0, 3.0]), 6.0);
        let values: Vec<f64> = (0..300).map(|i| f64::from(i) * 0.1).collect();
        let exact: f64 = (0..300).map(f64::from).sum::<f64>() * 0.1;
        assert!((np_sum(&values) - exact).abs() < 1e-9);
    }

    #[test]
    fn numpy_round_scales_then_rounds_half_even() {
        assert_eq!(np_round(0.2875, 3), 0.288);
        assert_eq!(np_round(0.8225, 3), 0.822);
        assert_eq!(np_round(-0.466_666_6, 3), -0.467);
    }

    #[test]
    fn python_max_keeps_nan_only_in_front() {
        assert!(py_max(&[f64::NAN, 1.0]).is_some_and(f64::is_nan));
        assert_eq!(py_max(&[1.0, f64::NAN, 3.0]), Some(3.0));
        let scaled = normalize01(&[1.0, f64::NAN, 3.0]);
        assert_eq!(scaled[0], 0.0);
        assert!(scaled[1].is_nan());
        assert!(normalize01(&[f64::NAN, 1.0]).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn argsort_is_stable() {
        assert_eq!(argsort(&[90.0, 80.0, 85.0]), [1, 2, 0]);
        assert_eq!(argsort(&[1.0, 1.0, 0.0]), [2, 0, 1]);
    }
}
