//! Launcher of `shaders/conv.wgsl`: int8 conv2d as an implicit GEMM with the fused shift-only
//! epilogue. Spec: `src/reference/conv.rs`.
//!
//! x: packed codes NHWC `[n][h][w][ceil(cin/4)]` (uint8 or int8); weights: `PackedWeights`,
//! OHWI `[cout][kh][kw][ceil(cin/4)]` words; geometry: a `Window`; out: packed codes
//! `[n][oh][ow][ceil(cout/4)]` or int32 `[n][oh][ow][4·ceil(cout/4)]`, per the epilogue's output
//! kind (padding lanes written 0). A 1×1, stride-1, unpadded conv is a GEMM over `n·h·w` rows and
//! is recorded as one (`ops::gemm`).

use super::gemm::{self, Gemm, OutBuffer};
use super::{input_xor, output_words, Epilogue, PackedWeights};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::Window;
use crate::tensor::Shape;

/// Uniforms of conv.wgsl (same field order; 80 bytes, a multiple of 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub m: u32,
    pub n: u32,
    pub k4: u32,
    pub c4: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_top: i32,
    pub pad_left: i32,
    pub x_xor: u32,
    pub out_mode: u32,
    pub out_signed: u32,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
    pub n_valid: u32,
    pub _pad1: u32,
}

const TILE: usize = 64;

/// One conv2d: `out = epilogue(conv(x, w))` over a batch of NHWC images.
pub struct Conv2d<'a> {
    /// Packed input codes, `[n][h][w][ceil(c/4)]` words.
    pub x: &'a GpuBuffer<u32>,
    pub x_signedness: Signedness,
    /// Input shape (logical channels).
    pub shape: Shape,
    pub weights: &'a PackedWeights,
    pub window: Window,
    pub epilogue: &'a Epilogue,
    pub out: OutBuffer<'a>,
}

impl Conv2d<'_> {
    /// Output shape `[n, oh, ow, cout]`, or an error naming "conv" if the window does not fit.
    pub fn out_shape(&self) -> Result<Shape> {
        let (oh, ow) = self.window.out_hw("conv", self.shape.h, self.shape.w)?;
        Ok(Shape::new(self.shape.n, oh, ow, self.weights.n))
    }

    /// Whether `record` runs this conv as a plain GEMM (1×1 kernel, stride 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        let w = &self.window;
        w.kh == 1
            && w.kw == 1
            && w.stride_h == 1
            && w.stride_w == 1
            && w.pad_top == 0
            && w.pad_left == 0
            && w.pad_bottom == 0
            && w.pad_right == 0
    }

    /// Check every shape and size; returns the output shape.
    fn validate(&self) -> Result<Shape> {
        let (s, wts, win) = (self.shape, self.weights, &self.window);
        if s.h == 0 || s.w == 0 || s.c == 0 {
            return Err(Error::shape("conv", format!("empty input {s}")));
        }
        if wts.cin != s.c || wts.kh != win.kh || wts.kw != win.kw {
            return Err(Error::shape(
                "conv",
                format!(
                    "weights are OHWI [{}, {}, {}, {}]; input {s} with a {}x{} window needs \
                     [{}, {}, {}, {}]",
                    wts.n, wts.kh, wts.kw, wts.cin, win.kh, win.kw, wts.n, win.kh, win.kw, s.c
                ),
            ));
        }
        let out = self.out_shape()?;
        let want = s.pixels() * s.c4();
        if self.x.len() != want {
            return Err(Error::shape(
                "conv",
                format!(
                    "x has {} words, expected {want} for input {s} ([{}, {}, {}, {}] words)",
                    self.x.len(),
                    s.n,
                    s.h,
                    s.w,
                    s.c4()
                ),
            ));
        }
        if self.epilogue.n != wts.n {
            return Err(Error::shape(
                "conv",
                format!(
                    "epilogue for {} channels, weights have {}",
                    self.epilogue.n, wts.n
                ),
            ));
        }
        // The shader indexes with 32-bit integers (i32 for padded coordinates).
        let padded_h = s.h + win.pad_top + win.pad_bottom;
        let padded_w = s.w + win.pad_left + win.pad_right;
        let limit = i32::MAX as usize;
        if padded_h > limit || padded_w > limit || want > limit || out.pixels() > limit {
            return Err(Error::range(
                "conv",
                format!(
                    "input {s} padded to {padded_h}x{padded_w} is too large for 32-bit indexing"
                ),
            ));
        }
        Ok(out)
    }
}

/// Record one conv2d into `enc` (one dispatch: conv.wgsl, or gemm.wgsl for a pointwise conv).
pub fn record(gpu: &Gpu, enc: &mut Encoder, c: &Conv2d<'_>) -> Result<()> {
    let out_shape = c.validate()?;
    let (wts, ep, win) = (c.weights, c.epilogue, &c.window);
    let rows = out_shape.pixels();
    let out_bind = c.out.check("conv", ep.output, rows, wts.n)?;
    if c.is_pointwise() {
        let g = Gemm {
            x: c.x,
            x_signedness: c.x_signedness,
            m: rows,
            weights: wts,
            epilogue: ep,
            out: c.out,
        };
        return gemm::record(gpu, enc, &g);
    }
    let (out_mode, out_signed) = output_words(ep.output);
    let n_pad = wts.n.div_ceil(4) * 4;
    let params = ConvParams {
        m: rows as u32,
        n: n_pad as u32,
        k4: wts.k4() as u32,
        c4: c.shape.c4() as u32,
        in_h: c.shape.h as u32,
        in_w: c.shape.w as u32,
        out_h: out_shape.h as u32,
        out_w: out_shape.w as u32,
        kw: win.kw as u32,
        stride_h: win.stride_h as u32,
        stride_w: win.stride_w as u32,
        pad_top: win.pad_top as i32,
        pad_left: win.pad_left as i32,
        x_xor: input_xor(c.x_signedness),
        out_mode,
        out_signed,
        clamp_lo: ep.clamp_lo,
        clamp_hi: ep.clamp_hi,
        n_valid: wts.n as u32,
        _pad1: 0,
    };
    let groups = [n_pad.div_ceil(TILE) as u32, rows.div_ceil(TILE) as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::Conv,
        &[
            c.x.bind(),
            wts.w.bind(),
            wts.wsum.bind(),
            ep.bias.bind(),
            ep.shift.bind(),
            out_bind,
        ],
        &params,
        groups,
    )
}
