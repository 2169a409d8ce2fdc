//! One F8Net conv + BN unit (`train::conv_bn`) recorded on the GPU: its parameters, gradients and
//! momentum stay resident; forward in two stages around the weight-FL readback, and the full
//! backward (F8NET.md §2.1, §2.3, §3.3–§3.4, §4.3).
//!
//! Forward (`prepare`, then `finish` once σ(W̃) is known):
//! ```text
//! x_q, m_x = fake_quant(x, F_batch)          (none for the fixed 8-bit image: x_q = x)
//! y0r      = conv(x_q, W)                    batch statistics [μ_r | v_r] (batchnorm_stats)
//! W̃, b̃     = fold_conv(...)                  μ, σ, v of y0 = s_in·y0r; running statistics
//! σ(W̃)     → host → FL_w;  W_q, m_w = fake_quant(W̃, FL_w);  out = act(conv(x_q, W_q) + b̃)
//! ```
//! With per-channel weight formats σ and FL_w are per output channel (`weight_quant.rs`).
//! Backward: dW_q, db̃ = conv backward(x_q, dout); dW̃ = dW_q·m_w; fold_conv_backward → dγ, dβ,
//! dμ, dv and the scale terms; e = s_in·dy0 (fold_conv_backward_stats); conv backward(x_q, e)
//! → the statistics term of dW (fold_conv_backward_weight); dx = (conv_bwd_input(dout, W_q) +
//! conv_bwd_input(e, W))·m_x; dα terms (fold_alpha_grad).
//! Buffers are in the GPU weight layouts of `weights.rs`; per-channel blocks as `ops::fold`.

mod state;
mod weight_quant;
use super::stats::{Readback, RowSite, Site};
use super::weights::{ConvWeights, WeightGeom};
use super::{Scratch, StepCtx};
use crate::error::{Error, Result};
use crate::fixed::Format;
use crate::fraclen::{fl_from_std, RunningFl};
use crate::gpu::{Encoder, Gpu, GpuBuffer};
use crate::model::float::ConvKind;
use crate::ops::activation::{self, ActivationBackward, AddF32, GpuActivation};
use crate::ops::batchnorm::{self, BatchStats, GpuChannelPair};
use crate::ops::fake_quant::{
    mask_len, record_fake_quant, record_fake_quant_backward, F32Rows, FakeQuant, FakeQuantBackward,
};
use crate::ops::fold::{self, ScaleRefs};
use crate::reference::gemm_f32::Activation;
use crate::reference::residual::Activation as Act;
use crate::tensor::{GpuF32Tensor, Shape};
use crate::train::conv_bn::{ConvBn, InputQuant, Precision, BN_EPS, BN_MOMENTUM};
use crate::train::weight_format::WeightFormat;
use weight_quant::{WeightFls, WeightQuant};

/// How a unit reads its input in one batch.
enum InputBuffers {
    /// The fixed 8-bit image: x_q is the input tensor itself.
    Image,
    /// x_q `[n][h][w][4·ceil(cin/4)]` and its STE mask.
    Quantized {
        x_q: GpuF32Tensor,
        mask: GpuBuffer<u32>,
    },
}

/// A unit's buffers that depend on the batch size.
pub(super) struct UnitBatch {
    input: InputBuffers,
    /// The raw first convolution `conv(x_q, W)`.
    y0r: GpuF32Tensor,
}

/// A conv + BN unit on the GPU.
pub(super) struct GpuUnit {
    pub geom: WeightGeom,
    pub input: InputQuant,
    /// W (the parameter) with a zero bias.
    raw: ConvWeights,
    /// W_q with b̃ as its bias.
    quant: ConvWeights,
    /// W̃ in the forward, dW̃ in the backward.
    w_eff: GpuBuffer<f32>,
    w_mask: GpuBuffer<u32>,
    /// [γ | β].
    affine: GpuChannelPair,
    /// [mean | var].
    running: GpuChannelPair,
    /// [μ_r | v_r] of y0r.
    raw_stats: GpuChannelPair,
    /// [μ | σ | v | b̃] of y0.
    state: GpuBuffer<f32>,
    /// [dμ | dv | ds_in | ds_out].
    terms: GpuBuffer<f32>,
    grad_w: GpuBuffer<f32>,
    grad_affine: GpuChannelPair,
    mom_w: GpuBuffer<f32>,
    mom_affine: GpuBuffer<f32>,
    dw_q: GpuBuffer<f32>,
    dw_stats: GpuBuffer<f32>,
    db_eff: GpuBuffer<f32>,
    db_stats: GpuBuffer<f32>,
    weight_quant: WeightQuant,
    pub running_fl: RunningFl,
}

/// The network around one unit's backward.
pub(super) struct UnitBackward<'a> {
    /// The unit's input tensor and its (activated) output tensor.
    pub x: &'a GpuF32Tensor,
    pub out: &'a GpuF32Tensor,
    pub act: Act,
    pub refs: ScaleRefs,
    /// Whether the input needs a gradient (not for the network's input image).
    pub need_dx: bool,
}

fn check_len(what: &str, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(Error::shape(
            "gpu train",
            format!("{what} has {len} values, expected {want}"),
        ));
    }
    Ok(())
}

impl GpuUnit {
    /// Upload a unit's parameters and state; its weight statistics go to readback `slot`, or to
    /// `rows_at` of the row region for a per-channel weight format; `momentum` = (weight, γ, β)
    /// buffers if present.
    pub fn upload(
        gpu: &Gpu,
        u: &ConvBn,
        (slot, rows_at): (usize, usize),
        momentum: Option<[&[f32]; 3]>,
    ) -> Result<GpuUnit> {
        let geom = WeightGeom {
            kind: u.kind,
            cin: u.cin,
            cout: u.cout,
            window: u.window,
        };
        let c = u.cout;
        for (what, v) in [
            ("γ", &u.gamma),
            ("β", &u.beta),
            ("running mean", &u.running_mean),
            ("running var", &u.running_var),
        ] {
            check_len(&format!("{} {what}", u.name), v.len(), c)?;
        }
        let raw = ConvWeights::upload(gpu, geom, &u.weight, &vec![0.0; c])?;
        let quant = ConvWeights::zeros(gpu, geom)?;
        let wl = raw.w().len();
        let cp = c.div_ceil(4) * 4;
        let rows = raw.rows(raw.w());
        let (mom_w, mom_affine) = match momentum {
            Some([w, g, b]) => {
                check_len(
                    &format!("{} weight momentum", u.name),
                    w.len(),
                    u.weight.len(),
                )?;
                check_len(&format!("{} γ momentum", u.name), g.len(), c)?;
                (
                    gpu.upload(&raw.host_in_layout(w))?,
                    GpuChannelPair::upload(gpu, g, b)?.data,
                )
            }
            None => (gpu.alloc(wl)?, gpu.alloc(2 * cp)?),
        };
        let weight_quant = match u.weight_format {
            WeightFormat::PerLayer => {
                WeightQuant::PerLayer(Site::new(gpu, rows.rows, rows.c, slot)?)
            }
            WeightFormat::PerChannel => WeightQuant::PerChannel {
                site: RowSite::new(gpu, c, slot, rows_at)?,
                scales: gpu.alloc(2 * cp)?,
                max_acc_fl: u.max_acc_fl,
            },
        };
        Ok(GpuUnit {
            geom,
            input: u.input,
            w_eff: gpu.alloc(wl)?,
            w_mask: gpu.alloc(mask_len(rows.rows, rows.c))?,
            affine: GpuChannelPair::upload(gpu, &u.gamma, &u.beta)?,
            running: GpuChannelPair::upload(gpu, &u.running_mean, &u.running_var)?,
            raw_stats: GpuChannelPair::alloc_filled(gpu, c, 0.0)?,
            state: gpu.alloc(4 * cp)?,
            terms: gpu.alloc(4 * cp)?,
            grad_w: gpu.alloc(wl)?,
            grad_affine: GpuChannelPair::alloc_filled(gpu, c, 0.0)?,
            mom_w,
            mom_affine,
            dw_q: gpu.alloc(wl)?,
            dw_stats: gpu.alloc(wl)?,
            db_eff: gpu.alloc(cp)?,
            db_stats: gpu.alloc(cp)?,
            weight_quant,
            running_fl: u.running_fl,
            raw,
            quant,
        })
    }

    /// Buffers for an input of `input` shape producing `output`.
    pub fn batch(&self, gpu: &Gpu, input: Shape, output: Shape) -> Result<UnitBatch> {
        let input_buffers = match self.input {
            InputQuant::Fixed => InputBuffers::Image,
            InputQuant::Quantized(_) => InputBuffers::Quantized {
                x_q: GpuF32Tensor::alloc_filled(gpu, input, 0.0)?,
                mask: gpu.alloc(mask_len(input.pixels(), input.c))?,
            },
        };
        Ok(UnitBatch {
            input: input_buffers,
            y0r: GpuF32Tensor::alloc_filled(gpu, output, 0.0)?,
        })
    }

    /// Values of W in the host layout.
    pub fn host_weight_len(&self) -> usize {
        let taps = self.geom.window.kh * self.geom.window.kw;
        match self.geom.kind {
            ConvKind::Dense => self.geom.cout * taps * self.geom.cin,
            ConvKind::Depthwise => self.geom.cout * taps,
        }
    }

    fn x_q<'a>(&self, b: &'a UnitBatch, x: &'a GpuF32Tensor) -> &'a GpuF32Tensor {
        match &b.input {
            InputBuffers::Image => x,
            InputBuffers::Quantized { x_q, .. } => x_q,
        }
    }

    /// Stage 1 of the forward: quantize the input (FL from `x_std`, the σ of x, in fixed point),
    /// the raw convolution, its statistics, the fold, and the request for σ(W̃). Returns the
    /// input FL (None for the image).
    pub fn prepare(
        &mut self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        (x, b): (&GpuF32Tensor, &UnitBatch),
        x_std: Option<f32>,
        refs: ScaleRefs,
        rb: &mut Readback,
    ) -> Result<Option<i32>> {
        let gpu = ctx.gpu;
        let x_fl = match (self.input, &b.input) {
            (InputQuant::Fixed, _) => None,
            (InputQuant::Quantized(signedness), InputBuffers::Quantized { x_q, mask }) => {
                let fl = match ctx.precision {
                    Precision::Float => 6,
                    Precision::Fixed => {
                        let sd = x_std.ok_or_else(|| {
                            Error::shape("gpu train", "a unit's input σ was not read back")
                        })?;
                        let fl = fl_from_std(sd, signedness);
                        self.running_fl.update(fl);
                        fl
                    }
                };
                let q = FakeQuant {
                    x: F32Rows::tensor(x),
                    format: Format { signedness, fl },
                    floating: ctx.precision == Precision::Float,
                    out: &x_q.data,
                    mask,
                };
                record_fake_quant(gpu, enc, &q)?;
                Some(fl)
            }
            (InputQuant::Quantized(_), InputBuffers::Image) => {
                return Err(Error::shape("gpu train", "unit batch buffers do not match"))
            }
        };
        let x_q = self.x_q(b, x);
        let win = self.geom.window;
        self.raw
            .forward(gpu, enc, x_q, win, Activation::None, &b.y0r)?;
        let stats = BatchStats {
            x: &b.y0r,
            stats: &self.raw_stats,
            running: None,
            momentum: BN_MOMENTUM,
        };
        batchnorm::record_stats(gpu, enc, &stats)?;
        let f = fold::FoldConv {
            w: self.raw.w(),
            layout: self.raw.layout(),
            affine: &self.affine,
            raw: &self.raw_stats,
            count: b.y0r.shape.pixels(),
            scales: ctx.scales,
            refs,
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
            w_eff: &self.w_eff,
            b_eff: self.quant.bias(),
            state: &self.state,
            running: &self.running,
        };
        fold::record_conv(gpu, enc, &f)?;
        if ctx.precision == Precision::Fixed {
            self.request_weight_stats(ctx, enc, rb)?;
        }
        Ok(x_fl)
    }

    /// Stage 2 of the forward: quantize W̃ (FLs from the σ of W̃ in fixed point; `x_fl` is the
    /// input's FL, None for the image) and `out = act(conv(x_q, W_q) + b̃)`. Returns the weight
    /// FLs per output channel and their σ.
    pub fn finish(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        (x, b, x_fl): (&GpuF32Tensor, &UnitBatch, Option<i32>),
        (out, act): (&GpuF32Tensor, Act),
        rb: &Readback,
    ) -> Result<WeightFls> {
        let gpu = ctx.gpu;
        let fls = self.quantize_weights(ctx, enc, rb, x_fl)?;
        let activation = match act {
            Act::Relu => Activation::Relu,
            Act::Identity => Activation::None,
        };
        let x_q = self.x_q(b, x);
        self.quant
            .forward(gpu, enc, x_q, self.geom.window, activation, out)?;
        Ok(fls)
    }

    /// The backward from `dy` (dL/d output, pooled; returned to the pool): parameter gradients,
    /// the dα terms, and dL/dx when `a.need_dx`.
    pub fn backward(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        (b, a): (&UnitBatch, &UnitBackward<'_>),
        dy: GpuF32Tensor,
        pool: &mut Scratch,
    ) -> Result<Option<GpuF32Tensor>> {
        let gpu = ctx.gpu;
        let win = self.geom.window;
        let d_out = match a.act {
            Act::Relu => {
                let t = pool.take(gpu, dy.shape)?;
                let r = ActivationBackward {
                    dy: &dy,
                    x: a.out,
                    activation: GpuActivation::Relu,
                    dx: &t,
                    dalpha: None,
                    accumulate: false,
                };
                activation::record_backward(gpu, enc, &r)?;
                pool.give(dy);
                t
            }
            Act::Identity => dy,
        };
        let x_q = self.x_q(b, a.x);
        self.quant
            .backward_weight(gpu, enc, (x_q, &d_out), win, (&self.dw_q, &self.db_eff))?;
        let ste = FakeQuantBackward {
            grad_out: self.raw.rows(&self.dw_q),
            mask: &self.w_mask,
            grad_in: &self.w_eff,
        };
        record_fake_quant_backward(gpu, enc, &ste)?;
        let layout = self.raw.layout();
        let fb = fold::FoldConvBackward {
            w: self.raw.w(),
            layout,
            affine: &self.affine,
            state: &self.state,
            scales: ctx.scales,
            refs: a.refs,
            dw_eff: &self.w_eff,
            db_eff: &self.db_eff,
            d_affine: &self.grad_affine,
            terms: &self.terms,
        };
        fold::record_conv_backward(gpu, enc, &fb)?;
        let e = pool.take(gpu, b.y0r.shape)?;
        let fs = fold::FoldConvBackwardStats {
            y0r: &b.y0r,
            state: &self.state,
            terms: &self.terms,
            scales: ctx.scales,
            refs: a.refs,
            e: &e,
        };
        fold::record_conv_backward_stats(gpu, enc, &fs)?;
        self.raw
            .backward_weight(gpu, enc, (x_q, &e), win, (&self.dw_stats, &self.db_stats))?;
        let fw = fold::FoldConvBackwardWeight {
            dw_eff: &self.w_eff,
            dw_stats: &self.dw_stats,
            layout,
            affine: &self.affine,
            state: &self.state,
            scales: ctx.scales,
            refs: a.refs,
            dw: &self.grad_w,
        };
        fold::record_conv_backward_weight(gpu, enc, &fw)?;
        let c = self.geom.cout;
        let ga = fold::FoldAlphaGrad {
            terms: &self.terms,
            offset: 2 * c.div_ceil(4) * 4,
            c,
            scales: ctx.scales,
            alpha: ctx.alpha,
            refs: a.refs,
            dalpha: ctx.dalpha,
        };
        fold::record_alpha_grad(gpu, enc, &ga)?;
        let dx = if a.need_dx {
            let s = a.x.shape;
            let (d1, d2, sum) = (pool.take(gpu, s)?, pool.take(gpu, s)?, pool.take(gpu, s)?);
            self.quant.backward_input(gpu, enc, &d_out, win, &d1)?;
            self.raw.backward_input(gpu, enc, &e, win, &d2)?;
            let add = AddF32 {
                a: &d1,
                b: &d2,
                out: &sum,
            };
            activation::record_add(gpu, enc, &add)?;
            pool.give(d1);
            pool.give(d2);
            match &b.input {
                InputBuffers::Quantized { mask, .. } => {
                    let dx = pool.take(gpu, s)?;
                    let ste = FakeQuantBackward {
                        grad_out: F32Rows::tensor(&sum),
                        mask,
                        grad_in: &dx.data,
                    };
                    record_fake_quant_backward(gpu, enc, &ste)?;
                    pool.give(sum);
                    Some(dx)
                }
                InputBuffers::Image => Some(sum),
            }
        } else {
            None
        };
        pool.give(d_out);
        pool.give(e);
        Ok(dx)
    }
}
