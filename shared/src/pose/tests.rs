use super::render::{Canvas, quantise};
use super::*;

/// No blur, defocus, occluder, distractor or shake.
fn clean() -> SyntheticConfig {
    SyntheticConfig {
        blur_probability: 0.0,
        defocus_probability: 0.0,
        occluder_probability: 0.0,
        distractor_probability: 0.0,
        shake_px: 0.0,
        ..SyntheticConfig::default()
    }
}

fn clip(config: &SyntheticConfig, index: usize) -> Clip {
    generate_clip(config, Split::Train, index).unwrap()
}

#[test]
fn same_inputs_give_the_same_clip() {
    let config = SyntheticConfig::default();
    for index in [0, 7, 123] {
        let a = generate_clip(&config, Split::Val, index).unwrap();
        let b = generate_clip(&config, Split::Val, index).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.frames.len(), config.frames);
        assert_eq!(a.labels.len(), config.frames);
        assert!(a.frames.iter().all(|f| f.pixels.len() == 128 * 96 * 3));
    }
}

#[test]
fn index_split_and_seed_change_the_clip() {
    let config = SyntheticConfig::default();
    let base = clip(&config, 3);
    assert_ne!(base.frames, clip(&config, 4).frames);
    assert_ne!(base.labels, clip(&config, 4).labels);
    let other_split = generate_clip(&config, Split::Test, 3).unwrap();
    assert_ne!(base.frames, other_split.frames);
    let reseeded = SyntheticConfig {
        seed: 1,
        ..config.clone()
    };
    assert_ne!(base.frames, clip(&reseeded, 3).frames);
    assert_ne!(base.labels, clip(&reseeded, 3).labels);
}

#[test]
fn indices_past_the_split_are_refused() {
    let config = SyntheticConfig {
        val_clips: 2,
        ..SyntheticConfig::default()
    };
    assert!(generate_clip(&config, Split::Val, 1).is_ok());
    let err = generate_clip(&config, Split::Val, 2).unwrap_err();
    assert!(matches!(
        err,
        PoseDataError::NoSuchClip {
            index: 2,
            clips: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("val"), "{err}");
}

#[test]
fn visibility_matches_the_frame_and_occlusion_happens() {
    let config = SyntheticConfig {
        frames: 2,
        figure_height: [0.6, 1.3],
        self_occlusion: 1.0,
        occluder_probability: 0.5,
        distractor_probability: 0.5,
        ..SyntheticConfig::default()
    };
    let mut counts = [0_usize; 3];
    for index in 0..300 {
        let clip = clip(&config, index);
        let mut clip_counts = [0_usize; 3];
        for (frame, label) in clip.frames.iter().zip(&clip.labels) {
            for (&[x, y], &v) in label.keypoints.iter().zip(&label.visibility) {
                let inside =
                    x >= 0.0 && y >= 0.0 && x < frame.width as f32 && y < frame.height as f32;
                assert_eq!(inside, v >= 1, "clip {index}: ({x}, {y}) has v = {v}");
                clip_counts[usize::from(v)] += 1;
            }
        }
        let labelled = clip_counts[1] + clip_counts[2];
        if labelled > 0 {
            let share = clip_counts[1] as f32 / labelled as f32;
            assert!((clip.tags.occluded_fraction - share).abs() < 1e-6);
        }
        for v in 0..3 {
            counts[v] += clip_counts[v];
        }
    }
    assert!(counts[1] > 100, "hidden keypoints: {counts:?}");
    assert!(counts[0] > 0, "no keypoint outside the frame: {counts:?}");
    assert!(counts[2] > counts[1], "{counts:?}");
}

#[test]
fn a_known_pose_is_painted_where_its_parts_are_and_background_elsewhere() {
    let config = clean();
    let (mut limbs_checked, mut background_checked) = (0, 0);
    for index in 0..10 {
        let scene = Scene::new(&config, clip_seed(config.seed, Split::Train, index));
        let (rgb, label, canvas) = scene.render(0, [0.0, 0.0]);
        // The public clip is this render, quantised.
        let public = clip(&config, index);
        assert_eq!(public.frames[0].pixels, quantise(&rgb));
        assert_eq!(public.labels[0], label);
        let (parts, _, _) = scene.parts(scene.time(0));
        let empty = Canvas::new(config.width, config.height, &scene.background, [0.0, 0.0]);
        let centre = |x: usize, y: usize| [x as f32 + 0.5, y as f32 + 0.5];
        // The limbs (parts 8 to 15 of the labelled figure) at their midpoints.
        for (i, part) in parts.iter().enumerate().skip(8).take(8) {
            let render::Shape::Capsule { a, b, .. } = part.shape else {
                panic!("part {i} is not a limb");
            };
            let mid = [f32::midpoint(a[0], b[0]), f32::midpoint(a[1], b[1])];
            let inside = |v: f32, n: usize| v >= 0.0 && v < n as f32;
            if !inside(mid[0], config.width) || !inside(mid[1], config.height) {
                continue;
            }
            let (x, y) = (
                render::clamp_index(mid[0], config.width - 1),
                render::clamp_index(mid[1], config.height - 1),
            );
            let p = centre(x, y);
            let uncovered = parts
                .iter()
                .all(|q| q.depth >= part.depth || q.shape.distance(p).0 >= 0.5);
            if usize::from(canvas.top[y * config.width + x]) == i
                && part.shape.distance(p).0 <= -0.5
                && uncovered
            {
                let at = 3 * (y * config.width + x);
                assert_eq!(
                    &rgb[at..at + 3],
                    &part.colour_at(p),
                    "clip {index} part {i}"
                );
                limbs_checked += 1;
            }
        }
        // Far from every part, the background.
        for y in 0..config.height {
            for x in 0..config.width {
                let p = centre(x, y);
                if parts.iter().all(|q| q.shape.distance(p).0 >= 1.0) {
                    let at = 3 * (y * config.width + x);
                    assert_eq!(&rgb[at..at + 3], &empty.rgb[at..at + 3]);
                    assert_eq!(canvas.top[y * config.width + x], render::EMPTY);
                    background_checked += 1;
                }
            }
        }
    }
    assert!(limbs_checked >= 30, "{limbs_checked}");
    assert!(
        background_checked > 10 * 128 * 96 / 2,
        "{background_checked}"
    );
}

#[test]
#[allow(clippy::float_cmp)] // The labels and speeds must be bit-identical.
fn blur_and_defocus_change_pixels_but_not_labels() {
    let sharp = SyntheticConfig {
        speed: [2.0, 4.0],
        ..clean()
    };
    let blurred = SyntheticConfig {
        blur_probability: 1.0,
        blur_max_px: 6.0,
        defocus_probability: 1.0,
        defocus_max_radius: 1.5,
        ..sharp.clone()
    };
    for index in 0..10 {
        let (a, b) = (clip(&sharp, index), clip(&blurred, index));
        assert_eq!(a.labels, b.labels, "clip {index}");
        assert_eq!(a.tags.mean_speed, b.tags.mean_speed);
        for (fa, fb) in a.frames.iter().zip(&b.frames) {
            assert_ne!(fa.pixels, fb.pixels);
        }
        assert_eq!((a.tags.blur_length, a.tags.defocus_radius), (0.0, 0.0));
        assert!(b.tags.blur_length > 0.0 && b.tags.blur_length <= 6.0 + 1e-3);
        assert!((0.5..=1.5).contains(&b.tags.defocus_radius));
    }
    // Each alone changes the pixels too.
    for knob in 0..2 {
        let one = SyntheticConfig {
            blur_probability: if knob == 0 { 1.0 } else { 0.0 },
            defocus_probability: if knob == 1 { 1.0 } else { 0.0 },
            ..blurred.clone()
        };
        let (a, b) = (clip(&sharp, 1), clip(&one, 1));
        assert_eq!(a.labels, b.labels);
        assert_ne!(a.frames, b.frames);
    }
}

#[test]
fn keypoints_move_no_faster_than_the_speed_knob() {
    let config = SyntheticConfig {
        frames: 8,
        speed: [0.0, 3.0],
        ..clean()
    };
    let mut fastest = 0.0_f32;
    for index in 0..100 {
        let clip = clip(&config, index);
        assert!((0.0..=3.0).contains(&clip.tags.speed));
        for w in clip.labels.windows(2) {
            for j in 0..NUM_KEYPOINTS {
                let d = distance(w[0].keypoints[j], w[1].keypoints[j]);
                assert!(d <= clip.tags.speed + 1e-3, "clip {index} joint {j}: {d}");
                fastest = fastest.max(d / clip.tags.speed.max(1e-6));
            }
        }
        assert!(clip.tags.mean_speed <= clip.tags.speed + 1e-3);
    }
    // The bound is not vacuous: some keypoint comes near it.
    assert!(fastest > 0.5, "{fastest}");
    let moving = SyntheticConfig {
        speed: [2.0, 3.0],
        ..config
    };
    for index in 0..20 {
        assert!(clip(&moving, index).tags.mean_speed > 0.3);
    }
}

#[test]
#[allow(clippy::float_cmp)] // Whole-pixel shifts are exact.
fn camera_shake_moves_image_and_keypoints_together() {
    let still = clean();
    let shaky = SyntheticConfig {
        shake_px: 3.0,
        ..clean()
    };
    let mut moved = 0;
    for index in 0..5 {
        let (a, b) = (clip(&still, index), clip(&shaky, index));
        for (la, lb) in a.labels.iter().zip(&b.labels) {
            let d0 = [
                lb.keypoints[0][0] - la.keypoints[0][0],
                lb.keypoints[0][1] - la.keypoints[0][1],
            ];
            assert!(d0[0].abs() <= 3.0 + 1e-4 && d0[1].abs() <= 3.0 + 1e-4);
            for j in 0..NUM_KEYPOINTS {
                let d = [
                    lb.keypoints[j][0] - la.keypoints[j][0],
                    lb.keypoints[j][1] - la.keypoints[j][1],
                ];
                assert!((d[0] - d0[0]).abs() < 1e-3 && (d[1] - d0[1]).abs() < 1e-3);
            }
            moved += usize::from(d0 != [0.0, 0.0]);
        }
    }
    assert!(moved > 0);
    // A whole-pixel shake shifts the image exactly: the pixel under every joint keeps its colour.
    let scene = Scene::new(&still, clip_seed(still.seed, Split::Train, 2));
    let (w, h) = (still.width, still.height);
    let (rgb, label, _) = scene.render(1, [0.0, 0.0]);
    let (shifted, shifted_label, _) = scene.render(1, [3.0, -2.0]);
    for y in 0..h - 2 {
        for x in 3..w {
            let (at, from) = (3 * (y * w + x), 3 * ((y + 2) * w + x - 3));
            assert_eq!(&shifted[at..at + 3], &rgb[from..from + 3], "({x}, {y})");
        }
    }
    for j in 0..NUM_KEYPOINTS {
        let [x, y] = label.keypoints[j];
        assert_eq!(shifted_label.keypoints[j], [x + 3.0, y - 2.0]);
        let inside = |x: f32, y: f32| x >= 3.0 && y >= 2.0 && x < w as f32 && y < h as f32 - 2.0;
        if inside(x, y) && inside(x + 3.0, y - 2.0) {
            assert_eq!(label.visibility[j], shifted_label.visibility[j]);
        }
    }
}

type Edit = fn(&mut SyntheticConfig);

#[test]
fn validate_refuses_each_out_of_range_field() {
    assert_eq!(SyntheticConfig::default().validate(), Ok(()));
    let cases: [(&str, Edit); 24] = [
        ("width", |c| {
            c.width = 8;
        }),
        ("width", |c| {
            c.width = 513;
        }),
        ("height", |c| {
            c.height = 1000;
        }),
        ("frames", |c| {
            c.frames = 0;
        }),
        ("frames", |c| {
            c.frames = 65;
        }),
        ("train_clips", |c| {
            c.train_clips = 1_000_001;
        }),
        ("val_clips", |c| {
            c.val_clips = usize::MAX;
        }),
        ("test_clips", |c| {
            c.test_clips = 2_000_000;
        }),
        ("figure_height[0]", |c| {
            c.figure_height = [0.0, 0.5];
        }),
        ("figure_height[1]", |c| {
            c.figure_height = [0.5, 0.4];
        }),
        ("figure_height[1]", |c| {
            c.figure_height = [0.5, f32::NAN];
        }),
        ("speed[0]", |c| {
            c.speed = [-1.0, 2.0];
        }),
        ("speed[1]", |c| {
            c.speed = [1.0, 100.0];
        }),
        ("speed[1]", |c| {
            c.speed = [3.0, 2.0];
        }),
        ("blur_probability", |c| {
            c.blur_probability = 1.5;
        }),
        ("blur_max_px", |c| {
            c.blur_max_px = 33.0;
        }),
        ("blur_max_px", |c| {
            c.blur_max_px = -0.5;
        }),
        ("defocus_probability", |c| {
            c.defocus_probability = -0.1;
        }),
        ("defocus_max_radius", |c| {
            c.defocus_max_radius = 9.0;
        }),
        ("self_occlusion", |c| {
            c.self_occlusion = f64::NAN;
        }),
        ("occluder_probability", |c| {
            c.occluder_probability = 2.0;
        }),
        ("distractor_probability", |c| {
            c.distractor_probability = -1.0;
        }),
        ("shake_px", |c| {
            c.shake_px = f32::INFINITY;
        }),
        ("shake_px", |c| {
            c.shake_px = -1.0;
        }),
    ];
    for (field, edit) in cases {
        let mut config = SyntheticConfig::default();
        edit(&mut config);
        let err = config.validate().unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("{field} = ")),
            "{field}: {message}"
        );
        assert!(message.contains("expected"), "{message}");
        assert!(generate_clip(&config, Split::Train, 0).is_err());
    }
}

#[test]
fn config_round_trips_through_json() {
    let config = SyntheticConfig {
        seed: 9,
        speed: [1.0, 2.0],
        ..SyntheticConfig::default()
    };
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<SyntheticConfig>(&text).unwrap(),
        config
    );
    let partial: SyntheticConfig = serde_json::from_str(r#"{"frames": 3}"#).unwrap();
    assert_eq!(partial.frames, 3);
    assert!(serde_json::from_str::<SyntheticConfig>(r#"{"frame": 3}"#).is_err());
}

#[test]
fn contact_sheet_has_the_grid_size_and_the_skeleton_colour() {
    let config = SyntheticConfig::default();
    let clips = [clip(&config, 0), clip(&config, 1)];
    let refs: Vec<&Clip> = clips.iter().collect();
    let sheet = contact_sheet(&refs, 3, 2);
    assert_eq!(sheet.width, 2 + 3 * (256 + 2));
    assert_eq!(sheet.height, 2 + 2 * (192 + 2));
    assert_eq!(sheet.pixels.len(), sheet.width * sheet.height * 3);
    let green = sheet
        .pixels
        .chunks(3)
        .filter(|p| *p == TRUE_SKELETON_COLOUR)
        .count();
    assert!(green > 200, "{green}");
    // A joint's own pixel takes the colour; hidden joints are rings, outside ones are not drawn.
    let mut frame = Frame::filled(20, 20, [0, 0, 0]);
    let mut keypoints = [[10.2, 10.7]; NUM_KEYPOINTS];
    keypoints[1] = [4.5, 4.5];
    keypoints[2] = [15.5, 4.5];
    let mut visibility = [0; NUM_KEYPOINTS];
    visibility[0] = 2;
    visibility[1] = 1;
    draw_skeleton(&mut frame, &keypoints, &visibility, [255, 0, 255]);
    assert_eq!(frame.pixel(10, 10), [255, 0, 255]);
    assert_eq!(frame.pixel(4, 4), [0, 0, 0]);
    assert_eq!(frame.pixel(6, 4), [255, 0, 255]);
    assert_eq!(frame.pixel(15, 4), [0, 0, 0]);
}

#[test]
fn a_default_clip_is_generated_in_reasonable_time() {
    // Reports the time; no assertion on it (machines differ).
    let config = SyntheticConfig::default();
    let start = std::time::Instant::now();
    let n = 20;
    for index in 0..n {
        clip(&config, index);
    }
    eprintln!("one default clip: {:?}", start.elapsed() / n as u32);
}
