//! A trained pose model as two files: `model.json` (format, architecture, the frame size it
//! was trained on) and `model.safetensors` (its named parameters). Read from bytes, so the CLI
//! and the browser's Pose page load the same files the same way.

use burn::tensor::Device;
use fuselab_shared::pose::{MAX_SIDE, MIN_SIDE};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::config::{PoseConfig, STRIDE};
use super::model::PoseModel;
use crate::optim::{put_named, take_named};
use crate::tensors::{NamedTensors, read_safetensors, write_safetensors};

/// The format written in `model.json`.
pub const MODEL_FORMAT: &str = "fuselab.pose.model/v1";
/// The description's file name.
pub const DESCRIPTION_FILE: &str = "model.json";
/// The parameters' file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// What `model.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// The architecture.
    pub config: PoseConfig,
    /// Frame size the model was trained on, `[width, height]`.
    pub frame_size: [usize; 2],
}

/// A model's files that cannot be loaded; the message names the file.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}: {what}")]
pub struct SavedModelError {
    /// [`DESCRIPTION_FILE`] or [`WEIGHTS_FILE`].
    pub file: &'static str,
    /// What is wrong.
    pub what: String,
}

fn description_error(what: String) -> SavedModelError {
    SavedModelError {
        file: DESCRIPTION_FILE,
        what,
    }
}

/// The two files' bytes of `model`, trained on frames of `frame_size`: `(model.json,
/// model.safetensors)`.
///
/// # Errors
/// Never in practice: the description is plain data.
pub fn to_bytes(
    model: &PoseModel,
    frame_size: [usize; 2],
) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let mut tensors = NamedTensors::new();
    put_named(&mut tensors, "", &model.params);
    let saved = SavedModel {
        format: MODEL_FORMAT.to_owned(),
        config: model.config.clone(),
        frame_size,
    };
    Ok((
        serde_json::to_vec_pretty(&saved)?,
        write_safetensors(&tensors),
    ))
}

/// The model in `description` (`model.json`'s bytes) and `weights` (`model.safetensors`'s),
/// and the frame size it reads.
///
/// # Errors
/// [`SavedModelError`] naming the file: not a pose model description, another format, an
/// architecture or frame size out of range, or parameters missing or of another shape.
pub fn from_bytes(
    description: &[u8],
    weights: &[u8],
    device: &Device,
) -> Result<(PoseModel, [usize; 2]), SavedModelError> {
    let saved: SavedModel = serde_json::from_slice(description)
        .map_err(|e| description_error(format!("not a fuselab pose model description ({e})")))?;
    if saved.format != MODEL_FORMAT {
        return Err(description_error(format!(
            "format `{}`, expected `{MODEL_FORMAT}`",
            saved.format
        )));
    }
    if let Some(side) = saved
        .frame_size
        .into_iter()
        .find(|&s| !(MIN_SIDE..=MAX_SIDE).contains(&s) || !s.is_multiple_of(STRIDE))
    {
        return Err(description_error(format!(
            "`frame_size` has a side of {side} pixels, expected a multiple of {STRIDE} from {MIN_SIDE} to {MAX_SIDE}"
        )));
    }
    let mut model =
        PoseModel::init(&saved.config, device, 0).map_err(|e| description_error(e.to_string()))?;
    let tensors = read_safetensors(weights, WEIGHTS_FILE).map_err(|e| SavedModelError {
        file: WEIGHTS_FILE,
        what: e.what,
    })?;
    model.params =
        take_named(&tensors, "", &model.params, device).map_err(|what| SavedModelError {
            file: WEIGHTS_FILE,
            what,
        })?;
    Ok((model, saved.frame_size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::config::PoseVariant;

    fn small() -> PoseConfig {
        PoseConfig {
            variant: PoseVariant::Fusion,
            width: 8,
            offset_groups: 2,
            jmml_blocks: 1,
            ..PoseConfig::default()
        }
    }

    #[test]
    fn a_model_comes_back_from_its_bytes_with_every_parameter() {
        let device = Device::flex();
        let model = PoseModel::init(&small(), &device, 5).unwrap();
        let (json, weights) = to_bytes(&model, [48, 32]).unwrap();
        let (back, size) = from_bytes(&json, &weights, &device).unwrap();
        assert_eq!(size, [48, 32]);
        assert_eq!(back.config, model.config);
        for (name, p) in &model.params {
            let q = &back.params[name];
            assert_eq!(
                crate::llm::values(p.clone()),
                crate::llm::values(q.clone()),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_and_the_problem() {
        let device = Device::flex();
        let model = PoseModel::init(&small(), &device, 5).unwrap();
        let (json, weights) = to_bytes(&model, [48, 32]).unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        let refused = |json: &[u8], weights: &[u8]| from_bytes(json, weights, &device).unwrap_err();

        let e = refused(b"{", &weights);
        assert_eq!(e.file, DESCRIPTION_FILE);
        assert!(e.what.contains("not a fuselab pose model"), "{e}");
        let e = refused(text.replace("model/v1", "model/v9").as_bytes(), &weights);
        assert!(e.what.contains("model/v9"), "{e}");
        let e = refused(text.replace("48", "50").as_bytes(), &weights);
        assert!(
            e.what.contains("`frame_size`") && e.what.contains("50"),
            "{e}"
        );
        let e = refused(&json, b"not safetensors");
        assert_eq!(e.file, WEIGHTS_FILE);
        let other = PoseModel::init(
            &PoseConfig {
                width: 16,
                ..small()
            },
            &device,
            5,
        )
        .unwrap();
        let (_, wider) = to_bytes(&other, [48, 32]).unwrap();
        let e = refused(&json, &wider);
        assert!(e.what.contains("shape"), "{e}");
    }
}
