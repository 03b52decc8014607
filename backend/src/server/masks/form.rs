//! The form of `POST /api/masks`: the photos' bytes and the training settings, each field
//! range-checked with a 422 that names it.

use axum::{extract::Multipart, http::StatusCode};
use fuselab_ml::mask::MaskConfig;
use zeroize::Zeroizing;

use super::{MAX_EPOCHS, MAX_PHOTOS, MIN_PHOTOS};
use crate::server::AppError;

/// What the form of `POST /api/masks` asked for, as [`read_form`] reads it.
pub struct Request {
    /// The photos, each as its file name (`photo` when the part has none) and its bytes, not
    /// yet decoded.
    pub photos: Vec<(String, Vec<u8>)>,
    /// The training settings: the defaults with `epochs`, `tau`, `epsilon` and `seed` as sent.
    pub config: MaskConfig,
    /// The face models the mask is trained against (`dlib`, `faceres`).
    pub models: Vec<String>,
    /// The passphrase the key is encrypted with, if any. Wiped from memory when the job ends.
    pub passphrase: Option<Zeroizing<String>>,
    /// Whether the server keeps the key after its first download.
    pub keep: bool,
}

/// Names and sizes of the photos, never their bytes nor the passphrase.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let photos: Vec<(&str, usize)> = self
            .photos
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.len()))
            .collect();
        f.debug_struct("Request")
            .field("photos", &photos)
            .field("config", &self.config)
            .field("models", &self.models)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("keep", &self.keep)
            .finish()
    }
}

pub(super) fn bad(message: impl Into<String>) -> AppError {
    AppError::client(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Reads the multipart form of `POST /api/masks`: every `photo` part's bytes (at most
/// `MAX_PHOTOS`), the other fields range-checked, the photo count and the model names checked
/// at the end. The photos are not decoded here.
///
/// # Errors
/// [`AppError`]: a malformed body (axum's multipart rejection, with its status), more photos
/// than allowed, too few, an unknown field or model, or a value out of range (422 naming it).
pub async fn read_form(mut form: Multipart) -> Result<Request, AppError> {
    let mut request = Request {
        photos: Vec::new(),
        config: MaskConfig::default(),
        models: vec!["dlib".to_owned(), "faceres".to_owned()],
        passphrase: None,
        keep: false,
    };
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::client(e.status(), e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "photo" {
            if request.photos.len() == MAX_PHOTOS {
                return Err(bad(format!(
                    "a mask is learned from {MIN_PHOTOS} to {MAX_PHOTOS} photos of you; this \
                     request has more"
                )));
            }
            let file = field.file_name().unwrap_or("photo").to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::client(e.status(), e.body_text()))?;
            request.photos.push((file, bytes.to_vec()));
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| AppError::client(e.status(), e.body_text()))?;
        set_field(&mut request, &name, text)?;
    }
    if request.photos.len() < MIN_PHOTOS || request.photos.len() > MAX_PHOTOS {
        return Err(bad(format!(
            "a mask is learned from {MIN_PHOTOS} to {MAX_PHOTOS} photos of you (5 to 20 work well); got {}",
            request.photos.len()
        )));
    }
    for model in &request.models {
        if !matches!(model.as_str(), "dlib" | "faceres") {
            return Err(bad(format!(
                "field `models`: unknown model `{model}`; the models are dlib and faceres"
            )));
        }
    }
    Ok(request)
}

/// Sets the form field `name` (anything but a photo) from its text, range-checked.
fn set_field(request: &mut Request, name: &str, text: String) -> Result<(), AppError> {
    let number = |what: &str| -> Result<f64, AppError> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("field `{what}`: expected a number, got `{text}`")))
    };
    // The values are range-checked below and by MaskTrainer::new.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    match name {
        "epochs" => {
            let v = number("epochs")?;
            if !(1.0..=MAX_EPOCHS as f64).contains(&v) || v.fract() != 0.0 {
                return Err(bad(format!(
                    "field `epochs`: expected a whole number from 1 to {MAX_EPOCHS}, got `{text}`"
                )));
            }
            request.config.epochs = v as usize;
        }
        "tau" => {
            let v = number("tau")?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!(
                    "field `tau`: expected a DSSIM budget from 0 to 1, got `{text}`"
                )));
            }
            request.config.tau = v as f32;
        }
        "epsilon" => {
            let v = number("epsilon")?;
            if !(v > 0.0 && v <= 255.0) {
                return Err(bad(format!(
                    "field `epsilon`: expected a pixel bound above 0 and at most 255, got `{text}`"
                )));
            }
            request.config.epsilon = v as f32;
        }
        "seed" => {
            request.config.seed = text.trim().parse().map_err(|_| {
                bad(format!(
                    "field `seed`: expected a whole number, got `{text}`"
                ))
            })?;
        }
        "models" => {
            request.models = text.split(',').map(|m| m.trim().to_owned()).collect();
        }
        "passphrase" => {
            request.passphrase = Some(Zeroizing::new(text)).filter(|p| !p.is_empty());
        }
        "keep" => request.keep = text.trim() == "true",
        other => return Err(bad(format!("unknown field `{other}`"))),
    }
    Ok(())
}
