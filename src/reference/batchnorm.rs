//! CPU spec of batch normalization (`shaders/batchnorm.wgsl`, `src/ops/batchnorm.rs`), PyTorch and
//! F8Net semantics (F8NET.md §2.3).
//!
//! x, y, dy, dx: f32 NHWC `[n][h][w][c]` with logical channels; statistics over the `count =
//! n·h·w` pixels of each channel. Per-channel vectors (γ, β, mean, var) have `c` values.
//! - Training forward: batch mean μ and **biased** variance σ² (divide by count), then
//!   `y = γ·(x − μ)/√(σ² + eps) + β`. It returns μ and `inv_std = 1/√(σ² + eps)` for backward.
//! - Running statistics (PyTorch): `running = (1 − momentum)·running + momentum·batch`, with the
//!   batch mean and the **unbiased** batch variance (divide by count − 1), momentum 0.1.
//! - Eval forward: the same affine map with the running mean and variance.
//! - Backward through the batch statistics (x̂ = (x − μ)·inv_std, m = count):
//!   `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·inv_std·(dy − dβ/m − x̂·dγ/m)`.
//! - `batch_stats` alone gives the per-channel μ and σ² that F8Net folds into the conv weights.
//!
//! Sums run in f64 (statistics two-pass: mean, then Σ(x − μ)²); results are rounded to f32.

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// PyTorch's default epsilon (F8Net uses it).
pub const BN_EPS: f32 = 1e-5;
/// PyTorch's default momentum of the running statistics.
pub const BN_MOMENTUM: f32 = 0.1;

/// Per-channel batch statistics: mean and biased variance over `count` values each.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub count: usize,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// Running statistics (eval mode): mean and unbiased variance, PyTorch's initial 0 and 1.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// What the training forward returns: y and, for backward, the batch statistics and inv_std.
#[derive(Clone, Debug, PartialEq)]
pub struct BnTrainOutput {
    pub y: Vec<f32>,
    pub stats: BatchStats,
    pub inv_std: Vec<f32>,
}

/// Gradients of batch normalization in training mode.
#[derive(Clone, Debug, PartialEq)]
pub struct BnGrads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
}

fn check(op: &'static str, what: &str, len: usize, want: usize, shape: Shape) -> Result<()> {
    if len != want {
        return Err(Error::shape(
            op,
            format!("{what} has {len} values, expected {want} for {shape}"),
        ));
    }
    Ok(())
}

fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::range(
            op,
            format!("eps {eps} must be finite and > 0"),
        ));
    }
    Ok(())
}

/// `1/√(var + eps)` per channel.
pub fn inv_std(var: &[f32], eps: f32) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32)
        .collect()
}

/// Per-channel f64 sums of `f(pixel values)` over all pixels (vectorizable over channels).
fn channel_sums(x: &[f32], c: usize, mut f: impl FnMut(usize, f32) -> f64) -> Vec<f64> {
    let mut acc = vec![0f64; c];
    for px in x.chunks_exact(c) {
        for (ch, (a, &v)) in acc.iter_mut().zip(px).enumerate() {
            *a += f(ch, v);
        }
    }
    acc
}

fn stats_f64(x: &[f32], shape: Shape) -> (Vec<f64>, Vec<f64>) {
    let m = shape.pixels() as f64;
    let mean: Vec<f64> = channel_sums(x, shape.c, |_, v| v as f64)
        .into_iter()
        .map(|s| s / m)
        .collect();
    let m2 = channel_sums(x, shape.c, |ch, v| {
        let d = v as f64 - mean[ch];
        d * d
    });
    (mean, m2)
}

/// Per-channel batch mean and biased variance of x (F8Net's μ_B and σ_B² of §2.3).
pub fn batch_stats(x: &[f32], shape: Shape) -> Result<BatchStats> {
    check("batch_stats", "x", x.len(), shape.len(), shape)?;
    if shape.pixels() == 0 || shape.c == 0 {
        return Err(Error::shape("batch_stats", format!("empty input {shape}")));
    }
    let (mean, m2) = stats_f64(x, shape);
    let m = shape.pixels() as f64;
    Ok(BatchStats {
        count: shape.pixels(),
        mean: mean.iter().map(|&v| v as f32).collect(),
        var: m2.iter().map(|&v| (v / m) as f32).collect(),
    })
}

impl BatchStats {
    /// The unbiased variance `var·count/(count − 1)`; needs count ≥ 2 (as PyTorch does).
    pub fn unbiased_var(&self) -> Result<Vec<f32>> {
        if self.count < 2 {
            return Err(Error::shape(
                "batchnorm",
                format!(
                    "{} value per channel: training needs more than one",
                    self.count
                ),
            ));
        }
        let k = self.count as f64 / (self.count - 1) as f64;
        Ok(self.var.iter().map(|&v| (v as f64 * k) as f32).collect())
    }
}

impl RunningStats {
    /// PyTorch's initial running statistics: mean 0, variance 1.
    pub fn new(c: usize) -> RunningStats {
        RunningStats {
            mean: vec![0.0; c],
            var: vec![1.0; c],
        }
    }

    /// `running = (1 − momentum)·running + momentum·batch` (unbiased batch variance), in f32.
    pub fn update(&mut self, stats: &BatchStats, momentum: f32) -> Result<()> {
        let c = self.mean.len();
        if self.var.len() != c || stats.mean.len() != c || stats.var.len() != c {
            return Err(Error::shape(
                "batchnorm_running",
                format!(
                    "running stats have {c} and {} channels, batch stats {}",
                    self.var.len(),
                    stats.mean.len()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::range(
                "batchnorm_running",
                format!("momentum {momentum} outside 0..=1"),
            ));
        }
        let unbiased = stats.unbiased_var()?;
        let keep = 1.0 - momentum;
        for (r, &b) in self.mean.iter_mut().zip(&stats.mean) {
            *r = keep * *r + momentum * b;
        }
        for (r, &b) in self.var.iter_mut().zip(&unbiased) {
            *r = keep * *r + momentum * b;
        }
        Ok(())
    }
}

/// Every per-channel vector has `shape.c` values.
fn check_channels(op: &'static str, shape: Shape, vectors: &[(&str, &[f32])]) -> Result<()> {
    for (what, v) in vectors {
        if v.len() != shape.c {
            return Err(Error::shape(
                op,
                format!(
                    "{what} has {} values for the {} channels of {shape}",
                    v.len(),
                    shape.c
                ),
            ));
        }
    }
    Ok(())
}

/// `y = γ·(x − mean)·inv_std + β` per channel (f64 inside).
fn affine(x: &[f32], c: usize, gamma: &[f32], beta: &[f32], mean: &[f64], k: &[f64]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (yp, xp) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            let xh = (xp[ch] as f64 - mean[ch]) * k[ch];
            yp[ch] = (gamma[ch] as f64 * xh + beta[ch] as f64) as f32;
        }
    }
    y
}

/// Training forward with the batch statistics (needs more than one value per channel).
pub fn batchnorm_train(
    x: &[f32],
    shape: Shape,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<BnTrainOutput> {
    check("batchnorm_train", "x", x.len(), shape.len(), shape)?;
    check_channels("batchnorm_train", shape, &[("γ", gamma), ("β", beta)])?;
    check_eps("batchnorm_train", eps)?;
    if shape.pixels() < 2 || shape.c == 0 {
        return Err(Error::shape(
            "batchnorm_train",
            format!("{shape}: training needs more than one value per channel"),
        ));
    }
    let (mean, m2) = stats_f64(x, shape);
    let m = shape.pixels() as f64;
    let k: Vec<f64> = m2
        .iter()
        .map(|&s| 1.0 / (s / m + eps as f64).sqrt())
        .collect();
    Ok(BnTrainOutput {
        y: affine(x, shape.c, gamma, beta, &mean, &k),
        stats: BatchStats {
            count: shape.pixels(),
            mean: mean.iter().map(|&v| v as f32).collect(),
            var: m2.iter().map(|&v| (v / m) as f32).collect(),
        },
        inv_std: k.iter().map(|&v| v as f32).collect(),
    })
}

/// Eval forward with the running statistics.
pub fn batchnorm_eval(
    x: &[f32],
    shape: Shape,
    gamma: &[f32],
    beta: &[f32],
    running: &RunningStats,
    eps: f32,
) -> Result<Vec<f32>> {
    check("batchnorm_eval", "x", x.len(), shape.len(), shape)?;
    let vectors = [
        ("γ", gamma),
        ("β", beta),
        ("running mean", &running.mean[..]),
        ("running var", &running.var[..]),
    ];
    check_channels("batchnorm_eval", shape, &vectors)?;
    check_eps("batchnorm_eval", eps)?;
    let mean: Vec<f64> = running.mean.iter().map(|&v| v as f64).collect();
    let k: Vec<f64> = inv_std(&running.var, eps)
        .iter()
        .map(|&v| v as f64)
        .collect();
    Ok(affine(x, shape.c, gamma, beta, &mean, &k))
}

/// Backward of the training forward: dx, dγ, dβ from dy, x, γ and the saved mean and inv_std.
pub fn batchnorm_backward(
    dy: &[f32],
    x: &[f32],
    shape: Shape,
    gamma: &[f32],
    mean: &[f32],
    inv_std: &[f32],
) -> Result<BnGrads> {
    check("batchnorm_backward", "x", x.len(), shape.len(), shape)?;
    check("batchnorm_backward", "dy", dy.len(), shape.len(), shape)?;
    let vectors = [("γ", gamma), ("mean", mean), ("inv_std", inv_std)];
    check_channels("batchnorm_backward", shape, &vectors)?;
    let c = shape.c;
    if shape.pixels() == 0 || c == 0 {
        return Err(Error::shape("batchnorm_backward", format!("empty {shape}")));
    }
    let mut sum_dy = vec![0f64; c];
    let mut sum_dy_xh = vec![0f64; c];
    for (dp, xp) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            let xh = (xp[ch] as f64 - mean[ch] as f64) * inv_std[ch] as f64;
            sum_dy[ch] += dp[ch] as f64;
            sum_dy_xh[ch] += dp[ch] as f64 * xh;
        }
    }
    let m = shape.pixels() as f64;
    let mut dx = vec![0f32; x.len()];
    for ((gp, dp), xp) in dx
        .chunks_exact_mut(c)
        .zip(dy.chunks_exact(c))
        .zip(x.chunks_exact(c))
    {
        for ch in 0..c {
            let k = inv_std[ch] as f64;
            let xh = (xp[ch] as f64 - mean[ch] as f64) * k;
            let g = dp[ch] as f64 - sum_dy[ch] / m - xh * sum_dy_xh[ch] / m;
            gp[ch] = (gamma[ch] as f64 * k * g) as f32;
        }
    }
    Ok(BnGrads {
        dx,
        dgamma: sum_dy_xh.iter().map(|&v| v as f32).collect(),
        dbeta: sum_dy.iter().map(|&v| v as f32).collect(),
    })
}
