//! The integer (F8Net fixed-point) model: a topologically ordered graph whose tensors are either
//! 8-bit codes in a format or int32 streams with an FL (F8NET.md §2.10). Tensor 0 is the input;
//! node i produces tensor i + 1; the last node's tensor holds the logits (int32 at an FL).
//!
//! Every multiplication is 8-bit × 8-bit inside `Conv`/`Linear`; everything else is a shift,
//! an add, a max or a clamp. Weight layouts: dense OHWI `[cout][kh][kw][cin]`, depthwise
//! `[c][kh][kw]`, linear `[n][k]`, all int8 codes (−127..=127).

use crate::error::{Error, Result};
use crate::fixed::{check_shift, FlRange, Format, MIN_TRAINED_FL};
use crate::reference::{residual::Activation, EpilogueSpec, OutputKind, Window};

/// What a tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    /// 8-bit codes in a format.
    Codes(Format),
    /// An int32 stream (accumulators, residual sums, pooled sums, logits) at this FL.
    Int32 { fl: i32 },
}

pub use super::float::ConvKind;

/// A conv or linear layer's integer parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct IntLayer {
    pub name: String,
    /// int8 weight codes (layout per the module docs).
    pub weight: Vec<i32>,
    /// Weight FL per output channel (the shift already contains it).
    pub weight_fl: Vec<i32>,
    /// Bias at FL_x + FL_w[c], shift, output kind and clamp.
    pub ep: EpilogueSpec,
}

/// One operation of the integer graph.
#[derive(Clone, Debug, PartialEq)]
pub enum IntNode {
    Conv {
        input: usize,
        kind: ConvKind,
        cout: usize,
        cin: usize,
        window: Window,
        layer: IntLayer,
    },
    Linear {
        input: usize,
        n: usize,
        k: usize,
        layer: IntLayer,
    },
    /// int32 → codes in `out` (shift `fl_in − out.fl`), with an extra clamp in output units.
    Requantize {
        input: usize,
        out: Format,
        clamp_lo: i32,
        clamp_hi: i32,
    },
    /// Two int32 streams aligned to the larger FL, added with saturation.
    Add { a: usize, b: usize, act: Activation },
    /// Σ over h·w of codes or int32; the FL grows by `shift` (no division).
    GlobalAvgPool { input: usize, shift: i32 },
    /// Max over windows of codes (same format out).
    MaxPool { input: usize, window: Window },
}

/// The whole model.
#[derive(Clone, Debug, PartialEq)]
pub struct IntModel {
    pub name: String,
    /// Input height, width, channels and the input codes' format.
    pub input_hw: (usize, usize),
    pub input_c: usize,
    pub input_format: Format,
    pub nodes: Vec<IntNode>,
    /// Free-form notes kept in the file (the FL scheme, calibration set, ...).
    pub notes: String,
}

/// Shape (h, w, c) and type of a tensor, derived by walking the graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub ty: TensorType,
}

fn err(msg: String) -> Error {
    Error::shape("model", msg)
}

fn codes_of(info: TensorInfo, what: &str) -> Result<Format> {
    match info.ty {
        TensorType::Codes(f) => Ok(f),
        TensorType::Int32 { .. } => Err(err(format!("{what} needs 8-bit codes, got int32"))),
    }
}

fn int32_of(info: TensorInfo, what: &str) -> Result<i32> {
    match info.ty {
        TensorType::Int32 { fl } => Ok(fl),
        TensorType::Codes(_) => Err(err(format!("{what} needs an int32 stream, got codes"))),
    }
}

impl IntModel {
    /// Check the whole graph (indices, shapes, types, FL and shift ranges, code ranges) and
    /// return every tensor's shape and type. Loading calls this before any GPU work.
    pub fn infer_tensors(&self) -> Result<Vec<TensorInfo>> {
        let (h, w) = self.input_hw;
        Format::with_range(
            self.input_format.signedness,
            self.input_format.fl,
            FlRange::Paper,
        )?;
        let mut t = vec![TensorInfo {
            h,
            w,
            c: self.input_c,
            ty: TensorType::Codes(self.input_format),
        }];
        for (i, node) in self.nodes.iter().enumerate() {
            let get = |j: usize| -> Result<TensorInfo> {
                t.get(j)
                    .copied()
                    .ok_or_else(|| err(format!("node {i} reads tensor {j}, not yet computed")))
            };
            let out = match node {
                IntNode::Conv {
                    input,
                    kind,
                    cout,
                    cin,
                    window,
                    layer,
                } => {
                    let x = get(*input)?;
                    let f = codes_of(x, &layer.name)?;
                    if x.c != *cin {
                        return Err(err(format!(
                            "{}: input has {} channels, layer expects {cin}",
                            layer.name, x.c
                        )));
                    }
                    let per = match kind {
                        ConvKind::Dense => window.kh * window.kw * cin,
                        ConvKind::Depthwise if cout == cin => window.kh * window.kw,
                        ConvKind::Depthwise => {
                            return Err(err(format!(
                                "{}: depthwise with {cin} -> {cout} channels",
                                layer.name
                            )))
                        }
                    };
                    check_layer(layer, *cout, per)?;
                    let (oh, ow) = window.out_hw("model", x.h, x.w)?;
                    TensorInfo {
                        h: oh,
                        w: ow,
                        c: *cout,
                        ty: out_type(layer, f)?,
                    }
                }
                IntNode::Linear { input, n, k, layer } => {
                    let x = get(*input)?;
                    let f = codes_of(x, &layer.name)?;
                    if x.h * x.w * x.c != *k {
                        return Err(err(format!(
                            "{}: input has {} values, layer expects {k}",
                            layer.name,
                            x.h * x.w * x.c
                        )));
                    }
                    check_layer(layer, *n, *k)?;
                    TensorInfo {
                        h: 1,
                        w: 1,
                        c: *n,
                        ty: out_type(layer, f)?,
                    }
                }
                IntNode::Requantize {
                    input,
                    out,
                    clamp_lo,
                    clamp_hi,
                } => {
                    let x = get(*input)?;
                    let fl = int32_of(x, "requantize")?;
                    Format::with_range(out.signedness, out.fl, FlRange::Paper)?;
                    check_shift("model", fl - out.fl)?;
                    if clamp_lo > clamp_hi {
                        return Err(err(format!("node {i}: empty clamp {clamp_lo}..{clamp_hi}")));
                    }
                    TensorInfo {
                        ty: TensorType::Codes(*out),
                        ..x
                    }
                }
                IntNode::Add { a, b, .. } => {
                    let (x, y) = (get(*a)?, get(*b)?);
                    let (fa, fb) = (int32_of(x, "add")?, int32_of(y, "add")?);
                    if (x.h, x.w, x.c) != (y.h, y.w, y.c) {
                        return Err(err(format!(
                            "node {i}: add of {}x{}x{} and {}x{}x{}",
                            x.h, x.w, x.c, y.h, y.w, y.c
                        )));
                    }
                    check_shift("model", fa - fb)?;
                    TensorInfo {
                        ty: TensorType::Int32 { fl: fa.max(fb) },
                        ..x
                    }
                }
                IntNode::GlobalAvgPool { input, shift } => {
                    let x = get(*input)?;
                    let fl = match x.ty {
                        TensorType::Codes(f) => f.fl,
                        TensorType::Int32 { fl } => fl,
                    };
                    if !(0..=16).contains(shift) {
                        return Err(err(format!(
                            "node {i}: pool shift {shift} out of range 0..=16"
                        )));
                    }
                    TensorInfo {
                        h: 1,
                        w: 1,
                        c: x.c,
                        ty: TensorType::Int32 { fl: fl + shift },
                    }
                }
                IntNode::MaxPool { input, window } => {
                    let x = get(*input)?;
                    codes_of(x, "max pool")?;
                    let (oh, ow) = window.out_hw("model", x.h, x.w)?;
                    TensorInfo { h: oh, w: ow, ..x }
                }
            };
            t.push(out);
        }
        match t.last().map(|x| x.ty) {
            Some(TensorType::Int32 { .. }) if !self.nodes.is_empty() => Ok(t),
            _ => Err(err("the last node must produce int32 logits".into())),
        }
    }

    /// FL of the int32 logits.
    pub fn logits_fl(&self) -> Result<i32> {
        let t = self.infer_tensors()?;
        match t.last().map(|x| x.ty) {
            Some(TensorType::Int32 { fl }) => Ok(fl),
            _ => Err(err("no int32 logits".into())),
        }
    }
}

fn check_layer(layer: &IntLayer, cout: usize, per_channel: usize) -> Result<()> {
    if layer.weight.len() != cout * per_channel {
        return Err(err(format!(
            "{}: {} weight codes, expected {}",
            layer.name,
            layer.weight.len(),
            cout * per_channel
        )));
    }
    if let Some(q) = layer.weight.iter().find(|&&q| !(-127..=127).contains(&q)) {
        return Err(Error::range(
            "model",
            format!("{}: weight code {q} outside -127..=127", layer.name),
        ));
    }
    if layer.weight_fl.len() != cout {
        return Err(err(format!(
            "{}: {} weight FLs for {cout} channels",
            layer.name,
            layer.weight_fl.len()
        )));
    }
    if let Some(fl) = layer
        .weight_fl
        .iter()
        .find(|&&fl| !(MIN_TRAINED_FL..=15).contains(&fl))
    {
        return Err(Error::range(
            "model",
            format!(
                "{}: weight FL {fl} outside {MIN_TRAINED_FL}..=15",
                layer.name
            ),
        ));
    }
    layer.ep.validate("model", cout)
}

/// The tensor a conv/linear writes: its FL follows from `shift[c] = FL_x + FL_w[c] − FL_out`,
/// which must give the same FL_out for every channel.
fn out_type(layer: &IntLayer, input: Format) -> Result<TensorType> {
    let fl_out = input.fl + layer.weight_fl[0] - layer.ep.shift[0];
    for c in 0..layer.weight_fl.len() {
        if input.fl + layer.weight_fl[c] - layer.ep.shift[c] != fl_out {
            return Err(err(format!(
                "{}: channel {c} shift gives a different output FL",
                layer.name
            )));
        }
    }
    Ok(match layer.ep.output {
        OutputKind::Codes(s) => TensorType::Codes(Format::new(s, fl_out)?),
        OutputKind::Int32 => TensorType::Int32 { fl: fl_out },
    })
}
