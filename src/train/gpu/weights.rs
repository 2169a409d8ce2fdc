//! A conv unit's weights on the GPU in the layout its kernels read — dense OHWI
//! `[4·ceil(cout/4)][kh][kw][4·ceil(cin/4)]` (`F32Weights`) or depthwise `[kh][kw][4·ceil(c/4)]`
//! (`F32DepthwiseWeights`), each with a bias `[4·ceil(cout/4)]` — and the f32 convolution
//! kernels on them (forward with a fused ReLU, backward input and weight).

use crate::error::Result;
use crate::gpu::{Encoder, Gpu, GpuBuffer};
use crate::model::float::ConvKind;
use crate::ops::conv_f32::{self, ConvF32, ConvF32BackwardInput, ConvF32BackwardWeight};
use crate::ops::depthwise_f32::{
    self, DepthwiseF32, DepthwiseF32BackwardInput, DepthwiseF32BackwardWeight, F32DepthwiseWeights,
};
use crate::ops::fake_quant::F32Rows;
use crate::ops::fold::WeightLayout;
use crate::ops::gemm_f32::F32Weights;
use crate::reference::gemm_f32::Activation;
use crate::reference::Window;
use crate::tensor::{unpad_channels, GpuF32Tensor};

/// The weights (and bias) of one convolution.
pub(super) enum ConvWeights {
    Dense(F32Weights),
    Depthwise(F32DepthwiseWeights),
}

/// Geometry of a unit's weights.
#[derive(Clone, Copy, Debug)]
pub(super) struct WeightGeom {
    pub kind: ConvKind,
    pub cin: usize,
    pub cout: usize,
    pub window: Window,
}

impl WeightGeom {
    fn taps(&self) -> usize {
        self.window.kh * self.window.kw
    }
}

impl ConvWeights {
    /// Upload host weights (the unit's layout: OHWI or `[c][kh][kw]`) and a bias.
    pub fn upload(gpu: &Gpu, g: WeightGeom, w: &[f32], bias: &[f32]) -> Result<ConvWeights> {
        let (kh, kw) = (g.window.kh, g.window.kw);
        Ok(match g.kind {
            ConvKind::Dense => {
                ConvWeights::Dense(F32Weights::upload(gpu, w, bias, g.cout, kh, kw, g.cin)?)
            }
            ConvKind::Depthwise => {
                ConvWeights::Depthwise(F32DepthwiseWeights::upload(gpu, w, bias, g.cout, kh, kw)?)
            }
        })
    }

    /// Zero weights and bias.
    pub fn zeros(gpu: &Gpu, g: WeightGeom) -> Result<ConvWeights> {
        let per = match g.kind {
            ConvKind::Dense => g.taps() * g.cin,
            ConvKind::Depthwise => g.taps(),
        };
        ConvWeights::upload(gpu, g, &vec![0.0; g.cout * per], &vec![0.0; g.cout])
    }

    pub fn w(&self) -> &GpuBuffer<f32> {
        match self {
            ConvWeights::Dense(d) => &d.w,
            ConvWeights::Depthwise(d) => &d.w,
        }
    }

    pub fn bias(&self) -> &GpuBuffer<f32> {
        match self {
            ConvWeights::Dense(d) => &d.bias,
            ConvWeights::Depthwise(d) => &d.bias,
        }
    }

    pub fn layout(&self) -> WeightLayout {
        match self {
            ConvWeights::Dense(d) => WeightLayout::Rows { per: d.k4() * 4 },
            ConvWeights::Depthwise(d) => WeightLayout::Depthwise { taps: d.kh * d.kw },
        }
    }

    /// The logical rows of a buffer in this layout (for fake quantization and statistics).
    pub fn rows<'a>(&self, data: &'a GpuBuffer<f32>) -> F32Rows<'a> {
        match self {
            ConvWeights::Dense(d) => F32Rows {
                data,
                rows: d.n * d.kh * d.kw,
                c: d.cin,
            },
            ConvWeights::Depthwise(d) => F32Rows {
                data,
                rows: d.kh * d.kw,
                c: d.c,
            },
        }
    }

    /// `out = act(conv(x, w) + bias)`.
    pub fn forward(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        x: &GpuF32Tensor,
        window: Window,
        activation: Activation,
        out: &GpuF32Tensor,
    ) -> Result<()> {
        match self {
            ConvWeights::Dense(weights) => conv_f32::record(
                gpu,
                enc,
                &ConvF32 {
                    input: x,
                    weights,
                    window,
                    activation,
                    out,
                },
            ),
            ConvWeights::Depthwise(weights) => depthwise_f32::record(
                gpu,
                enc,
                &DepthwiseF32 {
                    input: x,
                    weights,
                    window,
                    activation,
                    out,
                },
            ),
        }
    }

    /// `dx = conv_backward_input(dy, w)`.
    pub fn backward_input(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        dy: &GpuF32Tensor,
        window: Window,
        dx: &GpuF32Tensor,
    ) -> Result<()> {
        match self {
            ConvWeights::Dense(weights) => conv_f32::record_backward_input(
                gpu,
                enc,
                &ConvF32BackwardInput {
                    dy,
                    weights,
                    window,
                    dx,
                },
            ),
            ConvWeights::Depthwise(weights) => depthwise_f32::record_backward_input(
                gpu,
                enc,
                &DepthwiseF32BackwardInput {
                    dy,
                    weights,
                    window,
                    dx,
                },
            ),
        }
    }

    /// `(dw, db)` of a convolution of this kind on `x` given `dy` (buffers in this layout).
    pub fn backward_weight(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        (x, dy): (&GpuF32Tensor, &GpuF32Tensor),
        window: Window,
        (dw, db): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    ) -> Result<()> {
        match self {
            ConvWeights::Dense(_) => conv_f32::record_backward_weight(
                gpu,
                enc,
                &ConvF32BackwardWeight {
                    input: x,
                    dy,
                    window,
                    dw,
                    db,
                },
            ),
            ConvWeights::Depthwise(_) => depthwise_f32::record_backward_weight(
                gpu,
                enc,
                &DepthwiseF32BackwardWeight {
                    input: x,
                    dy,
                    window,
                    dw,
                    db,
                },
            ),
        }
    }

    /// Host values of a buffer in this layout, in the unit's host layout (OHWI or `[c][kh][kw]`).
    pub fn to_host(&self, raw: &[f32]) -> Vec<f32> {
        match self {
            ConvWeights::Dense(d) => {
                let rows = d.n * d.kh * d.kw;
                let cp = d.cin.div_ceil(4) * 4;
                unpad_channels(&raw[..rows * cp], d.cin)
            }
            ConvWeights::Depthwise(d) => {
                let (taps, cp) = (d.kh * d.kw, d.c.div_ceil(4) * 4);
                let mut out = vec![0.0; d.c * taps];
                for ch in 0..d.c {
                    for t in 0..taps {
                        out[ch * taps + t] = raw[t * cp + ch];
                    }
                }
                out
            }
        }
    }

    /// A host buffer in the unit's layout converted to this GPU layout (momentum upload).
    pub fn host_in_layout(&self, host: &[f32]) -> Vec<f32> {
        match self {
            ConvWeights::Dense(d) => {
                let mut v = crate::tensor::pad_channels(host, d.cin);
                v.resize(self.w().len(), 0.0);
                v
            }
            ConvWeights::Depthwise(d) => {
                let (taps, cp) = (d.kh * d.kw, d.c.div_ceil(4) * 4);
                let mut out = vec![0.0; taps * cp];
                for ch in 0..d.c {
                    for t in 0..taps {
                        out[t * cp + ch] = host[ch * taps + t];
                    }
                }
                out
            }
        }
    }
}
