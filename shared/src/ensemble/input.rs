//! Reading a model pool from file contents: JSON, a CSV pair, an `.npz` archive or a set of
//! `.npy` files (`labels.npy` and one `<model>.npy` per model). Pure: callers read the bytes
//! (the CLI from disk, the browser from dropped files) and name them for error messages.

use thiserror::Error;

use super::limits::{LimitError, Limits};
use super::pool::{ModelInput, PoolInput};
use crate::npy::{
    NpyArray, NpyData, NpyError, npz_shapes, parse_npy_with_limit, parse_npz_with_limit,
};
use crate::table::{Row, rows};

/// One input file: the name errors should show (a path, or a dropped file's name) and its
/// contents.
#[derive(Debug, Clone, Copy)]
pub struct InputFile<'a> {
    /// The name to show.
    pub name: &'a str,
    /// The contents.
    pub bytes: &'a [u8],
}

/// Which files make up a pool.
#[derive(Debug, Clone)]
pub enum PoolFiles<'a> {
    /// `{"labels":[...], "models":[{"name", "predictions", "probabilities"}]}`.
    Json(InputFile<'a>),
    /// An archive with `labels` (N), `predictions` (M×N) and/or `probabilities` (M×N×C).
    Npz(InputFile<'a>),
    /// `labels.npy` and one `<model>.npy` per model (N integers or N×C floats).
    Npy(Vec<InputFile<'a>>),
    /// One column of labels, and one column of predicted classes per model under a header of
    /// model names.
    CsvPair {
        /// The labels file.
        labels: InputFile<'a>,
        /// The predictions file.
        predictions: InputFile<'a>,
    },
}

/// Why files could not be read as a pool. Lines are 1-based.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    /// The set of files is not one of the accepted forms.
    #[error("{message}")]
    Files {
        /// What to give instead.
        message: String,
    },
    /// A JSON file does not have the pool's shape.
    #[error("{file}: {message}")]
    Json {
        /// The file.
        file: String,
        /// serde's message, with line and column.
        message: String,
    },
    /// A CSV cell or row is malformed.
    #[error("{file}, line {line}: {message}")]
    Csv {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// A `.npy` or `.npz` file is malformed.
    #[error("{file}: {error}")]
    Npy {
        /// The file.
        file: String,
        /// What is wrong.
        error: NpyError,
    },
    /// The files describe a pool larger than the limits allow.
    #[error("{file}: {error}")]
    Limit {
        /// The file.
        file: String,
        /// Which limit, and how to raise it.
        error: LimitError,
    },
    /// An array has the wrong shape, type or values.
    #[error("{file}, array `{array}`: {message}")]
    Array {
        /// The file.
        file: String,
        /// The array's name.
        array: String,
        /// What was expected.
        message: String,
    },
}

fn has_extension(name: &str, extension: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, e)| e.eq_ignore_ascii_case(extension))
}

/// The file name without folders and extension.
fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.').map_or(base, |(stem, _)| stem)
}

impl<'a> PoolFiles<'a> {
    /// Recognises a set of files by their extensions: one `.json`, one `.npz`, `.npy` files
    /// (one of them `labels.npy`), or two `.csv` files (the labels file has "label" in its name,
    /// or else a single column).
    ///
    /// # Errors
    /// [`InputError::Files`] naming what was given and what is accepted.
    pub fn detect(files: &[InputFile<'a>]) -> Result<Self, InputError> {
        let count = |ext: &str| files.iter().filter(|f| has_extension(f.name, ext)).count();
        let accepted = "give one .json file, one .npz archive, labels.npy with one <model>.npy per model, or two .csv files (labels and predictions)";
        match (
            files,
            count("json"),
            count("npz"),
            count("npy"),
            count("csv"),
        ) {
            ([file], 1, 0, 0, 0) => Ok(Self::Json(*file)),
            ([file], 0, 1, 0, 0) => Ok(Self::Npz(*file)),
            (_, 0, 0, n, 0) if n == files.len() && n >= 2 => Ok(Self::Npy(files.to_vec())),
            ([a, b], 0, 0, 0, 2) => {
                let named = |f: &InputFile| stem(f.name).to_ascii_lowercase().contains("label");
                let single_column = |f: &InputFile| {
                    std::str::from_utf8(f.bytes)
                        .ok()
                        .and_then(|t| rows(t).next())
                        .is_some_and(|row| row.cells.len() == 1)
                };
                let (labels, predictions) = if named(a) != named(b) {
                    if named(a) { (a, b) } else { (b, a) }
                } else if single_column(a) != single_column(b) {
                    if single_column(a) { (a, b) } else { (b, a) }
                } else {
                    return Err(InputError::Files {
                        message: format!(
                            "cannot tell which of {} and {} holds the labels: name it with \"label\" or give it one column",
                            a.name, b.name
                        ),
                    });
                };
                Ok(Self::CsvPair {
                    labels: *labels,
                    predictions: *predictions,
                })
            }
            _ => Err(InputError::Files {
                message: format!(
                    "{} file(s) given ({}): {accepted}",
                    files.len(),
                    files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// Parses the files within [`Limits::default`]; [`super::Pool::new`] validates the result.
    ///
    /// # Errors
    /// As [`PoolFiles::parse_with`].
    pub fn parse(&self) -> Result<PoolInput, InputError> {
        self.parse_with(&Limits::default())
    }

    /// Parses the files; [`super::Pool::with_limits`] validates the result. Sizes read from the
    /// files (models, cells, decompressed bytes) are checked against `limits` before tables of
    /// that size are allocated.
    ///
    /// # Errors
    /// [`InputError`] naming the file, array, line or column and what was expected, or the
    /// limit crossed.
    pub fn parse_with(&self, limits: &Limits) -> Result<PoolInput, InputError> {
        match self {
            Self::Json(file) => {
                serde_json::from_slice(file.bytes).map_err(|error| InputError::Json {
                    file: file.name.to_owned(),
                    message: error.to_string(),
                })
            }
            Self::CsvPair {
                labels,
                predictions,
            } => csv_pair(*labels, *predictions, limits),
            Self::Npz(file) => npz(*file, limits),
            Self::Npy(files) => npy_files(files, limits),
        }
    }
}

fn text(file: InputFile<'_>) -> Result<&str, InputError> {
    std::str::from_utf8(file.bytes).map_err(|_| InputError::Csv {
        file: file.name.to_owned(),
        line: 1,
        message: "the file is not UTF-8 text".into(),
    })
}

fn npy_error(file: &str) -> impl Fn(NpyError) -> InputError + '_ {
    move |error| InputError::Npy {
        file: file.to_owned(),
        error,
    }
}

fn limit_error(file: &str) -> impl Fn(LimitError) -> InputError + '_ {
    move |error| InputError::Limit {
        file: file.to_owned(),
        error,
    }
}

fn class(file: &str, line: usize, column: &str, cell: &str) -> Result<u32, InputError> {
    cell.parse().map_err(|_| InputError::Csv {
        file: file.to_owned(),
        line,
        message: format!(
            "column `{column}`: expected a non-negative integer class id, found `{cell}`"
        ),
    })
}

fn csv_pair(
    labels_file: InputFile,
    predictions_file: InputFile,
    limits: &Limits,
) -> Result<PoolInput, InputError> {
    let mut labels = Vec::new();
    for (index, Row { line, cells }) in rows(text(labels_file)?).enumerate() {
        if cells.len() != 1 {
            return Err(InputError::Csv {
                file: labels_file.name.to_owned(),
                line,
                message: format!("expected one column (the label), found {}", cells.len()),
            });
        }
        // A first row that is not a number is the column's header.
        if index == 0 && cells[0].parse::<u32>().is_err() && cells[0].parse::<i64>().is_err() {
            continue;
        }
        labels.push(class(labels_file.name, line, "label", &cells[0])?);
    }

    let mut lines = rows(text(predictions_file)?);
    let names = lines
        .next()
        .ok_or_else(|| InputError::Csv {
            file: predictions_file.name.to_owned(),
            line: 1,
            message: "the file is empty: expected a header with one model name per column".into(),
        })?
        .cells;
    // Checked before the per-model columns are reserved at the labels' length.
    limits
        .check_pool(names.len(), labels.len(), 0, false)
        .map_err(limit_error(predictions_file.name))?;
    let mut predictions = vec![Vec::with_capacity(labels.len()); names.len()];
    for Row { line, cells } in lines {
        if cells.len() != names.len() {
            return Err(InputError::Csv {
                file: predictions_file.name.to_owned(),
                line,
                message: format!(
                    "expected {} cells (one per model), found {}",
                    names.len(),
                    cells.len()
                ),
            });
        }
        for ((column, cell), values) in names.iter().zip(&cells).zip(&mut predictions) {
            values.push(class(predictions_file.name, line, column, cell)?);
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

fn array_error(file: &str, array: &str, message: String) -> InputError {
    InputError::Array {
        file: file.to_owned(),
        array: array.to_owned(),
        message,
    }
}

/// Class ids from an integer array.
fn classes(file: &str, name: &str, values: &[i64]) -> Result<Vec<u32>, InputError> {
    values
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            u32::try_from(value).map_err(|_| {
                array_error(
                    file,
                    name,
                    format!("element {index} is {value}: expected a non-negative class id"),
                )
            })
        })
        .collect()
}

fn ints<'a>(file: &str, name: &str, array: &'a NpyArray) -> Result<&'a [i64], InputError> {
    match &array.data {
        NpyData::Int(values) => Ok(values),
        NpyData::Float(_) => Err(array_error(
            file,
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
    file: &str,
    name: &str,
    array: &NpyArray,
    width: usize,
) -> Result<Vec<Vec<f64>>, InputError> {
    match &array.data {
        NpyData::Float(values) => Ok(values.chunks(width).map(<[f64]>::to_vec).collect()),
        NpyData::Int(_) => Err(array_error(
            file,
            name,
            "expected float probabilities, found an integer array".into(),
        )),
    }
}

fn missing_labels(file: &str) -> InputError {
    array_error(
        file,
        "labels",
        "missing: the archive needs `labels` (N)".into(),
    )
}

/// The samples, models and classes (0 without probabilities) of an `.npz` pool, from the shapes its arrays declare: `labels` (N),
/// `predictions` (M×N) and/or `probabilities` (M×N×C), checked against each other and against
/// `limits` before any array is inflated in full.
fn npz_table(
    name: &str,
    shapes: &[(String, Vec<usize>)],
    limits: &Limits,
) -> Result<(usize, usize, usize), InputError> {
    let shape = |array: &str| {
        shapes
            .iter()
            .find(|(n, _)| n == array)
            .map(|(_, s)| s.as_slice())
    };
    let labels = shape("labels").ok_or_else(|| missing_labels(name))?;
    let &[samples] = labels else {
        return Err(array_error(
            name,
            "labels",
            format!("expected 1-D (samples), found shape {labels:?}"),
        ));
    };
    let predictions = match shape("predictions") {
        None => None,
        Some(&[models, n]) if n == samples => Some(models),
        Some(other) => {
            return Err(array_error(
                name,
                "predictions",
                format!("expected shape [models, {samples}], found {other:?}"),
            ));
        }
    };
    let probabilities = match shape("probabilities") {
        None => None,
        Some(&[models, n, classes]) if n == samples => Some((models, classes)),
        Some(other) => {
            return Err(array_error(
                name,
                "probabilities",
                format!("expected shape [models, {samples}, classes], found {other:?}"),
            ));
        }
    };
    let (models, classes) = match (predictions, probabilities) {
        (None, None) => {
            return Err(array_error(
                name,
                "predictions",
                "missing: the archive needs `predictions` (M×N) or `probabilities` (M×N×C)".into(),
            ));
        }
        (Some(p), Some((q, _))) if p != q => {
            return Err(array_error(
                name,
                "probabilities",
                format!("has {q} models, `predictions` has {p}"),
            ));
        }
        (Some(models), None) => (models, 0),
        (_, Some(table)) => table,
    };
    limits
        .check_pool(models, samples, classes, probabilities.is_some())
        .map_err(limit_error(name))?;
    Ok((samples, models, classes))
}

fn npz(file: InputFile, limits: &Limits) -> Result<PoolInput, InputError> {
    let name = file.name;
    // The shapes come from each member's first bytes, so an archive declaring a table over the
    // limits is refused before anything is inflated in full.
    let shapes = npz_shapes(file.bytes).map_err(npy_error(name))?;
    let (samples, models, width) = npz_table(name, &shapes, limits)?;
    let arrays =
        parse_npz_with_limit(file.bytes, limits.max_decompressed_bytes).map_err(npy_error(name))?;
    let find = |array: &str| arrays.iter().find(|(n, _)| n == array).map(|(_, a)| a);
    let labels = find("labels").ok_or_else(|| missing_labels(name))?;
    let labels = classes(name, "labels", ints(name, "labels", labels)?)?;
    let predictions = match find("predictions") {
        None => None,
        Some(array) => {
            let values = classes(name, "predictions", ints(name, "predictions", array)?)?;
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
            let rows = probability_rows(name, "probabilities", array, width.max(1))?;
            Some(
                rows.chunks(samples.max(1))
                    .map(<[Vec<f64>]>::to_vec)
                    .collect::<Vec<_>>(),
            )
        }
    };
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

fn npy_files(files: &[InputFile], limits: &Limits) -> Result<PoolInput, InputError> {
    let parse = |file: &InputFile| {
        parse_npy_with_limit(file.bytes, limits.max_decompressed_bytes)
            .map_err(npy_error(file.name))
    };
    let is_labels = |file: &InputFile| stem(file.name) == "labels";
    let labels_file = files
        .iter()
        .find(|f| is_labels(f))
        .ok_or_else(|| InputError::Files {
            message: format!(
                "no labels.npy among the {} .npy files: it holds the true class of each sample",
                files.len()
            ),
        })?;
    let labels_array = parse(labels_file)?;
    if labels_array.shape.len() != 1 {
        return Err(array_error(
            labels_file.name,
            "labels",
            format!(
                "expected 1-D (samples), found shape {:?}",
                labels_array.shape
            ),
        ));
    }
    let labels = classes(
        labels_file.name,
        "labels",
        ints(labels_file.name, "labels", &labels_array)?,
    )?;
    // Model order is file-name order, so the same folder always gives the same pool.
    let mut model_files: Vec<&InputFile> = files.iter().filter(|f| !is_labels(f)).collect();
    limits
        .check_models(model_files.len())
        .map_err(limit_error(labels_file.name))?;
    model_files.sort_by(|a, b| a.name.cmp(b.name));
    let mut models = Vec::new();
    for file in model_files {
        let name = stem(file.name).to_owned();
        let array = parse(file)?;
        let model = match (array.shape.as_slice(), &array.data) {
            ([n], NpyData::Int(values)) if *n == labels.len() => ModelInput {
                predictions: Some(classes(file.name, &name, values)?),
                probabilities: None,
                name,
            },
            ([n, c], NpyData::Float(_)) if *n == labels.len() => ModelInput {
                probabilities: Some(probability_rows(file.name, &name, &array, (*c).max(1))?),
                predictions: None,
                name,
            },
            (shape, _) => {
                return Err(array_error(
                    file.name,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(name: &'a str, text: &'a str) -> InputFile<'a> {
        InputFile {
            name,
            bytes: text.as_bytes(),
        }
    }

    #[test]
    fn detects_each_form() {
        let json = file("pool.json", "{}");
        assert!(matches!(PoolFiles::detect(&[json]), Ok(PoolFiles::Json(_))));
        let npz = file("pool.NPZ", "");
        assert!(matches!(PoolFiles::detect(&[npz]), Ok(PoolFiles::Npz(_))));
        let npy = [file("labels.npy", ""), file("a.npy", "")];
        assert!(matches!(PoolFiles::detect(&npy), Ok(PoolFiles::Npy(_))));
        let csv = [file("preds.csv", "a,b\n1,2"), file("y.csv", "label\n1")];
        match PoolFiles::detect(&csv) {
            Ok(PoolFiles::CsvPair { labels, .. }) => assert_eq!(labels.name, "y.csv"),
            other => panic!("{other:?}"),
        }
        let named = [file("truth_labels.csv", "1,2"), file("p.csv", "a,b")];
        match PoolFiles::detect(&named) {
            Ok(PoolFiles::CsvPair { labels, .. }) => assert_eq!(labels.name, "truth_labels.csv"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_sets_naming_the_files() {
        let error = PoolFiles::detect(&[file("a.txt", ""), file("b.json", "")]).unwrap_err();
        assert!(error.to_string().contains("a.txt, b.json"), "{error}");
        let ambiguous = [file("p.csv", "a,b"), file("q.csv", "c,d")];
        assert!(
            PoolFiles::detect(&ambiguous)
                .unwrap_err()
                .to_string()
                .contains("which of p.csv and q.csv")
        );
        let no_labels = PoolFiles::Npy(vec![file("a.npy", ""), file("b.npy", "")]);
        assert!(
            no_labels
                .parse()
                .unwrap_err()
                .to_string()
                .contains("no labels.npy")
        );
    }

    #[test]
    fn csv_errors_name_file_line_and_column() {
        let pair = PoolFiles::CsvPair {
            labels: file("y.csv", "label\n0\n1\n"),
            predictions: file("p.csv", "resnet,vit\n0,1\n1,x\n"),
        };
        let error = pair.parse().unwrap_err().to_string();
        assert_eq!(
            error,
            "p.csv, line 3: column `vit`: expected a non-negative integer class id, found `x`"
        );
    }

    #[test]
    fn quoted_model_names_are_read_whole() {
        let pair = PoolFiles::CsvPair {
            labels: file("y.csv", "label\n0\n1\n"),
            predictions: file("p.csv", "\"resnet, v2\",\"say \"\"hi\"\"\"\n0,1\n1,1\n"),
        };
        let pool = pair.parse().unwrap();
        let names: Vec<&str> = pool.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["resnet, v2", "say \"hi\""]);
    }

    #[test]
    fn a_wide_header_is_refused_before_columns_are_reserved() {
        let header = (0..1000)
            .map(|m| format!("m{m}"))
            .collect::<Vec<_>>()
            .join(",");
        let pair = PoolFiles::CsvPair {
            labels: file("y.csv", "label\n0\n1\n"),
            predictions: file("p.csv", &header),
        };
        let error = pair.parse().unwrap_err().to_string();
        assert_eq!(
            error,
            "p.csv: 1000 models is above the limit of 256 (raise it with --max-models)"
        );
    }

    #[test]
    fn an_npz_table_over_the_limits_is_refused_from_its_headers() {
        use crate::npy::fixtures::{npy, npz};
        // Sixty million labels declared, eight bytes present: the limit is what answers, so
        // nothing was inflated or decoded in full.
        let archive = npz(&[
            ("labels.npy", npy("|u1", false, "(60000000,)", &[0; 8])),
            (
                "predictions.npy",
                npy("|u1", false, "(1, 60000000)", &[0; 8]),
            ),
        ]);
        let error = PoolFiles::Npz(InputFile {
            name: "big.npz",
            bytes: &archive,
        })
        .parse()
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("big.npz: 60000000 table cells"),
            "{error}"
        );
        assert!(error.contains("--max-cells"), "{error}");
        let archive = npz(&[
            ("labels.npy", npy("|u1", false, "(2,)", &[0; 2])),
            ("predictions.npy", npy("|u1", false, "(3, 2)", &[0; 6])),
            (
                "probabilities.npy",
                npy("<f8", false, "(2, 2, 1)", &[0; 32]),
            ),
        ]);
        let error = PoolFiles::Npz(InputFile {
            name: "p.npz",
            bytes: &archive,
        })
        .parse()
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "p.npz, array `probabilities`: has 2 models, `predictions` has 3"
        );
    }
}
