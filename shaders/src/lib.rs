//! fuselab's WGSL compute kernels and the wgpu code that runs them.
//!
//! The same code dispatches in the browser (WebGPU) and natively (Vulkan, including Mesa's
//! lavapipe on machines without a GPU). Every kernel has a CPU twin in `fuselab-shared`, and
//! the tests compare the two.

pub mod apply_mask;
pub mod cofailure;
mod gpu;
pub mod team_sums;

pub use gpu::{AdapterSummary, Gpu, GpuError};

/// Every WGSL file of `shaders/`, by file name: the validation test checks each one.
pub const ALL: &[(&str, &str)] = &[
    ("apply_mask.wgsl", apply_mask::WGSL),
    ("cofailure.wgsl", cofailure::WGSL),
    ("team_sums.wgsl", team_sums::WGSL),
];
