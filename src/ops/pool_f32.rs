//! Launcher of `shaders/pool_f32.wgsl`: f32 max pool (with argmax) and average pool
//! (count_include_pad = false; global = the h×w window), forward and backward, for training.
//! Spec: `src/reference/pool_f32.rs`.
//!
//! x, dx: `GpuF32Tensor` [n][h][w][4·ceil(c/4)]; y, dy: [n][oh][ow][4·ceil(c/4)] (padding 0,
//! written 0); argmax: `GpuBuffer<u32>` with y's padded layout, `iy·w + ix` per element (padding
//! lanes 0). Windows must fit and have padding smaller than the kernel.

use super::conv_f32::check_tensor;
use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Bind, Encoder, Gpu, GpuBuffer, Kernel};
pub use crate::reference::pool_f32::global_window;
use crate::reference::{pool_f32::pool_out_shape, Window};
use crate::tensor::{GpuF32Tensor, Shape};

/// Uniforms of pool_f32.wgsl, shared by all entry points (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolF32Params {
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
    pub groups_x: u32,
    pub total: u32,
    pub _pad0: u32,
}

/// Invocations per workgroup and pixels per invocation.
const WG: usize = 64;
const PX: usize = 4;

/// The output shape of pooling an `input`-shaped tensor with `window`.
pub fn output_shape(input: Shape, window: &Window) -> Result<Shape> {
    pool_out_shape("pool_f32", input, window)
}

#[derive(Clone, Copy)]
enum Pass {
    Forward,
    Backward,
}

/// Check the input (x or dx) and output (y or dy) tensors against the window; build the params
/// and grid for a forward (one invocation per 4 output pixels) or backward (per 4 input pixels).
fn plan(
    gpu: &Gpu,
    op: &'static str,
    input: &GpuF32Tensor,
    output: &GpuF32Tensor,
    win: &Window,
    pass: Pass,
) -> Result<(PoolF32Params, [u32; 3])> {
    check_tensor(op, "input", input)?;
    check_tensor(op, "output", output)?;
    let (s, o) = (input.shape, pool_out_shape(op, input.shape, win)?);
    if output.shape != o {
        return Err(Error::shape(
            op,
            format!(
                "output is {}, expected {o} for input {s} and {}x{} stride {}x{}",
                output.shape, win.kh, win.kw, win.stride_h, win.stride_w
            ),
        ));
    }
    if std::ptr::eq(&input.data, &output.data) {
        return Err(Error::shape(op, "input and output are the same buffer"));
    }
    let (rows, width) = match pass {
        Pass::Forward => (o.h, o.w),
        Pass::Backward => (s.h, s.w),
    };
    let groups_x = width.div_ceil(PX);
    let total = s.n * rows * groups_x * s.c4();
    let u = |v: usize| to_u32(op, v);
    let params = PoolF32Params {
        n: u(s.n)?,
        h: u(s.h)?,
        w: u(s.w)?,
        c4: u(s.c4())?,
        c: u(s.c)?,
        oh: u(o.h)?,
        ow: u(o.w)?,
        kh: u(win.kh)?,
        kw: u(win.kw)?,
        stride_h: u(win.stride_h)?,
        stride_w: u(win.stride_w)?,
        pad_top: u(win.pad_top)?,
        pad_left: u(win.pad_left)?,
        groups_x: u(groups_x)?,
        total: u(total)?,
        _pad0: 0,
    };
    let grid = match total {
        0 => [0, 0, 0],
        t => grid_1d(u(t.div_ceil(WG))?, gpu.max_workgroups_per_dim()),
    };
    Ok((params, grid))
}

fn check_argmax(op: &'static str, argmax: &GpuBuffer<u32>, o: Shape) -> Result<()> {
    let want = o.pixels() * o.c_padded();
    if argmax.len() != want {
        return Err(Error::shape(
            op,
            format!(
                "argmax has {} values, expected {want} for {o}",
                argmax.len()
            ),
        ));
    }
    Ok(())
}

/// Max pool forward: `out` = window maxima, `argmax` = their input positions `iy·w + ix`.
pub struct MaxPoolF32<'a> {
    pub x: &'a GpuF32Tensor,
    pub window: Window,
    pub out: &'a GpuF32Tensor,
    pub argmax: &'a GpuBuffer<u32>,
}

/// Record one max pool forward into `enc`.
pub fn record_max_pool(gpu: &Gpu, enc: &mut Encoder, m: &MaxPoolF32<'_>) -> Result<()> {
    let op = "max_pool_f32";
    let (params, grid) = plan(gpu, op, m.x, m.out, &m.window, Pass::Forward)?;
    check_argmax(op, m.argmax, m.out.shape)?;
    let binds: [Bind<'_>; 3] = [m.x.data.bind(), m.out.data.bind(), m.argmax.bind()];
    enc.dispatch(gpu, Kernel::MaxPoolF32, &binds, &params, grid)
}

/// Max pool backward: `dx[i] = Σ dy[o]` over the outputs whose argmax is i.
pub struct MaxPoolF32Backward<'a> {
    pub dy: &'a GpuF32Tensor,
    pub argmax: &'a GpuBuffer<u32>,
    pub window: Window,
    pub dx: &'a GpuF32Tensor,
}

/// Record one max pool backward into `enc`.
pub fn record_max_pool_backward(
    gpu: &Gpu,
    enc: &mut Encoder,
    m: &MaxPoolF32Backward<'_>,
) -> Result<()> {
    let op = "max_pool_f32_backward";
    let (params, grid) = plan(gpu, op, m.dx, m.dy, &m.window, Pass::Backward)?;
    check_argmax(op, m.argmax, m.dy.shape)?;
    let binds: [Bind<'_>; 3] = [m.dy.data.bind(), m.argmax.bind(), m.dx.data.bind()];
    enc.dispatch(gpu, Kernel::MaxPoolF32Backward, &binds, &params, grid)
}

/// Average pool forward (count_include_pad = false); `global_window(x.shape)` for global pooling.
pub struct AvgPoolF32<'a> {
    pub x: &'a GpuF32Tensor,
    pub window: Window,
    pub out: &'a GpuF32Tensor,
}

/// Record one average pool forward into `enc`.
pub fn record_avg_pool(gpu: &Gpu, enc: &mut Encoder, a: &AvgPoolF32<'_>) -> Result<()> {
    let (params, grid) = plan(gpu, "avg_pool_f32", a.x, a.out, &a.window, Pass::Forward)?;
    let binds = [a.x.data.bind(), a.out.data.bind()];
    enc.dispatch(gpu, Kernel::AvgPoolF32, &binds, &params, grid)
}

/// Average pool backward: `dx[i] = Σ dy[o] / cnt[o]` over the outputs whose window holds i.
pub struct AvgPoolF32Backward<'a> {
    pub dy: &'a GpuF32Tensor,
    pub window: Window,
    pub dx: &'a GpuF32Tensor,
}

/// Record one average pool backward into `enc`.
pub fn record_avg_pool_backward(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &AvgPoolF32Backward<'_>,
) -> Result<()> {
    let op = "avg_pool_f32_backward";
    let (params, grid) = plan(gpu, op, a.dx, a.dy, &a.window, Pass::Backward)?;
    let binds = [a.dy.data.bind(), a.dx.data.bind()];
    enc.dispatch(gpu, Kernel::AvgPoolF32Backward, &binds, &params, grid)
}
