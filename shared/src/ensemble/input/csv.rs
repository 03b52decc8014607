//! The CSV pair: a labels file (one column of true classes, and optionally a second column of
//! splits) and a predictions file whose header names, per model, a column of predicted classes
//! `NAME`, and/or its class probabilities `NAME:p0 … NAME:p<C-1>` or logits
//! `NAME:logit0 … NAME:logit<C-1>`.

use std::collections::{HashMap, HashSet};

use super::{InputError, InputFile, limit_error, text};
use crate::ensemble::limits::Limits;
use crate::ensemble::pool::{ModelInput, PoolInput};
use crate::ensemble::split::Split;
use crate::table::{Row, rows};

fn csv_error(file: &str, line: usize, message: String) -> InputError {
    InputError::Csv {
        file: file.to_owned(),
        line,
        message,
    }
}

fn class(file: &str, line: usize, column: &str, cell: &str) -> Result<u32, InputError> {
    cell.parse().map_err(|_| {
        csv_error(
            file,
            line,
            format!("column `{column}`: expected a non-negative integer class id, found `{cell}`"),
        )
    })
}

/// Whether a labels file's first row reads as one: a single cell, or two with the second a
/// split (`split` as a header, or a split's name).
pub(super) fn labels_shaped(first_row: &[String]) -> bool {
    match first_row {
        [_] => true,
        [_, second] => second.eq_ignore_ascii_case("split") || second.parse::<Split>().is_ok(),
        _ => false,
    }
}

/// The labels, and the splits when the file has a second column.
fn labels_file(file: InputFile) -> Result<(Vec<u32>, Option<Vec<Split>>), InputError> {
    let mut labels = Vec::new();
    let mut splits = Vec::new();
    let mut width = None;
    for (index, Row { line, cells }) in rows(text(file)?).enumerate() {
        let expected = *width.get_or_insert(cells.len());
        if !(1..=2).contains(&cells.len()) || cells.len() != expected {
            return Err(csv_error(
                file.name,
                line,
                format!(
                    "expected {} (the label{}), found {} cells",
                    if expected == 2 {
                        "two columns"
                    } else {
                        "one column"
                    },
                    if expected == 2 { " and its split" } else { "" },
                    cells.len()
                ),
            ));
        }
        // A first row that is not a number is the columns' header.
        if index == 0 && cells[0].parse::<u32>().is_err() && cells[0].parse::<i64>().is_err() {
            continue;
        }
        labels.push(class(file.name, line, "label", &cells[0])?);
        if let Some(cell) = cells.get(1) {
            let split = cell.parse::<Split>().map_err(|message| {
                csv_error(file.name, line, format!("column `split`: {message}"))
            })?;
            splits.push(split);
        }
    }
    Ok((labels, (width == Some(2)).then_some(splits)))
}

/// What one predictions column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Class { model: usize },
    Probability { model: usize, class: usize },
    Logit { model: usize, class: usize },
}

/// A model's name and, when a header cell is `NAME:pK` or `NAME:logitK`, the kind and class.
fn parse_header_cell(cell: &str) -> (&str, Option<(bool, usize)>) {
    if let Some((name, suffix)) = cell.rsplit_once(':') {
        let class = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<usize>().ok())
                .flatten()
        };
        if let Some(k) = suffix.strip_prefix("logit").and_then(class) {
            return (name, Some((false, k)));
        }
        if let Some(k) = suffix.strip_prefix('p').and_then(class) {
            return (name, Some((true, k)));
        }
    }
    (cell, None)
}

/// Per model: its name, whether it has a class column, and its probability and logit widths.
struct Header {
    names: Vec<String>,
    columns: Vec<Column>,
    has_class: Vec<bool>,
    probabilities: Vec<usize>,
    logits: Vec<usize>,
    /// (model, kind: 0 class, 1 probability, 2 logit, class) of every column.
    seen: HashSet<(usize, u8, usize)>,
}

impl Header {
    /// Reads the header row in one pass (hash look-ups: a wide header costs its length).
    fn parse(file: &str, cells: &[String]) -> Result<Self, InputError> {
        let mut header = Self {
            names: Vec::new(),
            columns: Vec::with_capacity(cells.len()),
            has_class: Vec::new(),
            probabilities: Vec::new(),
            logits: Vec::new(),
            seen: HashSet::with_capacity(cells.len()),
        };
        let mut index: HashMap<&str, usize> = HashMap::new();
        for cell in cells {
            let (name, scores) = parse_header_cell(cell);
            let model = *index.entry(name).or_insert_with(|| {
                header.names.push(name.to_owned());
                header.has_class.push(false);
                header.probabilities.push(0);
                header.logits.push(0);
                header.names.len() - 1
            });
            let (column, key) = match scores {
                None => (Column::Class { model }, (model, 0, 0)),
                Some((true, class)) => (Column::Probability { model, class }, (model, 1, class)),
                Some((false, class)) => (Column::Logit { model, class }, (model, 2, class)),
            };
            if !header.seen.insert(key) {
                return Err(csv_error(file, 1, format!("column `{cell}` appears twice")));
            }
            match column {
                Column::Class { .. } => header.has_class[model] = true,
                Column::Probability { class, .. } => {
                    header.probabilities[model] = header.probabilities[model].max(class + 1);
                }
                Column::Logit { class, .. } => {
                    header.logits[model] = header.logits[model].max(class + 1);
                }
            }
            header.columns.push(column);
        }
        Ok(header)
    }

    /// The widest probability or logit row (0 without scores).
    fn width(&self) -> usize {
        self.probabilities
            .iter()
            .chain(&self.logits)
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Every class from 0 up to a model's widest must have its column. Run after the class
    /// limit is checked, since the width comes from the file.
    fn check_complete(&self, file: &str) -> Result<(), InputError> {
        for (model, name) in self.names.iter().enumerate() {
            for (kind, tag, width) in [
                ("p", 1, self.probabilities[model]),
                ("logit", 2, self.logits[model]),
            ] {
                if let Some(class) = (0..width).find(|&k| !self.seen.contains(&(model, tag, k))) {
                    return Err(csv_error(
                        file,
                        1,
                        format!(
                            "model `{name}`: column `{name}:{kind}{class}` is missing (classes 0..{width} need one column each)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn score(file: &str, line: usize, column: &str, cell: &str) -> Result<f64, InputError> {
    cell.parse().map_err(|_| {
        csv_error(
            file,
            line,
            format!("column `{column}`: expected a number, found `{cell}`"),
        )
    })
}

pub(super) fn csv_pair(
    labels_input: InputFile,
    predictions_file: InputFile,
    limits: &Limits,
) -> Result<PoolInput, InputError> {
    let (labels, splits) = labels_file(labels_input)?;
    let mut lines = rows(text(predictions_file)?);
    let cells = lines
        .next()
        .ok_or_else(|| {
            csv_error(
                predictions_file.name,
                1,
                "the file is empty: expected a header with one model name per column".into(),
            )
        })?
        .cells;
    let header = Header::parse(predictions_file.name, &cells)?;
    // Checked before anything is reserved at the labels' length.
    let width = header.width();
    limits
        .check_pool(header.names.len(), labels.len(), width, width > 0)
        .map_err(limit_error(predictions_file.name))?;
    header.check_complete(predictions_file.name)?;
    let samples = labels.len();
    let mut predicted: Vec<Vec<u32>> = header
        .has_class
        .iter()
        .map(|&has| Vec::with_capacity(if has { samples } else { 0 }))
        .collect();
    let mut probabilities: Vec<Vec<Vec<f64>>> = header
        .probabilities
        .iter()
        .map(|&width| Vec::with_capacity(if width > 0 { samples } else { 0 }))
        .collect();
    let mut logits: Vec<Vec<Vec<f64>>> = header
        .logits
        .iter()
        .map(|&width| Vec::with_capacity(if width > 0 { samples } else { 0 }))
        .collect();
    for Row { line, cells: row } in lines {
        if row.len() != cells.len() {
            return Err(csv_error(
                predictions_file.name,
                line,
                format!(
                    "expected {} cells (one per column of the header), found {}",
                    cells.len(),
                    row.len()
                ),
            ));
        }
        for (m, width) in header.probabilities.iter().enumerate() {
            if *width > 0 {
                probabilities[m].push(vec![0.0; *width]);
            }
        }
        for (m, width) in header.logits.iter().enumerate() {
            if *width > 0 {
                logits[m].push(vec![0.0; *width]);
            }
        }
        for ((column, name), cell) in header.columns.iter().zip(&cells).zip(&row) {
            let file = predictions_file.name;
            match *column {
                Column::Class { model } => predicted[model].push(class(file, line, name, cell)?),
                Column::Probability { model, class } => {
                    if let Some(last) = probabilities[model].last_mut() {
                        last[class] = score(file, line, name, cell)?;
                    }
                }
                Column::Logit { model, class } => {
                    if let Some(last) = logits[model].last_mut() {
                        last[class] = score(file, line, name, cell)?;
                    }
                }
            }
        }
    }
    let models = header
        .names
        .into_iter()
        .enumerate()
        .zip(
            predicted
                .into_iter()
                .zip(probabilities.into_iter().zip(logits)),
        )
        .map(
            |((m, name), (predictions, (probabilities, logits)))| ModelInput {
                name,
                predictions: header.has_class[m].then_some(predictions),
                probabilities: (header.probabilities[m] > 0).then_some(probabilities),
                logits: (header.logits[m] > 0).then_some(logits),
            },
        )
        .collect();
    Ok(PoolInput {
        labels,
        splits,
        models,
        classes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensemble::input::PoolFiles;

    fn file<'a>(name: &'a str, text: &'a str) -> InputFile<'a> {
        InputFile {
            name,
            bytes: text.as_bytes(),
        }
    }

    fn pair(labels: &str, predictions: &str) -> Result<PoolInput, InputError> {
        PoolFiles::CsvPair {
            labels: file("y.csv", labels),
            predictions: file("p.csv", predictions),
        }
        .parse()
    }

    #[test]
    fn splits_probabilities_and_logits_are_read() {
        let pool = pair(
            "label,split\n0,train\n1,val\n1,test\n",
            "a,a:p0,a:p1,b:logit1,b:logit0\n0,0.9,0.1,0.5,2\n1,0.2,0.8,1,0\n0,0.6,0.4,3,-1\n",
        )
        .unwrap();
        assert_eq!(pool.labels, [0, 1, 1]);
        assert_eq!(
            pool.splits.as_deref(),
            Some(&[Split::Train, Split::Val, Split::Test][..])
        );
        let names: Vec<&str> = pool.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(pool.models[0].predictions.as_deref(), Some(&[0, 1, 0][..]));
        assert_eq!(
            pool.models[0].probabilities.as_ref().unwrap()[1],
            [0.2, 0.8]
        );
        assert!(pool.models[1].predictions.is_none());
        assert!(pool.models[1].probabilities.is_none());
        assert_eq!(pool.models[1].logits.as_ref().unwrap()[0], [2.0, 0.5]);
        // A colon that is not a score suffix stays in the name.
        let colons = pair("0\n", "ratio:1,a:pz\n0,1\n").unwrap();
        let names: Vec<&str> = colons.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ratio:1", "a:pz"]);
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let error =
            |labels: &str, predictions: &str| pair(labels, predictions).unwrap_err().to_string();
        assert_eq!(
            error("label,split\n0,train\n1,tset\n", "a\n0\n1\n"),
            "y.csv, line 3: column `split`: expected train, val or test, found `tset`"
        );
        assert_eq!(
            error("label,split\n0,train\n1\n", "a\n0\n1\n"),
            "y.csv, line 3: expected two columns (the label and its split), found 1 cells"
        );
        assert_eq!(
            error("0\n", "a:p0,a:p2\n0.5,0.5\n"),
            "p.csv, line 1: model `a`: column `a:p1` is missing (classes 0..3 need one column each)"
        );
        assert_eq!(
            error("0\n", "a:p0,a:p0\n0.5,0.5\n"),
            "p.csv, line 1: column `a:p0` appears twice"
        );
        assert_eq!(
            error("0\n", "a:logit0,a:logit1\n0.5,x\n"),
            "p.csv, line 2: column `a:logit1`: expected a number, found `x`"
        );
    }

    #[test]
    fn the_labels_file_is_recognised_with_its_split_column() {
        let files = [
            file("preds.csv", "a,b\n1,2"),
            file("truth.csv", "y,split\n1,test"),
        ];
        match PoolFiles::detect(&files) {
            Ok(PoolFiles::CsvPair { labels, .. }) => assert_eq!(labels.name, "truth.csv"),
            other => panic!("{other:?}"),
        }
    }
}
