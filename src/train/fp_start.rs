//! The F8Net start from an FP checkpoint (F8NET.md §6: the 8-bit model is trained from the FP
//! one). Two edits make the loaded network compute what the FP network computed, so that the
//! 8-bit start loses only what rounding loses (and what the FLs' first steps cost):
//!
//! - **Dead channels** (running variance below `DEAD_VARIANCE`): their conv output is constant,
//!   so BN outputs β whatever W is. Their W̃ = γ/√(v+eps)·W is ~300·γ·W, which dominates σ(W̃) and
//!   drives the whole layer's weight FL to 0 (MobileNet-V1 w0.25 FP: depthwise |W̃| up to 5903
//!   against a median of 0.9). Their weights and running mean are zeroed.
//! - **Weights beyond the FP clamp**: the FP baseline clamps every folded weight to ±127/128
//!   (§4.4: weight FL 7, no rounding) and an element beyond it gets no gradient, so it stays
//!   there. An FP network can hold many (MobileNet-V1 w0.25 after 2 epochs: ~10 % of every
//!   depthwise layer's W̃, 46 % of the first). The F8Net quantizer picks its FL from σ(W̃) and
//!   clamps at ±127/2^FL, so with FL < 7 those elements come back at their stored size: another
//!   network (MobileNet-V1's 8-bit start, eval: 0.10 without the clamp, 0.82 with it, FP 0.82;
//!   MobileNet-V2: 0.13 and 0.83, FP 0.83). W is clamped so that
//!   |W̃| ≤ 127/128 at the running statistics and the loaded scales — what the FP eval computed
//!   already. The classifier's weight, clamped raw at FL 7 in FP, likewise.
//! - The running input FLs stay as loaded (an FP checkpoint's are 6, the initial value, §3.4)
//!   and walk from there as in the paper. Placing them before the first step was measured and
//!   dropped (docs/RESULTS.md, "What we learned").
//!
//! Weights are NHWC-layout tensors as in `conv_bn` (dense OHWI, depthwise `[c][kh][kw]`, the
//! classifier `[classes][k]`); both edits act per output channel.

use crate::fixed::{Format, Signedness};
use crate::train::conv_bn::{ConvBn, DEAD_VARIANCE};
use crate::train::net::{Net, Node};

/// The largest |W̃| the FP baseline keeps (the signed 8-bit range at FL 7).
pub fn float_weight_limit() -> f32 {
    let f = Format {
        signedness: Signedness::Signed,
        fl: 7,
    };
    f.max_code() as f32 * f.step()
}

/// What `Net::prepare_fixed_start` changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedStart {
    pub dead_channels: usize,
    pub clamped_weights: usize,
    pub weights: usize,
}

/// Where the loaded network comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An FP (clipped float) checkpoint: both edits.
    Float,
    /// An F8Net checkpoint: only the dead channels (its weights were never clamped at FL 7).
    Fixed,
}

impl ConvBn {
    /// Zero the weights and running mean of dead channels; returns how many.
    pub fn clear_dead_channels(&mut self) -> usize {
        let per = self.per_out();
        let mut cleared = 0;
        for c in 0..self.cout {
            if self.running_var[c] < DEAD_VARIANCE {
                self.weight[c * per..(c + 1) * per].fill(0.0);
                self.running_mean[c] = 0.0;
                cleared += 1;
            }
        }
        cleared
    }

    /// Clamp W so that |W̃| = |γ/σ·W·s_in/s_out| ≤ 127/128 at the running statistics; returns
    /// how many weights changed.
    pub fn clamp_to_float_range(&mut self, s_in: f32, s_out: f32) -> usize {
        let per = self.per_out();
        let limit = float_weight_limit();
        let sigma = self.running_stats().sigma;
        let mut clamped = 0;
        let channels = self
            .weight
            .chunks_mut(per)
            .zip(self.gamma.iter().zip(&sigma));
        for (w, (gamma, sigma)) in channels {
            let factor = (gamma / sigma * s_in / s_out).abs();
            if factor > 0.0 && factor.is_finite() {
                clamped += clamp(w, limit / factor);
            }
        }
        clamped
    }
}

/// Clamp `w` to ±bound in place; returns how many changed.
fn clamp(w: &mut [f32], bound: f32) -> usize {
    let mut n = 0;
    for v in w {
        if v.abs() > bound {
            *v = v.clamp(-bound, bound);
            n += 1;
        }
    }
    n
}

impl Net {
    /// Make a network loaded from `source` ready for F8Net training (see the module docs).
    pub fn prepare_fixed_start(&mut self, source: Source) -> FixedStart {
        let scales: Vec<f32> = (0..self.nodes.len()).map(|i| self.node_scale(i)).collect();
        let mut r = FixedStart::default();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            match node {
                Node::Conv { unit, next, .. } => {
                    r.dead_channels += unit.clear_dead_channels();
                    r.weights += unit.weight.len();
                    if source == Source::Float {
                        let s_out = next.map_or(1.0, |j| scales[j]);
                        r.clamped_weights += unit.clamp_to_float_range(scales[i], s_out);
                    }
                }
                Node::Classifier { fc, .. } => {
                    r.weights += fc.weight.len();
                    if source == Source::Float {
                        r.clamped_weights += clamp(&mut fc.weight, float_weight_limit());
                    }
                }
                _ => {}
            }
        }
        r
    }
}
