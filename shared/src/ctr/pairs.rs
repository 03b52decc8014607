//! Same-page pairs for CCN's contrastive losses (spec `ccn.md` §2, §3.4).
//!
//! Items shown on one page (one request) to one user form pairs. Co-click pairs (both clicked)
//! and co-non-click pairs (neither clicked) are collaborative: the attraction loss pulls them
//! together. Mono-click pairs (exactly one clicked) are non-collaborative: the repulsion loss
//! pushes them apart. Co-non-click pairs vastly outnumber the others when few items are
//! clicked, so they can be subsampled with a keep probability and re-weighted by its inverse
//! (our reading of the summaries' "importance sampling", §3.4 \[D\]).
//!
//! A batch's rows carry a page id each; the rows of one page need not be contiguous. Pages are
//! visited in ascending id order and each page's rows in ascending row order, so the output is
//! the same for the same input and seed.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rng::SplitMix64;

/// The relation of two items shown on the same page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    /// Both clicked (collaborative).
    CoClick,
    /// Neither clicked (collaborative).
    CoNonClick,
    /// Exactly one clicked (non-collaborative).
    MonoClick,
}

impl PairKind {
    /// The kind of a pair with these click labels.
    pub fn of(a: bool, b: bool) -> Self {
        match (a, b) {
            (true, true) => Self::CoClick,
            (false, false) => Self::CoNonClick,
            _ => Self::MonoClick,
        }
    }

    /// Whether the pair is collaborative (pulled together by the attraction loss); mono-click
    /// pairs are pushed apart by the repulsion loss.
    pub fn is_attractive(self) -> bool {
        matches!(self, Self::CoClick | Self::CoNonClick)
    }
}

/// Two rows of a batch on the same page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The first row's index in the batch.
    pub i: u32,
    /// The second row's index, above `i`.
    pub j: u32,
    /// Their relation.
    pub kind: PairKind,
    /// The pair's weight in its loss: 1, or `1 / co_non_click_keep` for a sampled co-non-click
    /// pair.
    pub weight: f32,
}

/// How pairs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairOptions {
    /// The most rows a page may have (at least 2). A larger page is an error: a page of P rows
    /// gives P(P−1)/2 pairs, and this bounds that work.
    pub max_page: usize,
    /// The probability, in (0, 1], of keeping each co-non-click pair; a kept one has weight
    /// `1 / co_non_click_keep`, so the weighted count is unbiased. 1 keeps them all and draws
    /// nothing from the generator.
    pub co_non_click_keep: f64,
}

impl Default for PairOptions {
    /// Pages of up to 64 rows; every co-non-click pair kept.
    fn default() -> Self {
        Self {
            max_page: 64,
            co_non_click_keep: 1.0,
        }
    }
}

impl PairOptions {
    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`PairError::MaxPage`] when `max_page` is below 2, [`PairError::Keep`] when
    /// `co_non_click_keep` is not in (0, 1].
    pub fn validate(&self) -> Result<(), PairError> {
        if self.max_page < 2 {
            return Err(PairError::MaxPage {
                max_page: self.max_page,
            });
        }
        let keep = self.co_non_click_keep;
        if !(keep > 0.0 && keep <= 1.0) {
            return Err(PairError::Keep { keep });
        }
        Ok(())
    }
}

/// Why pairs could not be formed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PairError {
    /// `pages` and `labels` differ in length.
    #[error("`pages` has {pages} entries but `labels` has {labels}; give one page id per row")]
    LengthMismatch {
        /// Page ids given.
        pages: usize,
        /// Labels given.
        labels: usize,
    },
    /// A batch's rows are indexed by `u32`.
    #[error("the batch has {rows} rows; pairs index rows with u32, so at most 4294967296")]
    TooManyRows {
        /// Rows in the batch.
        rows: usize,
    },
    /// A page has more rows than `max_page`.
    #[error("page {page} has {size} rows, more than max_page = {max_page}")]
    PageTooLarge {
        /// The page id.
        page: u64,
        /// Its rows in the batch.
        size: usize,
        /// The limit.
        max_page: usize,
    },
    /// `max_page` is below 2.
    #[error("max_page = {max_page}: it must be at least 2 (a page of one row has no pairs)")]
    MaxPage {
        /// The value given.
        max_page: usize,
    },
    /// `co_non_click_keep` is not in (0, 1].
    #[error("co_non_click_keep = {keep}: it must be a probability in (0, 1]")]
    Keep {
        /// The value given.
        keep: f64,
    },
}

/// How many pairs of each kind, and their summed weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairCounts {
    /// Co-click pairs.
    pub co_click: usize,
    /// Co-non-click pairs (kept ones, when sampled).
    pub co_non_click: usize,
    /// Mono-click pairs.
    pub mono_click: usize,
    /// Σ weight of the co-non-click pairs (their unbiased count when sampled).
    pub co_non_click_weight: f64,
}

impl PairCounts {
    /// Counts `pairs` by kind.
    pub fn of(pairs: &[Pair]) -> Self {
        let mut counts = Self::default();
        for pair in pairs {
            match pair.kind {
                PairKind::CoClick => counts.co_click += 1,
                PairKind::CoNonClick => {
                    counts.co_non_click += 1;
                    counts.co_non_click_weight += f64::from(pair.weight);
                }
                PairKind::MonoClick => counts.mono_click += 1,
            }
        }
        counts
    }

    /// All pairs.
    pub fn total(&self) -> usize {
        self.co_click + self.co_non_click + self.mono_click
    }

    /// Collaborative pairs (co-click and co-non-click).
    pub fn attractive(&self) -> usize {
        self.co_click + self.co_non_click
    }
}

/// Every unordered pair of rows that share a page id, once, with its kind and weight.
///
/// Rows are grouped by sorting their indices by (page id, index), so a page's rows may be
/// anywhere in the batch. Pages come out in ascending id order; within a page, pairs come in
/// lexicographic (i, j) order of row indices with i < j. When `co_non_click_keep` is below 1,
/// one draw of `rng` decides each co-non-click pair, in that order, so the output is the same for
/// the same input and generator state; the other kinds draw nothing.
///
/// # Errors
///
/// The options' [`PairOptions::validate`] errors, [`PairError::LengthMismatch`],
/// [`PairError::TooManyRows`], and [`PairError::PageTooLarge`] for the first page (by id) with
/// more than `max_page` rows (checked before any pair is drawn).
pub fn page_pairs(
    pages: &[u64],
    labels: &[bool],
    options: &PairOptions,
    rng: &mut SplitMix64,
) -> Result<Vec<Pair>, PairError> {
    options.validate()?;
    if pages.len() != labels.len() {
        return Err(PairError::LengthMismatch {
            pages: pages.len(),
            labels: labels.len(),
        });
    }
    if u32::try_from(pages.len().saturating_sub(1)).is_err() {
        return Err(PairError::TooManyRows { rows: pages.len() });
    }
    // Row indices fit in u32 (checked above).
    let mut order: Vec<u32> = (0..pages.len()).map(|i| i as u32).collect();
    order.sort_unstable_by_key(|&i| (pages[i as usize], i));
    let groups: Vec<&[u32]> = order
        .chunk_by(|&a, &b| pages[a as usize] == pages[b as usize])
        .collect();
    let mut total = 0_usize;
    for group in &groups {
        if group.len() > options.max_page {
            return Err(PairError::PageTooLarge {
                page: pages[group[0] as usize],
                size: group.len(),
                max_page: options.max_page,
            });
        }
        total += group.len() * (group.len() - 1) / 2;
    }
    let keep = options.co_non_click_keep;
    let sample = keep < 1.0;
    // Exact for keep = 1 and for keep = 1/2^k.
    let co_non_click_weight = (1.0 / keep) as f32;
    let mut pairs = Vec::with_capacity(total);
    for group in groups {
        for (a, &i) in group.iter().enumerate() {
            for &j in &group[a + 1..] {
                let kind = PairKind::of(labels[i as usize], labels[j as usize]);
                let weight = if kind == PairKind::CoNonClick {
                    if sample && !rng.chance(keep) {
                        continue;
                    }
                    co_non_click_weight
                } else {
                    1.0
                };
                pairs.push(Pair { i, j, kind, weight });
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
// The weights compared are exact: 1, and 2 for a keep of ½.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn pairs(pages: &[u64], labels: &[bool], options: &PairOptions, seed: u64) -> Vec<Pair> {
        page_pairs(pages, labels, options, &mut SplitMix64(seed)).unwrap()
    }

    fn ij(pairs: &[Pair], kind: PairKind) -> Vec<(u32, u32)> {
        pairs
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| (p.i, p.j))
            .collect()
    }

    #[test]
    fn one_page_of_four() {
        let p = pairs(
            &[5; 4],
            &[true, false, true, false],
            &PairOptions::default(),
            0,
        );
        assert_eq!(p.len(), 6);
        assert_eq!(ij(&p, PairKind::CoClick), [(0, 2)]);
        assert_eq!(ij(&p, PairKind::CoNonClick), [(1, 3)]);
        assert_eq!(
            ij(&p, PairKind::MonoClick),
            [(0, 1), (0, 3), (1, 2), (2, 3)]
        );
        assert!(p.iter().all(|p| p.weight == 1.0 && p.i < p.j));
        let c = PairCounts::of(&p);
        assert_eq!((c.co_click, c.co_non_click, c.mono_click), (1, 1, 4));
        assert_eq!((c.total(), c.attractive()), (6, 2));
        assert!(PairKind::CoClick.is_attractive() && PairKind::CoNonClick.is_attractive());
        assert!(!PairKind::MonoClick.is_attractive());
    }

    #[test]
    fn interleaved_pages_and_singletons() {
        // Page 9: rows 0, 2, 4; page 3: rows 1, 5; page 7: row 3 alone (no pairs).
        let pages = [9, 3, 9, 7, 9, 3];
        let labels = [true, false, false, true, true, true];
        let p = pairs(&pages, &labels, &PairOptions::default(), 1);
        let got: Vec<(u32, u32, PairKind)> = p.iter().map(|p| (p.i, p.j, p.kind)).collect();
        assert_eq!(
            got,
            [
                (1, 5, PairKind::MonoClick),
                (0, 2, PairKind::MonoClick),
                (0, 4, PairKind::CoClick),
                (2, 4, PairKind::MonoClick),
            ]
        );
        assert!(pairs(&[], &[], &PairOptions::default(), 1).is_empty());
    }

    #[test]
    fn keep_one_draws_nothing_and_weighs_one() {
        let options = PairOptions {
            max_page: 8,
            co_non_click_keep: 1.0,
        };
        let mut rng = SplitMix64(42);
        let p = page_pairs(&[1; 8], &[false; 8], &options, &mut rng).unwrap();
        assert_eq!(p.len(), 28);
        assert!(p.iter().all(|p| p.weight == 1.0));
        assert_eq!(rng, SplitMix64(42));
    }

    #[test]
    fn half_keep_samples_co_non_clicks_with_weight_two() {
        let options = PairOptions {
            max_page: 64,
            co_non_click_keep: 0.5,
        };
        // One page of 64 rows, 4 clicked: 6 co-click, 240 mono-click, 1770 co-non-click pairs.
        let labels: Vec<bool> = (0..64).map(|r| r % 16 == 0).collect();
        let pages = [11_u64; 64];
        let p = pairs(&pages, &labels, &options, 7);
        let c = PairCounts::of(&p);
        assert_eq!((c.co_click, c.mono_click), (6, 240));
        // 1770 draws at ½: mean 885, standard deviation 21.
        assert!((800..970).contains(&c.co_non_click), "{}", c.co_non_click);
        assert!(p.iter().all(|p| p.weight
            == if p.kind == PairKind::CoNonClick {
                2.0
            } else {
                1.0
            }));
        assert!((c.co_non_click_weight - 2.0 * c.co_non_click as f64).abs() < 1e-9);
        // The same seed gives the same pairs; another seed other ones.
        assert_eq!(pairs(&pages, &labels, &options, 7), p);
        assert_ne!(pairs(&pages, &labels, &options, 8), p);
    }

    #[test]
    fn errors() {
        let options = PairOptions {
            max_page: 3,
            co_non_click_keep: 1.0,
        };
        let mut rng = SplitMix64(0);
        assert_eq!(
            page_pairs(
                &[1, 2, 2, 2, 2, 3, 3, 3, 3],
                &[false; 9],
                &options,
                &mut rng
            ),
            Err(PairError::PageTooLarge {
                page: 2,
                size: 4,
                max_page: 3
            })
        );
        assert_eq!(
            page_pairs(&[1, 1], &[true], &options, &mut rng),
            Err(PairError::LengthMismatch {
                pages: 2,
                labels: 1
            })
        );
        for keep in [0.0, -0.5, 1.5, f64::NAN] {
            let options = PairOptions {
                max_page: 4,
                co_non_click_keep: keep,
            };
            assert!(matches!(
                page_pairs(&[1], &[true], &options, &mut rng),
                Err(PairError::Keep { .. })
            ));
        }
        let options = PairOptions {
            max_page: 1,
            co_non_click_keep: 1.0,
        };
        assert_eq!(options.validate(), Err(PairError::MaxPage { max_page: 1 }));
        assert!(PairOptions::default().validate().is_ok());
        assert_eq!(rng, SplitMix64(0));
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&PairKind::CoNonClick).unwrap(),
            "\"co_non_click\""
        );
        let pair = Pair {
            i: 1,
            j: 4,
            kind: PairKind::MonoClick,
            weight: 1.0,
        };
        let json = serde_json::to_string(&pair).unwrap();
        assert_eq!(serde_json::from_str::<Pair>(&json).unwrap(), pair);
    }
}
