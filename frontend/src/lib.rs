//! The fuselab browser app (leptos 0.8, client-side rendered).
//!
//! Computations run on this device: on WebGPU when the browser offers it, with the CPU twin of
//! every kernel as the reference and the fallback. The app is built for wasm32 only; the plain
//! logic (`access`, `heatmap`, `protection`, `route`, `run_form`) also builds natively, where its unit tests run.

pub mod access;
pub mod heatmap;
pub mod protection;
pub mod route;
pub mod run_form;

#[cfg(target_arch = "wasm32")]
mod account;
#[cfg(target_arch = "wasm32")]
mod align;
#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod cofailure;
#[cfg(target_arch = "wasm32")]
mod ctr;
#[cfg(target_arch = "wasm32")]
mod ensembles;
#[cfg(target_arch = "wasm32")]
mod faces;
#[cfg(target_arch = "wasm32")]
mod gpu;
#[cfg(target_arch = "wasm32")]
mod h3fusion;
#[cfg(target_arch = "wasm32")]
mod home;
#[cfg(target_arch = "wasm32")]
mod pose;
#[cfg(target_arch = "wasm32")]
mod protect;
#[cfg(target_arch = "wasm32")]
mod runs;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod settings;
#[cfg(target_arch = "wasm32")]
mod shell;
#[cfg(target_arch = "wasm32")]
mod signin;
