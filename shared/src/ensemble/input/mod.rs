//! Reading a model pool from file contents: JSON, a CSV pair, an `.npz` archive or a set of
//! `.npy` files (`labels.npy` and one `<model>.npy` per model). Every form can carry per-sample
//! splits and per-model probabilities or logits. Pure: callers read the bytes (the CLI from
//! disk, the browser from dropped files) and name them for error messages.

mod answers;
mod csv;
mod numpy;

use thiserror::Error;

pub use answers::SPLIT_SEED as ANSWER_SPLIT_SEED;

use super::limits::{LimitError, Limits};
use super::pool::PoolInput;
use crate::npy::NpyError;
use crate::table::rows;

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
    /// `{"labels":[...], "splits":[...], "models":[{"name", "predictions", "probabilities",
    /// "logits"}]}`.
    Json(InputFile<'a>),
    /// An archive with `labels` (N), `predictions` (M×N), `probabilities` and/or `logits`
    /// (M×N×C), and optionally `splits` (N: 0 train, 1 val, 2 test).
    Npz(InputFile<'a>),
    /// `labels.npy`, optionally `splits.npy`, and per model `<model>.npy` (N integers or N×C
    /// floats) and/or `<model>.logits.npy` (N×C).
    Npy(Vec<InputFile<'a>>),
    /// One column of labels (and optionally one of splits), and per model a column of predicted
    /// classes `NAME` and/or its scores `NAME:p0…` or `NAME:logit0…`.
    CsvPair {
        /// The labels file.
        labels: InputFile<'a>,
        /// The predictions file.
        predictions: InputFile<'a>,
    },
    /// LLM answers: a question set with gold answers and one answer set per model, all JSON
    /// Lines (see [`crate::topla`]).
    Answers(Vec<InputFile<'a>>),
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
    /// A question or answer set is malformed or incomplete.
    #[error(transparent)]
    Answers(#[from] crate::topla::RecordError),
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
    /// or else a single column, or a label and a split).
    ///
    /// # Errors
    /// [`InputError::Files`] naming what was given and what is accepted.
    pub fn detect(files: &[InputFile<'a>]) -> Result<Self, InputError> {
        let count = |ext: &str| files.iter().filter(|f| has_extension(f.name, ext)).count();
        let accepted = "give one .json file, one .npz archive, labels.npy with one <model>.npy per model, two .csv files (labels and predictions), or LLM answers: a .jsonl question set with one .jsonl answer set per model";
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
            _ if files.len() >= 3 && files.iter().all(|f| has_extension(f.name, "jsonl")) => {
                Ok(Self::Answers(files.to_vec()))
            }
            ([a, b], 0, 0, 0, 2) => {
                let named = |f: &InputFile| stem(f.name).to_ascii_lowercase().contains("label");
                let single_column = |f: &InputFile| {
                    std::str::from_utf8(f.bytes)
                        .ok()
                        .and_then(|t| rows(t).next())
                        .is_some_and(|row| csv::labels_shaped(&row.cells))
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
            } => csv::csv_pair(*labels, *predictions, limits),
            Self::Npz(file) => numpy::npz(*file, limits),
            Self::Npy(files) => numpy::npy_files(files, limits),
            Self::Answers(files) => answers::answer_files(files, limits),
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A file of `text` named `name`.
    pub(in crate::ensemble::input) fn file<'a>(name: &'a str, text: &'a str) -> InputFile<'a> {
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
