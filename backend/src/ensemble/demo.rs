//! `fuselab ensemble demo`: builds the example pool the web app offers ("Try the demo") from
//! the hand-written digits that ship inside scikit-learn's wheel (`scripts/fetch-digits.sh` gets
//! them from PyPI): eight classifiers trained here, their probabilities on 719 held-out images,
//! split for learned combiners (40 % train, 20 % val, 40 % test; the analysis runs on test).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use fuselab_ml::{
    Compute,
    digits::{Digits, classifiers},
};
use fuselab_shared::ensemble::combine::shuffled;
use fuselab_shared::ensemble::{ModelInput, Pool, PoolInput, Split};
use fuselab_shared::rng::SplitMix64;

/// Where the demo pool lives under the data directory.
pub const DEMO_POOL: &str = "demo/digits-pool.json";

/// Held-out images (40 % of 1,797) and the split's seed.
const TEST_IMAGES: usize = 719;
const SEED: u64 = 20_260_101;

/// The held-out images' splits for a combiner: a seeded shuffle, then 40 % train, 20 % val and
/// the rest test.
fn demo_splits(samples: usize, seed: u64) -> Vec<Split> {
    let order = shuffled(samples, &mut SplitMix64(seed));
    let (train, val) = (samples * 2 / 5, samples / 5);
    let mut splits = vec![Split::Test; samples];
    for (rank, &sample) in order.iter().enumerate() {
        if rank < train {
            splits[sample] = Split::Train;
        } else if rank < train + val {
            splits[sample] = Split::Val;
        }
    }
    splits
}

/// `fuselab ensemble demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// scikit-learn's `digits.csv.gz` (or the uncompressed CSV)
    #[arg(long, value_name = "FILE")]
    pub digits: PathBuf,
    /// Where to write the pool (default: <data-dir>/demo/digits-pool.json, which `serve` offers)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// scikit-learn's `digits.csv.gz` inflates to 0.5 MB; anything past this is not that file.
const MAX_DIGITS_BYTES: u64 = 64 << 20;

/// Inflates a gzip file (flate2 checks the CRC-32 and length), at most [`MAX_DIGITS_BYTES`].
fn gunzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_DIGITS_BYTES + 1)
        .read_to_end(&mut out)
        .context("not a valid gzip file")?;
    anyhow::ensure!(
        out.len() as u64 <= MAX_DIGITS_BYTES,
        "inflates past {MAX_DIGITS_BYTES} bytes, more than scikit-learn's digits ever take"
    );
    Ok(out)
}

/// Trains the demo's classifiers and writes their pool as JSON.
///
/// # Errors
/// An unreadable or malformed digits file (with the line), a failed training, or an
/// unwritable output.
pub fn build(args: &DemoArgs, data_dir: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.digits)
        .with_context(|| format!("cannot read {}", args.digits.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        gunzip(&bytes).with_context(|| format!("{}", args.digits.display()))?
    } else {
        bytes
    };
    let csv = String::from_utf8(bytes)
        .with_context(|| format!("{}: not UTF-8 text", args.digits.display()))?;
    let digits = Digits::parse(&csv).with_context(|| format!("{}", args.digits.display()))?;
    let (train, test) = digits.split(TEST_IMAGES, SEED);
    let device = fuselab_ml::open(Compute::Cpu)?;
    let models = classifiers(&train, &test, &device).context("training the demo's classifiers")?;
    let pool = PoolInput {
        labels: test.labels.iter().map(|&l| l as u32).collect(),
        models: models
            .into_iter()
            .map(|m| ModelInput {
                name: m.name,
                predictions: None,
                probabilities: Some(m.probabilities),
                logits: None,
            })
            .collect(),
        classes: Some(fuselab_ml::digits::CLASSES),
        splits: Some(demo_splits(test.labels.len(), SEED)),
    };
    let checked = Pool::new(pool.clone()).context("the demo pool is not valid")?;
    for m in 0..checked.models() {
        eprintln!(
            "{:<30} test accuracy {:.4}",
            checked.names()[m],
            checked.accuracy(m).unwrap_or(0.0)
        );
    }
    let out = args.out.clone().unwrap_or_else(|| data_dir.join(DEMO_POOL));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_string(&pool).context("encoding the demo pool")?;
    std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "demo pool: {} models × {} images, written to {}",
        checked.models(),
        checked.samples(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Split, demo_splits, gunzip};

    #[test]
    fn the_demo_splits_are_seeded_and_sized() {
        let splits = demo_splits(719, 7);
        assert_eq!(splits, demo_splits(719, 7));
        assert_ne!(splits, demo_splits(719, 8));
        let count = |s| splits.iter().filter(|&&x| x == s).count();
        assert_eq!(
            [count(Split::Train), count(Split::Val), count(Split::Test)],
            [287, 143, 289]
        );
    }

    /// `printf 'hello gzip\n' | gzip -9n | xxd -i`.
    const HELLO: [u8; 31] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x57, 0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00,
        0x00,
    ];

    #[test]
    fn reads_gzip_and_refuses_corruption() {
        assert_eq!(gunzip(&HELLO).unwrap(), b"hello gzip\n");
        let mut bad = HELLO;
        bad[25] ^= 1;
        assert!(gunzip(&bad).is_err());
        assert!(gunzip(&HELLO[..12]).is_err());
    }
}
