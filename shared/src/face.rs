//! What the face stack finds, as the server, the CLI and the browser app exchange it: MTCNN's
//! detections, a face's landmarks and descriptors, and how one model compares two faces. The
//! models themselves are `fuselab-ml`'s; these are their results.

use serde::{Deserialize, Serialize};

/// One detected face, in pixel coordinates of the photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Left, top, right, bottom.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub score: f32,
    /// Left eye, right eye (as seen in the photo, left to right), nose, left and right mouth
    /// corner: `(x, y)` each.
    pub landmarks: [[f32; 2]; 5],
}

/// One face: the detection, dlib's landmarks and the descriptors of its chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// What MTCNN found.
    #[serde(flatten)]
    pub detection: Detection,
    /// dlib's 5 landmarks, `(x, y)`.
    pub parts: Vec<[i64; 2]>,
    /// dlib's raw 128-d descriptor.
    pub dlib: Vec<f32>,
    /// faceres's 1024-d descriptor of the same chip, resized to 224×224.
    pub faceres: Vec<f32>,
}

/// How one model compares two faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The model's name.
    pub model: String,
    /// Euclidean distance between the raw embeddings.
    pub distance: f32,
    /// Angle between the embeddings, radians.
    pub angle: f32,
    /// The model's own threshold on `distance`, when it has one.
    pub threshold: Option<f32>,
    /// `None` when the model has no threshold to decide with.
    pub same_person: Option<bool>,
}

impl Verdict {
    /// Compares two raw embeddings of `model`, deciding with its `threshold` when it has one.
    pub fn between(model: &str, threshold: Option<f32>, a: &[f32], b: &[f32]) -> Self {
        let distance = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b)).max(1e-12);
        Self {
            model: model.to_owned(),
            distance,
            angle: cos.clamp(-1.0, 1.0).acos(),
            threshold,
            same_person: threshold.map(|t| distance < t),
        }
    }
}
