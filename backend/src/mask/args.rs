//! The command line of `fuselab mask`: the clap structs and their parsers. Nothing below the
//! CLI sees them; [`TrainArgs::options`] turns them into the typed options the library takes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use fuselab_ml::mask::{Augment, MAX_STEPS, MaskConfig, Objective, Update};
use zeroize::Zeroizing;

use super::TrainOptions;

/// `fuselab mask …`.
#[derive(Debug, Subcommand)]
pub enum MaskCommand {
    /// Learn your personal mask from photos of you (the key that protects your photos)
    Train(TrainArgs),
    /// Protect photos: add the mask to every face
    Apply(ApplyArgs),
    /// Take the mask off protected photos again (for whoever holds the key)
    Remove(ApplyArgs),
    /// Measure the protection: how far the mask turns each model away, and who is recognised
    Verify(VerifyArgs),
    /// Measure protection against image quality over a grid of training settings, each mask
    /// judged on a photo it was not trained on (leave-one-out)
    Study(StudyArgs),
    /// Choose the face-recognition team: each model's identification outcomes on a labelled
    /// face set, analysed for focal diversity by the ensemble engine
    Team(TeamArgs),
}

/// `fuselab mask team`.
#[derive(Debug, Args)]
pub struct TeamArgs {
    /// Labelled photos: one sub-folder per person, or files named after the person with an
    /// optional number or suffix (obama.jpg, obama2.jpg, obama-beach.jpg)
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Also use each photo mirrored (a second view of the same face)
    #[arg(long)]
    pub mirror: bool,
    /// Write the outcomes as a model pool (the ensemble engine's JSON), for `fuselab ensemble
    /// analyze` or the Ensembles page
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where the passphrase of an encrypted key comes from.
// clap prints these doc comments as `--help`, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from the first line of this file (or set
    /// FUSELAB_MASK_PASSPHRASE)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// `fuselab mask train`.
// clap prints these doc comments as `--help`, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A folder of photos of you (JPEG, PNG, WebP); each must show your face, the largest in it
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Where to write the mask key
    #[arg(long, value_name = "ME.p3m")]
    pub out: PathBuf,
    /// Passes over the photos (1 to 10000), the reference's budget (its steps grow with the
    /// number of photos; no augmentation unless asked for)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000), conflicts_with = "steps")]
    pub epochs: Option<u32>,
    /// Steps, each on a batch drawn with replacement (1 to 1000000): the same budget however
    /// many photos you give. The default when --epochs is not given, with epsilon 32, input
    /// diversity 0.7 and the augmentations rotate 10, rescale 0.7-1 (the study's choice)
    #[arg(long, value_parser = parse_steps)]
    pub steps: Option<usize>,
    /// Change of a pixel value per step, on the 0..255 scale (above 0, at most --epsilon)
    #[arg(long, default_value_t = MaskConfig::default().step, value_parser = parse_epsilon)]
    pub step: f32,
    /// How a step moves the mask: sign (the reference), momentum (MI-FGSM) or adam
    #[arg(long, default_value = "sign", value_parser = parse_update)]
    pub update: Update,
    /// What each face is pushed away from: chameleon (its own clean embedding, the reference)
    /// or centre (the mean of all your faces' embeddings, OPOM's class centre)
    #[arg(long, default_value = "chameleon", value_parser = parse_objective)]
    pub objective: Objective,
    /// Input diversity (DI-FGSM): the probability (0 to 1) that a face reaches the models
    /// shrunk and shifted at random, for masks that carry over to other photos and models
    /// (default: 0.7 by steps, 0 by --epochs)
    #[arg(long, value_parser = parse_strength)]
    pub diversity: Option<f32>,
    /// Train exactly as Chameleon's reference code does (epochs, signed steps, each face
    /// pushed from its own embedding, no input diversity); refuses the options that differ
    #[arg(
        long,
        value_name = "chameleon",
        value_parser = ["chameleon"],
        conflicts_with_all = ["steps", "update", "objective", "diversity"]
    )]
    pub compat: Option<String>,
    /// DSSIM the mask may cost before the perceptibility penalty starts (0 to 1)
    #[arg(long, default_value_t = 0.03, value_parser = parse_tau)]
    pub tau: f32,
    /// Largest change of a pixel value, on the 0..255 scale (above 0, at most 255; default: 32
    /// by steps, the study's choice, and 16 by --epochs, the reference's)
    #[arg(long, value_parser = parse_epsilon)]
    pub epsilon: Option<f32>,
    /// Photos per step (1 to 1024)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Seed of the mask's initialisation, the shuffles and the augmentations
    #[arg(long, default_value_t = 2023)]
    pub seed: u64,
    /// Face-recognition models to train against, comma-separated: dlib, faceres
    #[arg(long, value_delimiter = ',', default_value = "dlib,faceres")]
    pub models: Vec<String>,
    /// Augmentation: JPEG round trips at a quality in this range (within 1-100), e.g. 70-95
    #[arg(long, value_name = "LO-HI", value_parser = parse_jpeg_range)]
    pub augment_jpeg: Option<[u8; 2]>,
    /// Augmentation: shrink and enlarge back by a factor in this range (within 0.1-1), e.g. 0.5-1
    #[arg(long, value_name = "LO-HI", value_parser = parse_rescale_range)]
    pub augment_rescale: Option<[f32; 2]>,
    /// Augmentation: Gaussian blur with σ (pixels of the 112×112 face) in this range (within
    /// 0-5), e.g. 0-1.5
    #[arg(long, value_name = "LO-HI", value_parser = parse_blur_range)]
    pub augment_blur: Option<[f32; 2]>,
    /// Augmentation: rotation by up to ± this many degrees (at most 30; 0: none), e.g. 10
    #[arg(long, value_name = "DEGREES", value_parser = parse_rotate)]
    pub augment_rotate: Option<f32>,
    /// Where burn trains: cpu (flex), or wgpu (a GPU through Vulkan, Metal or DX12)
    #[arg(long, value_name = "cpu|wgpu", default_value_t = fuselab_ml::Compute::Cpu)]
    pub device: fuselab_ml::Compute,
    /// Encrypt the key with a passphrase
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print a JSON summary at the end
    #[arg(long)]
    pub json: bool,
}

/// The training the study chose as the default (see `docs/protection.md`): a budget of steps,
/// a wider L∞ bound, input diversity, and the augmentations the held-out photos differ by.
pub const DEFAULT_STEPS: usize = 300;
/// The L∞ bound by default: the study's largest protection at a face SSIM of at least 0.95.
pub const DEFAULT_EPSILON: f32 = 32.0;
/// Input diversity by default.
pub const DEFAULT_DIVERSITY: f32 = 0.7;
/// Rotation (degrees) and rescale range by default.
pub const DEFAULT_ROTATE: f32 = 10.0;
/// See [`DEFAULT_ROTATE`].
pub const DEFAULT_RESCALE: [f32; 2] = [0.7, 1.0];

impl TrainArgs {
    /// The typed options the training takes: the reference's budget with `--epochs` or
    /// `--compat chameleon`, otherwise steps with the study's defaults for what is not given.
    pub fn options(&self) -> TrainOptions {
        let by_epochs = self.compat.is_some() || self.epochs.is_some();
        let (steps, epsilon, diversity, rotate, rescale) = if by_epochs {
            (
                None,
                self.epsilon.unwrap_or(MaskConfig::default().epsilon),
                self.diversity.unwrap_or(0.0),
                self.augment_rotate,
                self.augment_rescale,
            )
        } else {
            (
                Some(self.steps.unwrap_or(DEFAULT_STEPS)),
                self.epsilon.unwrap_or(DEFAULT_EPSILON),
                self.diversity.unwrap_or(DEFAULT_DIVERSITY),
                self.augment_rotate.or(Some(DEFAULT_ROTATE)),
                self.augment_rescale.or(Some(DEFAULT_RESCALE)),
            )
        };
        TrainOptions {
            config: MaskConfig {
                epsilon,
                step: self.step,
                batch: self.batch as usize,
                epochs: self
                    .epochs
                    .map_or(MaskConfig::default().epochs, |e| e as usize),
                steps,
                update: self.update,
                objective: self.objective,
                diversity,
                tau: self.tau,
                seed: self.seed,
                augment: Augment {
                    rescale,
                    blur: self.augment_blur,
                    jpeg: self.augment_jpeg,
                    // `--augment-rotate 0` turns the default rotation off.
                    rotate: rotate.filter(|d| *d > 0.0),
                },
            },
            models: self.models.clone(),
        }
    }
}

/// `fuselab mask apply` and `remove`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The mask key
    #[arg(long, value_name = "ME.p3m")]
    pub mask: PathBuf,
    /// The photos (JPEG, PNG, WebP)
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Folder for the results; each keeps its name and format, with `-protected` (or
    /// `-unmasked`) before the extension
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Scale of the mask, 0..1 (1: the full mask)
    #[arg(long, default_value_t = 1.0, value_parser = parse_strength)]
    pub strength: f32,
    /// Use the face boxes of this `apply --json` report instead of detecting the faces again
    /// (for `remove`: the exact boxes the mask was added on, so the removal is exact)
    #[arg(long, value_name = "REPORT.json")]
    pub boxes: Option<PathBuf>,
    /// The key's passphrase, when it is encrypted
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `fuselab mask verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The mask key
    #[arg(long, value_name = "ME.p3m")]
    pub mask: PathBuf,
    /// Photos of the key's owner, not used to train the mask if possible
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Photos of other people: one identity per file, the gallery's distractors
    #[arg(long, value_name = "DIR")]
    pub others: Option<PathBuf>,
    /// Re-encode each protected photo as JPEG at this quality (1 to 100) before recognising it
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,
    /// The key's passphrase, when it is encrypted
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `fuselab mask study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Photos of one person (at least one more than the most training photos the grid asks for)
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// The grid (TOML): `[grid]` with lists `steps`, `epsilon`, `tau`, `photos` and optionally
    /// `objective`, `update`, `diversity`, `step`, `augment` (inline tables); top-level `seed`,
    /// `batch`, `models`, `reference`
    #[arg(long, value_name = "FILE")]
    pub grid: PathBuf,
    /// Where the results go (finished runs in it are reused)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Photos of other people for the identification gallery, one identity per file
    #[arg(long, value_name = "DIR")]
    pub others: Option<PathBuf>,
    /// Where burn trains: cpu (flex), or wgpu
    #[arg(long, value_name = "cpu|wgpu", default_value_t = fuselab_ml::Compute::Cpu)]
    pub device: fuselab_ml::Compute,
    /// Print the cells as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// A finite number within `lo..=hi` (`open_low`: above `lo`), for clap; the message names the
/// accepted range and clap adds the flag.
fn bounded(text: &str, lo: f32, hi: f32, open_low: bool) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    let low_ok = if open_low { value > lo } else { value >= lo };
    if value.is_finite() && low_ok && value <= hi {
        Ok(value)
    } else {
        let low = if open_low { "above" } else { "at least" };
        Err(format!(
            "{value} is out of range: expected a finite number {low} {lo} and at most {hi}"
        ))
    }
}

fn parse_tau(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 1.0, false)
}

fn parse_epsilon(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 255.0, true)
}

fn parse_strength(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 1.0, false)
}

fn parse_rotate(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 30.0, false)
}

fn parse_steps(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_STEPS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_STEPS}, got `{text}`"
        )),
    }
}

fn parse_update(text: &str) -> Result<Update, String> {
    Update::ALL
        .into_iter()
        .find(|u| u.name() == text.trim())
        .ok_or_else(|| format!("expected sign, momentum or adam, got `{text}`"))
}

fn parse_objective(text: &str) -> Result<Objective, String> {
    Objective::ALL
        .into_iter()
        .find(|o| o.name() == text.trim())
        .ok_or_else(|| format!("expected chameleon or centre, got `{text}`"))
}

/// `LO-HI` with both ends within `lo..=hi` and LO ≤ HI.
fn parse_range(text: &str, lo: f32, hi: f32) -> Result<[f32; 2], String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("expected a range LO-HI, got `{text}`"))?;
    let range = [bounded(a, lo, hi, false)?, bounded(b, lo, hi, false)?];
    if range[0] > range[1] {
        return Err(format!("expected LO ≤ HI, got `{text}`"));
    }
    Ok(range)
}

fn parse_rescale_range(text: &str) -> Result<[f32; 2], String> {
    parse_range(text, 0.1, 1.0)
}

fn parse_blur_range(text: &str) -> Result<[f32; 2], String> {
    parse_range(text, 0.0, 5.0)
}

fn parse_jpeg_range(text: &str) -> Result<[u8; 2], String> {
    let [a, b] = parse_range(text, 1.0, 100.0)?;
    if a.fract() != 0.0 || b.fract() != 0.0 {
        return Err(format!("expected whole JPEG qualities, got `{text}`"));
    }
    // Whole numbers within 1..=100, checked above.
    #[allow(clippy::cast_sign_loss)]
    Ok([a as u8, b as u8])
}

/// The passphrase, wiped from memory when dropped (and so is the file's text it came from).
pub(super) fn passphrase(args: &PassphraseArgs) -> anyhow::Result<Option<Zeroizing<String>>> {
    if let Some(path) = &args.passphrase_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
        );
        let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            bail!(
                "{}: the first line (the passphrase) is empty",
                path.display()
            );
        }
        return Ok(Some(line));
    }
    Ok(std::env::var("FUSELAB_MASK_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn options(flags: &[&str]) -> Result<MaskConfig, clap::Error> {
        let mut argv = vec!["fuselab", "--photos", "me", "--out", "me.p3m"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).map(|cli| cli.train.options().config)
    }

    #[test]
    fn without_epochs_training_runs_the_studys_default_steps() {
        let c = options(&[]).unwrap();
        assert_eq!(c.steps, Some(DEFAULT_STEPS));
        assert!((c.epsilon - DEFAULT_EPSILON).abs() < f32::EPSILON);
        assert!((c.diversity - DEFAULT_DIVERSITY).abs() < 1e-6);
        assert_eq!(c.augment.rotate, Some(DEFAULT_ROTATE));
        assert_eq!(c.augment.rescale, Some(DEFAULT_RESCALE));
        let c = options(&["--steps", "40", "--augment-rotate", "0", "--diversity", "0"]).unwrap();
        assert_eq!(
            (c.steps, c.augment.rotate, c.diversity),
            (Some(40), None, 0.0)
        );
    }

    #[test]
    fn epochs_and_compat_keep_the_reference() {
        for flags in [&["--epochs", "5"][..], &["--compat", "chameleon"][..]] {
            let c = options(flags).unwrap();
            assert_eq!(c.steps, None, "{flags:?}");
            assert!((c.epsilon - 16.0).abs() < f32::EPSILON);
            assert!(c.diversity.abs() < f32::EPSILON);
            assert_eq!(c.augment, Augment::default());
            assert_eq!(
                (c.update, c.objective),
                (Update::Sign, Objective::Chameleon)
            );
        }
        assert_eq!(options(&["--epochs", "5"]).unwrap().epochs, 5);
        assert!(options(&["--epochs", "5", "--steps", "3"]).is_err());
        assert!(options(&["--compat", "chameleon", "--update", "adam"]).is_err());
        assert!(options(&["--compat", "other"]).is_err());
    }
}
