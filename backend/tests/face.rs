//! The face stack against the original implementations' numbers: dlib 19.24 through
//! `face_recognition` 1.3.0 and facenet-pytorch 2.6.0's MTCNN, recorded in `golden/faces.json` by
//! `golden/make_golden.py`. Needs the files `fuselab models fetch` caches under
//! `$FUSELAB_DATA_DIR` (the test command fetches them first).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use fuselab::face::{load_photo, load_stack};
use fuselab::models::require;
use fuselab_ml::face::{
    DlibResNet, FaceEmbedder, RgbImage, chip,
    faceres::{Faceres, read_tfjs, resize_bilinear},
    mobileface,
    mtcnn::Detection,
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

fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
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
        let worst = largest_difference(&ours, &theirs);
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

#[test]
fn dlib_file_holds_the_layers_and_parameters_of_resnet_29() {
    use fuselab_ml::face::dlib::{Layer, read_metric_net};
    let net = read_metric_net(&model("dlib_face_recognition_resnet_model_v1.dat"), "dlib").unwrap();
    let count = |f: fn(&Layer) -> bool| net.layers.iter().filter(|l| f(l)).count();
    assert_eq!(count(|l| matches!(l, Layer::Conv { .. })), 29);
    assert_eq!(count(|l| matches!(l, Layer::Affine { .. })), 29);
    assert_eq!(count(|l| matches!(l, Layer::Relu)), 29);
    assert_eq!(count(|l| matches!(l, Layer::AddPrev)), 14);
    assert_eq!(count(|l| matches!(l, Layer::TagOrSkip)), 22);
    assert_eq!(count(|l| matches!(l, Layer::AvgPool { .. })), 5);
    assert_eq!(count(|l| matches!(l, Layer::MaxPool { .. })), 1);
    let floats: usize = net
        .layers
        .iter()
        .map(|l| match l {
            Layer::Conv { params, .. } | Layer::Affine { params } | Layer::Fc { params, .. } => {
                params.len()
            }
            _ => 0,
        })
        .sum();
    assert_eq!(floats, 5_614_592);
    assert_eq!(net.size, [150, 150]);
    // A cut file is an error naming where it ends, not a panic.
    let bytes = model("dlib_face_recognition_resnet_model_v1.dat");
    let error = read_metric_net(&bytes[..bytes.len() / 2], "dlib.dat").unwrap_err();
    assert!(
        error.to_string().starts_with("dlib.dat: ends at byte"),
        "{error}"
    );
}

fn stack() -> fuselab_ml::face::FaceStack {
    load_stack(&data_dir(), Device::flex()).unwrap()
}

#[test]
fn mtcnn_boxes_and_landmarks_are_within_2_px_of_facenet_pytorch() {
    let stack = stack();
    let golden = golden();
    for (name, record) in golden["photos"].as_object().unwrap() {
        let ours = stack.mtcnn.detect(&photo(name), &stack.device);
        let theirs = record["mtcnn"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: faces found");
        for (k, t) in theirs.iter().enumerate() {
            let bbox = floats(&t["box"]);
            // The same face: the one whose box is nearest.
            let o = ours
                .iter()
                .min_by(|a, b| {
                    let d = |d: &&Detection| {
                        (0..4)
                            .map(|i| (f64::from(d.bbox[i]) - bbox[i]).abs())
                            .sum::<f64>()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            let mut worst: f64 = 0.0;
            for (a, b) in o.bbox.iter().zip(&bbox) {
                worst = worst.max((f64::from(*a) - b).abs());
            }
            for (p, q) in o.landmarks.iter().zip(t["landmarks"].as_array().unwrap()) {
                let q = floats(q);
                worst = worst
                    .max((f64::from(p[0]) - q[0]).abs())
                    .max((f64::from(p[1]) - q[1]).abs());
            }
            println!(
                "{name} face {k}: box and landmarks within {worst:.2} px; score {:.4} vs {:.4}",
                o.score,
                t["score"].as_f64().unwrap()
            );
            assert!(worst <= 2.0, "{name} face {k}: {worst} px off");
        }
    }
}

#[test]
fn whole_pipeline_from_the_photo_agrees_with_face_recognition() {
    let stack = stack();
    let golden = golden();
    let mut descriptors = std::collections::BTreeMap::new();
    for (name, i, face) in faces(&golden) {
        let found = stack.faces(&photo(&name));
        // dlib's HOG detector also fires on the astronaut's mission patch; MTCNN does not.
        let r = floats(&face["rect"]);
        let (cx, cy) = (f64::midpoint(r[0], r[2]), f64::midpoint(r[1], r[3]));
        let detected = found.iter().any(|f| {
            let b = f.detection.bbox.map(f64::from);
            (b[0]..=b[2]).contains(&cx) && (b[1]..=b[3]).contains(&cy)
        });
        if !detected {
            println!("{name}#{i}: dlib's face at {r:?} is not one MTCNN finds");
            continue;
        }
        let expected: Vec<f64> = face["parts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        // The face whose landmarks are nearest dlib's.
        let ours = found
            .iter()
            .min_by_key(|f| {
                f.parts
                    .iter()
                    .flatten()
                    .zip(&expected)
                    .map(|(&a, &b)| (a as f64 - b).abs() as i64)
                    .sum::<i64>()
            })
            .unwrap();
        let off = ours
            .parts
            .iter()
            .flatten()
            .zip(&expected)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        let theirs = floats(&face["descriptor"]);
        let ours_f64: Vec<f64> = ours.dlib.iter().map(|&v| f64::from(v)).collect();
        let cos = cosine(&ours_f64, &theirs);
        println!(
            "{name}#{i}: landmarks from MTCNN's eyes within {off} px of dlib's; cosine {cos:.5}"
        );
        assert!(off <= 4.0, "{name}#{i}: landmarks {off} px off");
        assert!(cos >= 0.999, "{name}#{i}: cosine {cos}");
        descriptors.insert((name, i), ours_f64);
    }
    // face_recognition's verdicts, at its tolerance of 0.6, for every pair it recorded.
    for pair in golden["pairs"].as_array().unwrap() {
        let key = |photo: &str, face: &str| {
            (
                pair[photo].as_str().unwrap().to_owned(),
                pair[face].as_u64().unwrap() as usize,
            )
        };
        let (a, b) = (key("a", "a_face"), key("b", "b_face"));
        let (Some(da), Some(db)) = (descriptors.get(&a), descriptors.get(&b)) else {
            continue;
        };
        let d = da
            .iter()
            .zip(db)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt();
        let reference = pair["distance"].as_f64().unwrap();
        println!("{a:?} vs {b:?}: distance {d:.4} (face_recognition {reference:.4})");
        assert_eq!(
            d < 0.6,
            pair["same"].as_bool().unwrap(),
            "{a:?} vs {b:?}: {d}"
        );
    }
}

/// ∂loss/∂pixels from burn's autodiff against central finite differences, along a random ±1
/// direction over a 16×16 patch of the chip, for each embedder.
#[test]
fn embedding_gradients_match_finite_differences() {
    let device = Device::flex();
    let net = DlibResNet::from_bytes(&model("dlib_face_recognition_resnet_model_v1.dat"), &device)
        .unwrap();
    let second = faceres();
    let chip_image = golden_chip("obama-0.png");
    let embedders: [(&dyn FaceEmbedder, Tensor<4>); 2] = [
        (&net, chip_image.to_tensor(&device)),
        (&second, resize_bilinear(&chip_image, 224, &device)),
    ];
    for (embedder, clean) in embedders {
        let [_, _, side, _] = clean.dims();
        let target = embedder.embed(clean.clone());
        // A patch over the left eye; a fixed pseudo-random direction.
        let mut direction = vec![0.0_f32; 3 * side * side];
        let mut state = 0x2545_f491_u32;
        for c in 0..3 {
            for y in 40..56 {
                for x in 40..56 {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    direction[c * side * side + y * side + x] =
                        if state & 1 == 0 { 1.0 } else { -1.0 };
                }
            }
        }
        let direction =
            Tensor::<4>::from_data(TensorData::new(direction, [1, 3, side, side]), &device);
        // Start a little away from the clean chip, where the angle's gradient is well defined.
        let start = clean.clone() + direction.clone().mul_scalar(2.0);
        let loss = |x: Tensor<4>| -> Tensor<1> {
            let e = embedder.embed(x);
            let chord = (e - target.clone()).square().sum_dim(1).sqrt();
            chord.div_scalar(2.0).asin().mul_scalar(2.0).reshape([1])
        };
        let leaf = start.clone().autodiff().require_grad();
        let grads = loss(leaf.clone()).backward();
        let gradient = leaf.grad(&grads).unwrap();
        let analytic: f32 = (gradient * direction.clone()).sum().into_scalar();
        let eps = 0.5;
        let plus: f32 = loss(start.clone() + direction.clone().mul_scalar(eps)).into_scalar();
        let minus: f32 = loss(start - direction.mul_scalar(eps)).into_scalar();
        let numeric = (plus - minus) / (2.0 * eps);
        let relative = (analytic - numeric).abs() / numeric.abs().max(1e-6);
        println!(
            "{}: directional derivative {analytic:.6e} (autodiff) vs {numeric:.6e} (finite difference), relative error {relative:.3}",
            embedder.info().name
        );
        assert!(analytic.abs() > 1e-6, "the gradient vanished");
        assert!(relative < 0.05, "relative error {relative}");
    }
}

fn fuselab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fuselab"))
        .arg("--data-dir")
        .arg(data_dir())
        .args(args)
        .output()
        .unwrap()
}

fn photo_path(name: &str) -> String {
    require(&data_dir(), &format!("photos/{name}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn cli_compare_gives_face_recognitions_verdicts() {
    for (a, b, verdict) in [
        ("obama.jpg", "obama2.jpg", "same"),
        ("obama.jpg", "biden.jpg", "different"),
    ] {
        let out = fuselab(&["face", "compare", &photo_path(a), &photo_path(b)]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{a} vs {b}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("dlib: distance ") && first.ends_with(&format!(": {verdict}")),
            "{text}"
        );
        assert!(text.contains("faceres: angle "), "{text}");
        let out = fuselab(&["face", "compare", "--json", &photo_path(a), &photo_path(b)]);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["models"][0]["model"], "dlib");
        assert_eq!(json["models"][0]["same_person"], verdict == "same");
        assert_eq!(json["models"][1]["model"], "faceres");
        assert!(json["models"][1]["same_person"].is_null());
    }
}

#[test]
fn cli_detect_reports_faces_and_refuses_what_is_not_a_photo() {
    let dir = std::env::temp_dir().join(format!("fuselab-face-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let annotated = dir.join("annotated.png");
    let out = fuselab(&[
        "face",
        "detect",
        "--json",
        "--annotate",
        annotated.to_str().unwrap(),
        &photo_path("astronaut.png"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["faces"].as_array().unwrap().len(), 1);
    assert!(json["faces"][0]["score"].as_f64().unwrap() > 0.99);
    assert_eq!(load_photo(&annotated).unwrap().width, 512);

    // A blank image has no face: compare says which photo, exit 2.
    let blank = dir.join("blank.png");
    image::save_buffer(
        &blank,
        &vec![128_u8; 64 * 64 * 3],
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let out = fuselab(&[
        "face",
        "compare",
        blank.to_str().unwrap(),
        &photo_path("obama.jpg"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("blank.png: no face found"), "{stderr}");
    // Not an image at all.
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not a photo").unwrap();
    let out = fuselab(&["face", "detect", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.jpg: not a JPEG, PNG or WebP"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn faceres() -> Faceres {
    let weights = read_tfjs(
        &String::from_utf8(model("faceres.json")).unwrap(),
        &model("faceres.bin"),
    )
    .unwrap();
    Faceres::from_tensors(&weights, &Device::flex()).unwrap()
}

#[test]
fn faceres_matches_tensorflow_js_on_the_chips() {
    let device = Device::flex();
    let net = faceres();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/faceres.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut descriptors = std::collections::BTreeMap::new();
    for (name, theirs) in golden["chips"].as_object().unwrap() {
        let chip = golden_chip(name);
        let ours: Vec<f64> = net
            .forward(resize_bilinear(&chip, 224, &device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let theirs = floats(theirs);
        let cos = cosine(&ours, &theirs);
        let worst = largest_difference(&ours, &theirs);
        println!("{name}: cosine {cos:.7}, largest difference {worst:.2e}");
        assert!(cos >= 0.999, "{name}: cosine {cos}");
        descriptors.insert(name.clone(), ours);
    }
    // Identity: the three Obama chips are closer to each other than to Biden's (angles).
    let angle = |a: &str, b: &str| cosine(&descriptors[a], &descriptors[b]).acos();
    for (a, b) in [
        ("obama-0.png", "obama2-0.png"),
        ("obama-0.png", "obama3-0.png"),
    ] {
        println!(
            "faceres: {a}–{b} {:.3} rad; {a}–biden {:.3} rad",
            angle(a, b),
            angle(a, "biden-0.png")
        );
    }
}

/// mobileface against TensorFlow.js (`golden/make_mobileface_golden.mjs`): the network on the
/// same 112×112 chips, and the `ArcFace` alignment that cut them from the photos.
#[test]
fn mobileface_matches_tensorflow_js_and_aligns_as_it_does() {
    let device = Device::flex();
    let net = fuselab::face::load_mobileface(&data_dir(), &device).unwrap();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir.join("mobileface.json")).unwrap())
            .unwrap();
    let mut embeddings = std::collections::BTreeMap::new();
    for (name, face) in golden["faces"].as_object().unwrap() {
        let chip = load_photo(
            &golden_dir
                .join("chips112")
                .join(face["chip"].as_str().unwrap()),
        )
        .unwrap();
        let ours: Vec<f64> = net
            .forward(chip.to_tensor(&device))
            .into_data()
            .iter::<f32>()
            .map(f64::from)
            .collect();
        let theirs = floats(&face["embedding"]);
        let (cos, worst) = (cosine(&ours, &theirs), largest_difference(&ours, &theirs));
        println!("{name}: cosine {cos:.7}, largest difference {worst:.2e}");
        assert!(cos >= 0.99999, "{name}: cosine {cos}");

        // The alignment, from the same landmarks, on our decoding of the photo (JPEG decoders
        // may differ by a level or two).
        let landmarks: [[f32; 2]; 5] = std::array::from_fn(|k| {
            let p = floats(&face["landmarks"][k]);
            #[allow(clippy::cast_possible_truncation)]
            [p[0] as f32, p[1] as f32]
        });
        let similarity = mobileface::similarity(&landmarks).unwrap();
        for (ours, theirs) in similarity.iter().zip(floats(&face["similarity"])) {
            assert!(
                (ours - theirs).abs() < 1e-3 * theirs.abs().max(1.0),
                "{name}: {similarity:?}"
            );
        }
        let aligned = mobileface::align(&photo(name), &landmarks).unwrap();
        let off: Vec<u8> = aligned
            .pixels
            .iter()
            .zip(&chip.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let mean = off.iter().map(|&d| f64::from(d)).sum::<f64>() / off.len() as f64;
        let far = off.iter().filter(|&&d| d > 4).count();
        println!("{name}: aligned chip mean difference {mean:.3}, {far} values beyond 4 levels");
        assert!(
            mean < 1.0 && far * 200 < off.len(),
            "{name}: mean {mean}, far {far}"
        );
        embeddings.insert(name.clone(), ours);
    }
    // Identity: each Obama photo's nearest other face is another Obama photo.
    let cos = |a: &str, b: &str| cosine(&embeddings[a], &embeddings[b]);
    let obama = ["obama.jpg", "obama2.jpg", "obama3.jpg"];
    for a in obama {
        let same = obama
            .iter()
            .filter(|&&b| b != a)
            .map(|b| cos(a, b))
            .fold(-1.0, f64::max);
        let other = ["biden.jpg", "astronaut.png"]
            .map(|b| cos(a, b))
            .into_iter()
            .fold(-1.0, f64::max);
        println!("mobileface: {a} nearest other Obama cosine {same:.3}, other people {other:.3}");
        assert!(same > other, "{a}: {same} vs {other}");
    }
}

/// The browser loads the same weights from the server; MTCNN's arrive as safetensors converted
/// from the checkpoints, tensor for tensor.
#[tokio::test]
async fn the_server_hands_the_browser_the_same_weights() {
    use axum::body::{Body, to_bytes};
    use fuselab::server::{ServerConfig, app};
    use tower::ServiceExt as _;

    let get = |file: &str| {
        let file = file.to_owned();
        let router = app(ServerConfig {
            data_dir: Some(data_dir()),
            ..ServerConfig::default()
        });
        let request = axum::http::Request::get(format!("/api/models/face/{file}"))
            .body(Body::empty())
            .unwrap();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{file}");
            let cache = response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(cache.contains("max-age"), "{file}: {cache}");
            to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        }
    };
    for net in ["pnet", "rnet", "onet"] {
        let served = get(&format!("{net}.safetensors")).await;
        let served = fuselab_ml::tensors::read_safetensors(&served, net).unwrap();
        let path = require(&data_dir(), &format!("face/{net}.pt")).unwrap();
        assert_eq!(
            served,
            fuselab::face::read_checkpoint(&path).unwrap(),
            "{net}"
        );
    }
    assert_eq!(
        get("shape_predictor_5_face_landmarks.dat").await,
        model("shape_predictor_5_face_landmarks.dat")
    );
}

/// A photo larger than MTCNN needs is scaled down for detection, and the boxes come back in the
/// photo's own pixels: the obama photo enlarged five times gives five times its boxes.
#[test]
fn large_photos_are_detected_scaled_down_with_boxes_in_full_size_pixels() {
    let device = Device::flex();
    let mtcnn = fuselab::face::load_mtcnn(&data_dir(), &device).unwrap();
    let small = photo("obama.jpg");
    let buffer = image::RgbImage::from_raw(
        small.width as u32,
        small.height as u32,
        small.pixels.clone(),
    )
    .unwrap();
    let factor = 5;
    let large = image::imageops::resize(
        &buffer,
        small.width as u32 * factor,
        small.height as u32 * factor,
        image::imageops::FilterType::Triangle,
    );
    let (width, height) = large.dimensions();
    assert!(width.max(height) as usize > fuselab::face::DETECTION_SIDE);
    let large = RgbImage::new(width as usize, height as usize, large.into_raw()).unwrap();
    let expected = mtcnn.detect(&small, &device);
    let found = fuselab::face::detect_faces(&mtcnn, &large, &device);
    // At the detection scale the photo is still larger than the original, so MTCNN may find
    // more small faces; each face of the original is found at five times its place.
    assert!(found.len() >= expected.len(), "{found:?} vs {expected:?}");
    for e in &expected {
        let near = found.iter().any(|f| {
            f.bbox
                .iter()
                .zip(&e.bbox)
                .all(|(a, b)| (a - b * factor as f32).abs() < 0.02 * width as f32)
        });
        assert!(near, "{e:?} not among {found:?}");
    }
}
