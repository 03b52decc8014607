//! The co-failure kernel: `cofailure.wgsl`, twin of `FailureMasks::cofailure_counts`.

use crate::gpu::{Gpu, GpuError, compile, dispatch};
use fuselab_shared::FailureMasks;

/// The kernel's WGSL source.
pub const WGSL: &str = include_str!("../cofailure.wgsl");

const NAME: &str = "cofailure.wgsl";

/// Must match `@workgroup_size(8, 8, 1)` in `cofailure.wgsl`.
const WORKGROUP_SIDE: u32 = 8;

/// A compiled co-failure pipeline for one device.
#[derive(Debug)]
pub struct CofailureKernel {
    pipeline: wgpu::ComputePipeline,
}

impl CofailureKernel {
    /// Compiles the kernel on `gpu`.
    ///
    /// # Errors
    /// [`GpuError::Kernel`] if the device rejects the shader or pipeline.
    pub async fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        Ok(Self {
            pipeline: compile(gpu, NAME, WGSL).await?,
        })
    }

    /// Counts co-failures of every model pair on the GPU: row-major `models × models`, equal
    /// to [`FailureMasks::cofailure_counts`].
    ///
    /// # Errors
    /// [`GpuError::TooLarge`] when the pool exceeds the device's limits, [`GpuError::Kernel`]
    /// or [`GpuError::Readback`] when the device fails.
    pub async fn run(&self, gpu: &Gpu, masks: &FailureMasks) -> Result<Vec<u32>, GpuError> {
        let plan = Plan::new(masks, &gpu.device.limits())?;
        let params = [
            plan.models,
            masks.words_per_model() as u32,
            masks.samples() as u32,
            0,
        ];
        // Square grid of 8×8 workgroups: the kernel reads (i, j) from x and y.
        let mut counts = dispatch(
            gpu,
            NAME,
            &self.pipeline,
            &params,
            masks.words(),
            plan.count_bytes.max(4),
            (plan.groups, plan.groups),
        )
        .await?;
        counts.truncate((plan.models * plan.models) as usize);
        Ok(counts)
    }
}

/// Sizes of one dispatch, checked against the device's limits.
struct Plan {
    models: u32,
    groups: u32,
    count_bytes: u64,
}

impl Plan {
    fn new(masks: &FailureMasks, limits: &wgpu::Limits) -> Result<Self, GpuError> {
        let models = u32::try_from(masks.models()).map_err(|_| GpuError::TooLarge {
            what: "the number of models",
            needed: masks.models() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let groups = models.div_ceil(WORKGROUP_SIDE);
        if groups > limits.max_compute_workgroups_per_dimension {
            return Err(GpuError::TooLarge {
                what: "the workgroup grid",
                needed: u64::from(groups),
                limit: u64::from(limits.max_compute_workgroups_per_dimension),
            });
        }
        let count_bytes = u64::from(models) * u64::from(models) * 4;
        for (what, needed) in [
            ("the failure masks", (masks.words().len() * 4) as u64),
            ("the co-failure table", count_bytes),
        ] {
            if needed > limits.max_storage_buffer_binding_size {
                return Err(GpuError::TooLarge {
                    what,
                    needed,
                    limit: limits.max_storage_buffer_binding_size,
                });
            }
        }
        Ok(Self {
            models,
            groups,
            count_bytes,
        })
    }
}
