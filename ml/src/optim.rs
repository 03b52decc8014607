//! Adam over named parameters (`[rows, cols]` tensors), shared by the models that keep their
//! parameters by name (CTR, pose) so that one checkpoint format covers them.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};

use crate::tensors::NamedTensors;

/// Adam (PyTorch's defaults: β = (0.9, 0.999), ε = 10⁻⁸, no weight decay).
#[derive(Debug, Clone, Default)]
pub struct Adam {
    /// First and second moments by parameter name.
    pub moments: BTreeMap<String, (Tensor<2>, Tensor<2>)>,
    /// Updates applied.
    pub updates: usize,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPSILON: f64 = 1e-8;

    /// Applies one update.
    pub fn update(
        &mut self,
        params: &mut BTreeMap<String, Tensor<2>>,
        gradients: &BTreeMap<String, Tensor<2>>,
        learning_rate: f64,
    ) {
        self.updates += 1;
        let t = self.updates as f64;
        let correction1 = 1.0 - Self::BETA1.powf(t);
        let correction2 = 1.0 - Self::BETA2.powf(t);
        for (name, param) in params.iter_mut() {
            let Some(gradient) = gradients.get(name) else {
                continue;
            };
            let (m, v) = self
                .moments
                .entry(name.clone())
                .or_insert_with(|| (param.zeros_like(), param.zeros_like()));
            *m = m.clone().mul_scalar(Self::BETA1) + gradient.clone().mul_scalar(1.0 - Self::BETA1);
            *v = v.clone().mul_scalar(Self::BETA2)
                + gradient.clone().square().mul_scalar(1.0 - Self::BETA2);
            let step = m.clone().div_scalar(correction1)
                / v.clone()
                    .div_scalar(correction2)
                    .sqrt()
                    .add_scalar(Self::EPSILON);
            *param = param.clone() - step.mul_scalar(learning_rate);
        }
    }
}

/// `name` under `prefix` (`prefix/name`; the bare name for an empty prefix).
fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Adds `map`'s tensors to `out` as `prefix/name` (as `name` for an empty prefix).
pub fn put_named(out: &mut NamedTensors, prefix: &str, map: &BTreeMap<String, Tensor<2>>) {
    for (name, t) in map {
        out.insert(
            key(prefix, name),
            (t.dims().to_vec(), crate::llm::values(t.clone())),
        );
    }
}

/// Reads `prefix/name` (`name` for an empty prefix) for every parameter of `like`, checking
/// its shape.
///
/// # Errors
/// A message naming the tensor that is missing or of another shape.
pub fn take_named(
    tensors: &NamedTensors,
    prefix: &str,
    like: &BTreeMap<String, Tensor<2>>,
    device: &Device,
) -> Result<BTreeMap<String, Tensor<2>>, String> {
    like.iter()
        .map(|(name, p)| {
            let key = key(prefix, name);
            let (shape, values) = tensors
                .get(&key)
                .ok_or_else(|| format!("`{key}` is missing"))?;
            if shape.as_slice() != p.dims() {
                return Err(format!(
                    "`{key}` has shape {shape:?}, the model {:?}",
                    p.dims()
                ));
            }
            let t = Tensor::from_data(TensorData::new(values.clone(), p.dims()), device);
            Ok((name.clone(), t))
        })
        .collect()
}

impl Adam {
    /// Adds the moments to `out` as `adam.m/…` and `adam.v/…`.
    pub fn save(&self, out: &mut NamedTensors) {
        let (m, v): (BTreeMap<_, _>, BTreeMap<_, _>) = self
            .moments
            .iter()
            .map(|(k, (m, v))| ((k.clone(), m.clone()), (k.clone(), v.clone())))
            .unzip();
        put_named(out, "adam.m", &m);
        put_named(out, "adam.v", &v);
    }

    /// The optimiser after `updates` updates, its moments read back for the parameters `like`
    /// (none are needed before the first update).
    ///
    /// # Errors
    /// A message naming a moment that is missing or of another shape.
    pub fn load(
        tensors: &NamedTensors,
        like: &BTreeMap<String, Tensor<2>>,
        updates: usize,
        device: &Device,
    ) -> Result<Self, String> {
        let mut moments = BTreeMap::new();
        if updates > 0 {
            let m = take_named(tensors, "adam.m", like, device)?;
            let mut v = take_named(tensors, "adam.v", like, device)?;
            for (name, m) in m {
                let v = v.remove(&name).unwrap_or_else(|| m.zeros_like());
                moments.insert(name, (m, v));
            }
        }
        Ok(Self { moments, updates })
    }
}

/// Best-epoch parameters: the epoch (1-based) and the parameters after it.
pub type Best = Option<(usize, BTreeMap<String, Tensor<2>>)>;

/// A training state's tensors: `param/…`, `best/…` (when a best epoch is kept), `adam.m/…` and
/// `adam.v/…`.
pub fn save_state(params: &BTreeMap<String, Tensor<2>>, best: &Best, adam: &Adam) -> NamedTensors {
    let mut tensors = NamedTensors::new();
    put_named(&mut tensors, "param", params);
    if let Some((_, best)) = best {
        put_named(&mut tensors, "best", best);
    }
    adam.save(&mut tensors);
    tensors
}

/// The parameters, best epoch and optimiser of [`save_state`]'s tensors, for parameters shaped
/// like `like`.
///
/// # Errors
/// A message naming a tensor that is missing or of another shape.
pub fn load_state(
    tensors: &NamedTensors,
    like: &BTreeMap<String, Tensor<2>>,
    best_epoch: Option<usize>,
    updates: usize,
    device: &Device,
) -> Result<(BTreeMap<String, Tensor<2>>, Best, Adam), String> {
    let params = take_named(tensors, "param", like, device)?;
    let best = match best_epoch {
        Some(epoch) => Some((epoch, take_named(tensors, "best", like, device)?)),
        None => None,
    };
    let adam = Adam::load(tensors, like, updates, device)?;
    Ok((params, best, adam))
}
