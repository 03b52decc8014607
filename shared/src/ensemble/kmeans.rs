//! Two-means clustering of (accuracy, score) points exactly as scikit-learn's
//! `KMeans(n_clusters=2, init=<2×2 array>, random_state=0)` runs it (spec §5.2): data centred
//! on its mean, Lloyd iterations with distances `‖c‖² − 2·x·c`, first-minimum labels, empty
//! clusters relocated to the farthest point, tolerance `1e-4 · mean(per-feature variance)`,
//! at most 300 iterations, and labels recomputed after a non-strict convergence. Bit for bit up
//! to 256 points; beyond that sklearn adds per-thread partial sums of 256-point chunks while
//! this sums sequentially, so centres can differ in the last bit.

/// A point: (accuracy, score).
pub type XY = [f64; 2];

/// The fitted clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoMeans {
    /// Cluster (0 or 1) of each point, in input order.
    pub labels: Vec<usize>,
    /// The two centres, in the data's coordinates.
    pub centers: [XY; 2],
}

const MAX_ITER: usize = 300;
const TOL: f64 = 1e-4;

fn sq_norm(p: XY) -> f64 {
    p[0] * p[0] + p[1] * p[1]
}

/// Assigns labels against `centers` (and accumulates the new centre sums when `sums` is
/// given), the way sklearn's dense Lloyd chunk does.
fn assign(
    x: &[XY],
    centers: &[XY; 2],
    labels: &mut [usize],
    mut sums: Option<(&mut [XY; 2], &mut [f64; 2])>,
) {
    let norms = [sq_norm(centers[0]), sq_norm(centers[1])];
    for (i, p) in x.iter().enumerate() {
        let d0 = norms[0] + -2.0 * (p[0] * centers[0][0] + p[1] * centers[0][1]);
        let d1 = norms[1] + -2.0 * (p[0] * centers[1][0] + p[1] * centers[1][1]);
        let best = usize::from(d1 < d0);
        labels[i] = best;
        if let Some((centers_new, weights)) = sums.as_mut() {
            weights[best] += 1.0;
            centers_new[best][0] += p[0];
            centers_new[best][1] += p[1];
        }
    }
}

/// `np.argpartition(d, -1)[-1]` for float data: numpy's introselect takes the last maximum
/// (selection sort below four elements).
fn farthest(distances: &[f64]) -> usize {
    let n = distances.len();
    if n <= 3 {
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..n {
            let mut min_at = i;
            for k in i + 1..n {
                if distances[order[k]] < distances[order[min_at]] {
                    min_at = k;
                }
            }
            order.swap(i, min_at);
        }
        order[n - 1]
    } else {
        let mut best = 0;
        for k in 1..n {
            if distances[k] >= distances[best] {
                best = k;
            }
        }
        best
    }
}

/// Fits two clusters from the given initial centres. `None` with fewer than two points
/// (sklearn raises `n_samples=1 should be >= n_clusters=2`).
pub fn two_means(points: &[XY], init: [XY; 2]) -> Option<TwoMeans> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let count = n as f64;
    let mut mean = [0.0; 2];
    for p in points {
        mean[0] += p[0];
        mean[1] += p[1];
    }
    mean = [mean[0] / count, mean[1] / count];
    let mut variance = [0.0; 2];
    for p in points {
        for k in 0..2 {
            let d = p[k] - mean[k];
            variance[k] += d * d;
        }
    }
    let tol = f64::midpoint(variance[0] / count, variance[1] / count) * TOL;

    let x: Vec<XY> = points
        .iter()
        .map(|p| [p[0] - mean[0], p[1] - mean[1]])
        .collect();
    let mut centers = [
        [init[0][0] - mean[0], init[0][1] - mean[1]],
        [init[1][0] - mean[0], init[1][1] - mean[1]],
    ];
    let mut labels = vec![usize::MAX; n];
    let mut labels_old = labels.clone();
    let mut strict = false;
    for _ in 0..MAX_ITER {
        let mut centers_new = [[0.0; 2]; 2];
        let mut weights = [0.0; 2];
        assign(
            &x,
            &centers,
            &mut labels,
            Some((&mut centers_new, &mut weights)),
        );
        if let Some(empty) = weights.iter().position(|&w| w == 0.0) {
            let distances: Vec<f64> = x
                .iter()
                .zip(&labels)
                .map(|(p, &l)| {
                    let d = [p[0] - centers[l][0], p[1] - centers[l][1]];
                    sq_norm(d)
                })
                .collect();
            let far = farthest(&distances);
            let old = labels[far];
            for k in 0..2 {
                centers_new[old][k] -= x[far][k];
                centers_new[empty][k] = x[far][k];
            }
            weights[empty] = 1.0;
            weights[old] -= 1.0;
        }
        for j in 0..2 {
            if weights[j] > 0.0 {
                let alpha = 1.0 / weights[j];
                centers_new[j][0] *= alpha;
                centers_new[j][1] *= alpha;
            }
        }
        let shift: f64 = (0..2)
            .map(|j| {
                let d = [
                    centers_new[j][0] - centers[j][0],
                    centers_new[j][1] - centers[j][1],
                ];
                let s = sq_norm(d).sqrt();
                s * s
            })
            .sum();
        centers = centers_new;
        if labels == labels_old {
            strict = true;
            break;
        }
        if shift <= tol {
            break;
        }
        labels_old.clone_from(&labels);
    }
    if !strict {
        assign(&x, &centers, &mut labels, None);
    }
    Some(TwoMeans {
        labels,
        centers: [
            [centers[0][0] + mean[0], centers[0][1] + mean[1]],
            [centers[1][0] + mean[0], centers[1][1] + mean[1]],
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_obvious_groups() {
        let points = [
            [90.0, 0.1],
            [91.0, 0.12],
            [60.0, 0.8],
            [61.0, 0.82],
            [89.0, 0.11],
        ];
        let fit = two_means(&points, [[91.0, 0.1], [60.0, 0.82]]).expect("fit");
        assert_eq!(fit.labels, [0, 0, 1, 1, 0]);
        assert!((fit.centers[1][0] - 60.5).abs() < 1e-12);
        assert!((fit.centers[0][1] - 0.11).abs() < 1e-12);
    }

    #[test]
    fn coincident_points_leave_a_cluster_empty() {
        let points = [[50.0, 0.0], [50.0, 0.0], [50.0, 0.0]];
        let fit = two_means(&points, [[50.0, 0.0], [50.0, 0.0]]).expect("fit");
        assert!(fit.labels.iter().all(|&l| l == 0));
    }

    #[test]
    fn one_point_cannot_be_split() {
        assert_eq!(two_means(&[[1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]), None);
    }
}
