//! The rasteriser: shapes (capsules, discs, convex polygons) with signed distances, their
//! textures, a painter's algorithm that also records which part is on top at every pixel, the
//! textured background and the defocus kernel.
//!
//! Pixel `(x, y)` covers `[x, x + 1) × [y, y + 1)` and is sampled at its centre
//! `(x + 0.5, y + 0.5)`. A frame translated by the camera by `offset` samples the world at
//! `(x + 0.5, y + 0.5) − offset`, so that whole-pixel offsets shift the image exactly.
//! Colours are `f32` on the 0..255 scale until [`quantise`].

use std::f32::consts::TAU;

use crate::rng::SplitMix64;

/// No part covers the pixel.
pub(super) const EMPTY: u16 = u16::MAX;

/// A shape in world pixels.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// All points within `radius` of the segment `a`–`b`.
    Capsule {
        a: [f32; 2],
        b: [f32; 2],
        radius: f32,
    },
    /// All points within `radius` of `centre`.
    Disc { centre: [f32; 2], radius: f32 },
    /// A convex polygon, either winding.
    Polygon(Vec<[f32; 2]>),
}

fn sub(p: [f32; 2], q: [f32; 2]) -> [f32; 2] {
    [p[0] - q[0], p[1] - q[1]]
}

fn dot(p: [f32; 2], q: [f32; 2]) -> f32 {
    p[0] * q[0] + p[1] * q[1]
}

fn norm(p: [f32; 2]) -> f32 {
    dot(p, p).sqrt()
}

/// `v` as an index in `0..=n`: negative values give 0.
pub(super) fn clamp_index(v: f32, n: usize) -> usize {
    // The value is clamped to [0, n] first, so neither sign nor size is lost.
    #[allow(clippy::cast_sign_loss)]
    let i = v.clamp(0.0, n as f32) as usize;
    i.min(n)
}

impl Shape {
    /// `[x0, y0, x1, y1]`, enclosing the shape.
    fn bounds(&self) -> [f32; 4] {
        match self {
            Shape::Capsule { a, b, radius } => [
                a[0].min(b[0]) - radius,
                a[1].min(b[1]) - radius,
                a[0].max(b[0]) + radius,
                a[1].max(b[1]) + radius,
            ],
            Shape::Disc { centre, radius } => [
                centre[0] - radius,
                centre[1] - radius,
                centre[0] + radius,
                centre[1] + radius,
            ],
            Shape::Polygon(points) => points.iter().fold(
                [
                    f32::INFINITY,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                ],
                |[x0, y0, x1, y1], p| [x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])],
            ),
        }
    }

    /// The signed distance from `p` (negative inside), and how far `p` is from the shape's axis
    /// towards its rim (0 on the axis, 1 on the rim; 0 for polygons), for shading.
    pub(super) fn distance(&self, p: [f32; 2]) -> (f32, f32) {
        match self {
            Shape::Capsule { a, b, radius } => {
                let ab = sub(*b, *a);
                let ap = sub(p, *a);
                let len2 = dot(ab, ab);
                let t = if len2 > 0.0 {
                    (dot(ap, ab) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = norm([ap[0] - t * ab[0], ap[1] - t * ab[1]]);
                (d - radius, (d / radius).min(1.0))
            }
            Shape::Disc { centre, radius } => {
                let d = norm(sub(p, *centre));
                (d - radius, (d / radius).min(1.0))
            }
            Shape::Polygon(points) => {
                let count = points.len();
                let area: f32 = (0..count)
                    .map(|i| {
                        let (from, to) = (points[i], points[(i + 1) % count]);
                        from[0] * to[1] - to[0] * from[1]
                    })
                    .sum();
                let sign = if area < 0.0 { -1.0 } else { 1.0 };
                let d = (0..count)
                    .map(|i| {
                        let (from, to) = (points[i], points[(i + 1) % count]);
                        let edge = sub(to, from);
                        let len = norm(edge);
                        if len > 0.0 {
                            sign * dot(sub(p, from), [edge[1], -edge[0]]) / len
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .fold(f32::NEG_INFINITY, f32::max);
                (d, 0.0)
            }
        }
    }
}

/// A texture: stripes between two colours along an axis, shading towards the rim and per-pixel
/// noise.
#[derive(Debug, Clone)]
pub(super) struct Paint {
    pub(super) base: [f32; 3],
    alt: [f32; 3],
    period: f32,
    phase: f32,
    noise: f32,
    seed: u32,
}

/// A random colour with channels in `[lo, hi)`.
pub(super) fn random_colour(rng: &mut SplitMix64, lo: f32, hi: f32) -> [f32; 3] {
    [(); 3].map(|()| rng.between([lo, hi]))
}

impl Paint {
    /// A random texture on `base`: a stripe colour `base × k` with `k` within `contrast` of 1,
    /// a stripe period of 2–8 pixels, noise of up to ±10.
    pub(super) fn random(rng: &mut SplitMix64, base: [f32; 3], contrast: f32) -> Self {
        let k = rng.between([1.0 - contrast, 1.0 + contrast]);
        let alt = base.map(|c| (c * k).min(255.0));
        Self {
            base,
            alt,
            period: rng.between([2.0, 8.0]),
            phase: rng.between([0.0, TAU]),
            noise: rng.between([0.0, 10.0]),
            seed: (rng.next_u64() >> 32) as u32,
        }
    }

    /// A random texture on a random colour (channels in 20..235).
    pub(super) fn any(rng: &mut SplitMix64, contrast: f32) -> Self {
        let base = random_colour(rng, 20.0, 235.0);
        Self::random(rng, base, contrast)
    }

    /// A flat colour.
    pub(super) fn flat(base: [f32; 3]) -> Self {
        Self {
            base,
            alt: base,
            period: 1.0,
            phase: 0.0,
            noise: 0.0,
            seed: 0,
        }
    }

    /// The colour at stripe coordinate `s`, rim fraction `edge`, world point `p`.
    pub(super) fn colour(&self, s: f32, edge: f32, p: [f32; 2]) -> [f32; 3] {
        let w = 0.5 + 0.5 * libm::sinf(TAU * s / self.period + self.phase);
        let shade = 1.0 - 0.3 * edge * edge;
        let n = self.noise * hash(p[0].floor(), p[1].floor(), self.seed);
        [0, 1, 2].map(|c| (self.base[c] + (self.alt[c] - self.base[c]) * w) * shade + n)
    }
}

/// Noise in `[-1, 1)` from a world cell and a seed.
fn hash(x: f32, y: f32, seed: u32) -> f32 {
    // Cells are small integers stored exactly in f32; the casts saturate outside i32.
    #[allow(clippy::cast_possible_truncation)]
    let (x, y) = (x as i32, y as i32);
    let mut h = u32::from_ne_bytes(x.to_ne_bytes()).wrapping_mul(0x9e37_79b1)
        ^ u32::from_ne_bytes(y.to_ne_bytes()).wrapping_mul(0x85eb_ca77)
        ^ seed.wrapping_mul(0xc2b2_ae3d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^= h >> 15;
    (h >> 8) as f32 / (1_u32 << 23) as f32 - 1.0
}

/// A part of the scene: a shape, its texture, its depth (smaller is nearer) and the frame of its
/// stripes (an origin and a unit axis).
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) shape: Shape,
    pub(super) paint: Paint,
    pub(super) depth: f32,
    pub(super) origin: [f32; 2],
    pub(super) axis: [f32; 2],
}

impl Part {
    /// A part whose stripes run along `axis` from `origin`.
    pub(super) fn new(
        shape: Shape,
        paint: Paint,
        depth: f32,
        origin: [f32; 2],
        axis: [f32; 2],
    ) -> Self {
        Self {
            shape,
            paint,
            depth,
            origin,
            axis,
        }
    }

    /// A capsule striped along its own axis.
    pub(super) fn capsule(a: [f32; 2], b: [f32; 2], radius: f32, paint: Paint, depth: f32) -> Self {
        let ab = sub(b, a);
        let len = norm(ab);
        let axis = if len > 0.0 {
            [ab[0] / len, ab[1] / len]
        } else {
            [0.0, 1.0]
        };
        Self::new(Shape::Capsule { a, b, radius }, paint, depth, a, axis)
    }

    /// A disc.
    pub(super) fn disc(centre: [f32; 2], radius: f32, paint: Paint, depth: f32) -> Self {
        Self::new(
            Shape::Disc { centre, radius },
            paint,
            depth,
            centre,
            [0.0, 1.0],
        )
    }

    /// The part's colour at world point `p`.
    #[cfg(test)]
    pub(super) fn colour_at(&self, p: [f32; 2]) -> [f32; 3] {
        let (_, edge) = self.shape.distance(p);
        self.paint
            .colour(dot(sub(p, self.origin), self.axis), edge, p)
    }
}

/// A textured background: a gradient between two colours, faint stripes and soft blobs.
#[derive(Debug, Clone)]
pub(super) struct Background {
    colours: [[f32; 3]; 2],
    origin: [f32; 2],
    /// The gradient's direction divided by its length.
    gradient: [f32; 2],
    stripe: [f32; 2],
    stripe_phase: f32,
    stripe_amp: f32,
    /// Centre, radius, colour, opacity.
    blobs: Vec<([f32; 2], f32, [f32; 3], f32)>,
}

impl Background {
    /// A random background for a `width × height` frame.
    pub(super) fn new(rng: &mut SplitMix64, width: usize, height: usize) -> Self {
        let (w, h) = (width as f32, height as f32);
        let size = w.max(h);
        let colours = [(); 2].map(|()| random_colour(rng, 20.0, 235.0));
        let angle = rng.between([0.0, TAU]);
        let span = size * rng.between([0.6, 2.0]);
        let gradient = [libm::cosf(angle) / span, libm::sinf(angle) / span];
        let angle = rng.between([0.0, TAU]);
        let period = rng.between([4.0, 24.0]);
        let stripe = [libm::cosf(angle) / period, libm::sinf(angle) / period];
        let blobs = (0..3 + rng.below(6))
            .map(|_| {
                (
                    [
                        rng.between([-0.2 * w, 1.2 * w]),
                        rng.between([-0.2 * h, 1.2 * h]),
                    ],
                    size * rng.between([0.05, 0.3]),
                    random_colour(rng, 10.0, 245.0),
                    rng.between([0.3, 0.9]),
                )
            })
            .collect();
        Self {
            colours,
            origin: [w / 2.0, h / 2.0],
            gradient,
            stripe,
            stripe_phase: rng.between([0.0, TAU]),
            stripe_amp: rng.between([0.0, 18.0]),
            blobs,
        }
    }

    /// The colour at world point `p`.
    pub(super) fn at(&self, p: [f32; 2]) -> [f32; 3] {
        let rel = sub(p, self.origin);
        let mix = (0.5 + dot(rel, self.gradient)).clamp(0.0, 1.0);
        let stripes = self.stripe_amp * libm::sinf(TAU * dot(p, self.stripe) + self.stripe_phase);
        let [c0, c1] = self.colours;
        let mut colour_at = [0, 1, 2].map(|i| c0[i] + (c1[i] - c0[i]) * mix + stripes);
        for &(centre, radius, colour, opacity) in &self.blobs {
            let d = norm(sub(p, centre));
            let alpha = opacity * ((radius - d) / (0.3 * radius)).clamp(0.0, 1.0);
            if alpha > 0.0 {
                for i in 0..3 {
                    colour_at[i] += (colour[i] - colour_at[i]) * alpha;
                }
            }
        }
        colour_at
    }
}

/// An RGB image in `f32` with, per pixel, the index of the part on top (or [`EMPTY`]).
#[derive(Debug, Clone)]
pub(super) struct Canvas {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) rgb: Vec<f32>,
    pub(super) top: Vec<u16>,
}

impl Canvas {
    /// The background seen through a camera translated by `offset`.
    pub(super) fn new(
        width: usize,
        height: usize,
        background: &Background,
        offset: [f32; 2],
    ) -> Self {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let p = [x as f32 + 0.5 - offset[0], y as f32 + 0.5 - offset[1]];
                rgb.extend_from_slice(&background.at(p));
            }
        }
        Self {
            width,
            height,
            rgb,
            top: vec![EMPTY; width * height],
        }
    }

    /// Draws `parts` back to front (largest depth first; ties in list order), recording at each
    /// pixel the index of the part that covers its centre last.
    pub(super) fn draw_all(&mut self, parts: &[Part], offset: [f32; 2]) {
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by(|&i, &j| parts[j].depth.total_cmp(&parts[i].depth));
        for i in order {
            // Scenes hold a few dozen parts.
            #[allow(clippy::cast_possible_truncation)]
            self.draw(i as u16, &parts[i], offset);
        }
    }

    /// Draws one part with an antialiased edge (coverage from the signed distance at the pixel
    /// centre); it is on top where it covers the centre.
    fn draw(&mut self, index: u16, part: &Part, offset: [f32; 2]) {
        let [x0, y0, x1, y1] = part.shape.bounds();
        let xs = clamp_index(x0 + offset[0] - 1.0, self.width)
            ..clamp_index(x1 + offset[0] + 2.0, self.width);
        let ys = clamp_index(y0 + offset[1] - 1.0, self.height)
            ..clamp_index(y1 + offset[1] + 2.0, self.height);
        for y in ys {
            for x in xs.clone() {
                let p = [x as f32 + 0.5 - offset[0], y as f32 + 0.5 - offset[1]];
                let (d, edge) = part.shape.distance(p);
                let cover = (0.5 - d).clamp(0.0, 1.0);
                if cover <= 0.0 {
                    continue;
                }
                let colour = part
                    .paint
                    .colour(dot(sub(p, part.origin), part.axis), edge, p);
                let at = y * self.width + x;
                for (c, v) in self.rgb[3 * at..3 * at + 3].iter_mut().zip(colour) {
                    *c = if cover >= 1.0 {
                        v
                    } else {
                        *c + (v - *c) * cover
                    };
                }
                if d <= 0.0 {
                    self.top[at] = index;
                }
            }
        }
    }
}

/// `rgb` blurred by a disc of `radius` pixels (soft-edged), edges clamped.
pub(super) fn defocus(rgb: &[f32], width: usize, height: usize, radius: f32) -> Vec<f32> {
    let reach = clamp_index(radius.ceil(), 64);
    let mut taps = Vec::new();
    #[allow(clippy::cast_possible_wrap)] // `reach` is at most 64.
    let r = reach as isize;
    for dy in -r..=r {
        for dx in -r..=r {
            let d = ((dx * dx + dy * dy) as f32).sqrt();
            let w = (radius + 0.5 - d).clamp(0.0, 1.0);
            if w > 0.0 {
                taps.push((dx, dy, w));
            }
        }
    }
    let total: f32 = taps.iter().map(|t| t.2).sum();
    let mut out = vec![0.0; rgb.len()];
    #[allow(clippy::cast_possible_wrap)] // Sides are at most MAX_SIDE.
    let (w, h) = (width as isize, height as isize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0_f32; 3];
            for &(dx, dy, weight) in &taps {
                // Clamped to the image, so non-negative.
                #[allow(clippy::cast_sign_loss)]
                let at = ((y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1)) as usize * 3;
                for c in 0..3 {
                    acc[c] += weight * rgb[at + c];
                }
            }
            #[allow(clippy::cast_sign_loss)] // x and y are non-negative.
            let at = (y * w + x) as usize * 3;
            for c in 0..3 {
                out[at + c] = acc[c] / total;
            }
        }
    }
    out
}

/// `f32` colours rounded to bytes, clamped to 0..=255.
pub(super) fn quantise(rgb: &[f32]) -> Vec<u8> {
    // Clamped to [0, 255.5) first.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    rgb.iter()
        .map(|&v| (v.clamp(0.0, 255.0) + 0.5) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capsule_colours_its_pixels_and_leaves_the_background() {
        let mut rng = SplitMix64(3);
        let background = Background::new(&mut rng, 40, 30);
        let mut canvas = Canvas::new(40, 30, &background, [0.0, 0.0]);
        let before = canvas.rgb.clone();
        let red = Paint::random(&mut rng, [220.0, 20.0, 20.0], 0.4);
        let limb = Part::capsule([10.0, 10.0], [20.0, 12.0], 2.5, red, 0.0);
        canvas.draw_all(std::slice::from_ref(&limb), [0.0, 0.0]);
        // The midpoint (15, 11) lies in pixel (14, 10) or (15, 11): take the pixel it is in.
        let at = (11 * 40 + 15) * 3;
        let expected = limb.colour_at([15.5, 11.5]);
        assert_eq!(&canvas.rgb[at..at + 3], &expected);
        assert!(
            canvas.rgb[at] > canvas.rgb[at + 1] + 40.0,
            "{:?}",
            &canvas.rgb[at..at + 3]
        );
        assert_eq!(canvas.top[11 * 40 + 15], 0);
        // Far from the limb nothing changed.
        let far = (25 * 40 + 35) * 3;
        assert_eq!(&canvas.rgb[far..far + 3], &before[far..far + 3]);
        assert_eq!(canvas.top[25 * 40 + 35], EMPTY);
    }

    #[test]
    fn polygon_distance_is_negative_inside_for_either_winding() {
        let square = vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]];
        let mut reversed = square.clone();
        reversed.reverse();
        for points in [square, reversed] {
            let shape = Shape::Polygon(points);
            assert!((shape.distance([2.0, 2.0]).0 + 2.0).abs() < 1e-6);
            assert!((shape.distance([6.0, 2.0]).0 - 2.0).abs() < 1e-6);
        }
    }

    #[test]
    fn defocus_keeps_flat_images_and_spreads_a_dot() {
        let flat = vec![100.0; 8 * 6 * 3];
        assert!(
            defocus(&flat, 8, 6, 2.0)
                .iter()
                .all(|&v| (v - 100.0).abs() < 1e-3)
        );
        let mut dot = vec![0.0; 8 * 6 * 3];
        dot[(3 * 8 + 4) * 3] = 255.0;
        let out = defocus(&dot, 8, 6, 1.5);
        assert!(out[(3 * 8 + 4) * 3] < 255.0 && out[(3 * 8 + 5) * 3] > 0.0);
    }
}
