//! NumPy pools: an `.npz` archive with `labels` (N), `predictions` (M×N), `probabilities`
//! (M×N×C), `logits` (M×N×C) and `splits` (N: 0 train, 1 val, 2 test), or a folder of `.npy`
//! files: `labels.npy`, optional `splits.npy`, and per model `<model>.npy` (N class ids or N×C
//! probabilities) and/or `<model>.logits.npy` (N×C).

use super::{InputError, InputFile, limit_error, npy_error, stem};
use crate::ensemble::limits::Limits;
use crate::ensemble::pool::{ModelInput, PoolInput};
use crate::ensemble::split::Split;
use crate::npy::{NpyArray, NpyData, npz_shapes, parse_npy_with_limit, parse_npz_with_limit};

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

/// Splits from an integer array of codes.
fn splits(file: &str, name: &str, array: &NpyArray) -> Result<Vec<Split>, InputError> {
    if array.shape.len() != 1 {
        return Err(array_error(
            file,
            name,
            format!("expected 1-D (samples), found shape {:?}", array.shape),
        ));
    }
    ints(file, name, array)?
        .iter()
        .enumerate()
        .map(|(index, &code)| {
            Split::from_code(code).ok_or_else(|| {
                array_error(
                    file,
                    name,
                    format!("element {index} is {code}: expected 0 (train), 1 (val) or 2 (test)"),
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
                "expected integers, found a float array of shape {:?}",
                array.shape
            ),
        )),
    }
}

/// Rows of `width` scores from a float array.
fn score_rows(
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
            "expected float scores, found an integer array".into(),
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

/// The models and classes of an `.npz` table named `array`: `None` when absent.
fn table3(
    name: &str,
    array: &str,
    shape: Option<&[usize]>,
    samples: usize,
) -> Result<Option<(usize, usize)>, InputError> {
    match shape {
        None => Ok(None),
        Some(&[models, n, classes]) if n == samples => Ok(Some((models, classes))),
        Some(other) => Err(array_error(
            name,
            array,
            format!("expected shape [models, {samples}, classes], found {other:?}"),
        )),
    }
}

/// The samples, models and classes (0 without scores) of an `.npz` pool, from the shapes its
/// arrays declare, checked against each other and against `limits` before any array is
/// inflated in full.
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
    if let Some(splits) = shape("splits").filter(|s| *s != [samples]) {
        return Err(array_error(
            name,
            "splits",
            format!("expected shape [{samples}] (one split per label), found {splits:?}"),
        ));
    }
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
    let probabilities = table3(name, "probabilities", shape("probabilities"), samples)?;
    let logits = table3(name, "logits", shape("logits"), samples)?;
    let mut tables = [
        ("predictions", predictions.map(|m| (m, 0))),
        ("probabilities", probabilities),
        ("logits", logits),
    ]
    .into_iter()
    .filter_map(|(array, table)| Some((array, table?)));
    let Some((first, (models, mut classes))) = tables.next() else {
        return Err(array_error(
            name,
            "predictions",
            "missing: the archive needs `predictions` (M×N), `probabilities` or `logits` (M×N×C)"
                .into(),
        ));
    };
    for (array, (m, c)) in tables {
        if m != models {
            return Err(array_error(
                name,
                array,
                format!("has {m} models, `{first}` has {models}"),
            ));
        }
        if classes != 0 && c != classes {
            return Err(array_error(
                name,
                array,
                format!("has {c} classes, `probabilities` has {classes}"),
            ));
        }
        classes = c;
    }
    let scored = probabilities.is_some() || logits.is_some();
    limits
        .check_pool(models, samples, classes, scored)
        .map_err(limit_error(name))?;
    Ok((samples, models, classes))
}

/// One model's rows of a table of models, or nothing.
fn per_model<T: Clone>(
    table: Option<Vec<T>>,
    samples: usize,
) -> impl Iterator<Item = Option<Vec<T>>> {
    let models: Vec<Vec<T>> = table.map_or_else(Vec::new, |rows| {
        rows.chunks(samples.max(1)).map(<[T]>::to_vec).collect()
    });
    let present = !models.is_empty();
    let mut rows = models.into_iter();
    std::iter::from_fn(move || Some(if present { rows.next() } else { None }))
}

pub(super) fn npz(file: InputFile, limits: &Limits) -> Result<PoolInput, InputError> {
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
    let splits = find("splits")
        .map(|array| splits(name, "splits", array))
        .transpose()?;
    let predictions = find("predictions")
        .map(|array| classes(name, "predictions", ints(name, "predictions", array)?))
        .transpose()?;
    let probabilities = find("probabilities")
        .map(|array| score_rows(name, "probabilities", array, width.max(1)))
        .transpose()?;
    let logits = find("logits")
        .map(|array| score_rows(name, "logits", array, width.max(1)))
        .transpose()?;
    let mut predictions = per_model(predictions, samples);
    let mut probabilities = per_model(probabilities, samples);
    let mut logits = per_model(logits, samples);
    Ok(PoolInput {
        labels,
        splits,
        models: (0..models)
            .map(|m| ModelInput {
                name: format!("model{m}"),
                predictions: predictions.next().flatten(),
                probabilities: probabilities.next().flatten(),
                logits: logits.next().flatten(),
            })
            .collect(),
        classes: None,
    })
}

/// The model a `.npy` file belongs to, and whether it holds logits (`<model>.logits.npy`).
fn model_of(file: &InputFile) -> (String, bool) {
    let stem = stem(file.name);
    match stem.strip_suffix(".logits") {
        Some(model) if !model.is_empty() => (model.to_owned(), true),
        _ => (stem.to_owned(), false),
    }
}

/// Fills `model` from one of its `.npy` files: class ids, probabilities, or (`is_logits`) logits.
fn read_model_file(
    file: &InputFile,
    array: &NpyArray,
    is_logits: bool,
    model: &mut ModelInput,
    samples: usize,
) -> Result<(), InputError> {
    let name = &model.name;
    match (array.shape.as_slice(), &array.data, is_logits) {
        ([n], NpyData::Int(values), false) if *n == samples => {
            model.predictions = Some(classes(file.name, name, values)?);
        }
        ([n, c], NpyData::Float(_), false) if *n == samples => {
            model.probabilities = Some(score_rows(file.name, name, array, (*c).max(1))?);
        }
        ([n, c], NpyData::Float(_), true) if *n == samples => {
            model.logits = Some(score_rows(file.name, name, array, (*c).max(1))?);
        }
        (shape, data, _) => {
            let kind = if matches!(data, NpyData::Int(_)) {
                "an integer"
            } else {
                "a float"
            };
            let expected = if is_logits {
                format!("a {samples}×C float array of logits")
            } else {
                format!("{samples} integer class ids or a {samples}×C float array")
            };
            return Err(array_error(
                file.name,
                name,
                format!("expected {expected}, found {kind} array of shape {shape:?}"),
            ));
        }
    }
    Ok(())
}

/// `splits.npy`, checked to have one split per label.
fn splits_file(
    file: &InputFile,
    array: &NpyArray,
    samples: usize,
) -> Result<Vec<Split>, InputError> {
    let found = splits(file.name, "splits", array)?;
    if found.len() != samples {
        return Err(array_error(
            file.name,
            "splits",
            format!(
                "expected {samples} splits (one per label), found {}",
                found.len()
            ),
        ));
    }
    Ok(found)
}

pub(super) fn npy_files(files: &[InputFile], limits: &Limits) -> Result<PoolInput, InputError> {
    let parse = |file: &InputFile| {
        parse_npy_with_limit(file.bytes, limits.max_decompressed_bytes)
            .map_err(npy_error(file.name))
    };
    let is_named = |file: &InputFile, name: &str| stem(file.name) == name;
    let labels_file = files
        .iter()
        .find(|f| is_named(f, "labels"))
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
    let splits = match files.iter().find(|f| is_named(f, "splits")) {
        None => None,
        Some(file) => Some(splits_file(file, &parse(file)?, labels.len())?),
    };
    // Model order is file-name order, so the same folder always gives the same pool.
    let mut model_files: Vec<&InputFile> = files
        .iter()
        .filter(|f| !is_named(f, "labels") && !is_named(f, "splits"))
        .collect();
    model_files.sort_by(|a, b| a.name.cmp(b.name));
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = model_files
        .iter()
        .map(|f| model_of(f).0)
        .filter(|name| seen.insert(name.clone()))
        .collect();
    limits
        .check_models(names.len())
        .map_err(limit_error(labels_file.name))?;
    let mut models: Vec<ModelInput> = names.into_iter().map(ModelInput::named).collect();
    let samples = labels.len();
    for file in model_files {
        let (name, is_logits) = model_of(file);
        let Some(model) = models.iter_mut().find(|m| m.name == name) else {
            continue;
        };
        read_model_file(file, &parse(file)?, is_logits, model, samples)?;
    }
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
    use crate::npy::fixtures::{npy, npz};

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn an_archive_with_splits_and_logits() {
        let archive = npz(&[
            ("labels.npy", npy("|u1", false, "(2,)", &[0, 1])),
            ("splits.npy", npy("|u1", false, "(2,)", &[0, 2])),
            (
                "logits.npy",
                npy(
                    "<f8",
                    false,
                    "(2, 2, 2)",
                    &f64s(&[3., 0., 0., 3., 1., 2., 2., 1.]),
                ),
            ),
        ]);
        let pool = PoolFiles::Npz(InputFile {
            name: "p.npz",
            bytes: &archive,
        })
        .parse()
        .unwrap();
        assert_eq!(
            pool.splits.as_deref(),
            Some(&[Split::Train, Split::Test][..])
        );
        assert_eq!(pool.models.len(), 2);
        assert_eq!(pool.models[1].logits.as_ref().unwrap()[1], [2.0, 1.0]);
        assert!(pool.models[0].probabilities.is_none());
        let bad = npz(&[
            ("labels.npy", npy("|u1", false, "(2,)", &[0, 1])),
            ("splits.npy", npy("|u1", false, "(2,)", &[0, 7])),
            (
                "predictions.npy",
                npy("|u1", false, "(2, 2)", &[0, 1, 1, 1]),
            ),
        ]);
        let error = PoolFiles::Npz(InputFile {
            name: "p.npz",
            bytes: &bad,
        })
        .parse()
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "p.npz, array `splits`: element 1 is 7: expected 0 (train), 1 (val) or 2 (test)"
        );
    }

    #[test]
    fn a_folder_with_splits_and_logit_files() {
        let labels = npy("|u1", false, "(2,)", &[0, 1]);
        let splits = npy("|u1", false, "(2,)", &[1, 2]);
        let a = npy("|u1", false, "(2,)", &[0, 0]);
        let a_logits = npy("<f8", false, "(2, 2)", &f64s(&[1., 0., 0., 1.]));
        let b_logits = npy("<f8", false, "(2, 2)", &f64s(&[0., 1., 1., 0.]));
        let files = [
            InputFile {
                name: "d/labels.npy",
                bytes: &labels,
            },
            InputFile {
                name: "d/splits.npy",
                bytes: &splits,
            },
            InputFile {
                name: "d/b.logits.npy",
                bytes: &b_logits,
            },
            InputFile {
                name: "d/a.npy",
                bytes: &a,
            },
            InputFile {
                name: "d/a.logits.npy",
                bytes: &a_logits,
            },
        ];
        let pool = PoolFiles::Npy(files.to_vec()).parse().unwrap();
        assert_eq!(pool.splits.as_deref(), Some(&[Split::Val, Split::Test][..]));
        let names: Vec<&str> = pool.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(pool.models[0].predictions.as_deref(), Some(&[0, 0][..]));
        assert_eq!(pool.models[0].logits.as_ref().unwrap()[1], [0.0, 1.0]);
        assert!(pool.models[1].predictions.is_none());
        let wrong = npy("|u1", false, "(2,)", &[0, 0]);
        let files = [
            InputFile {
                name: "labels.npy",
                bytes: &labels,
            },
            InputFile {
                name: "a.npy",
                bytes: &a,
            },
            InputFile {
                name: "b.logits.npy",
                bytes: &wrong,
            },
        ];
        assert_eq!(
            PoolFiles::Npy(files.to_vec())
                .parse()
                .unwrap_err()
                .to_string(),
            "b.logits.npy, array `b`: expected a 2×C float array of logits, found an integer array of shape [2]"
        );
    }
}
