//! The team-sums kernel: `team_sums.wgsl`, twin of `FocalTable::team_sums`. It computes, for
//! every team in a range of bit masks, each member's failure sums; the CPU turns them into focal
//! diversity with `FocalTable::from_sums`, so both paths give bit-identical results.

use crate::gpu::{Gpu, GpuError, compile, dispatch};
use fuselab_shared::ensemble::FocalTable;

/// The kernel's WGSL source.
pub const WGSL: &str = include_str!("../team_sums.wgsl");

const NAME: &str = "team_sums.wgsl";

/// Must match `@workgroup_size(64, 1, 1)` in `team_sums.wgsl`.
const WORKGROUP_SIZE: u32 = 64;
/// Workgroups along x per row of the grid (the kernel folds y into the index with it).
const GROUPS_PER_ROW: u32 = 65_535;

/// Most models a mask can hold (bit 31 stays free so `first + count` cannot overflow).
pub const MAX_MODELS: usize = 31;

/// A compiled team-sums pipeline for one device.
#[derive(Debug)]
pub struct TeamSumsKernel {
    pipeline: wgpu::ComputePipeline,
}

impl TeamSumsKernel {
    /// Compiles the kernel on `gpu`.
    ///
    /// # Errors
    /// [`GpuError::Kernel`] if the device rejects the shader or pipeline.
    pub async fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        Ok(Self {
            pipeline: compile(gpu, NAME, WGSL).await?,
        })
    }

    /// The sums of the `count` masks from `first` on, laid out as [`FocalTable::team_sums`].
    ///
    /// # Errors
    /// [`GpuError::TooLarge`] for more than [`MAX_MODELS`] models, sums that could overflow 32
    /// bits, or buffers beyond the device's limits; [`GpuError::Kernel`] or
    /// [`GpuError::Readback`] when the device fails.
    pub async fn run(
        &self,
        gpu: &Gpu,
        table: &FocalTable,
        first: u32,
        count: u32,
    ) -> Result<Vec<u32>, GpuError> {
        let models = table.models();
        if models > MAX_MODELS {
            return Err(GpuError::TooLarge {
                what: "the number of models",
                needed: models as u64,
                limit: MAX_MODELS as u64,
            });
        }
        let triples = table.triples_u32().ok_or(GpuError::TooLarge {
            what: "a team's Σc² (32-bit sums)",
            needed: u64::from(u32::MAX) + 1,
            limit: u64::from(u32::MAX),
        })?;
        let limits = gpu.device.limits();
        let out_bytes = u64::from(count) * models as u64 * 8;
        for (what, needed) in [
            ("the triple counts", triples.len() as u64 * 4),
            ("the team sums", out_bytes),
        ] {
            if needed > limits.max_storage_buffer_binding_size {
                return Err(GpuError::TooLarge {
                    what,
                    needed,
                    limit: limits.max_storage_buffer_binding_size,
                });
            }
        }
        let groups = count.div_ceil(WORKGROUP_SIZE).max(1);
        let grid = (groups.min(GROUPS_PER_ROW), groups.div_ceil(GROUPS_PER_ROW));
        let params = [models as u32, first, count, 0];
        let mut words = dispatch(
            gpu,
            NAME,
            &self.pipeline,
            &params,
            &triples,
            out_bytes.max(8),
            grid,
        )
        .await?;
        words.truncate(count as usize * models * 2);
        Ok(words)
    }
}
