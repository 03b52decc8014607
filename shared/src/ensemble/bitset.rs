//! A fixed-length set of sample indices packed 64 per word.

/// Bits per word of a [`Bitset`].
const BITS: usize = 64;

/// A set of sample indices `0..len`, one bit per sample, 64 samples per `u64` word.
///
/// Bits past `len` are always zero, so popcounts never over-count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitset {
    len: usize,
    words: Vec<u64>,
}

impl Bitset {
    /// The empty set over `len` samples.
    pub fn empty(len: usize) -> Self {
        Self {
            len,
            words: vec![0; len.div_ceil(BITS)],
        }
    }

    /// The set of all `len` samples.
    pub fn full(len: usize) -> Self {
        Self::from_fn(len, |_| true)
    }

    /// The set of the samples `n < len` for which `member(n)` holds.
    pub fn from_fn(len: usize, mut member: impl FnMut(usize) -> bool) -> Self {
        let mut set = Self::empty(len);
        for n in 0..len {
            if member(n) {
                set.words[n / BITS] |= 1 << (n % BITS);
            }
        }
        set
    }

    /// Number of samples the set ranges over (not the number of members).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set ranges over no samples at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of members.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether sample `n` is a member; `false` past the end.
    pub fn contains(&self, n: usize) -> bool {
        self.words
            .get(n / BITS)
            .is_some_and(|w| (w >> (n % BITS)) & 1 == 1)
    }

    /// The packed words: sample `n` is bit `n % 64` of word `n / 64`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            core::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * BITS + bit
                })
            })
        })
    }

    /// The members of both sets; the length is the shorter one's.
    #[must_use]
    pub fn and(&self, other: &Self) -> Self {
        Self {
            len: self.len.min(other.len),
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a & b)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_across_word_boundaries() {
        for len in [0, 1, 63, 64, 65, 130] {
            let set = Bitset::from_fn(len, |n| n % 3 == 0);
            let expected: Vec<usize> = (0..len).filter(|n| n % 3 == 0).collect();
            assert_eq!(set.iter().collect::<Vec<_>>(), expected);
            assert_eq!(set.count(), expected.len());
            assert_eq!(Bitset::full(len).count(), len);
            assert!(!set.contains(len));
        }
        let a = Bitset::from_fn(70, |n| n % 2 == 0);
        let b = Bitset::from_fn(70, |n| n % 5 == 0);
        assert_eq!(a.and(&b), Bitset::from_fn(70, |n| n % 10 == 0));
    }
}
