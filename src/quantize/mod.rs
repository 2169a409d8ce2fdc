//! `f8net quantize`: a float model (BN already folded into the effective weights) becomes an
//! F8Net integer model (F8NET.md §2–§4):
//!
//! - every tensor gets a *scale* `s` (1, or PACT's `2^8·α/255` on ReLU6 outputs with α = 6, §4.1):
//!   integer tensors hold `real / s`, so `W̃ = W · s_in / s_out` and `b̃ = b / s_out` carry the
//!   non-power-of-two factors inside the int8 weights and int32 biases;
//! - activation formats come from calibration inputs: signed unless the producer ends in a ReLU,
//!   FL by min-RMSE grid search or the σ rule (§3.2; here σ of the post-activation tensor);
//! - weight FL per layer (σ rule or grid search, 0..=7) or per output channel (grid search,
//!   0..=15 for the tiny folded weights of pretrained depthwise nets); still one shift per channel;
//! - tensors that feed a residual add, a pool's sum or the logits stay int32 (FL of their
//!   consumer's 8-bit format + 8); 8-bit consumers of int32 tensors get a `Requantize` node;
//! - the global average pool is a sum with `FL += round(log2(h·w))`; its `2^shift/(h·w)` factor
//!   goes into the scale, hence into the next layer's weights (§2.9);
//! - max pooling runs on 8-bit codes in its input's format (max commutes with the monotonic
//!   quantizer, so it is exact); when its output feeds a residual add it is widened to int32 by
//!   an identity depthwise 1×1 conv (weight code 1, FL 0, shift 0: a copy);
//! - a clamp-only node (identity depthwise 1×1 with ReLU/ReLU6) of an int32 stream is the
//!   8-bit consumer's `Requantize` with that clamp;
//! - optional bias correction: per output channel, the mean difference between the float and
//!   the integer pre-activation outputs on the calibration inputs is folded into the int32 bias.
//!
//! [`args`] holds the command's flags, [`options`] the schemes they select; [`from_checkpoint`] converts an f8net training
//! checkpoint (post-training quantization of an FP run) through `train::to_float`.

pub mod args;
mod bias_correction;
pub mod from_checkpoint;
mod options;

pub use options::{ActFl, BiasCorrection, Pact, QuantizeOptions, WeightFl};

use crate::error::{Error, Result};
use crate::fixed::{saturate_i32, FlRange, Format, Signedness};
use crate::fraclen::{fl_from_std, fl_grid_search, unbiased_std};
use crate::model::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode};
use crate::model::int::{IntLayer, IntModel, IntNode};
use crate::reference::{pool::avgpool_shift, residual, EpilogueSpec, OutputKind, Window};

/// At most this many calibration values per tensor go into an FL search (evenly strided).
const MAX_SAMPLES: usize = 400_000;

fn sample(values: &[f32], scale: f32) -> Vec<f32> {
    let step = values.len().div_ceil(MAX_SAMPLES).max(1);
    values.iter().step_by(step).map(|v| v / scale).collect()
}

fn act_format(values: &[f32], signedness: Signedness, scheme: ActFl) -> Format {
    let fl = match scheme {
        ActFl::Grid => fl_grid_search(values, signedness, FlRange::Paper),
        ActFl::Std => fl_from_std(unbiased_std(values), signedness),
    };
    Format { signedness, fl }
}

/// Quantize one layer's effective weights `[cout][per]`: codes and FL per channel.
fn quantize_weights(w: &[f32], cout: usize, scheme: WeightFl) -> (Vec<i32>, Vec<i32>) {
    let per = w.len() / cout.max(1);
    let fls: Vec<i32> = match scheme {
        WeightFl::PerChannelGrid => (0..cout)
            .map(|c| {
                fl_grid_search(
                    &w[c * per..(c + 1) * per],
                    Signedness::Signed,
                    FlRange::Wide,
                )
            })
            .collect(),
        WeightFl::PerLayerGrid => {
            vec![fl_grid_search(w, Signedness::Signed, FlRange::Paper); cout]
        }
        WeightFl::PerLayerStd => vec![fl_from_std(unbiased_std(w), Signedness::Signed); cout],
    };
    let codes = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            Format {
                signedness: Signedness::Signed,
                fl: fls[i / per],
            }
            .quantize(v)
        })
        .collect();
    (codes, fls)
}

/// What the converter decided for one float tensor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Integer values hold `real / scale`.
    pub(crate) scale: f32,
    /// The 8-bit format its 8-bit consumers read.
    pub(crate) fmt8: Format,
    /// Kept as an int32 stream (residual adds, pool sums, logits).
    pub(crate) int32: bool,
}

fn plan_tensors(
    float: &FloatModel,
    acts: &[Vec<f32>],
    input_format: Format,
    opts: &QuantizeOptions,
) -> Result<Vec<Plan>> {
    let shapes = float.tensor_shapes()?;
    let nt = acts.len();
    let mut int32 = vec![false; nt];
    int32[nt - 1] = true;
    for node in &float.nodes {
        if let FloatNode::Add { a, b, .. } = node {
            int32[*a] = true;
            int32[*b] = true;
        }
    }
    let pact_scale = 256.0 * 6.0 / 255.0;
    let mut plans = vec![Plan {
        scale: 1.0,
        fmt8: input_format,
        int32: false,
    }];
    for (i, node) in float.nodes.iter().enumerate() {
        let out = i + 1;
        let (scale, act) = match node {
            FloatNode::Conv { conv, .. } => {
                let s = if opts.pact == Pact::Relu6 && conv.act == Activation::Relu6 {
                    pact_scale
                } else {
                    1.0
                };
                (s, conv.act)
            }
            FloatNode::Add { a, b, act } => {
                if plans[*a].scale != plans[*b].scale {
                    return Err(Error::range(
                        "quantize",
                        format!("residual add of tensors {a} and {b} with different scales"),
                    ));
                }
                int32[out] = true;
                (plans[*a].scale, *act)
            }
            FloatNode::GlobalAvgPool { input } => {
                let [h, w, _] = shapes[*input];
                let shift = avgpool_shift(h * w);
                int32[out] = true;
                (
                    plans[*input].scale * (shift as f32).exp2() / (h * w) as f32,
                    Activation::None,
                )
            }
            FloatNode::Linear { .. } => (1.0, Activation::None),
            FloatNode::MaxPool { input, .. } => {
                plans.push(Plan {
                    int32: int32[out],
                    ..plans[*input]
                });
                continue;
            }
        };
        let signedness = match act {
            Activation::Relu | Activation::Relu6 => Signedness::Unsigned,
            Activation::None => Signedness::Signed,
        };
        let fmt8 = if scale == pact_scale {
            Format {
                signedness: Signedness::Unsigned,
                fl: 8,
            }
        } else {
            act_format(&sample(&acts[out], scale), signedness, opts.act_fl)
        };
        plans.push(Plan {
            scale,
            fmt8,
            int32: int32[out],
        });
    }
    Ok(plans)
}

/// A conv/linear layer's effective weights (`[cout][per]`, already scaled) and bias.
struct Effective<'a> {
    name: &'a str,
    w: Vec<f32>,
    b: Vec<f32>,
    cout: usize,
    act: Activation,
}

/// Integer layer reading codes in format `x` and writing tensor `out`.
fn int_layer(e: &Effective, x: Format, out: &Plan, opts: &QuantizeOptions) -> Result<IntLayer> {
    let (name, b, cout, act) = (e.name, &e.b, e.cout, e.act);
    let (codes, fls) = quantize_weights(&e.w, cout, opts.weight_fl);
    let (output, fl_out) = if out.int32 {
        (OutputKind::Int32, out.fmt8.fl + 8)
    } else {
        (OutputKind::Codes(out.fmt8.signedness), out.fmt8.fl)
    };
    let bias = (0..cout)
        .map(|c| {
            saturate_i32((b[c] as f64 * ((x.fl + fls[c]) as f64).exp2()).round_ties_even() as i64)
        })
        .collect();
    let shift: Vec<i32> = fls.iter().map(|fl| x.fl + fl - fl_out).collect();
    if let Some(s) = shift.iter().find(|s| !(-31..=31).contains(*s)) {
        return Err(Error::range(
            "quantize",
            format!("{name}: shift {s} out of range"),
        ));
    }
    let (clamp_lo, clamp_hi) = clamp_codes(act, out.scale, fl_out);
    let ep = EpilogueSpec {
        bias,
        shift,
        output,
        clamp_lo,
        clamp_hi,
    };
    Ok(IntLayer {
        name: name.to_string(),
        weight: codes,
        weight_fl: fls,
        ep,
    })
}

/// An activation as a clamp of integer values at `fl_out` holding `real / scale`.
fn clamp_codes(act: Activation, scale: f32, fl_out: i32) -> (i32, i32) {
    match act {
        Activation::None => (-i32::MAX, i32::MAX),
        Activation::Relu => (0, i32::MAX),
        Activation::Relu6 => (
            0,
            ((6.0 / scale as f64) * (fl_out as f64).exp2())
                .round_ties_even()
                .min(i32::MAX as f64) as i32,
        ),
    }
}

/// A depthwise 1×1 conv with unit weights and zero biases: only its activation does anything
/// (`train::to_float` writes these for the PACT clips of tensors that also have unclipped
/// readers).
fn is_identity_clamp(conv: &FloatConv) -> bool {
    conv.kind == ConvKind::Depthwise
        && conv.window == Window::symmetric(1, 1, 0)
        && conv.weight.iter().all(|&w| w == 1.0)
        && conv.bias.iter().all(|&b| b == 0.0)
}

/// An identity depthwise 1×1 conv from 8-bit codes (tensor `input`, `c` channels) to an int32
/// stream at the same FL: weight code 1 at FL 0, bias 0, shift 0.
fn widen_to_int32(input: usize, c: usize, name: String) -> IntNode {
    IntNode::Conv {
        input,
        kind: ConvKind::Depthwise,
        cout: c,
        cin: c,
        window: Window::symmetric(1, 1, 0),
        layer: IntLayer {
            name,
            weight: vec![1; c],
            weight_fl: vec![0; c],
            ep: EpilogueSpec {
                bias: vec![0; c],
                shift: vec![0; c],
                output: OutputKind::Int32,
                clamp_lo: -i32::MAX,
                clamp_hi: i32::MAX,
            },
        },
    }
}

/// Convert `float` with calibration inputs `calib` (NHWC floats of `n` images, already
/// normalized as the float model expects) whose codes are `input_format`.
pub fn quantize(
    float: &FloatModel,
    calib: &[f32],
    n: usize,
    input_format: Format,
    opts: &QuantizeOptions,
) -> Result<IntModel> {
    let acts = float.forward_all(calib, n)?;
    let plans = plan_tensors(float, &acts, input_format, opts)?;
    let mut nodes: Vec<IntNode> = Vec::new();
    // Int tensor holding each float tensor (its native form), and its 8-bit codes when made.
    let mut native = vec![0usize; acts.len()];
    let mut codes: Vec<Option<usize>> = vec![None; acts.len()];
    codes[0] = Some(0);
    // The int tensor with the 8-bit codes of float tensor `t`, adding a Requantize if needed.
    let ensure_codes = |t: usize,
                        nodes: &mut Vec<IntNode>,
                        codes: &mut [Option<usize>],
                        native: &[usize]|
     -> usize {
        if let Some(j) = codes[t] {
            return j;
        }
        nodes.push(IntNode::Requantize {
            input: native[t],
            out: plans[t].fmt8,
            clamp_lo: -i32::MAX,
            clamp_hi: i32::MAX,
        });
        codes[t] = Some(nodes.len());
        nodes.len()
    };
    for (i, node) in float.nodes.iter().enumerate() {
        let out = i + 1;
        let p = plans[out];
        let new = match node {
            // A clamp of an int32 stream into 8-bit codes is the consumer's requantization
            // with that clamp (exact: no extra layer, no extra rounding).
            FloatNode::Conv { input, conv }
                if is_identity_clamp(conv)
                    && plans[*input].int32
                    && !p.int32
                    && plans[*input].scale == p.scale =>
            {
                let (clamp_lo, clamp_hi) = clamp_codes(conv.act, p.scale, p.fmt8.fl);
                IntNode::Requantize {
                    input: native[*input],
                    out: p.fmt8,
                    clamp_lo,
                    clamp_hi,
                }
            }
            FloatNode::Conv { input, conv } => {
                let x = ensure_codes(*input, &mut nodes, &mut codes, &native);
                let ratio = plans[*input].scale / p.scale;
                let e = Effective {
                    name: &conv.name,
                    w: conv.weight.iter().map(|v| v * ratio).collect(),
                    b: conv.bias.iter().map(|v| v / p.scale).collect(),
                    cout: conv.cout,
                    act: conv.act,
                };
                let layer = int_layer(&e, plans[*input].fmt8, &p, opts)?;
                IntNode::Conv {
                    input: x,
                    kind: conv.kind,
                    cout: conv.cout,
                    cin: conv.cin,
                    window: conv.window,
                    layer,
                }
            }
            FloatNode::Linear {
                input,
                name,
                n: classes,
                k,
                weight,
                bias,
            } => {
                let x = ensure_codes(*input, &mut nodes, &mut codes, &native);
                let ratio = plans[*input].scale / p.scale;
                let e = Effective {
                    name,
                    w: weight.iter().map(|v| v * ratio).collect(),
                    b: bias.iter().map(|v| v / p.scale).collect(),
                    cout: *classes,
                    act: Activation::None,
                };
                let layer = int_layer(&e, plans[*input].fmt8, &p, opts)?;
                IntNode::Linear {
                    input: x,
                    n: *classes,
                    k: *k,
                    layer,
                }
            }
            FloatNode::Add { a, b, act } => {
                let act = match act {
                    Activation::None => residual::Activation::Identity,
                    Activation::Relu => residual::Activation::Relu,
                    Activation::Relu6 => {
                        return Err(Error::range(
                            "quantize",
                            "ReLU6 after a residual add is not supported",
                        ))
                    }
                };
                IntNode::Add {
                    a: native[*a],
                    b: native[*b],
                    act,
                }
            }
            FloatNode::GlobalAvgPool { input } => {
                let [h, w, _] = float.tensor_shapes()?[*input];
                IntNode::GlobalAvgPool {
                    input: native[*input],
                    shift: avgpool_shift(h * w),
                }
            }
            FloatNode::MaxPool { input, window } => {
                let x = ensure_codes(*input, &mut nodes, &mut codes, &native);
                let pool = IntNode::MaxPool {
                    input: x,
                    window: *window,
                };
                if p.int32 {
                    nodes.push(pool);
                    codes[out] = Some(nodes.len());
                    let c = float.tensor_shapes()?[out][2];
                    widen_to_int32(nodes.len(), c, format!("maxpool{i}.int32"))
                } else {
                    pool
                }
            }
        };
        nodes.push(new);
        native[out] = nodes.len();
        if !p.int32 {
            codes[out] = Some(nodes.len());
        }
    }
    let (h, w) = float.input_hw;
    let mut model = IntModel {
        name: format!("{}-f8", float.name),
        input_hw: (h, w),
        input_c: float.input_c,
        input_format,
        nodes,
        notes: format!(
            "quantized from {} with {} on {n} calibration inputs",
            float.name,
            opts.describe()
        ),
    };
    model.infer_tensors()?;
    if opts.bias_correction == BiasCorrection::On {
        bias_correction::correct_biases(&mut model, float, &acts, &plans, &native, n)?;
    }
    Ok(model)
}
