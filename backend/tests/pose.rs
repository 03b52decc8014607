//! `fuselab pose data synthetic` as a process: the arrays NumPy reads, with the shapes and
//! ground truth of the generator; the same seed gives the same bytes; a folder made with other
//! settings is refused; a bad setting is refused naming it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fuselab_shared::npy::{NpyData, parse_npy};
use fuselab_shared::pose::{Split, SyntheticConfig, generate_clip};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-pose-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fuselab(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("FUSELAB_DATA_DIR", dir.join("data-dir"))
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "fuselab failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const SMALL: &str = "width = 48\nheight = 32\nframes = 3\ndistractor_probability = 0.5\n";

// The keypoints must come back bit for bit.
#[allow(clippy::float_cmp)]
#[test]
fn the_synthetic_benchmark_is_written_as_arrays_with_the_generators_ground_truth() {
    let dir = scratch("data");
    std::fs::write(dir.join("small.toml"), SMALL).unwrap();
    let args = [
        "pose",
        "data",
        "synthetic",
        "--out",
        "bench",
        "--config",
        "small.toml",
        "--seed",
        "7",
        "--train",
        "3",
        "--val",
        "1",
        "--test",
        "2",
    ];
    ok(&fuselab(&dir, &args));
    let out = dir.join("bench");
    let dataset: Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(dataset["format"], "fuselab.pose.synthetic/v1");
    assert_eq!(dataset["keypoints"][0], "nose");
    let config: SyntheticConfig = serde_json::from_value(dataset["config"].clone()).unwrap();
    assert_eq!((config.seed, config.width, config.train_clips), (7, 48, 3));

    for (split, clips) in [(Split::Train, 3), (Split::Val, 1), (Split::Test, 2)] {
        let read = |file: &str| {
            parse_npy(&std::fs::read(out.join(split.name()).join(file)).unwrap()).unwrap()
        };
        let frames = read("frames.npy");
        assert_eq!(frames.shape, [clips, 3, 32, 48, 3]);
        let keypoints = read("keypoints.npy");
        assert_eq!(keypoints.shape, [clips, 3, 17, 2]);
        let visibility = read("visibility.npy");
        assert_eq!(visibility.shape, [clips, 3, 17]);
        let (NpyData::Int(pixels), NpyData::Float(xy), NpyData::Int(v)) =
            (&frames.data, &keypoints.data, &visibility.data)
        else {
            panic!("unexpected dtypes");
        };
        // Every clip is the generator's, byte for byte.
        for index in 0..clips {
            let clip = generate_clip(&config, split, index).unwrap();
            let per_clip = 3 * 32 * 48 * 3;
            let written: Vec<u8> = pixels[index * per_clip..(index + 1) * per_clip]
                .iter()
                .map(|&p| u8::try_from(p).unwrap())
                .collect();
            let expected: Vec<u8> = clip.frames.iter().flat_map(|f| f.pixels.clone()).collect();
            assert_eq!(written, expected, "{split} clip {index}");
            for (t, label) in clip.labels.iter().enumerate() {
                for k in 0..17 {
                    let at = ((index * 3 + t) * 17 + k) * 2;
                    assert_eq!(xy[at], f64::from(label.keypoints[k][0]));
                    assert_eq!(xy[at + 1], f64::from(label.keypoints[k][1]));
                    assert_eq!(v[(index * 3 + t) * 17 + k], i64::from(label.visibility[k]));
                }
            }
        }
        let tags = std::fs::read_to_string(out.join(split.name()).join("clips.csv")).unwrap();
        assert_eq!(tags.lines().count(), clips + 1, "{tags}");
        assert!(
            tags.starts_with("clip,speed,mean_speed,blur_length"),
            "{tags}"
        );
    }
    assert!(out.join("preview.png").is_file());

    // The same command again: the folder holds this dataset already.
    let before = std::fs::read(out.join("train/frames.npy")).unwrap();
    ok(&fuselab(&dir, &args));
    assert_eq!(std::fs::read(out.join("train/frames.npy")).unwrap(), before);

    // Another seed into the same folder is refused.
    let mut other = args.to_vec();
    other[8] = "8";
    let refused = fuselab(&dir, &other);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("other settings"));

    // A bad setting is named.
    std::fs::write(dir.join("bad.toml"), "width = 100000\n").unwrap();
    let refused = fuselab(
        &dir,
        &[
            "pose",
            "data",
            "synthetic",
            "--out",
            "b2",
            "--config",
            "bad.toml",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("width"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A configuration that trains in seconds: 48×32 frames, a width-8 model, three epochs.
fn train_config(out: &str) -> String {
    format!(
        "out = \"{out}\"\nseed = 3\ntest_clips = 6\n\
         [data]\nwidth = 48\nheight = 32\nframes = 3\ntrain_clips = 40\nval_clips = 4\ntest_clips = 6\n\
         [model]\nwidth = 8\noffset_groups = 2\njmml_blocks = 1\n\
         [train]\nepochs = 3\nclips_per_epoch = 8\nbatch_size = 4\nval_clips = 4\n\
         [benchmark]\nrungs = [\"single_frame\", \"io\"]\nseeds = [1]\n"
    )
}

fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("FUSELAB_DATA_DIR", dir.join("data-dir"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `pose train` writes checkpoints, the model and the report (tables, per-bucket scores, the
/// paper's numbers labelled, sample frames); killed with SIGKILL after its first checkpoint,
/// a rerun resumes and ends exactly where an uninterrupted run does.
#[test]
fn pose_train_reports_and_resumes_after_sigkill() {
    let straight = scratch("straight");
    std::fs::write(straight.join("config.toml"), train_config("run")).unwrap();
    let args = ["pose", "train", "--json", "--config", "config.toml"];
    let expected: Value = serde_json::from_str(&ok(&fuselab(&straight, &args))).unwrap();
    for file in [
        "model.safetensors",
        "model.json",
        "metrics.jsonl",
        "results.md",
        "report.html",
        "samples.png",
    ] {
        assert!(
            straight.join("run").join(file).exists(),
            "{file} is missing"
        );
    }
    let markdown = std::fs::read_to_string(straight.join("run/results.md")).unwrap();
    assert!(
        markdown.contains("AP blur") && markdown.contains("not reproducible here"),
        "{markdown}"
    );
    let run = &expected["runs"][0];
    assert_eq!(run["epochs"], 3);
    let buckets: Vec<&str> = run["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(buckets, ["all", "blur", "occlusion", "fast", "clean"]);
    assert_eq!(run["test"][0]["scores"]["frames"], 6);

    let dir = scratch("kill");
    std::fs::write(dir.join("config.toml"), train_config("run")).unwrap();
    let mut child = spawn(&dir, &args);
    let state = dir.join("run/checkpoint.json");
    let started = std::time::Instant::now();
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_mins(5),
            "no checkpoint in 5 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.join("run/result.json").exists(),
        "the run finished before it was killed"
    );
    let resumed: Value = serde_json::from_str(&ok(&fuselab(&dir, &args))).unwrap();
    let (a, b) = (&expected["runs"][0], &resumed["runs"][0]);
    assert_eq!(a["history"].as_array().unwrap().len(), 3);
    assert_eq!(
        a["history"], b["history"],
        "the resumed run's epochs differ"
    );
    assert_eq!(a["test"], b["test"]);
}

/// `pose benchmark` trains each rung of the ladder and tables them by name.
#[test]
fn pose_benchmark_tables_the_rungs() {
    let dir = scratch("bench");
    std::fs::write(dir.join("config.toml"), train_config("bench")).unwrap();
    let report: Value = serde_json::from_str(&ok(&fuselab(
        &dir,
        &["pose", "benchmark", "--json", "--config", "config.toml"],
    )))
    .unwrap();
    let labels: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["single frame", "+ IO (JM-Pose)"]);
    assert!(dir.join("bench/runs/io-seed1/model.safetensors").exists());
    let bad = fuselab(&dir, &["pose", "train", "--config", "missing.toml"]);
    assert!(!bad.status.success());
    std::fs::write(dir.join("bad.toml"), "out = \"x\"\n[model]\nwidth = 30\n").unwrap();
    let bad = fuselab(&dir, &["pose", "train", "--config", "bad.toml"]);
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && message.contains("offset_groups"),
        "{message}"
    );
}

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("FUSELAB_DATA_DIR").expect(
        "FUSELAB_DATA_DIR is not set: run `fuselab --data-dir DIR models fetch` and point \
         FUSELAB_DATA_DIR at DIR (scripts/test.sh does both)",
    );
    PathBuf::from(dir)
}

/// `pose predict` on sports2d's real demo clip (ffmpeg decodes it) writes keypoints for every
/// frame, inside the frame's coordinates' range, and an annotated video; a folder of frames
/// gives annotated PNGs; a file that is not a video is refused by name.
#[test]
fn pose_predict_writes_keypoints_for_every_frame_of_a_real_clip() {
    let video = fuselab::models::require(&models_dir(), "pose/sports2d-demo.mp4")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let dir = scratch("predict");
    std::fs::write(dir.join("config.toml"), train_config("model")).unwrap();
    ok(&fuselab(
        &dir,
        &["pose", "train", "--config", "config.toml"],
    ));
    let video = video.to_str().unwrap();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .args(["stream=nb_read_frames", "-of", "csv=p=0", video])
        .output()
        .unwrap();
    let frames: usize = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    let args = [
        "pose", "predict", video, "--model", "model", "--out", "clip",
    ];
    ok(&fuselab(&dir, &args));
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.join("clip/keypoints.json")).unwrap()).unwrap();
    let list = written["frames"].as_array().unwrap();
    assert_eq!(list.len(), frames, "one entry per frame of the clip");
    let [width, height] = [0, 1].map(|i| written["frame_size"][i].as_f64().unwrap());
    for (i, frame) in list.iter().enumerate() {
        assert_eq!(frame["index"], i);
        let points = frame["keypoints"].as_array().unwrap();
        assert_eq!(points.len(), 17);
        for p in points {
            let [x, y, c] = [0, 1, 2].map(|j| p[j].as_f64().unwrap());
            assert!(
                (0.0..=width).contains(&x) && (0.0..=height).contains(&y),
                "{p}"
            );
            assert!(c.is_finite());
        }
    }
    assert!(
        std::fs::metadata(dir.join("clip/annotated.mp4"))
            .unwrap()
            .len()
            > 10_000
    );

    let stills = dir.join("stills");
    std::fs::create_dir_all(&stills).unwrap();
    for i in 0..3_u8 {
        let image = image::RgbImage::from_fn(64, 40, |x, y| {
            image::Rgb([x as u8 * 3, y as u8 * 5, i * 60])
        });
        image.save(stills.join(format!("f{i}.png"))).unwrap();
    }
    ok(&fuselab(
        &dir,
        &[
            "pose",
            "predict",
            "stills",
            "--model",
            "model",
            "--out",
            "still-out",
        ],
    ));
    for i in 0..3 {
        assert!(dir.join(format!("still-out/annotated/{i:06}.png")).exists());
    }
    std::fs::write(dir.join("notes.txt"), "not a video").unwrap();
    let bad = fuselab(
        &dir,
        &[
            "pose",
            "predict",
            "notes.txt",
            "--model",
            "model",
            "--out",
            "x",
        ],
    );
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && message.contains("notes.txt"),
        "{message}"
    );
}
