//! Encoded rows as tensors on a device: ids per feature, padded sequences with their masks,
//! numbers and labels.

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use fuselab_shared::ctr::encode::{Encoded, Sequence};

use super::config::Layout;

/// Added to the attention score of a padded position: its weight underflows to exactly 0, so
/// padding never changes a score.
const MASKED: f32 = -1e9;

/// A padded sequence role (several aligned fields) on the device.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// Ids of each field, `[b·L]`.
    pub ids: Vec<(String, Tensor<1, Int>)>,
    /// Padded length L.
    pub max_len: usize,
    /// 0 at real positions and −10⁹ at padding, `[b, 1, 1, L]`.
    pub additive_mask: Tensor<4>,
    /// 1/length at real positions and 0 at padding (a masked mean), `[b, L]`.
    pub mean_weights: Tensor<2>,
    /// 1 where the row has at least one real position, `[b, 1]`.
    pub present: Tensor<2>,
}

/// A batch of rows on the device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Rows.
    pub rows: usize,
    /// Categorical ids by feature, `[b]`.
    pub ids: BTreeMap<String, Tensor<1, Int>>,
    /// The behaviour sequence.
    pub sequence: SequenceBatch,
    /// The exposed-but-not-clicked sequence, when the schema has one.
    pub negative: Option<SequenceBatch>,
    /// Numeric features, `[b, N]` (none: N = 0).
    pub numeric: Option<Tensor<2>>,
    /// Clicks as 0/1, `[b]`.
    pub labels: Tensor<1>,
}

fn int_tensor(values: &[u32], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn sequence_batch(
    fields: &[String],
    sequences: &BTreeMap<String, Sequence>,
    rows: usize,
    device: &Device,
) -> Option<SequenceBatch> {
    let first = sequences.get(fields.first()?)?;
    let max_len = first.max_len;
    let mut additive = Vec::with_capacity(rows * max_len);
    let mut weights = Vec::with_capacity(rows * max_len);
    let mut present = Vec::with_capacity(rows);
    // The first field's lengths mask every aligned field: they are positions of one item.
    for &length in &first.lengths {
        let length = (length as usize).min(max_len);
        for position in 0..max_len {
            let real = position < length;
            additive.push(if real { 0.0 } else { MASKED });
            weights.push(if real { 1.0 / length as f32 } else { 0.0 });
        }
        present.push(if length > 0 { 1.0_f32 } else { 0.0 });
    }
    let ids = fields
        .iter()
        .filter_map(|f| Some((f.clone(), int_tensor(&sequences.get(f)?.ids, device))))
        .collect();
    Some(SequenceBatch {
        ids,
        max_len,
        additive_mask: Tensor::from_data(TensorData::new(additive, [rows, 1, 1, max_len]), device),
        mean_weights: Tensor::from_data(TensorData::new(weights, [rows, max_len]), device),
        present: Tensor::from_data(TensorData::new(present, [rows, 1]), device),
    })
}

impl Batch {
    /// The tensors of `encoded`'s rows for a model of `layout`.
    ///
    /// # Panics
    /// When `encoded` lacks a feature of `layout` (both come from one preprocessor).
    #[must_use]
    pub fn new(encoded: &Encoded, layout: &Layout, device: &Device) -> Self {
        let rows = encoded.rows;
        let ids = encoded
            .categorical
            .iter()
            .map(|(name, values)| (name.clone(), int_tensor(values, device)))
            .collect();
        let sequence = sequence_batch(&layout.sequence, &encoded.sequences, rows, device)
            .expect("the layout's sequence fields are encoded");
        let negative = sequence_batch(&layout.negative_sequence, &encoded.sequences, rows, device);
        let numeric = (!layout.numeric.is_empty()).then(|| {
            let n = layout.numeric.len();
            let mut values = vec![0.0_f32; rows * n];
            for (j, name) in layout.numeric.iter().enumerate() {
                for (i, &v) in encoded.numeric[name].iter().enumerate() {
                    values[i * n + j] = v;
                }
            }
            Tensor::from_data(TensorData::new(values, [rows, n]), device)
        });
        let labels: Vec<f32> = encoded
            .labels
            .iter()
            .map(|&c| f32::from(u8::from(c)))
            .collect();
        Self {
            rows,
            ids,
            sequence,
            negative,
            numeric,
            labels: Tensor::from_data(TensorData::new(labels, [rows]), device),
        }
    }
}
