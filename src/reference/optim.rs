//! CPU spec of the optimizer (`shaders/optim.wgsl`, `src/ops/optim.rs`) and F8Net's training
//! schedule (F8NET.md §6; official code `fix_train.py::get_optimizer`, `get_lr_scheduler`,
//! `myutils/config.py::app`).
//!
//! SGD with PyTorch semantics (dampening 0), one parameter group per tensor, in f32 in this order:
//! `g ← g + wd·w; buf ← g (first step) else momentum·buf + g; g ← g + momentum·buf (Nesterov)
//! else g ← buf; w ← w − lr·g`. Weight decay per tensor follows the scheme (`all`,
//! `no_depthwise_no_bn`). The learning rate is a pure function of the iteration (no randomness):
//! linear warm-up from `256/batch` of the peak, then per-iteration cosine to 0 (`cos_annealing_iter`).

use crate::error::{Error, Result};

/// What a trained tensor is, which decides its weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A 4-D conv weight with more than one input channel per group.
    ConvWeight,
    /// A 4-D conv weight with one input channel per group (depthwise).
    DepthwiseWeight,
    /// The 2-D weight of a linear (FC) layer.
    LinearWeight,
    BnGamma,
    BnBeta,
    /// Any 1-D bias.
    Bias,
    /// The PACT clipping level α (a scalar).
    Alpha,
}

impl ParamKind {
    /// The kind of a conv weight, as the official code decides it: any 4-D weight whose dim 1
    /// (input channels per group) is 1 counts as depthwise, so a dense conv on a one-channel
    /// input (a grayscale first layer) is excluded from decay under `no_depthwise_no_bn` too.
    pub fn conv(in_channels_per_group: usize) -> ParamKind {
        if in_channels_per_group == 1 {
            ParamKind::DepthwiseWeight
        } else {
            ParamKind::ConvWeight
        }
    }
}

/// `weight_decay_scheme` of the F8Net configs (`f8net train --wd-scheme`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum WeightDecayScheme {
    /// Every tensor, BN parameters, biases and α included (ResNet-18, MobileNet-V1).
    All,
    /// Only non-depthwise conv weights and the FC weight (MobileNet-V2, tiny fine-tuning).
    NoDepthwiseNoBn,
}

impl WeightDecayScheme {
    /// Whether weight decay applies to a tensor of this kind.
    pub fn applies(self, kind: ParamKind) -> bool {
        match self {
            WeightDecayScheme::All => true,
            WeightDecayScheme::NoDepthwiseNoBn => {
                matches!(kind, ParamKind::ConvWeight | ParamKind::LinearWeight)
            }
        }
    }

    /// The decay of a tensor of this kind: `wd` where it applies, else 0.
    pub fn decay(self, kind: ParamKind, wd: f32) -> f32 {
        if self.applies(kind) {
            wd
        } else {
            0.0
        }
    }
}

/// Hyperparameters of one SGD step on one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    pub lr: f32,
    pub momentum: f32,
    /// This tensor's weight decay (0 where the scheme excludes it).
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl SgdHyper {
    /// F8Net's optimizer: momentum 0.9, Nesterov.
    pub fn f8net(lr: f32, weight_decay: f32) -> SgdHyper {
        SgdHyper {
            lr,
            momentum: 0.9,
            weight_decay,
            nesterov: true,
        }
    }
}

/// Check the lengths of one SGD step (shared with the GPU launcher).
pub fn check_sgd_lengths(op: &'static str, w: usize, grad: usize, buf: usize) -> Result<()> {
    if w != grad || w != buf {
        return Err(Error::shape(
            op,
            format!(
                "weights {w}, gradient {grad} and momentum buffer {buf} must have equal lengths"
            ),
        ));
    }
    Ok(())
}

/// One SGD step on one tensor, in place: updates `w` and the momentum buffer `buf`. `first`
/// marks the tensor's first step (the buffer is then set to the gradient, as PyTorch creates it).
pub fn sgd_step(
    w: &mut [f32],
    grad: &[f32],
    buf: &mut [f32],
    first: bool,
    h: &SgdHyper,
) -> Result<()> {
    check_sgd_lengths("sgd_step", w.len(), grad.len(), buf.len())?;
    for ((w, &g), b) in w.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let g = g + h.weight_decay * *w;
        *b = if first { g } else { h.momentum * *b + g };
        let d = if h.nesterov { g + h.momentum * *b } else { *b };
        *w += -h.lr * d;
    }
    Ok(())
}

/// The learning rate per iteration: `peak · factor(iter)`, with a linear warm-up over
/// `warmup_iters` from `start_factor` to 1, then (if `cosine`) `(1 + cos(π·(i − W)/(N − W)))/2`
/// down to 0 at `total_iters` (and 0 after it), else constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub start_factor: f64,
    pub warmup_iters: u64,
    pub total_iters: u64,
    pub cosine: bool,
}

impl LrSchedule {
    /// F8Net's conventional recipe for a yml learning rate `base_lr`: above batch 256 the peak is
    /// `base_lr · batch/256` with a 5-epoch warm-up from `256/batch`; otherwise no scaling and no
    /// warm-up. Then per-iteration cosine to 0 over `epochs · iters_per_epoch` iterations.
    pub fn f8net(
        base_lr: f64,
        batch: usize,
        epochs: u64,
        iters_per_epoch: u64,
    ) -> Result<LrSchedule> {
        if batch == 0
            || epochs == 0
            || iters_per_epoch == 0
            || !base_lr.is_finite()
            || base_lr < 0.0
        {
            return Err(Error::range(
                "lr schedule",
                format!(
                    "batch {batch} and {epochs} epochs of {iters_per_epoch} iterations must be \
                     positive, lr {base_lr} finite and not negative"
                ),
            ));
        }
        let (peak, warmup_epochs, start_factor) = if batch > 256 {
            (base_lr * batch as f64 / 256.0, 5, 256.0 / batch as f64)
        } else {
            (base_lr, 0, 1.0)
        };
        Ok(LrSchedule {
            peak,
            start_factor,
            warmup_iters: warmup_epochs * iters_per_epoch,
            total_iters: epochs * iters_per_epoch,
            cosine: true,
        })
    }

    /// A constant learning rate (tiny fine-tuning).
    pub fn constant(lr: f64) -> LrSchedule {
        LrSchedule {
            peak: lr,
            start_factor: 1.0,
            warmup_iters: 0,
            total_iters: u64::MAX,
            cosine: false,
        }
    }

    /// The factor of the peak at iteration `iter` (0-based; the scheduler steps after each update).
    pub fn factor(&self, iter: u64) -> f64 {
        let (w, n) = (self.warmup_iters, self.total_iters);
        if iter < w {
            (1.0 - self.start_factor) / w as f64 * iter as f64 + self.start_factor
        } else if !self.cosine {
            1.0
        } else if n <= w || iter >= n {
            0.0
        } else {
            (1.0 + ((iter - w) as f64 * std::f64::consts::PI / (n - w) as f64).cos()) / 2.0
        }
    }

    /// The learning rate of iteration `iter`.
    pub fn lr(&self, iter: u64) -> f32 {
        (self.peak * self.factor(iter)) as f32
    }
}
