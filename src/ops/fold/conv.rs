//! The conv + BN entry points of `shaders/fold.wgsl` (see `ops::fold`): the forward fold
//! (W̃, b̃, the statistics of y0, the running statistics), its per-channel backward, the
//! statistics' gradient e and the weight gradient. Spec: `src/reference/fold.rs`.

use super::{cp, distinct, flat_grid, need, FoldParams, ScaleRefs, WeightLayout};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::ops::batchnorm::GpuChannelPair;
use crate::ops::conv_f32::check_tensor;
use crate::ops::gemm_f32::to_u32;
use crate::tensor::GpuF32Tensor;

/// The forward fold of a conv + BN unit with `c` output channels.
pub struct FoldConv<'a> {
    pub w: &'a GpuBuffer<f32>,
    pub layout: WeightLayout,
    pub affine: &'a GpuChannelPair,
    /// Batch statistics [μ_r | v_r] of the raw convolution over `count` pixels.
    pub raw: &'a GpuChannelPair,
    pub count: usize,
    pub scales: &'a GpuBuffer<f32>,
    pub refs: ScaleRefs,
    pub eps: f32,
    pub momentum: f32,
    pub w_eff: &'a GpuBuffer<f32>,
    /// `[CP]`.
    pub b_eff: &'a GpuBuffer<f32>,
    /// `[4·CP]`: μ, σ, v, b̃.
    pub state: &'a GpuBuffer<f32>,
    /// [mean | var], updated.
    pub running: &'a GpuChannelPair,
}

/// Record the forward fold (one dispatch) into `enc`.
pub fn record_conv(gpu: &Gpu, enc: &mut Encoder, a: &FoldConv<'_>) -> Result<()> {
    const OP: &str = "fold_conv";
    let c = a.affine.c;
    if c == 0 || a.raw.c != c || a.running.c != c || a.count == 0 {
        return Err(Error::shape(
            OP,
            format!(
                "{c} channels, statistics of {} and running of {} channels over {} pixels",
                a.raw.c, a.running.c, a.count
            ),
        ));
    }
    if !(a.eps.is_finite() && a.eps > 0.0 && (0.0..=1.0).contains(&a.momentum)) {
        return Err(Error::range(
            OP,
            format!("eps {} and momentum {}", a.eps, a.momentum),
        ));
    }
    let wl = a.layout.len(c);
    need(OP, "w", a.w.len(), wl)?;
    need(OP, "w_eff", a.w_eff.len(), wl)?;
    need(OP, "b_eff", a.b_eff.len(), cp(c))?;
    need(OP, "state", a.state.len(), 4 * cp(c))?;
    a.refs.check(OP, a.scales)?;
    let ins = [a.w, &a.affine.data, &a.raw.data, a.scales];
    distinct(OP, &[a.w_eff, a.b_eff, a.state, &a.running.data], &ins)?;
    let p = FoldParams {
        c: to_u32(OP, c)?,
        cp: to_u32(OP, cp(c))?,
        per: to_u32(OP, a.layout.per())?,
        arrangement: a.layout.code(),
        count: to_u32(OP, a.count)?,
        eps: a.eps,
        momentum: a.momentum,
        ..a.refs.params(OP)?
    };
    let binds = [
        a.w.bind(),
        a.affine.data.bind(),
        a.raw.data.bind(),
        a.scales.bind(),
        a.w_eff.bind(),
        a.b_eff.bind(),
        a.state.bind(),
        a.running.data.bind(),
    ];
    enc.dispatch(gpu, Kernel::FoldConv, &binds, &p, [p.c, 1, 1])
}

/// The per-channel backward of the fold: d_affine [dγ | dβ] and terms [dμ | dv | ds_in | ds_out]
/// from dW̃ (after the weight STE) and db̃.
pub struct FoldConvBackward<'a> {
    pub w: &'a GpuBuffer<f32>,
    pub layout: WeightLayout,
    pub affine: &'a GpuChannelPair,
    pub state: &'a GpuBuffer<f32>,
    pub scales: &'a GpuBuffer<f32>,
    pub refs: ScaleRefs,
    pub dw_eff: &'a GpuBuffer<f32>,
    pub db_eff: &'a GpuBuffer<f32>,
    pub d_affine: &'a GpuChannelPair,
    pub terms: &'a GpuBuffer<f32>,
}

/// Record the per-channel backward (one dispatch) into `enc`.
pub fn record_conv_backward(gpu: &Gpu, enc: &mut Encoder, a: &FoldConvBackward<'_>) -> Result<()> {
    const OP: &str = "fold_conv_backward";
    let c = a.affine.c;
    if c == 0 || a.d_affine.c != c {
        return Err(Error::shape(
            OP,
            format!("{c} channels, gradients of {}", a.d_affine.c),
        ));
    }
    let wl = a.layout.len(c);
    need(OP, "w", a.w.len(), wl)?;
    need(OP, "dW̃", a.dw_eff.len(), wl)?;
    need(OP, "db̃", a.db_eff.len(), cp(c))?;
    need(OP, "state", a.state.len(), 4 * cp(c))?;
    need(OP, "terms", a.terms.len(), 4 * cp(c))?;
    a.refs.check(OP, a.scales)?;
    let ins = [a.w, &a.affine.data, a.state, a.scales, a.dw_eff, a.db_eff];
    distinct(OP, &[&a.d_affine.data, a.terms], &ins)?;
    let p = FoldParams {
        c: to_u32(OP, c)?,
        cp: to_u32(OP, cp(c))?,
        per: to_u32(OP, a.layout.per())?,
        arrangement: a.layout.code(),
        ..a.refs.params(OP)?
    };
    let binds = [
        a.w.bind(),
        a.affine.data.bind(),
        a.state.bind(),
        a.scales.bind(),
        a.dw_eff.bind(),
        a.db_eff.bind(),
        a.d_affine.data.bind(),
        a.terms.bind(),
    ];
    enc.dispatch(gpu, Kernel::FoldConvBackward, &binds, &p, [p.c, 1, 1])
}

/// The statistics' gradient `e = s_in·dy0` over the raw first convolution's output y0r.
pub struct FoldConvBackwardStats<'a> {
    pub y0r: &'a GpuF32Tensor,
    pub state: &'a GpuBuffer<f32>,
    pub terms: &'a GpuBuffer<f32>,
    pub scales: &'a GpuBuffer<f32>,
    pub refs: ScaleRefs,
    pub e: &'a GpuF32Tensor,
}

/// Record the statistics' gradient (one dispatch) into `enc`.
pub fn record_conv_backward_stats(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &FoldConvBackwardStats<'_>,
) -> Result<()> {
    const OP: &str = "fold_conv_backward_stats";
    let s = a.y0r.shape;
    check_tensor(OP, "y0r", a.y0r)?;
    check_tensor(OP, "e", a.e)?;
    if a.e.shape != s || s.is_empty() {
        return Err(Error::shape(OP, format!("y0r is {s}, e is {}", a.e.shape)));
    }
    need(OP, "state", a.state.len(), 4 * s.c_padded())?;
    need(OP, "terms", a.terms.len(), 4 * s.c_padded())?;
    a.refs.check(OP, a.scales)?;
    distinct(OP, &[&a.e.data], &[&a.y0r.data, a.state, a.terms, a.scales])?;
    let words = s.pixels() * s.c4();
    let p = FoldParams {
        c: to_u32(OP, s.c)?,
        cp: to_u32(OP, s.c_padded())?,
        count: to_u32(OP, s.pixels())?,
        words: to_u32(OP, words)?,
        c4: to_u32(OP, s.c4())?,
        ..a.refs.params(OP)?
    };
    let binds = [
        a.y0r.data.bind(),
        a.state.bind(),
        a.terms.bind(),
        a.scales.bind(),
        a.e.data.bind(),
    ];
    let grid = flat_grid(gpu, OP, words)?;
    enc.dispatch(gpu, Kernel::FoldConvBackwardStats, &binds, &p, grid)
}

/// The weight gradient `dW = dW̃·(γ/σ)·s_in/s_out + dw_stats` (padded channels written 0).
pub struct FoldConvBackwardWeight<'a> {
    pub dw_eff: &'a GpuBuffer<f32>,
    pub dw_stats: &'a GpuBuffer<f32>,
    pub layout: WeightLayout,
    pub affine: &'a GpuChannelPair,
    pub state: &'a GpuBuffer<f32>,
    pub scales: &'a GpuBuffer<f32>,
    pub refs: ScaleRefs,
    pub dw: &'a GpuBuffer<f32>,
}

/// Record the weight gradient (one dispatch) into `enc`.
pub fn record_conv_backward_weight(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &FoldConvBackwardWeight<'_>,
) -> Result<()> {
    const OP: &str = "fold_conv_backward_weight";
    let c = a.affine.c;
    let wl = a.layout.len(c);
    for (what, b) in [("dW̃", a.dw_eff), ("dw_stats", a.dw_stats), ("dw", a.dw)] {
        need(OP, what, b.len(), wl)?;
    }
    need(OP, "state", a.state.len(), 4 * cp(c))?;
    a.refs.check(OP, a.scales)?;
    let ins = [a.dw_eff, a.dw_stats, &a.affine.data, a.state, a.scales];
    distinct(OP, &[a.dw], &ins)?;
    let p = FoldParams {
        c: to_u32(OP, c)?,
        cp: to_u32(OP, cp(c))?,
        per: to_u32(OP, a.layout.per())?,
        arrangement: a.layout.code(),
        words: to_u32(OP, wl)?,
        ..a.refs.params(OP)?
    };
    let binds = [
        a.dw_eff.bind(),
        a.dw_stats.bind(),
        a.affine.data.bind(),
        a.state.bind(),
        a.scales.bind(),
        a.dw.bind(),
    ];
    let grid = flat_grid(gpu, OP, wl)?;
    enc.dispatch(gpu, Kernel::FoldConvBackwardWeight, &binds, &p, grid)
}
