//! One F8Net training unit on the CPU: `ReLUClipFXQConvBN` of the official code (F8NET.md
//! §2.1–§2.4, §3.3–§3.4, §4): input quantizer (ReLU and PACT clip implicit in the unsigned code
//! range), convolution, batch norm folded into the weights with the two-convolution scheme, and
//! weight quantizer — forward and the full backward, including the gradients through the batch
//! statistics and through the PACT scales of this layer (`s_in`) and the next one (`s_out`).
//!
//! Tensors are NHWC with logical channels; dense weights OHWI `[cout][kh][kw][cin]`, depthwise
//! `[c][kh][kw]`. The tensor a unit emits is `y / s_out`, already in the next unit's units.
//!
//! Forward (training), per batch:
//! ```text
//! x_q, m_x = fix_quant(x, F_batch)             F_batch from the unbiased σ of x (§3.4)
//! y0       = s_in · conv(x_q, W)               batch mean μ and biased variance v per channel
//! W̃        = (γ/σ) · W · s_in / s_out          σ = √(v + eps)
//! b̃        = (β − γ·μ/σ) / s_out
//! W_q, m_w = fix_quant(W̃, FL_w)                FL_w from the unbiased σ of W̃ (§3.3)
//! out      = conv(x_q, W_q) + b̃
//! ```
//! The folding, its backward and the statistics' backward are `reference::fold` (the spec the
//! GPU kernels of `train::gpu` follow); y0 is kept without its scale (`y0r = conv(x_q, W)`).
//! In `Precision::Float` (the FP baseline of §4.4) the quantizers keep their clamps (input FL 6,
//! weight FL 7) but do not round, so the whole unit is differentiable and is checked against
//! finite differences. The eval side (running statistics, integer form) is `eval.rs`.

use super::weight_format::{WeightFormat, ACC_FL_SHARED};
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::fraclen::{fl_from_std, unbiased_std, RunningFl};
use crate::model::float::ConvKind;
use crate::reference::batchnorm::batch_stats;
use crate::reference::conv_f32::{
    bias_grad, conv_f32_backward_input, conv_f32_backward_weight, conv_f32_forward, ConvGeom,
};
use crate::reference::depthwise_f32::{
    depthwise_f32, depthwise_f32_backward_input, depthwise_f32_backward_weight,
};
use crate::reference::fake_quant::{
    fix_quant, fix_quant_backward, fix_quant_floating, fix_quant_rows,
};
use crate::reference::fold::{
    fold_backward, fold_forward, fold_stats, fold_stats_backward, update_running, FoldBackward,
    FoldStats,
};
use crate::reference::gemm_f32::Activation;
use crate::reference::Window;
use crate::tensor::Shape;

mod eval;
pub use eval::IntegerUnit;

/// The FL of the fixed 8-bit image input (pixel k as k/256, §2.7).
pub const IMAGE_FL: i32 = 8;

/// A running variance below this marks a dead channel (see `train::fp_start`).
pub const DEAD_VARIANCE: f32 = 1e-12;

/// BN epsilon of the official code.
pub const BN_EPS: f32 = 1e-5;
/// BN running-statistics momentum.
pub const BN_MOMENTUM: f32 = 0.1;

/// How a unit's input is quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputQuant {
    /// The first layer: the input is already 8-bit (`k/256`), weight-only quantization, s = 1.
    Fixed,
    /// Quantized with a per-batch FL from σ and a running FL for the scale and at eval.
    Quantized(Signedness),
}

/// Full F8Net fixed point, or the clipped float baseline (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Float,
    Fixed,
}

/// A conv + BN unit: its geometry, parameters and running state.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvBn {
    pub name: String,
    pub kind: ConvKind,
    pub cin: usize,
    pub cout: usize,
    pub window: Window,
    pub input: InputQuant,
    pub weight: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// Running average of the input FL (§3.4).
    pub running_fl: RunningFl,
    pub weight_format: WeightFormat,
    /// Per-channel weight FLs keep `FL_x + FL_w` at or below this (`ACC_FL_SHARED` unless
    /// `Net::set_weight_format` finds that only quantizers read the output).
    pub max_acc_fl: i32,
}

/// What the backward pass needs from the forward pass.
#[derive(Clone, Debug)]
pub struct Saved {
    shape: Shape,
    x_q: Vec<f32>,
    x_mask: Option<Vec<bool>>,
    /// The raw first convolution `conv(x_q, W)` (y0 = s_in · y0r).
    y0r: Vec<f32>,
    stats: FoldStats,
    w_q: Vec<f32>,
    w_mask: Vec<bool>,
    b_eff: Vec<f32>,
    s_in: f32,
    s_out: f32,
    /// The formats used this step (for logging and FL plots).
    pub x_fl: Option<i32>,
    /// Weight FL per output channel (all equal for `WeightFormat::PerLayer`).
    pub w_fl: Vec<i32>,
}

impl Saved {
    /// The batch statistics of y0 this step used, and the pixels they were taken over.
    pub fn batch_stats(&self) -> (&FoldStats, usize) {
        let c = self.stats.mean.len().max(1);
        (&self.stats, self.y0r.len() / c)
    }
}

/// Gradients of one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub weight: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    /// dL/ds_in and dL/ds_out: the caller turns them into dL/dα of this and the next unit.
    pub s_in: f32,
    pub s_out: f32,
}

/// A quantized input: values, STE mask (None for a fixed 8-bit input) and FL.
struct QuantizedInput {
    values: Vec<f32>,
    mask: Option<Vec<bool>>,
    fl: Option<i32>,
}

/// Folded and quantized weights and the folded bias.
struct Folded {
    w_q: Vec<f32>,
    w_mask: Vec<bool>,
    b_eff: Vec<f32>,
    w_fl: Vec<i32>,
}

impl ConvBn {
    /// A unit with Kaiming-normal-like weights set by the caller, γ = 1, β = 0.
    pub fn new(
        name: &str,
        kind: ConvKind,
        cin: usize,
        cout: usize,
        window: Window,
        input: InputQuant,
        weight: Vec<f32>,
    ) -> ConvBn {
        ConvBn {
            name: name.to_string(),
            kind,
            cin,
            cout,
            window,
            input,
            weight,
            gamma: vec![1.0; cout],
            beta: vec![0.0; cout],
            running_mean: vec![0.0; cout],
            running_var: vec![1.0; cout],
            running_fl: RunningFl::default(),
            weight_format: WeightFormat::PerLayer,
            max_acc_fl: ACC_FL_SHARED,
        }
    }

    /// Weights per output channel.
    pub(crate) fn per_out(&self) -> usize {
        match self.kind {
            ConvKind::Dense => self.window.kh * self.window.kw * self.cin,
            ConvKind::Depthwise => self.window.kh * self.window.kw,
        }
    }

    fn check(&self, shape: Shape) -> Result<Shape> {
        let ok = shape.c == self.cin
            && self.weight.len() == self.cout * self.per_out()
            && (self.kind == ConvKind::Dense || self.cin == self.cout);
        if !ok {
            return Err(Error::shape(
                "conv_bn",
                format!(
                    "{}: input {shape} for a {:?} {} -> {} layer",
                    self.name, self.kind, self.cin, self.cout
                ),
            ));
        }
        let (oh, ow) = self.window.out_hw("conv_bn", shape.h, shape.w)?;
        Ok(Shape::new(shape.n, oh, ow, self.cout))
    }

    fn conv(&self, x: &[f32], shape: Shape, w: &[f32]) -> Result<Vec<f32>> {
        let zero = vec![0.0; self.cout];
        match self.kind {
            ConvKind::Dense => conv_f32_forward(
                &ConvGeom::dense(shape, self.cout, self.window),
                x,
                w,
                &zero,
                Activation::None,
            ),
            ConvKind::Depthwise => {
                Ok(depthwise_f32(x, shape, w, &zero, &self.window, Activation::None)?.1)
            }
        }
    }

    /// (dL/dx, dL/dw) of `conv(x, w)` given dL/dy.
    fn conv_backward(
        &self,
        x: &[f32],
        shape: Shape,
        w: &[f32],
        dy: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        match self.kind {
            ConvKind::Dense => {
                let g = ConvGeom::dense(shape, self.cout, self.window);
                Ok((
                    conv_f32_backward_input(&g, dy, w)?,
                    conv_f32_backward_weight(&g, x, dy)?.0,
                ))
            }
            ConvKind::Depthwise => Ok((
                depthwise_f32_backward_input(dy, shape, w, &self.window)?,
                depthwise_f32_backward_weight(x, shape, dy, &self.window)?.0,
            )),
        }
    }

    /// Input quantization: values, STE mask and FL (None for a fixed 8-bit input).
    fn quantize_input(
        &self,
        x: &[f32],
        precision: Precision,
        fl: Option<i32>,
    ) -> Result<QuantizedInput> {
        let InputQuant::Quantized(signedness) = self.input else {
            return Ok(QuantizedInput {
                values: x.to_vec(),
                mask: None,
                fl: None,
            });
        };
        let fl = match (precision, fl) {
            (Precision::Float, _) => 6,
            (Precision::Fixed, Some(fl)) => fl,
            (Precision::Fixed, None) => fl_from_std(unbiased_std(x), signedness),
        };
        let format = Format { signedness, fl };
        let q = match precision {
            Precision::Float => fix_quant_floating(x, format)?,
            Precision::Fixed => fix_quant(x, format)?,
        };
        Ok(QuantizedInput {
            values: q.values,
            mask: Some(q.mask),
            fl: Some(fl),
        })
    }

    /// Fold BN (the statistics of y0) and the scales into the weights and bias
    /// (`reference::fold`), then quantize the weights.
    /// `x_fl` is the input's FL this pass (it caps per-channel weight FLs).
    fn fold(
        &self,
        stats: &FoldStats,
        (s_in, s_out): (f32, f32),
        precision: Precision,
        x_fl: i32,
    ) -> Result<Folded> {
        let f = fold_forward(&self.weight, &self.gamma, &self.beta, stats, s_in, s_out)?;
        let w_eff = f.w_eff;
        let (fls, q) = match precision {
            Precision::Float => (
                vec![7; self.cout],
                fix_quant_floating(
                    &w_eff,
                    Format {
                        signedness: Signedness::Signed,
                        fl: 7,
                    },
                )?,
            ),
            Precision::Fixed => {
                let fls = self
                    .weight_format
                    .fls(&w_eff, self.cout, x_fl, self.max_acc_fl);
                let q = fix_quant_rows(&w_eff, &fls)?;
                (fls, q)
            }
        };
        Ok(Folded {
            w_q: q.values,
            w_mask: q.mask,
            b_eff: f.b_eff,
            w_fl: fls,
        })
    }

    fn add_bias(mut y: Vec<f32>, b: &[f32]) -> Vec<f32> {
        let c = b.len();
        y.iter_mut().enumerate().for_each(|(i, v)| *v += b[i % c]);
        y
    }

    /// Training forward: batch statistics, running statistics and the running FL are updated.
    pub fn forward_train(
        &mut self,
        x: &[f32],
        shape: Shape,
        s_in: f32,
        s_out: f32,
        precision: Precision,
    ) -> Result<(Vec<f32>, Saved)> {
        let out_shape = self.check(shape)?;
        let QuantizedInput {
            values: x_q,
            mask: x_mask,
            fl: x_fl,
        } = self.quantize_input(x, precision, None)?;
        if let (Some(fl), Precision::Fixed) = (x_fl, precision) {
            self.running_fl.update(fl);
        }
        let y0r = self.conv(&x_q, shape, &self.weight)?;
        let stats = fold_stats(&batch_stats(&y0r, out_shape)?, s_in, BN_EPS)?;
        update_running(
            &mut self.running_mean,
            &mut self.running_var,
            &stats,
            out_shape.pixels(),
            BN_MOMENTUM,
        )?;
        let Folded {
            w_q,
            w_mask,
            b_eff,
            w_fl,
        } = self.fold(&stats, (s_in, s_out), precision, x_fl.unwrap_or(IMAGE_FL))?;
        let out = Self::add_bias(self.conv(&x_q, shape, &w_q)?, &b_eff);
        let saved = Saved {
            shape,
            x_q,
            x_mask,
            y0r,
            stats,
            w_q,
            w_mask,
            b_eff,
            s_in,
            s_out,
            x_fl,
            w_fl,
        };
        Ok((out, saved))
    }

    /// Backward of `forward_train`: dL/dx and the parameter and scale gradients.
    pub fn backward(&self, saved: &Saved, d_out: &[f32]) -> Result<(Vec<f32>, Grads)> {
        let Saved {
            shape, s_in, s_out, ..
        } = *saved;
        // out = conv(x_q, W_q) + b̃.
        let db = bias_grad(d_out, self.cout);
        let (mut dxq, dwq) = self.conv_backward(&saved.x_q, shape, &saved.w_q, d_out)?;
        let dw_eff = fix_quant_backward(&dwq, &saved.w_mask)?;
        // The folding and the batch statistics of y0 = s_in · conv(x_q, W).
        let fg = fold_backward(
            &self.weight,
            &self.gamma,
            &FoldBackward {
                stats: &saved.stats,
                b_eff: &saved.b_eff,
                dw_eff: &dw_eff,
                db_eff: &db,
                s_in,
                s_out,
            },
        )?;
        let e = fold_stats_backward(&saved.y0r, &saved.stats, &fg.dmean, &fg.dvar, s_in)?;
        let (dx_stats, dw_stats) = self.conv_backward(&saved.x_q, shape, &self.weight, &e)?;
        let mut dw = fg.dw;
        dw.iter_mut().zip(&dw_stats).for_each(|(a, b)| *a += b);
        dxq.iter_mut().zip(&dx_stats).for_each(|(a, b)| *a += b);
        let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() as f32;
        let dx = match &saved.x_mask {
            Some(mask) => fix_quant_backward(&dxq, mask)?,
            None => dxq,
        };
        Ok((
            dx,
            Grads {
                weight: dw,
                gamma: fg.dgamma,
                beta: fg.dbeta,
                s_in: sum(&fg.ds_in),
                s_out: sum(&fg.ds_out),
            },
        ))
    }
}
