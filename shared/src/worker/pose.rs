//! The pose worker's answers: the model it loaded, and how many frames a clip may have.

use serde::{Deserialize, Serialize};

/// Most frames the page reads from one clip (longer clips: `fuselab pose predict`).
pub const MAX_FRAMES: usize = 600;

/// A loaded model, as the worker describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `single_frame`, `fusion` or `jm_pose`.
    pub variant: String,
    /// Frames per window.
    pub frames: usize,
    /// The model's frame size, `[width, height]`.
    pub frame_size: [usize; 2],
    /// Trainable numbers.
    pub parameters: usize,
}
