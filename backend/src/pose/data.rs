//! `fuselab pose data synthetic --out DIR`: the synthetic video benchmark
//! (`fuselab_shared::pose`) written for any tool to read: per split, NumPy arrays of the frames,
//! keypoints and visibilities, a CSV of each clip's difficulty tags; `dataset.json` describing
//! them and the configuration; `preview.png`, a contact sheet of test clips with their true
//! skeletons. Clips are generated and written one at a time, so memory does not grow with the
//! dataset.
//!
//! | file | array |
//! |---|---|
//! | `<split>/frames.npy` | `uint8 [clips, frames, height, width, 3]`, RGB |
//! | `<split>/keypoints.npy` | `float32 [clips, frames, 17, 2]`, `(x, y)` pixels, COCO order |
//! | `<split>/visibility.npy` | `uint8 [clips, frames, 17]`, COCO: 0 outside, 1 hidden, 2 visible |
//! | `<split>/clips.csv` | one row per clip: its difficulty tags |

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fuselab_shared::npy::{NpyDtype, npy_header};
use fuselab_shared::pose::{
    Clip, KEYPOINT_NAMES, NUM_KEYPOINTS, Split, SyntheticConfig, contact_sheet, generate_clip,
};
use fuselab_shared::table;
use serde::{Deserialize, Serialize};

use crate::align::check_settings;
use crate::align::config::{Checked, read_config};
use crate::align::run::write_atomic;

/// The format written in `dataset.json`.
pub const FORMAT: &str = "fuselab.pose.synthetic/v1";

/// `fuselab pose data …`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// The synthetic video benchmark: articulated figures with exact keypoints, and motion blur,
    /// defocus, occlusion, distractors and camera shake as knobs
    Synthetic(SyntheticArgs),
}

/// `pose data synthetic`.
#[derive(Debug, Args)]
pub struct SyntheticArgs {
    /// Output folder
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A TOML file of generator settings (every field optional; the defaults otherwise)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed of every clip (overrides the file's)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training clips (overrides the file's)
    #[arg(long)]
    pub train: Option<usize>,
    /// Validation clips (overrides the file's)
    #[arg(long)]
    pub val: Option<usize>,
    /// Test clips (overrides the file's)
    #[arg(long)]
    pub test: Option<usize>,
}

impl Checked for SyntheticConfig {
    fn check(&self) -> Result<(), String> {
        self.validate().map_err(|e| e.to_string())
    }
}

/// Runs `fuselab pose data …`.
///
/// # Errors
/// A bad configuration or an unwritable folder.
pub fn command(command: &DataCommand) -> anyhow::Result<()> {
    let DataCommand::Synthetic(args) = command;
    let mut config: SyntheticConfig = match &args.config {
        Some(path) => read_config(path)?,
        None => SyntheticConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    for (count, field) in [
        (args.train, &mut config.train_clips),
        (args.val, &mut config.val_clips),
        (args.test, &mut config.test_clips),
    ] {
        if let Some(n) = count {
            *field = n;
        }
    }
    // The command line's counts are checked with the rest.
    config.validate()?;
    let summary = write_synthetic(&config, &args.out, &mut |split, done, total| {
        if done == total || done % 100 == 0 {
            eprintln!("{split}: {done}/{total} clips");
        }
    })?;
    for s in &summary.splits {
        println!(
            "{}: {} clips of {} frames, {:.1} % of labelled keypoints hidden, {} with a distractor",
            s.split,
            s.clips,
            config.frames,
            100.0 * s.hidden_share,
            s.distractors
        );
    }
    println!("written to {}", args.out.display());
    Ok(())
}

/// What a split holds, as `dataset.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSummary {
    /// The split.
    pub split: Split,
    /// Its clips.
    pub clips: usize,
    /// Hidden keypoints (v = 1) as a share of the labelled ones.
    pub hidden_share: f64,
    /// Clips with a distractor figure.
    pub distractors: usize,
    /// Clips with motion blur.
    pub blurred: usize,
}

/// `dataset.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// [`FORMAT`].
    pub format: String,
    /// The generator's settings: the same settings regenerate the same bytes.
    pub config: SyntheticConfig,
    /// The keypoints' names, in the arrays' order.
    pub keypoints: Vec<String>,
    /// Per split.
    pub splits: Vec<SplitSummary>,
}

/// A `.npy` file written as the data arrives, moved into place when complete.
struct NpyWriter {
    path: PathBuf,
    part: PathBuf,
    file: BufWriter<std::fs::File>,
}

impl NpyWriter {
    fn create(path: PathBuf, dtype: NpyDtype, shape: &[usize]) -> anyhow::Result<Self> {
        let header = npy_header(dtype, shape).context("an array of too many dimensions")?;
        let part = path.with_extension("npy.part");
        let mut file = BufWriter::new(
            std::fs::File::create(&part)
                .with_context(|| format!("cannot create {}", part.display()))?,
        );
        file.write_all(&header)
            .with_context(|| format!("cannot write {}", part.display()))?;
        Ok(Self { path, part, file })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(bytes)
            .with_context(|| format!("cannot write {}", self.part.display()))
    }

    fn finish(self) -> anyhow::Result<()> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", self.part.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.part.display()))?;
        std::fs::rename(&self.part, &self.path)
            .with_context(|| format!("cannot move {} into place", self.part.display()))
    }
}

/// Writes the benchmark of `config` into `out`, calling `progress(split, done, total)` after
/// every clip. A folder already holding this configuration's dataset is left as it is; one made
/// with another configuration is refused.
///
/// # Errors
/// A bad configuration, a folder made with other settings, or a failed write.
pub fn write_synthetic(
    config: &SyntheticConfig,
    out: &Path,
    progress: &mut dyn FnMut(Split, usize, usize),
) -> anyhow::Result<Summary> {
    config.validate()?;
    check_settings(out, &serde_json::json!({ "config": config }))?;
    let done_path = out.join("dataset.json");
    if let Ok(bytes) = std::fs::read(&done_path)
        && let Ok(done) = serde_json::from_slice::<Summary>(&bytes)
    {
        return Ok(done);
    }
    let mut splits = Vec::new();
    for split in Split::ALL {
        splits.push(write_split(config, out, split, progress)?);
    }
    let summary = Summary {
        format: FORMAT.to_owned(),
        config: config.clone(),
        keypoints: KEYPOINT_NAMES.map(str::to_owned).to_vec(),
        splits,
    };
    write_preview(config, out)?;
    write_atomic(&done_path, &serde_json::to_vec_pretty(&summary)?)?;
    Ok(summary)
}

fn write_split(
    config: &SyntheticConfig,
    out: &Path,
    split: Split,
    progress: &mut dyn FnMut(Split, usize, usize),
) -> anyhow::Result<SplitSummary> {
    let dir = out.join(split.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let clips = config.clips(split);
    let (t, h, w) = (config.frames, config.height, config.width);
    let mut frames = NpyWriter::create(dir.join("frames.npy"), NpyDtype::U8, &[clips, t, h, w, 3])?;
    let mut keypoints = NpyWriter::create(
        dir.join("keypoints.npy"),
        NpyDtype::F32,
        &[clips, t, NUM_KEYPOINTS, 2],
    )?;
    let mut visibility = NpyWriter::create(
        dir.join("visibility.npy"),
        NpyDtype::U8,
        &[clips, t, NUM_KEYPOINTS],
    )?;
    let mut tags: Vec<Vec<String>> = vec![TAG_COLUMNS.map(str::to_owned).to_vec()];
    let (mut hidden, mut labelled, mut distractors, mut blurred) = (0_usize, 0_usize, 0, 0);
    for index in 0..clips {
        let clip = generate_clip(config, split, index)?;
        for frame in &clip.frames {
            frames.write(&frame.pixels)?;
        }
        for label in &clip.labels {
            let mut bytes = Vec::with_capacity(NUM_KEYPOINTS * 8);
            for [x, y] in label.keypoints {
                bytes.extend_from_slice(&x.to_le_bytes());
                bytes.extend_from_slice(&y.to_le_bytes());
            }
            keypoints.write(&bytes)?;
            visibility.write(&label.visibility)?;
            for v in label.visibility {
                hidden += usize::from(v == 1);
                labelled += usize::from(v > 0);
            }
        }
        distractors += usize::from(clip.tags.distractor);
        blurred += usize::from(clip.tags.blur_length > 0.0);
        tags.push(tag_row(&clip));
        progress(split, index + 1, clips);
    }
    frames.finish()?;
    keypoints.finish()?;
    visibility.finish()?;
    write_atomic(&dir.join("clips.csv"), table::write(tags).as_bytes())?;
    #[allow(clippy::cast_precision_loss)] // counts of keypoints
    let hidden_share = if labelled == 0 {
        0.0
    } else {
        hidden as f64 / labelled as f64
    };
    Ok(SplitSummary {
        split,
        clips,
        hidden_share,
        distractors,
        blurred,
    })
}

/// The columns of `clips.csv`.
const TAG_COLUMNS: [&str; 8] = [
    "clip",
    "speed",
    "mean_speed",
    "blur_length",
    "defocus_radius",
    "occluded_fraction",
    "distractor",
    "occluder",
];

fn tag_row(clip: &Clip) -> Vec<String> {
    let t = &clip.tags;
    vec![
        clip.index.to_string(),
        t.speed.to_string(),
        t.mean_speed.to_string(),
        t.blur_length.to_string(),
        t.defocus_radius.to_string(),
        t.occluded_fraction.to_string(),
        t.distractor.to_string(),
        t.occluder.to_string(),
    ]
}

/// `preview.png`: the first test clips (or training clips when there are no test clips), every
/// frame with its true skeleton.
fn write_preview(config: &SyntheticConfig, out: &Path) -> anyhow::Result<()> {
    let split = Split::ALL.into_iter().rev().find(|&s| config.clips(s) > 0);
    let Some(split) = split else {
        return Ok(());
    };
    let clips: Vec<Clip> = (0..config.clips(split).min(6))
        .map(|i| generate_clip(config, split, i))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Clip> = clips.iter().collect();
    let sheet = contact_sheet(&refs, config.frames, 2);
    let path = out.join("preview.png");
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &sheet.pixels,
        u32::try_from(sheet.width).context("the preview is too wide")?,
        u32::try_from(sheet.height).context("the preview is too tall")?,
        image::ExtendedColorType::Rgb8,
    )
    .context("cannot encode the preview")?;
    write_atomic(&path, &png)
}
