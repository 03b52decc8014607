//! The whole face pipeline, the same natively and in the browser: MTCNN finds the faces, dlib's
//! shape predictor places its 5 landmarks from MTCNN's eyes, dlib's chip is cut, and both
//! embedders describe it.

use burn::tensor::{Device, Tensor};
use thiserror::Error;

use super::{
    DlibResNet, EmbedderInfo, FaceEmbedder as _, RgbImage, chip,
    dlib::DlibError,
    faceres::{Faceres, FaceresError, read_tfjs, resize_bilinear},
    mtcnn::{Detection, Mtcnn, MtcnnError},
    shape::ShapePredictor,
};
use crate::tensors::NamedTensors;
pub use fuselab_shared::face::{Face, Verdict};

/// Compares two raw embeddings of the model described by `info`.
fn verdict(info: &EmbedderInfo, a: &[f32], b: &[f32]) -> Verdict {
    Verdict::between(info.name, info.same_person_below, a, b)
}

/// The weight files of the face stack, as loaded from disk or fetched by the browser.
#[derive(Debug)]
pub struct FaceWeights<'a> {
    /// facenet-pytorch's `pnet.pt`, `rnet.pt`, `onet.pt` as named tensors.
    pub mtcnn: [&'a NamedTensors; 3],
    /// `shape_predictor_5_face_landmarks.dat`.
    pub shape_predictor: &'a [u8],
    /// `dlib_face_recognition_resnet_model_v1.dat`.
    pub dlib: &'a [u8],
    /// faceres's graph-model manifest (`faceres.json`).
    pub faceres_manifest: &'a str,
    /// faceres's weights (`faceres.bin`).
    pub faceres_weights: &'a [u8],
}

/// A weight file that is not the model it should be.
#[derive(Debug, Error)]
pub enum StackError {
    /// The MTCNN tensors.
    #[error(transparent)]
    Mtcnn(#[from] MtcnnError),
    /// One of dlib's files.
    #[error(transparent)]
    Dlib(#[from] DlibError),
    /// faceres's files.
    #[error(transparent)]
    Faceres(#[from] FaceresError),
}

/// The face stack with its weights loaded.
#[derive(Debug)]
pub struct FaceStack {
    /// Where tensors live.
    pub device: Device,
    /// The detector.
    pub mtcnn: Mtcnn,
    /// dlib's landmarks.
    pub shape: ShapePredictor,
    /// dlib's face descriptor.
    pub dlib: DlibResNet,
    /// The second, different descriptor (MobileNet-v1, 1024-d).
    pub faceres: Faceres,
}

impl FaceStack {
    /// Builds every model from its weight files.
    ///
    /// # Errors
    /// A file that is not the model, named.
    pub fn from_weights(weights: &FaceWeights<'_>, device: Device) -> Result<Self, StackError> {
        let [pnet, rnet, onet] = weights.mtcnn;
        Ok(Self {
            mtcnn: Mtcnn::from_tensors(pnet, rnet, onet, &device)?,
            shape: ShapePredictor::from_bytes(weights.shape_predictor)?,
            dlib: DlibResNet::from_bytes(weights.dlib, &device)?,
            faceres: Faceres::from_tensors(
                &read_tfjs(weights.faceres_manifest, weights.faceres_weights)?,
                &device,
            )?,
            device,
        })
    }

    /// Every face in the photo, largest first, with its descriptors.
    pub fn faces(&self, image: &RgbImage) -> Vec<Face> {
        self.mtcnn
            .detect(image, &self.device)
            .into_iter()
            .filter_map(|detection| self.describe(image, detection))
            .collect()
    }

    /// Landmarks, chip and descriptors of one detected face; `None` when its eyes coincide.
    pub fn describe(&self, image: &RgbImage, detection: Detection) -> Option<Face> {
        let (parts, chip) = self.align(image, &detection)?;
        Some(Face {
            detection,
            parts,
            dlib: self.dlib_descriptor(&chip),
            faceres: self.faceres_descriptor(&chip),
        })
    }

    /// dlib's 5 landmarks, placed from MTCNN's eyes, and the 150×150 chip cut along them;
    /// `None` when the eyes coincide.
    pub fn align(
        &self,
        image: &RgbImage,
        detection: &Detection,
    ) -> Option<(Vec<[i64; 2]>, RgbImage)> {
        let [le, re] = [detection.landmarks[0], detection.landmarks[1]];
        let rect = self.shape.rect_for_eyes(le, re)?;
        let parts = self.shape.predict(image, rect);
        let points: [[f64; 2]; 5] =
            std::array::from_fn(|k| [parts[k][0] as f64, parts[k][1] as f64]);
        let chip = chip::extract(image, &chip::placement(&points, 150, 0.25));
        Some((parts, chip))
    }

    /// dlib's raw 128-d descriptor of a 150×150 chip.
    pub fn dlib_descriptor(&self, chip: &RgbImage) -> Vec<f32> {
        read_row(self.dlib.forward(chip.to_tensor(&self.device)))
    }

    /// faceres's 1024-d descriptor of a chip, resized to its 224×224 input.
    pub fn faceres_descriptor(&self, chip: &RgbImage) -> Vec<f32> {
        read_row(
            self.faceres
                .forward(resize_bilinear(chip, 224, &self.device)),
        )
    }

    /// Each model's verdict on two faces: dlib first, then faceres.
    pub fn compare(&self, a: &Face, b: &Face) -> [Verdict; 2] {
        [
            verdict(self.dlib.info(), &a.dlib, &b.dlib),
            verdict(self.faceres.info(), &a.faceres, &b.faceres),
        ]
    }
}

/// The values of a `[1, d]` tensor: `f32` by construction, read back from the device.
fn read_row(row: Tensor<2>) -> Vec<f32> {
    row.into_data().iter::<f32>().collect()
}
