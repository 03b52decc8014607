//! Whether face recognition still matches protected photos to their owner, from descriptors
//! alone, so `mask verify` and `mask study` judge alike:
//!
//! - **verification**: a protected photo against every clean photo of its owner (its own
//!   original included), at the model's threshold; it *evades* when no clean photo is within
//!   the threshold;
//! - **identification**: the protected photo against a gallery of the owner's other clean photos
//!   (its own original left out: an attacker rarely holds it) and every other face available;
//!   it is *identified* when its nearest gallery face is the owner's and within the threshold.
//!
//! dlib decides on the Euclidean distance with its own threshold (0.6). A model without one
//! decides on the angle, with a threshold calibrated on the clean photos at hand: the midpoint
//! between the mean angle of same-person pairs and the mean angle of different-person pairs.

use serde::Serialize;

/// How a model compares two descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Euclidean distance between the raw descriptors.
    Distance,
    /// Angle between them, radians.
    Angle,
}

impl Measure {
    /// The measure between two descriptors.
    #[must_use]
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Distance => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
            Self::Angle => {
                let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                (dot / (norm(a) * norm(b)).max(1e-12))
                    .clamp(-1.0, 1.0)
                    .acos()
            }
        }
    }
}

/// Where a threshold comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ThresholdSource {
    /// The model's own.
    Model,
    /// Calibrated on the clean photos at hand.
    Calibrated {
        /// Same-person pairs it saw, and their mean.
        same_pairs: usize,
        /// Mean measure of the same-person pairs.
        same_mean: f32,
        /// Different-person pairs it saw.
        different_pairs: usize,
        /// Mean measure of the different-person pairs.
        different_mean: f32,
    },
}

/// One model's rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judge {
    /// The model's name.
    pub model: String,
    /// What it measures.
    pub measure: Measure,
    /// Below this, two faces are the same person.
    pub threshold: f32,
    /// Where the threshold comes from.
    pub source: ThresholdSource,
}

/// A face's descriptor for one model, with the identity it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled<'a> {
    /// Who it is (`"owner"` for the key's owner).
    pub identity: &'a str,
    /// Its name in reports: the file, and the variant when it is one.
    pub name: &'a str,
    /// The descriptor.
    pub descriptor: &'a [f32],
}

impl Judge {
    /// A model's own threshold.
    #[must_use]
    pub fn with_threshold(model: &str, measure: Measure, threshold: f32) -> Self {
        Self {
            model: model.to_owned(),
            measure,
            threshold,
            source: ThresholdSource::Model,
        }
    }

    /// A threshold on the angle calibrated on `faces`; `None` without both a same-person pair
    /// and a different-person pair.
    #[must_use]
    pub fn calibrated(model: &str, faces: &[Labelled<'_>]) -> Option<Self> {
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for (i, a) in faces.iter().enumerate() {
            for b in &faces[i + 1..] {
                let angle = Measure::Angle.between(a.descriptor, b.descriptor);
                if a.identity == b.identity {
                    same.push(angle);
                } else {
                    different.push(angle);
                }
            }
        }
        if same.is_empty() || different.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let (same_mean, different_mean) = (mean(&same), mean(&different));
        Some(Self {
            model: model.to_owned(),
            measure: Measure::Angle,
            threshold: 0.5 * (same_mean + different_mean),
            source: ThresholdSource::Calibrated {
                same_pairs: same.len(),
                same_mean,
                different_pairs: different.len(),
                different_mean,
            },
        })
    }

    /// How one protected photo fares: `own` is its clean original among `owner`; `others` are
    /// the faces of other people.
    #[must_use]
    pub fn probe(
        &self,
        photo: &str,
        protected: &[f32],
        own: usize,
        owner: &[Labelled<'_>],
        others: &[Labelled<'_>],
    ) -> ProbeVerdict {
        let to_owner: Vec<(String, f32)> = owner
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    self.measure.between(protected, f.descriptor),
                )
            })
            .collect();
        let nearest_owner = to_owner
            .iter()
            .map(|(_, m)| *m)
            .fold(f32::INFINITY, f32::min);
        let gallery = owner
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != own)
            .map(|(_, f)| f)
            .chain(others);
        let nearest = gallery
            .map(|f| (f, self.measure.between(protected, f.descriptor)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let identified = nearest
            .as_ref()
            .is_some_and(|(f, m)| f.identity == owner[own].identity && *m < self.threshold);
        ProbeVerdict {
            photo: photo.to_owned(),
            to_owner,
            nearest_owner,
            evades: nearest_owner >= self.threshold,
            nearest_in_gallery: nearest.map(|(f, m)| (f.name.to_owned(), m)),
            identified,
        }
    }
}

/// One protected photo under one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeVerdict {
    /// The photo.
    pub photo: String,
    /// The measure to each clean photo of the owner.
    pub to_owner: Vec<(String, f32)>,
    /// The smallest of them.
    pub nearest_owner: f32,
    /// No clean photo of the owner is within the threshold.
    pub evades: bool,
    /// The nearest gallery face and its measure.
    pub nearest_in_gallery: Option<(String, f32)>,
    /// The nearest gallery face is the owner's, within the threshold.
    pub identified: bool,
}

/// A model's verdicts on every probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVerdicts {
    /// The rule.
    pub judge: Judge,
    /// Per protected photo.
    pub probes: Vec<ProbeVerdict>,
    /// Share of protected photos that evade verification.
    pub evasion_rate: f64,
    /// Share of protected photos identified as their owner.
    pub identified_rate: f64,
    /// The same for the clean originals (the baseline the mask has to beat).
    pub identified_rate_unprotected: f64,
}

impl ModelVerdicts {
    /// Collects probes and the clean baseline into rates.
    #[must_use]
    pub fn new(judge: Judge, probes: Vec<ProbeVerdict>, clean: &[ProbeVerdict]) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
        Self {
            evasion_rate: share(probes.iter().filter(|p| p.evades).count(), probes.len()),
            identified_rate: share(probes.iter().filter(|p| p.identified).count(), probes.len()),
            identified_rate_unprotected: share(
                clean.iter().filter(|p| p.identified).count(),
                clean.len(),
            ),
            judge,
            probes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face<'a>(identity: &'a str, name: &'a str, descriptor: &'a [f32]) -> Labelled<'a> {
        Labelled {
            identity,
            name,
            descriptor,
        }
    }

    #[test]
    fn a_probe_evades_only_when_every_clean_photo_is_beyond_the_threshold() {
        let judge = Judge::with_threshold("dlib", Measure::Distance, 0.6);
        let owner = [
            face("owner", "a.jpg", &[0.0, 0.0]),
            face("owner", "b.jpg", &[0.5, 0.0]),
        ];
        let others = [face("biden", "biden.jpg", &[1.0, 0.0])];
        // 0.7 from a.jpg (its original) but 0.2 from b.jpg: still the owner.
        let near = judge.probe("a.jpg", &[0.7, 0.0], 0, &owner, &others);
        assert!(!near.evades);
        assert!((near.nearest_owner - 0.2).abs() < 1e-6);
        assert!(near.identified, "b.jpg is nearest and within 0.6");
        // 0.9 from a.jpg, 0.4 from b.jpg, 0.1 from biden: verified as the owner, but the
        // gallery's nearest face is someone else.
        let confused = judge.probe("a.jpg", &[0.9, 0.0], 0, &owner, &others);
        assert!(!confused.evades && !confused.identified);
        assert_eq!(confused.nearest_in_gallery.as_ref().unwrap().0, "biden.jpg");
        // Far from both: evades.
        let far = judge.probe("a.jpg", &[0.0, 2.0], 0, &owner, &others);
        assert!(far.evades && !far.identified);
        let verdicts = ModelVerdicts::new(judge, vec![near, confused, far], &[]);
        assert!((verdicts.evasion_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!((verdicts.identified_rate - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_calibrated_threshold_is_the_midpoint_of_the_mean_angles() {
        let faces = [
            face("owner", "a", &[1.0, 0.0]),
            face("owner", "b", &[1.0, 1.0]),
            face("x", "x", &[0.0, 1.0]),
        ];
        let judge = Judge::calibrated("faceres", &faces).unwrap();
        // Same: a–b 45°. Different: a–x 90°, b–x 45°, mean 67.5°. Midpoint 56.25°.
        let expected = 56.25_f32.to_radians();
        assert!((judge.threshold - expected).abs() < 1e-5, "{judge:?}");
        assert!(Judge::calibrated("faceres", &faces[..2]).is_none());
    }
}
