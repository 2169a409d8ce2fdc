//! The optimizer step and the host copies of one GPU conv + BN unit (`train::gpu::unit`):
//! SGD on W and [γ | β] (one update for both, so the scheme must decay them alike), and the
//! parameters, running statistics and momentum read back into host layouts.

use super::GpuUnit;
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu};
use crate::model::float::ConvKind;
use crate::ops::optim::{self, SgdStep};
use crate::reference::optim::{ParamKind, SgdHyper, WeightDecayScheme};
use crate::train::conv_bn::ConvBn;

impl GpuUnit {
    /// One SGD step on W and [γ | β].
    pub fn record_sgd(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        (lr, wd, scheme): (f32, f32, WeightDecayScheme),
        first: bool,
    ) -> Result<()> {
        let kind = match self.geom.kind {
            ConvKind::Dense => ParamKind::conv(self.geom.cin),
            ConvKind::Depthwise => ParamKind::DepthwiseWeight,
        };
        let w = SgdStep {
            w: self.raw.w(),
            grad: &self.grad_w,
            buf: &self.mom_w,
            first,
            hyper: SgdHyper::f8net(lr, scheme.decay(kind, wd)),
        };
        optim::record(gpu, enc, &w)?;
        let decay = scheme.decay(ParamKind::BnGamma, wd);
        if decay != scheme.decay(ParamKind::BnBeta, wd) {
            return Err(Error::range(
                "gpu train",
                format!("{scheme:?} decays γ and β differently; they share one update"),
            ));
        }
        let affine = SgdStep {
            w: &self.affine.data,
            grad: &self.grad_affine.data,
            buf: &self.mom_affine,
            first,
            hyper: SgdHyper::f8net(lr, decay),
        };
        optim::record(gpu, enc, &affine)
    }

    /// Parameters and state into `u` (waits for submitted work).
    pub fn download(&self, gpu: &Gpu, u: &mut ConvBn) -> Result<()> {
        u.weight = self.raw.to_host(&gpu.read(self.raw.w())?);
        (u.gamma, u.beta) = self.affine.download(gpu)?;
        (u.running_mean, u.running_var) = self.running.download(gpu)?;
        u.running_fl = self.running_fl;
        Ok(())
    }

    /// The momentum buffers (weight, γ, β) in host layouts.
    pub fn download_momentum(&self, gpu: &Gpu) -> Result<[Vec<f32>; 3]> {
        let w = self.raw.to_host(&gpu.read(&self.mom_w)?);
        let a = gpu.read(&self.mom_affine)?;
        let (c, cp) = (self.geom.cout, self.geom.cout.div_ceil(4) * 4);
        Ok([w, a[..c].to_vec(), a[cp..cp + c].to_vec()])
    }
}
