//! A float32 network graph and its CPU forward pass: the float yardstick that quantized models are
//! compared against and calibrated from.
//!
//! Graph: tensor 0 is the input; node `i` reads earlier tensors by index and produces tensor
//! `i + 1`; the last node's tensor is the output. BatchNorm is already folded into conv weights
//! and biases by the builder (see `model::efficientnet`).
//!
//! Layouts: every tensor is NHWC with logical channels (no padding), batch first,
//! `[n][h][w][c]`; `GlobalAvgPool` and `Linear` produce `[n][1][1][c]`, i.e. `[n][c]`.
//! Dense conv weights are OHWI `[cout][kh][kw][cin]`; depthwise weights `[c][kh][kw]`;
//! linear weights `[n][k]` (PyTorch's layout). A linear layer reads its input flattened in NHWC
//! order, so `k = h·w·c`.
//!
//! Kernels: the CPU reference ops of `src/reference/` (conv and linear: im2col plus the threaded
//! `blas::sgemm`; depthwise: a direct channels-innermost loop), the same code that trains.

use crate::error::{Error, Result};
use crate::reference::conv_f32::{conv_f32_forward, ConvGeom};
use crate::reference::depthwise_f32::depthwise_f32;
use crate::reference::gemm_f32::gemm_f32;
use crate::reference::pool::pool_out_hw;
use crate::reference::pool_f32::{avg_pool_f32, global_window, max_pool_f32};
use crate::reference::Window;
use crate::tensor::Shape;

/// The activation fused after a conv, a linear layer or an add (a clamp).
pub use crate::reference::gemm_f32::Activation;

/// Dense (every output channel reads every input channel) or depthwise (channel c reads c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKind {
    Dense,
    Depthwise,
}

/// A convolution with folded BN: `act(conv(x, weight) + bias)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatConv {
    pub name: String,
    pub kind: ConvKind,
    pub cout: usize,
    /// Input channels; equals `cout` for depthwise.
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    /// Kernel, stride and padding (`kh`/`kw` must agree with the fields above).
    pub window: Window,
    /// Dense: OHWI `[cout][kh][kw][cin]`; depthwise: `[c][kh][kw]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub act: Activation,
}

/// One node of the graph; inputs are tensor indices (0 = the model input).
#[derive(Clone, Debug, PartialEq)]
pub enum FloatNode {
    Conv {
        input: usize,
        conv: FloatConv,
    },
    /// `act(a + b)`, same shapes.
    Add {
        a: usize,
        b: usize,
        act: Activation,
    },
    /// Mean over h and w: `[n][h][w][c]` → `[n][c]`.
    GlobalAvgPool {
        input: usize,
    },
    /// Max over windows (padding ignored, as PyTorch's `MaxPool2d`).
    MaxPool {
        input: usize,
        window: Window,
    },
    /// `x·weightᵀ + bias`; `weight` is `[n][k]`.
    Linear {
        input: usize,
        name: String,
        n: usize,
        k: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
}

/// A float network: `nodes[i]` produces tensor `i + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatModel {
    pub name: String,
    pub input_hw: (usize, usize),
    pub input_c: usize,
    pub nodes: Vec<FloatNode>,
}

/// Per-image shape of a tensor: `[h, w, c]`.
pub type Hwc = [usize; 3];

const OP: &str = "float forward";

impl FloatModel {
    /// The `[h, w, c]` of every tensor (index 0 = input), validating the whole graph: indices,
    /// channel counts, weight and bias lengths, windows.
    pub fn tensor_shapes(&self) -> Result<Vec<Hwc>> {
        let (h, w) = self.input_hw;
        let mut shapes = vec![[h, w, self.input_c]];
        if self.nodes.is_empty() || shapes[0].contains(&0) {
            return Err(Error::shape(
                OP,
                format!(
                    "model {}: {} nodes, input {:?}",
                    self.name,
                    self.nodes.len(),
                    shapes[0]
                ),
            ));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let get = |t: usize| {
                shapes.get(t).copied().filter(|_| t <= i).ok_or_else(|| {
                    Error::shape(OP, format!("node {i} reads tensor {t}, not produced yet"))
                })
            };
            let out = match node {
                FloatNode::Conv { input, conv } => conv_shape(conv, get(*input)?)?,
                FloatNode::Add { a, b, .. } => {
                    let (sa, sb) = (get(*a)?, get(*b)?);
                    if sa != sb {
                        return Err(Error::shape(OP, format!("node {i} adds {sa:?} and {sb:?}")));
                    }
                    sa
                }
                FloatNode::GlobalAvgPool { input } => [1, 1, get(*input)?[2]],
                FloatNode::MaxPool { input, window } => {
                    let [h, w, c] = get(*input)?;
                    let (oh, ow) = pool_out_hw(OP, window, h, w)?;
                    [oh, ow, c]
                }
                FloatNode::Linear {
                    input,
                    name,
                    n,
                    k,
                    weight,
                    bias,
                } => {
                    let [ih, iw, ic] = get(*input)?;
                    if ih * iw * ic != *k || weight.len() != n * k || bias.len() != *n {
                        return Err(Error::shape(
                            OP,
                            format!(
                                "linear {name}: input {ih}x{iw}x{ic}, k {k}, n {n}, {} weights, \
                                 {} biases",
                                weight.len(),
                                bias.len()
                            ),
                        ));
                    }
                    [1, 1, *n]
                }
            };
            if out.contains(&0) {
                return Err(Error::shape(
                    OP,
                    format!("node {i} produces an empty {out:?} tensor"),
                ));
            }
            shapes.push(out);
        }
        Ok(shapes)
    }

    /// Output of the last node for a batch of `n` NHWC images: `[n][out_len]` (logits).
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut all = self.run(x, n, false)?;
        all.pop().ok_or_else(|| Error::shape(OP, "no output"))
    }

    /// Every tensor of the forward pass (index 0 = a copy of the input, `i + 1` = node `i`),
    /// each NHWC `[n][h][w][c]` with the shapes of `tensor_shapes`. Memory is the sum of all
    /// activations, so calibrate with small batches.
    pub fn forward_all(&self, x: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        self.run(x, n, true)
    }

    fn run(&self, x: &[f32], n: usize, keep_all: bool) -> Result<Vec<Vec<f32>>> {
        let shapes = self.tensor_shapes()?;
        let [h, w, c] = shapes[0];
        if n == 0 || Some(x.len()) != n.checked_mul(h * w * c) {
            return Err(Error::shape(
                OP,
                format!(
                    "{}: {} inputs for a batch of {n} x {h}x{w}x{c}",
                    self.name,
                    x.len()
                ),
            ));
        }
        // Last node reading each tensor, so intermediates can be freed when not kept.
        let mut last_use = vec![0usize; shapes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for t in node_inputs(node) {
                last_use[t] = i;
            }
        }
        let mut tensors: Vec<Vec<f32>> = Vec::with_capacity(shapes.len());
        tensors.push(x.to_vec());
        for (i, node) in self.nodes.iter().enumerate() {
            let out = match node {
                FloatNode::Conv { input, conv } => {
                    let [h, w, c] = shapes[*input];
                    let shape = Shape::new(n, h, w, c);
                    let x = &tensors[*input];
                    match conv.kind {
                        ConvKind::Dense => {
                            let geom = ConvGeom::dense(shape, conv.cout, conv.window);
                            conv_f32_forward(&geom, x, &conv.weight, &conv.bias, conv.act)?
                        }
                        ConvKind::Depthwise => {
                            depthwise_f32(
                                x,
                                shape,
                                &conv.weight,
                                &conv.bias,
                                &conv.window,
                                conv.act,
                            )?
                            .1
                        }
                    }
                }
                FloatNode::Add { a, b, act } => {
                    let mut v: Vec<f32> = tensors[*a]
                        .iter()
                        .zip(&tensors[*b])
                        .map(|(p, q)| p + q)
                        .collect();
                    v.iter_mut().for_each(|x| *x = act.apply(*x));
                    v
                }
                FloatNode::GlobalAvgPool { input } => {
                    let [h, w, c] = shapes[*input];
                    let shape = Shape::new(n, h, w, c);
                    avg_pool_f32(&tensors[*input], shape, &global_window(shape))?.1
                }
                FloatNode::MaxPool { input, window } => {
                    let [h, w, c] = shapes[*input];
                    max_pool_f32(&tensors[*input], Shape::new(n, h, w, c), window)?.y
                }
                FloatNode::Linear {
                    input,
                    n: nout,
                    k,
                    weight,
                    bias,
                    ..
                } => gemm_f32(
                    &tensors[*input],
                    weight,
                    bias,
                    n,
                    *nout,
                    *k,
                    Activation::None,
                )?,
            };
            tensors.push(out);
            if !keep_all {
                for t in node_inputs(node) {
                    if last_use[t] == i {
                        tensors[t] = Vec::new();
                    }
                }
            }
        }
        Ok(tensors)
    }
}

fn node_inputs(node: &FloatNode) -> Vec<usize> {
    match node {
        FloatNode::Conv { input, .. }
        | FloatNode::GlobalAvgPool { input }
        | FloatNode::MaxPool { input, .. }
        | FloatNode::Linear { input, .. } => vec![*input],
        FloatNode::Add { a, b, .. } => vec![*a, *b],
    }
}

fn conv_shape(conv: &FloatConv, [h, w, c]: Hwc) -> Result<Hwc> {
    let FloatConv {
        name,
        cin,
        cout,
        kh,
        kw,
        window,
        ..
    } = conv;
    let per_out = match conv.kind {
        ConvKind::Dense => kh * kw * cin,
        ConvKind::Depthwise => kh * kw,
    };
    let bad = c != *cin
        || (conv.kind == ConvKind::Depthwise && cin != cout)
        || (window.kh, window.kw) != (*kh, *kw)
        || conv.weight.len() != cout * per_out
        || conv.bias.len() != *cout;
    if bad {
        return Err(Error::shape(
            OP,
            format!(
                "conv {name} ({:?} {cin}->{cout}, {kh}x{kw}, window {}x{}): input has {c} \
                 channels, {} weights, {} biases",
                conv.kind,
                window.kh,
                window.kw,
                conv.weight.len(),
                conv.bias.len()
            ),
        ));
    }
    let (oh, ow) = window.out_hw(OP, h, w)?;
    Ok([oh, ow, *cout])
}
