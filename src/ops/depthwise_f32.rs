//! Launcher of `shaders/depthwise_f32.wgsl`: f32 depthwise convolution (any stride, asymmetric
//! zero padding, batch; kernels whose staged input tile fits the shader's 36×36 capacity) with
//! bias and a fused activation clamp. Spec: `src/reference/depthwise_f32.rs`.
//!
//! input, out: `GpuF32Tensor` (NHWC, channels padded to 4); weights: `F32DepthwiseWeights`.

use super::conv_f32::check_tensor;
use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::gemm_f32::Activation;
use crate::reference::Window;
use crate::tensor::{GpuF32Tensor, Shape};

/// Uniforms of depthwise_f32.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DepthwiseF32Params {
    pub c4: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub tile_h: u32,
    pub tile_w: u32,
    pub _pad0: u32,
    pub lo: f32,
    pub hi: f32,
}

/// Output tile side of the shader (`TO`).
const TILE: usize = 16;
/// Staged input tile capacity of the shader in vec4 (`CAP`).
const TILE_CAP: usize = 1296;

/// f32 depthwise weights on the GPU: `[kh][kw][4·ceil(c/4)]` (padding lanes 0) and the bias
/// `[4·ceil(c/4)]`. Uploaded once per layer.
pub struct F32DepthwiseWeights {
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub w: GpuBuffer<f32>,
    pub bias: GpuBuffer<f32>,
}

impl F32DepthwiseWeights {
    /// `w`: host weights `[c][kh][kw]` (one filter per channel); `bias`: `c`.
    pub fn upload(
        gpu: &Gpu,
        w: &[f32],
        bias: &[f32],
        c: usize,
        kh: usize,
        kw: usize,
    ) -> Result<F32DepthwiseWeights> {
        if w.len() != c * kh * kw || c == 0 || kh == 0 || kw == 0 {
            return Err(Error::shape(
                "f32 depthwise weights",
                format!("{} values for [{c}, {kh}, {kw}]", w.len()),
            ));
        }
        if bias.len() != c {
            return Err(Error::shape(
                "f32 depthwise weights",
                format!("{} biases for {c} channels", bias.len()),
            ));
        }
        let cp = c.div_ceil(4) * 4;
        let mut packed = vec![0.0; kh * kw * cp];
        for ch in 0..c {
            for t in 0..kh * kw {
                packed[t * cp + ch] = w[ch * kh * kw + t];
            }
        }
        let mut b = bias.to_vec();
        b.resize(cp, 0.0);
        Ok(F32DepthwiseWeights {
            c,
            kh,
            kw,
            w: gpu.upload(&packed)?,
            bias: gpu.upload(&b)?,
        })
    }
}

/// One f32 depthwise convolution: `out = act(depthwise(input, weights) + bias)`.
pub struct DepthwiseF32<'a> {
    pub input: &'a GpuF32Tensor,
    pub weights: &'a F32DepthwiseWeights,
    pub window: Window,
    pub activation: Activation,
    pub out: &'a GpuF32Tensor,
}

/// The output shape of a depthwise layer on an `input`-shaped tensor.
pub fn output_shape(input: Shape, weights: &F32DepthwiseWeights, window: &Window) -> Result<Shape> {
    if window.kh != weights.kh || window.kw != weights.kw {
        return Err(Error::shape(
            "depthwise_f32",
            format!(
                "window is {}x{}, weights are {}x{}",
                window.kh, window.kw, weights.kh, weights.kw
            ),
        ));
    }
    if input.c != weights.c {
        return Err(Error::shape(
            "depthwise_f32",
            format!(
                "input {input} has {} channels, weights have {}",
                input.c, weights.c
            ),
        ));
    }
    let (oh, ow) = window.out_hw("depthwise_f32", input.h, input.w)?;
    Ok(Shape::new(input.n, oh, ow, input.c))
}

/// The largest output tile (≤ 16×16, no larger than the output) whose input tile plus halo fits
/// the shader's workgroup buffer.
fn choose_tile(win: &Window, out_h: usize, out_w: usize) -> Result<(usize, usize)> {
    for t in (1..=TILE).rev() {
        let (th, tw) = (t.min(out_h.max(1)), t.min(out_w.max(1)));
        let staged = ((th - 1) * win.stride_h + win.kh) * ((tw - 1) * win.stride_w + win.kw);
        if staged <= TILE_CAP {
            return Ok((th, tw));
        }
    }
    Err(Error::range(
        "depthwise_f32",
        format!(
            "{}x{} kernel needs {} staged values, the shader holds {TILE_CAP}",
            win.kh,
            win.kw,
            win.kh * win.kw
        ),
    ))
}

/// Record one f32 depthwise convolution into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, d: &DepthwiseF32<'_>) -> Result<()> {
    let (input, weights, win) = (d.input, d.weights, &d.window);
    check_tensor("depthwise_f32", "input", input)?;
    check_tensor("depthwise_f32", "output", d.out)?;
    let os = output_shape(input.shape, weights, win)?;
    if d.out.shape != os {
        return Err(Error::shape(
            "depthwise_f32",
            format!(
                "output is {}, expected {os} for input {} and {}x{} stride {}x{}",
                d.out.shape, input.shape, win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    let (tile_h, tile_w) = choose_tile(win, os.h, os.w)?;
    let c4 = input.shape.c4();
    let (lo, hi) = d.activation.bounds();
    let u = |v: usize| to_u32("depthwise_f32", v);
    let params = DepthwiseF32Params {
        c4: u(c4)?,
        in_h: u(input.shape.h)?,
        in_w: u(input.shape.w)?,
        out_h: u(os.h)?,
        out_w: u(os.w)?,
        kh: u(win.kh)?,
        kw: u(win.kw)?,
        stride_h: u(win.stride_h)?,
        stride_w: u(win.stride_w)?,
        pad_top: u(win.pad_top)?,
        pad_left: u(win.pad_left)?,
        tile_h: u(tile_h)?,
        tile_w: u(tile_w)?,
        _pad0: 0,
        lo,
        hi,
    };
    let groups = [
        u(os.w.div_ceil(tile_w))?,
        u(os.h.div_ceil(tile_h))?,
        u(os.n * c4)?,
    ];
    enc.dispatch(
        gpu,
        Kernel::DepthwiseF32,
        &[
            input.data.bind(),
            weights.w.bind(),
            weights.bias.bind(),
            d.out.data.bind(),
        ],
        &params,
        groups,
    )
}
