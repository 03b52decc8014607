//! Keypoint accuracy: COCO's keypoint AP as pycocotools' `COCOeval` computes it (`iouType
//! "keypoints"`: object keypoint similarity (OKS) in place of `IoU`, thresholds 0.50:0.05:0.95,
//! 101 recall points, at most 20 detections per image, areas all / medium / large), and PCK.
//!
//! The arithmetic follows pycocotools 2.0.10 step by step, in `f64`, including its quirks: a
//! person with no labelled joint is ignored (and matched by the distance to twice its box), a
//! detection matched to an ignored person is ignored, ties in score keep their input order
//! (NumPy's stable `mergesort`), and `AP75` exists only because 0.5 + 5 · (0.45 / 9) happens to
//! equal 0.75 exactly. `shared/tests/pose_eval.rs` compares every figure with pycocotools' own.

use super::skeleton::NUM_KEYPOINTS;

/// A labelled person in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// `(x, y)` per keypoint, pixels.
    pub keypoints: [[f64; 2]; NUM_KEYPOINTS],
    /// COCO's visibility: 0 not labelled, 1 labelled but hidden, 2 visible.
    pub visibility: [u8; NUM_KEYPOINTS],
    /// The person's area in square pixels (COCO: the segmentation's), the scale of OKS.
    pub area: f64,
    /// `[x, y, width, height]`: where a person without labelled joints is looked for.
    pub bbox: [f64; 4],
}

/// A predicted person in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `(x, y)` per keypoint, pixels.
    pub keypoints: [[f64; 2]; NUM_KEYPOINTS],
    /// Confidence: higher is ranked first.
    pub score: f64,
}

/// One image: its labelled people and the predictions for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scene {
    /// The labelled people.
    pub people: Vec<Person>,
    /// The predictions.
    pub predictions: Vec<Prediction>,
}

/// `COCOeval.summarize()`'s ten keypoint figures; −1 where pycocotools prints −1 (no labelled
/// person in that area range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoKeypointStats {
    /// AP over OKS 0.50:0.95, all areas.
    pub ap: f64,
    /// AP at OKS 0.50.
    pub ap50: f64,
    /// AP at OKS 0.75.
    pub ap75: f64,
    /// AP, medium people (32² to 96² px²).
    pub ap_medium: f64,
    /// AP, large people (above 96² px²).
    pub ap_large: f64,
    /// Recall over OKS 0.50:0.95, all areas.
    pub ar: f64,
    /// Recall at OKS 0.50.
    pub ar50: f64,
    /// Recall at OKS 0.75.
    pub ar75: f64,
    /// Recall, medium people.
    pub ar_medium: f64,
    /// Recall, large people.
    pub ar_large: f64,
}

/// COCO's per-keypoint σ, as pycocotools writes them (`np.array([.26, …]) / 10.0`, in `f64`).
const SIGMAS_TIMES_TEN: [f64; NUM_KEYPOINTS] = [
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89,
    0.89,
];

/// At most this many predictions per image count (pycocotools' `maxDets` for keypoints).
const MAX_DETECTIONS: usize = 20;
/// `np.spacing(1)`.
const EPS: f64 = f64::EPSILON;

/// pycocotools' OKS thresholds: `np.linspace(.5, 0.95, 10)`, computed as NumPy does.
fn thresholds() -> [f64; 10] {
    let step = (0.95 - 0.5) / 9.0;
    #[allow(clippy::cast_precision_loss)] // i < 10
    std::array::from_fn(|i| if i == 9 { 0.95 } else { i as f64 * step + 0.5 })
}

/// pycocotools' recall points: `np.linspace(.0, 1.00, 101)`.
fn recall_points() -> [f64; 101] {
    #[allow(clippy::cast_precision_loss)] // i ≤ 100
    std::array::from_fn(|i| if i == 100 { 1.0 } else { i as f64 * 0.01 })
}

/// OKS between a prediction and a labelled person, as `COCOeval.computeOks` computes it.
pub fn oks(person: &Person, prediction: &Prediction) -> f64 {
    let labelled = person.visibility.iter().filter(|&&v| v > 0).count();
    let [bx, by, bw, bh] = person.bbox;
    let (x0, x1, y0, y1) = (bx - bw, bx + bw * 2.0, by - bh, by + bh * 2.0);
    let mut sum = 0.0;
    let mut count = 0_usize;
    for (k, sigma_times_ten) in SIGMAS_TIMES_TEN.iter().enumerate() {
        let [xd, yd] = prediction.keypoints[k];
        let (dx, dy) = if labelled > 0 {
            if person.visibility[k] == 0 {
                continue;
            }
            let [xg, yg] = person.keypoints[k];
            (xd - xg, yd - yg)
        } else {
            (
                (x0 - xd).max(0.0) + (xd - x1).max(0.0),
                (y0 - yd).max(0.0) + (yd - y1).max(0.0),
            )
        };
        let sigma = sigma_times_ten / 10.0;
        let variance = (sigma * 2.0) * (sigma * 2.0);
        let e = (dx * dx + dy * dy) / variance / (person.area + EPS) / 2.0;
        sum += (-e).exp();
        count += 1;
    }
    #[allow(clippy::cast_precision_loss)] // count ≤ 17
    let mean = sum / count as f64;
    mean
}

/// One image's matches at every threshold, for one area range (`COCOeval.evaluateImg`).
struct ImageResult {
    /// Per threshold, per kept prediction (by score): matched.
    matched: Vec<Vec<bool>>,
    /// Per threshold, per kept prediction: ignored.
    ignored: Vec<Vec<bool>>,
    scores: Vec<f64>,
    /// Labelled people not ignored.
    counted: usize,
}

fn prediction_area(prediction: &Prediction) -> f64 {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for [x, y] in prediction.keypoints {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    (x1 - x0) * (y1 - y0)
}

fn evaluate_image(scene: &Scene, range: [f64; 2], thresholds: &[f64]) -> Option<ImageResult> {
    if scene.people.is_empty() && scene.predictions.is_empty() {
        return None;
    }
    let outside = |area: f64| area < range[0] || area > range[1];
    // Ignored people last, keeping their order otherwise.
    let mut people: Vec<(&Person, bool)> = scene
        .people
        .iter()
        .map(|p| (p, p.visibility.iter().all(|&v| v == 0) || outside(p.area)))
        .collect();
    people.sort_by_key(|&(_, ignored)| ignored);
    // Highest score first, ties in input order; at most MAX_DETECTIONS.
    let mut predictions: Vec<&Prediction> = scene.predictions.iter().collect();
    predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
    predictions.truncate(MAX_DETECTIONS);
    let similarity: Vec<Vec<f64>> = predictions
        .iter()
        .map(|d| people.iter().map(|(g, _)| oks(g, d)).collect())
        .collect();
    let mut matched = Vec::with_capacity(thresholds.len());
    let mut ignored = Vec::with_capacity(thresholds.len());
    for &t in thresholds {
        let mut taken = vec![false; people.len()];
        let mut d_matched = vec![false; predictions.len()];
        let mut d_ignored = vec![false; predictions.len()];
        for (d, row) in similarity.iter().enumerate() {
            let mut best = t.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (g, &(_, g_ignored)) in people.iter().enumerate() {
                if taken[g] {
                    continue;
                }
                // Matched to a counted person already: ignored people cannot do better.
                if m.is_some_and(|m| !people[m].1) && g_ignored {
                    break;
                }
                if row[g] < best {
                    continue;
                }
                best = row[g];
                m = Some(g);
            }
            if let Some(m) = m {
                taken[m] = true;
                d_matched[d] = true;
                d_ignored[d] = people[m].1;
            }
        }
        for (d, prediction) in predictions.iter().enumerate() {
            if !d_matched[d] && outside(prediction_area(prediction)) {
                d_ignored[d] = true;
            }
        }
        matched.push(d_matched);
        ignored.push(d_ignored);
    }
    Some(ImageResult {
        matched,
        ignored,
        scores: predictions.iter().map(|d| d.score).collect(),
        counted: people.iter().filter(|(_, ignored)| !ignored).count(),
    })
}

/// Per threshold: precision at each recall point and the final recall (`COCOeval.accumulate`),
/// or `None` when no person counts in this area range.
#[allow(clippy::type_complexity)] // (precision per recall point, recall) per threshold
fn accumulate(scenes: &[Scene], range: [f64; 2]) -> Option<Vec<(Vec<f64>, f64)>> {
    let thresholds = thresholds();
    let results: Vec<ImageResult> = scenes
        .iter()
        .filter_map(|s| evaluate_image(s, range, &thresholds))
        .collect();
    let counted: usize = results.iter().map(|r| r.counted).sum();
    if counted == 0 {
        return None;
    }
    // Every kept prediction of every image, highest score first, ties in image order.
    let mut order: Vec<(usize, usize)> = results
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.scores.len()).map(move |d| (i, d)))
        .collect();
    order.sort_by(|&(i, d), &(j, e)| results[j].scores[e].total_cmp(&results[i].scores[d]));
    #[allow(clippy::cast_precision_loss)] // counts of people and predictions
    let out = (0..thresholds.len())
        .map(|t| {
            let (mut tp, mut fp) = (0.0, 0.0);
            let mut recall = Vec::with_capacity(order.len());
            let mut precision = Vec::with_capacity(order.len());
            for &(i, d) in &order {
                let (m, ig) = (results[i].matched[t][d], results[i].ignored[t][d]);
                if !ig {
                    if m {
                        tp += 1.0;
                    } else {
                        fp += 1.0;
                    }
                }
                recall.push(tp / counted as f64);
                precision.push(tp / (fp + tp + EPS));
            }
            let final_recall = recall.last().copied().unwrap_or(0.0);
            for k in (1..precision.len()).rev() {
                if precision[k] > precision[k - 1] {
                    precision[k - 1] = precision[k];
                }
            }
            let at_points = recall_points()
                .iter()
                .map(|&r| {
                    let k = recall.partition_point(|&x| x < r);
                    precision.get(k).copied().unwrap_or(0.0)
                })
                .collect();
            (at_points, final_recall)
        })
        .collect();
    Some(out)
}

/// `COCOeval.summarize()` for keypoints.
pub fn coco_keypoint_stats(scenes: &[Scene]) -> CocoKeypointStats {
    let thresholds = thresholds();
    // Exact equality, as pycocotools' `np.where(iouThr == p.iouThrs)`.
    #[allow(clippy::float_cmp)]
    let at = |value: f64| thresholds.iter().position(|&t| t == value);
    #[allow(clippy::cast_precision_loss)] // at most 10 · 101 values
    let mean = |values: Vec<f64>| {
        let kept: Vec<f64> = values.into_iter().filter(|&v| v > -1.0).collect();
        if kept.is_empty() {
            -1.0
        } else {
            kept.iter().sum::<f64>() / kept.len() as f64
        }
    };
    let summary = |range: [f64; 2], threshold: Option<f64>| -> (f64, f64) {
        let Some(per_t) = accumulate(scenes, range) else {
            return (-1.0, -1.0);
        };
        let chosen: Vec<usize> = match threshold {
            None => (0..per_t.len()).collect(),
            Some(value) => at(value).into_iter().collect(),
        };
        (
            mean(chosen.iter().flat_map(|&t| per_t[t].0.clone()).collect()),
            mean(chosen.iter().map(|&t| per_t[t].1).collect()),
        )
    };
    let all = [0.0, 1e10];
    let (ap, ar) = summary(all, None);
    let at_50 = summary(all, Some(0.5));
    let at_75 = summary(all, Some(0.75));
    let medium = summary([32.0 * 32.0, 96.0 * 96.0], None);
    let large = summary([96.0 * 96.0, 1e10], None);
    CocoKeypointStats {
        ap,
        ap50: at_50.0,
        ap75: at_75.0,
        ap_medium: medium.0,
        ap_large: large.0,
        ar,
        ar50: at_50.1,
        ar75: at_75.1,
        ar_medium: medium.1,
        ar_large: large.1,
    }
}

/// PCK@α: the share of labelled joints (visibility > 0) predicted within α · the longer side of
/// the person's box, overall and per joint (`None` for a joint never labelled). One prediction
/// per person, in pairs.
pub fn pck(
    pairs: &[(&Person, &Prediction)],
    alpha: f64,
) -> (Option<f64>, [Option<f64>; NUM_KEYPOINTS]) {
    let mut hits = [0_usize; NUM_KEYPOINTS];
    let mut labelled = [0_usize; NUM_KEYPOINTS];
    for (person, prediction) in pairs {
        let reach = alpha * person.bbox[2].max(person.bbox[3]);
        for k in 0..NUM_KEYPOINTS {
            if person.visibility[k] == 0 {
                continue;
            }
            labelled[k] += 1;
            let [xg, yg] = person.keypoints[k];
            let [xd, yd] = prediction.keypoints[k];
            if (xd - xg).hypot(yd - yg) <= reach {
                hits[k] += 1;
            }
        }
    }
    #[allow(clippy::cast_precision_loss)] // counts
    let share = |h: usize, n: usize| (n > 0).then(|| h as f64 / n as f64);
    let per_joint = std::array::from_fn(|k| share(hits[k], labelled[k]));
    (share(hits.iter().sum(), labelled.iter().sum()), per_joint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(at: [f64; 2]) -> Person {
        Person {
            keypoints: std::array::from_fn(|k| [at[0] + k as f64, at[1] + 2.0 * k as f64]),
            visibility: [2; NUM_KEYPOINTS],
            area: 900.0,
            bbox: [at[0], at[1], 16.0, 32.0],
        }
    }

    #[test]
    fn a_perfect_prediction_has_oks_one_and_ap_one() {
        let p = person([10.0, 5.0]);
        let exact = Prediction {
            keypoints: p.keypoints,
            score: 0.9,
        };
        assert!((oks(&p, &exact) - 1.0).abs() < 1e-12);
        let stats = coco_keypoint_stats(&[Scene {
            people: vec![p],
            predictions: vec![exact],
        }]);
        assert!((stats.ap - 1.0).abs() < 1e-12, "{stats:?}");
        assert!((stats.ar - 1.0).abs() < 1e-12);
        // 900 px² is a small person: no medium or large ones.
        assert!((stats.ap_medium + 1.0).abs() < 1e-12 && (stats.ap_large + 1.0).abs() < 1e-12);
    }

    #[test]
    fn oks_falls_with_distance_and_counts_only_labelled_joints() {
        let mut p = person([0.0, 0.0]);
        let shifted = |by: f64| Prediction {
            keypoints: p.keypoints.map(|[x, y]| [x + by, y]),
            score: 1.0,
        };
        let (near, far) = (oks(&p, &shifted(1.0)), oks(&p, &shifted(4.0)));
        assert!(1.0 > near && near > far && far > 0.0, "{near} {far}");
        // An unlabelled joint's prediction does not matter.
        p.visibility[3] = 0;
        let mut wild = shifted(0.0);
        wild.keypoints[3] = [1e6, 1e6];
        assert!((oks(&p, &wild) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pck_counts_joints_within_alpha_of_the_box() {
        let p = person([0.0, 0.0]);
        let mut d = Prediction {
            keypoints: p.keypoints,
            score: 1.0,
        };
        // Box 16 × 32: PCK@0.2 reaches 6.4 px.
        d.keypoints[0][0] += 6.0;
        d.keypoints[1][0] += 7.0;
        let (overall, per_joint) = pck(&[(&p, &d)], 0.2);
        assert_eq!(per_joint[0], Some(1.0));
        assert_eq!(per_joint[1], Some(0.0));
        assert!((overall.unwrap() - 16.0 / 17.0).abs() < 1e-12);
        assert_eq!(pck(&[], 0.2).0, None);
    }

    #[test]
    fn the_sigmas_are_the_skeletons() {
        for (k, s) in SIGMAS_TIMES_TEN.iter().enumerate() {
            let theirs = f64::from(super::super::skeleton::OKS_SIGMAS[k]);
            assert!((s / 10.0 - theirs).abs() < 1e-7, "{k}");
        }
    }

    // The values must be exactly NumPy's.
    #[allow(clippy::float_cmp)]
    #[test]
    fn the_thresholds_are_numpys_and_include_0_75_exactly() {
        let t = thresholds();
        assert!(t.contains(&0.5) && t.contains(&0.75) && t[9] == 0.95);
        assert_eq!(recall_points()[100], 1.0);
    }
}
