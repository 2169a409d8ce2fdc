//! How a GPU conv + BN unit quantizes its folded weight W̃ (`WeightFormat`, the math of
//! `ConvBn::fold`): one FL from σ(W̃) (a tensor `Site`), or one FL per output channel from the
//! σ of that channel's row (`RowSite`, `ops::fake_quant_rows`), capped at `max_acc_fl − FL_x`.
//! The σ come back in the step's readbacks; the host picks the FLs with the CPU's rule and
//! uploads `[2^fl | 2^−fl]` per channel for `fake_quant_rows`. W̃, W_q and the mask are in the
//! unit's GPU weight layout (`weights.rs`); the mask is the one `fake_quant_backward` reads.

use super::GpuUnit;
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::fraclen::fl_from_std;
use crate::gpu::{Encoder, GpuBuffer};
use crate::ops::fake_quant::{record_fake_quant, FakeQuant};
use crate::ops::fake_quant_rows::{record_fake_quant_rows, row_scales, FakeQuantRows, WeightRows};
use crate::train::conv_bn::{Precision, IMAGE_FL};
use crate::train::gpu::stats::{Readback, RowSite, Site};
use crate::train::gpu::StepCtx;
use crate::train::weight_format::WeightFormat;

/// The statistics behind a unit's weight FLs.
pub(in crate::train::gpu) enum WeightQuant {
    /// `WeightFormat::PerLayer`: σ of the whole W̃.
    PerLayer(Site),
    /// `WeightFormat::PerChannel`: σ of each row and the per-channel scales `[2^fl | 2^−fl]`.
    PerChannel {
        site: RowSite,
        scales: GpuBuffer<f32>,
        /// `ConvBn::max_acc_fl`.
        max_acc_fl: i32,
    },
}

/// The FLs of a unit's W̃ this step and the σ they came from (empty in float mode).
pub(in crate::train::gpu) struct WeightFls {
    pub fl: Vec<i32>,
    pub std: Vec<f32>,
}

impl GpuUnit {
    fn weight_rows(&self) -> WeightRows<'_> {
        WeightRows {
            x: self.raw.rows(&self.w_eff),
            layout: self.raw.layout(),
            channels: self.geom.cout,
        }
    }

    /// Record the statistics of W̃ that set its FLs (fixed point).
    pub(super) fn request_weight_stats(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        rb: &mut Readback,
    ) -> Result<()> {
        match &self.weight_quant {
            WeightQuant::PerLayer(site) => rb.request(ctx.gpu, enc, site, &self.w_eff),
            WeightQuant::PerChannel { site, .. } => {
                rb.request_rows(ctx.gpu, enc, site, self.weight_rows())
            }
        }
    }

    /// Whether the statistics of W̃ have been read back.
    pub fn weight_stats_ready(&self, rb: &Readback) -> bool {
        match &self.weight_quant {
            WeightQuant::PerLayer(site) => rb.std(site.slot()).is_some(),
            WeightQuant::PerChannel { site, .. } => rb.row_std(site.slot()).is_some(),
        }
    }

    /// `W_q, m_w = fake_quant(W̃)` at FL 7 in float mode, else at the FLs of the read-back σ
    /// (`x_fl`: the input's FL this pass, None for the fixed 8-bit image).
    pub(super) fn quantize_weights(
        &self,
        ctx: &StepCtx<'_>,
        enc: &mut Encoder,
        rb: &Readback,
        x_fl: Option<i32>,
    ) -> Result<WeightFls> {
        let gpu = ctx.gpu;
        let missing = || Error::shape("gpu train", "a unit's weight σ was not read back");
        let c = self.geom.cout;
        let layer = |fl: i32, floating: bool| FakeQuant {
            x: self.raw.rows(&self.w_eff),
            format: Format {
                signedness: Signedness::Signed,
                fl,
            },
            floating,
            out: self.quant.w(),
            mask: &self.w_mask,
        };
        match (ctx.precision, &self.weight_quant) {
            (Precision::Float, _) => {
                record_fake_quant(gpu, enc, &layer(7, true))?;
                Ok(WeightFls {
                    fl: vec![7; c],
                    std: Vec::new(),
                })
            }
            (Precision::Fixed, WeightQuant::PerLayer(site)) => {
                let sd = rb.std(site.slot()).ok_or_else(missing)?;
                let fl = fl_from_std(sd, Signedness::Signed);
                record_fake_quant(gpu, enc, &layer(fl, false))?;
                Ok(WeightFls {
                    fl: vec![fl; c],
                    std: vec![sd],
                })
            }
            (
                Precision::Fixed,
                WeightQuant::PerChannel {
                    site,
                    scales,
                    max_acc_fl,
                },
            ) => {
                let std = rb.row_std(site.slot()).ok_or_else(missing)?.to_vec();
                let x_fl = x_fl.unwrap_or(IMAGE_FL);
                let fl: Vec<i32> = std
                    .iter()
                    .map(|&sd| WeightFormat::channel_fl(sd, x_fl, *max_acc_fl))
                    .collect();
                gpu.write(scales, &row_scales(&fl)?)?;
                let q = FakeQuantRows {
                    w: self.weight_rows(),
                    scales,
                    out: self.quant.w(),
                    mask: &self.w_mask,
                };
                record_fake_quant_rows(gpu, enc, &q)?;
                Ok(WeightFls { fl, std })
            }
        }
    }
}
