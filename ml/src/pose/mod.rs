//! Video pose estimation (JM-Pose, spec `pose.md`): the models of the ablation ladder
//! (`config`, `model`), the joint learner's modulated deformable convolution built from
//! bilinear sampling (`dcn`), the information-orthogonality objective (`orthogonality`), batches
//! (`batch`), training (`train`), prediction (`predict`: clips, windows and whole videos) and saved
//! models (`saved`).

// Tensor shapes use the papers' letters (n, t, c, h, w; m and j for the two streams).
#![allow(clippy::many_single_char_names)]

pub mod batch;
pub mod config;
pub mod dcn;
pub mod model;
pub mod orthogonality;
pub mod predict;
pub mod saved;
pub mod train;
