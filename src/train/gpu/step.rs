//! One training step of `GpuNet`: the batch's buffers, the scale table, then the forward
//! (`forward.rs`), the loss readback, the backward (`backward.rs`) and SGD on every parameter —
//! the math of `Net::train_step`.

use super::classifier::ClassifierBatch;
use super::stats::{tensor_slot, Site};
use super::unit::UnitBatch;
use super::{GpuNet, GpuNode, Momentum, Scratch, StepCtx, StepReport};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::GpuBuffer;
use crate::ops::fold::{self, encode_scales, ScaleEntry};
use crate::ops::loss;
use crate::ops::optim::{self, SgdStep};
use crate::reference::optim::{ParamKind, SgdHyper, WeightDecayScheme};
use crate::tensor::{pad_channels, GpuF32Tensor, Shape};
use crate::train::conv_bn::{InputQuant, Precision};
use crate::train::net::non_finite_loss;

/// Buffers of one batch size.
pub(super) struct Batch {
    n: usize,
    pub tensors: Vec<GpuF32Tensor>,
    pub nodes: Vec<NodeBatch>,
    /// σ sites of the tensors a quantizing node reads (fixed point).
    pub sites: Vec<Option<Site>>,
    pub labels: GpuBuffer<u32>,
    pub dlogits: GpuF32Tensor,
    pub partials: GpuBuffer<f32>,
    /// Statistics of the logits: a NaN or ∞ stops the step as a NaN loss does.
    logits_site: Site,
}

pub(super) enum NodeBatch {
    Conv(UnitBatch),
    /// A residual add followed by ReLU keeps the sum before the ReLU.
    Add(Option<GpuF32Tensor>),
    Classifier(ClassifierBatch),
    None,
}

impl<'g> GpuNet<'g> {
    /// The shapes of every tensor for a batch of `n` (`Net::tensor_shapes`, taken at upload).
    fn shapes(&self, n: usize) -> Vec<Shape> {
        self.shapes.iter().map(|&s| Shape { n, ..s }).collect()
    }

    /// Allocate the buffers of a batch of `n` unless they exist.
    fn ensure_batch(&mut self, n: usize) -> Result<()> {
        if self.batch.as_ref().is_some_and(|b| b.n == n) {
            return Ok(());
        }
        self.batch = None;
        self.scratch = Scratch::default();
        let gpu = self.gpu;
        let shapes = self.shapes(n);
        let tensors = shapes
            .iter()
            .map(|&s| GpuF32Tensor::alloc_filled(gpu, s, 0.0))
            .collect::<Result<Vec<_>>>()?;
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut sites: Vec<Option<Site>> = (0..shapes.len()).map(|_| None).collect();
        let count = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            nodes.push(match node {
                GpuNode::Conv { input, unit, .. } => {
                    NodeBatch::Conv(unit.batch(gpu, shapes[*input], shapes[i + 1])?)
                }
                GpuNode::Add { relu: true, .. } => {
                    NodeBatch::Add(Some(GpuF32Tensor::alloc_filled(gpu, shapes[i + 1], 0.0)?))
                }
                GpuNode::Add { .. } => NodeBatch::Add(None),
                GpuNode::Pool { .. } => NodeBatch::None,
                GpuNode::Classifier { fc, .. } => NodeBatch::Classifier(fc.batch(gpu, n)?),
            });
            if let (Some(t), Precision::Fixed) = (self.quantizes_input(i), self.precision) {
                if sites[t].is_none() {
                    let s = shapes[t];
                    sites[t] = Some(Site::new(gpu, s.pixels(), s.c, tensor_slot(count, t))?);
                }
            }
        }
        let logits = shapes[count];
        self.batch = Some(Batch {
            n,
            tensors,
            nodes,
            sites,
            labels: gpu.alloc(n)?,
            dlogits: GpuF32Tensor::alloc_filled(gpu, logits, 0.0)?,
            partials: gpu.alloc(loss::partials_len(n))?,
            logits_site: Site::new(gpu, n, logits.c, tensor_slot(count, count))?,
        });
        Ok(())
    }

    /// The scale table of this step (running FLs as they are before the step, as `Net::forward`).
    fn scale_entries(&self) -> Vec<ScaleEntry> {
        self.nodes
            .iter()
            .map(|node| match node {
                GpuNode::Conv { unit, alpha, .. } => match unit.input {
                    InputQuant::Fixed => ScaleEntry::One,
                    InputQuant::Quantized(s) => ScaleEntry::Pact {
                        alpha: *alpha,
                        fl: unit.running_fl.current(s),
                        signedness: s,
                    },
                },
                GpuNode::Classifier { fc, alpha, .. } => ScaleEntry::Pact {
                    alpha: *alpha,
                    fl: fc.running_fl.current(Signedness::Unsigned),
                    signedness: Signedness::Unsigned,
                },
                _ => ScaleEntry::One,
            })
            .collect()
    }

    /// One training step (forward with fake quantization, loss, backward, SGD on every parameter
    /// including α) on a batch `x` (NHWC f32, pixel k as k/256) with `labels`. Returns the loss;
    /// a non-finite loss is an error naming the step, before any parameter is updated. Returns
    /// once the update is submitted (`wait` or `download` wait for it).
    pub fn train_step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        wd: f32,
        scheme: WeightDecayScheme,
    ) -> Result<f32> {
        let n = labels.len();
        let want = Shape { n, ..self.input }.len();
        if n == 0 || x.len() != want {
            return Err(Error::shape(
                "gpu train",
                format!("{} input values for {n} images of {}", x.len(), self.input),
            ));
        }
        self.ensure_batch(n)?;
        let gpu = self.gpu;
        let table = encode_scales(&self.scale_entries(), self.alpha.len())?;
        gpu.write(&self.table, &table)?;
        let GpuNet {
            nodes,
            batch,
            readback,
            report,
            scratch,
            ..
        } = self;
        let batch = batch
            .as_ref()
            .ok_or_else(|| Error::shape("gpu train", "no batch buffers"))?;
        gpu.write(&batch.tensors[0].data, &pad_channels(x, self.input.c))?;
        gpu.write(&batch.labels, labels)?;
        let ctx = StepCtx {
            gpu,
            precision: self.precision,
            scales: &self.scales,
            alpha: &self.alpha,
            dalpha: &self.dalpha,
        };
        readback.reset();
        *report = StepReport {
            formats: vec![None; nodes.len()],
            readbacks: 0,
        };
        let mut enc = gpu.encoder();
        let sc = fold::FoldScales {
            alpha: ctx.alpha,
            table: &self.table,
            scales: ctx.scales,
        };
        fold::record_scales(gpu, &mut enc, &sc)?;
        let mut enc = super::forward::forward(nodes, batch, &ctx, readback, report, enc)?;
        // The loss and whether the logits are finite (the GPU's softmax may turn a NaN logit into
        // a finite loss), in the last readback of the forward.
        let logits = &batch.tensors[nodes.len()];
        readback.request(gpu, &mut enc, &batch.logits_site, &logits.data)?;
        let loss = readback.finish(gpu, enc, &batch.partials, n)?;
        let loss = match readback.finite(batch.logits_site.slot()) {
            true => loss,
            false => f32::NAN,
        };
        report.readbacks = readback.flushes();
        if !loss.is_finite() {
            return Err(non_finite_loss(loss, self.step + 1));
        }
        let mut enc = gpu.encoder();
        super::backward::backward(nodes, batch, &ctx, &mut enc, scratch)?;
        let first = self.momentum == Momentum::Empty;
        let hyper = (lr, wd, scheme);
        for node in nodes.iter() {
            match node {
                GpuNode::Conv { unit, .. } => unit.record_sgd(gpu, &mut enc, hyper, first)?,
                GpuNode::Classifier { fc, .. } => fc.record_sgd(gpu, &mut enc, hyper, first)?,
                _ => {}
            }
        }
        let sa = SgdStep {
            w: &self.alpha,
            grad: &self.dalpha,
            buf: &self.mom_alpha,
            first,
            hyper: SgdHyper::f8net(lr, scheme.decay(ParamKind::Alpha, wd)),
        };
        optim::record(gpu, &mut enc, &sa)?;
        gpu.write(&self.dalpha, &vec![0.0; self.dalpha.len()])?;
        gpu.submit(enc)?;
        self.momentum = Momentum::Set;
        self.step += 1;
        Ok(loss)
    }
}
