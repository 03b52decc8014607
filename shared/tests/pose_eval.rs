//! COCO keypoint AP against pycocotools 2.0.10 itself, on the seeded people and predictions of
//! `golden/make_coco_keypoints_golden.py` (several people per image, unlabelled joints, people
//! with no labelled joint, misses, false positives and tied scores).

use fuselab_shared::pose::eval::{Person, Prediction, Scene, coco_keypoint_stats};
use serde_json::Value;

fn triples(v: &Value) -> Vec<[f64; 3]> {
    let flat: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

#[test]
fn keypoint_ap_matches_pycocotools() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/coco_keypoints.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut scenes = vec![Scene::default(); 41];
    for a in golden["annotations"].as_array().unwrap() {
        let kp = triples(&a["keypoints"]);
        let bbox: Vec<f64> = a["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0, 1 or 2
        let person = Person {
            keypoints: std::array::from_fn(|k| [kp[k][0], kp[k][1]]),
            visibility: std::array::from_fn(|k| kp[k][2] as u8),
            area: a["area"].as_f64().unwrap(),
            bbox: [bbox[0], bbox[1], bbox[2], bbox[3]],
        };
        scenes[usize::try_from(a["image_id"].as_u64().unwrap()).unwrap()]
            .people
            .push(person);
    }
    for r in golden["results"].as_array().unwrap() {
        let kp = triples(&r["keypoints"]);
        scenes[usize::try_from(r["image_id"].as_u64().unwrap()).unwrap()]
            .predictions
            .push(Prediction {
                keypoints: std::array::from_fn(|k| [kp[k][0], kp[k][1]]),
                score: r["score"].as_f64().unwrap(),
            });
    }
    let ours = coco_keypoint_stats(&scenes);
    let theirs = &golden["stats"];
    for (name, value) in [
        ("AP", ours.ap),
        ("AP50", ours.ap50),
        ("AP75", ours.ap75),
        ("APm", ours.ap_medium),
        ("APl", ours.ap_large),
        ("AR", ours.ar),
        ("AR50", ours.ar50),
        ("AR75", ours.ar75),
        ("ARm", ours.ar_medium),
        ("ARl", ours.ar_large),
    ] {
        let want = theirs[name].as_f64().unwrap();
        assert!(
            (value - want).abs() < 1e-12,
            "{name}: ours {value}, pycocotools {want}"
        );
    }
}
