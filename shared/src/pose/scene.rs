//! One clip's world: the background, the labelled figure and its look, the optional distractor
//! figure and occluder, the camera shake, the exposure (motion blur) and the defocus; and the
//! rendering of a frame with its ground truth.

use super::motion::{Figure, Pose, along};
use super::render::{Background, Canvas, EMPTY, Paint, Part, Shape, defocus};
use super::skeleton::{
    Keypoints, LEFT_ANKLE, LEFT_ELBOW, LEFT_HIP, LEFT_KNEE, LEFT_SHOULDER, LEFT_WRIST, NOSE,
    NUM_KEYPOINTS, Visibility,
};
use super::{PoseLabel, SyntheticConfig};
use crate::rng::SplitMix64;

/// Most sub-frames averaged for motion blur (odd, so one falls on the frame's instant).
pub(super) const MAX_SUBFRAMES: usize = 9;

// Depths of a figure's parts (smaller is nearer); limbs take their chain's depth.
const TORSO_DEPTH: f32 = 0.0;
const NECK_DEPTH: f32 = 0.1;
const HEAD_DEPTH: f32 = -0.2;
const FACE_DEPTH: f32 = -0.21;
/// How far in front of (or behind) the labelled figure a distractor stands.
const DISTRACTOR_DEPTH: f32 = 5.0;
/// The occluder is in front of everything.
const OCCLUDER_DEPTH: f32 = -10.0;

/// A figure's colours and textures.
#[derive(Debug, Clone)]
pub(super) struct Look {
    torso: Paint,
    neck: Paint,
    head: Paint,
    /// Nose, eyes, ears.
    face: [Paint; 5],
    /// Upper arm, forearm (left then right), then thigh, shin (left then right).
    pub(super) limbs: [Paint; 8],
}

impl Look {
    fn new(rng: &mut SplitMix64) -> Self {
        let tone = rng.unit_f32();
        let skin = [0, 1, 2].map(|c| {
            let light = [235.0, 205.0, 180.0][c];
            let dark = [95.0, 60.0, 40.0][c];
            light + (dark - light) * tone
        });
        let torso = Paint::any(rng, 0.45);
        let neck = Paint::random(rng, skin, 0.05);
        let head = Paint::random(rng, skin, 0.05);
        let eye = Paint::flat([25.0, 25.0, 35.0]);
        let nose = Paint::flat(skin.map(|c| c * 0.75));
        let ear = Paint::flat(skin.map(|c| c * 0.85));
        let limbs = [(); 8].map(|()| Paint::any(rng, 0.45));
        Self {
            torso,
            neck,
            head,
            face: [nose, eye.clone(), eye, ear.clone(), ear],
            limbs,
        }
    }
}

/// For each keypoint of the labelled figure: the parts it belongs to (a bit per part index) and
/// its depth (the nearest of those parts').
#[derive(Debug, Clone)]
pub(super) struct Attachments {
    mask: [u32; NUM_KEYPOINTS],
    depth: [f32; NUM_KEYPOINTS],
}

impl Attachments {
    /// Appends `part` to `parts` as a part of `joints`.
    fn push(&mut self, parts: &mut Vec<Part>, part: Part, joints: &[usize]) {
        let index = parts.len();
        for &j in joints {
            if index < 32 {
                self.mask[j] |= 1 << index;
            }
            self.depth[j] = self.depth[j].min(part.depth);
        }
        parts.push(part);
    }
}

/// Appends a figure's parts at pose `pose`, all depths shifted by `shift`, and returns which
/// parts each keypoint belongs to (meaningful while the parts' indices are below 32). The order
/// is fixed: torso, neck, head, the face features on the camera's side, then upper arm and
/// forearm (left, right), then thigh and shin (left, right).
pub(super) fn figure_parts(
    figure: &Figure,
    look: &Look,
    pose: &Pose,
    shift: f32,
    parts: &mut Vec<Part>,
) -> Attachments {
    let body = &figure.body;
    let kp = &pose.keypoints;
    let mut attach = Attachments {
        mask: [0; NUM_KEYPOINTS],
        depth: [f32::INFINITY; NUM_KEYPOINTS],
    };
    let right = [-pose.up[1], pose.up[0]];
    let (arm, leg) = (body.arm_radius * 0.7, body.leg_radius * 0.8);
    let corners = vec![
        along(along(kp[LEFT_SHOULDER], arm, right), arm, pose.up),
        along(along(kp[LEFT_SHOULDER + 1], -arm, right), arm, pose.up),
        along(kp[LEFT_HIP + 1], -leg, [1.0, 0.0]),
        along(kp[LEFT_HIP], leg, [1.0, 0.0]),
    ];
    let torso = Part::new(
        Shape::Polygon(corners),
        look.torso.clone(),
        shift + TORSO_DEPTH,
        pose.shoulder_centre,
        pose.up,
    );
    let torso_joints = [LEFT_SHOULDER, LEFT_SHOULDER + 1, LEFT_HIP, LEFT_HIP + 1];
    attach.push(parts, torso, &torso_joints);
    let (neck, head) = (pose.shoulder_centre, pose.head_centre);
    let neck = Part::capsule(
        neck,
        head,
        0.4 * body.head,
        look.neck.clone(),
        shift + NECK_DEPTH,
    );
    attach.push(parts, neck, &[]);
    let head = Part::disc(head, body.head, look.head.clone(), shift + HEAD_DEPTH);
    let front: Vec<usize> = (0..5)
        .filter(|&f| pose.face_front[f])
        .map(|f| NOSE + f)
        .collect();
    attach.push(parts, head, &front);
    for f in 0..5 {
        let j = NOSE + f;
        if pose.face_front[f] {
            let radius = ([0.16, 0.17, 0.17, 0.28, 0.28][f] * body.head).max(0.5);
            let feature = Part::disc(kp[j], radius, look.face[f].clone(), shift + FACE_DEPTH);
            attach.push(parts, feature, &[j]);
        } else {
            // Behind the head: hidden wherever the head covers it.
            attach.depth[j] = shift + HEAD_DEPTH + 0.01;
        }
    }
    // Chains: the joints from the body outwards, the radius, the chain's depth channel.
    let chains = [
        ([LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST], body.arm_radius, 0),
        ([LEFT_HIP, LEFT_KNEE, LEFT_ANKLE], body.leg_radius, 2),
    ];
    for (joints, radius, depth_channel) in chains {
        for side in 0..2 {
            let depth = shift + pose.limb_depth[depth_channel + side];
            let [a, b, c] = joints.map(|j| j + side);
            let paint = |segment: usize| look.limbs[2 * (depth_channel + side) + segment].clone();
            let upper = Part::capsule(kp[a], kp[b], radius * 1.12, paint(0), depth);
            attach.push(parts, upper, &[a, b]);
            let lower = Part::capsule(kp[b], kp[c], radius, paint(1), depth - 0.02);
            attach.push(parts, lower, &[b, c]);
        }
    }
    attach
}

/// An occluding bar or box moving across the figure.
#[derive(Debug, Clone)]
struct Occluder {
    centre: [f32; 2],
    velocity: [f32; 2],
    /// Unit vector along the long side.
    axis: [f32; 2],
    half: [f32; 2],
    paint: Paint,
}

impl Occluder {
    fn new(rng: &mut SplitMix64, root: [f32; 2], size: f32, speed: [f32; 2]) -> Self {
        let centre = [
            root[0] + size * rng.between([-0.35, 0.35]),
            root[1] + size * rng.between([-0.5, 0.3]),
        ];
        let angle = rng.between([0.0, std::f32::consts::PI]);
        let axis = [libm::cosf(angle), libm::sinf(angle)];
        let half = if rng.chance(0.3) {
            let half_side = size * rng.between([0.1, 0.22]);
            [half_side, half_side * rng.between([0.7, 1.0])]
        } else {
            [
                size * rng.between([0.3, 1.0]),
                size * rng.between([0.04, 0.12]),
            ]
        };
        let v = rng.between(speed);
        let heading = rng.between([0.0, std::f32::consts::TAU]);
        Self {
            centre,
            velocity: [v * libm::cosf(heading), v * libm::sinf(heading)],
            axis,
            half,
            paint: Paint::any(rng, 0.5),
        }
    }

    fn part(&self, t: f32) -> Part {
        let c = along(self.centre, t, self.velocity);
        let normal = [-self.axis[1], self.axis[0]];
        let corners = [[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]].map(|[u, v]| {
            along(
                along(c, u * self.half[0], self.axis),
                v * self.half[1],
                normal,
            )
        });
        Part::new(
            Shape::Polygon(corners.to_vec()),
            self.paint.clone(),
            OCCLUDER_DEPTH,
            c,
            self.axis,
        )
    }
}

/// A clip's world, fixed before any frame is rendered.
#[derive(Debug, Clone)]
pub(super) struct Scene {
    width: usize,
    height: usize,
    frames: usize,
    pub(super) background: Background,
    pub(super) figure: Figure,
    pub(super) look: Look,
    /// The distractor, its look and its depth shift.
    distractor: Option<(Figure, Look, f32)>,
    occluder: Option<Occluder>,
    /// The camera's translation per frame.
    pub(super) shake: Vec<[f32; 2]>,
    /// The shutter's open time as a fraction of the frame interval (0: no motion blur).
    pub(super) exposure: f32,
    subframes: usize,
    pub(super) defocus: f32,
}

impl Scene {
    /// The world of the clip whose generator is seeded with `clip_seed`. Each aspect draws from its
    /// own stream, so that switching a knob off leaves everything else as it was.
    pub(super) fn new(config: &SyntheticConfig, clip_seed: u64) -> Self {
        let mut seeds = SplitMix64(clip_seed);
        let mut streams = [(); 8].map(|()| SplitMix64(seeds.next_u64()));
        let [
            figure_rng,
            look_rng,
            background_rng,
            occluder_rng,
            distractor_rng,
            blur_rng,
            defocus_rng,
            shake_rng,
        ] = &mut streams;
        let (w, h) = (config.width as f32, config.height as f32);
        let size = h * figure_rng.between(config.figure_height);
        let root = [
            w * (0.5 + figure_rng.between([-0.15, 0.15])),
            h * (0.5 + figure_rng.between([-0.1, 0.1])) + 0.04 * size,
        ];
        let speed = figure_rng.between(config.speed);
        let figure = Figure::new(figure_rng, size, root, speed, config.self_occlusion);
        let look = Look::new(look_rng);
        let background = Background::new(background_rng, config.width, config.height);
        let occluder = occluder_rng
            .chance(config.occluder_probability)
            .then(|| Occluder::new(occluder_rng, root, size, config.speed));
        let distractor = distractor_rng
            .chance(config.distractor_probability)
            .then(|| {
                let rng = distractor_rng;
                let sign = if rng.chance(0.5) { 1.0 } else { -1.0 };
                let at = [
                    root[0] + sign * size * rng.between([0.3, 0.65]),
                    root[1] + size * rng.between([-0.1, 0.1]),
                ];
                let other_size = size * rng.between([0.8, 1.2]);
                let speed = rng.between(config.speed);
                let other = Figure::new(rng, other_size, at, speed, config.self_occlusion);
                let shift = if rng.chance(0.5) {
                    DISTRACTOR_DEPTH
                } else {
                    -DISTRACTOR_DEPTH
                };
                (other, Look::new(rng), shift)
            });
        let (mut exposure, mut subframes) = (0.0, 1);
        if blur_rng.chance(config.blur_probability) && config.blur_max_px > 0.0 && speed > 0.0 {
            let length = if config.blur_max_px > 1.0 {
                blur_rng.between([1.0, config.blur_max_px])
            } else {
                config.blur_max_px
            };
            exposure = (length / speed).min(1.0);
            // Sub-frames about a pixel apart along the fastest path, odd, 3 to MAX_SUBFRAMES.
            let n = super::render::clamp_index((speed * exposure / 2.0).ceil(), MAX_SUBFRAMES);
            subframes = (2 * n + 1).clamp(3, MAX_SUBFRAMES);
        }
        let defocus =
            if defocus_rng.chance(config.defocus_probability) && config.defocus_max_radius > 0.0 {
                let max = config.defocus_max_radius;
                defocus_rng.between([0.5_f32.min(max), max])
            } else {
                0.0
            };
        let a = config.shake_px;
        let shake = (0..config.frames)
            .map(|_| {
                if a > 0.0 {
                    [shake_rng.between([-a, a]), shake_rng.between([-a, a])]
                } else {
                    [0.0, 0.0]
                }
            })
            .collect();
        Self {
            width: config.width,
            height: config.height,
            frames: config.frames,
            background,
            figure,
            look,
            distractor,
            occluder,
            shake,
            exposure,
            subframes,
            defocus,
        }
    }

    /// The frame's width and height.
    pub(super) fn size(&self) -> [usize; 2] {
        [self.width, self.height]
    }

    /// Whether the clip has a distractor figure.
    pub(super) fn has_distractor(&self) -> bool {
        self.distractor.is_some()
    }

    /// Whether the clip has an occluder.
    pub(super) fn has_occluder(&self) -> bool {
        self.occluder.is_some()
    }

    /// The time of frame `f`, in frames from the clip's middle.
    pub(super) fn time(&self, f: usize) -> f32 {
        f as f32 - (self.frames - 1) as f32 / 2.0
    }

    /// Every part of the world at time `t`, and the labelled figure's pose and attachments.
    pub(super) fn parts(&self, t: f32) -> (Vec<Part>, Pose, Attachments) {
        let mut parts = Vec::with_capacity(40);
        let pose = self.figure.pose(t);
        let attach = figure_parts(&self.figure, &self.look, &pose, 0.0, &mut parts);
        if let Some((other, look, shift)) = &self.distractor {
            figure_parts(other, look, &other.pose(t), *shift, &mut parts);
        }
        if let Some(occluder) = &self.occluder {
            parts.push(occluder.part(t));
        }
        (parts, pose, attach)
    }

    /// Frame `f` seen through a camera translated by `offset`: its pixels (before defocus and
    /// quantisation) and its label.
    pub(super) fn render(&self, f: usize, offset: [f32; 2]) -> (Vec<f32>, PoseLabel, Canvas) {
        let t = self.time(f);
        let empty = Canvas::new(self.width, self.height, &self.background, offset);
        let mut sum = vec![0.0_f32; empty.rgb.len()];
        let mut centre = None;
        let middle = self.subframes / 2;
        for i in 0..self.subframes {
            let dt = if self.subframes > 1 {
                self.exposure * (i as f32 / (self.subframes - 1) as f32 - 0.5)
            } else {
                0.0
            };
            let (parts, pose, attach) = self.parts(if i == middle { t } else { t + dt });
            let mut canvas = empty.clone();
            canvas.draw_all(&parts, offset);
            for (s, v) in sum.iter_mut().zip(&canvas.rgb) {
                *s += v;
            }
            if i == middle {
                centre = Some((canvas, parts, pose, attach));
            }
        }
        let n = self.subframes as f32;
        let mut rgb: Vec<f32> = sum.into_iter().map(|s| s / n).collect();
        let (canvas, parts, pose, attach) = centre.expect("subframes is odd and at least 1");
        let keypoints: Keypoints = pose.keypoints.map(|[x, y]| [x + offset[0], y + offset[1]]);
        let mut visibility: Visibility = [0; NUM_KEYPOINTS];
        for j in 0..NUM_KEYPOINTS {
            visibility[j] = visible(&canvas, &parts, &attach, j, keypoints[j]);
        }
        if self.defocus > 0.0 {
            rgb = defocus(&rgb, self.width, self.height, self.defocus);
        }
        (
            rgb,
            PoseLabel {
                keypoints,
                visibility,
            },
            canvas,
        )
    }
}

/// COCO's flag for keypoint `j` at `p` (frame pixels): 0 outside the frame; 1 when the part on
/// top at its pixel is not one of its own and is nearer than it; else 2.
fn visible(canvas: &Canvas, parts: &[Part], attach: &Attachments, j: usize, p: [f32; 2]) -> u8 {
    let inside =
        p[0] >= 0.0 && p[1] >= 0.0 && p[0] < canvas.width as f32 && p[1] < canvas.height as f32;
    if !inside {
        return 0;
    }
    let x = super::render::clamp_index(p[0].floor(), canvas.width - 1);
    let y = super::render::clamp_index(p[1].floor(), canvas.height - 1);
    let top = canvas.top[y * canvas.width + x];
    if top == EMPTY {
        return 2;
    }
    let own = top < 32 && attach.mask[j] & (1 << top) != 0;
    if !own && parts[usize::from(top)].depth < attach.depth[j] {
        1
    } else {
        2
    }
}
