//! An [`Arch`] as a `FloatModel`: parameters either from torchvision-named tensors
//! (`Arch::float_from_tensors`, PyTorch layouts: conv OIHW, linear `[n, k]`) or from the seeded
//! F8NET.md §6 initialization (`Arch::init_tensors`, `Arch::to_float_model`): conv weights
//! Kaiming-normal `N(0, sqrt(2/(k²·C_out)))` (depthwise too, as the official code), BN γ = 1,
//! β = 0, running mean 0 and variance 1, linear weight `N(0, 0.01)` and bias 0.
//!
//! BN calibration (`Arch::to_float_model_calibrated`, the official code's `bn_calib`): each BN's
//! running mean and variance become the statistics of its conv's output on calibration images,
//! layer by layer (with γ = 1, β = 0: what the network computes in training mode at step 0).
//! Without it the folded identity BNs leave the init's fan-out scaling in place, and random deep
//! nets shrink their activations toward zero (MobileNet-V2's logits come out near 1e-8).
//!
//! Lowering: each conv takes the BN that follows it (folded, eps 1e-5: `w·γ/√(var+eps)`,
//! `β − μ·γ/√(var+eps)`) and the ReLU/ReLU6 after that; a ReLU after an add becomes the add's
//! activation. A BN or activation anywhere else, or a tensor left over in the map, is an error.

use super::{Arch, Op};
use crate::error::{Error, Result};
use crate::model::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode};
use crate::model::st::{self, F32Tensors};
use crate::reference::Window;

/// PyTorch's BatchNorm epsilon.
pub const BN_EPS: f32 = 1e-5;

/// SplitMix64 with Box–Muller normals: a small, seeded, platform-independent generator.
struct Normal {
    state: u64,
}

impl Normal {
    fn new(seed: u64, name: &str) -> Normal {
        // FNV-1a of the name, so every tensor has its own stream whatever the layer order.
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Normal { state: seed ^ h }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn fill(&mut self, len: usize, std: f64) -> Vec<f32> {
        let mut v = Vec::with_capacity(len + 1);
        while v.len() < len {
            let (u1, u2) = (self.uniform(), self.uniform());
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let a = std::f64::consts::TAU * u2;
            v.push((r * a.cos()) as f32);
            v.push((r * a.sin()) as f32);
        }
        v.truncate(len);
        v
    }
}

impl Arch {
    /// The F8NET.md §6 initialization as torchvision-named tensors (parameters and BN buffers).
    pub fn init_tensors(&self, seed: u64) -> F32Tensors {
        let mut t = F32Tensors::new();
        let mut put = |name: String, shape: Vec<usize>, v: Vec<f32>| {
            t.insert(name, (shape, v));
        };
        for l in &self.layers {
            let n = |s: &str| format!("{}.{s}", l.name);
            match &l.op {
                Op::Conv(c) => {
                    let shape = c.weight_shape();
                    let len = shape.iter().product();
                    let std = (2.0 / (c.k * c.k * c.cout) as f64).sqrt();
                    put(
                        n("weight"),
                        shape,
                        Normal::new(seed, &n("weight")).fill(len, std),
                    );
                }
                Op::BatchNorm { c } => {
                    put(n("weight"), vec![*c], vec![1.0; *c]);
                    put(n("bias"), vec![*c], vec![0.0; *c]);
                    put(n("running_mean"), vec![*c], vec![0.0; *c]);
                    put(n("running_var"), vec![*c], vec![1.0; *c]);
                }
                Op::Linear { k, n: out } => {
                    let w = Normal::new(seed, &n("weight")).fill(k * out, 0.01);
                    put(n("weight"), vec![*out, *k], w);
                    put(n("bias"), vec![*out], vec![0.0; *out]);
                }
                _ => {}
            }
        }
        t
    }

    /// The float model with the seeded F8NET.md §6 initialization (for benchmarks and tests;
    /// the weights are random).
    pub fn to_float_model(&self, seed: u64) -> Result<FloatModel> {
        self.float_from_tensors(self.init_tensors(seed), &format!("{} init", self.name))
    }

    /// `to_float_model(seed)` with BN statistics from `calib` (`n` NHWC images; see the module
    /// docs). Every conv of an `Arch` has a BN, so every conv output is renormalized.
    pub fn to_float_model_calibrated(
        &self,
        seed: u64,
        calib: &[f32],
        n: usize,
    ) -> Result<FloatModel> {
        let mut m = self.to_float_model(seed)?;
        calibrate_bn(&mut m, calib, n)?;
        Ok(m)
    }

    /// The float model from torchvision-named tensors (every parameter and BN running
    /// statistic, exact shapes; `num_batches_tracked` is ignored, anything else left over is an
    /// error). `source` names the tensors' origin in errors.
    pub fn float_from_tensors(&self, mut t: F32Tensors, source: &str) -> Result<FloatModel> {
        let nt = self.layers.len() + 1;
        let mut readers = vec![0usize; nt];
        for l in &self.layers {
            for &i in &l.inputs {
                readers[i] += 1;
            }
        }
        // Float tensor of each arch tensor, and the float node that can absorb a BN/ReLU.
        let mut map = vec![0usize; nt];
        let mut nodes: Vec<FloatNode> = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let x = l.inputs.first().copied().unwrap_or(0);
            let bad = |what: &str| {
                Error::shape(
                    "arch",
                    format!("{} {}: {what} needs a conv before it", self.name, l.name),
                )
            };
            // The node producing `x` if it is the only reader's to modify.
            let fusable = |nodes: &mut Vec<FloatNode>| -> Option<usize> {
                let j = map[x].checked_sub(1)?;
                (readers[x] == 1 && map[x] == nodes.len()).then_some(j)
            };
            let new = match &l.op {
                Op::Conv(c) => {
                    let w = get(&mut t, source, &l.name, "weight", &c.weight_shape())?;
                    Some(FloatNode::Conv {
                        input: map[x],
                        conv: FloatConv {
                            name: l.name.clone(),
                            kind: c.kind,
                            cout: c.cout,
                            cin: c.cin,
                            kh: c.k,
                            kw: c.k,
                            window: c.window(),
                            weight: ohwi(&w, c.kind, c.cout, c.cin, c.k),
                            bias: vec![0.0; c.cout],
                            act: Activation::None,
                        },
                    })
                }
                Op::BatchNorm { c } => {
                    let g = get(&mut t, source, &l.name, "weight", &[*c])?;
                    let b = get(&mut t, source, &l.name, "bias", &[*c])?;
                    let m = get(&mut t, source, &l.name, "running_mean", &[*c])?;
                    let v = get(&mut t, source, &l.name, "running_var", &[*c])?;
                    t_ignore(&mut t, &l.name);
                    let j = fusable(&mut nodes).ok_or_else(|| bad("BN"))?;
                    match &mut nodes[j] {
                        FloatNode::Conv { conv, .. } if conv.act == Activation::None => {
                            fold_bn(conv, &g, &b, &m, &v)
                        }
                        _ => return Err(bad("BN")),
                    }
                    None
                }
                Op::Relu | Op::Relu6 => {
                    let a = if l.op == Op::Relu {
                        Activation::Relu
                    } else {
                        Activation::Relu6
                    };
                    let j = fusable(&mut nodes).ok_or_else(|| bad("activation"))?;
                    match &mut nodes[j] {
                        FloatNode::Conv { conv, .. } if conv.act == Activation::None => {
                            conv.act = a
                        }
                        FloatNode::Add { act, .. } if *act == Activation::None => *act = a,
                        _ => return Err(bad("activation")),
                    }
                    None
                }
                Op::Add => Some(FloatNode::Add {
                    a: map[x],
                    b: map[l.inputs.get(1).copied().unwrap_or(0)],
                    act: Activation::None,
                }),
                Op::MaxPool { k, stride, pad } => Some(FloatNode::MaxPool {
                    input: map[x],
                    window: Window::symmetric(*k, *stride, *pad),
                }),
                Op::GlobalAvgPool => Some(FloatNode::GlobalAvgPool { input: map[x] }),
                Op::Linear { k, n } => Some(FloatNode::Linear {
                    input: map[x],
                    name: l.name.clone(),
                    n: *n,
                    k: *k,
                    weight: get(&mut t, source, &l.name, "weight", &[*n, *k])?,
                    bias: get(&mut t, source, &l.name, "bias", &[*n])?,
                }),
            };
            map[i + 1] = match new {
                Some(node) => {
                    nodes.push(node);
                    nodes.len()
                }
                None => map[x],
            };
        }
        if !t.is_empty() {
            let mut extra: Vec<&String> = t.keys().collect();
            extra.sort();
            return Err(Error::file(
                source,
                format!(
                    "{} tensors that {} does not have: {extra:?}",
                    extra.len(),
                    self.name
                ),
            ));
        }
        let model = FloatModel {
            name: self.name.clone(),
            input_hw: self.config.input_hw,
            input_c: self.config.in_channels,
            nodes,
        };
        model.tensor_shapes()?;
        Ok(model)
    }
}

/// Run `node` alone on tensor `x` (its input, of per-image shape `hwc`).
fn run_alone(node: &FloatNode, x: &[f32], hwc: [usize; 3], n: usize) -> Result<Vec<f32>> {
    let mut node = node.clone();
    match &mut node {
        FloatNode::Conv { input, .. }
        | FloatNode::GlobalAvgPool { input }
        | FloatNode::MaxPool { input, .. }
        | FloatNode::Linear { input, .. } => *input = 0,
        FloatNode::Add { .. } => return Err(Error::shape("bn calibration", "add run alone")),
    }
    let m = FloatModel {
        name: "node".into(),
        input_hw: (hwc[0], hwc[1]),
        input_c: hwc[2],
        nodes: vec![node],
    };
    m.forward(x, n)
}

/// Renormalize every conv of `m` to zero mean and unit (biased) variance per channel on `x`,
/// in graph order, before its activation.
fn calibrate_bn(m: &mut FloatModel, x: &[f32], n: usize) -> Result<()> {
    let shapes = m.tensor_shapes()?;
    let [h, w, c] = shapes[0];
    if n == 0 || x.len() != n * h * w * c {
        return Err(Error::shape(
            "bn calibration",
            format!("{} values for {n} images of {h}x{w}x{c}", x.len()),
        ));
    }
    let mut t: Vec<Vec<f32>> = vec![x.to_vec()];
    for node in m.nodes.iter_mut() {
        let out = match node {
            FloatNode::Conv { input, conv } => {
                let act = conv.act;
                conv.act = Activation::None;
                let raw = FloatNode::Conv {
                    input: *input,
                    conv: conv.clone(),
                };
                let mut y = run_alone(&raw, &t[*input], shapes[*input], n)?;
                let cout = conv.cout;
                let count = (y.len() / cout).max(1) as f64;
                let (mut sum, mut sq) = (vec![0f64; cout], vec![0f64; cout]);
                for (j, &v) in y.iter().enumerate() {
                    sum[j % cout] += v as f64;
                    sq[j % cout] += v as f64 * v as f64;
                }
                let per = conv.weight.len() / cout;
                let mut norm = vec![(0f32, 1f32); cout];
                for o in 0..cout {
                    let mean = sum[o] / count;
                    let var = (sq[o] / count - mean * mean).max(0.0);
                    let s = (1.0 / (var + BN_EPS as f64).sqrt()) as f32;
                    conv.weight[o * per..(o + 1) * per]
                        .iter_mut()
                        .for_each(|w| *w *= s);
                    conv.bias[o] = (conv.bias[o] - mean as f32) * s;
                    norm[o] = (mean as f32, s);
                }
                conv.act = act;
                for (j, v) in y.iter_mut().enumerate() {
                    let (mean, s) = norm[j % cout];
                    *v = act.apply((*v - mean) * s);
                }
                y
            }
            FloatNode::Add { a, b, act } => t[*a]
                .iter()
                .zip(&t[*b])
                .map(|(p, q)| act.apply(p + q))
                .collect(),
            other => {
                let input = match other {
                    FloatNode::GlobalAvgPool { input }
                    | FloatNode::MaxPool { input, .. }
                    | FloatNode::Linear { input, .. } => *input,
                    _ => 0,
                };
                run_alone(other, &t[input], shapes[input], n)?
            }
        };
        t.push(out);
    }
    Ok(())
}

/// Remove tensor `{layer}.{suffix}` with shape `shape`.
fn get(
    t: &mut F32Tensors,
    source: &str,
    layer: &str,
    suffix: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    st::take(t, source, &format!("{layer}.{suffix}"), shape)
}

/// Drop PyTorch's BN step counter if present.
fn t_ignore(t: &mut F32Tensors, bn: &str) {
    t.remove(&format!("{bn}.num_batches_tracked"));
}

/// OIHW (`[cout][cin][k][k]`; depthwise `[c][1][k][k]`) → the float graph's layout (dense OHWI,
/// depthwise `[c][k][k]`, which is the same order).
pub(crate) fn ohwi(w: &[f32], kind: ConvKind, cout: usize, cin: usize, k: usize) -> Vec<f32> {
    if kind == ConvKind::Depthwise {
        return w.to_vec();
    }
    let mut out = vec![0.0f32; w.len()];
    let kk = k * k;
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..kk {
                out[(o * kk + t) * cin + i] = w[(o * cin + i) * kk + t];
            }
        }
    }
    out
}

fn fold_bn(conv: &mut FloatConv, g: &[f32], b: &[f32], m: &[f32], v: &[f32]) {
    let per = conv.weight.len() / conv.cout.max(1);
    for o in 0..conv.cout {
        let scale = g[o] / (v[o] + BN_EPS).sqrt();
        conv.weight[o * per..(o + 1) * per]
            .iter_mut()
            .for_each(|w| *w *= scale);
        conv.bias[o] = b[o] + (conv.bias[o] - m[o]) * scale;
    }
}
