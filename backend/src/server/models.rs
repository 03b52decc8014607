//! `GET /api/models/face/{file}`: the face stack's weights for the browser, which runs the same
//! models on the user's photos without uploading them.

use std::path::Path;

use axum::{
    extract::{Path as UrlPath, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use fuselab_ml::tensors::write_safetensors;

use super::{AppError, AppState};
use crate::{face::read_checkpoint, models::MODELS_DIR};

/// What the browser may ask for. The `.safetensors` files are facenet-pytorch's MTCNN
/// checkpoints converted on the fly: reading a `PyTorch` checkpoint needs a file system.
const FACE_FILES: [&str; 7] = [
    "pnet.safetensors",
    "rnet.safetensors",
    "onet.safetensors",
    "shape_predictor_5_face_landmarks.dat",
    "dlib_face_recognition_resnet_model_v1.dat",
    "faceres.json",
    "faceres.bin",
];

/// `GET /api/models/face/{file}`.
pub async fn face_file(
    State(config): State<AppState>,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, AppError> {
    if !FACE_FILES.contains(&file.as_str()) {
        return Err(AppError::client(
            StatusCode::NOT_FOUND,
            format!(
                "no face model file `{file}`; the files are {}",
                FACE_FILES.join(", ")
            ),
        ));
    }
    let missing = || {
        AppError::client(
            StatusCode::NOT_FOUND,
            format!(
                "this server has no face models yet: its operator runs `fuselab models fetch` (missing: {file})"
            ),
        )
    };
    let dir = config
        .data_dir
        .as_ref()
        .ok_or_else(missing)?
        .join(MODELS_DIR)
        .join("face");
    let source = match file.strip_suffix(".safetensors") {
        Some(net) => dir.join(format!("{net}.pt")),
        None => dir.join(&file),
    };
    if !source.is_file() {
        return Err(missing());
    }
    let bytes = tokio::task::spawn_blocking(move || read(&source))
        .await
        .map_err(|e| AppError::Internal {
            context: "reading a face model",
            source: e.into(),
        })?
        .map_err(|source| AppError::Internal {
            context: "reading a face model",
            source,
        })?;
    let mime = if file == "faceres.json" {
        "application/json"
    } else {
        "application/octet-stream"
    };
    // The files are pinned by SHA-256 in `fuselab models fetch`: their content never changes.
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=604800"),
        ],
        bytes,
    )
        .into_response())
}

fn read(source: &Path) -> anyhow::Result<Vec<u8>> {
    if source.extension().is_some_and(|e| e == "pt") {
        Ok(write_safetensors(&read_checkpoint(source)?))
    } else {
        Ok(std::fs::read(source)?)
    }
}
