//! An F8Net training network on the CPU: a graph of conv + BN units (`conv_bn`), residual adds,
//! a global average pool and the classifier (`linear`), with the PACT clipping levels α shared
//! along residual streams (F8NET.md §2.5: each unit names the α it uses, its "master"), forward,
//! backward and one SGD step (Nesterov momentum, per-tensor weight decay by scheme, §6).
//!
//! Scales (§2.1, §4.1): a unit with a quantized input has `s = 2^F_run·|α|/(2^(8−signed) − 1)`,
//! F_run its running input FL; a unit with the fixed 8-bit image input has s = 1. Each unit
//! divides its output by the scale of its *following* unit (`next`), so tensors between units
//! are in the next unit's normalized units; residual adds add them as they are (F8Net's private
//! FL makes the skip gain a power of two, which training absorbs).
//! Tensors are NHWC f32 with logical channels; tensor 0 is the input (pixel k as k/256);
//! node i produces tensor i + 1.

use super::conv_bn::{self, ConvBn, InputQuant, Precision};
use super::linear::{self, Classifier};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::reference::fake_quant::fix_scaling;
use crate::reference::fold::FoldStats;
use crate::reference::loss::softmax_cross_entropy;
use crate::reference::optim::{sgd_step, ParamKind, SgdHyper, WeightDecayScheme};
use crate::reference::residual::Activation;
use crate::reference::sum_pool::{sum_pool, sum_pool_backward};
use crate::tensor::Shape;

/// One node of the network.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A conv + BN unit reading tensor `input`; `alpha` indexes its clipping level; `next` is
    /// the node whose scale divides its output (None: scale 1); `act` is a ReLU on its output
    /// where a non-quantizing consumer (a residual add) reads the activated tensor.
    Conv {
        input: usize,
        unit: ConvBn,
        alpha: usize,
        next: Option<usize>,
        act: Activation,
    },
    /// `a + b`, then ReLU when `relu`.
    Add { a: usize, b: usize, relu: bool },
    /// F8Net's average pool (§2.9): `Σ_{h,w} / 2^round(log2(h·w))` — a pure FL change in the
    /// integer model, the `2^shift/(h·w)` factor learned by the classifier: `[n][h][w][c]` →
    /// `[n][c]`.
    GlobalAvgPool { input: usize },
    /// The classifier on tensor `input` (flattened), with its own α.
    Classifier {
        input: usize,
        fc: Classifier,
        alpha: usize,
    },
}

/// Network parameters, state and the momentum buffers of the optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub input: Shape,
    pub nodes: Vec<Node>,
    /// PACT clipping levels, initialized to 8 (§4.2).
    pub alphas: Vec<f32>,
    pub precision: Precision,
    /// Momentum buffers, one per parameter tensor in `params` order (empty until the first step).
    pub momentum: Vec<Vec<f32>>,
    pub step: u64,
}

/// What the backward pass needs.
pub struct Forward {
    pub loss: f32,
    pub logits: Vec<f32>,
    tensors: Vec<Vec<f32>>,
    shapes: Vec<Shape>,
    saved: Vec<Saved>,
    scales: Vec<f32>,
    dlogits: Vec<f32>,
}

enum Saved {
    Conv(conv_bn::Saved),
    Classifier(linear::Saved),
    None,
}

/// Gradients, in `params` order.
pub type Grads = Vec<Vec<f32>>;

impl Forward {
    /// Each conv unit's batch statistics of y0 and their pixel count (None for other nodes).
    pub fn unit_stats(&self) -> Vec<Option<(&FoldStats, usize)>> {
        self.saved
            .iter()
            .map(|s| match s {
                Saved::Conv(c) => Some(c.batch_stats()),
                _ => None,
            })
            .collect()
    }

    /// The formats each node used: (input FL — None for the fixed 8-bit image — and the weight
    /// FL of every output channel)
    /// for conv units and the classifier, None for other nodes.
    pub fn formats(&self) -> Vec<Option<(Option<i32>, Vec<i32>)>> {
        self.saved
            .iter()
            .map(|s| match s {
                Saved::Conv(c) => Some((c.x_fl, c.w_fl.clone())),
                Saved::Classifier(c) => Some((Some(c.x_fl), vec![c.w_fl])),
                Saved::None => None,
            })
            .collect()
    }
}

impl Net {
    /// The scale of node `i` (1 for nodes without a quantized input).
    fn scale(&self, i: usize) -> f32 {
        match &self.nodes[i] {
            Node::Conv { unit, alpha, .. } => match unit.input {
                InputQuant::Fixed => 1.0,
                InputQuant::Quantized(s) => {
                    fix_scaling(self.alphas[*alpha], unit.running_fl.current(s), s)
                }
            },
            Node::Classifier { fc, alpha, .. } => fix_scaling(
                self.alphas[*alpha],
                fc.running_fl.current(Signedness::Unsigned),
                Signedness::Unsigned,
            ),
            _ => 1.0,
        }
    }

    /// Shapes of every tensor for a batch of `n`.
    pub fn tensor_shapes(&self, n: usize) -> Result<Vec<Shape>> {
        let mut s = vec![Shape { n, ..self.input }];
        for (i, node) in self.nodes.iter().enumerate() {
            let get = |j: usize| {
                s.get(j)
                    .copied()
                    .ok_or_else(|| Error::shape("net", format!("node {i} reads tensor {j}")))
            };
            s.push(match node {
                Node::Conv { input, unit, .. } => {
                    let x = get(*input)?;
                    let (oh, ow) = unit.window.out_hw("net", x.h, x.w)?;
                    Shape::new(n, oh, ow, unit.cout)
                }
                Node::Add { a, b, .. } => {
                    let (x, y) = (get(*a)?, get(*b)?);
                    if x != y {
                        return Err(Error::shape("net", format!("add of {x} and {y}")));
                    }
                    x
                }
                Node::GlobalAvgPool { input } => Shape::new(n, 1, 1, get(*input)?.c),
                Node::Classifier { input, fc, .. } => {
                    let x = get(*input)?;
                    if x.h * x.w * x.c != fc.k {
                        return Err(Error::shape(
                            "net",
                            format!("classifier input {x} for k = {}", fc.k),
                        ));
                    }
                    Shape::new(n, 1, 1, fc.classes)
                }
            });
        }
        Ok(s)
    }

    /// Training forward and loss for a batch (`x`: NHWC f32, `labels`).
    pub fn forward(&mut self, x: &[f32], labels: &[u32]) -> Result<Forward> {
        let n = labels.len();
        let shapes = self.tensor_shapes(n)?;
        let scales: Vec<f32> = (0..self.nodes.len()).map(|i| self.scale(i)).collect();
        let precision = self.precision;
        let mut tensors = vec![x.to_vec()];
        let mut saved = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let (out, s) = match &mut self.nodes[i] {
                Node::Conv {
                    input,
                    unit,
                    next,
                    act,
                    ..
                } => {
                    let s_out = next.map_or(1.0, |j| scales[j]);
                    let (y, sv) = unit.forward_train(
                        &tensors[*input],
                        shapes[*input],
                        scales[i],
                        s_out,
                        precision,
                    )?;
                    (activate(y, *act), Saved::Conv(sv))
                }
                Node::Add { a, b, relu } => (add(&tensors[*a], &tensors[*b], *relu), Saved::None),
                Node::GlobalAvgPool { input } => {
                    (sum_pool(&tensors[*input], shapes[*input])?, Saved::None)
                }
                Node::Classifier { input, fc, .. } => {
                    let (y, sv) = fc.forward_train(&tensors[*input], n, scales[i], precision)?;
                    (y, Saved::Classifier(sv))
                }
            };
            tensors.push(out);
            saved.push(s);
        }
        let logits = tensors.last().cloned().unwrap_or_default();
        let classes = shapes.last().map_or(0, |s| s.c);
        let l = softmax_cross_entropy(&logits, n, classes, labels)?;
        Ok(Forward {
            loss: l.loss,
            logits,
            tensors,
            shapes,
            saved,
            scales,
            dlogits: l.dlogits,
        })
    }

    /// Evaluation forward (running BN statistics, rounded running FLs, the classifier's
    /// positive rescale dropped as at inference): logits `[n][classes]`.
    pub fn forward_eval(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(self.eval_tensors(x, n)?.pop().unwrap_or_default())
    }

    /// The evaluation forward's tensors: the input, then every node's output (NHWC f32).
    pub fn eval_tensors(&self, x: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let shapes = self.tensor_shapes(n)?;
        let scales: Vec<f32> = (0..self.nodes.len()).map(|i| self.scale(i)).collect();
        let mut tensors = vec![x.to_vec()];
        for (i, node) in self.nodes.iter().enumerate() {
            let out = match node {
                Node::Conv {
                    input,
                    unit,
                    next,
                    act,
                    ..
                } => {
                    let s_out = next.map_or(1.0, |j| scales[j]);
                    activate(
                        unit.forward_eval(
                            &tensors[*input],
                            shapes[*input],
                            scales[i],
                            s_out,
                            self.precision,
                        )?,
                        *act,
                    )
                }
                Node::Add { a, b, relu } => add(&tensors[*a], &tensors[*b], *relu),
                Node::GlobalAvgPool { input } => sum_pool(&tensors[*input], shapes[*input])?,
                Node::Classifier { input, fc, .. } => fc.forward_eval(
                    &tensors[*input],
                    n,
                    scales[i],
                    fc.sat_scale(self.precision),
                    self.precision,
                )?,
            };
            tensors.push(out);
        }
        Ok(tensors)
    }

    /// The scale of node `i` (public for the export).
    pub fn node_scale(&self, i: usize) -> f32 {
        self.scale(i)
    }

    /// Backward pass: gradients of every parameter tensor (in `params` order).
    pub fn backward(&self, f: &Forward) -> Result<Grads> {
        let mut d: Vec<Vec<f32>> = f.tensors.iter().map(|t| vec![0.0; t.len()]).collect();
        if let Some(last) = d.last_mut() {
            last.copy_from_slice(&f.dlogits);
        }
        let mut alpha_grad = vec![0f64; self.alphas.len()];
        // Per node: its parameter gradients (conv: w, γ, β; classifier: w, b).
        let mut node_grads: Vec<Vec<Vec<f32>>> = vec![Vec::new(); self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            let dy = std::mem::take(&mut d[i + 1]);
            match (&self.nodes[i], &f.saved[i]) {
                (
                    Node::Conv {
                        input,
                        unit,
                        alpha,
                        next,
                        act,
                    },
                    Saved::Conv(sv),
                ) => {
                    let dy = relu_mask(dy, &f.tensors[i + 1], *act == Activation::Relu);
                    let (dx, g) = unit.backward(sv, &dy)?;
                    add_into(&mut d[*input], &dx);
                    // s = 2^F·|α|/M: ds/dα = s/α.
                    if unit.input != InputQuant::Fixed {
                        alpha_grad[*alpha] +=
                            g.s_in as f64 * (f.scales[i] / self.alphas[*alpha]) as f64;
                    }
                    if let Some(j) = next {
                        let a = self.alpha_of(*j);
                        alpha_grad[a] += g.s_out as f64 * (f.scales[*j] / self.alphas[a]) as f64;
                    }
                    node_grads[i] = vec![g.weight, g.gamma, g.beta];
                }
                (Node::Add { a, b, relu }, _) => {
                    let g = relu_mask(dy, &f.tensors[i + 1], *relu);
                    add_into(&mut d[*a], &g);
                    add_into(&mut d[*b], &g);
                }
                (Node::GlobalAvgPool { input }, _) => {
                    add_into(&mut d[*input], &sum_pool_backward(&dy, f.shapes[*input])?);
                }
                (Node::Classifier { input, fc, alpha }, Saved::Classifier(sv)) => {
                    let (dx, g) = fc.backward(sv, &dy)?;
                    add_into(&mut d[*input], &dx);
                    alpha_grad[*alpha] +=
                        g.s_fc as f64 * (f.scales[i] / self.alphas[*alpha]) as f64;
                    node_grads[i] = vec![g.weight, g.bias];
                }
                _ => {
                    return Err(Error::shape(
                        "net backward",
                        format!("node {i} has no saved forward"),
                    ))
                }
            }
        }
        let mut grads: Grads = node_grads.into_iter().flatten().collect();
        grads.push(alpha_grad.iter().map(|&g| g as f32).collect());
        Ok(grads)
    }

    fn alpha_of(&self, i: usize) -> usize {
        match &self.nodes[i] {
            Node::Conv { alpha, .. } | Node::Classifier { alpha, .. } => *alpha,
            _ => 0,
        }
    }

    /// One training step (forward, backward, SGD); a non-finite loss stops it before any update,
    /// with an error naming the step, so the last checkpoint stays the last good state.
    pub fn train_step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        wd: f32,
        scheme: WeightDecayScheme,
    ) -> Result<f32> {
        Ok(self.train_step_logits(x, labels, lr, wd, scheme)?.0)
    }

    /// `train_step`, also returning the forward pass's logits `[n][classes]`.
    pub fn train_step_logits(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        wd: f32,
        scheme: WeightDecayScheme,
    ) -> Result<(f32, Vec<f32>)> {
        let f = self.forward(x, labels)?;
        if !f.loss.is_finite() {
            return Err(non_finite_loss(f.loss, self.step + 1));
        }
        let g = self.backward(&f)?;
        self.sgd(&g, lr, wd, scheme)?;
        Ok((f.loss, f.logits))
    }

    /// Mutable parameter tensors with their kinds, in a fixed order: per node (conv: weight, γ,
    /// β; classifier: weight, bias), then the α vector.
    pub fn params(&mut self) -> Vec<(&mut Vec<f32>, ParamKind)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            match node {
                Node::Conv { unit, .. } => {
                    let kind = match unit.kind {
                        crate::model::float::ConvKind::Dense => ParamKind::conv(unit.cin),
                        crate::model::float::ConvKind::Depthwise => ParamKind::DepthwiseWeight,
                    };
                    out.push((&mut unit.weight, kind));
                    out.push((&mut unit.gamma, ParamKind::BnGamma));
                    out.push((&mut unit.beta, ParamKind::BnBeta));
                }
                Node::Classifier { fc, .. } => {
                    out.push((&mut fc.weight, ParamKind::LinearWeight));
                    out.push((&mut fc.bias, ParamKind::Bias));
                }
                _ => {}
            }
        }
        out.push((&mut self.alphas, ParamKind::Alpha));
        out
    }

    /// One SGD step (Nesterov momentum 0.9) with learning rate `lr` and weight decay `wd`
    /// applied per the scheme.
    pub fn sgd(
        &mut self,
        grads: &Grads,
        lr: f32,
        wd: f32,
        scheme: WeightDecayScheme,
    ) -> Result<()> {
        let first = self.momentum.is_empty();
        let mut momentum = std::mem::take(&mut self.momentum);
        let params = self.params();
        if grads.len() != params.len() {
            return Err(Error::shape(
                "sgd",
                format!(
                    "{} gradients for {} parameter tensors",
                    grads.len(),
                    params.len()
                ),
            ));
        }
        if first {
            momentum = params.iter().map(|(p, _)| vec![0.0; p.len()]).collect();
        }
        for (((p, kind), g), buf) in params.into_iter().zip(grads).zip(momentum.iter_mut()) {
            sgd_step(
                p,
                g,
                buf,
                first,
                &SgdHyper::f8net(lr, scheme.decay(kind, wd)),
            )?;
        }
        self.momentum = momentum;
        self.step += 1;
        Ok(())
    }
}

/// The error of a non-finite loss at (1-based) `step`, before any update (CPU and GPU steps).
pub fn non_finite_loss(loss: f32, step: u64) -> Error {
    Error::range(
        "train",
        format!(
            "loss is {loss} at step {step}; stopping (the last checkpoint is the last good state)"
        ),
    )
}

fn add(a: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(p, q)| if relu { (p + q).max(0.0) } else { p + q })
        .collect()
}

fn activate(mut y: Vec<f32>, act: Activation) -> Vec<f32> {
    if act == Activation::Relu {
        y.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    y
}

/// The gradient through a ReLU (`relu`) whose output was `y`: zero where `y ≤ 0`.
fn relu_mask(mut dy: Vec<f32>, y: &[f32], relu: bool) -> Vec<f32> {
    if relu {
        dy.iter_mut()
            .zip(y)
            .filter(|(_, y)| **y <= 0.0)
            .for_each(|(g, _)| *g = 0.0);
    }
    dy
}

fn add_into(acc: &mut [f32], v: &[f32]) {
    acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
}
