//! CPU spec of the int8 GEMM / linear layer (`shaders/gemm.wgsl`, `src/ops/gemm.rs`).
//!
//! x [m][k] codes (uint8 or int8), w [n][k] int8 codes, out [m][n] after the epilogue.

use super::{check_reduction, EpilogueSpec};
use crate::error::{Error, Result};

/// `out[r][c] = epilogue(Σ_k x[r][k] · w[c][k], c)`.
pub fn gemm(
    x: &[i32],
    w: &[i32],
    m: usize,
    n: usize,
    k: usize,
    ep: &EpilogueSpec,
) -> Result<Vec<i32>> {
    if x.len() != m * k || w.len() != n * k {
        return Err(Error::shape(
            "gemm",
            format!(
                "x has {} codes for [{m}, {k}], w has {} for [{n}, {k}]",
                x.len(),
                w.len()
            ),
        ));
    }
    check_reduction("gemm", k)?;
    ep.validate("gemm", n)?;
    let mut out = vec![0; m * n];
    for r in 0..m {
        for c in 0..n {
            let acc: i64 = (0..k)
                .map(|i| x[r * k + i] as i64 * w[c * k + i] as i64)
                .sum();
            out[r * n + c] = ep.apply(acc, c);
        }
    }
    Ok(out)
}
