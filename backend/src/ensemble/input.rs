//! Reading a model pool from disk: the files behind `INPUT` or `--labels`/`--predictions` are
//! read here and parsed by [`fuselab_shared::ensemble::PoolFiles`], the same code the browser
//! runs on dropped files.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use fuselab_shared::ensemble::{InputFile, LimitError, Limits, PoolFiles, PoolInput};
use thiserror::Error;

/// Where a pool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JSON file.
    Json(PathBuf),
    /// An `.npz` archive.
    Npz(PathBuf),
    /// A folder with `labels.npy` and one `<model>.npy` per model.
    NpyDir(PathBuf),
    /// A labels CSV and a predictions CSV.
    CsvPair {
        /// One column of true labels.
        labels: PathBuf,
        /// One column of predicted classes per model.
        predictions: PathBuf,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(path) | Self::Npz(path) | Self::NpyDir(path) => {
                write!(f, "{}", path.display())
            }
            Self::CsvPair {
                labels,
                predictions,
            } => write!(f, "{} with {}", predictions.display(), labels.display()),
        }
    }
}

/// Why the input files could not be read as a pool.
#[derive(Debug, Error)]
pub enum InputError {
    /// The command line names no input, or two.
    #[error("{message}")]
    Usage {
        /// What to pass instead.
        message: &'static str,
    },
    /// A file or folder could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The system's reason.
        error: io::Error,
    },
    /// The contents are not a pool (the message names file, array, line or column).
    #[error(transparent)]
    Parse(#[from] fuselab_shared::ensemble::InputError),
    /// The pool or its analysis is larger than a limit (the message names the flag that
    /// raises it).
    #[error(transparent)]
    Limit(#[from] LimitError),
}

fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    fs::read(path).map_err(|error| InputError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Picks the source from `INPUT` (by extension, or a folder) or from `--labels` + `--predictions`.
///
/// # Errors
/// [`InputError::Usage`] when neither or both forms are given.
pub fn source(
    input: Option<&Path>,
    labels: Option<&Path>,
    predictions: Option<&Path>,
) -> Result<Source, InputError> {
    match (input, labels, predictions) {
        (Some(input), None, None) => Ok(if input.is_dir() {
            Source::NpyDir(input.to_owned())
        } else if input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
        {
            Source::Npz(input.to_owned())
        } else {
            Source::Json(input.to_owned())
        }),
        (None, Some(labels), Some(predictions)) => Ok(Source::CsvPair {
            labels: labels.to_owned(),
            predictions: predictions.to_owned(),
        }),
        (None, None, None) => Err(InputError::Usage {
            message: "no input: give a JSON, .npz or .npy-folder INPUT, or --labels FILE --predictions FILE",
        }),
        (Some(_), _, _) => Err(InputError::Usage {
            message: "give either INPUT or --labels/--predictions, not both",
        }),
        (None, _, _) => Err(InputError::Usage {
            message: "--labels and --predictions go together: give both CSV files",
        }),
    }
}

/// The `.npy` files of a folder, in file-name order.
fn npy_paths(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let unreadable = |error| InputError::Read {
        path: dir.to_owned(),
        error,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads the pool data within `limits`; [`fuselab_shared::ensemble::Pool::with_limits`]
/// validates it.
///
/// # Errors
/// [`InputError`] naming the file, array, line or column and what was expected, or the limit.
pub fn load(source: &Source, limits: &Limits) -> Result<PoolInput, InputError> {
    let paths = match source {
        Source::Json(path) | Source::Npz(path) => vec![path.clone()],
        Source::CsvPair {
            labels,
            predictions,
        } => vec![labels.clone(), predictions.clone()],
        Source::NpyDir(dir) => {
            let paths = npy_paths(dir)?;
            if !paths
                .iter()
                .any(|p| p.file_name() == Some("labels.npy".as_ref()))
            {
                // Read it anyway, so the error is the system's "not found" for that path.
                read(&dir.join("labels.npy"))?;
            }
            paths
        }
    };
    let contents = paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let files: Vec<InputFile> = names
        .iter()
        .zip(&contents)
        .map(|(name, bytes)| InputFile { name, bytes })
        .collect();
    let pool = match source {
        Source::Json(_) => PoolFiles::Json(files[0]),
        Source::Npz(_) => PoolFiles::Npz(files[0]),
        Source::CsvPair { .. } => PoolFiles::CsvPair {
            labels: files[0],
            predictions: files[1],
        },
        Source::NpyDir(_) => PoolFiles::Npy(files),
    };
    Ok(pool.parse_with(limits)?)
}
