//! The face stack against the original implementations' numbers: dlib 19.24 through
//! `face_recognition` 1.3.0 and facenet-pytorch 2.6.0's MTCNN, recorded in `golden/faces.json` by
//! `golden/make_golden.py`. Needs the files `fuselab models fetch` caches under
//! `$FUSELAB_DATA_DIR` (the test command fetches them first).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fuselab::face::load_photo;
use fuselab::models::require;
use fuselab_ml::face::{
    DlibResNet, RgbImage, chip,
    shape::{Rect, ShapePredictor},
};
use serde_json::Value;

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("FUSELAB_DATA_DIR").expect(
        "FUSELAB_DATA_DIR is not set: run `fuselab --data-dir DIR models fetch` and point \
         FUSELAB_DATA_DIR at DIR (scripts/test.sh does both)",
    );
    PathBuf::from(dir)
}

fn model(name: &str) -> Vec<u8> {
    let path = require(&data_dir(), &format!("face/{name}")).unwrap_or_else(|e| panic!("{e:#}"));
    std::fs::read(&path).unwrap()
}

fn photo(name: &str) -> RgbImage {
    let path = require(&data_dir(), &format!("photos/{name}")).unwrap_or_else(|e| panic!("{e:#}"));
    load_photo(&path).unwrap()
}

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/faces.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn golden_chip(name: &str) -> RgbImage {
    load_photo(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/chips")
            .join(name),
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn descriptor(net: &DlibResNet, chip: &RgbImage, device: &Device) -> Vec<f64> {
    let out = net.forward(chip.to_tensor(device));
    out.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Every face dlib found: (photo, face index, golden record).
fn faces(golden: &Value) -> Vec<(String, usize, Value)> {
    let mut out = Vec::new();
    for (name, record) in golden["photos"].as_object().unwrap() {
        for (i, face) in record["dlib"].as_array().unwrap().iter().enumerate() {
            out.push((name.clone(), i, face.clone()));
        }
    }
    out
}

#[test]
fn dlib_resnet_matches_dlib_on_its_own_chips() {
    let device = Device::flex();
    let net = DlibResNet::from_bytes(&model("dlib_face_recognition_resnet_model_v1.dat"), &device)
        .unwrap();
    let golden = golden();
    for (name, i, face) in faces(&golden) {
        let chip = golden_chip(face["chip"].as_str().unwrap());
        let ours = descriptor(&net, &chip, &device);
        let theirs = floats(&face["descriptor_of_chip"]);
        let cos = cosine(&ours, &theirs);
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("{name}#{i}: cosine {cos:.7}, largest difference {worst:.2e}");
        assert!(cos >= 0.999, "{name}#{i}: cosine {cos}");
        assert!(worst < 1e-3, "{name}#{i}: largest difference {worst}");
    }
}

/// dlib's 5 landmarks, its chips and its descriptors, from the photos. JPEG decoders differ by up
/// to 3 levels on a few pixels (image's zune-jpeg here, libjpeg-turbo under PIL for the
/// reference), and the regression trees compare pixel pairs, so a landmark can move by a pixel
/// or two on the JPEGs; on the PNG everything is bit-exact. Hence two checks: the chip and the
/// descriptor from dlib's own landmarks (the alignment and the network), and the whole pipeline
/// from ours.
#[test]
fn landmarks_chips_and_descriptors_match_dlib() {
    let device = Device::flex();
    let predictor =
        ShapePredictor::from_bytes(&model("shape_predictor_5_face_landmarks.dat")).unwrap();
    assert_eq!(predictor.parts(), 5);
    let net = DlibResNet::from_bytes(&model("dlib_face_recognition_resnet_model_v1.dat"), &device)
        .unwrap();
    let golden = golden();
    for (name, i, face) in faces(&golden) {
        let image = photo(&name);
        let r: Vec<i64> = face["rect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let rect = Rect {
            left: r[0],
            top: r[1],
            right: r[2],
            bottom: r[3],
        };
        let parts = predictor.predict(&image, rect);
        let expected: Vec<[i64; 2]> = face["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| [p[0].as_i64().unwrap(), p[1].as_i64().unwrap()])
            .collect();
        let off = parts
            .iter()
            .zip(&expected)
            .map(|(p, e)| (p[0] - e[0]).abs().max((p[1] - e[1]).abs()))
            .max()
            .unwrap();
        let lossless = Path::new(&name).extension().is_some_and(|e| e == "png");
        assert!(
            off <= if lossless { 0 } else { 2 },
            "{name}#{i}: landmarks {parts:?}, dlib's {expected:?}"
        );

        let points = |p: &[[i64; 2]]| -> [[f64; 2]; 5] {
            std::array::from_fn(|k| [p[k][0] as f64, p[k][1] as f64])
        };
        let theirs = floats(&face["descriptor"]);
        let aligned = chip::extract(&image, &chip::placement(&points(&expected), 150, 0.25));
        let reference = golden_chip(face["chip"].as_str().unwrap());
        let worst = aligned
            .pixels
            .iter()
            .zip(&reference.pixels)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap();
        assert!(
            worst <= if lossless { 0 } else { 3 },
            "{name}#{i}: chip differs by {worst}"
        );
        let cos = cosine(&descriptor(&net, &aligned, &device), &theirs);
        assert!(
            cos >= 0.9999,
            "{name}#{i}: descriptor cosine {cos} on dlib's landmarks"
        );

        let own = chip::extract(&image, &chip::placement(&points(&parts), 150, 0.25));
        let own_cos = cosine(&descriptor(&net, &own, &device), &theirs);
        println!(
            "{name}#{i}: landmarks within {off} px; chip within {worst}; cosine {cos:.7} on \
             dlib's landmarks, {own_cos:.7} on ours"
        );
        assert!(
            own_cos >= 0.997,
            "{name}#{i}: descriptor cosine {own_cos} on our landmarks"
        );
    }
}
