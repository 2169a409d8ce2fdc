//! Launchers of `shaders/conv_f32.wgsl`: f32 dense convolution (any kernel, stride, asymmetric
//! zero padding, batch) as an implicit GEMM with the tiling of the int8 GEMM, bias and a fused
//! activation clamp, and its backward passes (input gradient by stride phases; split-K weight and
//! bias gradients). A 1×1 stride-1 unpadded conv is recorded as the `gemm_f32` kernels instead.
//! Spec: `src/reference/conv_f32.rs` (groups = 1).
//!
//! input, out, dy, dx: `GpuF32Tensor` (NHWC, channels padded to 4); weights: `F32Weights` (OHWI);
//! dw, db: the layout of `F32Weights::w` / `::bias` ([4·ceil(n/4)][kh][kw][4·ceil(cin/4)] and
//! [4·ceil(n/4)], padding written 0).

use super::gemm_f32::{self, check_len, to_u32, F32Weights, GemmF32, Split};
use super::gemm_f32::{GRAD_SLAB, GRAD_TILE_WORDS};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
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
    pub batch: u32,
    pub splits: u32,
    pub split_rows: u32,
    pub _pad0: u32,
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
    let (oh, ow) = super::window_out_hw(
        "conv_f32",
        input,
        (weights.kh, weights.kw),
        weights.cin,
        window,
    )?;
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
    if is_pointwise(win) {
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
    let params = ConvF32Params {
        lo,
        hi,
        ..conv_params("conv_f32", input.shape, os, win, n_pad, weights.k4())?
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

/// Uniforms shared by the three entry points (`n`, `k4` as each documents; clamp off; one split).
fn conv_params(
    op: &'static str,
    input: Shape,
    os: Shape,
    win: &Window,
    n: usize,
    k4: usize,
) -> Result<ConvF32Params> {
    let u = |v: usize| to_u32(op, v);
    Ok(ConvF32Params {
        m: u(os.pixels())?,
        n: u(n)?,
        k4: u(k4)?,
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
        lo: -f32::MAX,
        hi: f32::MAX,
        batch: u(input.n)?,
        splits: 1,
        split_rows: 0,
        _pad0: 0,
    })
}

fn is_pointwise(win: &Window) -> bool {
    (win.kh, win.kw, win.stride_h, win.stride_w) == (1, 1, 1, 1)
        && (win.pad_top, win.pad_left, win.pad_bottom, win.pad_right) == (0, 0, 0, 0)
}

/// Check that `dy` has the output shape of `weights` on an `input`-shaped tensor.
fn check_dy(
    op: &'static str,
    input: Shape,
    dy: Shape,
    weights: &F32Weights,
    win: &Window,
) -> Result<()> {
    let os = output_shape(input, weights, win).map_err(|e| Error::shape(op, e.to_string()))?;
    if dy != os {
        return Err(Error::shape(
            op,
            format!(
                "dy is {dy}, expected {os} for input {input} and {}x{} stride {}x{}",
                win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    Ok(())
}

/// dL/dx of a convolution: `dx = col2im(dy · w)`.
pub struct ConvF32BackwardInput<'a> {
    pub dy: &'a GpuF32Tensor,
    pub weights: &'a F32Weights,
    pub window: Window,
    /// The input's shape; fully written (padding lanes 0).
    pub dx: &'a GpuF32Tensor,
}

/// Record the input gradient of a convolution into `enc`.
pub fn record_backward_input(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &ConvF32BackwardInput<'_>,
) -> Result<()> {
    let op = "conv_f32_backward_input";
    let (dy, dx, weights, win) = (a.dy, a.dx, a.weights, &a.window);
    check_tensor(op, "dy", dy)?;
    check_tensor(op, "dx", dx)?;
    check_dy(op, dx.shape, dy.shape, weights, win)?;
    if is_pointwise(win) {
        let g = gemm_f32::GemmF32BackwardInput {
            dy: &dy.data,
            m: dy.shape.pixels(),
            weights,
            dx: &dx.data,
        };
        return gemm_f32::record_backward_input(gpu, enc, &g);
    }
    let (s, cp) = (dx.shape, dx.shape.c_padded());
    let params = conv_params(op, s, dy.shape, win, cp, weights.n_padded() / 4)?;
    // Rows of the largest stride phase.
    let rows = s.n * s.h.div_ceil(win.stride_h) * s.w.div_ceil(win.stride_w);
    let u = |v: usize| to_u32(op, v);
    let groups = [
        u(cp.div_ceil(TILE))?,
        u(rows.div_ceil(TILE))?,
        u(win.stride_h * win.stride_w)?,
    ];
    let binds = [dy.data.bind(), weights.w.bind(), dx.data.bind()];
    enc.dispatch(gpu, Kernel::ConvF32BackwardInput, &binds, &params, groups)
}

/// dL/dw and dL/dbias of a convolution with `cout` output channels, given its input and dL/dy.
pub struct ConvF32BackwardWeight<'a> {
    pub input: &'a GpuF32Tensor,
    pub dy: &'a GpuF32Tensor,
    pub window: Window,
    /// `[4·ceil(cout/4)][kh][kw][4·ceil(cin/4)]`, fully written.
    pub dw: &'a GpuBuffer<f32>,
    /// `[4·ceil(cout/4)]`, fully written.
    pub db: &'a GpuBuffer<f32>,
}

/// Record the weight and bias gradients of a convolution into `enc`.
pub fn record_backward_weight(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &ConvF32BackwardWeight<'_>,
) -> Result<()> {
    let op = "conv_f32_backward_weight";
    let (x, dy, win) = (a.input, a.dy, &a.window);
    check_tensor(op, "input", x)?;
    check_tensor(op, "dy", dy)?;
    let (oh, ow) = win.out_hw(op, x.shape.h, x.shape.w)?;
    let os = Shape::new(x.shape.n, oh, ow, dy.shape.c);
    if dy.shape != os || dy.shape.c == 0 {
        return Err(Error::shape(
            op,
            format!(
                "dy is {}, expected [{}, {oh}, {ow}, cout] for input {} and {}x{} stride {}x{}",
                dy.shape, x.shape.n, x.shape, win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    let (np, k4) = (dy.shape.c_padded(), win.kh * win.kw * x.shape.c4());
    check_len(op, "dw", a.dw.len(), np, k4 * 4, dy.shape.c)?;
    check_len(op, "db", a.db.len(), 1, np, dy.shape.c)?;
    if is_pointwise(win) {
        let g = gemm_f32::GemmF32BackwardWeight {
            x: &x.data,
            dy: &dy.data,
            m: os.pixels(),
            n: dy.shape.c,
            k: x.shape.c,
            dw: a.dw,
            db: a.db,
        };
        return gemm_f32::record_backward_weight(gpu, enc, &g);
    }
    let u = |v: usize| to_u32(op, v);
    let tiles = [k4.div_ceil(GRAD_TILE_WORDS), np.div_ceil(TILE)];
    let split = Split::plan(os.pixels(), tiles[0] * tiles[1], GRAD_SLAB);
    let params = ConvF32Params {
        splits: u(split.splits)?,
        split_rows: u(split.rows)?,
        ..conv_params(op, x.shape, os, win, np, k4)?
    };
    let groups = [u(tiles[0])?, u(tiles[1])?, u(split.splits)?];
    let (ins, outs) = ([&x.data, &dy.data], [a.dw, a.db]);
    split.record(
        gpu,
        enc,
        Kernel::ConvF32BackwardWeight,
        ins,
        outs,
        (&params, groups),
    )
}
