//! P3-Mask generation timings on the CPU (burn's `flex`): epochs of the official baseline
//! (batch 4, dlib + faceres, τ 0.03) on the four test faces, one batch per epoch, as
//! `tests/bench/p3mask_torch.py` runs the same objective in PyTorch. Prints figures; asserts
//! nothing about time.
//!
//! `FUSELAB_DATA_DIR=… cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab
//! --bench mask` (after `fuselab models fetch`).

use std::{path::PathBuf, time::Instant};

use burn::tensor::Device;
use fuselab::{face::load_stack, mask::training_face, models::require};
use fuselab_ml::{
    face::FaceEmbedder,
    mask::{MaskConfig, MaskTrainer},
};

const EPOCHS: usize = 5;

fn main() -> anyhow::Result<()> {
    let data_dir =
        PathBuf::from(std::env::var_os("FUSELAB_DATA_DIR").ok_or_else(|| {
            anyhow::anyhow!("set FUSELAB_DATA_DIR to a `models fetch`ed directory")
        })?);
    let device = Device::flex();
    let stack = load_stack(&data_dir, device.clone())?;
    let mut faces = Vec::new();
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let path = require(&data_dir, &format!("photos/{name}"))?;
        let bytes = std::fs::read(&path)?;
        faces.push(training_face(&stack.mtcnn, &stack.device, &bytes, name)?.0);
    }
    let models: Vec<&dyn FaceEmbedder> = vec![&stack.dlib, &stack.faceres];
    let config = MaskConfig {
        epochs: EPOCHS,
        ..MaskConfig::default()
    };
    let mut trainer = MaskTrainer::new(config, models, &faces, None, None, &device)?;
    let mut seconds = Vec::new();
    while !trainer.finished() {
        let started = Instant::now();
        let report = trainer.epoch(&mut |_| {});
        let s = started.elapsed().as_secs_f64();
        println!(
            "epoch {}: {s:.2} s, DSSIM {:.4}, angle dlib {:.3} faceres {:.3} rad, λ {}",
            report.epoch, report.dssim, report.angles[0], report.angles[1], report.lambda
        );
        seconds.push(s);
    }
    let mut warm = seconds[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    let median = warm[warm.len() / 2];
    println!(
        "mask generation (burn flex, CPU): median {median:.2} s per epoch of 4 faces (dlib + faceres), {:.3} s per face-step; 50 epochs of the official baseline on 84 faces ≈ {:.0} min",
        median / 4.0,
        median / 4.0 * 84.0 * 50.0 / 60.0
    );
    Ok(())
}
