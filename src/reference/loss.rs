//! CPU spec of the fused softmax cross-entropy (`shaders/loss.wgsl`, `src/ops/loss.rs`).
//!
//! logits `[n][k]` (row-major, logical classes, no padding) and integer labels `[n]` give the mean
//! loss `(1/n) Σ_r (log Σ_j e^{z_rj − m_r} − (z_{r,label} − m_r))`, `m_r = max_j z_rj` (stable),
//! and `dlogits = (softmax − onehot)/n` in one pass: plain cross-entropy, as F8Net trains (§6: no
//! label smoothing, no mixup). Computed in f64, stored as f32. A label ≥ k is an error.

use crate::error::{Error, Result};

/// The loss of a batch and its gradient with respect to the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// Mean cross-entropy over the batch.
    pub loss: f32,
    /// `(softmax − onehot)/n`, `[n][k]`.
    pub dlogits: Vec<f32>,
}

/// Check the shapes of a loss call (shared with the GPU launcher).
pub fn check_loss_shapes(op: &'static str, n: usize, k: usize, labels: usize) -> Result<()> {
    if n == 0 || k == 0 {
        return Err(Error::shape(
            op,
            format!("logits [{n}, {k}] must have at least one row and one class"),
        ));
    }
    if labels != n {
        return Err(Error::shape(
            op,
            format!("{labels} labels for logits with {n} rows"),
        ));
    }
    Ok(())
}

/// Fused softmax cross-entropy: mean loss and `dlogits` for logits `[n][k]` and `labels[n]`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    n: usize,
    k: usize,
    labels: &[u32],
) -> Result<LossOutput> {
    check_loss_shapes("softmax_cross_entropy", n, k, labels.len())?;
    if logits.len() != n * k {
        return Err(Error::shape(
            "softmax_cross_entropy",
            format!("{} logits for [{n}, {k}]", logits.len()),
        ));
    }
    if let Some((row, &bad)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= k) {
        return Err(Error::range(
            "softmax_cross_entropy",
            format!("label {bad} of row {row} is out of range 0..{k}"),
        ));
    }
    let inv_n = 1.0 / n as f64;
    let mut total = 0.0f64;
    let mut dlogits = vec![0.0f32; n * k];
    for (r, (row, grad)) in logits.chunks(k).zip(dlogits.chunks_mut(k)).enumerate() {
        let label = labels[r] as usize;
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &z| a.max(z as f64));
        let sum: f64 = row.iter().map(|&z| (z as f64 - m).exp()).sum();
        total += sum.ln() - (row[label] as f64 - m);
        for (j, (g, &z)) in grad.iter_mut().zip(row).enumerate() {
            let onehot = if j == label { 1.0 } else { 0.0 };
            *g = ((((z as f64 - m).exp()) / sum - onehot) * inv_n) as f32;
        }
    }
    Ok(LossOutput {
        loss: (total * inv_n) as f32,
        dlogits,
    })
}
