//! Launcher of `shaders/fold.wgsl` (conv + BN; entry points in `conv.rs`) and
//! `shaders/fold_linear.wgsl` (scales, classifier, dα; here): F8Net's folding of batch norm and
//! the PACT scales into the weights for QAT on the GPU — the scales `s = 2^F·|α|/M` from α on the GPU, the conv + BN fold
//! (W̃, b̃, batch statistics of y0, running statistics), its backward (dW, dγ, dβ, the μ/σ terms,
//! the statistics' gradient e), the classifier's SAT fold and dL/dα. Spec:
//! `src/reference/fold.rs`.
//!
//! The conv + BN entry points are in `conv.rs`, re-exported here.
//!
//! Per-channel vectors are f32 blocks of `CP = 4·ceil(c/4)` values (padding 0): affine [γ | β]
//! and raw statistics [μ_r | v_r] (`GpuChannelPair`), state [μ | σ | v | b̃] (4·CP), terms
//! [dμ | dv | ds_in | ds_out] (conv, 4·CP) or [ds_in | ds_out] (classifier, 2·CP). Weights follow
//! `WeightLayout`. `scales` holds one f32 per network node plus a final 1 (`ScaleEntry`).

mod conv;

pub use conv::*;

use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};

/// Uniforms of every fold entry point (`Params` in fold_common.wgsl, same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FoldParams {
    pub c: u32,
    pub cp: u32,
    pub per: u32,
    pub arrangement: u32,
    pub node_in: u32,
    pub node_out: u32,
    pub alpha_in: u32,
    pub alpha_out: u32,
    pub count: u32,
    pub words: u32,
    pub c4: u32,
    pub off: u32,
    pub eps: f32,
    pub momentum: f32,
    pub ws: f32,
    pub nodes: u32,
}

/// Invocations per workgroup (`WG` in the shader).
const WG: usize = 64;
/// "No α" in the uniforms.
const NONE: u32 = u32::MAX;

/// Where a unit's weights sit in their buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// Channel c's `per` values at `c·per` (dense OHWI rows `[kh][kw][4·ceil(cin/4)]`, classifier
    /// rows `[4·ceil(k/4)]`).
    Rows { per: usize },
    /// Value j of channel c at `j·CP + c` (depthwise `[kh][kw][CP]`).
    Depthwise { taps: usize },
}

impl WeightLayout {
    pub(super) fn per(self) -> usize {
        match self {
            WeightLayout::Rows { per } => per,
            WeightLayout::Depthwise { taps } => taps,
        }
    }

    pub(super) fn code(self) -> u32 {
        match self {
            WeightLayout::Rows { .. } => 0,
            WeightLayout::Depthwise { .. } => 1,
        }
    }

    /// Values of a weight buffer of `c` channels (padded channels included).
    pub fn len(self, c: usize) -> usize {
        self.per() * cp(c)
    }
}

/// Per-channel block stride.
pub(super) fn cp(c: usize) -> usize {
    c.div_ceil(4) * 4
}

/// One entry of the scale table: how node i's scale is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScaleEntry {
    /// s = 1 (no quantized input, or the fixed 8-bit image).
    One,
    /// Fixed-point PACT: `s = 2^fl·|α[alpha]|/(2^(8 − signed) − 1)`.
    Pact {
        alpha: usize,
        fl: i32,
        signedness: Signedness,
    },
}

/// The table `fold_scales` reads: one vec4 per entry, then a final `One` (the "no scale" slot).
/// `alphas`: the number of clipping levels (every entry's α index must be below it).
pub fn encode_scales(entries: &[ScaleEntry], alphas: usize) -> Result<Vec<[u32; 4]>> {
    let mut out = Vec::with_capacity(entries.len() + 1);
    for e in entries.iter().chain([&ScaleEntry::One]) {
        out.push(match *e {
            ScaleEntry::One => [0, 0, 0, 0],
            ScaleEntry::Pact {
                alpha,
                fl,
                signedness,
            } => {
                if !(-126..=127).contains(&fl) || alpha >= alphas {
                    return Err(Error::range(
                        "fold_scales",
                        format!("FL {fl} or clipping level {alpha} of {alphas} out of range"),
                    ));
                }
                let levels: f32 = match signedness {
                    Signedness::Unsigned => 255.0,
                    Signedness::Signed => 127.0,
                };
                [
                    1,
                    to_u32("fold_scales", alpha)?,
                    (fl as f32).exp2().to_bits(),
                    levels.to_bits(),
                ]
            }
        });
    }
    Ok(out)
}

/// Which scales a unit reads: `scales[node_in]` = s_in, `scales[node_out]` = s_out (the final
/// slot for "none"), and the α each one's gradient goes to (None: no gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleRefs {
    pub node_in: usize,
    pub node_out: usize,
    pub alpha_in: Option<usize>,
    pub alpha_out: Option<usize>,
}

impl ScaleRefs {
    pub(super) fn check(&self, op: &'static str, scales: &GpuBuffer<f32>) -> Result<()> {
        if self.node_in >= scales.len() || self.node_out >= scales.len() {
            return Err(Error::shape(
                op,
                format!(
                    "scale slots {} and {} outside {} scales",
                    self.node_in,
                    self.node_out,
                    scales.len()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn params(&self, op: &'static str) -> Result<FoldParams> {
        let alpha = |a: Option<usize>| a.map_or(Ok(NONE), |a| to_u32(op, a));
        Ok(FoldParams {
            node_in: to_u32(op, self.node_in)?,
            node_out: to_u32(op, self.node_out)?,
            alpha_in: alpha(self.alpha_in)?,
            alpha_out: alpha(self.alpha_out)?,
            ..FoldParams::default()
        })
    }
}

pub(super) fn need(op: &'static str, what: &str, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(Error::shape(
            op,
            format!("{what} holds {len} values, expected {want}"),
        ));
    }
    Ok(())
}

pub(super) fn distinct(
    op: &'static str,
    outs: &[&GpuBuffer<f32>],
    ins: &[&GpuBuffer<f32>],
) -> Result<()> {
    for (i, o) in outs.iter().enumerate() {
        if ins
            .iter()
            .chain(&outs[i + 1..])
            .any(|b| std::ptr::eq(*o, *b))
        {
            return Err(Error::shape(op, "an output aliases another buffer"));
        }
    }
    Ok(())
}

pub(super) fn flat_grid(gpu: &Gpu, op: &'static str, words: usize) -> Result<[u32; 3]> {
    Ok(grid_1d(
        to_u32(op, words.div_ceil(WG))?,
        gpu.max_workgroups_per_dim(),
    ))
}

/// Scales of every node from α (on the GPU) and the table of `encode_scales`.
pub struct FoldScales<'a> {
    pub alpha: &'a GpuBuffer<f32>,
    pub table: &'a GpuBuffer<[u32; 4]>,
    pub scales: &'a GpuBuffer<f32>,
}

/// Record the scale computation into `enc`.
/// The table must come from `encode_scales` with `alpha.len()` clipping levels.
pub fn record_scales(gpu: &Gpu, enc: &mut Encoder, a: &FoldScales<'_>) -> Result<()> {
    const OP: &str = "fold_scales";
    need(OP, "scales", a.scales.len(), a.table.len())?;
    distinct(OP, &[a.scales], &[a.alpha])?;
    let p = FoldParams {
        nodes: to_u32(OP, a.table.len())?,
        ..FoldParams::default()
    };
    let binds = [a.alpha.bind(), a.table.bind(), a.scales.bind()];
    let groups = [to_u32(OP, a.table.len().div_ceil(WG))?, 1, 1];
    enc.dispatch(gpu, Kernel::FoldScales, &binds, &p, groups)
}

/// The classifier's folded weights `W_s = scales[node]·ws·W_q` (any layout, same length).
pub struct FoldLinear<'a> {
    pub w_q: &'a GpuBuffer<f32>,
    pub scales: &'a GpuBuffer<f32>,
    pub node: usize,
    pub ws: f32,
    pub w_s: &'a GpuBuffer<f32>,
}

/// Record the classifier fold (one dispatch) into `enc`.
pub fn record_linear(gpu: &Gpu, enc: &mut Encoder, a: &FoldLinear<'_>) -> Result<()> {
    const OP: &str = "fold_linear";
    need(OP, "w_s", a.w_s.len(), a.w_q.len())?;
    check_ws(OP, a.ws)?;
    let refs = single(a.node);
    refs.check(OP, a.scales)?;
    distinct(OP, &[a.w_s], &[a.w_q, a.scales])?;
    let p = FoldParams {
        words: to_u32(OP, a.w_q.len())?,
        ws: a.ws,
        ..refs.params(OP)?
    };
    let binds = [a.w_q.bind(), a.scales.bind(), a.w_s.bind()];
    let grid = flat_grid(gpu, OP, a.w_q.len())?;
    enc.dispatch(gpu, Kernel::FoldLinear, &binds, &p, grid)
}

fn check_ws(op: &'static str, ws: f32) -> Result<()> {
    if !ws.is_finite() {
        return Err(Error::range(op, format!("SAT factor {ws} is not finite")));
    }
    Ok(())
}

fn single(node: usize) -> ScaleRefs {
    ScaleRefs {
        node_in: node,
        node_out: node,
        alpha_in: None,
        alpha_out: None,
    }
}

/// The classifier fold's backward from `G` (`[rows][per]`, the classifier's weight layout):
/// `dw = scales[node]·ws·G` and `terms[row] = ws·Σ W_q·G` (terms `[2·CP]`, the second half
/// untouched).
pub struct FoldLinearBackward<'a> {
    pub g: &'a GpuBuffer<f32>,
    pub w_q: &'a GpuBuffer<f32>,
    pub rows: usize,
    pub per: usize,
    pub scales: &'a GpuBuffer<f32>,
    pub node: usize,
    pub ws: f32,
    pub dw: &'a GpuBuffer<f32>,
    pub terms: &'a GpuBuffer<f32>,
}

/// Record the classifier fold's backward (one dispatch) into `enc`.
pub fn record_linear_backward(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &FoldLinearBackward<'_>,
) -> Result<()> {
    const OP: &str = "fold_linear_backward";
    let wl = WeightLayout::Rows { per: a.per }.len(a.rows);
    if a.rows == 0 || a.per == 0 {
        return Err(Error::shape(OP, format!("{} rows of {}", a.rows, a.per)));
    }
    for (what, b) in [("G", a.g), ("W_q", a.w_q), ("dw", a.dw)] {
        need(OP, what, b.len(), wl)?;
    }
    need(OP, "terms", a.terms.len(), 2 * cp(a.rows))?;
    check_ws(OP, a.ws)?;
    let refs = single(a.node);
    refs.check(OP, a.scales)?;
    distinct(OP, &[a.dw, a.terms], &[a.g, a.w_q, a.scales])?;
    let p = FoldParams {
        c: to_u32(OP, a.rows)?,
        cp: to_u32(OP, cp(a.rows))?,
        per: to_u32(OP, a.per)?,
        ws: a.ws,
        ..refs.params(OP)?
    };
    let binds = [
        a.g.bind(),
        a.w_q.bind(),
        a.scales.bind(),
        a.dw.bind(),
        a.terms.bind(),
    ];
    enc.dispatch(gpu, Kernel::FoldLinearBackward, &binds, &p, [p.c, 1, 1])
}

/// `dα[alpha_in] += Σ ds_in·s_in/α`, then `dα[alpha_out] += Σ ds_out·s_out/α`, with
/// [ds_in | ds_out] the `2·CP` values of `terms` from `offset`.
pub struct FoldAlphaGrad<'a> {
    pub terms: &'a GpuBuffer<f32>,
    pub offset: usize,
    pub c: usize,
    pub scales: &'a GpuBuffer<f32>,
    pub alpha: &'a GpuBuffer<f32>,
    pub refs: ScaleRefs,
    pub dalpha: &'a GpuBuffer<f32>,
}

/// Record the α-gradient accumulation (one dispatch of one workgroup) into `enc`.
pub fn record_alpha_grad(gpu: &Gpu, enc: &mut Encoder, a: &FoldAlphaGrad<'_>) -> Result<()> {
    const OP: &str = "fold_alpha_grad";
    if a.c == 0 || a.offset + 2 * cp(a.c) > a.terms.len() {
        return Err(Error::shape(
            OP,
            format!(
                "{} terms from {} of {} values",
                2 * cp(a.c),
                a.offset,
                a.terms.len()
            ),
        ));
    }
    a.refs.check(OP, a.scales)?;
    need(OP, "dα", a.dalpha.len(), a.alpha.len())?;
    for i in [a.refs.alpha_in, a.refs.alpha_out].into_iter().flatten() {
        if i >= a.alpha.len() {
            return Err(Error::shape(
                OP,
                format!("α {i} of {} clipping levels", a.alpha.len()),
            ));
        }
    }
    distinct(OP, &[a.dalpha], &[a.terms, a.scales, a.alpha])?;
    let p = FoldParams {
        c: to_u32(OP, a.c)?,
        cp: to_u32(OP, cp(a.c))?,
        off: to_u32(OP, a.offset)?,
        ..a.refs.params(OP)?
    };
    let binds = [
        a.terms.bind(),
        a.scales.bind(),
        a.alpha.bind(),
        a.dalpha.bind(),
    ];
    enc.dispatch(gpu, Kernel::FoldAlphaGrad, &binds, &p, [1, 1, 1])
}
