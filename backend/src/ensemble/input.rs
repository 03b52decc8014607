//! Reading a model pool from files: JSON, a CSV pair, an `.npz` archive or a folder of `.npy`.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use fuselab_shared::{
    ensemble::{ModelInput, PoolInput},
    npy::{NpyArray, NpyData, NpyError, parse_npy, parse_npz},
};
use thiserror::Error;

/// Where a pool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `{"labels": [...], "models": [{"name", "predictions", "probabilities"}]}`.
    Json(PathBuf),
    /// Arrays `labels` (N), `predictions` (M×N), optional `probabilities` (M×N×C).
    Npz(PathBuf),
    /// `labels.npy` and one `<model>.npy` per model (N integers or N×C floats).
    NpyDir(PathBuf),
    /// A one-column labels file and a predictions file with one column per model.
    CsvPair {
        /// The labels file.
        labels: PathBuf,
        /// The predictions file; its header names the models.
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

/// Why the input files could not be read as a pool. Rows and lines are 1-based.
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
    /// A JSON file does not have the pool's shape.
    #[error("{}: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde's message, with line and column.
        error: serde_json::Error,
    },
    /// A CSV cell or row is malformed.
    #[error("{}, line {line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// A `.npy` or `.npz` file is malformed.
    #[error("{}: {error}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: NpyError,
    },
    /// An array has the wrong shape, type or values.
    #[error("{}, array `{array}`: {message}", path.display())]
    Array {
        /// The file.
        path: PathBuf,
        /// The array's name.
        array: String,
        /// What was expected.
        message: String,
    },
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

/// Reads the pool data; [`fuselab_shared::ensemble::Pool::new`] validates it.
///
/// # Errors
/// [`InputError`] naming the file, array, line or column and what was expected.
pub fn load(source: &Source) -> Result<PoolInput, InputError> {
    match source {
        Source::Json(path) => {
            serde_json::from_slice(&read(path)?).map_err(|error| InputError::Json {
                path: path.clone(),
                error,
            })
        }
        Source::CsvPair {
            labels,
            predictions,
        } => csv_pair(labels, predictions),
        Source::Npz(path) => npz(path),
        Source::NpyDir(path) => npy_dir(path),
    }
}

fn text(path: &Path) -> Result<String, InputError> {
    String::from_utf8(read(path)?).map_err(|_| InputError::Csv {
        path: path.to_owned(),
        line: 1,
        message: "the file is not UTF-8 text".into(),
    })
}

/// Non-blank lines with their 1-based numbers, cells trimmed.
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line.split(',').map(str::trim).collect()))
}

fn class(path: &Path, line: usize, column: &str, cell: &str) -> Result<u32, InputError> {
    cell.parse().map_err(|_| InputError::Csv {
        path: path.to_owned(),
        line,
        message: format!(
            "column `{column}`: expected a non-negative integer class id, found `{cell}`"
        ),
    })
}

fn csv_pair(labels_path: &Path, predictions_path: &Path) -> Result<PoolInput, InputError> {
    let labels_text = text(labels_path)?;
    let mut labels = Vec::new();
    for (index, (line, cells)) in rows(&labels_text).enumerate() {
        if cells.len() != 1 {
            return Err(InputError::Csv {
                path: labels_path.to_owned(),
                line,
                message: format!("expected one column (the label), found {}", cells.len()),
            });
        }
        // A first row that is not a number is the column's header.
        if index == 0 && cells[0].parse::<u32>().is_err() && cells[0].parse::<i64>().is_err() {
            continue;
        }
        labels.push(class(labels_path, line, "label", cells[0])?);
    }

    let predictions_text = text(predictions_path)?;
    let mut lines = rows(&predictions_text);
    let (_, header) = lines.next().ok_or_else(|| InputError::Csv {
        path: predictions_path.to_owned(),
        line: 1,
        message: "the file is empty: expected a header with one model name per column".into(),
    })?;
    let names: Vec<String> = header.iter().map(|&name| name.to_owned()).collect();
    let mut predictions = vec![Vec::with_capacity(labels.len()); names.len()];
    for (line, cells) in lines {
        if cells.len() != names.len() {
            return Err(InputError::Csv {
                path: predictions_path.to_owned(),
                line,
                message: format!(
                    "expected {} cells (one per model), found {}",
                    names.len(),
                    cells.len()
                ),
            });
        }
        for ((column, cell), values) in names.iter().zip(&cells).zip(&mut predictions) {
            values.push(class(predictions_path, line, column, cell)?);
        }
    }
    Ok(PoolInput {
        labels,
        models: names
            .into_iter()
            .zip(predictions)
            .map(|(name, predictions)| ModelInput {
                name,
                predictions: Some(predictions),
                probabilities: None,
            })
            .collect(),
        classes: None,
    })
}

fn array_error(path: &Path, array: &str, message: String) -> InputError {
    InputError::Array {
        path: path.to_owned(),
        array: array.to_owned(),
        message,
    }
}

/// Class ids from an integer array.
fn classes(path: &Path, name: &str, values: &[i64]) -> Result<Vec<u32>, InputError> {
    values
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            u32::try_from(value).map_err(|_| {
                array_error(
                    path,
                    name,
                    format!("element {index} is {value}: expected a non-negative class id"),
                )
            })
        })
        .collect()
}

fn ints<'a>(path: &Path, name: &str, array: &'a NpyArray) -> Result<&'a [i64], InputError> {
    match &array.data {
        NpyData::Int(values) => Ok(values),
        NpyData::Float(_) => Err(array_error(
            path,
            name,
            format!(
                "expected integer class ids, found a float array of shape {:?}",
                array.shape
            ),
        )),
    }
}

/// Rows of `width` probabilities from a float array.
fn probability_rows(
    path: &Path,
    name: &str,
    array: &NpyArray,
    width: usize,
) -> Result<Vec<Vec<f64>>, InputError> {
    match &array.data {
        NpyData::Float(values) => Ok(values.chunks(width).map(<[f64]>::to_vec).collect()),
        NpyData::Int(_) => Err(array_error(
            path,
            name,
            "expected float probabilities, found an integer array".into(),
        )),
    }
}

fn npz(path: &Path) -> Result<PoolInput, InputError> {
    let arrays = parse_npz(&read(path)?).map_err(|error| InputError::Npy {
        path: path.to_owned(),
        error,
    })?;
    let find = |name: &str| arrays.iter().find(|(n, _)| n == name).map(|(_, a)| a);
    let labels = find("labels").ok_or_else(|| {
        array_error(
            path,
            "labels",
            "missing: the archive needs `labels` (N)".into(),
        )
    })?;
    if labels.shape.len() != 1 {
        return Err(array_error(
            path,
            "labels",
            format!("expected 1-D (samples), found shape {:?}", labels.shape),
        ));
    }
    let samples = labels.shape[0];
    let labels = classes(path, "labels", ints(path, "labels", labels)?)?;

    let predictions = match find("predictions") {
        None => None,
        Some(array) => {
            if array.shape.len() != 2 || array.shape[1] != samples {
                return Err(array_error(
                    path,
                    "predictions",
                    format!(
                        "expected shape [models, {samples}], found {:?}",
                        array.shape
                    ),
                ));
            }
            let values = classes(path, "predictions", ints(path, "predictions", array)?)?;
            Some(
                values
                    .chunks(samples.max(1))
                    .map(<[u32]>::to_vec)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let probabilities = match find("probabilities") {
        None => None,
        Some(array) => {
            if array.shape.len() != 3 || array.shape[1] != samples {
                return Err(array_error(
                    path,
                    "probabilities",
                    format!(
                        "expected shape [models, {samples}, classes], found {:?}",
                        array.shape
                    ),
                ));
            }
            let rows = probability_rows(path, "probabilities", array, array.shape[2].max(1))?;
            Some(
                rows.chunks(samples.max(1))
                    .map(<[Vec<f64>]>::to_vec)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let models = match (&predictions, &probabilities) {
        (None, None) => {
            return Err(array_error(
                path,
                "predictions",
                "missing: the archive needs `predictions` (M×N) or `probabilities` (M×N×C)".into(),
            ));
        }
        (Some(p), _) => p.len(),
        (None, Some(p)) => p.len(),
    };
    if let (Some(p), Some(q)) = (&predictions, &probabilities)
        && p.len() != q.len()
    {
        return Err(array_error(
            path,
            "probabilities",
            format!("has {} models, `predictions` has {}", q.len(), p.len()),
        ));
    }
    let mut predictions = predictions.map(Vec::into_iter);
    let mut probabilities = probabilities.map(Vec::into_iter);
    Ok(PoolInput {
        labels,
        models: (0..models)
            .map(|m| ModelInput {
                name: format!("model{m}"),
                predictions: predictions.as_mut().and_then(Iterator::next),
                probabilities: probabilities.as_mut().and_then(Iterator::next),
            })
            .collect(),
        classes: None,
    })
}

fn npy_dir(dir: &Path) -> Result<PoolInput, InputError> {
    let entries = fs::read_dir(dir).map_err(|error| InputError::Read {
        path: dir.to_owned(),
        error,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|error| InputError::Read {
                path: dir.to_owned(),
                error,
            })?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            files.push(path);
        }
    }
    // Model order is file-name order, so the same folder always gives the same pool.
    files.sort();
    let parse = |path: &Path| {
        parse_npy(&read(path)?).map_err(|error| InputError::Npy {
            path: path.to_owned(),
            error,
        })
    };
    let labels_path = dir.join("labels.npy");
    let labels_array = parse(&labels_path)?;
    if labels_array.shape.len() != 1 {
        return Err(array_error(
            &labels_path,
            "labels",
            format!(
                "expected 1-D (samples), found shape {:?}",
                labels_array.shape
            ),
        ));
    }
    let labels = classes(
        &labels_path,
        "labels",
        ints(&labels_path, "labels", &labels_array)?,
    )?;
    let mut models = Vec::new();
    for path in files
        .iter()
        .filter(|p| p.file_name() != Some("labels.npy".as_ref()))
    {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let array = parse(path)?;
        let model = match (array.shape.as_slice(), &array.data) {
            ([n], NpyData::Int(values)) if *n == labels.len() => ModelInput {
                predictions: Some(classes(path, &name, values)?),
                probabilities: None,
                name,
            },
            ([n, c], NpyData::Float(_)) if *n == labels.len() => ModelInput {
                probabilities: Some(probability_rows(path, &name, &array, (*c).max(1))?),
                predictions: None,
                name,
            },
            (shape, _) => {
                return Err(array_error(
                    path,
                    &name,
                    format!(
                        "expected {} integer class ids or a {}×C float array, found a {} array of shape {shape:?}",
                        labels.len(),
                        labels.len(),
                        if matches!(array.data, NpyData::Int(_)) {
                            "integer"
                        } else {
                            "float"
                        },
                    ),
                ));
            }
        };
        models.push(model);
    }
    Ok(PoolInput {
        labels,
        models,
        classes: None,
    })
}
