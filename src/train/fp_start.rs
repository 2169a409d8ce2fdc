//! The F8Net start from an FP checkpoint (F8NET.md §6: the 8-bit model is trained from the FP
//! one). Two edits make the loaded network compute what the FP network computed, so that the
//! 8-bit start loses only what rounding loses:
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
//!   network (its start: 0.39 train accuracy against FP 0.80). W is clamped so that
//!   |W̃| ≤ 127/128 at the running statistics and the loaded scales — what the FP eval computed
//!   already. The classifier's weight, clamped raw at FL 7 in FP, likewise.
//! - **Running input FLs** (`calibrate_fls`): an FP checkpoint's are all 6, the initial value.
//!   In training the quantizer uses the batch FL F_b and the scale the running one F_r, so the
//!   real clamp is 2^(F_r − F_b)·α: a layer whose FL settles at 0 runs unclipped up to 64·α
//!   until the EMA (momentum 0.1) has walked from 6 to 0, ~25 steps later (MobileNet-V1 w0.25 at
//!   lr 0: 0.38 train accuracy over the first 94 steps against an eval start of 0.82). With the
//!   real-unit activations fixed, F_b = F_r + k per layer, so setting F_r ← F_b and repeating
//!   reaches the FLs training would settle on in at most nine passes over one batch; BN running
//!   statistics are left as loaded.
//!
//! Weights are NHWC-layout tensors as in `conv_bn` (dense OHWI, depthwise `[c][kh][kw]`, the
//! classifier `[classes][k]`); both edits act per output channel.

use crate::error::Result;
use crate::fixed::{Format, Signedness};
use crate::fraclen::RunningFl;
use crate::train::conv_bn::{ConvBn, InputQuant, BN_EPS, DEAD_VARIANCE};
use crate::train::net::{Net, Node};

/// Passes of `calibrate_fls` at most: each moves a running FL by its offset, FLs span 0..=8.
pub const CALIBRATION_PASSES: usize = 10;

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
        let mut clamped = 0;
        for c in 0..self.cout {
            let sigma = (self.running_var[c] + BN_EPS).sqrt();
            let factor = (self.gamma[c] / sigma * s_in / s_out).abs();
            if factor == 0.0 || !factor.is_finite() {
                continue;
            }
            let bound = limit / factor;
            clamped += clamp(&mut self.weight[c * per..(c + 1) * per], bound);
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

impl Net {
    /// Set every running input FL to the batch FL the training forward settles on for the batch
    /// `x` (see the module docs); returns the passes it took (`CALIBRATION_PASSES` if the FLs
    /// still moved).
    pub fn calibrate_fls(&mut self, x: &[f32], labels: &[u32]) -> Result<usize> {
        let bn: Vec<(Vec<f32>, Vec<f32>)> = self
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Conv { unit, .. } => {
                    Some((unit.running_mean.clone(), unit.running_var.clone()))
                }
                _ => None,
            })
            .collect();
        let mut passes = CALIBRATION_PASSES;
        for pass in 1..=CALIBRATION_PASSES {
            let before = self.running_fls();
            let batch: Vec<Option<i32>> = self
                .forward(x, labels)?
                .formats()
                .into_iter()
                .map(|f| f.and_then(|(x_fl, _)| x_fl))
                .collect();
            for (node, fl) in self.nodes.iter_mut().zip(batch) {
                if let (Some(r), Some(fl)) = (running_fl_mut(node), fl) {
                    r.value = fl as f32;
                }
            }
            if self.running_fls() == before {
                passes = pass;
                break;
            }
        }
        let units = self.nodes.iter_mut().filter_map(|n| match n {
            Node::Conv { unit, .. } => Some(unit),
            _ => None,
        });
        for (unit, (mean, var)) in units.zip(bn) {
            (unit.running_mean, unit.running_var) = (mean, var);
        }
        Ok(passes)
    }

    /// The rounded running input FL of every node that quantizes its input.
    fn running_fls(&mut self) -> Vec<i32> {
        self.nodes
            .iter_mut()
            .filter_map(|n| {
                let signedness = match n {
                    Node::Conv { unit, .. } => match unit.input {
                        InputQuant::Quantized(s) => s,
                        InputQuant::Fixed => return None,
                    },
                    _ => Signedness::Unsigned,
                };
                running_fl_mut(n).map(|r| r.current(signedness))
            })
            .collect()
    }
}

/// The running input FL of a node that quantizes its input.
fn running_fl_mut(node: &mut Node) -> Option<&mut RunningFl> {
    match node {
        Node::Conv { unit, .. } if unit.input != InputQuant::Fixed => Some(&mut unit.running_fl),
        Node::Classifier { fc, .. } => Some(&mut fc.running_fl),
        _ => None,
    }
}
