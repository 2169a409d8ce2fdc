//! Launcher of `shaders/pool.wgsl`: max pool on packed 8-bit codes and global average pool as a
//! sum plus an FL change (F8NET.md §2.9). Spec: `src/reference/pool.rs`.
//!
//! Max pool: x packed codes [n][h][w][ceil(c/4)] → out packed codes [n][oh][ow][ceil(c/4)] of the
//! same format. Global average pool: x packed codes [n][h][w][ceil(c/4)] or int32
//! [n][h][w][4·ceil(c/4)] at FL `fl_in` → out int32 [n][1][1][4·ceil(c/4)] at
//! `fl_in + avgpool_shift(h·w)`.

use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{grid_1d, Bind, Encoder, Gpu, Kernel};
pub use crate::reference::pool::{avgpool_compensation, avgpool_shift};
use crate::reference::{pool::pool_out_hw, Window};
use crate::tensor::{GpuI32Tensor, GpuQTensor, Shape};

/// Uniforms of pool.wgsl, shared by both entry points (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
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
    pub x_signed: u32,
    pub in_mode: u32,
    pub ox_groups: u32,
    pub total: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Max pool: invocations per workgroup and output pixels per invocation.
const WG: usize = 64;
const PX: usize = 4;
/// Global average pool: channel words per workgroup.
const GCW: usize = 8;

fn check_len(op: &'static str, what: &str, len: usize, want: usize, shape: Shape) -> Result<()> {
    if len != want {
        return Err(Error::shape(
            op,
            format!("{what} has {len} elements, expected {want} for {shape}"),
        ));
    }
    Ok(())
}

/// One max pool: `out = max over each window of x` (same format in and out).
pub struct MaxPool<'a> {
    pub x: &'a GpuQTensor,
    pub window: Window,
    pub out: &'a GpuQTensor,
}

/// The output shape of a max pool, or an error for a window that does not fit or whose padding
/// is not smaller than the kernel.
pub fn max_pool_out_shape(shape: Shape, window: &Window) -> Result<Shape> {
    let (oh, ow) = pool_out_hw("max_pool", window, shape.h, shape.w)?;
    Ok(Shape::new(shape.n, oh, ow, shape.c))
}

/// Record one max pool into `enc`.
pub fn record_max_pool(gpu: &Gpu, enc: &mut Encoder, m: &MaxPool<'_>) -> Result<()> {
    let (x, win, out) = (m.x, &m.window, m.out);
    let s = x.shape;
    let o = max_pool_out_shape(s, win)?;
    if out.shape != o || out.format != x.format {
        return Err(Error::shape(
            "max_pool",
            format!(
                "output {} {:?}, expected {o} {:?} for input {s}",
                out.shape, out.format, x.format
            ),
        ));
    }
    check_len("max_pool", "x", x.data.len(), s.pixels() * s.c4(), s)?;
    check_len("max_pool", "out", out.data.len(), o.pixels() * o.c4(), o)?;
    let ox_groups = o.w.div_ceil(PX);
    let total = o.n * o.h * ox_groups * o.c4();
    let params = PoolParams {
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
        x_signed: (x.format.signedness == Signedness::Signed) as u32,
        ox_groups: ox_groups as u32,
        total: total as u32,
        ..PoolParams::default()
    };
    let groups = grid_1d(total.div_ceil(WG) as u32, gpu.max_workgroups_per_dim());
    let groups = if total == 0 { [0, 0, 0] } else { groups };
    enc.dispatch(
        gpu,
        Kernel::MaxPool,
        &[x.data.bind(), out.data.bind()],
        &params,
        groups,
    )
}

/// The input of a global average pool: packed codes or an int32 stream, with its FL.
#[derive(Clone, Copy)]
pub enum PoolInput<'a> {
    Codes(&'a GpuQTensor),
    Int32(&'a GpuI32Tensor),
}

impl PoolInput<'_> {
    pub fn shape(&self) -> Shape {
        match self {
            PoolInput::Codes(t) => t.shape,
            PoolInput::Int32(t) => t.shape,
        }
    }

    pub fn fl(&self) -> i32 {
        match self {
            PoolInput::Codes(t) => t.format.fl,
            PoolInput::Int32(t) => t.fl,
        }
    }
}

/// One global average pool: `out[b][c] = Σ_{y,x} x[b][y][x][c]` at FL `fl_in + avgpool_shift(h·w)`.
pub struct GlobalAvgPool<'a> {
    pub x: PoolInput<'a>,
    pub out: &'a GpuI32Tensor,
}

/// The output shape `[n, 1, 1, c]` and FL of a global average pool of `x`.
pub fn global_avg_pool_out(x: &PoolInput<'_>) -> (Shape, i32) {
    let s = x.shape();
    (
        Shape::new(s.n, 1, 1, s.c),
        x.fl() + avgpool_shift(s.h * s.w),
    )
}

/// Record one global average pool into `enc`.
pub fn record_global_avg_pool(gpu: &Gpu, enc: &mut Encoder, g: &GlobalAvgPool<'_>) -> Result<()> {
    let s = g.x.shape();
    if s.h * s.w == 0 {
        return Err(Error::shape(
            "global_avg_pool",
            format!("empty spatial extent in {s}"),
        ));
    }
    let (o, fl) = global_avg_pool_out(&g.x);
    if g.out.shape != o || g.out.fl != fl {
        return Err(Error::shape(
            "global_avg_pool",
            format!(
                "output {} at FL {}, expected {o} at FL {fl} for input {s}",
                g.out.shape, g.out.fl
            ),
        ));
    }
    let (bind, in_mode, x_signed): (Bind<'_>, u32, u32) = match g.x {
        PoolInput::Codes(t) => {
            check_len("global_avg_pool", "x", t.data.len(), s.pixels() * s.c4(), s)?;
            (
                t.data.bind(),
                0,
                (t.format.signedness == Signedness::Signed) as u32,
            )
        }
        PoolInput::Int32(t) => {
            check_len(
                "global_avg_pool",
                "x",
                t.data.len(),
                s.pixels() * s.c_padded(),
                s,
            )?;
            (t.data.bind(), 1, 0)
        }
    };
    check_len(
        "global_avg_pool",
        "out",
        g.out.data.len(),
        o.pixels() * o.c_padded(),
        o,
    )?;
    let params = PoolParams {
        n: s.n as u32,
        h: s.h as u32,
        w: s.w as u32,
        c4: s.c4() as u32,
        c: s.c as u32,
        x_signed,
        in_mode,
        ..PoolParams::default()
    };
    let groups = [s.c4().div_ceil(GCW) as u32, s.n as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::GlobalAvgPool,
        &[bind, g.out.data.bind()],
        &params,
        groups,
    )
}
