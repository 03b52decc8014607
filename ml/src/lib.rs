//! fuselab's machine-learning layer on burn 0.22.
//!
//! burn 0.22 picks the backend at run time through [`Device`]: `flex` on the CPU, `wgpu` on GPUs
//! (Vulkan, Metal, DX12; Mesa's lavapipe on machines without one). Models built on this crate
//! take a [`Device`] and run unchanged on either.

pub mod ctr;
pub mod digits;
pub mod face;
pub mod llm;
pub mod mask;
pub mod optim;
pub mod pose;
pub mod tensors;

pub use burn::tensor::Device;
use burn::tensor::{Tensor, TensorData};
use thiserror::Error;

/// Where burn runs tensors: the one name of the device choice, for the command line (`--device
/// cpu|wgpu`), configuration files (`device = "wgpu"`) and jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    #[default]
    /// burn's `flex` CPU backend: always available.
    Cpu,
    /// burn's `wgpu` backend on the preferred adapter (a GPU, or lavapipe).
    Wgpu,
}

impl Compute {
    /// Both kinds, CPU first.
    pub const ALL: [Self; 2] = [Self::Cpu, Self::Wgpu];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        }
    }
}

impl core::fmt::Display for Compute {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Compute {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| format!("unknown device `{text}`: expected cpu or wgpu"))
    }
}

/// Errors of the machine-learning layer.
#[derive(Debug, Error)]
pub enum MlError {
    /// burn could not start its wgpu runtime (no adapter, driver failure).
    #[error("burn's wgpu runtime did not start: {reason}")]
    WgpuInit {
        /// What burn reported.
        reason: String,
    },
    /// A tensor could not be read back as the expected element type.
    #[error("could not read `{what}` back from the device: {reason}")]
    Readback {
        /// The tensor's role.
        what: &'static str,
        /// What burn reported.
        reason: String,
    },
    /// A device computed a wrong result.
    #[error("{compute} self-check failed: {check} is off by {error:e} (tolerance {tolerance:e})")]
    Mismatch {
        /// The device kind.
        compute: &'static str,
        /// Which check.
        check: &'static str,
        /// The largest absolute error.
        error: f32,
        /// The allowed error.
        tolerance: f32,
    },
}

/// Opens a burn device of the given kind.
///
/// # Errors
/// [`MlError::WgpuInit`] when burn's wgpu runtime cannot start.
pub fn open(compute: Compute) -> Result<Device, MlError> {
    match compute {
        Compute::Cpu => Ok(Device::flex()),
        #[cfg(not(target_arch = "wasm32"))]
        Compute::Wgpu => Device::wgpu_options()
            .init()
            .map_err(|e| MlError::WgpuInit {
                reason: e.to_string(),
            }),
        // The browser build leaves burn-wgpu out (its WebGPU runtime would double the bundle).
        #[cfg(target_arch = "wasm32")]
        Compute::Wgpu => Err(MlError::WgpuInit {
            reason: "the browser build of fuselab runs burn on its CPU backend only".to_owned(),
        }),
    }
}

/// What [`self_check`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfCheck {
    /// Largest absolute error of a 64×64 matrix product against an exact `f64` reference.
    pub matmul_error: f32,
    /// Largest absolute error of the gradient of `Σ sin(x)·x` against the analytic `cos(x)·x + sin(x)`.
    pub gradient_error: f32,
}

const N: usize = 64;

/// Deterministic, well-conditioned test values in `[-1, 1]`.
fn values(len: usize, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| ((i as f64) * 0.618_033_988_75 + phase).sin())
        .collect()
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

fn max_abs_error(actual: &[f32], expected: &[f64]) -> f32 {
    actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| (f64::from(a) - e).abs() as f32)
        .fold(0.0, f32::max)
}

/// A 2-D tensor's values, read back from its device.
fn read(tensor: Tensor<2>, what: &'static str) -> Result<Vec<f32>, MlError> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| MlError::Readback {
            what,
            reason: format!("{e:?}"),
        })
}

/// Checks that `device` computes correctly: a matrix product and a reverse-mode gradient,
/// both against exact references computed here in `f64`.
///
/// # Errors
/// [`MlError::Mismatch`] when a result is off by more than `f32` rounding allows.
pub fn self_check(compute: Compute, device: &Device) -> Result<SelfCheck, MlError> {
    let a = values(N * N, 0.1);
    let b = values(N * N, 0.7);
    let expected: Vec<f64> = (0..N * N)
        .map(|ij| {
            let (i, j) = (ij / N, ij % N);
            (0..N).map(|k| a[i * N + k] * b[k * N + j]).sum()
        })
        .collect();
    let product = Tensor::<2>::from_data(TensorData::new(to_f32(&a), [N, N]), device).matmul(
        Tensor::<2>::from_data(TensorData::new(to_f32(&b), [N, N]), device),
    );
    let matmul_error = max_abs_error(&read(product, "matmul")?, &expected);

    let x = values(N, 0.3);
    let leaf = Tensor::<2>::from_data(TensorData::new(to_f32(&x), [1, N]), device)
        .autodiff()
        .require_grad();
    let loss = (leaf.clone().sin() * leaf.clone()).sum();
    let gradients = loss.backward();
    let gradient = leaf.grad(&gradients).ok_or(MlError::Readback {
        what: "gradient",
        reason: "the leaf has no gradient".to_owned(),
    })?;
    let expected: Vec<f64> = x.iter().map(|&v| v.cos() * v + v.sin()).collect();
    let gradient_error = max_abs_error(&read(gradient, "gradient")?, &expected);

    // f32 accumulation over 64 terms of magnitude ≤ 1; GPU sin/cos are accurate to a few ulp.
    for (check, error, tolerance) in [
        ("the 64×64 matmul", matmul_error, 1e-4),
        ("the gradient", gradient_error, 1e-4),
    ] {
        if error.is_nan() || error > tolerance {
            return Err(MlError::Mismatch {
                compute: compute.name(),
                check,
                error,
                tolerance,
            });
        }
    }
    Ok(SelfCheck {
        matmul_error,
        gradient_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_self_check() {
        let device = open(Compute::Cpu).unwrap();
        let check = self_check(Compute::Cpu, &device).unwrap();
        assert!(check.matmul_error < 1e-4, "{check:?}");
    }

    /// burn-wgpu on the machine's adapter: lavapipe in CI, a real GPU elsewhere.
    #[test]
    fn wgpu_self_check() {
        let device = open(Compute::Wgpu).expect("a wgpu adapter (install mesa-vulkan-drivers)");
        let check = self_check(Compute::Wgpu, &device).unwrap();
        assert!(check.gradient_error < 1e-4, "{check:?}");
    }

    #[test]
    fn max_abs_error_is_the_largest_deviation() {
        let error = max_abs_error(&[1.0, 2.5], &[1.0, 2.0]);
        assert!((error - 0.5).abs() < 1e-6);
    }
}
