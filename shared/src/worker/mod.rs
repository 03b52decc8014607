//! The messages between the browser app and its Web Workers (the `fuselab-workers` wasm
//! module), typed once so the page and the worker cannot disagree on their JSON.

pub mod ensemble;
pub mod face;
pub mod pose;
