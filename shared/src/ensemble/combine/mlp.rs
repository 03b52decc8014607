//! FusionShot's combiner network (spec `focal.md` §6.1), in plain `f32` Rust so the browser's
//! worker and the CLI train the same network to the same bits: Linear(D→100) → sigmoid →
//! Linear(100→100) → sigmoid → Linear(100→C), Xavier-uniform weights, biases 0.01, Adam, and
//! the checkpoint with the best val accuracy kept.
//!
//! # Shapes
//! - input rows: `samples × D` (`D` = members × classes), row-major;
//! - layer weights are stored transposed, `inputs × outputs`, so the forward pass is a run of
//!   contiguous `axpy`s; [`Mlp::from_torch`] takes PyTorch's `outputs × inputs`.
//!
//! `exp` and `ln` come from `libm`, the same code natively and in wasm: the platform's own
//! maths library could round differently and the browser's result would drift from the CLI's.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Hidden units of both hidden layers (FusionShot's 100–100).
pub const HIDDEN: usize = 100;
/// Every bias starts here (FusionShot's `bias.data.fill_(0.01)`).
const BIAS_INIT: f32 = 0.01;
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f32 = 1e-8;

/// What the network's last layer feeds the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// Cross-entropy on the last layer's outputs as logits (fuselab's default).
    Logits,
    /// FusionShot's code: sigmoid, then softmax, and cross-entropy on that softmax (a double
    /// softmax, with squashed gradients).
    FusionShot,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `Σ a·b` with eight running sums, so the loop vectorises (the order is fixed, hence the
/// same on every platform).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0_f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `y += a·x`.
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The softmax of `row` in place, by its maximum first.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// `log Σ exp(row)`.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + libm::logf(row.iter().map(|&v| libm::expf(v - max)).sum::<f32>())
}

/// One fully connected layer, weights stored `inputs × outputs`.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    /// PyTorch's `xavier_uniform_`: U(−a, a) with a = √(6 / (inputs + outputs)).
    fn xavier(inputs: usize, outputs: usize, rng: &mut SplitMix64) -> Self {
        let bound = (6.0 / (inputs + outputs) as f64).sqrt() as f32;
        let weights = (0..inputs * outputs)
            .map(|_| (2.0 * rng.unit_f32() - 1.0) * bound)
            .collect();
        Self {
            inputs,
            outputs,
            weights,
            bias: vec![BIAS_INIT; outputs],
        }
    }

    fn forward(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        for (i, &xi) in x.iter().enumerate() {
            axpy(
                xi,
                &self.weights[i * self.outputs..(i + 1) * self.outputs],
                out,
            );
        }
    }

    fn zeros(&self) -> Self {
        Self {
            inputs: self.inputs,
            outputs: self.outputs,
            weights: vec![0.0; self.weights.len()],
            bias: vec![0.0; self.bias.len()],
        }
    }
}

/// Adam's moments and step count for every parameter.
#[derive(Debug, Clone)]
struct Adam {
    lr: f64,
    step: i32,
    first: [Layer; 3],
    second: [Layer; 3],
}

/// The combiner network.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: [Layer; 3],
    head: Head,
}

/// Scratch buffers of one sample's forward and backward pass.
struct Scratch {
    h1: Vec<f32>,
    h2: Vec<f32>,
    out: Vec<f32>,
    d_out: Vec<f32>,
    d2: Vec<f32>,
    d1: Vec<f32>,
    /// [`Head::FusionShot`]'s softmax and its gradient.
    q: Vec<f32>,
    dq: Vec<f32>,
}

impl Mlp {
    /// A new network for `inputs` features and `classes` outputs, Xavier-initialised from
    /// `seed`.
    pub fn new(inputs: usize, classes: usize, head: Head, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        Self {
            layers: [
                Layer::xavier(inputs, HIDDEN, &mut rng),
                Layer::xavier(HIDDEN, HIDDEN, &mut rng),
                Layer::xavier(HIDDEN, classes, &mut rng),
            ],
            head,
        }
    }

    /// A network from PyTorch's three `(weight, bias)` pairs, each weight `outputs × inputs`
    /// row-major. `None` when the shapes do not chain.
    pub fn from_torch(layers: [(&[f32], &[f32]); 3], inputs: usize, head: Head) -> Option<Self> {
        let mut fan_in = inputs;
        let mut built = Vec::with_capacity(3);
        for (weight, bias) in layers {
            let outputs = bias.len();
            if outputs == 0 || weight.len() != outputs * fan_in {
                return None;
            }
            let mut weights = vec![0.0; weight.len()];
            for o in 0..outputs {
                for i in 0..fan_in {
                    weights[i * outputs + o] = weight[o * fan_in + i];
                }
            }
            built.push(Layer {
                inputs: fan_in,
                outputs,
                weights,
                bias: bias.to_vec(),
            });
            fan_in = outputs;
        }
        let layers: [Layer; 3] = built.try_into().ok()?;
        Some(Self { layers, head })
    }

    /// Features per sample.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// Classes out.
    pub fn classes(&self) -> usize {
        self.layers[2].outputs
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            h1: vec![0.0; HIDDEN],
            h2: vec![0.0; HIDDEN],
            out: vec![0.0; self.classes()],
            d_out: vec![0.0; self.classes()],
            d2: vec![0.0; HIDDEN],
            d1: vec![0.0; HIDDEN],
            q: vec![0.0; self.classes()],
            dq: vec![0.0; self.classes()],
        }
    }

    /// The forward pass; leaves the hidden activations in `s.h1`, `s.h2` and the last layer's
    /// output in `s.out` (with [`Head::FusionShot`], after its sigmoid).
    fn forward(&self, x: &[f32], s: &mut Scratch) {
        self.layers[0].forward(x, &mut s.h1);
        s.h1.iter_mut().for_each(|v| *v = sigmoid(*v));
        self.layers[1].forward(&s.h1, &mut s.h2);
        s.h2.iter_mut().for_each(|v| *v = sigmoid(*v));
        self.layers[2].forward(&s.h2, &mut s.out);
        if self.head == Head::FusionShot {
            s.out.iter_mut().for_each(|v| *v = sigmoid(*v));
        }
    }

    /// The class probabilities of one sample, into `probabilities`.
    fn predict_into(&self, x: &[f32], s: &mut Scratch, probabilities: &mut [f32]) {
        self.forward(x, s);
        probabilities.copy_from_slice(&s.out);
        softmax(probabilities);
    }

    /// Class probabilities of every row of `features` (`rows × inputs`), row-major.
    pub fn probabilities(&self, features: &[f32]) -> Vec<f64> {
        let classes = self.classes();
        let mut s = self.scratch();
        let mut row = vec![0.0; classes];
        let mut out = Vec::with_capacity(features.len() / self.inputs().max(1) * classes);
        for x in features.chunks_exact(self.inputs()) {
            self.predict_into(x, &mut s, &mut row);
            out.extend(row.iter().map(|&p| f64::from(p)));
        }
        out
    }

    /// One sample's loss; its gradient with respect to the last layer's pre-activation,
    /// scaled by `scale`, into `s.d_out`.
    fn loss_and_gradient(&self, label: usize, scale: f32, s: &mut Scratch) -> f32 {
        match self.head {
            Head::Logits => {
                let loss = log_sum_exp(&s.out) - s.out[label];
                s.d_out.copy_from_slice(&s.out);
                softmax(&mut s.d_out);
                s.d_out[label] -= 1.0;
                s.d_out.iter_mut().for_each(|g| *g *= scale);
                loss
            }
            Head::FusionShot => {
                // out = σ(z); q = softmax(out); loss = CE(q as logits) = lse(q) − q[y].
                let Scratch {
                    out, d_out, q, dq, ..
                } = s;
                q.copy_from_slice(out);
                softmax(q);
                let loss = log_sum_exp(q) - q[label];
                dq.copy_from_slice(q);
                softmax(dq);
                dq[label] -= 1.0;
                let inner = dot(dq, q);
                for (c, g) in d_out.iter_mut().enumerate() {
                    let d_sigmoid = out[c] * (1.0 - out[c]);
                    *g = q[c] * (dq[c] - inner) * d_sigmoid * scale;
                }
                loss
            }
        }
    }

    /// Adds one sample's gradient to `grads` after [`Mlp::loss_and_gradient`].
    fn backward(&self, x: &[f32], s: &mut Scratch, grads: &mut [Layer; 3]) {
        let [_, l2, l3] = &self.layers;
        let [g1, g2, g3] = grads;
        let classes = self.classes();
        for (i, &h) in s.h2.iter().enumerate() {
            axpy(h, &s.d_out, &mut g3.weights[i * classes..(i + 1) * classes]);
            let back = dot(&l3.weights[i * classes..(i + 1) * classes], &s.d_out);
            s.d2[i] = back * h * (1.0 - h);
        }
        axpy(1.0, &s.d_out, &mut g3.bias);
        for (i, &h) in s.h1.iter().enumerate() {
            axpy(h, &s.d2, &mut g2.weights[i * HIDDEN..(i + 1) * HIDDEN]);
            let back = dot(&l2.weights[i * HIDDEN..(i + 1) * HIDDEN], &s.d2);
            s.d1[i] = back * h * (1.0 - h);
        }
        axpy(1.0, &s.d2, &mut g2.bias);
        for (i, &xi) in x.iter().enumerate() {
            axpy(xi, &s.d1, &mut g1.weights[i * HIDDEN..(i + 1) * HIDDEN]);
        }
        axpy(1.0, &s.d1, &mut g1.bias);
    }

    /// One epoch over `order` (indices into the rows of `features`/`labels`) in batches of
    /// `batch`; one Adam step per batch. Returns the mean of the batches' mean losses.
    pub fn train_epoch(
        &mut self,
        optimizer: &mut Optimizer,
        features: &[f32],
        labels: &[u32],
        order: &[usize],
        batch: usize,
    ) -> f64 {
        let inputs = self.inputs();
        let mut s = self.scratch();
        let mut grads = self.layers.clone().map(|l| l.zeros());
        let mut total = 0.0_f64;
        let mut batches = 0_usize;
        for chunk in order.chunks(batch.max(1)) {
            for g in &mut grads {
                g.weights.fill(0.0);
                g.bias.fill(0.0);
            }
            #[allow(clippy::cast_precision_loss)]
            let scale = 1.0 / chunk.len() as f32;
            let mut loss = 0.0_f32;
            for &n in chunk {
                let x = &features[n * inputs..(n + 1) * inputs];
                self.forward(x, &mut s);
                loss += self.loss_and_gradient(labels[n] as usize, scale, &mut s);
                self.backward(x, &mut s, &mut grads);
            }
            optimizer.0.step(&mut self.layers, &grads);
            total += f64::from(loss * scale);
            batches += 1;
        }
        total / batches.max(1) as f64
    }

    /// Mean loss over all rows (no training).
    pub fn loss(&self, features: &[f32], labels: &[u32]) -> f64 {
        let inputs = self.inputs();
        let mut s = self.scratch();
        let total: f64 = labels
            .iter()
            .enumerate()
            .map(|(n, &y)| {
                self.forward(&features[n * inputs..(n + 1) * inputs], &mut s);
                f64::from(self.loss_and_gradient(y as usize, 0.0, &mut s))
            })
            .sum();
        total / labels.len().max(1) as f64
    }
}

/// Adam (PyTorch's update: bias corrections in `f64`, moments in `f32`).
#[derive(Debug, Clone)]
pub struct Optimizer(Adam);

impl Optimizer {
    /// Adam with learning rate `lr` for `mlp`'s parameters.
    pub fn adam(mlp: &Mlp, lr: f64) -> Self {
        Self(Adam {
            lr,
            step: 0,
            first: mlp.layers.clone().map(|l| l.zeros()),
            second: mlp.layers.clone().map(|l| l.zeros()),
        })
    }
}

impl Adam {
    fn step(&mut self, layers: &mut [Layer; 3], grads: &[Layer; 3]) {
        self.step += 1;
        let correction1 = 1.0 - BETA1.powi(self.step);
        let correction2 = 1.0 - BETA2.powi(self.step);
        let (step_size, root2) = ((self.lr / correction1) as f32, correction2.sqrt() as f32);
        let (b1, b2) = (BETA1 as f32, BETA2 as f32);
        for (((layer, grad), m), v) in layers
            .iter_mut()
            .zip(grads)
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            for (params, grads, m, v) in [
                (
                    &mut layer.weights,
                    &grad.weights,
                    &mut m.weights,
                    &mut v.weights,
                ),
                (&mut layer.bias, &grad.bias, &mut m.bias, &mut v.bias),
            ] {
                for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= step_size * *m / (v.sqrt() / root2 + EPSILON);
                }
            }
        }
    }
}

/// A seeded shuffle of `0..n` (Fisher–Yates).
pub fn shuffled(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // biases are set to exactly 0.01
mod tests {
    use super::*;

    /// Central differences of the mean loss against the analytic gradient, for both heads.
    #[test]
    fn gradients_match_finite_differences() {
        for head in [Head::Logits, Head::FusionShot] {
            let mut mlp = Mlp::new(6, 3, head, 7);
            // Larger last-layer weights, so FusionShot's squashed gradient is measurable.
            mlp.layers[2].weights.iter_mut().for_each(|w| *w *= 4.0);
            let features: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let labels = [0, 2, 1, 2];
            let mut grads = mlp.layers.clone().map(|l| l.zeros());
            let mut s = mlp.scratch();
            for n in 0..4 {
                let x = &features[n * 6..(n + 1) * 6];
                mlp.forward(x, &mut s);
                mlp.loss_and_gradient(labels[n] as usize, 0.25, &mut s);
                mlp.backward(x, &mut s, &mut grads);
            }
            for (layer, index) in [(0, 5), (1, 123), (2, 17), (2, 250)] {
                let h = 1e-2_f32;
                let mut plus = mlp.clone();
                plus.layers[layer].weights[index] += h;
                let mut minus = mlp.clone();
                minus.layers[layer].weights[index] -= h;
                let numeric = (plus.loss(&features, &labels) - minus.loss(&features, &labels))
                    / (2.0 * f64::from(h));
                let analytic = f64::from(grads[layer].weights[index]);
                assert!(
                    (numeric - analytic).abs() < 2e-3 * analytic.abs().max(1e-2),
                    "{head:?} layer {layer} weight {index}: numeric {numeric} analytic {analytic}"
                );
            }
            let numeric_bias = {
                let h = 1e-2_f32;
                let mut plus = mlp.clone();
                plus.layers[2].bias[1] += h;
                let mut minus = mlp.clone();
                minus.layers[2].bias[1] -= h;
                (plus.loss(&features, &labels) - minus.loss(&features, &labels))
                    / (2.0 * f64::from(h))
            };
            let analytic = f64::from(grads[2].bias[1]);
            assert!((numeric_bias - analytic).abs() < 2e-3 * analytic.abs().max(1e-2));
        }
    }

    #[test]
    fn torch_layout_round_trip_and_shapes() {
        let w1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3 outputs × 2 inputs
        let b1 = [0.0; 3];
        assert!(Mlp::from_torch([(&w1, &b1), (&w1, &b1), (&w1, &b1)], 2, Head::Logits).is_none());
        let mlp = Mlp::new(4, 3, Head::Logits, 1);
        assert_eq!((mlp.inputs(), mlp.classes()), (4, 3));
        let bound = (6.0_f32 / 104.0).sqrt();
        assert!(mlp.layers[0].weights.iter().all(|w| w.abs() <= bound));
        assert!(mlp.layers[2].bias.iter().all(|&b| b == 0.01));
        assert_eq!(mlp, Mlp::new(4, 3, Head::Logits, 1));
        assert_ne!(mlp, Mlp::new(4, 3, Head::Logits, 2));
    }

    #[test]
    fn training_lowers_the_loss_on_a_separable_task() {
        // Class = which of three features is largest.
        let mut rng = SplitMix64(3);
        let features: Vec<f32> = (0..300 * 3).map(|_| rng.unit_f32()).collect();
        let labels: Vec<u32> = features
            .chunks(3)
            .map(|r| {
                let mut best = 0;
                for c in 1..3 {
                    if r[c] > r[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect();
        let mut mlp = Mlp::new(3, 3, Head::Logits, 5);
        let mut optimizer = Optimizer::adam(&mlp, 1e-2);
        let before = mlp.loss(&features, &labels);
        for _ in 0..60 {
            let order = shuffled(300, &mut rng);
            mlp.train_epoch(&mut optimizer, &features, &labels, &order, 32);
        }
        let after = mlp.loss(&features, &labels);
        assert!(after < 0.5 * before, "{before} → {after}");
    }
}
