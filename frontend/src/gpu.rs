//! The browser's WebGPU device, opened once at start-up.

use std::{cell::OnceCell, rc::Rc};

use fuselab_shaders::{Gpu, apply_mask::ApplyMaskKernel, cofailure::CofailureKernel};
use leptos::prelude::*;

/// An open WebGPU device with fuselab's kernels compiled on it.
#[derive(Debug)]
pub struct Kernels {
    pub gpu: Gpu,
    pub cofailure: CofailureKernel,
    pub apply_mask: ApplyMaskKernel,
}

thread_local! {
    // wgpu's browser handles are not Send, so they live here rather than in a signal.
    static KERNELS: OnceCell<Rc<Kernels>> = const { OnceCell::new() };
}

/// The kernels, once WebGPU has started; `None` before that or when it is unavailable.
pub fn kernels() -> Option<Rc<Kernels>> {
    KERNELS.with(|cell| cell.get().cloned())
}

/// What the page knows about WebGPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Still asking the browser.
    Starting,
    /// Running on this adapter.
    Ready(String),
    /// Not available, and why.
    Unavailable(String),
}

async fn open() -> Result<Kernels, fuselab_shaders::GpuError> {
    let gpu = Gpu::request(wgpu::Backends::BROWSER_WEBGPU).await?;
    let cofailure = CofailureKernel::new(&gpu).await?;
    let apply_mask = ApplyMaskKernel::new(&gpu).await?;
    Ok(Kernels {
        gpu,
        cofailure,
        apply_mask,
    })
}

/// Starts opening WebGPU; the returned signal follows its progress.
pub fn start() -> ReadSignal<DeviceState> {
    let (state, set_state) = signal(DeviceState::Starting);
    leptos::task::spawn_local(async move {
        set_state.set(match open().await {
            Ok(kernels) => {
                let adapter = kernels.gpu.adapter.to_string();
                KERNELS.with(|cell| cell.set(Rc::new(kernels)).ok());
                DeviceState::Ready(adapter)
            }
            Err(error) => DeviceState::Unavailable(error.to_string()),
        });
    });
    state
}

/// One line telling where computations run.
#[component]
pub fn DeviceStatus(device: ReadSignal<DeviceState>) -> impl IntoView {
    let line = move || match device.get() {
        DeviceState::Starting => "This device: starting WebGPU…".to_owned(),
        DeviceState::Ready(adapter) => format!("This device: WebGPU ready on {adapter}"),
        DeviceState::Unavailable(reason) => {
            format!("This device: WebGPU unavailable ({reason}); computing on the CPU")
        }
    };
    view! { <p id="device-status">{line}</p> }
}
