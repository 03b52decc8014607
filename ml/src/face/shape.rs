//! dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014), read from
//! `shape_predictor_5_face_landmarks.dat` and run as dlib 19.24 runs it, so that the landmarks,
//! and with them the face chips, match dlib's to the pixel.

use super::RgbImage;
use super::dlib::{DlibError, Reader};

/// A split node: compares two feature pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Split {
    idx1: usize,
    idx2: usize,
    thresh: f32,
}

#[derive(Debug, Clone, PartialEq)]
struct Tree {
    splits: Vec<Split>,
    leaves: Vec<Vec<f32>>,
}

impl Tree {
    fn leaf(&self, features: &[f32]) -> &[f32] {
        let mut i = 0;
        while i < self.splits.len() {
            let s = self.splits[i];
            i = if features[s.idx1] - features[s.idx2] > s.thresh {
                2 * i + 1
            } else {
                2 * i + 2
            };
        }
        &self.leaves[i - self.splits.len()]
    }
}

/// A face rectangle in dlib's convention: inclusive corners, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub left: i64,
    /// Top row.
    pub top: i64,
    /// Right column (inclusive).
    pub right: i64,
    /// Bottom row (inclusive).
    pub bottom: i64,
}

/// A trained shape predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePredictor {
    initial: Vec<f32>,
    cascade: Vec<Vec<Tree>>,
    anchors: Vec<Vec<usize>>,
    deltas: Vec<Vec<[f32; 2]>>,
}

const FILE: &str = "shape_predictor_5_face_landmarks.dat";

fn vec_of<'a, T>(
    r: &mut Reader<'a>,
    what: &str,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T, DlibError>,
) -> Result<Vec<T>, DlibError> {
    let n = r.size(what)?;
    (0..n).map(|_| item(r)).collect()
}

impl ShapePredictor {
    /// Reads a shape predictor from the bytes of its `.dat` file.
    ///
    /// # Errors
    /// A [`DlibError`] naming the offset of the first value that is not what dlib writes there.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DlibError> {
        let mut r = Reader::new(bytes, FILE);
        let version = r.int()?;
        if version != 1 {
            return Err(r.invalid(format!("shape_predictor version {version}, expected 1")));
        }
        let initial = r.column()?;
        let parts = initial.len() / 2;
        let cascade = vec_of(&mut r, "cascade length", |r| {
            vec_of(r, "forest size", |r| {
                let splits = vec_of(r, "split count", |r| {
                    Ok(Split {
                        idx1: r.size("split feature")?,
                        idx2: r.size("split feature")?,
                        thresh: r.float()? as f32,
                    })
                })?;
                let leaves = vec_of(r, "leaf count", Reader::column)?;
                Ok(Tree { splits, leaves })
            })
        })?;
        let anchors = vec_of(&mut r, "anchor levels", |r| {
            vec_of(r, "anchor count", |r| r.size("anchor index"))
        })?;
        let deltas = vec_of(&mut r, "delta levels", |r| {
            vec_of(r, "delta count", |r| {
                Ok([r.float()? as f32, r.float()? as f32])
            })
        })?;
        if !r.at_end() {
            return Err(r.invalid("bytes left after the shape predictor"));
        }
        let features = deltas.first().map_or(0, Vec::len);
        let consistent = initial.len() == parts * 2
            && anchors.len() == cascade.len()
            && deltas.len() == cascade.len()
            && anchors.iter().zip(&deltas).all(|(a, d)| {
                a.len() == features && d.len() == features && a.iter().all(|&i| i < parts)
            })
            && cascade.iter().flatten().all(|t| {
                t.leaves.len() == t.splits.len() + 1
                    && t.leaves.iter().all(|l| l.len() == initial.len())
                    && t.splits
                        .iter()
                        .all(|s| s.idx1 < features && s.idx2 < features)
            });
        if !consistent {
            return Err(r.invalid("the trees, anchors and deltas do not fit together"));
        }
        Ok(Self {
            initial,
            cascade,
            anchors,
            deltas,
        })
    }

    /// A face rectangle that puts the mean shape's eye centres (the midpoints of parts 0–1 and
    /// 2–3) on the given eye centres: how a detector that finds eyes (MTCNN) hands a face to the
    /// predictor, which dlib trained on its own detectors' boxes. Eyes as `(x, y)`, image-left
    /// first.
    pub fn rect_for_eyes(&self, left: [f32; 2], right: [f32; 2]) -> Option<Rect> {
        if self.parts() != 5 {
            return None;
        }
        let p = &self.initial;
        let mid = |a: usize, b: usize| {
            [
                f32::midpoint(p[2 * a], p[2 * b]),
                f32::midpoint(p[2 * a + 1], p[2 * b + 1]),
            ]
        };
        // Parts 2–3 are the eye on the image's left, 0–1 the one on its right.
        let (ul, ur) = (mid(2, 3), mid(0, 1));
        let unit = (ur[0] - ul[0]).hypot(ur[1] - ul[1]);
        let side = (right[0] - left[0]).hypot(right[1] - left[1]) / unit;
        if !side.is_finite() || side < 1.0 {
            return None;
        }
        let left_x = f32::midpoint(left[0], right[0]) - side * f32::midpoint(ul[0], ur[0]);
        let top_y = f32::midpoint(left[1], right[1]) - side * f32::midpoint(ul[1], ur[1]);
        let round = |v: f32| i64::from(v.round() as i32);
        Some(Rect {
            left: round(left_x),
            top: round(top_y),
            right: round(left_x + side),
            bottom: round(top_y + side),
        })
    }

    /// The number of landmarks.
    pub fn parts(&self) -> usize {
        self.initial.len() / 2
    }

    /// The landmarks of the face in `rect`, in whole pixels as dlib returns them.
    pub fn predict(&self, image: &RgbImage, rect: Rect) -> Vec<[i64; 2]> {
        let mut shape = self.initial.clone();
        let to_image = Affine::unnormalizing(rect);
        let mut features = Vec::new();
        for (level, forest) in self.cascade.iter().enumerate() {
            let initial: Vec<f64> = self.initial.iter().map(|&v| f64::from(v)).collect();
            let current: Vec<f64> = shape.iter().map(|&v| f64::from(v)).collect();
            let m = similarity(&initial, &current).m;
            let m = m.map(|v| v as f32);
            features.clear();
            for (&anchor, delta) in self.anchors[level].iter().zip(&self.deltas[level]) {
                let x = m[0] * delta[0] + m[1] * delta[1] + shape[2 * anchor];
                let y = m[2] * delta[0] + m[3] * delta[1] + shape[2 * anchor + 1];
                let [px, py] = to_image.apply_rounded([f64::from(x), f64::from(y)]);
                let inside = px >= 0
                    && py >= 0
                    && (px as usize) < image.width
                    && (py as usize) < image.height;
                features.push(if inside {
                    intensity(image.get(px as usize, py as usize))
                } else {
                    0.0
                });
            }
            for tree in forest {
                for (s, d) in shape.iter_mut().zip(tree.leaf(&features)) {
                    *s += d;
                }
            }
        }
        shape
            .chunks_exact(2)
            .map(|p| to_image.apply_rounded([f64::from(p[0]), f64::from(p[1])]))
            .collect()
    }
}

/// dlib's `get_pixel_intensity` for RGB: the integer mean of the channels.
fn intensity([r, g, b]: [u8; 3]) -> f32 {
    f32::from(((u16::from(r) + u16::from(g) + u16::from(b)) / 3) as u8)
}

/// A 2-D affine map `p ↦ m·p + b` (`m` row-major).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// The linear part, row-major.
    pub m: [f64; 4],
    /// The translation.
    pub b: [f64; 2],
}

impl Affine {
    /// Maps a point.
    pub fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [
            self.m[0] * x + self.m[1] * y + self.b[0],
            self.m[2] * x + self.m[3] * y + self.b[1],
        ]
    }

    /// Maps a point and rounds it to whole pixels, as dlib converts to `point`.
    fn apply_rounded(&self, p: [f64; 2]) -> [i64; 2] {
        let [x, y] = self.apply(p);
        [(x + 0.5).floor() as i64, (y + 0.5).floor() as i64]
    }

    /// dlib's `unnormalizing_tform`: the unit square onto the rectangle's corners.
    fn unnormalizing(rect: Rect) -> Self {
        let (w, h) = (
            (rect.right - rect.left) as f64,
            (rect.bottom - rect.top) as f64,
        );
        Self {
            m: [w, 0.0, 0.0, h],
            b: [rect.left as f64, rect.top as f64],
        }
    }
}

/// The least-squares similarity transform (rotation, uniform scale, translation) taking the
/// points `from` onto `to` (Umeyama 1991; dlib's `find_similarity_transform`). Points are
/// interleaved `x, y`.
pub fn similarity(from: &[f64], to: &[f64]) -> Affine {
    let n = (from.len() / 2) as f64;
    let mean = |p: &[f64], k: usize| p.iter().skip(k).step_by(2).sum::<f64>() / n;
    let (fx, fy, tx, ty) = (mean(from, 0), mean(from, 1), mean(to, 0), mean(to, 1));
    let (mut var, mut a, mut b) = (0.0, 0.0, 0.0);
    for (f, t) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        let (x, y) = (f[0] - fx, f[1] - fy);
        let (u, v) = (t[0] - tx, t[1] - ty);
        var += x * x + y * y;
        a += x * u + y * v;
        b += x * v - y * u;
    }
    if var == 0.0 {
        return Affine {
            m: [1.0, 0.0, 0.0, 1.0],
            b: [tx - fx, ty - fy],
        };
    }
    let (c, s) = (a / var, b / var);
    Affine {
        m: [c, -s, s, c],
        b: [tx - (c * fx - s * fy), ty - (s * fx + c * fy)],
    }
}
