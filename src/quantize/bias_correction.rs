//! Bias correction for `f8net quantize`: per output channel, the mean difference between the
//! float layer and the integer layer (pre-activation, on the calibration inputs, with the
//! already-corrected earlier layers feeding it) is folded into the int32 bias.

use super::Plan;
use crate::error::Result;
use crate::fixed::saturate_i32;
use crate::model::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode};
use crate::model::int::{IntModel, IntNode, TensorInfo, TensorType};
use crate::model::run_cpu;
use crate::reference::OutputKind;

/// Bias correction, layer by layer in graph order: for each conv/linear, the integer model's
/// pre-activation output (from the already corrected earlier layers) is compared with the float
/// layer applied to the float input; the per-channel mean difference goes into the int32 bias.
pub(super) fn correct_biases(
    model: &mut IntModel,
    float: &FloatModel,
    acts: &[Vec<f32>],
    plans: &[Plan],
    native: &[usize],
    n: usize,
) -> Result<()> {
    let info = model.infer_tensors()?;
    let shapes = float.tensor_shapes()?;
    // Which float node produced each int node (for conv/linear only).
    let mut source = vec![None; model.nodes.len()];
    for (i, _) in float.nodes.iter().enumerate() {
        source[native[i + 1] - 1] = Some(i);
    }
    let input_codes: Vec<i32> = acts[0]
        .iter()
        .map(|&v| model.input_format.quantize(v))
        .collect();
    let mut t: Vec<Vec<i32>> = vec![input_codes];
    for j in 0..model.nodes.len() {
        // Conv/linear layers only (a float clamp node may have become a Requantize).
        let layer = matches!(
            model.nodes[j],
            IntNode::Conv { .. } | IntNode::Linear { .. }
        );
        if let Some(fi) = source[j].filter(|_| layer) {
            let fnode = &float.nodes[fi];
            let out_plan = plans[fi + 1];
            let (finput, fconv) = match fnode {
                FloatNode::Conv { input, conv } => (*input, conv.clone()),
                FloatNode::Linear {
                    input,
                    name,
                    n: classes,
                    k,
                    weight,
                    bias,
                } => {
                    let c = FloatConv {
                        name: name.clone(),
                        kind: ConvKind::Dense,
                        cout: *classes,
                        cin: *k,
                        kh: 1,
                        kw: 1,
                        window: crate::reference::Window::symmetric(1, 1, 0),
                        weight: weight.clone(),
                        bias: bias.clone(),
                        act: Activation::None,
                    };
                    (*input, c)
                }
                _ => {
                    t.push(run_cpu::run_node(model, &info, j, &t, n)?);
                    continue;
                }
            };
            // Float pre-activation output in the output's integer units (real / scale).
            let [h, w, c] = shapes[finput];
            let pre = FloatModel {
                name: "layer".into(),
                input_hw: (h, w),
                input_c: c,
                nodes: vec![FloatNode::Conv {
                    input: 0,
                    conv: FloatConv {
                        act: Activation::None,
                        ..fconv
                    },
                }],
            };
            let want = pre.forward(&acts[finput], n)?;
            // Integer pre-activation: the same layer with an int32 output and no clamp.
            let mut probe = model.clone();
            let probe_fl = match &mut probe.nodes[j] {
                IntNode::Conv { layer, .. } | IntNode::Linear { layer, .. } => {
                    let x_fl = input_fl(&info, &model.nodes[j]);
                    let fl_out = 16;
                    layer.ep.output = OutputKind::Int32;
                    layer.ep.clamp_lo = -i32::MAX;
                    layer.ep.clamp_hi = i32::MAX;
                    layer.ep.shift = layer.weight_fl.iter().map(|f| x_fl + f - fl_out).collect();
                    fl_out
                }
                _ => 0,
            };
            // run_node reads only the input's info, which the probe leaves unchanged.
            let got = run_cpu::run_node(&probe, &info, j, &t, n)?;
            let cout = info[j + 1].c;
            let mut diff = vec![0f64; cout];
            let per = want.len() / cout;
            for (i, (&g, &f)) in got.iter().zip(&want).enumerate() {
                diff[i % cout] +=
                    f as f64 / out_plan.scale as f64 - g as f64 / (probe_fl as f64).exp2();
            }
            if let IntNode::Conv { layer, .. } | IntNode::Linear { layer, .. } = &mut model.nodes[j]
            {
                let x_fl = input_fl(&info, &probe.nodes[j]);
                for (c, d) in diff.iter().enumerate() {
                    let delta = d / per as f64 * ((x_fl + layer.weight_fl[c]) as f64).exp2();
                    layer.ep.bias[c] =
                        saturate_i32(layer.ep.bias[c] as i64 + delta.round_ties_even() as i64);
                }
            }
        }
        t.push(run_cpu::run_node(model, &info, j, &t, n)?);
    }
    Ok(())
}

fn input_fl(info: &[TensorInfo], node: &IntNode) -> i32 {
    let input = match node {
        IntNode::Conv { input, .. } | IntNode::Linear { input, .. } => *input,
        _ => return 0,
    };
    match info[input].ty {
        TensorType::Codes(f) => f.fl,
        TensorType::Int32 { fl } => fl,
    }
}
