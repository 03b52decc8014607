//! The face worker's answers: what the face stack found in one photo, with the models' names
//! and thresholds and the time per stage.

use serde::{Deserialize, Serialize};

use crate::face::Face;

/// A face-recognition model's name and verification threshold, as the worker reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `dlib` or `faceres`.
    pub name: String,
    /// Same person below this distance; `None` when the model ships without one.
    pub threshold: Option<f32>,
}

/// What the worker found in one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundFaces {
    /// The photo's columns, after EXIF orientation.
    pub width: u32,
    /// Its rows.
    pub height: u32,
    /// Largest first.
    pub faces: Vec<Face>,
    /// The embedders, in the order of `fuselab_ml::face::FaceStack::compare`.
    pub models: Vec<ModelInfo>,
    /// Where the time went.
    pub millis: Millis,
}

/// Milliseconds per stage, summed over the faces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Millis {
    /// MTCNN on the whole photo.
    pub detect: f64,
    /// dlib's landmarks and chips.
    pub align: f64,
    /// dlib's descriptors.
    pub dlib: f64,
    /// faceres's descriptors.
    pub faceres: f64,
}
