//! The mask kernel: `apply_mask.wgsl`, twin of `fuselab_shared::mask::apply`. It protects one
//! face of a photo (or, with a negative strength, takes the protection off) on the GPU.

use crate::gpu::{Gpu, GpuError, compile, dispatch};
use fuselab_shared::mask::{FaceCanvas, MASK_LEN};

/// The kernel's WGSL source.
pub const WGSL: &str = include_str!("../apply_mask.wgsl");

const NAME: &str = "apply_mask.wgsl";

/// Must match `@workgroup_size(8, 8, 1)` in `apply_mask.wgsl`.
const WORKGROUP_SIDE: u32 = 8;

/// A compiled mask pipeline for one device.
#[derive(Debug)]
pub struct ApplyMaskKernel {
    pipeline: wgpu::ComputePipeline,
}

impl ApplyMaskKernel {
    /// Compiles the kernel on `gpu`.
    ///
    /// # Errors
    /// [`GpuError::Kernel`] if the device rejects the shader or pipeline.
    pub async fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        Ok(Self {
            pipeline: compile(gpu, NAME, WGSL).await?,
        })
    }

    /// Adds `strength · δ` to the face of `canvas` in an RGBA photo of `width` columns (alpha
    /// kept), in place, as [`fuselab_shared::mask::apply`] does with 4 channels.
    ///
    /// # Errors
    /// [`GpuError::TooLarge`] when the face exceeds the device's limits, [`GpuError::Kernel`]
    /// or [`GpuError::Readback`] when the device fails.
    ///
    /// # Panics
    /// When `delta` does not hold [`MASK_LEN`] values or the face lies outside the photo.
    pub async fn run(
        &self,
        gpu: &Gpu,
        rgba: &mut [u8],
        width: usize,
        canvas: &FaceCanvas,
        delta: &[f32],
        strength: f32,
    ) -> Result<(), GpuError> {
        assert_eq!(delta.len(), MASK_LEN, "δ holds 112·112·3 values");
        let [left, top, w, h] = canvas.face;
        let limits = gpu.device.limits();
        let bytes = (w * h * 4) as u64;
        if bytes + (MASK_LEN * 4) as u64 > limits.max_storage_buffer_binding_size {
            return Err(GpuError::TooLarge {
                what: "the face",
                needed: bytes,
                limit: limits.max_storage_buffer_binding_size,
            });
        }
        let too_large = |what, needed: usize| GpuError::TooLarge {
            what,
            needed: needed as u64,
            limit: u64::from(u32::MAX),
        };
        let word = |v: usize, what| u32::try_from(v).map_err(|_| too_large(what, v));
        let mut input = Vec::with_capacity(w * h + MASK_LEN);
        for row in top..top + h {
            let start = (row * width + left) * 4;
            input.extend(
                rgba[start..start + w * 4]
                    .chunks_exact(4)
                    .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])),
            );
        }
        let mask_at = word(input.len(), "the face")?;
        input.extend(delta.iter().map(|d| d.to_bits()));
        let params = [
            word(w, "the face's width")?,
            word(h, "the face's height")?,
            word(canvas.side, "the canvas")?,
            word(canvas.offset[0], "the canvas")?,
            word(canvas.offset[1], "the canvas")?,
            strength.to_bits(),
            mask_at,
            0,
        ];
        let grid = (
            word(w, "the face's width")?.div_ceil(WORKGROUP_SIDE),
            word(h, "the face's height")?.div_ceil(WORKGROUP_SIDE),
        );
        let dimension = u64::from(grid.0.max(grid.1));
        if dimension > u64::from(limits.max_compute_workgroups_per_dimension) {
            return Err(GpuError::TooLarge {
                what: "the workgroup grid",
                needed: dimension,
                limit: u64::from(limits.max_compute_workgroups_per_dimension),
            });
        }
        let out = dispatch(gpu, NAME, &self.pipeline, &params, &input, bytes, grid).await?;
        for (i, pixel) in out.iter().enumerate() {
            let (row, col) = (top + i / w, left + i % w);
            let at = (row * width + col) * 4;
            rgba[at..at + 4].copy_from_slice(&pixel.to_le_bytes());
        }
        Ok(())
    }
}
