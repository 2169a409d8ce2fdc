//! The classifier (`train::linear`, F8NET.md §2.8) recorded on the GPU: unsigned 8-bit input with
//! its PACT scale `s_fc`, 8-bit weights with the FL from σ of the raw weight, and the SAT rescale
//! folded into the weights: `logits = x_q · (s_fc·ws·W_q)ᵀ + b` with `ws = (1/√classes)/σ(W_q)`.
//!
//! x, x_q: `[n][1][1][4·ceil(k/4)]`; W, W_q, W_s and their gradients `[4·ceil(classes/4)]
//! [4·ceil(k/4)]` (the `F32Weights` layout); bias `[4·ceil(classes/4)]`; terms [ds_fc | 0].
//! Readbacks: σ(W) (fixed point only, requested at the start of the step), σ(W_q) (for ws) and
//! σ(x).

use super::stats::{Readback, Site};
use super::{Scratch, StepCtx};
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::fraclen::{fl_from_std, RunningFl};
use crate::gpu::{Encoder, Gpu, GpuBuffer};
use crate::ops::fake_quant::{
    mask_len, record_fake_quant, record_fake_quant_backward, F32Rows, FakeQuant, FakeQuantBackward,
};
use crate::ops::fold::{self, ScaleRefs};
use crate::ops::gemm_f32::{
    self, F32Weights, GemmF32, GemmF32BackwardInput, GemmF32BackwardWeight,
};
use crate::ops::optim::{self, SgdStep};
use crate::reference::gemm_f32::Activation;
use crate::reference::optim::{ParamKind, SgdHyper, WeightDecayScheme};
use crate::tensor::{unpad_channels, GpuF32Tensor, Shape};
use crate::train::conv_bn::Precision;
use crate::train::linear::{sat_factor_from_std, Classifier};

/// The classifier on the GPU.
pub(super) struct GpuClassifier {
    pub k: usize,
    pub classes: usize,
    w: GpuBuffer<f32>,
    w_q: GpuBuffer<f32>,
    w_mask: GpuBuffer<u32>,
    /// W_s = s_fc·ws·W_q with the bias b (the parameter).
    folded: F32Weights,
    g: GpuBuffer<f32>,
    dw_pre: GpuBuffer<f32>,
    grad_w: GpuBuffer<f32>,
    grad_b: GpuBuffer<f32>,
    terms: GpuBuffer<f32>,
    mom_w: GpuBuffer<f32>,
    mom_b: GpuBuffer<f32>,
    w_site: Site,
    wq_site: Site,
    pub running_fl: RunningFl,
    /// This step's SAT factor.
    ws: f32,
}

/// The classifier's buffers for one batch size.
pub(super) struct ClassifierBatch {
    x_q: GpuF32Tensor,
    mask: GpuBuffer<u32>,
}

impl GpuClassifier {
    /// Upload the classifier; `momentum` = (weight, bias) buffers if present.
    pub fn upload(
        gpu: &Gpu,
        fc: &Classifier,
        (w_slot, wq_slot): (usize, usize),
        momentum: Option<[&[f32]; 2]>,
    ) -> Result<GpuClassifier> {
        let (k, n) = (fc.k, fc.classes);
        let padded = |w: &[f32], b: &[f32]| F32Weights::upload(gpu, w, b, n, 1, 1, k);
        let zeros = vec![0.0; n * k];
        let F32Weights {
            w, bias: zero_b, ..
        } = padded(&fc.weight, &vec![0.0; n])?;
        let folded = padded(&zeros, &fc.bias)?;
        let (mom_w, mom_b) = match momentum {
            Some([mw, mb]) => {
                if mw.len() != n * k || mb.len() != n {
                    return Err(Error::shape(
                        "gpu train",
                        format!(
                            "classifier momentum of {} and {} values",
                            mw.len(),
                            mb.len()
                        ),
                    ));
                }
                let F32Weights { w, bias, .. } = padded(mw, mb)?;
                (w, bias)
            }
            None => (gpu.alloc(w.len())?, gpu.alloc(zero_b.len())?),
        };
        let np = n.div_ceil(4) * 4;
        Ok(GpuClassifier {
            k,
            classes: n,
            w_q: gpu.alloc(w.len())?,
            w_mask: gpu.alloc(mask_len(n, k))?,
            g: gpu.alloc(w.len())?,
            dw_pre: gpu.alloc(w.len())?,
            grad_w: gpu.alloc(w.len())?,
            grad_b: gpu.alloc(np)?,
            terms: gpu.alloc(2 * np)?,
            mom_w,
            mom_b,
            w_site: Site::new(gpu, n, k, w_slot)?,
            wq_site: Site::new(gpu, n, k, wq_slot)?,
            running_fl: fc.running_fl,
            ws: 1.0,
            w,
            folded,
        })
    }

    /// Buffers for a batch of `n`.
    pub fn batch(&self, gpu: &Gpu, n: usize) -> Result<ClassifierBatch> {
        let s = Shape::matrix(n, self.k);
        Ok(ClassifierBatch {
            x_q: GpuF32Tensor::alloc_filled(gpu, s, 0.0)?,
            mask: gpu.alloc(mask_len(n, self.k))?,
        })
    }

    fn rows<'a>(&self, data: &'a GpuBuffer<f32>) -> F32Rows<'a> {
        F32Rows {
            data,
            rows: self.classes,
            c: self.k,
        }
    }

    pub fn weight_slots(&self) -> (usize, usize) {
        (self.w_site.slot(), self.wq_site.slot())
    }

    /// Request σ(W) (fixed point: it sets the weight FL).
    pub fn request_weight_stats(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        rb: &mut Readback,
    ) -> Result<()> {
        rb.request(ctx.gpu, enc, &self.w_site, &self.w)
    }

    /// Quantize W (FL from σ(W), or 7 in float) and request σ(W_q) for the SAT factor.
    /// Returns the weight FL.
    pub fn quantize_weights(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        rb: &mut Readback,
    ) -> Result<i32> {
        let fl = match ctx.precision {
            Precision::Float => 7,
            Precision::Fixed => fl_from_std(
                rb.std(self.w_site.slot())
                    .ok_or_else(|| Error::shape("gpu train", "σ(W) was not read back"))?,
                Signedness::Signed,
            ),
        };
        let q = FakeQuant {
            x: self.rows(&self.w),
            format: Format {
                signedness: Signedness::Signed,
                fl,
            },
            floating: ctx.precision == Precision::Float,
            out: &self.w_q,
            mask: &self.w_mask,
        };
        record_fake_quant(ctx.gpu, enc, &q)?;
        rb.request(ctx.gpu, enc, &self.wq_site, &self.w_q)?;
        Ok(fl)
    }

    /// The forward once σ(W_q) (and in fixed point σ(x)) are known: quantize x, fold
    /// `s_fc·ws` into W_s, `logits = x_q·W_sᵀ + b`. Returns the input FL.
    pub fn forward(
        &mut self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        (x, b, x_std): (&GpuF32Tensor, &ClassifierBatch, Option<f32>),
        (node, logits): (usize, &GpuF32Tensor),
        rb: &Readback,
    ) -> Result<i32> {
        let gpu = ctx.gpu;
        if x.shape != b.x_q.shape {
            return Err(Error::shape(
                "gpu train",
                format!("classifier input {} for k = {}", x.shape, self.k),
            ));
        }
        let fl = match ctx.precision {
            Precision::Float => 6,
            Precision::Fixed => {
                let sd =
                    x_std.ok_or_else(|| Error::shape("gpu train", "σ(x) was not read back"))?;
                let fl = fl_from_std(sd, Signedness::Unsigned);
                self.running_fl.update(fl);
                fl
            }
        };
        let q = FakeQuant {
            x: F32Rows::tensor(x),
            format: Format {
                signedness: Signedness::Unsigned,
                fl,
            },
            floating: ctx.precision == Precision::Float,
            out: &b.x_q.data,
            mask: &b.mask,
        };
        record_fake_quant(gpu, enc, &q)?;
        let sd = rb
            .std(self.wq_site.slot())
            .ok_or_else(|| Error::shape("gpu train", "σ(W_q) was not read back"))?;
        self.ws = sat_factor_from_std(sd, self.classes);
        let f = fold::FoldLinear {
            w_q: &self.w_q,
            scales: ctx.scales,
            node,
            ws: self.ws,
            w_s: &self.folded.w,
        };
        fold::record_linear(gpu, enc, &f)?;
        let g = GemmF32 {
            x: &b.x_q.data,
            m: x.shape.n,
            weights: &self.folded,
            activation: Activation::None,
            out: &logits.data,
        };
        gemm_f32::record(gpu, enc, &g)?;
        Ok(fl)
    }

    /// The backward from dL/dlogits: parameter gradients, the dα term and dL/dx (pooled).
    pub fn backward(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        (b, dy): (&ClassifierBatch, &GpuF32Tensor),
        refs: ScaleRefs,
        pool: &mut Scratch,
    ) -> Result<GpuF32Tensor> {
        let gpu = ctx.gpu;
        let n = dy.shape.n;
        let gw = GemmF32BackwardWeight {
            x: &b.x_q.data,
            dy: &dy.data,
            m: n,
            n: self.classes,
            k: self.k,
            dw: &self.g,
            db: &self.grad_b,
        };
        gemm_f32::record_backward_weight(gpu, enc, &gw)?;
        let fb = fold::FoldLinearBackward {
            g: &self.g,
            w_q: &self.w_q,
            rows: self.classes,
            per: self.k.div_ceil(4) * 4,
            scales: ctx.scales,
            node: refs.node_in,
            ws: self.ws,
            dw: &self.dw_pre,
            terms: &self.terms,
        };
        fold::record_linear_backward(gpu, enc, &fb)?;
        let ste = FakeQuantBackward {
            grad_out: self.rows(&self.dw_pre),
            mask: &self.w_mask,
            grad_in: &self.grad_w,
        };
        record_fake_quant_backward(gpu, enc, &ste)?;
        let ga = fold::FoldAlphaGrad {
            terms: &self.terms,
            offset: 0,
            c: self.classes,
            scales: ctx.scales,
            alpha: ctx.alpha,
            refs,
            dalpha: ctx.dalpha,
        };
        fold::record_alpha_grad(gpu, enc, &ga)?;
        let s = b.x_q.shape;
        let t = pool.take(gpu, s)?;
        let gi = GemmF32BackwardInput {
            dy: &dy.data,
            m: n,
            weights: &self.folded,
            dx: &t.data,
        };
        gemm_f32::record_backward_input(gpu, enc, &gi)?;
        let dx = pool.take(gpu, s)?;
        let ste = FakeQuantBackward {
            grad_out: F32Rows::tensor(&t),
            mask: &b.mask,
            grad_in: &dx.data,
        };
        record_fake_quant_backward(gpu, enc, &ste)?;
        pool.give(t);
        Ok(dx)
    }

    /// One SGD step on W and b.
    pub fn record_sgd(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        (lr, wd, scheme): (f32, f32, WeightDecayScheme),
        first: bool,
    ) -> Result<()> {
        for (w, grad, buf, kind) in [
            (&self.w, &self.grad_w, &self.mom_w, ParamKind::LinearWeight),
            (
                &self.folded.bias,
                &self.grad_b,
                &self.mom_b,
                ParamKind::Bias,
            ),
        ] {
            let s = SgdStep {
                w,
                grad,
                buf,
                first,
                hyper: SgdHyper::f8net(lr, scheme.decay(kind, wd)),
            };
            optim::record(gpu, enc, &s)?;
        }
        Ok(())
    }

    fn host(&self, gpu: &Gpu, w: &GpuBuffer<f32>, b: &GpuBuffer<f32>) -> Result<[Vec<f32>; 2]> {
        let kp = self.k.div_ceil(4) * 4;
        let w = gpu.read(w)?;
        let b = gpu.read(b)?;
        Ok([
            unpad_channels(&w[..self.classes * kp], self.k),
            b[..self.classes].to_vec(),
        ])
    }

    /// Parameters and state into `fc` (waits for submitted work).
    pub fn download(&self, gpu: &Gpu, fc: &mut Classifier) -> Result<()> {
        [fc.weight, fc.bias] = self.host(gpu, &self.w, &self.folded.bias)?;
        fc.running_fl = self.running_fl;
        Ok(())
    }

    /// The momentum buffers (weight, bias) in host layouts.
    pub fn download_momentum(&self, gpu: &Gpu) -> Result<[Vec<f32>; 2]> {
        self.host(gpu, &self.mom_w, &self.mom_b)
    }
}
