//! The figure: per-clip body proportions, joint angles that are sums of a few sinusoids within
//! plausible ranges, a root (the pelvis' centre) moving at a constant velocity, and a per-chain
//! depth that decides which limbs pass in front of which. Time is in frames.
//!
//! Angles are in radians with `dir(θ) = (sin θ, cos θ)`: 0 points down the image, positive
//! angles turn towards +x. Figures face the camera, so the person's left is on the image's
//! right. Articulation speeds are scaled so that no keypoint moves faster than the clip's speed.

use std::f32::consts::{PI, TAU};

use super::skeleton::{
    Keypoints, LEFT_ANKLE, LEFT_EAR, LEFT_ELBOW, LEFT_EYE, LEFT_HIP, LEFT_KNEE, LEFT_SHOULDER,
    LEFT_WRIST, NOSE, NUM_KEYPOINTS,
};
use crate::rng::SplitMix64;

/// Sinusoids per angle.
const TERMS: usize = 3;
/// Fastest angular frequency of any term, radians per frame.
const MAX_OMEGA: f32 = 0.6;

/// The direction of angle `theta`.
pub(super) fn dir(theta: f32) -> [f32; 2] {
    [libm::sinf(theta), libm::cosf(theta)]
}

/// `p + s · d`.
pub(super) fn along(p: [f32; 2], s: f32, d: [f32; 2]) -> [f32; 2] {
    [p[0] + s * d[0], p[1] + s * d[1]]
}

/// A value over time: `centre + Σ a sin(ω t + φ)`.
#[derive(Debug, Clone)]
pub(super) struct Channel {
    centre: f32,
    /// `[a, ω, φ]` per term.
    terms: [[f32; 3]; TERMS],
}

impl Channel {
    /// A channel that stays in `[lo, hi]`, with a total amplitude of at most `max_amp`.
    fn new(rng: &mut SplitMix64, [lo, hi]: [f32; 2], max_amp: f32) -> Self {
        let amp = max_amp.min((hi - lo) / 2.0) * rng.between([0.3, 1.0]);
        let centre = rng.between([lo + amp, hi - amp]);
        let weights = [(); TERMS].map(|()| rng.between([0.2, 1.0]));
        let total: f32 = weights.iter().sum();
        let terms = weights.map(|w| {
            [
                amp * w / total,
                rng.between([0.15, 1.0]),
                rng.between([0.0, TAU]),
            ]
        });
        Self { centre, terms }
    }

    /// The value at time `t`.
    pub(super) fn at(&self, t: f32) -> f32 {
        self.centre
            + self
                .terms
                .iter()
                .map(|&[a, w, p]| a * libm::sinf(w * t + p))
                .sum::<f32>()
    }

    /// A bound on `|d/dt|`.
    fn rate(&self) -> f32 {
        self.terms.iter().map(|&[a, w, _]| a.abs() * w).sum()
    }

    fn max_omega(&self) -> f32 {
        self.terms.iter().map(|t| t[1]).fold(0.0, f32::max)
    }

    fn scale_time(&mut self, f: f32) {
        for t in &mut self.terms {
            t[1] *= f;
        }
    }
}

/// Segment lengths and radii in pixels.
#[derive(Debug, Clone)]
pub(super) struct Body {
    pub(super) torso: f32,
    pub(super) shoulder: f32,
    pub(super) hip: f32,
    pub(super) neck: f32,
    pub(super) head: f32,
    pub(super) upper_arm: f32,
    pub(super) forearm: f32,
    pub(super) thigh: f32,
    pub(super) shin: f32,
    pub(super) arm_radius: f32,
    pub(super) leg_radius: f32,
}

impl Body {
    /// Proportions of a figure `height` pixels tall (head to ankle), each within ±12 % of a
    /// typical adult's.
    fn new(rng: &mut SplitMix64, height: f32) -> Self {
        let mut part = |typical: f32| typical * height * rng.between([0.88, 1.12]);
        Self {
            torso: part(0.30),
            shoulder: part(0.11),
            hip: part(0.075),
            neck: part(0.04),
            head: part(0.065),
            upper_arm: part(0.17),
            forearm: part(0.15),
            thigh: part(0.23),
            shin: part(0.22),
            arm_radius: part(0.032).max(1.0),
            leg_radius: part(0.042).max(1.2),
        }
    }
}

// Channels.
const LEAN: usize = 0;
const YAW: usize = 1;
const SHOULDER: usize = 2;
const ELBOW: usize = 4;
const HIP: usize = 6;
const KNEE: usize = 8;
const ARM_DEPTH: usize = 10;
const LEG_DEPTH: usize = 12;
const CHANNELS: usize = 14;

/// Face features: azimuth on the head (positive towards the person's left), height above the
/// head's centre (fraction of its radius) and distance from the centre (fraction of the radius).
const FACE: [(f32, f32, f32); 5] = [
    (0.0, -0.1, 1.1),
    (0.42, 0.3, 0.95),
    (-0.42, 0.3, 0.95),
    (1.45, 0.05, 1.0),
    (-1.45, 0.05, 1.0),
];

/// A figure's pose at one instant, in world pixels.
#[derive(Debug, Clone)]
pub(super) struct Pose {
    pub(super) keypoints: Keypoints,
    /// The torso's up direction.
    pub(super) up: [f32; 2],
    pub(super) shoulder_centre: [f32; 2],
    pub(super) head_centre: [f32; 2],
    /// Whether each face keypoint (nose, eyes, ears) is on the camera's side of the head.
    pub(super) face_front: [bool; 5],
    /// Depth of each arm, then each leg (left first); the torso is at 0, smaller is nearer.
    pub(super) limb_depth: [f32; 4],
}

/// A moving figure.
#[derive(Debug, Clone)]
pub(super) struct Figure {
    pub(super) body: Body,
    /// The root at `t = 0`.
    root: [f32; 2],
    velocity: [f32; 2],
    channels: Vec<Channel>,
    /// Direction each knee bends (±1), left then right.
    knee_sign: [f32; 2],
    /// The clip's speed: no keypoint moves faster, in pixels per frame.
    pub(super) speed: f32,
}

impl Figure {
    /// A figure `height` pixels tall whose root is at `root` at `t = 0` and whose keypoints move
    /// at most `speed` pixels per frame; each limb chain swings behind the torso with probability
    /// `behind`.
    pub(super) fn new(
        rng: &mut SplitMix64,
        height: f32,
        root: [f32; 2],
        speed: f32,
        behind: f64,
    ) -> Self {
        let body = Body::new(rng, height);
        let mut channels = Vec::with_capacity(CHANNELS);
        channels.push(Channel::new(rng, [-0.3, 0.3], 0.15));
        channels.push(Channel::new(rng, [-0.9, 0.9], 0.6));
        for (range, amp) in [
            ([-0.2, 2.8], 1.0),
            ([-2.2, 2.2], 0.9),
            ([-0.3, 1.0], 0.5),
            ([0.0, 1.6], 0.6),
        ] {
            channels.push(Channel::new(rng, range, amp));
            channels.push(Channel::new(rng, range, amp));
        }
        for chain in 0..4 {
            // A chain in front stays at depth [-1.5, -0.5]; one that swings behind crosses the
            // torso's (0) and the head's (-0.2) planes.
            let range = if rng.chance(behind) {
                [-1.2, 1.2]
            } else {
                [-1.5, -0.5]
            };
            let mut c = Channel::new(rng, range, 1.2);
            // Break ties between chains.
            c.centre += 0.01 * chain as f32;
            channels.push(c);
        }
        let knee_sign = [(); 2].map(|()| if rng.chance(0.5) { 1.0 } else { -1.0 });
        let heading = rng.between([0.0, TAU]);
        let root_speed = speed * rng.between([0.2, 0.8]);
        let velocity = [
            root_speed * libm::cosf(heading),
            root_speed * libm::sinf(heading),
        ];
        let mut figure = Self {
            body,
            root,
            velocity,
            channels,
            knee_sign,
            speed,
        };
        let bound = figure.articulation_bound();
        let fastest = figure
            .channels
            .iter()
            .map(Channel::max_omega)
            .fold(0.0, f32::max);
        let budget = speed - root_speed;
        let scale = if bound > 0.0 && fastest > 0.0 {
            (budget / bound).min(MAX_OMEGA / fastest)
        } else {
            0.0
        };
        for c in &mut figure.channels {
            c.scale_time(scale);
        }
        figure
    }

    /// A bound on any keypoint's speed relative to the root, in pixels per frame.
    fn articulation_bound(&self) -> f32 {
        let b = &self.body;
        let r = |c: usize| self.channels[c].rate();
        let lean = r(LEAN);
        let face = (b.torso + b.neck + 2.2 * b.head) * lean + 1.1 * b.head * r(YAW);
        let shoulder = (b.torso + b.shoulder) * lean;
        let mut bound = face.max(shoulder);
        for side in 0..2 {
            let upper = lean + r(SHOULDER + side);
            let wrist = shoulder + b.upper_arm * upper + b.forearm * (upper + r(ELBOW + side));
            let thigh = r(HIP + side);
            let ankle = b.thigh * thigh + b.shin * (thigh + r(KNEE + side));
            bound = bound.max(wrist).max(ankle);
        }
        bound
    }

    /// The pose at time `t` (frames).
    pub(super) fn pose(&self, t: f32) -> Pose {
        let body = &self.body;
        let ch = |i: usize| self.channels[i].at(t);
        let root = along(self.root, t, self.velocity);
        let lean = ch(LEAN);
        let up = dir(PI + lean);
        // The image's right, perpendicular to the torso.
        let right = [-up[1], up[0]];
        let shoulder_centre = along(root, body.torso, up);
        let head_centre = along(shoulder_centre, body.neck + body.head, up);
        let mut keypoints = [[0.0; 2]; NUM_KEYPOINTS];
        let yaw = ch(YAW);
        let mut face_front = [false; 5];
        for (f, &(azimuth, height, reach)) in FACE.iter().enumerate() {
            let turn = azimuth + yaw;
            let across = along(head_centre, body.head * reach * libm::sinf(turn), right);
            keypoints[NOSE + f] = along(across, body.head * height, up);
            face_front[f] = libm::cosf(turn) > 0.0;
        }
        for side in 0..2 {
            // The person's left (side 0) is on the image's right.
            let s = if side == 0 { 1.0 } else { -1.0 };
            let shoulder = along(shoulder_centre, s * body.shoulder, right);
            let upper = lean + s * ch(SHOULDER + side);
            let elbow = along(shoulder, body.upper_arm, dir(upper));
            let wrist = along(elbow, body.forearm, dir(upper + s * ch(ELBOW + side)));
            let hip = along(root, s * body.hip, [1.0, 0.0]);
            let thigh = s * ch(HIP + side);
            let knee = along(hip, body.thigh, dir(thigh));
            let ankle = along(
                knee,
                body.shin,
                dir(thigh + self.knee_sign[side] * ch(KNEE + side)),
            );
            for (joint, point) in [
                (LEFT_SHOULDER, shoulder),
                (LEFT_ELBOW, elbow),
                (LEFT_WRIST, wrist),
                (LEFT_HIP, hip),
                (LEFT_KNEE, knee),
                (LEFT_ANKLE, ankle),
            ] {
                keypoints[joint + side] = point;
            }
        }
        debug_assert_eq!(LEFT_EYE, NOSE + 1);
        debug_assert_eq!(LEFT_EAR, NOSE + 3);
        Pose {
            keypoints,
            up,
            shoulder_centre,
            head_centre,
            face_front,
            limb_depth: [
                ch(ARM_DEPTH),
                ch(ARM_DEPTH + 1),
                ch(LEG_DEPTH),
                ch(LEG_DEPTH + 1),
            ],
        }
    }
}
