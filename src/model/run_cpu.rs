//! Runs an integer model on the CPU reference kernels (`src/reference/`): the specification the
//! GPU executor (`run_gpu.rs`) must equal bit for bit, and the backend without a GPU adapter.
//! Tensors are NHWC with logical channels, values as i32 (codes or int32 streams).

use super::int::{ConvKind, IntModel, IntNode, TensorInfo, TensorType};
use crate::error::{Error, Result};
use crate::reference::{conv, depthwise, gemm, pool, quantize, residual};
use crate::tensor::Shape;

fn shape_of(info: &TensorInfo, n: usize) -> Shape {
    Shape::new(n, info.h, info.w, info.c)
}

/// Every tensor of the model for a batch of `n` inputs (`input`: NHWC codes in the model's
/// input format). Element 0 is the input, the last the logits `[n][classes]`.
pub fn forward_all(model: &IntModel, input: &[i32], n: usize) -> Result<Vec<Vec<i32>>> {
    let info = model.infer_tensors()?;
    let want = n * info[0].h * info[0].w * info[0].c;
    if input.len() != want {
        return Err(Error::shape(
            "forward",
            format!(
                "input has {} codes, model needs {want} for a batch of {n}",
                input.len()
            ),
        ));
    }
    let fmt = model.input_format;
    if let Some(q) = input.iter().find(|&&q| fmt.saturate(q) != q) {
        return Err(Error::range(
            "forward",
            format!("input code {q} outside {fmt:?}"),
        ));
    }
    let mut t: Vec<Vec<i32>> = vec![input.to_vec()];
    for i in 0..model.nodes.len() {
        let out = run_node(model, &info, i, &t, n)?;
        t.push(out);
    }
    Ok(t)
}

/// Run node `i` given every earlier tensor (`t[0..=i]`) and the model's tensor infos.
pub fn run_node(
    model: &IntModel,
    info: &[TensorInfo],
    i: usize,
    t: &[Vec<i32>],
    n: usize,
) -> Result<Vec<i32>> {
    let fl_of = |j: usize| match info[j].ty {
        TensorType::Int32 { fl } => fl,
        TensorType::Codes(f) => f.fl,
    };
    let node = model
        .nodes
        .get(i)
        .ok_or_else(|| Error::shape("forward", format!("no node {i}")))?;
    Ok(match node {
        IntNode::Conv {
            input,
            kind,
            cout,
            window,
            layer,
            ..
        } => {
            let s = shape_of(&info[*input], n);
            match kind {
                ConvKind::Dense => {
                    conv::conv2d(&t[*input], s, &layer.weight, *cout, window, &layer.ep)?.0
                }
                ConvKind::Depthwise => {
                    depthwise::depthwise(&t[*input], s, &layer.weight, window, &layer.ep)?
                }
            }
        }
        IntNode::Linear {
            input,
            n: classes,
            k,
            layer,
        } => gemm::gemm(&t[*input], &layer.weight, n, *classes, *k, &layer.ep)?,
        IntNode::Requantize {
            input,
            out,
            clamp_lo,
            clamp_hi,
        } => quantize::requantize(
            &t[*input],
            fl_of(*input),
            *out,
            Some((*clamp_lo, *clamp_hi)),
        )?,
        IntNode::Add { a, b, act } => {
            residual::residual_add(&t[*a], fl_of(*a), &t[*b], fl_of(*b), *act)?.0
        }
        IntNode::GlobalAvgPool { input, .. } => {
            pool::global_avg_pool(&t[*input], shape_of(&info[*input], n))?
        }
        IntNode::MaxPool { input, window } => {
            pool::max_pool(&t[*input], shape_of(&info[*input], n), window)?
        }
    })
}

/// The int32 logits `[n][classes]` of a batch.
pub fn forward(model: &IntModel, input: &[i32], n: usize) -> Result<Vec<i32>> {
    let mut all = forward_all(model, input, n)?;
    all.pop()
        .ok_or_else(|| Error::shape("forward", "model has no nodes"))
}
