//! The summary over seeds: mean and spread of HS and FA for every (defence, p, n).

use crate::align::results::{CellResult, Defence, Measured, SummaryRow};

/// Mean and (sample) standard deviation of every (defence, p, n) over its seeds, in first-seen
/// order.
#[must_use]
pub fn summarise(results: &[CellResult]) -> Vec<SummaryRow> {
    let mut keys: Vec<(Defence, Option<f64>, Option<usize>)> = Vec::new();
    for r in results {
        let key = (r.defence, r.p, r.n);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let stats = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
        } else {
            0.0
        };
        (mean, var.sqrt())
    };
    keys.into_iter()
        .map(|(defence, p, n)| {
            let rows: Vec<&Measured> = results
                .iter()
                .filter(|r| r.defence == defence && r.p == p && r.n == n)
                .map(|r| &r.measured)
                .collect();
            let hs: Vec<f64> = rows.iter().map(|m| m.hs).collect();
            let plus: Vec<f64> = rows.iter().map(|m| m.hs_plus).collect();
            let fa: Vec<f64> = rows.iter().map(|m| m.fa).collect();
            let (hs, hs_std) = stats(&hs);
            let (fa, fa_std) = stats(&fa);
            SummaryRow {
                defence,
                p,
                n,
                seeds: rows.len(),
                hs,
                hs_std,
                hs_plus: stats(&plus).0,
                fa,
                fa_std,
            }
        })
        .collect()
}
