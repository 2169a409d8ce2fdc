//! Launcher of `shaders/gemm_f32.wgsl`: f32 GEMM / linear / 1×1 stride-1 conv with bias and a
//! fused activation clamp, tiled exactly like the int8 GEMM. Spec: `src/reference/gemm_f32.rs`.
//!
//! x: f32 [m][4·ceil(k/4)] (padding 0); weights: `F32Weights` with kh = kw = 1;
//! out: f32 [m][4·ceil(n/4)] (padding lanes written 0).

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::gemm_f32::Activation;

/// Uniforms of gemm_f32.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmF32Params {
    pub m: u32,
    pub n: u32,
    pub k4: u32,
    pub _pad0: u32,
    pub lo: f32,
    pub hi: f32,
    pub _pad1: u32,
    pub _pad2: u32,
}

const TILE: usize = 64;

/// f32 weights in OHWI order for gemm_f32 and conv_f32: `[4·ceil(n/4)][kh][kw][4·ceil(cin/4)]`
/// (input channels and output channels padded with zeros), and the bias `[4·ceil(n/4)]`.
/// A linear layer is `kh = kw = 1`. Uploaded once per layer.
pub struct F32Weights {
    pub n: usize,
    pub kh: usize,
    pub kw: usize,
    pub cin: usize,
    pub w: GpuBuffer<f32>,
    pub bias: GpuBuffer<f32>,
}

impl F32Weights {
    /// `w_ohwi`: host OHWI weights with logical `cin`, `n · kh · kw · cin` of them; `bias`: `n`.
    pub fn upload(
        gpu: &Gpu,
        w_ohwi: &[f32],
        bias: &[f32],
        n: usize,
        kh: usize,
        kw: usize,
        cin: usize,
    ) -> Result<F32Weights> {
        if w_ohwi.len() != n * kh * kw * cin || n == 0 || kh == 0 || kw == 0 || cin == 0 {
            return Err(Error::shape(
                "f32 weights",
                format!("{} values for OHWI [{n}, {kh}, {kw}, {cin}]", w_ohwi.len()),
            ));
        }
        if bias.len() != n {
            return Err(Error::shape(
                "f32 weights",
                format!("{} biases for {n} output channels", bias.len()),
            ));
        }
        let np = n.div_ceil(4) * 4;
        let mut w = crate::tensor::pad_channels(w_ohwi, cin);
        w.resize(np * kh * kw * cin.div_ceil(4) * 4, 0.0);
        let mut b = bias.to_vec();
        b.resize(np, 0.0);
        Ok(F32Weights {
            n,
            kh,
            kw,
            cin,
            w: gpu.upload(&w)?,
            bias: gpu.upload(&b)?,
        })
    }

    /// vec4 words per output channel (the GEMM's K4).
    pub fn k4(&self) -> usize {
        self.kh * self.kw * self.cin.div_ceil(4)
    }

    /// Output channels padded to a multiple of 4.
    pub fn n_padded(&self) -> usize {
        self.n.div_ceil(4) * 4
    }
}

/// One f32 GEMM: `out = act(x · wᵀ + bias)` for `m` rows of `x`.
pub struct GemmF32<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub m: usize,
    pub weights: &'a F32Weights,
    pub activation: Activation,
    pub out: &'a GpuBuffer<f32>,
}

/// Record one f32 GEMM into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, g: &GemmF32<'_>) -> Result<()> {
    let (x, m, weights) = (g.x, g.m, g.weights);
    if weights.kh != 1 || weights.kw != 1 {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "weights are {}x{}, gemm_f32 needs 1x1",
                weights.kh, weights.kw
            ),
        ));
    }
    let k4 = weights.k4();
    if x.len() != m * k4 * 4 {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "x has {} values, expected [{m}, {}] for k = {}",
                x.len(),
                k4 * 4,
                weights.cin
            ),
        ));
    }
    let n_pad = weights.n_padded();
    if g.out.len() != m * n_pad {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "out has {} values, expected [{m}, {n_pad}] for n = {}",
                g.out.len(),
                weights.n
            ),
        ));
    }
    let (lo, hi) = g.activation.bounds();
    let params = GemmF32Params {
        m: to_u32("gemm_f32", m)?,
        n: to_u32("gemm_f32", n_pad)?,
        k4: to_u32("gemm_f32", k4)?,
        _pad0: 0,
        lo,
        hi,
        _pad1: 0,
        _pad2: 0,
    };
    let groups = [n_pad.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::GemmF32,
        &[
            x.bind(),
            weights.w.bind(),
            weights.bias.bind(),
            g.out.bind(),
        ],
        &params,
        groups,
    )
}

/// A size as a shader `u32`, or an error naming `op`.
pub(crate) fn to_u32(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::range(op, format!("size {v} does not fit in u32")))
}
