//! Per-model predicted classes for a labelled sample set: the input of ensemble analysis.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One model's predicted class for every sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPredictions {
    /// The model's name, unique within a table.
    pub name: String,
    /// Predicted class id per sample, in the order of [`PredictionTable::labels`].
    pub predictions: Vec<u32>,
}

/// True labels and the predictions of a pool of models on the same samples.
///
/// The JSON form is `{"labels": [...], "models": [{"name": "...", "predictions": [...]}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionTable {
    /// True class id per sample.
    pub labels: Vec<u32>,
    /// The model pool.
    pub models: Vec<ModelPredictions>,
}

/// Why a prediction table was rejected. Rows and lines are 1-based, as an editor shows them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PredictionError {
    /// The text holds no header line.
    #[error("the table is empty: expected a header line `label,<model>,<model>,...`")]
    Empty,
    /// The first header cell is not `label`.
    #[error("line 1, column 1: expected the header `label`, found `{found}`")]
    LabelHeader {
        /// What the first header cell holds.
        found: String,
    },
    /// A header cell naming a model is empty.
    #[error("line 1, column {column}: the model name is empty")]
    EmptyName {
        /// 1-based column of the empty name.
        column: usize,
    },
    /// Two models share a name.
    #[error("model name `{name}` appears twice; model names must be unique")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// Fewer than two models.
    #[error("found {found} model(s); at least 2 models are needed to compare them")]
    TooFewModels {
        /// How many models the table has.
        found: usize,
    },
    /// The table has a header but no samples.
    #[error("the table has no samples: expected at least one row of labels")]
    NoSamples,
    /// A CSV row has the wrong number of cells.
    #[error("line {line}: expected {expected} cells (label and one per model), found {found}")]
    RowWidth {
        /// 1-based line in the text.
        line: usize,
        /// Cells in the header.
        expected: usize,
        /// Cells in this row.
        found: usize,
    },
    /// A CSV cell is not a class id.
    #[error(
        "line {line}, column `{column}`: expected a non-negative integer class id, found `{value}`"
    )]
    Cell {
        /// 1-based line in the text.
        line: usize,
        /// The header of the cell's column.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// A model has a different number of predictions than there are labels.
    #[error("model `{model}`: expected {expected} predictions (one per label), found {found}")]
    Length {
        /// The model's name.
        model: String,
        /// The number of labels.
        expected: usize,
        /// The number of predictions.
        found: usize,
    },
}

impl PredictionTable {
    /// Checks the invariants every analysis relies on: at least two uniquely named models,
    /// at least one sample, and one prediction per label for every model.
    ///
    /// # Errors
    /// The first violated invariant, naming the model or column.
    pub fn validate(&self) -> Result<(), PredictionError> {
        if self.models.len() < 2 {
            return Err(PredictionError::TooFewModels {
                found: self.models.len(),
            });
        }
        if self.labels.is_empty() {
            return Err(PredictionError::NoSamples);
        }
        for (index, model) in self.models.iter().enumerate() {
            if model.name.trim().is_empty() {
                return Err(PredictionError::EmptyName { column: index + 2 });
            }
            if self.models[..index].iter().any(|m| m.name == model.name) {
                return Err(PredictionError::DuplicateName {
                    name: model.name.clone(),
                });
            }
            if model.predictions.len() != self.labels.len() {
                return Err(PredictionError::Length {
                    model: model.name.clone(),
                    expected: self.labels.len(),
                    found: model.predictions.len(),
                });
            }
        }
        Ok(())
    }

    /// Parses CSV text: a header `label,<model>,...`, then one row per sample with the true
    /// class id followed by each model's predicted class id. Fields may be quoted (a model name
    /// with a comma or a quote); blank lines are skipped and cells are trimmed. The result is
    /// validated.
    ///
    /// # Errors
    /// The first problem found, naming the line and column.
    pub fn from_csv(text: &str) -> Result<Self, PredictionError> {
        let mut rows = crate::table::rows(text);
        let header = rows.next().ok_or(PredictionError::Empty)?.cells;
        if !header[0].eq_ignore_ascii_case("label") {
            return Err(PredictionError::LabelHeader {
                found: header[0].clone(),
            });
        }
        let mut table = Self {
            labels: Vec::new(),
            models: header[1..]
                .iter()
                .map(|name| ModelPredictions {
                    name: name.clone(),
                    predictions: Vec::new(),
                })
                .collect(),
        };
        if let Some(column) = table.models.iter().position(|m| m.name.is_empty()) {
            return Err(PredictionError::EmptyName { column: column + 2 });
        }
        for crate::table::Row { line, cells } in rows {
            if cells.len() != header.len() {
                return Err(PredictionError::RowWidth {
                    line,
                    expected: header.len(),
                    found: cells.len(),
                });
            }
            let parse = |column: usize| {
                cells[column]
                    .parse::<u32>()
                    .map_err(|_| PredictionError::Cell {
                        line,
                        column: header[column].clone(),
                        value: cells[column].clone(),
                    })
            };
            table.labels.push(parse(0)?);
            for (index, model) in table.models.iter_mut().enumerate() {
                model.predictions.push(parse(index + 1)?);
            }
        }
        table.validate()?;
        Ok(table)
    }

    /// The table as CSV, the form [`PredictionTable::from_csv`] reads back: names are quoted
    /// where they hold a comma, a quote or a line break.
    pub fn to_csv(&self) -> String {
        let header = std::iter::once("label".to_owned())
            .chain(self.models.iter().map(|m| m.name.clone()))
            .collect::<Vec<_>>();
        let rows = self.labels.iter().enumerate().map(|(sample, label)| {
            std::iter::once(label)
                .chain(self.models.iter().filter_map(|m| m.predictions.get(sample)))
                .map(u32::to_string)
                .collect::<Vec<_>>()
        });
        crate::table::write(std::iter::once(header).chain(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_with_blank_lines_and_spaces() {
        let table = PredictionTable::from_csv("label, a ,b\r\n0,0,1\n\n 2 ,1,2\n").unwrap();
        assert_eq!(table.labels, vec![0, 2]);
        assert_eq!(table.models[0].name, "a");
        assert_eq!(table.models[0].predictions, vec![0, 1]);
        assert_eq!(table.models[1].predictions, vec![1, 2]);
    }

    #[test]
    fn csv_errors_name_line_and_column() {
        let err = PredictionTable::from_csv("label,a,b\n0,0,1\n1,x,1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, column `a`: expected a non-negative integer class id, found `x`"
        );
        let err = PredictionTable::from_csv("label,a,b\n0,0\n").unwrap_err();
        assert_eq!(
            err,
            PredictionError::RowWidth {
                line: 2,
                expected: 3,
                found: 2
            }
        );
        assert_eq!(
            PredictionTable::from_csv("y,a,b\n0,0,0").unwrap_err(),
            PredictionError::LabelHeader { found: "y".into() }
        );
        assert_eq!(
            PredictionTable::from_csv("label,a\n0,0").unwrap_err(),
            PredictionError::TooFewModels { found: 1 }
        );
        assert_eq!(
            PredictionTable::from_csv("label,a,a\n0,0,0").unwrap_err(),
            PredictionError::DuplicateName { name: "a".into() }
        );
        assert_eq!(
            PredictionTable::from_csv("label,a,\n0,0,0").unwrap_err(),
            PredictionError::EmptyName { column: 3 }
        );
        assert_eq!(
            PredictionTable::from_csv("label,a,b\n").unwrap_err(),
            PredictionError::NoSamples
        );
        assert_eq!(
            PredictionTable::from_csv(" \n").unwrap_err(),
            PredictionError::Empty
        );
        assert!(PredictionTable::from_csv("label,a,b\n0,-1,0").is_err());
    }

    #[test]
    fn json_lengths_are_checked() {
        let table: PredictionTable = serde_json::from_str(
            r#"{"labels":[0,1,1],"models":[{"name":"a","predictions":[0,1,1]},{"name":"b","predictions":[0,1]}]}"#,
        )
        .unwrap();
        assert_eq!(
            table.validate().unwrap_err().to_string(),
            "model `b`: expected 3 predictions (one per label), found 2"
        );
    }

    #[test]
    fn names_with_commas_and_quotes_survive_a_round_trip() {
        let table = PredictionTable {
            labels: vec![0, 2],
            models: vec![
                ModelPredictions {
                    name: "resnet, v2".into(),
                    predictions: vec![0, 1],
                },
                ModelPredictions {
                    name: "the \"big\" one".into(),
                    predictions: vec![2, 2],
                },
            ],
        };
        let text = table.to_csv();
        assert_eq!(
            text,
            "label,\"resnet, v2\",\"the \"\"big\"\" one\"\n0,0,2\n2,1,2\n"
        );
        assert_eq!(PredictionTable::from_csv(&text).unwrap(), table);
    }
}
