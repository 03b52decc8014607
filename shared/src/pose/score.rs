//! Scoring keypoint predictions on labelled frames with one person each: COCO keypoint AP and
//! PCK at α = 0.2 and 0.5 of the person's box, overall and per joint.

use serde::{Deserialize, Serialize};

use super::PoseLabel;
use super::eval::{Person, Prediction, Scene, coco_keypoint_stats, pck};
use super::skeleton::NUM_KEYPOINTS;

/// The labelled person of a frame: its labelled keypoints (visibility 1 or 2), their tight box,
/// and the box's area as OKS's scale (the synthetic figures have no segmentation; `PoseTrack`'s
/// evaluations also scale by the box).
pub fn person(label: &PoseLabel) -> Person {
    let labelled: Vec<[f32; 2]> = label
        .keypoints
        .iter()
        .zip(label.visibility)
        .filter(|(_, v)| *v > 0)
        .map(|(p, _)| *p)
        .collect();
    let fold = |pick: fn(&[f32; 2]) -> f32, start: f32, f: fn(f32, f32) -> f32| {
        labelled.iter().map(pick).fold(start, f)
    };
    let bbox = if labelled.is_empty() {
        [0.0; 4]
    } else {
        let (x0, x1) = (
            fold(|p| p[0], f32::INFINITY, f32::min),
            fold(|p| p[0], f32::NEG_INFINITY, f32::max),
        );
        let (y0, y1) = (
            fold(|p| p[1], f32::INFINITY, f32::min),
            fold(|p| p[1], f32::NEG_INFINITY, f32::max),
        );
        [
            f64::from(x0),
            f64::from(y0),
            f64::from(x1 - x0),
            f64::from(y1 - y0),
        ]
    };
    Person {
        keypoints: label.keypoints.map(|[x, y]| [f64::from(x), f64::from(y)]),
        visibility: label.visibility,
        area: bbox[2] * bbox[3],
        bbox,
    }
}

/// Accuracy of one prediction per labelled frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Frames scored.
    pub frames: usize,
    /// COCO keypoint AP over OKS 0.50:0.95.
    pub ap: f64,
    /// AP at OKS 0.50.
    pub ap50: f64,
    /// AP at OKS 0.75.
    pub ap75: f64,
    /// PCK@0.2 over every labelled joint (`None` when none is labelled).
    pub pck02: Option<f64>,
    /// PCK@0.5.
    pub pck05: Option<f64>,
    /// PCK@0.2 per joint, COCO order.
    pub pck02_per_joint: [Option<f64>; NUM_KEYPOINTS],
}

/// Scores `(person, prediction)` pairs, each from its own frame.
pub fn score(pairs: &[(Person, Prediction)]) -> Scores {
    let scenes: Vec<Scene> = pairs
        .iter()
        .map(|(person, prediction)| Scene {
            people: vec![person.clone()],
            predictions: vec![prediction.clone()],
        })
        .collect();
    let stats = coco_keypoint_stats(&scenes);
    let refs: Vec<(&Person, &Prediction)> = pairs.iter().map(|(a, b)| (a, b)).collect();
    let (pck02, pck02_per_joint) = pck(&refs, 0.2);
    let (pck05, _) = pck(&refs, 0.5);
    Scores {
        frames: pairs.len(),
        ap: stats.ap,
        ap50: stats.ap50,
        ap75: stats.ap75,
        pck02,
        pck05,
        pck02_per_joint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> PoseLabel {
        let mut visibility = [2; NUM_KEYPOINTS];
        visibility[3] = 0;
        PoseLabel {
            keypoints: std::array::from_fn(|k| [10.0 + k as f32, 20.0 + 3.0 * k as f32]),
            visibility,
        }
    }

    #[test]
    fn the_person_box_spans_the_labelled_joints() {
        let p = person(&label());
        let expected = [10.0, 20.0, 16.0, 48.0];
        assert!(
            p.bbox
                .iter()
                .zip(expected)
                .all(|(a, b)| (a - b).abs() < 1e-9),
            "{:?}",
            p.bbox
        );
        assert!((p.area - 768.0).abs() < 1e-9);
    }

    #[test]
    fn exact_predictions_score_one_and_distant_ones_zero() {
        let p = person(&label());
        let exact = Prediction {
            keypoints: p.keypoints,
            score: 1.0,
        };
        let far = Prediction {
            keypoints: p.keypoints.map(|[x, y]| [x + 40.0, y]),
            score: 1.0,
        };
        let good = score(&[(p.clone(), exact)]);
        assert!((good.ap - 1.0).abs() < 1e-12 && good.pck02 == Some(1.0));
        assert_eq!(good.pck02_per_joint[3], None);
        let bad = score(&[(p, far)]);
        assert!(bad.ap.abs() < 1e-12 && bad.pck05 == Some(0.0));
    }
}
