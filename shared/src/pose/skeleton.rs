//! COCO's 17-keypoint topology: the keypoints' order and names, the skeleton's edges, the
//! left/right pairs a horizontal flip swaps, the OKS sigmas of COCO's keypoint evaluation and the
//! joint weights of mmpose's COCO dataset description (the weighted heatmap loss).

/// Keypoints per figure.
pub const NUM_KEYPOINTS: usize = 17;

/// A figure's keypoints in COCO order: `[x, y]` in pixels.
pub type Keypoints = [[f32; 2]; NUM_KEYPOINTS];

/// A figure's visibility flags in COCO order: 2 visible, 1 inside the frame but hidden, 0 outside.
pub type Visibility = [u8; NUM_KEYPOINTS];

/// Index of the nose.
pub const NOSE: usize = 0;
/// Index of the left eye.
pub const LEFT_EYE: usize = 1;
/// Index of the right eye.
pub const RIGHT_EYE: usize = 2;
/// Index of the left ear.
pub const LEFT_EAR: usize = 3;
/// Index of the right ear.
pub const RIGHT_EAR: usize = 4;
/// Index of the left shoulder.
pub const LEFT_SHOULDER: usize = 5;
/// Index of the right shoulder.
pub const RIGHT_SHOULDER: usize = 6;
/// Index of the left elbow.
pub const LEFT_ELBOW: usize = 7;
/// Index of the right elbow.
pub const RIGHT_ELBOW: usize = 8;
/// Index of the left wrist.
pub const LEFT_WRIST: usize = 9;
/// Index of the right wrist.
pub const RIGHT_WRIST: usize = 10;
/// Index of the left hip.
pub const LEFT_HIP: usize = 11;
/// Index of the right hip.
pub const RIGHT_HIP: usize = 12;
/// Index of the left knee.
pub const LEFT_KNEE: usize = 13;
/// Index of the right knee.
pub const RIGHT_KNEE: usize = 14;
/// Index of the left ankle.
pub const LEFT_ANKLE: usize = 15;
/// Index of the right ankle.
pub const RIGHT_ANKLE: usize = 16;

/// COCO's keypoint names, in order.
pub const KEYPOINT_NAMES: [&str; NUM_KEYPOINTS] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

/// COCO's skeleton (`person_keypoints_*.json`'s `skeleton`, made 0-based), in its order.
pub const SKELETON: [(usize, usize); 19] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
];

/// The left/right pairs a horizontal flip swaps.
pub const FLIP_PAIRS: [(usize, usize); 8] = [
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
];

/// COCO's per-keypoint OKS sigmas (`cocoeval.py`'s `kpt_oks_sigmas`).
pub const OKS_SIGMAS: [f32; NUM_KEYPOINTS] = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
];

/// mmpose's COCO joint weights (`configs/_base_/datasets/coco.py`): elbows and knees 1.2, wrists
/// and ankles 1.5, the rest 1.
pub const JOINT_WEIGHTS: [f32; NUM_KEYPOINTS] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5,
];

/// The keypoint a horizontal flip turns `k` into (itself for the nose).
pub fn flipped(k: usize) -> usize {
    FLIP_PAIRS
        .iter()
        .find_map(|&(a, b)| {
            if a == k {
                Some(b)
            } else if b == k {
                Some(a)
            } else {
                None
            }
        })
        .unwrap_or(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_pairs_swap_left_and_right_names() {
        for k in 0..NUM_KEYPOINTS {
            let name = KEYPOINT_NAMES[k];
            let other = KEYPOINT_NAMES[flipped(k)];
            assert_eq!(
                other,
                name.replace("left", "L")
                    .replace("right", "left")
                    .replace('L', "right"),
                "{name}"
            );
            assert_eq!(flipped(flipped(k)), k);
        }
    }

    #[test]
    fn skeleton_edges_are_distinct_and_in_range() {
        for (i, &(a, b)) in SKELETON.iter().enumerate() {
            assert!(a < NUM_KEYPOINTS && b < NUM_KEYPOINTS && a != b);
            assert!(
                SKELETON[..i]
                    .iter()
                    .all(|&(c, d)| (c, d) != (a, b) && (c, d) != (b, a))
            );
            // A flipped edge is an edge.
            let (fa, fb) = (flipped(a), flipped(b));
            assert!(SKELETON.contains(&(fa, fb)) || SKELETON.contains(&(fb, fa)));
        }
    }
}
