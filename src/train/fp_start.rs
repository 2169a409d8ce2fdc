//! The F8Net start from an FP checkpoint (F8NET.md §6: the 8-bit model is trained from the FP
//! one). Two edits make the loaded network's eval compute what the FP network computed, so that
//! the 8-bit start loses only what rounding loses, and two more steps (`train::run` calls them
//! for an FP source) make the training forward compute it too:
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
//! - With per-channel weight formats the running input FLs (an FP checkpoint's are 6, the
//!   initial value, §3.4) are walked to where F8Net's rule takes them before the first step
//!   (`Net::walk_fls`); with one weight FL per layer they walk during training as in the paper
//!   (walking first breaks that format's evaluation).
//! - Then `bn_stats::restate` makes the BN statistics the 8-bit network's own, keeping the eval
//!   function, so that training (batch statistics, batch FLs) runs the network the evaluation
//!   runs. Without these two steps the eval was kept but training started from another network:
//!   MobileNet-V1 w0.25 after 15 FP epochs, 2-epoch per-channel phase 0.8654, with them 0.8721
//!   (FP continued 0.8727; docs/RESULTS.md).
//!
//! Weights are NHWC-layout tensors as in `conv_bn` (dense OHWI, depthwise `[c][kh][kw]`, the
//! classifier `[classes][k]`); the edits act per output channel.

use crate::data::{Dataset, Loader, LoaderConfig};
use crate::error::Result;
use crate::fixed::{Format, Signedness};
use crate::fraclen::RunningFl;
use crate::train::conv_bn::{ConvBn, DEAD_VARIANCE};
use crate::train::net::{Net, Node};

/// Training-mode forwards that walk the running FLs before the first step (`Net::walk_fls`):
/// with momentum 0.1 an FL 6 away from its fixed point is within 0.5 of it after 24.
pub const FL_WALK_BATCHES: usize = 100;

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

impl Net {
    /// The running input FLs (conv units and the classifier), in node order.
    fn running_fls(&self) -> Vec<RunningFl> {
        let fl = |node: &Node| match node {
            Node::Conv { unit, .. } => Some(unit.running_fl),
            Node::Classifier { fc, .. } => Some(fc.running_fl),
            _ => None,
        };
        self.nodes.iter().filter_map(fl).collect()
    }

    /// Walk the running input FLs to where F8Net's rule takes them (§3.4) and change nothing
    /// else: training-mode forwards of `batches` batches of `batch` training images (in order,
    /// not augmented, from the start again at the end) on a copy, whose FLs are kept. Returns
    /// how many rounded FLs moved.
    ///
    /// Why: training quantizes each batch at its own FL F_b from σ, eval and the scale use the
    /// running FL F_r, and an FP checkpoint's are all 6 (§3.4's initial value) while F_b sits
    /// at 0, 8 or in between. Until F_r has walked there, training clips at α·2^(F_r − F_b)
    /// instead of α, another network than the one loaded. The FL itself does not change what
    /// PACT computes at eval (the step is α/255 at any FL); with per-channel weight formats the
    /// units' W̃ absorb the 2^(F_in − F_out) it moves, so the eval is kept (MobileNet-V1 w0.25,
    /// 15 FP epochs: 8-bit eval 0.8726 before the walk, 0.8730 after). With one weight FL per
    /// layer (0..=7) it is not (0.8703 → 0.2651), so only per-channel starts walk.
    ///
    /// Every member of an α group (the readers of one residual stream or one tensor) takes the
    /// master's walked FL: a tensor is written in the units of one reader's scale and read by
    /// all, so readers whose FLs walked apart would read it 2^ΔF off (MobileNet-V2 w0.5, 10 FP
    /// epochs: 8-bit eval 0.8892 before the walk, 0.1284 after it with private FLs). During
    /// training they walk apart as in the paper.
    pub fn walk_fls(&mut self, data: &Dataset, batches: usize, batch: usize) -> Result<usize> {
        let before = self.running_fls();
        let mut walker = self.clone();
        let mut loader = Loader::new(data, LoaderConfig::eval(batch.max(1)))?;
        for _ in 0..batches {
            let b = match loader.next_batch() {
                Some(b) => b,
                None => {
                    loader = Loader::new(data, LoaderConfig::eval(batch.max(1)))?;
                    let Some(b) = loader.next_batch() else { break };
                    b
                }
            };
            let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
            walker.forward(&b.inputs, &labels)?;
        }
        let mut walked = walker.running_fls().into_iter();
        // The FL of each α group's master (its first member in node order).
        let mut master_fl: Vec<Option<RunningFl>> = vec![None; self.alphas.len()];
        for node in &mut self.nodes {
            let (fl, alpha) = match node {
                Node::Conv { unit, alpha, .. } => (&mut unit.running_fl, *alpha),
                Node::Classifier { fc, alpha, .. } => (&mut fc.running_fl, *alpha),
                _ => continue,
            };
            let own = walked.next().unwrap_or(*fl);
            *fl = *master_fl[alpha].get_or_insert(own);
        }
        let after = self.running_fls();
        let moved = before.iter().zip(&after);
        Ok(moved
            .filter(|(a, b)| a.value.round() != b.value.round())
            .count())
    }
}
