//! `fuselab devices`: which compute devices this machine has, and whether each computes correctly.

use std::{process::ExitCode, time::Instant};

use fuselab_ml::Compute;
use fuselab_shaders::{Gpu, cofailure::CofailureKernel};
use fuselab_shared::{FailureMasks, ModelPredictions, PredictionTable};

/// A pool whose co-failure table is easy to check by hand: model `m` fails every sample whose
/// index is a multiple of `m + 2`.
fn check_pool() -> PredictionTable {
    let samples = 10_000_u32;
    PredictionTable {
        labels: vec![0; samples as usize],
        models: (0..4)
            .map(|m| ModelPredictions {
                name: format!("m{m}"),
                predictions: (0..samples).map(|s| u32::from(s % (m + 2) == 0)).collect(),
            })
            .collect(),
    }
}

/// Runs fuselab's own WGSL kernels on the wgpu adapter and compares them with the CPU twins.
fn check_kernels() -> Result<String, String> {
    let gpu = pollster::block_on(Gpu::request(wgpu::Backends::all())).map_err(|e| e.to_string())?;
    let kernel = pollster::block_on(CofailureKernel::new(&gpu)).map_err(|e| e.to_string())?;
    let masks = FailureMasks::from_table(&check_pool());
    let counts = pollster::block_on(kernel.run(&gpu, &masks)).map_err(|e| e.to_string())?;
    if counts == masks.cofailure_counts() {
        Ok(format!(
            "{}: co-failure kernel matches the CPU",
            gpu.adapter
        ))
    } else {
        Err(format!(
            "{}: co-failure kernel differs from the CPU",
            gpu.adapter
        ))
    }
}

/// Prints one line per device and check; returns failure when the CPU fails, or when
/// `require_gpu` and the GPU fails.
pub fn report(require_gpu: bool) -> ExitCode {
    let mut cpu_ok = false;
    let mut gpu_ok = false;
    for compute in Compute::ALL {
        let start = Instant::now();
        let result =
            fuselab_ml::open(compute).and_then(|device| fuselab_ml::self_check(compute, &device));
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(check) => {
                println!(
                    "{:<5} burn ok: matmul error {:.1e}, gradient error {:.1e} ({seconds:.2} s)",
                    compute.name(),
                    check.matmul_error,
                    check.gradient_error,
                );
                match compute {
                    Compute::Cpu => cpu_ok = true,
                    Compute::Wgpu => gpu_ok = true,
                }
            }
            Err(error) => println!("{:<5} burn FAILED: {error}", compute.name()),
        }
    }
    match check_kernels() {
        Ok(line) => println!("wgpu  kernels ok: {line}"),
        Err(error) => {
            gpu_ok = false;
            println!("wgpu  kernels FAILED: {error}");
        }
    }
    if cpu_ok && (gpu_ok || !require_gpu) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_pool_counts_follow_the_formula() {
        let counts = FailureMasks::from_table(&check_pool()).cofailure_counts();
        // Models 0 and 2 fail multiples of 2 and of 4: every multiple of 4.
        assert_eq!(counts[2], 2500);
        // Model 1 fails multiples of 3: 0, 3, ..., 9999.
        assert_eq!(counts[5], 3334);
        // Models 1 and 3 fail multiples of 3 and 5: multiples of 15.
        assert_eq!(counts[7], 667);
    }
}
