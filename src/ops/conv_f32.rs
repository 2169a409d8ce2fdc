//! Launcher of `shaders/conv_f32.wgsl`: f32 convolution (any kernel, stride, asymmetric zero
//! padding, batch) as an implicit GEMM with the tiling of the int8 GEMM, bias and a fused
//! activation clamp. A 1×1 stride-1 unpadded conv is recorded as `gemm_f32` instead.
//! Spec: `src/reference/conv_f32.rs`.
//!
//! input, out: `GpuF32Tensor` (NHWC, channels padded to 4); weights: `F32Weights` (OHWI).

use super::gemm_f32::{self, to_u32, F32Weights, GemmF32};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, Kernel};
use crate::reference::gemm_f32::Activation;
use crate::reference::Window;
use crate::tensor::{GpuF32Tensor, Shape};

/// Uniforms of conv_f32.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvF32Params {
    pub m: u32,
    pub n: u32,
    pub k4: u32,
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
    pub lo: f32,
    pub hi: f32,
}

const TILE: usize = 64;

/// One f32 convolution: `out = act(conv(input, weights) + bias)`.
pub struct ConvF32<'a> {
    pub input: &'a GpuF32Tensor,
    pub weights: &'a F32Weights,
    pub window: Window,
    pub activation: Activation,
    pub out: &'a GpuF32Tensor,
}

/// The output shape of `weights` applied to an `input`-shaped tensor with `window`.
pub fn output_shape(input: Shape, weights: &F32Weights, window: &Window) -> Result<Shape> {
    if window.kh != weights.kh || window.kw != weights.kw {
        return Err(Error::shape(
            "conv_f32",
            format!(
                "window is {}x{}, weights are {}x{}",
                window.kh, window.kw, weights.kh, weights.kw
            ),
        ));
    }
    if input.c != weights.cin {
        return Err(Error::shape(
            "conv_f32",
            format!(
                "input {input} has {} channels, weights expect {}",
                input.c, weights.cin
            ),
        ));
    }
    let (oh, ow) = window.out_hw("conv_f32", input.h, input.w)?;
    Ok(Shape::new(input.n, oh, ow, weights.n))
}

/// Check that a tensor's buffer holds its padded shape.
pub(crate) fn check_tensor(op: &'static str, what: &str, t: &GpuF32Tensor) -> Result<()> {
    let want = t.shape.pixels() * t.shape.c_padded();
    if t.data.len() != want {
        return Err(Error::shape(
            op,
            format!(
                "{what} buffer has {} values, shape {} needs {want}",
                t.data.len(),
                t.shape
            ),
        ));
    }
    Ok(())
}

/// Record one f32 convolution into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, c: &ConvF32<'_>) -> Result<()> {
    let (input, weights, win) = (c.input, c.weights, &c.window);
    check_tensor("conv_f32", "input", input)?;
    check_tensor("conv_f32", "output", c.out)?;
    let os = output_shape(input.shape, weights, win)?;
    if c.out.shape != os {
        return Err(Error::shape(
            "conv_f32",
            format!(
                "output is {}, expected {os} for input {} and {}x{} stride {}x{}",
                c.out.shape, input.shape, win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    let pointwise = win.kh == 1
        && win.kw == 1
        && win.stride_h == 1
        && win.stride_w == 1
        && win.pad_top == 0
        && win.pad_left == 0
        && win.pad_bottom == 0
        && win.pad_right == 0;
    if pointwise {
        let g = GemmF32 {
            x: &input.data,
            m: input.shape.pixels(),
            weights,
            activation: c.activation,
            out: &c.out.data,
        };
        return gemm_f32::record(gpu, enc, &g);
    }
    let m = os.pixels();
    let n_pad = weights.n_padded();
    let (lo, hi) = c.activation.bounds();
    let u = |v: usize| to_u32("conv_f32", v);
    let params = ConvF32Params {
        m: u(m)?,
        n: u(n_pad)?,
        k4: u(weights.k4())?,
        c4: u(input.shape.c4())?,
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
        lo,
        hi,
    };
    let groups = [n_pad.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::ConvF32,
        &[
            input.data.bind(),
            weights.w.bind(),
            weights.bias.bind(),
            c.out.data.bind(),
        ],
        &params,
        groups,
    )
}
