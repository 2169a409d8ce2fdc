//! Launcher of `shaders/gemm.wgsl`: int8 GEMM / linear / 1×1 stride-1 conv with the fused
//! shift-only epilogue. Spec: `src/reference/gemm.rs`.
//!
//! x: packed codes [m][ceil(k/4)]; weights: `PackedWeights` with kh = kw = 1;
//! out: packed codes [m][ceil(n/4)] or int32 [m][4·ceil(n/4)], per the epilogue's output kind.

use super::{input_xor, output_words, Epilogue, PackedWeights};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{Bind, Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::OutputKind;

/// Uniforms of gemm.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k4: u32,
    pub x_xor: u32,
    pub out_mode: u32,
    pub out_signed: u32,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
    pub n_valid: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

const TILE: usize = 64;

/// The output buffer of a conv/linear kernel: packed codes or int32.
#[derive(Clone, Copy)]
pub enum OutBuffer<'a> {
    Codes(&'a GpuBuffer<u32>),
    Int32(&'a GpuBuffer<i32>),
}

impl OutBuffer<'_> {
    pub(crate) fn check(
        &self,
        op: &'static str,
        output: OutputKind,
        rows: usize,
        n: usize,
    ) -> Result<Bind<'_>> {
        let (bind, len, want) = match (self, output) {
            (OutBuffer::Codes(b), OutputKind::Codes(_)) => {
                (b.bind(), b.len(), rows * n.div_ceil(4))
            }
            (OutBuffer::Int32(b), OutputKind::Int32) => {
                (b.bind(), b.len(), rows * n.div_ceil(4) * 4)
            }
            _ => {
                return Err(Error::shape(
                    op,
                    format!("output buffer kind does not match epilogue output {output:?}"),
                ))
            }
        };
        if len != want {
            return Err(Error::shape(
                op,
                format!("output buffer has {len} elements, expected {want}"),
            ));
        }
        Ok(bind)
    }
}

/// One GEMM: `out = epilogue(x · wᵀ)` for `m` rows of `x`.
pub struct Gemm<'a> {
    pub x: &'a GpuBuffer<u32>,
    pub x_signedness: Signedness,
    pub m: usize,
    pub weights: &'a PackedWeights,
    pub epilogue: &'a Epilogue,
    pub out: OutBuffer<'a>,
}

/// Record one GEMM into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, g: &Gemm<'_>) -> Result<()> {
    let (x, m, weights, ep) = (g.x, g.m, g.weights, g.epilogue);
    if weights.kh != 1 || weights.kw != 1 {
        return Err(Error::shape(
            "gemm",
            format!("weights are {}x{}, gemm needs 1x1", weights.kh, weights.kw),
        ));
    }
    let k4 = weights.k4();
    if x.len() != m * k4 {
        return Err(Error::shape(
            "gemm",
            format!(
                "x has {} words, expected [{m}, {k4}] for k = {}",
                x.len(),
                weights.cin
            ),
        ));
    }
    if ep.n != weights.n {
        return Err(Error::shape(
            "gemm",
            format!("epilogue for {} channels, weights have {}", ep.n, weights.n),
        ));
    }
    let out_bind = g.out.check("gemm", ep.output, m, weights.n)?;
    let (out_mode, out_signed) = output_words(ep.output);
    let n_pad = weights.n.div_ceil(4) * 4;
    let params = GemmParams {
        m: m as u32,
        n: n_pad as u32,
        k4: k4 as u32,
        x_xor: input_xor(g.x_signedness),
        out_mode,
        out_signed,
        clamp_lo: ep.clamp_lo,
        clamp_hi: ep.clamp_hi,
        n_valid: weights.n as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    let groups = [n_pad.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::Gemm,
        &[
            x.bind(),
            weights.w.bind(),
            weights.wsum.bind(),
            ep.bias.bind(),
            ep.shift.bind(),
            out_bind,
        ],
        &params,
        groups,
    )
}
