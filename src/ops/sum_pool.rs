//! Launcher of `shaders/sum_pool.wgsl`: F8Net's global average pool in training,
//! `Σ_{h,w} x / 2^round(log2(h·w))`, forward and backward. Spec: `src/reference/sum_pool.rs`.
//!
//! x, dx: `GpuF32Tensor` `[n][h][w][4·ceil(c/4)]`; y, dy: `[n][1][1][4·ceil(c/4)]` (padding
//! lanes written 0). The backward writes dx (callers accumulate it where needed).

use super::conv_f32::check_tensor;
use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, Kernel};
use crate::reference::sum_pool::sum_pool_divisor;
use crate::tensor::{GpuF32Tensor, Shape};

/// Uniforms of sum_pool.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SumPoolParams {
    pub n: u32,
    pub hw: u32,
    pub c4: u32,
    pub c: u32,
    pub words: u32,
    pub inv: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

const WG: usize = 64;

/// The pooled shape of an input.
pub fn output_shape(input: Shape) -> Shape {
    Shape::new(input.n, 1, 1, input.c)
}

/// `x` (the input) and `y` (the pooled tensor) of one pool, forward or backward.
pub struct SumPool<'a> {
    pub x: &'a GpuF32Tensor,
    pub y: &'a GpuF32Tensor,
}

fn plan(
    gpu: &Gpu,
    op: &'static str,
    a: &SumPool<'_>,
    words: usize,
) -> Result<(SumPoolParams, [u32; 3])> {
    check_tensor(op, "x", a.x)?;
    check_tensor(op, "y", a.y)?;
    let s = a.x.shape;
    if s.is_empty() || a.y.shape != output_shape(s) {
        return Err(Error::shape(op, format!("input {s}, pooled {}", a.y.shape)));
    }
    if std::ptr::eq(&a.x.data, &a.y.data) {
        return Err(Error::shape(op, "input and output are the same buffer"));
    }
    let u = |v: usize| to_u32(op, v);
    let p = SumPoolParams {
        n: u(s.n)?,
        hw: u(s.h * s.w)?,
        c4: u(s.c4())?,
        c: u(s.c)?,
        words: u(words)?,
        inv: 1.0 / sum_pool_divisor(s),
        ..SumPoolParams::default()
    };
    Ok((
        p,
        grid_1d(u(words.div_ceil(WG))?, gpu.max_workgroups_per_dim()),
    ))
}

/// Record `y = Σ_{h,w} x / 2^shift` into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, a: &SumPool<'_>) -> Result<()> {
    let (p, grid) = plan(gpu, "sum_pool", a, a.x.shape.n * a.x.shape.c4())?;
    enc.dispatch(
        gpu,
        Kernel::SumPool,
        &[a.x.data.bind(), a.y.data.bind()],
        &p,
        grid,
    )
}

/// Record `x = y / 2^shift` broadcast over the pixels (here `y` holds dL/dy, `x` receives dL/dx).
pub fn record_backward(gpu: &Gpu, enc: &mut Encoder, a: &SumPool<'_>) -> Result<()> {
    let s = a.x.shape;
    let (p, grid) = plan(gpu, "sum_pool_backward", a, s.pixels() * s.c4())?;
    enc.dispatch(
        gpu,
        Kernel::SumPoolBackward,
        &[a.y.data.bind(), a.x.data.bind()],
        &p,
        grid,
    )
}
