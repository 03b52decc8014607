//! dlib's serialisation (`.dat` model files): the metric network reader
//! ([`read_metric_net`], the face recognition ResNet's layers) and the shape predictor
//! ([`ShapePredictor::from_bytes`]). A predictor that parses also places its landmarks on a
//! small image, on a face rectangle inside it and one reaching outside, and computes the
//! rectangle for a pair of eyes, so the trees, anchors and deltas it accepted are walked.
//!
//! The ResNet built from the network (`DlibResNet::from_bytes`) is not fuzzed: it accepts only
//! the 29 convolutions of dlib's model with their real sizes (22 MB), which no input under
//! `-max_len` can reach past its first layer check.

use fuselab_ml::face::RgbImage;
use fuselab_ml::face::dlib::read_metric_net;
use fuselab_ml::face::shape::{Rect, ShapePredictor};

/// The image the landmarks are placed on: 16×16 pixels of a gradient.
fn image() -> RgbImage {
    let pixels = (0..16 * 16 * 3_u32).map(|i| (i * 7 % 256) as u8).collect();
    RgbImage::new(16, 16, pixels).expect("16·16·3 bytes")
}

/// See the module documentation.
pub fn run(data: &[u8]) {
    let _ = read_metric_net(data, "fuzz.dat");
    let Ok(predictor) = ShapePredictor::from_bytes(data) else {
        return;
    };
    let image = image();
    for rect in [
        Rect {
            left: 2,
            top: 2,
            right: 13,
            bottom: 13,
        },
        Rect {
            left: -40,
            top: 5,
            right: 60,
            bottom: 90,
        },
    ] {
        let landmarks = predictor.predict(&image, rect);
        assert_eq!(landmarks.len(), predictor.parts());
    }
    let _ = predictor.rect_for_eyes([4.0, 6.0], [11.0, 6.5]);
}
