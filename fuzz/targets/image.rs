//! Photos (`face detect|compare`, `mask train|apply|remove`, the server's mask jobs):
//! [`decode_photo`], which reads the dimensions from the header, refuses more than
//! `MAX_PHOTO_SIDE` a side or `MAX_PHOTO_PIXELS`, decodes JPEG, PNG or WebP under the `image`
//! crate's limits and turns the photo upright by its EXIF orientation.
//!
//! A photo may declare up to 120 megapixels in a few hundred bytes, and decoding that many
//! (gigabytes of pixels, seconds of work) is what the program allows; under the fuzzer it would
//! be an out-of-memory or timeout finding for every such input. So a photo is decoded here only
//! when its header declares at most [`MAX_FUZZ_PIXELS`], or more than the program accepts (then
//! it is refused before decoding, which is what is checked); the band in between only has its
//! header read.

use fuselab::face::{MAX_PHOTO_PIXELS, MAX_PHOTO_SIDE, decode_photo};

/// The most pixels a photo may declare to be decoded here: one megapixel.
pub const MAX_FUZZ_PIXELS: u64 = 1 << 20;

/// See the module documentation.
pub fn run(data: &[u8]) {
    decode(data, "photo");
}

/// Decodes `data` with [`decode_photo`] as the program does, unless its header declares more
/// than [`MAX_FUZZ_PIXELS`] and no more than the program accepts (see the module
/// documentation); checks that a decoded photo has the declared sides, possibly swapped by its
/// orientation.
pub fn decode(data: &[u8], name: &str) {
    let declared = image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok());
    let decode = declared.is_none_or(|(width, height)| {
        let pixels = u64::from(width) * u64::from(height);
        pixels <= MAX_FUZZ_PIXELS || width.max(height) > MAX_PHOTO_SIDE || pixels > MAX_PHOTO_PIXELS
    });
    if !decode {
        return;
    }
    if let Ok(photo) = decode_photo(data, name) {
        assert_eq!(photo.pixels.len(), photo.width * photo.height * 3);
        let (width, height) = declared.expect("a decoded photo has a header");
        let sides = [photo.width, photo.height];
        let declared = [width as usize, height as usize];
        assert!(
            sides == declared || sides == [declared[1], declared[0]],
            "decoded {sides:?}, declared {declared:?}"
        );
    }
}
