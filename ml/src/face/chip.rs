//! Aligned face chips exactly as dlib 19.24 makes them (`get_face_chip_details` and
//! `extract_image_chip`): a similarity transform from the 5 landmarks onto a fixed template, an
//! image pyramid (`pyramid_down<2>`) when the chip is much smaller than the face, then bilinear
//! sampling that truncates to 8 bits.

use super::RgbImage;
use super::shape::{Affine, similarity};

/// dlib's 5-point template, in unit chip coordinates: the outer and inner corners of the right
/// eye, then of the left eye, then the bottom of the nose.
const TEMPLATE_5: [[f64; 2]; 5] = [
    [0.859_567_459_599_2, 0.213_498_153_801_4],
    [0.646_060_476_410_4, 0.228_967_438_767_7],
    [0.120_575_062_078_9, 0.213_727_452_684_8],
    [0.334_085_061_371_2, 0.229_064_240_324_2],
    [0.490_112_313_567_9, 0.627_797_531_647_5],
];

/// dlib's `drectangle`: inclusive corners in real coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    fn area(&self) -> f64 {
        if self.l > self.r || self.t > self.b {
            0.0
        } else {
            (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
        }
    }

    fn center(&self) -> [f64; 2] {
        [f64::midpoint(self.l, self.r), f64::midpoint(self.t, self.b)]
    }

    /// `pyramid_down<2>::rect_down`.
    fn down(&self) -> Self {
        let d = |[x, y]: [f64; 2]| [x / 2.0 - 1.25, y / 2.0 - 0.75];
        let ([l, t], [r, b]) = (d([self.l, self.t]), d([self.r, self.b]));
        Self {
            l: l.min(r),
            t: t.min(b),
            r: l.max(r),
            b: t.max(b),
        }
    }

    fn bounding(points: &[[f64; 2]]) -> Self {
        let fold =
            |k: usize, f: fn(f64, f64) -> f64, init: f64| points.iter().map(|p| p[k]).fold(init, f);
        Self {
            l: fold(0, f64::min, f64::INFINITY),
            t: fold(1, f64::min, f64::INFINITY),
            r: fold(0, f64::max, f64::NEG_INFINITY),
            b: fold(1, f64::max, f64::NEG_INFINITY),
        }
    }
}

/// Where a chip lies in the image: dlib's `chip_details`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipPlacement {
    rect: DRect,
    angle: f64,
    /// The chip's side in pixels.
    pub size: usize,
}

/// dlib's placement of a `size`×`size` chip with `padding` around 5 landmarks (in the order of
/// dlib's 5-point shape predictor).
pub fn placement(parts: &[[f64; 2]; 5], size: usize, padding: f64) -> ChipPlacement {
    let mut from = Vec::with_capacity(10);
    let mut to = Vec::with_capacity(10);
    for (t, p) in TEMPLATE_5.iter().zip(parts) {
        for k in 0..2 {
            from.push((padding + t[k]) / (2.0 * padding + 1.0) * size as f64);
            to.push(p[k]);
        }
    }
    let tform = similarity(&from, &to);
    let (px, py) = (tform.m[0], tform.m[2]);
    let scale = px.hypot(py);
    let half = size as f64 / 2.0;
    let [cx, cy] = tform.apply([half, half]);
    // `centered_drect` shrinks the width by one: inclusive corners.
    let extent = (size as f64 * scale - 1.0) / 2.0;
    ChipPlacement {
        rect: DRect {
            l: cx - extent,
            t: cy - extent,
            r: cx + extent,
            b: cy + extent,
        },
        angle: py.atan2(px),
        size,
    }
}

fn rotate(center: [f64; 2], p: [f64; 2], angle: f64) -> [f64; 2] {
    let (s, c) = angle.sin_cos();
    let (x, y) = (p[0] - center[0], p[1] - center[1]);
    [c * x - s * y + center[0], s * x + c * y + center[1]]
}

/// Extracts the chip as dlib's `extract_image_chip` does (pixels outside the image are black).
pub fn extract(image: &RgbImage, chip: &ChipPlacement) -> RgbImage {
    let size = (chip.size * chip.size) as f64;
    let mut depth = 0;
    let mut grow = 2.0;
    let mut rect = chip.rect.down();
    while rect.area() > size {
        rect = rect.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let r = chip.rect;
    let corners = [[r.l, r.t], [r.r, r.t], [r.l, r.b], [r.r, r.b]];
    let rotated: Vec<[f64; 2]> = corners
        .iter()
        .map(|&p| rotate(r.center(), p, chip.angle))
        .collect();
    let rot = DRect::bounding(&rotated);
    let round = |v: f64| (v + 0.5).floor() as i64;
    // grow_rect, intersect with the image, then dlib's rounding to an integer rectangle.
    let bl = round((rot.l - grow).max(0.0));
    let bt = round((rot.t - grow).max(0.0));
    let br = round((rot.r + grow).min(image.width as f64 - 1.0));
    let bb = round((rot.b + grow).min(image.height as f64 - 1.0));
    let sub = crop(image, bl, bt, br, bb);

    let mut levels: Vec<RgbImage> = Vec::with_capacity(depth);
    for _ in 0..depth {
        let down = pyramid_down(levels.last().unwrap_or(&sub));
        levels.push(down);
    }
    let mut rect = DRect {
        l: r.l - bl as f64,
        t: r.t - bt as f64,
        r: r.r - bl as f64,
        b: r.b - bt as f64,
    };
    let mut level: Option<usize> = None;
    while rect.down().area() > size {
        level = Some(level.map_or(0, |l| l + 1));
        rect = rect.down();
    }
    let source = match level {
        None => &sub,
        Some(l) => levels.get(l).unwrap_or(&sub),
    };
    // The affine map taking the chip's corners (0,0), (n−1,0), (0,n−1) onto the rotated rect.
    let c = rect.center();
    let tl = rotate(c, [rect.l, rect.t], chip.angle);
    let tr = rotate(c, [rect.r, rect.t], chip.angle);
    let bl_ = rotate(c, [rect.l, rect.b], chip.angle);
    let n = (chip.size - 1).max(1) as f64;
    let map = Affine {
        m: [
            (tr[0] - tl[0]) / n,
            (bl_[0] - tl[0]) / n,
            (tr[1] - tl[1]) / n,
            (bl_[1] - tl[1]) / n,
        ],
        b: tl,
    };
    let mut pixels = Vec::with_capacity(chip.size * chip.size * 3);
    for row in 0..chip.size {
        for col in 0..chip.size {
            let [x, y] = map.apply([col as f64, row as f64]);
            pixels.extend(bilinear(source, x, y));
        }
    }
    RgbImage {
        width: chip.size,
        height: chip.size,
        pixels,
    }
}

fn crop(image: &RgbImage, l: i64, t: i64, r: i64, b: i64) -> RgbImage {
    if r < l || b < t {
        return RgbImage {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
    }
    let (l, t, r, b) = (l as usize, t as usize, r as usize, b as usize);
    let width = r - l + 1;
    let mut pixels = Vec::with_capacity(width * (b - t + 1) * 3);
    for y in t..=b {
        let start = (y * image.width + l) * 3;
        pixels.extend_from_slice(&image.pixels[start..start + width * 3]);
    }
    RgbImage {
        width,
        height: b - t + 1,
        pixels,
    }
}

/// The binomial taps of `pyramid_down<2>`.
const TAPS: [u32; 5] = [1, 4, 6, 4, 1];

/// dlib's `pyramid_down<2>` for RGB: a separable [1 4 6 4 1]² filter over the valid region,
/// every other row and column, integer sums divided by 256 (truncating).
pub fn pyramid_down(image: &RgbImage) -> RgbImage {
    if image.height <= 8 || image.width <= 8 {
        return RgbImage {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
    }
    let (w, h) = ((image.width - 3) / 2, (image.height - 3) / 2);
    // Row filter on every input row.
    let mut temp = vec![[0_u32; 3]; image.height * w];
    for y in 0..image.height {
        for c in 0..w {
            let mut sum = [0_u32; 3];
            for (k, tap) in TAPS.iter().enumerate() {
                let px = image.get(2 * c + k, y);
                for ch in 0..3 {
                    sum[ch] += tap * u32::from(px[ch]);
                }
            }
            temp[y * w + c] = sum;
        }
    }
    let mut pixels = Vec::with_capacity(w * h * 3);
    for r in 0..h {
        for c in 0..w {
            let mut sum = [0_u32; 3];
            for (k, tap) in TAPS.iter().enumerate() {
                let v = temp[(2 * r + k) * w + c];
                for ch in 0..3 {
                    sum[ch] += tap * v[ch];
                }
            }
            pixels.extend(sum.map(|s| (s / 256) as u8));
        }
    }
    RgbImage {
        width: w,
        height: h,
        pixels,
    }
}

/// dlib's `interpolate_bilinear` for RGB: black when a neighbour is outside, values truncated.
fn bilinear(image: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (left, top) = (x.floor(), y.floor());
    if left < 0.0
        || top < 0.0
        || left + 1.0 >= image.width as f64
        || top + 1.0 >= image.height as f64
    {
        return [0; 3];
    }
    let (ix, iy) = (left as usize, top as usize);
    let (fx, fy) = (x - left, y - top);
    let (tl, tr, bl, br) = (
        image.get(ix, iy),
        image.get(ix + 1, iy),
        image.get(ix, iy + 1),
        image.get(ix + 1, iy + 1),
    );
    let mut out = [0; 3];
    for c in 0..3 {
        let v = (1.0 - fy) * ((1.0 - fx) * f64::from(tl[c]) + fx * f64::from(tr[c]))
            + fy * ((1.0 - fx) * f64::from(bl[c]) + fx * f64::from(br[c]));
        out[c] = v.clamp(0.0, 255.0) as u8;
    }
    out
}
