//! How a step turns the loss's gradient into a change of δ, always projected back to the L∞
//! ball of radius ε:
//!
//! - `sign` (Chameleon's reference): `δ ← δ − α·sign(g)`;
//! - `momentum` (MI-FGSM, Dong et al. 2018, decay μ = 1): `m ← μ·m + g/‖g‖₁`,
//!   `δ ← δ − α·sign(m)`; the accumulated direction steadies the few, noisy batches a handful
//!   of photos give;
//! - `adam`: `δ ← δ − α·m̂/(√v̂ + 10⁻⁸)` with β = (0.9, 0.999) and bias-corrected moments, so
//!   each pixel's step follows its own gradient's scale rather than only its sign.
//!
//! `α` is the configured step on the 0..255 scale.

use serde::{Deserialize, Serialize};

/// The update rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Update {
    /// The sign of the batch's gradient (the reference).
    #[default]
    Sign,
    /// The sign of the momentum of L1-normalised gradients (MI-FGSM).
    Momentum,
    /// Adam, projected to the ε ball.
    Adam,
}

impl Update {
    /// Every rule, in the order the CLI lists them.
    pub const ALL: [Self; 3] = [Self::Sign, Self::Momentum, Self::Adam];

    /// The name the CLI and the configuration use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Momentum => "momentum",
            Self::Adam => "adam",
        }
    }
}

/// MI-FGSM's decay.
const DECAY: f32 = 1.0;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;

/// The optimiser's memory: empty until the first step that needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Momentum, or Adam's first moment.
    #[serde(default)]
    pub first: Vec<f32>,
    /// Adam's second moment.
    #[serde(default)]
    pub second: Vec<f32>,
    /// Steps taken with this memory (Adam's bias correction).
    #[serde(default)]
    pub steps: u32,
}

fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Moves `delta` against `gradient` by the rule, then clamps it to `±epsilon`.
pub fn apply(
    rule: Update,
    moments: &mut Moments,
    delta: &mut [f32],
    gradient: &[f32],
    step: f32,
    epsilon: f32,
) {
    let n = delta.len();
    match rule {
        Update::Sign => {
            for (d, g) in delta.iter_mut().zip(gradient) {
                *d -= step * sign(*g);
            }
        }
        Update::Momentum => {
            moments.first.resize(n, 0.0);
            let l1: f32 = gradient.iter().map(|g| g.abs()).sum();
            let scale = if l1 > 0.0 { 1.0 / l1 } else { 0.0 };
            for ((d, m), g) in delta.iter_mut().zip(&mut moments.first).zip(gradient) {
                *m = DECAY * *m + g * scale;
                *d -= step * sign(*m);
            }
        }
        Update::Adam => {
            moments.first.resize(n, 0.0);
            moments.second.resize(n, 0.0);
            moments.steps = moments.steps.saturating_add(1);
            let t = i32::try_from(moments.steps).unwrap_or(i32::MAX);
            let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
            for (((d, m), v), g) in delta
                .iter_mut()
                .zip(&mut moments.first)
                .zip(&mut moments.second)
                .zip(gradient)
            {
                *m = BETA1 * *m + (1.0 - BETA1) * g;
                *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                *d -= step * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
            }
        }
    }
    for d in delta.iter_mut() {
        *d = d.clamp(-epsilon, epsilon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_stays_in_the_ball_and_descends() {
        for rule in Update::ALL {
            let mut moments = Moments::default();
            let mut delta = vec![0.0_f32, 15.5, -15.5, 3.0];
            let gradient = [2.0_f32, -4.0, 4.0, 0.0];
            for _ in 0..5 {
                apply(rule, &mut moments, &mut delta, &gradient, 1.0, 16.0);
                assert!(delta.iter().all(|d| d.abs() <= 16.0), "{rule:?}: {delta:?}");
            }
            assert!(delta[0] < 0.0, "{rule:?} went up a positive gradient");
            assert_eq!((delta[1], delta[2]), (16.0, -16.0), "{rule:?}");
            assert!(
                (delta[3] - 3.0).abs() < 1e-6,
                "{rule:?} moved a zero gradient"
            );
        }
    }

    #[test]
    fn momentum_keeps_its_direction_through_a_reversed_step() {
        let mut moments = Moments::default();
        let mut delta = vec![0.0_f32];
        apply(
            Update::Momentum,
            &mut moments,
            &mut delta,
            &[3.0],
            1.0,
            16.0,
        );
        // m = 1, then 1 − 1 + … : a single reversed gradient of equal L1 weight cancels it.
        apply(
            Update::Momentum,
            &mut moments,
            &mut delta,
            &[-0.5],
            1.0,
            16.0,
        );
        assert_eq!(delta, [-1.0]);
        assert_eq!(moments.first, [0.0]);
        let mut sign = vec![0.0_f32];
        let mut none = Moments::default();
        apply(Update::Sign, &mut none, &mut sign, &[3.0], 1.0, 16.0);
        apply(Update::Sign, &mut none, &mut sign, &[-0.5], 1.0, 16.0);
        assert_eq!(sign, [0.0]);
    }

    #[test]
    fn adam_first_step_is_the_step_size() {
        let mut moments = Moments::default();
        let mut delta = vec![0.0_f32, 0.0];
        apply(
            Update::Adam,
            &mut moments,
            &mut delta,
            &[1e-4, -7.0],
            0.5,
            16.0,
        );
        // Bias-corrected, the first step is α·g/|g| whatever the gradient's scale.
        assert!((delta[0] + 0.5).abs() < 1e-3, "{delta:?}");
        assert!((delta[1] - 0.5).abs() < 1e-6, "{delta:?}");
        assert_eq!(moments.steps, 1);
    }
}
