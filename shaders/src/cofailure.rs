//! The co-failure kernel: `cofailure.wgsl`, twin of `FailureMasks::cofailure_counts`.

use fuselab_shared::FailureMasks;
use wgpu::util::DeviceExt as _;

use crate::gpu::{Gpu, GpuError, check_scope, read_words, to_bytes};

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

    /// Counts co-failures of every model pair on the GPU: row-major `models × models`, equal
    /// to [`FailureMasks::cofailure_counts`].
    ///
    /// # Errors
    /// [`GpuError::TooLarge`] when the pool exceeds the device's limits, [`GpuError::Kernel`]
    /// or [`GpuError::Readback`] when the device fails.
    pub async fn run(&self, gpu: &Gpu, masks: &FailureMasks) -> Result<Vec<u32>, GpuError> {
        let plan = Plan::new(masks, &gpu.device.limits())?;
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom_scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let readback = self.submit(gpu, masks, &plan);
        check_scope(NAME, oom_scope).await?;
        check_scope(NAME, scope).await?;
        read_words(NAME, &gpu.device, &readback).await
    }

    /// Uploads the masks, dispatches the kernel and copies the counts into a mappable buffer.
    fn submit(&self, gpu: &Gpu, masks: &FailureMasks, plan: &Plan) -> wgpu::Buffer {
        let device = &gpu.device;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("cofailure params"),
            contents: &to_bytes(&[
                plan.models,
                masks.words_per_model() as u32,
                masks.samples() as u32,
                0,
            ]),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("cofailure masks"),
            contents: &to_bytes(masks.words()),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let output = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cofailure counts"),
            size: plan.count_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cofailure readback"),
            size: plan.count_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cofailure bindings"),
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
            label: Some("cofailure"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("cofailure"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(plan.groups, plan.groups, 1);
        }
        encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, plan.count_bytes);
        gpu.queue.submit([encoder.finish()]);
        readback
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
