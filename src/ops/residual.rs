//! Launcher of `shaders/residual.wgsl`: residual addition of two int32 streams with different FLs
//! (F8NET.md §2.5). Spec: `src/reference/residual.rs`.
//!
//! a, b: int32 [n][h][w][4·ceil(c/4)] at their own FLs (`GpuI32Tensor`), the same shape;
//! out: int32, same shape, at `max(fl_a, fl_b)`. Not in place: `out` must be a third buffer.

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, Kernel};
use crate::reference::residual::residual_fl;
pub use crate::reference::residual::Activation;
use crate::tensor::GpuI32Tensor;

/// Uniforms of residual.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ResidualParams {
    pub words: u32,
    pub c4: u32,
    pub c: u32,
    pub relu: u32,
    pub shift_a: i32,
    pub shift_b: i32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// vec4 words per workgroup (64 invocations × 4 words).
const WORDS_PER_GROUP: usize = 256;

/// One residual addition: `out = act(align(a) + align(b))`, saturating.
pub struct ResidualAdd<'a> {
    pub a: &'a GpuI32Tensor,
    pub b: &'a GpuI32Tensor,
    pub activation: Activation,
    pub out: &'a GpuI32Tensor,
}

/// Record one residual addition into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, r: &ResidualAdd<'_>) -> Result<()> {
    let (a, b, out) = (r.a, r.b, r.out);
    let s = a.shape;
    if b.shape != s || out.shape != s {
        return Err(Error::shape(
            "residual_add",
            format!("a is {s}, b is {}, out is {}", b.shape, out.shape),
        ));
    }
    let fl = residual_fl("residual_add", a.fl, b.fl)?;
    if out.fl != fl {
        return Err(Error::range(
            "residual_add",
            format!(
                "output FL {} but max(fl_a = {}, fl_b = {}) is {fl}",
                out.fl, a.fl, b.fl
            ),
        ));
    }
    let len = s.pixels() * s.c_padded();
    for (name, t) in [("a", a), ("b", b), ("out", out)] {
        if t.data.len() != len {
            return Err(Error::shape(
                "residual_add",
                format!("{name} has {} values, expected {len} for {s}", t.data.len()),
            ));
        }
    }
    let words = s.pixels() * s.c4();
    let params = ResidualParams {
        words: words as u32,
        c4: s.c4() as u32,
        c: s.c as u32,
        relu: (r.activation == Activation::Relu) as u32,
        shift_a: a.fl - fl,
        shift_b: b.fl - fl,
        _pad0: 0,
        _pad1: 0,
    };
    let groups = match words {
        0 => [0, 0, 0],
        _ => grid_1d(
            words.div_ceil(WORDS_PER_GROUP) as u32,
            gpu.max_workgroups_per_dim(),
        ),
    };
    enc.dispatch(
        gpu,
        Kernel::ResidualAdd,
        &[a.data.bind(), b.data.bind(), out.data.bind()],
        &params,
        groups,
    )
}
