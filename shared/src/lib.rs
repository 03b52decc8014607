//! Pure algorithms and wire types shared by the server, the CLI and the browser app.
//!
//! This crate does no I/O and reads no clock: everything here runs unchanged in
//! `wasm32-unknown-unknown` and natively, so the browser and the backend give the same
//! answers on the same data.

pub mod align;
pub mod api;
pub mod cofailure;
pub mod ctr;
pub mod ensemble;
pub mod face;
pub mod mask;
pub mod npy;
pub mod pose;
pub mod predictions;
pub mod rng;
pub mod table;
pub mod topla;
pub mod worker;

pub use cofailure::{CofailureReport, FailureMasks, ModelSummary};
pub use predictions::{ModelPredictions, PredictionError, PredictionTable};
