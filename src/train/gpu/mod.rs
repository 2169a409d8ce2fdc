//! The F8Net QAT training step recorded on the GPU: `GpuNet` holds a `train::net::Net`'s
//! parameters (W, γ, β, the classifier's W and b, α), BN running statistics and momentum in GPU
//! buffers and runs `Net::train_step`'s math — forward with fake quantization, softmax
//! cross-entropy, the full backward, Nesterov SGD on every parameter including α — with the
//! kernels of `src/ops/` (f32 conv/depthwise/gemm forward and backward, batch statistics, fake
//! quantization, `fold`, `sum_pool`, activation, loss, optim). `download` brings the state back
//! into a `Net` (checkpoints, export, evaluation).
//!
//! Tensors are NHWC f32 with channels padded to a multiple of 4 (`GpuF32Tensor`); tensor 0 is
//! the input, node i writes tensor i + 1, as in `Net`. The PACT scales `s = 2^F_run·|α|/M` are
//! computed on the GPU from α each step (`fold_scales`), so α never leaves the GPU.
//!
//! Host readbacks per step (`StepReport::readbacks`): the FLs need the σ of tensors the GPU has
//! just computed. In fixed point a unit's input FL needs σ(x), and its weight FL needs σ(W̃),
//! which depends on that input through the batch statistics of y0, so each unit on the
//! network's longest chain costs two readbacks of 8 floats per tensor (a per-channel weight
//! format reads one float per output channel instead of σ(W̃), in the same readback). The forward
//! is scheduled as a dataflow: everything whose FLs are known is recorded before the next
//! readback, so units that read the same tensor (a block's first conv and its shortcut) share
//! them, and σ(W) and σ(W_q) of the classifier ride along with earlier ones. The last readback
//! of the forward carries the loss and whether the logits are finite, before any update, so a
//! non-finite loss stops the step with the parameters untouched, as on the CPU. Measured: small
//! ResNet-20 39, small MobileNet-V2 105 (per-layer or per-channel weight formats alike); in float
//! (the FP baseline, fixed FLs) 2 (σ(W_q) for the classifier's SAT factor, then the loss). The
//! backward and SGD are one more submit, with no readback.

mod backward;
mod classifier;
mod forward;
mod stats;
mod step;
mod unit;
mod weights;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};
use crate::tensor::{GpuF32Tensor, Shape};
use crate::train::conv_bn::{InputQuant, Precision};
use crate::train::net::{Net, Node};
use crate::train::weight_format::WeightFormat;
use classifier::GpuClassifier;
use std::collections::HashMap;
use unit::GpuUnit;

/// The formats one quantizing node used in the last step, and the σ they came from (None or
/// empty in float mode, where the FLs are fixed, and for the fixed 8-bit image input).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFormats {
    pub x_fl: Option<i32>,
    /// Weight FL per output channel (all equal for a per-layer format; one for the classifier),
    /// as `Forward::formats`.
    pub w_fl: Vec<i32>,
    pub x_std: Option<f32>,
    /// σ of each row of W̃ for a per-channel format, else one σ (of W̃, or of the classifier's W).
    pub w_std: Vec<f32>,
}

/// What the last step did besides the loss.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepReport {
    /// Per node: the formats of a conv unit or the classifier (None for other nodes).
    pub formats: Vec<Option<NodeFormats>>,
    /// Host readbacks (statistics flushes plus the loss).
    pub readbacks: usize,
}

/// Whether the optimizer's momentum buffers hold a previous step (PyTorch creates them at the
/// first step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Momentum {
    Empty,
    Set,
}

/// One node on the GPU.
enum GpuNode {
    Conv {
        input: usize,
        alpha: usize,
        next: Option<usize>,
        act: crate::reference::residual::Activation,
        unit: Box<GpuUnit>,
    },
    Add {
        a: usize,
        b: usize,
        relu: bool,
    },
    Pool {
        input: usize,
    },
    Classifier {
        input: usize,
        alpha: usize,
        fc: Box<GpuClassifier>,
    },
}

/// What kernels of one step share: the device, the precision, and the scale and α buffers.
pub(super) struct StepCtx<'a> {
    pub gpu: &'a Gpu,
    pub precision: Precision,
    pub scales: &'a GpuBuffer<f32>,
    pub alpha: &'a GpuBuffer<f32>,
    pub dalpha: &'a GpuBuffer<f32>,
}

/// Reusable temporary tensors of the backward, by shape (every user overwrites them fully).
#[derive(Default)]
pub(super) struct Scratch {
    free: HashMap<Shape, Vec<GpuF32Tensor>>,
}

impl Scratch {
    pub fn take(&mut self, gpu: &Gpu, shape: Shape) -> Result<GpuF32Tensor> {
        match self.free.get_mut(&shape).and_then(|v| v.pop()) {
            Some(t) => Ok(t),
            None => GpuF32Tensor::alloc_filled(gpu, shape, 0.0),
        }
    }

    pub fn give(&mut self, t: GpuF32Tensor) {
        self.free.entry(t.shape).or_default().push(t);
    }
}

/// A training network whose state lives on the GPU.
pub struct GpuNet<'g> {
    gpu: &'g Gpu,
    input: Shape,
    /// Every tensor's shape for a batch of one (`Net::tensor_shapes`).
    shapes: Vec<Shape>,
    precision: Precision,
    nodes: Vec<GpuNode>,
    /// α, dL/dα and α's momentum: `[clipping levels]`.
    alpha: GpuBuffer<f32>,
    dalpha: GpuBuffer<f32>,
    mom_alpha: GpuBuffer<f32>,
    /// The scale table (`ops::fold::encode_scales`) and the scales: `[nodes + 1]`.
    table: GpuBuffer<[u32; 4]>,
    scales: GpuBuffer<f32>,
    momentum: Momentum,
    step: u64,
    batch: Option<step::Batch>,
    scratch: Scratch,
    readback: stats::Readback,
    report: StepReport,
}

fn unsupported(msg: impl Into<String>) -> Error {
    Error::shape("gpu train", msg)
}

/// Check the network's momentum buffers (empty, or one per parameter tensor in `Net::params`
/// order) against its parameters.
fn check_momentum(net: &Net) -> Result<()> {
    if net.momentum.is_empty() {
        return Ok(());
    }
    let mut lens = Vec::new();
    for node in &net.nodes {
        match node {
            Node::Conv { unit, .. } => {
                lens.extend([unit.weight.len(), unit.gamma.len(), unit.beta.len()])
            }
            Node::Classifier { fc, .. } => lens.extend([fc.weight.len(), fc.bias.len()]),
            _ => {}
        }
    }
    lens.push(net.alphas.len());
    let have: Vec<usize> = net.momentum.iter().map(|m| m.len()).collect();
    if lens != have {
        return Err(unsupported(format!(
            "momentum buffers of {have:?} values do not match the parameters' {lens:?}"
        )));
    }
    Ok(())
}

impl<'g> GpuNet<'g> {
    /// Upload `net` (parameters, BN running statistics, running FLs, α, momentum, step).
    pub fn new(gpu: &'g Gpu, net: &Net) -> Result<GpuNet<'g>> {
        check_momentum(net)?;
        let count = net.nodes.len();
        let last = net
            .nodes
            .iter()
            .rposition(|n| matches!(n, Node::Classifier { .. }));
        let classifiers = net
            .nodes
            .iter()
            .filter(|n| matches!(n, Node::Classifier { .. }))
            .count();
        if classifiers != 1 || last != Some(count.saturating_sub(1)) {
            return Err(unsupported(
                "the GPU step needs exactly one classifier, as the last node",
            ));
        }
        for (i, node) in net.nodes.iter().enumerate() {
            let (alpha, next) = match node {
                Node::Conv { alpha, next, .. } => (Some(*alpha), *next),
                Node::Classifier { alpha, .. } => (Some(*alpha), None),
                _ => (None, None),
            };
            if alpha.is_some_and(|a| a >= net.alphas.len()) || next.is_some_and(|j| j >= count) {
                return Err(unsupported(format!(
                    "node {i} names clipping level {alpha:?} of {} or next node {next:?} of {count}",
                    net.alphas.len()
                )));
            }
        }
        let mut moms = net.momentum.iter().map(|m| m.as_slice());
        let has_momentum = !net.momentum.is_empty();
        let mut nodes = Vec::with_capacity(count);
        // Floats of the readback's row region (per-channel weight statistics).
        let mut rows = 0;
        for (i, node) in net.nodes.iter().enumerate() {
            nodes.push(match node {
                Node::Conv {
                    input,
                    unit,
                    alpha,
                    next,
                    act,
                } => {
                    let m = match has_momentum {
                        true => Some([(); 3].map(|_| moms.next().unwrap_or(&[]))),
                        false => None,
                    };
                    let slots = (stats::weight_slot(i), rows);
                    if unit.weight_format == WeightFormat::PerChannel {
                        rows += unit.cout;
                    }
                    GpuNode::Conv {
                        input: *input,
                        alpha: *alpha,
                        next: *next,
                        act: *act,
                        unit: Box::new(GpuUnit::upload(gpu, unit, slots, m)?),
                    }
                }
                Node::Add { a, b, relu } => GpuNode::Add {
                    a: *a,
                    b: *b,
                    relu: *relu,
                },
                Node::GlobalAvgPool { input } => GpuNode::Pool { input: *input },
                Node::Classifier { input, fc, alpha } => {
                    let m = match has_momentum {
                        true => Some([(); 2].map(|_| moms.next().unwrap_or(&[]))),
                        false => None,
                    };
                    let slots = (stats::weight_slot(i), stats::wq_slot(count));
                    GpuNode::Classifier {
                        input: *input,
                        alpha: *alpha,
                        fc: Box::new(GpuClassifier::upload(gpu, fc, slots, m)?),
                    }
                }
            });
        }
        let alphas = net.alphas.len();
        if alphas == 0 {
            return Err(unsupported("a network without clipping levels"));
        }
        let mom_alpha = match moms.next() {
            Some(m) => gpu.upload(m)?,
            None => gpu.alloc(alphas)?,
        };
        Ok(GpuNet {
            gpu,
            input: net.input,
            shapes: net.tensor_shapes(1)?,
            precision: net.precision,
            nodes,
            alpha: gpu.upload(&net.alphas)?,
            dalpha: gpu.alloc(alphas)?,
            mom_alpha,
            table: gpu.alloc(count + 1)?,
            scales: gpu.alloc(count + 1)?,
            momentum: match has_momentum {
                true => Momentum::Set,
                false => Momentum::Empty,
            },
            step: net.step,
            batch: None,
            scratch: Scratch::default(),
            readback: stats::Readback::new(gpu, stats::tensor_slot(count, count + 1), rows)?,
            report: StepReport::default(),
        })
    }

    /// Training steps taken (as `Net::step`).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Formats and readbacks of the last step.
    pub fn last_step(&self) -> &StepReport {
        &self.report
    }

    /// The last step's logits `[n][classes]` (from its forward, before the update).
    pub fn logits(&self) -> Result<Vec<f32>> {
        let batch = self
            .batch
            .as_ref()
            .ok_or_else(|| unsupported("no step has run yet"))?;
        batch.tensors[self.nodes.len()].download(self.gpu)
    }

    /// Block until the submitted work (the last step's backward and update) is done.
    pub fn wait(&self) -> Result<()> {
        self.gpu.wait()
    }

    /// Copy the state back into `net`, which must be the network this was made from (or one of
    /// the same architecture): parameters, BN running statistics, running FLs, α, momentum and
    /// the step count. Waits for submitted work.
    pub fn download(&self, net: &mut Net) -> Result<()> {
        let gpu = self.gpu;
        if net.nodes.len() != self.nodes.len() || net.precision != self.precision {
            return Err(unsupported(
                "download into a network of another architecture",
            ));
        }
        let mut momentum = Vec::new();
        for (node, gpu_node) in net.nodes.iter_mut().zip(&self.nodes) {
            match (node, gpu_node) {
                (Node::Conv { unit, .. }, GpuNode::Conv { unit: g, .. })
                    if unit.weight.len() == g.host_weight_len() && unit.input == g.input =>
                {
                    g.download(gpu, unit)?;
                    momentum.extend(g.download_momentum(gpu)?);
                }
                (Node::Classifier { fc, .. }, GpuNode::Classifier { fc: g, .. })
                    if (fc.k, fc.classes) == (g.k, g.classes) =>
                {
                    g.download(gpu, fc)?;
                    momentum.extend(g.download_momentum(gpu)?);
                }
                (Node::Add { .. }, GpuNode::Add { .. })
                | (Node::GlobalAvgPool { .. }, GpuNode::Pool { .. }) => {}
                _ => {
                    return Err(unsupported(
                        "download into a network of another architecture",
                    ))
                }
            }
        }
        net.alphas = gpu.read(&self.alpha)?;
        momentum.push(gpu.read(&self.mom_alpha)?);
        net.momentum = match self.momentum {
            Momentum::Set => momentum,
            Momentum::Empty => Vec::new(),
        };
        net.step = self.step;
        Ok(())
    }

    /// Whether node i quantizes its input (so the tensor it reads needs σ in fixed point).
    fn quantizes_input(&self, i: usize) -> Option<usize> {
        match &self.nodes[i] {
            GpuNode::Conv { input, unit, .. } if unit.input != InputQuant::Fixed => Some(*input),
            GpuNode::Classifier { input, .. } => Some(*input),
            _ => None,
        }
    }
}
