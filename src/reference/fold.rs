//! CPU spec of F8Net's folding of batch norm and the PACT scales into the weights
//! (`shaders/fold.wgsl`, `shaders/fold_linear.wgsl`, `src/ops/fold/`), forward and backward
//! (F8NET.md §2.1, §2.3, §2.8, §4.1, §4.3). `train::conv_bn` and the GPU training network both compute with these formulas.
//!
//! Weights are rows of `per` values per output channel (OHWI `[cout][kh][kw][cin]`, depthwise
//! `[c][kh][kw]`); per-channel vectors have `c` values; y0 is NHWC with logical channels.
//!
//! Conv + BN unit, two-convolution folding. The unit's first convolution is taken without the
//! input scale, `y0r = conv(x_q, W)`, so `y0 = s_in·y0r` and its batch statistics follow from the
//! raw ones (`fold_stats`): `μ = s_in·μ_r`, `v = s_in²·v_r` (biased), `σ = √(v + eps)`.
//! Per channel, with `g = γ/σ` and `ρ = s_in/s_out` (`fold_forward`):
//! ```text
//! W̃ = g·W·ρ                 b̃ = (β − γ·μ/σ)/s_out
//! ```
//! Backward (`fold_backward`), given dW̃ (after the weight STE) and db̃ = Σ_pixels dout:
//! ```text
//! dg = Σ_j dW̃·W·ρ           dW = dW̃·g·ρ  (+ the statistics term, below)
//! dβ = db̃/s_out             dμ = −db̃·γ/(σ·s_out)
//! dσ = db̃·γ·μ/(σ²·s_out) − dg·γ/σ²,   dγ = −db̃·μ/(σ·s_out) + dg/σ,   dv = dσ/(2σ)
//! ds_in[c]  = (dμ·μ + 2·dv·v + dg·g)/s_in      (Σ_pixels dy0·y0/s_in in closed form, + ∂W̃/∂s_in)
//! ds_out[c] = −(db̃·b̃ + dg·g)/s_out
//! ```
//! The statistics term (`fold_stats_backward`): `dy0 = dμ/m + dv·2·(y0 − μ)/m` over the m pixels;
//! it is returned as `e = s_in·dy0`, so that the raw convolution's backward with e gives dW's
//! second term `Σ x_q·e` and the input gradient's second term `conv_backward_input(e, W)`.
//! dL/dα of a scale `s = 2^F·|α|/M` is `ds·s/α` (`alpha_grad`).
//!
//! Classifier (SAT rescale, §2.8): `W_s = a·W_q` with `a = s_fc·ws` (`fold_linear`); backward
//! from `G = Σ_rows dlogits ⊗ x_q` (`[classes][k]`): `dW_q = a·G`, and per class row
//! `ds_fc[row] = ws·Σ_k W_q·G` (`fold_linear_backward`).
//!
//! Sums run in f64; results are f32.

use super::batchnorm::BatchStats;
use crate::error::{Error, Result};

/// Batch statistics of `y0 = s_in·y0r` per channel: mean, biased variance and `√(var + eps)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub sigma: Vec<f32>,
}

/// The folded weights and bias of a conv + BN unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Folded {
    /// W̃, the layout of W.
    pub w_eff: Vec<f32>,
    /// b̃ per channel, in the output's units.
    pub b_eff: Vec<f32>,
}

/// Gradients of `fold_forward` (per channel except `dw`).
#[derive(Clone, Debug, PartialEq)]
pub struct FoldGrads {
    /// dW̃·g·ρ, the layout of W (the statistics term is added by the caller).
    pub dw: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    /// dL/dμ and dL/dv of the batch statistics of y0.
    pub dmean: Vec<f32>,
    pub dvar: Vec<f32>,
    /// Per-channel terms of dL/ds_in and dL/ds_out (the caller sums them).
    pub ds_in: Vec<f32>,
    pub ds_out: Vec<f32>,
}

fn check_len(op: &'static str, what: &str, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(Error::shape(
            op,
            format!("{what} has {len} values, expected {want}"),
        ));
    }
    Ok(())
}

fn check_scales(op: &'static str, scales: &[f32]) -> Result<()> {
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
        return Err(Error::range(
            op,
            format!("scale {s} must be finite and non-zero"),
        ));
    }
    Ok(())
}

/// Weights per channel of `w` for `c` channels.
fn per_channel(op: &'static str, w: usize, c: usize) -> Result<usize> {
    if c == 0 || w == 0 || w % c != 0 {
        return Err(Error::shape(
            op,
            format!("{w} weights for {c} output channels"),
        ));
    }
    Ok(w / c)
}

/// The statistics of `y0 = s_in·y0r` from the batch statistics of the raw convolution.
pub fn fold_stats(raw: &BatchStats, s_in: f32, eps: f32) -> Result<FoldStats> {
    check_scales("fold_stats", &[s_in])?;
    check_len("fold_stats", "var", raw.var.len(), raw.mean.len())?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::range("fold_stats", format!("eps {eps} must be > 0")));
    }
    let mean: Vec<f32> = raw.mean.iter().map(|m| s_in * m).collect();
    let var: Vec<f32> = raw.var.iter().map(|v| s_in * s_in * v).collect();
    let sigma = var.iter().map(|v| (v + eps).sqrt()).collect();
    Ok(FoldStats { mean, var, sigma })
}

/// PyTorch's running-statistics update with the batch statistics of y0 over `count` pixels:
/// `r ← (1 − momentum)·r + momentum·batch`, the variance unbiased (`·count/(count − 1)`; a
/// single pixel keeps the biased value).
pub fn update_running(
    running_mean: &mut [f32],
    running_var: &mut [f32],
    stats: &FoldStats,
    count: usize,
    momentum: f32,
) -> Result<()> {
    let c = stats.mean.len();
    check_len("fold_running", "running mean", running_mean.len(), c)?;
    check_len("fold_running", "running var", running_var.len(), c)?;
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::range(
            "fold_running",
            format!("momentum {momentum} outside 0..=1"),
        ));
    }
    let unbiased = if count > 1 {
        count as f32 / (count - 1) as f32
    } else {
        1.0
    };
    let keep = 1.0 - momentum;
    for ch in 0..c {
        running_mean[ch] = keep * running_mean[ch] + momentum * stats.mean[ch];
        running_var[ch] = keep * running_var[ch] + momentum * (stats.var[ch] * unbiased);
    }
    Ok(())
}

/// `W̃ = (γ/σ)·W·s_in/s_out` and `b̃ = (β − γ·μ/σ)/s_out` per output channel.
pub fn fold_forward(
    w: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &FoldStats,
    s_in: f32,
    s_out: f32,
) -> Result<Folded> {
    const OP: &str = "fold_forward";
    let c = gamma.len();
    let per = per_channel(OP, w.len(), c)?;
    for (what, v) in [("β", beta), ("mean", &stats.mean), ("σ", &stats.sigma)] {
        check_len(OP, what, v.len(), c)?;
    }
    check_scales(OP, &[s_in, s_out])?;
    let rho = s_in / s_out;
    let w_eff = w
        .iter()
        .enumerate()
        .map(|(i, w)| gamma[i / per] / stats.sigma[i / per] * w * rho)
        .collect();
    let b_eff = (0..c)
        .map(|ch| (beta[ch] - gamma[ch] * stats.mean[ch] / stats.sigma[ch]) / s_out)
        .collect();
    Ok(Folded { w_eff, b_eff })
}

/// What `fold_backward` reads besides the parameters: the unit's forward and the gradients of
/// its folded weights (after the weight STE) and bias.
pub struct FoldBackward<'a> {
    pub stats: &'a FoldStats,
    pub b_eff: &'a [f32],
    pub dw_eff: &'a [f32],
    pub db_eff: &'a [f32],
    pub s_in: f32,
    pub s_out: f32,
}

/// Backward of `fold_forward` (see the module docs).
pub fn fold_backward(w: &[f32], gamma: &[f32], b: &FoldBackward<'_>) -> Result<FoldGrads> {
    const OP: &str = "fold_backward";
    let c = gamma.len();
    let per = per_channel(OP, w.len(), c)?;
    check_len(OP, "dW̃", b.dw_eff.len(), w.len())?;
    for (what, v) in [
        ("b̃", b.b_eff),
        ("db̃", b.db_eff),
        ("mean", &b.stats.mean[..]),
        ("var", &b.stats.var[..]),
        ("σ", &b.stats.sigma[..]),
    ] {
        check_len(OP, what, v.len(), c)?;
    }
    check_scales(OP, &[b.s_in, b.s_out])?;
    let (s_in, s_out) = (b.s_in as f64, b.s_out as f64);
    let rho = b.s_in / b.s_out;
    let mut g = FoldGrads {
        dw: vec![0.0; w.len()],
        dgamma: vec![0.0; c],
        dbeta: vec![0.0; c],
        dmean: vec![0.0; c],
        dvar: vec![0.0; c],
        ds_in: vec![0.0; c],
        ds_out: vec![0.0; c],
    };
    for (ch, &gamma_c) in gamma.iter().enumerate() {
        let rows = ch * per..(ch + 1) * per;
        let gain = gamma_c / b.stats.sigma[ch];
        let dg: f64 = b.dw_eff[rows.clone()]
            .iter()
            .zip(&w[rows.clone()])
            .map(|(d, w)| *d as f64 * *w as f64 * rho as f64)
            .sum();
        for (dw, d) in g.dw[rows.clone()].iter_mut().zip(&b.dw_eff[rows]) {
            *dw = d * gain * rho;
        }
        let (sg, mu, v, ga, db) = (
            b.stats.sigma[ch] as f64,
            b.stats.mean[ch] as f64,
            b.stats.var[ch] as f64,
            gamma_c as f64,
            b.db_eff[ch] as f64,
        );
        let dmean = -db * ga / (sg * s_out);
        let dsigma = db * ga * mu / (sg * sg * s_out) - dg * ga / (sg * sg);
        let dvar = dsigma / (2.0 * sg);
        let dg_g = dg * ga / sg;
        g.dbeta[ch] = (db / s_out) as f32;
        g.dgamma[ch] = (-db * mu / (sg * s_out) + dg / sg) as f32;
        g.dmean[ch] = dmean as f32;
        g.dvar[ch] = dvar as f32;
        g.ds_in[ch] = ((dmean * mu + 2.0 * dvar * v + dg_g) / s_in) as f32;
        g.ds_out[ch] = (-(db * b.b_eff[ch] as f64 + dg_g) / s_out) as f32;
    }
    Ok(g)
}

/// The statistics term of the backward: `e = s_in·(dμ/m + dv·2·(s_in·y0r − μ)/m)` for the raw
/// first convolution's output `y0r` (NHWC, `c` channels, m pixels).
pub fn fold_stats_backward(
    y0r: &[f32],
    stats: &FoldStats,
    dmean: &[f32],
    dvar: &[f32],
    s_in: f32,
) -> Result<Vec<f32>> {
    const OP: &str = "fold_stats_backward";
    let c = stats.mean.len();
    check_len(OP, "dmean", dmean.len(), c)?;
    check_len(OP, "dvar", dvar.len(), c)?;
    check_scales(OP, &[s_in])?;
    if c == 0 || y0r.is_empty() || y0r.len() % c != 0 {
        return Err(Error::shape(
            OP,
            format!("{} values of y0 for {c} channels", y0r.len()),
        ));
    }
    let m = (y0r.len() / c) as f64;
    Ok(y0r
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let ch = i % c;
            let d = (s_in * y - stats.mean[ch]) as f64;
            (s_in as f64 * (dmean[ch] as f64 / m + dvar[ch] as f64 * 2.0 * d / m)) as f32
        })
        .collect())
}

/// The classifier's folded weights `W_s = a·W_q`, `a = s_fc·ws`.
pub fn fold_linear(w_q: &[f32], a: f32) -> Vec<f32> {
    w_q.iter().map(|w| a * w).collect()
}

/// Backward of `fold_linear` from `G = Σ_rows dlogits ⊗ x_q` (`[rows][k]`): `dW_q = a·G` (before
/// the weight STE) and per row `ws·Σ_k W_q·G`, the terms of dL/ds_fc.
pub fn fold_linear_backward(
    g: &[f32],
    w_q: &[f32],
    rows: usize,
    a: f32,
    ws: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "fold_linear_backward";
    let k = per_channel(OP, w_q.len(), rows)?;
    check_len(OP, "G", g.len(), w_q.len())?;
    let dw = g.iter().map(|v| a * v).collect();
    let ds = (0..rows)
        .map(|r| {
            let dot: f64 = g[r * k..(r + 1) * k]
                .iter()
                .zip(&w_q[r * k..(r + 1) * k])
                .map(|(p, q)| *p as f64 * *q as f64)
                .sum();
            (ws as f64 * dot) as f32
        })
        .collect();
    Ok((dw, ds))
}

/// dL/dα of a scale `s = 2^F·|α|/M` from dL/ds: `ds·s/α`.
pub fn alpha_grad(ds: f64, s: f32, alpha: f32) -> f64 {
    ds * (s / alpha) as f64
}
