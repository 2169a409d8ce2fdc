//! CPU spec of F8Net's global average pool in training (`shaders/sum_pool.wgsl`,
//! `src/ops/sum_pool.rs`), F8NET.md §2.9: `Σ_{h,w} x / 2^round(log2(h·w))` — a pure FL change in
//! the integer model; the `2^shift/(h·w)` factor is learned by the classifier.
//!
//! x, dx: NHWC `[n][h][w][c]` with logical channels; y, dy: `[n][c]`. The forward adds the
//! pixels in ascending order, each divided by the power of two (exact).

use super::pool::avgpool_shift;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The pool's divisor `2^round(log2(h·w))`.
pub fn sum_pool_divisor(shape: Shape) -> f32 {
    (avgpool_shift(shape.h * shape.w) as f32).exp2()
}

fn check(op: &'static str, what: &str, len: usize, want: usize, shape: Shape) -> Result<()> {
    if len != want || shape.is_empty() {
        return Err(Error::shape(
            op,
            format!("{what} has {len} values, expected {want} for {shape}"),
        ));
    }
    Ok(())
}

/// `y[n][c] = Σ_{h,w} x[n][h][w][c] / 2^shift`.
pub fn sum_pool(x: &[f32], shape: Shape) -> Result<Vec<f32>> {
    check("sum_pool", "x", x.len(), shape.len(), shape)?;
    let mut out = vec![0.0; shape.n * shape.c];
    let div = sum_pool_divisor(shape);
    for (k, v) in x.iter().enumerate() {
        out[(k / (shape.h * shape.w * shape.c)) * shape.c + k % shape.c] += v / div;
    }
    Ok(out)
}

/// `dx[n][h][w][c] = dy[n][c] / 2^shift` for an input of `shape`.
pub fn sum_pool_backward(dy: &[f32], shape: Shape) -> Result<Vec<f32>> {
    check(
        "sum_pool_backward",
        "dy",
        dy.len(),
        shape.n * shape.c,
        shape,
    )?;
    let div = sum_pool_divisor(shape);
    Ok((0..shape.len())
        .map(|k| dy[(k / (shape.h * shape.w * shape.c)) * shape.c + k % shape.c] / div)
        .collect())
}
