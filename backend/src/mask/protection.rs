//! Judging a mask on held-out photos, for `mask verify` and `mask study`: the owner's photos
//! described once, the gallery of every other face at hand, and each held-out photo protected,
//! measured (face SSIM, PSNR) and judged by every model ([`super::judge`]): the face stack's
//! two, which masks train against, and mobileface, which no mask ever sees.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::tensor::Device;
use fuselab_ml::face::mobileface::{self, MobileFace};
use fuselab_ml::face::{Face, FaceEmbedder as _, FaceStack, RgbImage};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::judge::{Judge, Labelled, Measure, ModelVerdicts};
use super::verify::{identity, mirrored};
use super::{apply::mask_faces, hex, train::jpeg_round_trip};
use crate::face::{PhotoError, decode_photo, load_photo};

/// Photos of other people that `fuselab models fetch` caches: always in the gallery.
const OFFLINE_OTHERS: [&str; 2] = ["photos/biden.jpg", "photos/astronaut.png"];

/// What a gallery this small can and cannot show, said with every result.
pub const GALLERY_NOTE: &str = "The gallery holds only the faces at hand. Identification among \
     so few says whether your nearest face is still yours; it cannot say how you would rank in \
     a search over millions of faces. Verification at each model's threshold does not depend \
     on the gallery and is the stronger test here.";

/// A described photo: its name, identity and face.
pub(super) struct Described {
    /// The file, and the variant when it is one.
    pub name: String,
    /// Who it shows.
    pub identity: String,
    /// Its face.
    pub face: Face,
    /// mobileface's embedding of it (`None` when its landmarks coincide).
    pub mobileface: Option<Vec<f32>>,
}

/// Every model that judges, in the order of the results.
pub(super) const JUDGES: [&str; 3] = ["dlib", "faceres", "mobileface"];

/// The models that judge: the face stack and mobileface.
#[derive(Clone, Copy)]
pub(super) struct Judges<'a> {
    /// MTCNN, dlib and faceres.
    pub stack: &'a FaceStack,
    /// The model no mask trains against.
    pub mobileface: &'a MobileFace,
}

impl Judges<'_> {
    /// `face` of `image` with mobileface's embedding (`ArcFace`'s alignment from MTCNN's landmarks).
    fn describe(self, image: &RgbImage, face: Face, name: String, identity: String) -> Described {
        let device: &Device = &self.stack.device;
        let mobileface = mobileface::align(image, &face.detection.landmarks).map(|chip| {
            self.mobileface
                .forward(chip.to_tensor(device))
                .into_data()
                .iter::<f32>()
                .collect()
        });
        Described {
            name,
            identity,
            face,
            mobileface,
        }
    }
}

/// The largest face of an image, or an error naming the photo.
fn largest_face(stack: &FaceStack, image: &RgbImage, name: &str) -> anyhow::Result<Face> {
    stack.faces(image).into_iter().next().ok_or_else(|| {
        PhotoError {
            path: name.to_owned(),
            what: "no face found".to_owned(),
        }
        .into()
    })
}

/// The image's centre, `keep` of each side.
fn centre_crop(image: &RgbImage, keep: f32) -> RgbImage {
    // Sides are image dimensions and keep ≤ 1, so the casts are exact enough and in range.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let side = |n: usize| ((n as f32 * keep).round() as usize).clamp(1, n);
    let (w, h) = (side(image.width), side(image.height));
    let (left, top) = ((image.width - w) / 2, (image.height - h) / 2);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in top..top + h {
        let start = (row * image.width + left) * 3;
        pixels.extend_from_slice(&image.pixels[start..start + w * 3]);
    }
    RgbImage {
        width: w,
        height: h,
        pixels,
    }
}

/// Every other person's face at hand: the offline photos and `others`, each also mirrored and
/// cropped to its centre (labelled as such; a variant whose face is lost is left out).
pub(super) fn gallery(
    judges: Judges<'_>,
    data_dir: &Path,
    others: &[PathBuf],
) -> anyhow::Result<Vec<Described>> {
    let mut paths: Vec<(PathBuf, String)> = Vec::new();
    for cached in OFFLINE_OTHERS {
        let path = crate::models::require(data_dir, cached)?;
        let identity = identity(path.parent().unwrap_or(Path::new(".")), &path);
        paths.push((path, identity));
    }
    for path in others {
        // One identity per file: the owner's photos are never among them.
        paths.push((path.clone(), format!("other:{}", path.display())));
    }
    let mut faces = Vec::new();
    for (path, identity) in paths {
        let image = load_photo(&path)?;
        let name = path.display().to_string();
        let face = largest_face(judges.stack, &image, &name)?;
        faces.push(judges.describe(&image, face, name.clone(), identity.clone()));
        for (variant, image) in [
            ("mirrored", mirrored(&image)),
            ("cropped", centre_crop(&image, 0.8)),
        ] {
            if let Some(face) = judges.stack.faces(&image).into_iter().next() {
                let name = format!("{name} ({variant})");
                faces.push(judges.describe(&image, face, name, identity.clone()));
            }
        }
    }
    Ok(faces)
}

/// One protected photo's quality figures.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Quality {
    /// The photo.
    pub photo: String,
    /// Face SSIM, protected against clean.
    pub ssim: Option<f64>,
    /// Face PSNR, dB.
    pub psnr: Option<f64>,
}

/// The key owner's photos, described once.
pub(super) struct Owner {
    /// Each photo's face, in file order.
    pub faces: Vec<Described>,
    /// Each photo's decoded image.
    pub images: Vec<RgbImage>,
    /// Each photo file's SHA-256, hex.
    pub hashes: Vec<String>,
}

impl Owner {
    /// Reads and describes `paths`; every photo must show a face.
    pub fn read(judges: Judges<'_>, paths: &[PathBuf]) -> anyhow::Result<Self> {
        let mut owner = Self {
            faces: Vec::new(),
            images: Vec::new(),
            hashes: Vec::new(),
        };
        for path in paths {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.display().to_string();
            let image = decode_photo(&bytes, &name)?;
            let face = largest_face(judges.stack, &image, &name)?;
            owner
                .faces
                .push(judges.describe(&image, face, name, "owner".to_owned()));
            owner.images.push(image);
            owner.hashes.push(hex(&Sha256::digest(&bytes)));
        }
        Ok(owner)
    }
}

/// Held-out photos protected and judged.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Judged {
    /// Per held-out photo, what the mask cost its face.
    pub quality: Vec<Quality>,
    /// Per model, the verdicts.
    pub models: Vec<ModelVerdicts>,
}

/// Protects each `held_out` photo of `owner` with `delta` (then a JPEG round trip at
/// `jpeg_quality`, if given) and judges the copies against `owner`'s clean photos and `others`.
///
/// # Errors
/// A failed JPEG round trip.
pub(super) fn judge_held_out(
    judges: Judges<'_>,
    owner: &Owner,
    held_out: &[usize],
    others: &[Described],
    delta: &[f32],
    jpeg_quality: Option<u8>,
) -> anyhow::Result<Judged> {
    let mut protected = Vec::new();
    let mut quality = Vec::new();
    for &index in held_out {
        let mut masked = owner.images[index].clone();
        let face = &owner.faces[index];
        let change = mask_faces(
            &mut masked,
            std::slice::from_ref(&face.face.detection),
            delta,
            1.0,
        );
        if let Some(q) = jpeg_quality {
            masked.pixels = jpeg_round_trip(&masked.pixels, masked.width, masked.height, q)?;
        }
        quality.push(Quality {
            photo: face.name.clone(),
            ssim: change.first().and_then(|c| c.ssim),
            psnr: change.first().and_then(|c| c.psnr),
        });
        // A protected copy with no face found evades every model: it is judged as missing.
        let found = judges.stack.faces(&masked).into_iter().next();
        protected.push((
            index,
            found.map(|f| judges.describe(&masked, f, face.name.clone(), face.identity.clone())),
        ));
    }
    Ok(Judged {
        quality,
        models: judge_all(judges, &owner.faces, others, &protected),
    })
}

/// Each model's verdicts on the protected copies (`None`: no face found in the copy).
fn judge_all(
    judges: Judges<'_>,
    owner: &[Described],
    others: &[Described],
    protected: &[(usize, Option<Described>)],
) -> Vec<ModelVerdicts> {
    let mut verdicts = Vec::new();
    for model in JUDGES {
        let pick = |d: &Described| -> Vec<f32> {
            match model {
                "dlib" => d.face.dlib.clone(),
                "faceres" => d.face.faceres.clone(),
                // Not alignable: as far from everyone as can be.
                _ => d
                    .mobileface
                    .clone()
                    .unwrap_or_else(|| vec![f32::INFINITY; 256]),
            }
        };
        let owner_d: Vec<Vec<f32>> = owner.iter().map(pick).collect();
        let others_d: Vec<Vec<f32>> = others.iter().map(pick).collect();
        let (owner_faces, other_faces) = (labelled(owner, &owner_d), labelled(others, &others_d));
        let judge = if let Some(t) = threshold(judges, model) {
            Judge::with_threshold(model, Measure::Distance, t)
        } else {
            let all: Vec<Labelled<'_>> = owner_faces.iter().chain(&other_faces).cloned().collect();
            let Some(judge) = Judge::calibrated(model, &all) else {
                continue;
            };
            judge
        };
        let mut probes = Vec::new();
        let mut clean = Vec::new();
        for (index, face) in protected {
            let name = &owner[*index].name;
            clean.push(judge.probe(name, &owner_d[*index], *index, &owner_faces, &other_faces));
            let descriptor = face.as_ref().map_or_else(
                // Not found: as far from everyone as can be.
                || vec![f32::INFINITY; owner_d[*index].len()],
                pick,
            );
            probes.push(judge.probe(name, &descriptor, *index, &owner_faces, &other_faces));
        }
        verdicts.push(ModelVerdicts::new(judge, probes, &clean));
    }
    verdicts
}

fn labelled<'a>(set: &'a [Described], descriptors: &'a [Vec<f32>]) -> Vec<Labelled<'a>> {
    set.iter()
        .zip(descriptors)
        .map(|(f, d)| Labelled {
            identity: &f.identity,
            name: &f.name,
            descriptor: d,
        })
        .collect()
}

fn threshold(judges: Judges<'_>, model: &str) -> Option<f32> {
    match model {
        "dlib" => judges.stack.dlib.info().same_person_below,
        "faceres" => judges.stack.faceres.info().same_person_below,
        _ => judges.mobileface.info().same_person_below,
    }
}
