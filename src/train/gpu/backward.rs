//! The backward of a GPU training step, nodes in reverse order from the loss's dlogits: the
//! gradient of a tensor read by several nodes is the sum of their contributions (the first is
//! kept, later ones added); temporaries come from and return to the `Scratch` pool.

use super::forward::unit_refs;
use super::step::{Batch, NodeBatch};
use super::unit::UnitBackward;
use super::{GpuNode, Scratch, StepCtx};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu};
use crate::ops::activation::{self, ActivationBackward, AddF32, GpuActivation};
use crate::ops::fold::ScaleRefs;
use crate::ops::sum_pool::{self, SumPool};
use crate::tensor::{GpuF32Tensor, Shape};

/// Add gradient `g` into the gradient of tensor t (the first contribution is kept as is).
fn contribute(
    gpu: &Gpu,
    enc: &mut Encoder,
    scratch: &mut Scratch,
    d: &mut [Option<GpuF32Tensor>],
    t: usize,
    g: GpuF32Tensor,
) -> Result<()> {
    d[t] = Some(match d[t].take() {
        None => g,
        Some(old) => {
            let sum = scratch.take(gpu, old.shape)?;
            activation::record_add(
                gpu,
                enc,
                &AddF32 {
                    a: &old,
                    b: &g,
                    out: &sum,
                },
            )?;
            scratch.give(old);
            scratch.give(g);
            sum
        }
    });
    Ok(())
}

/// The gradient of tensor t, or zeros if no consumer contributed one.
fn take_grad(
    gpu: &Gpu,
    d: &mut [Option<GpuF32Tensor>],
    t: usize,
    shape: Shape,
) -> Result<GpuF32Tensor> {
    match d[t].take() {
        Some(g) => Ok(g),
        None => GpuF32Tensor::alloc_filled(gpu, shape, 0.0),
    }
}

/// The backward in reverse node order, from the loss's dlogits.
pub(super) fn backward(
    nodes: &[GpuNode],
    b: &Batch,
    ctx: &StepCtx<'_>,
    enc: &mut Encoder,
    scratch: &mut Scratch,
) -> Result<()> {
    let gpu = ctx.gpu;
    let count = nodes.len();
    let mut d: Vec<Option<GpuF32Tensor>> = (0..=count).map(|_| None).collect();
    for i in (0..count).rev() {
        let out = &b.tensors[i + 1];
        match (&nodes[i], &b.nodes[i]) {
            (GpuNode::Classifier { input, alpha, fc }, NodeBatch::Classifier(cb)) => {
                let refs = ScaleRefs {
                    node_in: i,
                    node_out: count,
                    alpha_in: Some(*alpha),
                    alpha_out: None,
                };
                let dx = fc.backward(ctx, enc, (cb, &b.dlogits), refs, scratch)?;
                contribute(gpu, enc, scratch, &mut d, *input, dx)?;
            }
            (
                GpuNode::Conv {
                    input, act, unit, ..
                },
                NodeBatch::Conv(ub),
            ) => {
                let dy = take_grad(gpu, &mut d, i + 1, out.shape)?;
                let refs = unit_refs(nodes, i)
                    .ok_or_else(|| Error::shape("gpu train", "no scale slots"))?;
                let a = UnitBackward {
                    x: &b.tensors[*input],
                    out,
                    act: *act,
                    refs,
                    need_dx: *input != 0,
                };
                if let Some(dx) = unit.backward(ctx, enc, (ub, &a), dy, scratch)? {
                    contribute(gpu, enc, scratch, &mut d, *input, dx)?;
                }
            }
            (GpuNode::Add { a, b: b2, relu }, _) => {
                let dy = take_grad(gpu, &mut d, i + 1, out.shape)?;
                let g = match relu {
                    true => {
                        let t = scratch.take(gpu, out.shape)?;
                        let r = ActivationBackward {
                            dy: &dy,
                            x: out,
                            activation: GpuActivation::Relu,
                            dx: &t,
                            dalpha: None,
                            accumulate: false,
                        };
                        activation::record_backward(gpu, enc, &r)?;
                        scratch.give(dy);
                        t
                    }
                    false => dy,
                };
                let copy = scratch.take(gpu, out.shape)?;
                enc.copy(&g.data, &copy.data)?;
                contribute(gpu, enc, scratch, &mut d, *a, g)?;
                contribute(gpu, enc, scratch, &mut d, *b2, copy)?;
            }
            (GpuNode::Pool { input }, _) => {
                let dy = take_grad(gpu, &mut d, i + 1, out.shape)?;
                let dx = scratch.take(gpu, b.tensors[*input].shape)?;
                sum_pool::record_backward(gpu, enc, &SumPool { x: &dx, y: &dy })?;
                scratch.give(dy);
                contribute(gpu, enc, scratch, &mut d, *input, dx)?;
            }
            _ => {
                return Err(Error::shape(
                    "gpu train",
                    format!("node {i} has no batch buffers"),
                ))
            }
        }
    }
    d.into_iter().flatten().for_each(|t| scratch.give(t));
    Ok(())
}
