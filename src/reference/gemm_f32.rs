//! CPU spec and backend of the f32 GEMM / linear layer, forward and backward
//! (`shaders/gemm_f32.wgsl`, `src/ops/gemm_f32.rs`), and the activation clamp shared by every f32
//! conv/linear/depthwise kernel.
//!
//! x [m][k], w [n][k] (OHWI rows), bias [n], y [m][n] = act(x · wᵀ + bias);
//! backward: dx [m][k] = dy · w, dw [n][k] = dyᵀ · x, db [n] = Σ_m dy (f64).
//! Every product is one threaded `blas::sgemm` (f32 accumulation, fixed order).

use super::blas::{sgemm, Mat, MatMut};
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

/// Check slice lengths against the GEMM dimensions.
fn check(
    op: &'static str,
    dims: (usize, usize, usize),
    lens: &[(&str, usize, usize)],
) -> Result<()> {
    for &(what, got, want) in lens {
        if got != want {
            let (m, n, k) = dims;
            return Err(Error::shape(
                op,
                format!("{what} has {got} values, expected {want} for m={m} n={n} k={k}"),
            ));
        }
    }
    Ok(())
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
    let lens = [
        ("x", x.len(), m * k),
        ("w", w.len(), n * k),
        ("bias", bias.len(), n),
    ];
    check("gemm_f32", (m, n, k), &lens)?;
    let mut out = Vec::with_capacity(m * n);
    for _ in 0..m {
        out.extend_from_slice(bias);
    }
    let (a, b) = (Mat::row_major(x, m, k), Mat::row_major(w, n, k).t());
    sgemm(1.0, a, b, 1.0, MatMut::row_major(&mut out, m, n))?;
    if act != Activation::None {
        out.iter_mut().for_each(|v| *v = act.apply(*v));
    }
    Ok(out)
}

/// dL/dx = dy · w: dy [m][n], w [n][k] → dx [m][k].
pub fn gemm_f32_backward_input(
    dy: &[f32],
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let lens = [("dy", dy.len(), m * n), ("w", w.len(), n * k)];
    check("gemm_f32_backward_input", (m, n, k), &lens)?;
    let mut dx = vec![0.0; m * k];
    let (a, b) = (Mat::row_major(dy, m, n), Mat::row_major(w, n, k));
    sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut dx, m, k))?;
    Ok(dx)
}

/// dL/dw = dyᵀ · x ([n][k]) and dL/dbias = Σ_rows dy ([n]): x [m][k], dy [m][n].
pub fn gemm_f32_backward_weight(
    x: &[f32],
    dy: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let lens = [("x", x.len(), m * k), ("dy", dy.len(), m * n)];
    check("gemm_f32_backward_weight", (m, n, k), &lens)?;
    let mut dw = vec![0.0; n * k];
    let (a, b) = (Mat::row_major(dy, m, n).t(), Mat::row_major(x, m, k));
    sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut dw, n, k))?;
    Ok((dw, super::conv_f32::bias_grad(dy, n)))
}
