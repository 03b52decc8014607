//! `fuselab face …`: photos in, faces out, with the face stack of `fuselab_ml::face`.

use std::path::Path;

use anyhow::Context as _;
use fuselab_ml::face::RgbImage;

/// Decodes a photo (JPEG or PNG) to 8-bit RGB, naming the file on failure.
///
/// # Errors
/// An unreadable file or one that is not a supported image.
pub fn load_photo(path: &Path) -> anyhow::Result<RgbImage> {
    let decoded = image::ImageReader::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .with_context(|| {
            format!(
                "{}: not a JPEG or PNG image this build can decode",
                path.display()
            )
        })?
        .into_rgb8();
    let (width, height) = decoded.dimensions();
    RgbImage::new(width as usize, height as usize, decoded.into_raw())
        .with_context(|| format!("{}: decoded size does not match its pixels", path.display()))
}
