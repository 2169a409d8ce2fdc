//! Launcher of `shaders/depthwise.wgsl`: int8 depthwise convolution (3×3, 5×5, …; stride 1 or 2;
//! symmetric or TF-SAME padding) with the fused shift-only epilogue of gemm. Spec:
//! `src/reference/depthwise.rs`.
//!
//! x: packed codes [n][h][w][ceil(c/4)] (uint8 or int8); weights: `DepthwiseWeights`, host codes
//! `[c][kh][kw]` packed channel-last to `[kh][kw][ceil(c/4)]` words;
//! out: packed codes [n][oh][ow][ceil(c/4)] or int32 [n][oh][ow][4·ceil(c/4)] (`OutBuffer`).

use super::gemm::OutBuffer;
use super::{output_words, Epilogue};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::{check_reduction, Window};
use crate::tensor::{pack_codes, Shape};

/// Uniforms of depthwise.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DepthwiseParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c4: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub tile_h: u32,
    pub tile_w: u32,
    pub x_signed: u32,
    pub out_mode: u32,
    pub out_signed: u32,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
}

/// Output tile of one workgroup (pixels) and channel words per workgroup; see the shader header.
const OT_W: usize = 8;
const OT_H: usize = 8;
const CW: usize = 8;
/// Workgroup memory of the input tile, in words (the shader's `SMEM`).
const SMEM_WORDS: usize = 4096;

/// Depthwise int8 weights on the GPU: `[kh][kw][ceil(c/4)]` words, padding lanes 0.
pub struct DepthwiseWeights {
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub w: GpuBuffer<u32>,
}

impl DepthwiseWeights {
    /// `codes`: int8 codes (−127..=127) in PyTorch order `[c][kh][kw]`.
    pub fn upload(
        gpu: &Gpu,
        codes: &[i32],
        c: usize,
        kh: usize,
        kw: usize,
    ) -> Result<DepthwiseWeights> {
        if codes.len() != c * kh * kw || c == 0 || kh == 0 || kw == 0 {
            return Err(Error::shape(
                "depthwise weights",
                format!("{} codes for [{c}, {kh}, {kw}]", codes.len()),
            ));
        }
        if let Some(bad) = codes.iter().find(|&&q| !(-127..=127).contains(&q)) {
            return Err(Error::range(
                "depthwise weights",
                format!("weight code {bad} outside -127..=127"),
            ));
        }
        check_reduction("depthwise weights", kh * kw)?;
        // Transpose to [kh·kw][c] (channel-last), then pack four channels per word.
        let taps = kh * kw;
        let hwc: Vec<i32> = (0..taps * c)
            .map(|i| codes[(i % c) * taps + i / c])
            .collect();
        Ok(DepthwiseWeights {
            c,
            kh,
            kw,
            w: gpu.upload(&pack_codes(&hwc, c))?,
        })
    }
}

/// One depthwise convolution: `out = epilogue(depthwise(x, w))`.
pub struct Depthwise<'a> {
    pub x: &'a GpuBuffer<u32>,
    pub x_signedness: Signedness,
    /// Input shape (NHWC, logical channels).
    pub shape: Shape,
    pub window: Window,
    pub weights: &'a DepthwiseWeights,
    pub epilogue: &'a Epilogue,
    pub out: OutBuffer<'a>,
}

impl Depthwise<'_> {
    /// The output shape `[n, oh, ow, c]`.
    pub fn out_shape(&self) -> Result<Shape> {
        let (oh, ow) = self
            .window
            .out_hw("depthwise", self.shape.h, self.shape.w)?;
        Ok(Shape::new(self.shape.n, oh, ow, self.shape.c))
    }
}

/// Staged input tile (rows, columns) of a window; an error if it does not fit workgroup memory.
fn tile_hw(win: &Window) -> Result<(usize, usize)> {
    let th = (OT_H - 1) * win.stride_h + win.kh;
    let tw = (OT_W - 1) * win.stride_w + win.kw;
    if th * tw * CW > SMEM_WORDS {
        return Err(Error::range(
            "depthwise",
            format!(
                "{}x{} kernel with stride {}x{} needs a {th}x{tw} input tile, over the {SMEM_WORDS}-word workgroup tile",
                win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    Ok((th, tw))
}

/// Record one depthwise convolution into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, d: &Depthwise<'_>) -> Result<()> {
    let (s, win, wts, ep) = (d.shape, d.window, d.weights, d.epilogue);
    let o = d.out_shape()?;
    if (wts.kh, wts.kw) != (win.kh, win.kw) || wts.c != s.c {
        return Err(Error::shape(
            "depthwise",
            format!(
                "weights [{}, {}, {}] for input {s} and a {}x{} window",
                wts.c, wts.kh, wts.kw, win.kh, win.kw
            ),
        ));
    }
    if d.x.len() != s.pixels() * s.c4() {
        return Err(Error::shape(
            "depthwise",
            format!(
                "x has {} words, expected {} for {s}",
                d.x.len(),
                s.pixels() * s.c4()
            ),
        ));
    }
    if ep.n != s.c {
        return Err(Error::shape(
            "depthwise",
            format!("epilogue for {} channels, input has {}", ep.n, s.c),
        ));
    }
    if ep.clamp_lo > ep.clamp_hi {
        return Err(Error::range(
            "depthwise",
            format!("clamp {}..{} is empty", ep.clamp_lo, ep.clamp_hi),
        ));
    }
    let out_bind = d.out.check("depthwise", ep.output, o.pixels(), o.c)?;
    let (tile_h, tile_w) = tile_hw(&win)?;
    let (out_mode, out_signed) = output_words(ep.output);
    let params = DepthwiseParams {
        n: s.n as u32,
        h: s.h as u32,
        w: s.w as u32,
        c4: s.c4() as u32,
        c: s.c as u32,
        oh: o.h as u32,
        ow: o.w as u32,
        kh: win.kh as u32,
        kw: win.kw as u32,
        stride_h: win.stride_h as u32,
        stride_w: win.stride_w as u32,
        pad_top: win.pad_top as u32,
        pad_left: win.pad_left as u32,
        tile_h: tile_h as u32,
        tile_w: tile_w as u32,
        x_signed: (d.x_signedness == Signedness::Signed) as u32,
        out_mode,
        out_signed,
        clamp_lo: ep.clamp_lo,
        clamp_hi: ep.clamp_hi,
    };
    let groups = [
        o.w.div_ceil(OT_W) as u32,
        o.h.div_ceil(OT_H) as u32,
        (s.n * s.c4().div_ceil(CW)) as u32,
    ];
    enc.dispatch(
        gpu,
        Kernel::Depthwise,
        &[
            d.x.bind(),
            wts.w.bind(),
            ep.bias.bind(),
            ep.shift.bind(),
            out_bind,
        ],
        &params,
        groups,
    )
}
