//! The co-failure kernel on a real Vulkan device (Mesa's lavapipe where there is no GPU)
//! against its CPU twin.

use fuselab_shaders::{Gpu, cofailure::CofailureKernel};
use fuselab_shared::{FailureMasks, ModelPredictions, PredictionTable};

fn pool(models: usize, samples: usize, seed: u32) -> PredictionTable {
    let mut state = seed;
    let mut next = move |n: u32| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state % n
    };
    let labels: Vec<u32> = (0..samples).map(|_| next(4)).collect();
    PredictionTable {
        models: (0..models)
            .map(|m| ModelPredictions {
                name: format!("model{m}"),
                // Model m is right about (m + 1) / (models + 1) of the time on average.
                predictions: labels
                    .iter()
                    .map(|&y| {
                        if next(models as u32 + 1) <= m as u32 {
                            y
                        } else {
                            next(4)
                        }
                    })
                    .collect(),
            })
            .collect(),
        labels,
    }
}

#[test]
fn gpu_matches_cpu_twin_on_vulkan() {
    let gpu = pollster::block_on(Gpu::request(wgpu::Backends::VULKAN))
        .expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!("adapter: {}", gpu.adapter);
    let kernel = pollster::block_on(CofailureKernel::new(&gpu)).unwrap();
    // Sizes cover partial words, partial workgroups and more than one workgroup per side.
    for (models, samples, seed) in [(2, 1, 7), (3, 33, 11), (9, 1000, 13), (17, 4099, 17)] {
        let masks = FailureMasks::from_table(&pool(models, samples, seed));
        let gpu_counts = pollster::block_on(kernel.run(&gpu, &masks)).unwrap();
        let cpu_counts = masks.cofailure_counts();
        assert_eq!(
            gpu_counts, cpu_counts,
            "{models} models × {samples} samples"
        );
        if samples > 100 {
            assert!(
                cpu_counts.iter().all(|&c| c > 0),
                "every pair of models fails together somewhere"
            );
        }
    }
}

/// The team-sums kernel against `FocalTable::team_sums`, and the focal diversity it leads to
/// against the CPU's, bit for bit.
#[test]
fn team_sums_match_cpu_twin_on_vulkan() {
    use fuselab_shaders::team_sums::TeamSumsKernel;
    use fuselab_shared::ensemble::{FocalTable, Pool, PoolInput, Teams};

    let gpu = pollster::block_on(Gpu::request(wgpu::Backends::VULKAN))
        .expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)");
    let kernel = pollster::block_on(TeamSumsKernel::new(&gpu)).unwrap();
    for (models, samples, seed) in [(2, 5, 3), (5, 300, 5), (11, 2000, 9)] {
        let table = pool(models, samples, seed);
        let pool = Pool::new(PoolInput::from(&table)).unwrap();
        let focal = FocalTable::new(&pool);
        let masks = 1_u32 << models;
        // Two dispatches, the second starting mid-range, as a chunked run does.
        let half = masks / 2;
        let mut gpu_sums = pollster::block_on(kernel.run(&gpu, &focal, 0, half)).unwrap();
        gpu_sums.extend(pollster::block_on(kernel.run(&gpu, &focal, half, masks - half)).unwrap());
        assert_eq!(gpu_sums, focal.team_sums(0, masks), "{models} models");
        for members in Teams::new(models, 2, models) {
            let mask: usize = members.iter().map(|&m| 1 << m).sum();
            let row: Vec<(u64, u64)> = (0..members.len())
                .map(|slot| {
                    let at = (mask * models + slot) * 2;
                    (u64::from(gpu_sums[at]), u64::from(gpu_sums[at + 1]))
                })
                .collect();
            assert_eq!(
                focal.from_sums(&members, &row),
                focal.focal_diversity(&members),
                "{members:?}"
            );
        }
    }
}

/// The mask kernel against `fuselab_shared::mask::apply` on RGBA photos: adding, a partial
/// strength, and removing, with faces at the photo's edges and canvases larger and smaller than
/// the mask.
#[test]
fn apply_mask_matches_cpu_twin_on_vulkan() {
    use fuselab_shaders::apply_mask::ApplyMaskKernel;
    use fuselab_shared::mask::{FaceCanvas, MASK_LEN, apply};

    let gpu = pollster::block_on(Gpu::request(wgpu::Backends::VULKAN))
        .expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)");
    let kernel = pollster::block_on(ApplyMaskKernel::new(&gpu)).unwrap();
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    #[allow(clippy::cast_precision_loss)]
    let delta: Vec<f32> = (0..MASK_LEN)
        .map(|_| (next() % 3201) as f32 / 100.0 - 16.0)
        .collect();
    for (width, height, bbox, strength) in [
        (300, 200, [40.3, 20.7, 180.2, 190.0], 1.0),
        (64, 48, [-5.0, -3.0, 30.0, 60.0], 0.6),
        (500, 400, [100.0, 50.0, 480.0, 399.5], -1.0),
        (40, 40, [10.0, 10.0, 20.0, 22.0], 1.0),
    ] {
        #[allow(clippy::cast_possible_truncation)]
        let photo: Vec<u8> = (0..width * height * 4).map(|_| next() as u8).collect();
        let canvas = FaceCanvas::from_box(bbox, width, height).unwrap();
        let mut cpu = photo.clone();
        apply(&mut cpu, width, 4, &canvas, &delta, strength);
        let mut gpu_photo = photo.clone();
        pollster::block_on(kernel.run(&gpu, &mut gpu_photo, width, &canvas, &delta, strength))
            .unwrap();
        let differing = cpu.iter().zip(&gpu_photo).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing, 0,
            "{width}×{height}, box {bbox:?}: {differing} values differ"
        );
        assert_ne!(cpu, photo, "the mask changed nothing");
    }
}
