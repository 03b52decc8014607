//! The team-sums kernel: `team_sums.wgsl`, twin of `FocalTable::team_sums`. It computes, for
//! every team in a range of bit masks, each member's failure sums; the CPU turns them into focal
//! diversity with `FocalTable::from_sums`, so both paths give bit-identical results.

use fuselab_shared::ensemble::FocalTable;
use wgpu::util::DeviceExt as _;

use crate::gpu::{Gpu, GpuError, check_scope, read_words, to_bytes};

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
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(NAME),
                source: wgpu::ShaderSource::Wgsl(WGSL.into()),
            });
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(NAME),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
        check_scope(NAME, scope).await?;
        Ok(Self { pipeline })
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
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom_scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = [models as u32, first, count, 0];
        let readback = self.submit(gpu, &params, &triples, out_bytes.max(8), grid);
        check_scope(NAME, oom_scope).await?;
        check_scope(NAME, scope).await?;
        let mut words = read_words(NAME, &gpu.device, &readback).await?;
        words.truncate(count as usize * models * 2);
        Ok(words)
    }

    fn submit(
        &self,
        gpu: &Gpu,
        params: &[u32; 4],
        triples: &[u32],
        out_bytes: u64,
        grid: (u32, u32),
    ) -> wgpu::Buffer {
        let device = &gpu.device;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("team sums params"),
            contents: &to_bytes(params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("team sums triples"),
            contents: &to_bytes(triples),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let output = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("team sums"),
            size: out_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("team sums readback"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("team sums bindings"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: input.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: output.as_entire_binding(),
                },
            ],
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("team sums"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("team sums"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, out_bytes);
        gpu.queue.submit([encoder.finish()]);
        readback
    }
}
