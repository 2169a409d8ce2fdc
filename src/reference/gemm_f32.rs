//! CPU spec of the f32 GEMM / linear layer (`shaders/gemm_f32.wgsl`, `src/ops/gemm_f32.rs`), and
//! the activation clamp shared by every f32 conv/linear/depthwise kernel.
//!
//! x [m][k], w [n][k] (OHWI rows), bias [n], out [m][n] = act(x · wᵀ + bias).
//! Accumulation in f64; the result is rounded to f32 before the activation.

use crate::error::{Error, Result};

/// The fused activation of f32 kernels: a clamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    #[default]
    None,
    /// max(v, 0).
    Relu,
    /// min(max(v, 0), 6).
    Relu6,
}

impl Activation {
    /// Clamp bounds handed to the shaders. `None` uses ±f32::MAX rather than infinities (WGSL
    /// lets implementations assume no infinities).
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Activation::None => (-f32::MAX, f32::MAX),
            Activation::Relu => (0.0, f32::MAX),
            Activation::Relu6 => (0.0, 6.0),
        }
    }

    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }
}

/// `out[r][c] = act(Σ_k x[r][k] · w[c][k] + bias[c])`.
pub fn gemm_f32(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    act: Activation,
) -> Result<Vec<f32>> {
    if x.len() != m * k || w.len() != n * k || bias.len() != n {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "x has {} values for [{m}, {k}], w has {} for [{n}, {k}], bias has {} for {n}",
                x.len(),
                w.len(),
                bias.len()
            ),
        ));
    }
    let mut out = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            let acc: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                .sum();
            out[r * n + c] = act.apply((acc + bias[c] as f64) as f32);
        }
    }
    Ok(out)
}
