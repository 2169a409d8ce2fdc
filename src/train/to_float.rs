//! A trained F8Net training network (`train::net::Net`) as a `model::float::FloatModel` that
//! computes what `Net::forward_eval` computes, so `f8net quantize` can convert an FP checkpoint
//! after training (post-training quantization, no fine-tuning).
//!
//! Units. Inside the net, tensors between units are divided by the next unit's PACT scale
//! (`Net::node_scale`); the float model holds `u_t · net tensor t + o_t` instead:
//! - real units (`u_t` = `s_out` of the unit that wrote it; 1 for the image) for tensors that no
//!   quantizer clips;
//! - a clipped tensor in the units that put its readers' clip on ReLU6's `[0, 6]` (the float
//!   `Activation` has no other clip): an unsigned quantizer's `[0, h]`, `h = 255/2^FL` in net
//!   units (α in real units), with `u = 6/h`; a signed quantizer's `[−h, h]` (`h = 127/2^FL`)
//!   with `u = 3/h` and offset `o = 3`, which its reader subtracts through its bias
//!   (`b − (o/u)·ΣW`; exact only for readers without padding, as MobileNet-V2's 1×1 convs);
//! - one unit per residual stream (tensors joined by adds: the clip unit of its first clipped
//!   member), the pool's input `u_in` and output `u_in·2^shift/hw` (the pool
//!   `Σ/2^round(log2(hw))` becomes the float mean; a tensor read by the pool alone takes the unit
//!   that puts the classifier's clip at 6).
//!
//! Per node (float layouts as `model::float`: NHWC, dense weights OHWI `[cout][kh][kw][cin]`,
//! depthwise `[c][kh][kw]`, linear `[classes][k]`):
//! - conv + BN unit: BN folded with the running statistics and the scales exactly as the net's
//!   eval does (`reference::fold`: `W̃ = γ/σ·W·s_in/s_out`, `b̃ = (β − γμ/σ)/s_out`, then the
//!   weight quantizer: in `Float` the clamp to ±127/128 of FL 7, in `Fixed` the rounding at the
//!   σ-rule FL); the float conv gets `W̃_q · u_out/u_in` and `(b̃ − (o_in/u_in)·ΣW̃_q)·u_out +
//!   o_out`, and ReLU6 when all its readers clip alike (else the net's own ReLU, if any);
//! - the clipping readers of a tensor whose producer cannot clip (a residual stream, also read
//!   by an add; the pooled features; an add output) read a clipped copy: a depthwise 1×1 conv
//!   with ReLU6, weight `u_clip/u_t` (1 where the units line up) and bias `o_clip` — for an
//!   unsigned clip with weight 1, `quantize` makes it the consumer's requantization with a
//!   clamp, no extra layer;
//! - clips of padded signed readers are left out, listed in
//!   [`FloatConversion::dropped_clips`] (none in the supported architectures);
//! - the classifier `logits = s_fc·ws·x_q·W_qᵀ + b` (W_q at FL 7 in `Float`) becomes a linear
//!   layer with `s_fc·ws·W_q/u_in` (and the offset term): the float logits are the training-time
//!   logits, `logit_scale = s_fc·ws` times those of `Net::forward_eval`, which drops that factor.
//!
//! In `Precision::Float` every reader of a stream has the same α and the float quantizers' FL 6,
//! so one unit fits a whole stream; in `Precision::Fixed` private FLs may differ by powers of
//! two, which the per-reader copies and weights absorb (the quantizers' rounding is not
//! modelled).

use super::conv_bn::{ConvBn, InputQuant, Precision};
use super::net::{Net, Node};
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::fraclen::{fl_from_std, unbiased_std};
use crate::model::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode};
use crate::reference::fake_quant::{fix_quant, fix_quant_floating};
use crate::reference::fold::fold_forward;
use crate::reference::pool::avgpool_shift;
use crate::reference::residual;
use crate::reference::Window;

const OP: &str = "to_float";

/// A quantizer clip the float model does not apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// The float tensor it applies to (index into the float model's tensors).
    pub tensor: usize,
    /// The unit or classifier whose input quantizer clips.
    pub reader: String,
    /// Bounds in the float tensor's units.
    pub lo: f32,
    pub hi: f32,
}

/// The float model and what the conversion changed or left out.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatConversion {
    pub model: FloatModel,
    /// Float logits = `logit_scale` · `Net::forward_eval` logits (the classifier's `s_fc·ws`).
    pub logit_scale: f32,
    /// Folded weights that the net's weight quantizer clamps (kept clamped in the float model).
    pub clamped_weights: usize,
    /// All folded conv and classifier weights.
    pub weights: usize,
    /// Input quantizer clips not applied (see the module docs).
    pub dropped_clips: Vec<Clip>,
}

/// A unit's folded, quantized weights `[cout][per]` (net units), folded bias, and how many
/// weights the quantizer clamped: `reference::fold` with the running statistics, as the net's
/// eval folds.
fn fold(
    unit: &ConvBn,
    s_in: f32,
    s_out: f32,
    precision: Precision,
    wq: WeightQuant,
) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let stats = unit.running_stats();
    let f = fold_forward(&unit.weight, &unit.gamma, &unit.beta, &stats, s_in, s_out)?;
    let (w_q, fl) = quantize_weights(&f.w_eff, precision, None)?;
    let n = clamped(&f.w_eff, fl);
    Ok(match wq {
        WeightQuant::AsNet => (w_q, f.b_eff, n),
        WeightQuant::Off => (f.w_eff, f.b_eff, n),
    })
}

/// The net's weight quantizer: FL 7 clamp without rounding (`Float`), or `fl` (default: the σ
/// rule) with rounding (`Fixed`). Returns the values and the FL.
fn quantize_weights(w: &[f32], precision: Precision, fl: Option<i32>) -> Result<(Vec<f32>, i32)> {
    let format = |fl| Format {
        signedness: Signedness::Signed,
        fl,
    };
    Ok(match precision {
        Precision::Float => (fix_quant_floating(w, format(7))?.values, 7),
        Precision::Fixed => {
            let fl = fl.unwrap_or_else(|| fl_from_std(unbiased_std(w), Signedness::Signed));
            (fix_quant(w, format(fl))?.values, fl)
        }
    })
}

/// How many of `w` lie outside the signed int8 range at `fl`.
fn clamped(w: &[f32], fl: i32) -> usize {
    let top = 127.0 / (fl as f32).exp2();
    w.iter().filter(|v| v.abs() > top).count()
}

/// A reader's input quantizer: its format (the clip is the code range at that FL) and name;
/// None for readers that do not quantize (adds, the pool, the image-input unit).
fn input_quant(net: &Net, i: usize) -> Option<(Format, String)> {
    let fl = |rfl: &crate::fraclen::RunningFl, s| match net.precision {
        Precision::Float => 6,
        Precision::Fixed => rfl.current(s),
    };
    match &net.nodes[i] {
        Node::Conv { unit, .. } => match unit.input {
            InputQuant::Quantized(s) => Some((
                Format {
                    signedness: s,
                    fl: fl(&unit.running_fl, s),
                },
                unit.name.clone(),
            )),
            InputQuant::Fixed => None,
        },
        Node::Classifier { fc, .. } => Some((
            Format {
                signedness: Signedness::Unsigned,
                fl: fl(&fc.running_fl, Signedness::Unsigned),
            },
            "classifier".into(),
        )),
        _ => None,
    }
}

/// A reader's input clip that the float model applies as a ReLU6: the code range of its
/// quantizer, `[0, h]` (unsigned) or `[−h, h]` (signed), `h = max_code/2^FL` in net units.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bound {
    signed: bool,
    h: f32,
}

impl Bound {
    /// The unit that puts the clip's width at 6: ReLU6's `[0, 6]` holds `unit·x + offset`.
    fn unit(self) -> f32 {
        if self.signed {
            3.0 / self.h
        } else {
            6.0 / self.h
        }
    }

    fn offset(self) -> f32 {
        if self.signed {
            3.0
        } else {
            0.0
        }
    }
}

/// The clip of node `i`'s input, when the float model can apply it: unsigned always; signed
/// only for readers without padding (the offset of a signed clip would pad with −α).
fn bound(net: &Net, i: usize) -> Option<Bound> {
    let (f, _) = input_quant(net, i)?;
    let padded = match &net.nodes[i] {
        Node::Conv { unit, .. } => {
            let w = unit.window;
            w.pad_top + w.pad_left + w.pad_bottom + w.pad_right > 0
        }
        _ => false,
    };
    let signed = f.signedness == Signedness::Signed;
    (!(signed && padded)).then(|| Bound {
        signed,
        h: f.max_code() as f32 / (f.fl as f32).exp2(),
    })
}

fn reads(node: &Node) -> Vec<usize> {
    match node {
        Node::Conv { input, .. }
        | Node::GlobalAvgPool { input }
        | Node::Classifier { input, .. } => vec![*input],
        Node::Add { a, b, .. } => vec![*a, *b],
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Per net tensor: the distinct clips of its readers, whether its producer applies them (a
/// conv whose readers all clip alike), and its unit and offset (`unit·x + offset`; the offset
/// is non-zero only for a signed clip on the producer).
struct Plan {
    bounds: Vec<Bound>,
    on_producer: bool,
    unit: f32,
    offset: f32,
}

fn plan(net: &Net, scales: &[f32], hw: &[usize], readers: &[Vec<usize>]) -> Result<Vec<Plan>> {
    let nt = net.nodes.len() + 1;
    let mut plans: Vec<Plan> = (0..nt)
        .map(|t| {
            let mut bounds: Vec<Bound> = Vec::new();
            for b in readers[t].iter().filter_map(|&r| bound(net, r)) {
                if !bounds.contains(&b) {
                    bounds.push(b);
                }
            }
            let all = readers[t].iter().all(|&r| bound(net, r).is_some());
            let conv = matches!(
                t.checked_sub(1).map(|i| &net.nodes[i]),
                Some(Node::Conv { .. })
            );
            let on_producer = conv && all && bounds.len() == 1;
            Plan {
                offset: if on_producer { bounds[0].offset() } else { 0.0 },
                on_producer,
                bounds,
                unit: f32::NAN,
            }
        })
        .collect();
    // Tensors joined by residual adds share one unit: the clip unit of the first member that is
    // clipped, else the first member's own.
    let mut parent: Vec<usize> = (0..nt).collect();
    let mut grouped = vec![false; nt];
    for (i, node) in net.nodes.iter().enumerate() {
        if let Node::Add { a, b, .. } = node {
            for t in [*a, *b] {
                let (r, s) = (find(&mut parent, t), find(&mut parent, i + 1));
                parent[s.max(r)] = s.min(r);
                grouped[t] = true;
            }
            grouped[i + 1] = true;
        }
    }
    let mut group_unit: Vec<Option<f32>> = vec![None; nt];
    for t in (0..nt).filter(|&t| grouped[t]) {
        let r = find(&mut parent, t);
        group_unit[r] = group_unit[r].or(plans[t].bounds.first().map(|b| b.unit()));
    }
    let shift = |t: usize| (avgpool_shift(hw[t]) as f32).exp2();
    plans[0].unit = 1.0;
    for (i, node) in net.nodes.iter().enumerate() {
        let t = i + 1;
        let root = find(&mut parent, t);
        // The clip of the pooled tensor when the pool alone reads this one.
        let pooled = match readers[t][..] {
            [r] if matches!(net.nodes[r], Node::GlobalAvgPool { .. }) => {
                plans[r + 1].bounds.first().copied()
            }
            _ => None,
        };
        let own = match node {
            Node::Conv { .. } if plans[t].on_producer => plans[t].bounds[0].unit(),
            Node::Conv { next, .. } => match pooled {
                // The unit that puts the pooled tensor's clip at 6.
                Some(b) => b.unit() * hw[t] as f32 / shift(t),
                None => next.map_or(1.0, |j| scales[j]),
            },
            Node::GlobalAvgPool { input } if !grouped[t] => {
                plans[*input].unit * shift(*input) / hw[*input] as f32
            }
            Node::GlobalAvgPool { .. } => {
                return Err(Error::shape(OP, "a pooled tensor is a residual operand"))
            }
            Node::Add { .. } | Node::Classifier { .. } => 1.0,
        };
        plans[t].unit = match (grouped[t], root) {
            (false, _) => own,
            (true, r) if r == t => group_unit[r].unwrap_or(own),
            (true, r) => plans[r].unit,
        };
        if !(plans[t].unit.is_finite() && plans[t].unit > 0.0) {
            return Err(Error::range(
                OP,
                format!("tensor {t} has scale {} (an α of 0?)", plans[t].unit),
            ));
        }
    }
    Ok(plans)
}

/// A depthwise 1×1 conv with ReLU6 that clips a tensor of unit `u` by `b`: weight
/// `b.unit()/u` (1 where the units line up), bias `b.offset()`.
fn clip_node(input: usize, c: usize, u: f32, b: Bound, name: String) -> FloatNode {
    FloatNode::Conv {
        input,
        conv: FloatConv {
            name,
            kind: ConvKind::Depthwise,
            cout: c,
            cin: c,
            kh: 1,
            kw: 1,
            window: Window::symmetric(1, 1, 0),
            weight: vec![b.unit() / u; c],
            bias: vec![b.offset(); c],
            act: Activation::Relu6,
        },
    }
}

/// Per output channel, `Σ w` of weights `[cout][per]`.
fn row_sums(w: &[f32], cout: usize) -> Vec<f32> {
    let per = w.len() / cout.max(1);
    (0..cout)
        .map(|c| {
            w[c * per..(c + 1) * per]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

/// The weights of the float model: as the net's weight quantizer leaves them (the model the
/// net evaluates), or the folded weights before it (to measure what its clamp changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightQuant {
    AsNet,
    Off,
}

/// The float model of `net` (see the module docs).
pub fn to_float(net: &Net, name: &str) -> Result<FloatConversion> {
    to_float_with(net, name, WeightQuant::AsNet)
}

/// `to_float` with the weight quantizer as `wq` says.
pub fn to_float_with(net: &Net, name: &str, wq: WeightQuant) -> Result<FloatConversion> {
    let shapes = net.tensor_shapes(1)?;
    let hw: Vec<usize> = shapes.iter().map(|s| s.h * s.w).collect();
    let scales: Vec<f32> = (0..net.nodes.len()).map(|i| net.node_scale(i)).collect();
    let nt = net.nodes.len() + 1;
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nt];
    for (i, node) in net.nodes.iter().enumerate() {
        for t in reads(node) {
            readers[t].push(i);
        }
    }
    let plans = plan(net, &scales, &hw, &readers)?;
    let mut nodes: Vec<FloatNode> = Vec::new();
    // Float tensor of each net tensor, and its clipped copies.
    let mut ft = vec![0usize; nt];
    let mut copies: Vec<Vec<(Bound, usize)>> = vec![Vec::new(); nt];
    let (mut clamped_weights, mut weights) = (0, 0);
    let mut dropped = Vec::new();
    let mut logit_scale = 1.0;
    for (i, node) in net.nodes.iter().enumerate() {
        let t_out = i + 1;
        // The float tensor node i reads for net tensor t, with its unit and offset; a clip the
        // float model cannot apply is recorded.
        let input = |t: usize, dropped: &mut Vec<Clip>| -> (usize, f32, f32) {
            if let Some(b) = bound(net, i) {
                if plans[t].on_producer {
                    return (ft[t], plans[t].unit, plans[t].offset);
                }
                if let Some(&(_, f)) = copies[t].iter().find(|(c, _)| *c == b) {
                    return (f, b.unit(), b.offset());
                }
            }
            if let Some((format, reader)) = input_quant(net, i) {
                let u = plans[t].unit / (format.fl as f32).exp2();
                dropped.push(Clip {
                    tensor: ft[t],
                    reader,
                    lo: u * format.min_code() as f32,
                    hi: u * format.max_code() as f32,
                });
            }
            (ft[t], plans[t].unit, plans[t].offset)
        };
        let (u_out, o_out) = (plans[t_out].unit, plans[t_out].offset);
        let new = match node {
            Node::Conv {
                input: t,
                unit: u,
                next,
                act,
                ..
            } => {
                let s_out = next.map_or(1.0, |j| scales[j]);
                let (w_q, b, n_clamped) = fold(u, scales[i], s_out, net.precision, wq)?;
                clamped_weights += n_clamped;
                weights += w_q.len();
                let (x, u_in, o_in) = input(*t, &mut dropped);
                let k = u_out / u_in;
                let sums = row_sums(&w_q, u.cout);
                let act = match act {
                    _ if plans[t_out].on_producer => Activation::Relu6,
                    residual::Activation::Relu => Activation::Relu,
                    residual::Activation::Identity => Activation::None,
                };
                FloatNode::Conv {
                    input: x,
                    conv: FloatConv {
                        name: u.name.clone(),
                        kind: u.kind,
                        cout: u.cout,
                        cin: u.cin,
                        kh: u.window.kh,
                        kw: u.window.kw,
                        window: u.window,
                        weight: w_q.iter().map(|w| w * k).collect(),
                        bias: (0..u.cout)
                            .map(|c| (b[c] - o_in / u_in * sums[c]) * u_out + o_out)
                            .collect(),
                        act,
                    },
                }
            }
            Node::Add { a, b, relu } => FloatNode::Add {
                a: ft[*a],
                b: ft[*b],
                act: if *relu {
                    Activation::Relu
                } else {
                    Activation::None
                },
            },
            Node::GlobalAvgPool { input: t } => FloatNode::GlobalAvgPool { input: ft[*t] },
            Node::Classifier { input: t, fc, .. } => {
                let wf = fc.weight_format(net.precision);
                let (w_q, _) = match wq {
                    WeightQuant::AsNet => quantize_weights(&fc.weight, net.precision, Some(wf.fl))?,
                    WeightQuant::Off => (fc.weight.clone(), wf.fl),
                };
                clamped_weights += clamped(&fc.weight, wf.fl);
                weights += w_q.len();
                logit_scale = scales[i] * fc.sat_scale(net.precision);
                let (x, u_in, o_in) = input(*t, &mut dropped);
                let sums = row_sums(&w_q, fc.classes);
                FloatNode::Linear {
                    input: x,
                    name: "classifier".into(),
                    n: fc.classes,
                    k: fc.k,
                    weight: w_q.iter().map(|w| w * logit_scale / u_in).collect(),
                    bias: (0..fc.classes)
                        .map(|c| fc.bias[c] - o_in / u_in * logit_scale * sums[c])
                        .collect(),
                }
            }
        };
        nodes.push(new);
        ft[t_out] = nodes.len();
        // Clipping readers of a tensor whose producer does not clip read a clipped copy.
        if !plans[t_out].on_producer {
            for (j, &b) in plans[t_out].bounds.iter().enumerate() {
                let c = shapes[t_out].c;
                let name = format!("node{i}.clip{j}");
                nodes.push(clip_node(ft[t_out], c, u_out, b, name));
                copies[t_out].push((b, nodes.len()));
            }
        }
    }
    let model = FloatModel {
        name: name.to_string(),
        input_hw: (net.input.h, net.input.w),
        input_c: net.input.c,
        nodes,
    };
    model.tensor_shapes()?;
    Ok(FloatConversion {
        model,
        logit_scale,
        clamped_weights,
        weights,
        dropped_clips: dropped,
    })
}
