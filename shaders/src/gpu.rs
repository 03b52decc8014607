//! Acquiring a compute-capable wgpu device, and the errors of GPU work.

use std::fmt;

use thiserror::Error;

/// Why GPU work could not be done. The CPU twin is the fallback for every one of these.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No adapter of the requested backends exists (no WebGPU in this browser, no Vulkan driver).
    #[error("no GPU adapter is available: {reason}")]
    NoAdapter {
        /// What wgpu reported.
        reason: String,
    },
    /// The adapter exists but cannot run compute shaders (WebGL2, for example).
    #[error("the GPU adapter `{adapter}` cannot run compute shaders")]
    NoComputeShaders {
        /// The adapter's name.
        adapter: String,
    },
    /// The adapter refused to open a device.
    #[error("the GPU adapter refused to open a device: {reason}")]
    Device {
        /// What wgpu reported.
        reason: String,
    },
    /// The input needs a larger buffer or dispatch than this device allows.
    #[error("{what} needs {needed}, but this GPU allows at most {limit}")]
    TooLarge {
        /// The resource that is too large.
        what: &'static str,
        /// What the input needs.
        needed: u64,
        /// The device limit.
        limit: u64,
    },
    /// wgpu reported a validation or out-of-memory error while running a kernel.
    #[error("the GPU rejected the `{kernel}` kernel: {reason}")]
    Kernel {
        /// The kernel's file name.
        kernel: &'static str,
        /// What wgpu reported.
        reason: String,
    },
    /// Reading the results back failed.
    #[error("reading the `{kernel}` results back from the GPU failed: {reason}")]
    Readback {
        /// The kernel's file name.
        kernel: &'static str,
        /// What wgpu reported.
        reason: String,
    },
}

/// What the user or operator needs to know about the adapter in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The API, e.g. `Vulkan` or `WebGPU`.
    pub backend: String,
    /// `discrete GPU`, `software renderer`, ...
    pub device_type: String,
}

impl AdapterSummary {
    /// Whether the "GPU" is emulated on the CPU (`SwiftShader`, lavapipe): slower than plain CPU
    /// code for the same work.
    pub fn is_software(&self) -> bool {
        self.device_type == SOFTWARE
    }
}

/// [`AdapterSummary::device_type`] of an adapter that runs on the CPU.
const SOFTWARE: &str = "software renderer";

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            // Browsers often withhold the adapter's name.
            "unnamed adapter"
        } else {
            &self.name
        };
        write!(f, "{name} ({}, {})", self.backend, self.device_type)
    }
}

/// An open device and queue that can run compute shaders.
#[derive(Debug)]
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter it was opened on.
    pub adapter: AdapterSummary,
    /// Held for each kernel's whole dispatch: error scopes are a stack per device, so two
    /// dispatches interleaved by different tasks would pop each other's scopes.
    busy: futures_util::lock::Mutex<()>,
}

impl Gpu {
    /// Opens the preferred adapter of `backends` with WebGPU's default limits.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`], [`GpuError::NoComputeShaders`] or [`GpuError::Device`].
    pub async fn request(backends: wgpu::Backends) -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = backends;
        let instance = wgpu::Instance::new(descriptor);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..wgpu::RequestAdapterOptions::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                reason: e.to_string(),
            })?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name,
            backend: match info.backend {
                wgpu::Backend::BrowserWebGpu => "WebGPU".to_owned(),
                other => format!("{other:?}"),
            },
            device_type: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete GPU",
                wgpu::DeviceType::IntegratedGpu => "integrated GPU",
                wgpu::DeviceType::VirtualGpu => "virtual GPU",
                wgpu::DeviceType::Cpu => SOFTWARE,
                wgpu::DeviceType::Other => "unknown device type",
            }
            .to_owned(),
        };
        if !adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        {
            return Err(GpuError::NoComputeShaders {
                adapter: summary.to_string(),
            });
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("fuselab"),
                ..wgpu::DeviceDescriptor::default()
            })
            .await
            .map_err(|e| GpuError::Device {
                reason: e.to_string(),
            })?;
        Ok(Self {
            device,
            queue,
            adapter: summary,
            busy: futures_util::lock::Mutex::new(()),
        })
    }
}

/// Little-endian bytes of `u32` words, as buffers hold them.
pub(crate) fn to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The error a kernel's error scope caught, if any.
pub(crate) async fn check_scope(
    kernel: &'static str,
    scope: wgpu::ErrorScopeGuard,
) -> Result<(), GpuError> {
    match scope.pop().await {
        None => Ok(()),
        Some(error) => Err(GpuError::Kernel {
            kernel,
            reason: error.to_string(),
        }),
    }
}

/// Maps a `MAP_READ` buffer and reads it as little-endian `u32` words.
pub(crate) async fn read_words(
    kernel: &'static str,
    device: &wgpu::Device,
    readback: &wgpu::Buffer,
) -> Result<Vec<u32>, GpuError> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    readback.map_async(wgpu::MapMode::Read, .., move |result| {
        // The receiver is only gone if this future was dropped; nothing is left to tell.
        let _ = sender.send(result);
    });
    // Natively the callback fires only when the device is polled; the browser fires it from its
    // own event loop, so blocking there is neither needed nor allowed.
    #[cfg(not(target_arch = "wasm32"))]
    let poll = wgpu::PollType::wait_indefinitely();
    #[cfg(target_arch = "wasm32")]
    let poll = wgpu::PollType::Poll;
    device.poll(poll).map_err(|e| readback_error(kernel, &e))?;
    receiver
        .await
        .map_err(|e| readback_error(kernel, &e))?
        .map_err(|e| readback_error(kernel, &e))?;
    let view = readback
        .get_mapped_range(..)
        .map_err(|e| readback_error(kernel, &e))?;
    let words = view
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    drop(view);
    readback.unmap();
    Ok(words)
}

fn readback_error(kernel: &'static str, error: &dyn std::fmt::Display) -> GpuError {
    GpuError::Readback {
        kernel,
        reason: error.to_string(),
    }
}

/// Compiles a kernel's `main` entry point on `gpu`.
///
/// # Errors
/// [`GpuError::Kernel`] if the device rejects the shader or pipeline.
pub(crate) async fn compile(
    gpu: &Gpu,
    kernel: &'static str,
    wgsl: &'static str,
) -> Result<wgpu::ComputePipeline, GpuError> {
    let _busy = gpu.busy.lock().await;
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
    check_scope(kernel, scope).await?;
    Ok(pipeline)
}

/// Runs a kernel laid out as all of fuselab's are (binding 0: uniform `params`, 1: read-only
/// `input` words, 2: `out_bytes` of output) on a grid of workgroups, and reads the output back.
///
/// # Errors
/// [`GpuError::Kernel`] or [`GpuError::Readback`] when the device fails.
pub(crate) async fn dispatch(
    gpu: &Gpu,
    kernel: &'static str,
    pipeline: &wgpu::ComputePipeline,
    params: &[u32],
    input: &[u32],
    out_bytes: u64,
    grid: (u32, u32),
) -> Result<Vec<u32>, GpuError> {
    use wgpu::util::DeviceExt as _;
    let _busy = gpu.busy.lock().await;
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom_scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let device = &gpu.device;
    let buffer = |usage, contents: &[u32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel),
            contents: &to_bytes(contents),
            usage,
        })
    };
    let params = buffer(wgpu::BufferUsages::UNIFORM, params);
    let input = buffer(wgpu::BufferUsages::STORAGE, input);
    let empty = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(kernel),
            size: out_bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let output = empty(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let readback = empty(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(kernel),
        layout: &pipeline.get_bind_group_layout(0),
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
        label: Some(kernel),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, out_bytes);
    gpu.queue.submit([encoder.finish()]);
    check_scope(kernel, oom_scope).await?;
    check_scope(kernel, scope).await?;
    read_words(kernel, device, &readback).await
}
