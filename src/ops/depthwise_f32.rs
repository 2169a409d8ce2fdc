//! Launchers of `shaders/depthwise_f32.wgsl`: f32 depthwise convolution (any stride, asymmetric
//! zero padding, batch; kernels whose staged input tile fits the shader's 36×36 capacity) with
//! bias and a fused activation clamp, and its backward passes (input gradient by gathering valid
//! taps, any kernel; split weight and bias gradients summed by `gemm_f32_sum_partials`).
//! Spec: `src/reference/depthwise_f32.rs`.
//!
//! input, out, dy, dx: `GpuF32Tensor` (NHWC, channels padded to 4); weights:
//! `F32DepthwiseWeights`; dw, db: the layout of `F32DepthwiseWeights::w` / `::bias`
//! ([kh][kw][4·ceil(c/4)] and [4·ceil(c/4)], padding written 0).

use super::conv_f32::check_tensor;
use super::gemm_f32::{check_len, to_u32, Split};
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
    pub batch: u32,
    pub splits: u32,
    pub split_rows: u32,
    pub _pad1: u32,
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

    /// Gradient buffers of these weights and bias (same layouts), zeroed.
    pub fn alloc_grads(&self, gpu: &Gpu) -> Result<(GpuBuffer<f32>, GpuBuffer<f32>)> {
        Ok((gpu.alloc(self.w.len())?, gpu.alloc(self.bias.len())?))
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
    let (oh, ow) = super::window_out_hw(
        "depthwise_f32",
        input,
        (weights.kh, weights.kw),
        weights.c,
        window,
    )?;
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
        tile_h: u(tile_h)?,
        tile_w: u(tile_w)?,
        lo,
        hi,
        ..dw_params("depthwise_f32", input.shape, os, win)?
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

/// Uniforms shared by the three entry points (clamp off, one split, no tile).
fn dw_params(
    op: &'static str,
    input: Shape,
    os: Shape,
    win: &Window,
) -> Result<DepthwiseF32Params> {
    let u = |v: usize| to_u32(op, v);
    Ok(DepthwiseF32Params {
        c4: u(input.c4())?,
        in_h: u(input.h)?,
        in_w: u(input.w)?,
        out_h: u(os.h)?,
        out_w: u(os.w)?,
        kh: u(win.kh)?,
        kw: u(win.kw)?,
        stride_h: u(win.stride_h)?,
        stride_w: u(win.stride_w)?,
        pad_top: u(win.pad_top)?,
        pad_left: u(win.pad_left)?,
        tile_h: 1,
        tile_w: 1,
        _pad0: 0,
        lo: -f32::MAX,
        hi: f32::MAX,
        batch: u(input.n)?,
        splits: 1,
        split_rows: 0,
        _pad1: 0,
    })
}

/// The output shape of `window` on `input` must be `dy`'s.
fn check_dy(op: &'static str, input: Shape, dy: Shape, win: &Window) -> Result<Shape> {
    let (oh, ow) = win.out_hw(op, input.h, input.w)?;
    let os = Shape::new(input.n, oh, ow, input.c);
    if dy != os {
        return Err(Error::shape(
            op,
            format!(
                "dy is {dy}, expected {os} for input {input} and {}x{} stride {}x{}",
                win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    Ok(os)
}

/// dL/dx of a depthwise convolution.
pub struct DepthwiseF32BackwardInput<'a> {
    pub dy: &'a GpuF32Tensor,
    pub weights: &'a F32DepthwiseWeights,
    pub window: Window,
    /// The input's shape; fully written (padding lanes 0).
    pub dx: &'a GpuF32Tensor,
}

/// Record the input gradient of a depthwise convolution into `enc`.
pub fn record_backward_input(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &DepthwiseF32BackwardInput<'_>,
) -> Result<()> {
    let op = "depthwise_f32_backward_input";
    let (dy, dx, win) = (a.dy, a.dx, &a.window);
    check_tensor(op, "dy", dy)?;
    check_tensor(op, "dx", dx)?;
    if (win.kh, win.kw, dx.shape.c) != (a.weights.kh, a.weights.kw, a.weights.c) {
        return Err(Error::shape(
            op,
            format!(
                "window {}x{} on input {}, weights are {}x{} for {} channels",
                win.kh, win.kw, dx.shape, a.weights.kh, a.weights.kw, a.weights.c
            ),
        ));
    }
    let os = check_dy(op, dx.shape, dy.shape, win)?;
    let params = dw_params(op, dx.shape, os, win)?;
    let words = to_u32(op, dx.shape.pixels() * dx.shape.c4())?;
    let groups = crate::gpu::grid_1d(words.div_ceil(64), gpu.max_workgroups_per_dim());
    let binds = [dy.data.bind(), a.weights.w.bind(), dx.data.bind()];
    enc.dispatch(
        gpu,
        Kernel::DepthwiseF32BackwardInput,
        &binds,
        &params,
        groups,
    )
}

/// dL/dw and dL/dbias of a depthwise convolution, given its input and dL/dy.
pub struct DepthwiseF32BackwardWeight<'a> {
    pub input: &'a GpuF32Tensor,
    pub dy: &'a GpuF32Tensor,
    pub window: Window,
    /// `[kh][kw][4·ceil(c/4)]`, fully written.
    pub dw: &'a GpuBuffer<f32>,
    /// `[4·ceil(c/4)]`, fully written.
    pub db: &'a GpuBuffer<f32>,
}

/// Channel words per weight-gradient workgroup and row lanes (16 × 16 in the shader).
const GRAD_WORDS: usize = 16;

/// Record the weight and bias gradients of a depthwise convolution into `enc`.
pub fn record_backward_weight(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &DepthwiseF32BackwardWeight<'_>,
) -> Result<()> {
    let op = "depthwise_f32_backward_weight";
    let (x, dy, win) = (a.input, a.dy, &a.window);
    check_tensor(op, "input", x)?;
    check_tensor(op, "dy", dy)?;
    let os = check_dy(op, x.shape, dy.shape, win)?;
    let (cp, taps) = (x.shape.c_padded(), win.kh * win.kw);
    check_len(op, "dw", a.dw.len(), taps, cp, x.shape.c)?;
    check_len(op, "db", a.db.len(), 1, cp, x.shape.c)?;
    let u = |v: usize| to_u32(op, v);
    let tiles = x.shape.c4().div_ceil(GRAD_WORDS) * taps;
    let split = Split::plan(os.pixels(), tiles, GRAD_WORDS);
    let params = DepthwiseF32Params {
        splits: u(split.splits)?,
        split_rows: u(split.rows)?,
        ..dw_params(op, x.shape, os, win)?
    };
    let groups = [
        u(x.shape.c4().div_ceil(GRAD_WORDS))?,
        u(taps)?,
        u(split.splits)?,
    ];
    let (ins, outs) = ([&x.data, &dy.data], [a.dw, a.db]);
    split.record(
        gpu,
        enc,
        Kernel::DepthwiseF32BackwardWeight,
        ins,
        outs,
        (&params, groups),
    )
}
