//! Click-through-rate models on burn (spec `ccn.md`): DIN, DIN with a trigger attention, and
//! CCN's collaborative module with its attraction and repulsion losses over same-page pairs
//! (`config`, `batch`, `model`, `loss`), trained with Adam on whole pages with early stopping
//! on validation AUC and checkpointable state (`train`). Inputs come from
//! `fuselab_shared::ctr::encode`; no I/O here.

pub mod batch;
pub mod config;
pub mod loss;
pub mod model;
pub mod train;

pub use batch::Batch;
pub use config::{Collaborative, ConfigError, CtrConfig, Layout, ModelKind, Reading};
pub use model::{CtrModel, Forward};
pub use train::{Control, EpochRecord, Hooks, StateMeta, TrainError, TrainOptions, TrainState};
