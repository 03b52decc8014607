//! Face stack timings on the CPU (burn's `flex`): MTCNN on a 12-megapixel photo, and one dlib
//! embedding (chip → 128-d). Prints figures; asserts nothing about time.
//!
//! `FUSELAB_DATA_DIR=… cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab
//! --bench face` (after `fuselab models fetch`).

// Coordinates here are non-negative by construction.
#![allow(clippy::cast_sign_loss)]

use std::{path::PathBuf, time::Instant};

use burn::tensor::Device;
use fuselab::{
    face::{load_photo, load_stack},
    models::require,
};
use fuselab_ml::face::RgbImage;

/// Scales a photo to `width`×`height` by bilinear interpolation (a stand-in for a phone photo
/// of the same scene).
fn resize(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    let mut pixels = Vec::with_capacity(width * height * 3);
    let (sx, sy) = (
        (image.width - 1) as f64 / (width - 1) as f64,
        (image.height - 1) as f64 / (height - 1) as f64,
    );
    for y in 0..height {
        let fy = y as f64 * sy;
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(image.height - 1);
        for x in 0..width {
            let fx = x as f64 * sx;
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(image.width - 1);
            let (a, b, c, d) = (
                image.get(x0, y0),
                image.get(x1, y0),
                image.get(x0, y1),
                image.get(x1, y1),
            );
            for k in 0..3 {
                let top = f64::from(a[k]) * (1.0 - tx) + f64::from(b[k]) * tx;
                let bottom = f64::from(c[k]) * (1.0 - tx) + f64::from(d[k]) * tx;
                pixels.push((top * (1.0 - ty) + bottom * ty).round() as u8);
            }
        }
    }
    RgbImage::new(width, height, pixels).expect("sizes match")
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

fn main() {
    let data_dir = PathBuf::from(
        std::env::var_os("FUSELAB_DATA_DIR")
            .expect("set FUSELAB_DATA_DIR to a data directory after `fuselab models fetch`"),
    );
    let stack = load_stack(&data_dir, Device::flex()).expect("the face models");
    let photo = load_photo(&require(&data_dir, "photos/obama3.jpg").expect("the test photos"))
        .expect("obama3.jpg");
    let big = resize(&photo, 3000, 4000);
    println!(
        "face stack on the CPU (burn flex), {} threads available",
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    let mut detect = Vec::new();
    let mut faces = 0;
    for _ in 0..3 {
        let start = Instant::now();
        faces = stack.mtcnn.detect(&big, &stack.device).len();
        detect.push(start.elapsed().as_secs_f64());
    }
    println!(
        "MTCNN detection, 3000×4000 (12.0 MP): median {:.2} s of 3 ({faces} face)",
        median(detect)
    );
    let mut small = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        stack.mtcnn.detect(&photo, &stack.device);
        small.push(start.elapsed().as_secs_f64());
    }
    println!(
        "MTCNN detection, {}×{} ({:.1} MP): median {:.3} s of 3",
        photo.width,
        photo.height,
        (photo.width * photo.height) as f64 / 1e6,
        median(small)
    );

    let found = stack.faces(&photo);
    let chip = fuselab_ml::face::chip::extract(
        &photo,
        &fuselab_ml::face::chip::placement(
            &std::array::from_fn(|k| [found[0].parts[k][0] as f64, found[0].parts[k][1] as f64]),
            150,
            0.25,
        ),
    );
    let mut embed = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let out = stack.dlib.forward(chip.to_tensor(&stack.device));
        let _ = out.into_data();
        embed.push(start.elapsed().as_secs_f64());
    }
    println!(
        "dlib ResNet-29 embedding, one 150×150 chip: median {:.1} ms of 10",
        median(embed) * 1e3
    );
    let input = fuselab_ml::face::faceres::resize_bilinear(&chip, 224, &stack.device);
    let mut second = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let _ = stack.faceres.forward(input.clone()).into_data();
        second.push(start.elapsed().as_secs_f64());
    }
    println!(
        "faceres (MobileNet-v1) embedding, one 224×224 input: median {:.1} ms of 10",
        median(second) * 1e3
    );
    let mut whole = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let _ = stack.faces(&photo);
        whole.push(start.elapsed().as_secs_f64());
    }
    println!(
        "detect + landmarks + chip + both embeddings, obama3.jpg: median {:.3} s of 3",
        median(whole)
    );
}
