//! The checks that turn a [`PoolInput`](super::PoolInput)'s models into a pool's rows: names,
//! shapes, classes, probabilities (or logits through a softmax), each failure a [`PoolError`]
//! naming the model, sample and class.

use super::{ModelInput, PROBABILITY_SUM_TOLERANCE, PoolError, first_argmax};

/// A checked model: its name, predictions and flattened probabilities.
pub(super) type CheckedModel = (String, Vec<u32>, Option<Vec<f64>>);

/// One model's name, predictions and flattened probabilities (from its logits when it has no
/// probabilities), checked against the pool's samples and classes.
pub(super) fn checked_model(
    model: ModelInput,
    samples: usize,
    classes: usize,
    with_probabilities: bool,
) -> Result<CheckedModel, PoolError> {
    let flat = match (model.probabilities, model.logits) {
        (Some(rows), _) => Some(check_probabilities(&model.name, rows, samples, classes)?),
        (None, Some(rows)) => Some(softmax_rows(&model.name, rows, samples, classes)?),
        (None, None) if with_probabilities => {
            return Err(PoolError::MissingProbabilities { model: model.name });
        }
        (None, None) => None,
    };
    let preds = match (model.predictions, &flat) {
        (Some(p), _) => p,
        (None, Some(flat)) => flat
            .chunks(classes)
            .map(|row| first_argmax(row) as u32)
            .collect(),
        (None, None) => return Err(PoolError::MissingPredictions { model: model.name }),
    };
    if preds.len() != samples {
        return Err(PoolError::PredictionLength {
            model: model.name,
            expected: samples,
            found: preds.len(),
        });
    }
    if let Some((sample, &class)) = preds
        .iter()
        .enumerate()
        .find(|&(_, &p)| p as usize >= classes)
    {
        return Err(PoolError::PredictionOutOfRange {
            model: model.name,
            sample,
            class,
            classes,
        });
    }
    Ok((model.name, preds, flat))
}

/// Model names must be non-blank and unique.
pub(super) fn check_names(models: &[ModelInput]) -> Result<(), PoolError> {
    for (index, model) in models.iter().enumerate() {
        if model.name.trim().is_empty() {
            return Err(PoolError::EmptyName { index });
        }
        if models[..index].iter().any(|m| m.name == model.name) {
            return Err(PoolError::DuplicateName {
                name: model.name.clone(),
            });
        }
    }
    Ok(())
}

/// The probability row width when there are probabilities, else the largest class seen + 1.
pub(super) fn infer_classes(
    labels: &[u32],
    models: &[ModelInput],
    with_probabilities: bool,
) -> usize {
    if with_probabilities {
        models
            .iter()
            .find_map(|m| {
                m.probabilities
                    .as_ref()
                    .or(m.logits.as_ref())?
                    .first()
                    .map(Vec::len)
            })
            .unwrap_or(0)
    } else {
        labels
            .iter()
            .chain(models.iter().flat_map(|m| m.predictions.iter().flatten()))
            .max()
            // Saturating: a label of 2^32 - 1 on a 32-bit target (wasm) must not wrap to 0.
            .map_or(0, |&c| (c as usize).saturating_add(1))
    }
}

/// Checks that a model's `field` has one row of `classes` values per sample.
fn check_shape(
    model: &str,
    field: &'static str,
    rows: &[Vec<f64>],
    samples: usize,
    classes: usize,
) -> Result<(), PoolError> {
    if rows.len() != samples {
        return Err(PoolError::ProbabilityRows {
            model: model.to_owned(),
            field,
            expected: samples,
            found: rows.len(),
        });
    }
    match rows.iter().position(|row| row.len() != classes) {
        Some(sample) => Err(PoolError::ProbabilityWidth {
            model: model.to_owned(),
            field,
            sample,
            expected: classes,
            found: rows[sample].len(),
        }),
        None => Ok(()),
    }
}

/// The softmax of each row, in place (the maximum subtracted first, so large scores do not
/// overflow).
pub fn softmax_in_place(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for value in row.iter_mut() {
        *value = (*value - max).exp();
        sum += *value;
    }
    for value in row.iter_mut() {
        *value /= sum;
    }
}

/// Checks one model's logit rows and turns them into probabilities, flattened row-major.
fn softmax_rows(
    model: &str,
    rows: Vec<Vec<f64>>,
    samples: usize,
    classes: usize,
) -> Result<Vec<f64>, PoolError> {
    check_shape(model, "logits", &rows, samples, classes)?;
    let mut flat = Vec::with_capacity(samples * classes);
    for (sample, mut row) in rows.into_iter().enumerate() {
        if let Some((class, &value)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PoolError::BadLogit {
                model: model.to_owned(),
                sample,
                class,
                value,
            });
        }
        softmax_in_place(&mut row);
        flat.extend(row);
    }
    Ok(flat)
}

/// Checks one model's probability rows and flattens them row-major.
fn check_probabilities(
    model: &str,
    rows: Vec<Vec<f64>>,
    samples: usize,
    classes: usize,
) -> Result<Vec<f64>, PoolError> {
    check_shape(model, "probabilities", &rows, samples, classes)?;
    let mut flat = Vec::with_capacity(samples * classes);
    for (sample, row) in rows.into_iter().enumerate() {
        if let Some((class, &value)) = row
            .iter()
            .enumerate()
            .find(|&(_, &p)| !p.is_finite() || p < 0.0)
        {
            return Err(PoolError::BadProbability {
                model: model.to_owned(),
                sample,
                class,
                value,
            });
        }
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
            return Err(PoolError::ProbabilitySum {
                model: model.to_owned(),
                sample,
                sum,
            });
        }
        flat.extend(row);
    }
    Ok(flat)
}
