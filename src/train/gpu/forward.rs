//! The forward of a GPU training step as a dataflow around the FL readbacks: every node is
//! recorded as soon as its inputs exist and its formats are known (a conv unit in two stages,
//! around σ(W̃)); when nothing can proceed, the pending statistics are read back at once.
//! Ends with the softmax cross-entropy (loss partials and dlogits).

use super::stats::{tensor_slot, Readback};
use super::step::{Batch, NodeBatch};
use super::{GpuNode, NodeFormats, StepCtx, StepReport};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu};
use crate::ops::activation::{self, ActivationForward, AddF32, GpuActivation};
use crate::ops::fold::ScaleRefs;
use crate::ops::loss::{self, SoftmaxCrossEntropy};
use crate::ops::sum_pool::{self, SumPool};
use crate::train::conv_bn::{InputQuant, Precision};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    Prepared,
    Done,
}

/// The α index of node j's scale.
pub(super) fn alpha_of(nodes: &[GpuNode], j: usize) -> Option<usize> {
    match nodes.get(j) {
        Some(GpuNode::Conv { alpha, .. } | GpuNode::Classifier { alpha, .. }) => Some(*alpha),
        _ => None,
    }
}

/// The scale slots of conv node i: s_in is its own scale, s_out the scale of its `next` node (the
/// final slot, 1, if none), each with the α its gradient goes to (none for the fixed image
/// input or without a next node). None for other nodes.
pub(super) fn unit_refs(nodes: &[GpuNode], i: usize) -> Option<ScaleRefs> {
    match nodes.get(i) {
        Some(GpuNode::Conv {
            unit, alpha, next, ..
        }) => Some(ScaleRefs {
            node_in: i,
            node_out: next.unwrap_or(nodes.len()),
            alpha_in: (unit.input != InputQuant::Fixed).then_some(*alpha),
            alpha_out: next.and_then(|j| alpha_of(nodes, j)),
        }),
        _ => None,
    }
}

/// Record σ of tensor t when a quantizing node reads it (fixed point).
fn request_tensor(
    gpu: &Gpu,
    enc: &mut Encoder,
    b: &Batch,
    rb: &mut Readback,
    t: usize,
) -> Result<()> {
    match &b.sites[t] {
        Some(site) => rb.request(gpu, enc, site, &b.tensors[t].data),
        None => Ok(()),
    }
}

/// The forward up to the loss: every node is recorded as soon as its inputs exist and its FLs
/// are known; when nothing can proceed, the pending statistics are read back (one readback).
pub(super) fn forward(
    nodes: &mut [GpuNode],
    b: &Batch,
    ctx: &StepCtx<'_>,
    rb: &mut Readback,
    report: &mut StepReport,
    mut enc: Encoder,
) -> Result<Encoder> {
    let gpu = ctx.gpu;
    let count = nodes.len();
    let fixed = ctx.precision == Precision::Fixed;
    let mut produced = vec![false; count + 1];
    produced[0] = true;
    request_tensor(gpu, &mut enc, b, rb, 0)?;
    let mut stage = vec![Stage::Waiting; count];
    let sigma = |rb: &Readback, t: usize| rb.std(tensor_slot(count, t));
    for node in nodes.iter() {
        if let (GpuNode::Classifier { fc, .. }, true) = (node, fixed) {
            fc.request_weight_stats(ctx, &mut enc, rb)?;
        }
    }
    while stage.iter().any(|s| *s != Stage::Done) {
        let mut progress = false;
        for i in 0..count {
            let refs = unit_refs(nodes, i);
            let nb = &b.nodes[i];
            let out = &b.tensors[i + 1];
            let done = match (&mut nodes[i], stage[i], nb) {
                (GpuNode::Conv { input, unit, .. }, Stage::Waiting, NodeBatch::Conv(ub))
                    if produced[*input] =>
                {
                    let x_std = match unit.input {
                        InputQuant::Quantized(_) if fixed => match sigma(rb, *input) {
                            Some(s) => Some(s),
                            None => continue,
                        },
                        _ => None,
                    };
                    let x = &b.tensors[*input];
                    let refs = refs.ok_or_else(|| Error::shape("gpu train", "no scale slots"))?;
                    let x_fl = unit.prepare(ctx, &mut enc, (x, ub), x_std, refs, rb)?;
                    report.formats[i] = Some(NodeFormats {
                        x_fl,
                        x_std,
                        ..NodeFormats::default()
                    });
                    stage[i] = Stage::Prepared;
                    false
                }
                (
                    GpuNode::Conv {
                        input, unit, act, ..
                    },
                    Stage::Prepared,
                    NodeBatch::Conv(ub),
                ) => {
                    if fixed && !unit.weight_stats_ready(rb) {
                        continue;
                    }
                    let x = &b.tensors[*input];
                    let x_fl = report.formats[i].as_ref().and_then(|f| f.x_fl);
                    let w = unit.finish(ctx, &mut enc, (x, ub, x_fl), (out, *act), rb)?;
                    if let Some(f) = report.formats[i].as_mut() {
                        (f.w_fl, f.w_std) = (w.fl, w.std);
                    }
                    true
                }
                (GpuNode::Add { a, b: b2, relu }, Stage::Waiting, NodeBatch::Add(sum))
                    if produced[*a] && produced[*b2] =>
                {
                    let (xa, xb) = (&b.tensors[*a], &b.tensors[*b2]);
                    match (relu, sum) {
                        (true, Some(sum)) => {
                            let add = AddF32 {
                                a: xa,
                                b: xb,
                                out: sum,
                            };
                            activation::record_add(gpu, &mut enc, &add)?;
                            let r = ActivationForward {
                                x: sum,
                                activation: GpuActivation::Relu,
                                out,
                            };
                            activation::record_forward(gpu, &mut enc, &r)?;
                        }
                        _ => {
                            let add = AddF32 { a: xa, b: xb, out };
                            activation::record_add(gpu, &mut enc, &add)?;
                        }
                    }
                    true
                }
                (GpuNode::Pool { input }, Stage::Waiting, _) if produced[*input] => {
                    let p = SumPool {
                        x: &b.tensors[*input],
                        y: out,
                    };
                    sum_pool::record(gpu, &mut enc, &p)?;
                    true
                }
                (GpuNode::Classifier { fc, .. }, Stage::Waiting, _) => {
                    let (w_slot, _) = fc.weight_slots();
                    if fixed && rb.std(w_slot).is_none() {
                        continue;
                    }
                    let w_fl = fc.quantize_weights(ctx, &mut enc, rb)?;
                    report.formats[i] = Some(NodeFormats {
                        w_fl: vec![w_fl],
                        w_std: rb.std(w_slot).into_iter().collect(),
                        ..NodeFormats::default()
                    });
                    stage[i] = Stage::Prepared;
                    false
                }
                (
                    GpuNode::Classifier { input, fc, .. },
                    Stage::Prepared,
                    NodeBatch::Classifier(cb),
                ) if produced[*input] => {
                    let x_std = sigma(rb, *input);
                    if (fixed && x_std.is_none()) || rb.std(fc.weight_slots().1).is_none() {
                        continue;
                    }
                    let x = &b.tensors[*input];
                    let x_fl = fc.forward(ctx, &mut enc, (x, cb, x_std), (i, out), rb)?;
                    if let Some(f) = report.formats[i].as_mut() {
                        (f.x_fl, f.x_std) = (Some(x_fl), x_std.filter(|_| fixed));
                    }
                    true
                }
                _ => continue,
            };
            progress = true;
            if done {
                stage[i] = Stage::Done;
                produced[i + 1] = true;
                request_tensor(gpu, &mut enc, b, rb, i + 1)?;
            }
        }
        if !progress && stage.iter().any(|s| *s != Stage::Done) {
            enc = rb.flush(gpu, enc)?;
        }
    }
    let l = SoftmaxCrossEntropy {
        logits: &b.tensors[count],
        labels: &b.labels,
        dlogits: &b.dlogits,
        partials: &b.partials,
    };
    loss::record(gpu, &mut enc, &l)?;
    Ok(enc)
}
