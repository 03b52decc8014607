//! The demo pool: eight genuinely different classifiers trained on the UCI hand-written digits
//! (the copy that ships inside scikit-learn's wheel, `sklearn/datasets/data/digits.csv.gz`;
//! 1,797 images of 8×8 pixels with values 0..16). Four are neural networks trained here with
//! burn (softmax regression, two MLPs, a small CNN), four are classical (1-NN, distance-weighted
//! 9-NN, Gaussian naive Bayes, nearest centroid). Everything is seeded: the same data gives
//! the same pool.

use burn::tensor::{
    Device, Tensor, TensorData,
    activation::{log_softmax, relu, softmax},
};
use thiserror::Error;

use crate::{MlError, read};

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Digit classes.
pub const CLASSES: usize = 10;

/// Why the digits file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigitsError {
    /// A line is not 64 pixel values in 0..=16 and a label in 0..=9.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// Too few images to split.
    #[error("{found} images: expected the 1,797 of the digits dataset")]
    TooFew {
        /// Images read.
        found: usize,
    },
}

/// Images (pixels scaled to 0..1) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Digits {
    /// One row of [`PIXELS`] values per image.
    pub images: Vec<[f32; PIXELS]>,
    /// The digit of each image.
    pub labels: Vec<usize>,
}

impl Digits {
    /// Parses scikit-learn's `digits.csv` (no header; 64 pixels then the label per line).
    ///
    /// # Errors
    /// [`DigitsError`] naming the line.
    pub fn parse(text: &str) -> Result<Self, DigitsError> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for fuselab_shared::table::Row { line, cells } in fuselab_shared::table::rows(text) {
            let bad = |message: String| DigitsError::Line { line, message };
            let cells: Vec<f32> = cells
                .iter()
                .map(|c| c.parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("expected numbers separated by commas".into()))?;
            if cells.len() != PIXELS + 1 {
                return Err(bad(format!(
                    "expected {} values, found {}",
                    PIXELS + 1,
                    cells.len()
                )));
            }
            let mut image = [0.0; PIXELS];
            for (pixel, &value) in image.iter_mut().zip(&cells) {
                if !(0.0..=16.0).contains(&value) {
                    return Err(bad(format!("pixel value {value} outside 0..=16")));
                }
                *pixel = value / 16.0;
            }
            let label = cells[PIXELS];
            if label.fract() != 0.0 || !(0.0..=9.0).contains(&label) {
                return Err(bad(format!("label {label}: expected a digit 0..=9")));
            }
            images.push(image);
            // A whole number in 0..=9, checked above.
            #[allow(clippy::cast_sign_loss)]
            labels.push(label as usize);
        }
        if images.len() < 100 {
            return Err(DigitsError::TooFew {
                found: images.len(),
            });
        }
        Ok(Self { images, labels })
    }

    /// A seeded shuffle split: `test` images held out, the rest for training.
    pub fn split(&self, test: usize, seed: u64) -> (Self, Self) {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        let mut rng = Rng(seed);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let pick = |indices: &[usize]| Self {
            images: indices.iter().map(|&i| self.images[i]).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        };
        let test = test.min(order.len());
        (pick(&order[test..]), pick(&order[..test]))
    }
}

/// xorshift64*: small, seeded, reproducible everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One classifier's class probabilities on the test images.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// The classifier's name.
    pub name: String,
    /// One row of [`CLASSES`] probabilities per test image, summing to 1.
    pub probabilities: Vec<Vec<f64>>,
}

fn normalised(row: &[f64]) -> Vec<f64> {
    let total: f64 = row.iter().sum();
    row.iter().map(|p| p / total).collect()
}

fn squared_distance(a: &[f32; PIXELS], b: &[f32; PIXELS]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Votes of the `k` nearest training images, weighted by `weight(distance²)`.
fn nearest_neighbours(
    train: &Digits,
    test: &Digits,
    k: usize,
    weight: fn(f32) -> f64,
) -> Vec<Vec<f64>> {
    test.images
        .iter()
        .map(|image| {
            let mut distances: Vec<(f32, usize)> = train
                .images
                .iter()
                .zip(&train.labels)
                .map(|(other, &label)| (squared_distance(image, other), label))
                .collect();
            distances.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut votes = vec![0.0; CLASSES];
            for &(distance, label) in distances.iter().take(k) {
                votes[label] += weight(distance);
            }
            normalised(&votes)
        })
        .collect()
}

/// Gaussian naive Bayes with variance smoothing (scikit-learn's default 1e-9 of the largest
/// variance is too small for pixels that are always 0; 1e-2 keeps them informative).
fn gaussian_naive_bayes(train: &Digits, test: &Digits) -> Vec<Vec<f64>> {
    let mut mean = vec![[0.0_f64; PIXELS]; CLASSES];
    let mut var = vec![[0.0_f64; PIXELS]; CLASSES];
    let mut count = [0.0_f64; CLASSES];
    for (image, &label) in train.images.iter().zip(&train.labels) {
        count[label] += 1.0;
        for (m, &p) in mean[label].iter_mut().zip(image) {
            *m += f64::from(p);
        }
    }
    for c in 0..CLASSES {
        mean[c].iter_mut().for_each(|m| *m /= count[c].max(1.0));
    }
    for (image, &label) in train.images.iter().zip(&train.labels) {
        for ((v, &m), &p) in var[label].iter_mut().zip(&mean[label]).zip(image) {
            *v += (f64::from(p) - m).powi(2);
        }
    }
    let largest = var
        .iter()
        .zip(&count)
        .flat_map(|(v, &n)| v.iter().map(move |x| x / n.max(1.0)))
        .fold(0.0_f64, f64::max);
    for c in 0..CLASSES {
        var[c]
            .iter_mut()
            .for_each(|v| *v = *v / count[c].max(1.0) + 1e-2 * largest);
    }
    let total: f64 = count.iter().sum();
    test.images
        .iter()
        .map(|image| {
            let log_posterior: Vec<f64> = (0..CLASSES)
                .map(|c| {
                    (count[c] / total).ln()
                        + image
                            .iter()
                            .zip(&mean[c])
                            .zip(&var[c])
                            .map(|((&p, &m), &v)| {
                                -0.5 * ((2.0 * std::f64::consts::PI * v).ln()
                                    + (f64::from(p) - m).powi(2) / v)
                            })
                            .sum::<f64>()
                })
                .collect();
            let top = log_posterior
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            normalised(
                &log_posterior
                    .iter()
                    .map(|l| (l - top).exp())
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// Nearest class centroid, probabilities `softmax(−distance²)`.
fn nearest_centroid(train: &Digits, test: &Digits) -> Vec<Vec<f64>> {
    let mut centroid = vec![[0.0_f32; PIXELS]; CLASSES];
    let mut count = [0.0_f32; CLASSES];
    for (image, &label) in train.images.iter().zip(&train.labels) {
        count[label] += 1.0;
        for (c, &p) in centroid[label].iter_mut().zip(image) {
            *c += p;
        }
    }
    for (c, &n) in centroid.iter_mut().zip(&count) {
        for v in c.iter_mut() {
            *v /= n.max(1.0);
        }
    }
    test.images
        .iter()
        .map(|image| {
            let distance: Vec<f64> = centroid
                .iter()
                .map(|c| f64::from(squared_distance(image, c)))
                .collect();
            let nearest = distance.iter().copied().fold(f64::INFINITY, f64::min);
            normalised(
                &distance
                    .iter()
                    .map(|d| (nearest - d).exp())
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// A network: its parameters (2-D) and how they turn a batch of inputs into logits.
struct Network {
    name: &'static str,
    params: Vec<Tensor<2>>,
    forward: fn(&[Tensor<2>], Tensor<2>) -> Tensor<2>,
    /// How the raw pixels become the network's input rows.
    input: fn(&Digits) -> (Vec<f32>, usize),
    epochs: usize,
    learning_rate: f64,
}

/// Glorot-uniform weights `[rows, cols]`.
fn weights(rng: &mut Rng, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let bound = (6.0 / (rows + cols) as f32).sqrt();
    let values: Vec<f32> = (0..rows * cols).map(|_| rng.symmetric() * bound).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

fn zeros(cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(vec![0.0_f32; cols], [1, cols]), device)
}

/// Pixels as rows of 64.
fn flat(digits: &Digits) -> (Vec<f32>, usize) {
    (digits.images.iter().flatten().copied().collect(), PIXELS)
}

/// Every 3×3 neighbourhood (zero-padded) of every pixel: rows of 9, 64 rows per image, so a
/// convolution is one matrix product.
#[allow(clippy::cast_sign_loss)] // the index is inside the image, checked just before
fn patches(digits: &Digits) -> (Vec<f32>, usize) {
    let mut rows = Vec::with_capacity(digits.images.len() * PIXELS * 9);
    for image in &digits.images {
        for y in 0..8_i32 {
            for x in 0..8_i32 {
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = (y + dy, x + dx);
                        rows.push(if (0..8).contains(&yy) && (0..8).contains(&xx) {
                            image[(yy * 8 + xx) as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
    (rows, 9)
}

fn networks(device: &Device) -> Vec<Network> {
    let mut rng = Rng(2024);
    vec![
        Network {
            name: "softmax-regression",
            params: vec![
                weights(&mut rng, PIXELS, CLASSES, device),
                zeros(CLASSES, device),
            ],
            forward: |p, x| x.matmul(p[0].clone()) + p[1].clone(),
            input: flat,
            epochs: 300,
            learning_rate: 0.05,
        },
        Network {
            name: "mlp-tanh-32",
            params: vec![
                weights(&mut rng, PIXELS, 32, device),
                zeros(32, device),
                weights(&mut rng, 32, CLASSES, device),
                zeros(CLASSES, device),
            ],
            forward: |p, x| {
                (x.matmul(p[0].clone()) + p[1].clone())
                    .tanh()
                    .matmul(p[2].clone())
                    + p[3].clone()
            },
            input: flat,
            epochs: 300,
            learning_rate: 0.01,
        },
        Network {
            name: "mlp-relu-128-64",
            params: vec![
                weights(&mut rng, PIXELS, 128, device),
                zeros(128, device),
                weights(&mut rng, 128, 64, device),
                zeros(64, device),
                weights(&mut rng, 64, CLASSES, device),
                zeros(CLASSES, device),
            ],
            forward: |p, x| {
                let h = relu(x.matmul(p[0].clone()) + p[1].clone());
                let h = relu(h.matmul(p[2].clone()) + p[3].clone());
                h.matmul(p[4].clone()) + p[5].clone()
            },
            input: flat,
            epochs: 200,
            learning_rate: 0.005,
        },
        Network {
            name: "cnn-3x3x8",
            params: vec![
                weights(&mut rng, 9, 8, device),
                zeros(8, device),
                weights(&mut rng, PIXELS * 8, CLASSES, device),
                zeros(CLASSES, device),
            ],
            forward: |p, x| {
                let images = x.dims()[0] / PIXELS;
                let maps = relu(x.matmul(p[0].clone()) + p[1].clone());
                maps.reshape([images, PIXELS * 8]).matmul(p[2].clone()) + p[3].clone()
            },
            input: patches,
            epochs: 200,
            learning_rate: 0.01,
        },
    ]
}

fn tensor(rows: (Vec<f32>, usize), device: &Device) -> Tensor<2> {
    let (values, width) = rows;
    let height = values.len() / width;
    Tensor::from_data(TensorData::new(values, [height, width]), device)
}

/// Full-batch Adam on the cross-entropy; returns the test probabilities.
fn train(
    network: Network,
    train: &Digits,
    test: &Digits,
    device: &Device,
) -> Result<Predictions, MlError> {
    let x = tensor((network.input)(train), device);
    let onehot: Vec<f32> = train
        .labels
        .iter()
        .flat_map(|&l| (0..CLASSES).map(move |c| f32::from(u8::from(c == l))))
        .collect();
    let targets = Tensor::from_data(
        TensorData::new(onehot, [train.labels.len(), CLASSES]),
        device,
    );
    let n = train.labels.len() as f64;
    let (beta1, beta2, eps) = (0.9_f64, 0.999_f64, 1e-8_f64);
    let mut params = network.params;
    let mut first: Vec<Tensor<2>> = params.iter().map(Tensor::zeros_like).collect();
    let mut second: Vec<Tensor<2>> = params.iter().map(Tensor::zeros_like).collect();
    for step in 1..=network.epochs {
        let leaves: Vec<Tensor<2>> = params
            .iter()
            .map(|p| p.clone().autodiff().require_grad())
            .collect();
        let logits = (network.forward)(&leaves, x.clone());
        let loss = (log_softmax(logits, 1) * targets.clone())
            .sum()
            .mul_scalar(-1.0 / n);
        let gradients = loss.backward();
        let correction1 = 1.0 - beta1.powf(step as f64);
        let correction2 = 1.0 - beta2.powf(step as f64);
        for (k, leaf) in leaves.iter().enumerate() {
            let gradient = leaf.grad(&gradients).ok_or(MlError::Readback {
                what: "a gradient",
                reason: "a parameter got no gradient".to_owned(),
            })?;
            first[k] =
                first[k].clone().mul_scalar(beta1) + gradient.clone().mul_scalar(1.0 - beta1);
            second[k] =
                second[k].clone().mul_scalar(beta2) + gradient.square().mul_scalar(1.0 - beta2);
            let update = first[k]
                .clone()
                .div_scalar(correction1)
                .div(
                    second[k]
                        .clone()
                        .div_scalar(correction2)
                        .sqrt()
                        .add_scalar(eps),
                )
                .mul_scalar(network.learning_rate);
            params[k] = params[k].clone() - update;
        }
    }
    let probabilities = read(
        softmax(
            (network.forward)(&params, tensor((network.input)(test), device)),
            1,
        ),
        "test probabilities",
    )?;
    Ok(Predictions {
        name: network.name.to_owned(),
        probabilities: probabilities
            .chunks(CLASSES)
            .map(|row| normalised(&row.iter().map(|&p| f64::from(p)).collect::<Vec<_>>()))
            .collect(),
    })
}

/// Trains the eight classifiers on `train` and returns their probabilities on `test`.
///
/// # Errors
/// [`MlError`] when burn cannot read a result back.
pub fn classifiers(
    train_set: &Digits,
    test: &Digits,
    device: &Device,
) -> Result<Vec<Predictions>, MlError> {
    let mut pool = Vec::new();
    for network in networks(device) {
        pool.push(train(network, train_set, test, device)?);
    }
    let classical: [(&str, Vec<Vec<f64>>); 4] = [
        (
            "1-nearest-neighbour",
            nearest_neighbours(train_set, test, 1, |_| 1.0),
        ),
        (
            "9-nearest-neighbours-weighted",
            nearest_neighbours(train_set, test, 9, |d| 1.0 / (f64::from(d).sqrt() + 1e-3)),
        ),
        (
            "gaussian-naive-bayes",
            gaussian_naive_bayes(train_set, test),
        ),
        ("nearest-centroid", nearest_centroid(train_set, test)),
    ];
    pool.extend(
        classical
            .into_iter()
            .map(|(name, probabilities)| Predictions {
                name: name.to_owned(),
                probabilities,
            }),
    );
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny synthetic "digits" set: each class lights its own pixels, with noise.
    fn toy(images: usize, seed: u64) -> Digits {
        let mut rng = Rng(seed);
        let mut data = Digits {
            images: Vec::new(),
            labels: Vec::new(),
        };
        for i in 0..images {
            let label = i % CLASSES;
            let mut image = [0.0_f32; PIXELS];
            for (p, value) in image.iter_mut().enumerate() {
                let on = p % CLASSES == label;
                *value = (if on { 0.8 } else { 0.1 } + rng.symmetric() * 0.1).clamp(0.0, 1.0);
            }
            data.images.push(image);
            data.labels.push(label);
        }
        data
    }

    #[test]
    fn parse_names_the_bad_line() {
        let good = format!("{},3\n", vec!["0"; PIXELS].join(","));
        let bad = format!("{},11\n", vec!["0"; PIXELS].join(","));
        let error = Digits::parse(&format!("{good}{bad}")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: label 11: expected a digit 0..=9"
        );
        assert!(matches!(
            Digits::parse(&good),
            Err(DigitsError::TooFew { found: 1 })
        ));
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let data = toy(200, 1);
        let (a, b) = data.split(50, 7);
        let (c, d) = data.split(50, 7);
        assert_eq!((a.labels.len(), b.labels.len()), (150, 50));
        assert_eq!(a, c);
        assert_eq!(b, d);
    }

    #[test]
    fn every_classifier_learns_an_easy_problem() {
        let (train_set, test) = toy(300, 3).split(100, 5);
        let device = crate::open(crate::Compute::Cpu).unwrap();
        let pool = classifiers(&train_set, &test, &device).unwrap();
        assert_eq!(pool.len(), 8);
        for model in &pool {
            let correct = model
                .probabilities
                .iter()
                .zip(&test.labels)
                .filter(|(row, label)| {
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |b, (c, &p)| if p > row[b] { c } else { b });
                    best == **label
                })
                .count();
            assert!(correct >= 90, "{}: {correct} of 100", model.name);
            for row in &model.probabilities {
                assert!(
                    (row.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                    "{}",
                    model.name
                );
            }
        }
    }
}
