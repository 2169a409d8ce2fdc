//! Launcher of `shaders/quantize.wgsl`: f32 → codes (`quantize`), codes → f32 (`dequantize`) and
//! int32 → codes (`requantize`). Spec: `src/reference/quantize.rs`.
//!
//! Layouts: f32 and int32 tensors [n][h][w][4·ceil(c/4)] (padded, `GpuF32Tensor`,
//! `GpuI32Tensor`), codes [n][h][w][ceil(c/4)] (`GpuQTensor`); input and output shapes are equal.
//! Formats must be in the paper's FL range (`Format::new`).

use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::gpu::{grid_1d, Bind, Encoder, Gpu, Kernel};
use crate::reference::quantize::{check_format, requantize_shift};
use crate::tensor::{GpuF32Tensor, GpuI32Tensor, GpuQTensor, Shape};

/// Uniforms of quantize.wgsl, shared by its three entry points (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantizeParams {
    pub words: u32,
    pub c4: u32,
    pub c: u32,
    pub signed: u32,
    pub scale: f32,
    pub shift: i32,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
}

/// Words per workgroup (64 invocations × 4 words).
const WORDS_PER_GROUP: usize = 256;

/// f32 → codes in `out.format` (half to even, saturating, NaN → 0).
pub struct Quantize<'a> {
    pub x: &'a GpuF32Tensor,
    pub out: &'a GpuQTensor,
}

/// Codes → f32 (`code · 2^−fl` of `x.format`).
pub struct Dequantize<'a> {
    pub x: &'a GpuQTensor,
    pub out: &'a GpuF32Tensor,
}

/// int32 at `x.fl` → codes in `out.format`, with an optional clamp `(lo, hi)` in output units
/// (ReLU: `(0, i32::MAX)`, ReLU6 at FL f: `(0, 6 << f)`).
pub struct Requantize<'a> {
    pub x: &'a GpuI32Tensor,
    pub clamp: Option<(i32, i32)>,
    pub out: &'a GpuQTensor,
}

fn check_shapes(
    op: &'static str,
    x: Shape,
    x_len: usize,
    x_per: usize,
    out: Shape,
    out_len: usize,
    out_per: usize,
) -> Result<()> {
    if x != out {
        return Err(Error::shape(op, format!("input is {x}, output is {out}")));
    }
    if x_len != x.pixels() * x_per || out_len != out.pixels() * out_per {
        return Err(Error::shape(
            op,
            format!(
                "buffers hold {x_len} and {out_len} elements, expected {} and {} for {x}",
                x.pixels() * x_per,
                out.pixels() * out_per
            ),
        ));
    }
    Ok(())
}

fn params(s: Shape, format: Format, scale: f32) -> QuantizeParams {
    QuantizeParams {
        words: (s.pixels() * s.c4()) as u32,
        c4: s.c4() as u32,
        c: s.c as u32,
        signed: (format.signedness == Signedness::Signed) as u32,
        scale,
        shift: 0,
        clamp_lo: -i32::MAX,
        clamp_hi: i32::MAX,
    }
}

fn dispatch(
    gpu: &Gpu,
    enc: &mut Encoder,
    kernel: Kernel,
    binds: &[Bind<'_>],
    p: &QuantizeParams,
) -> Result<()> {
    let words = p.words as usize;
    let groups = match words {
        0 => [0, 0, 0],
        _ => grid_1d(
            words.div_ceil(WORDS_PER_GROUP) as u32,
            gpu.max_workgroups_per_dim(),
        ),
    };
    enc.dispatch(gpu, kernel, binds, p, groups)
}

/// Record a quantization into `enc`.
pub fn record_quantize(gpu: &Gpu, enc: &mut Encoder, q: &Quantize<'_>) -> Result<()> {
    let (x, out) = (q.x, q.out);
    check_format("quantize", out.format)?;
    check_shapes(
        "quantize",
        x.shape,
        x.data.len(),
        x.shape.c_padded(),
        out.shape,
        out.data.len(),
        out.shape.c4(),
    )?;
    let p = params(out.shape, out.format, (out.format.fl as f32).exp2());
    dispatch(
        gpu,
        enc,
        Kernel::Quantize,
        &[x.data.bind(), out.data.bind()],
        &p,
    )
}

/// Record a dequantization into `enc`.
pub fn record_dequantize(gpu: &Gpu, enc: &mut Encoder, d: &Dequantize<'_>) -> Result<()> {
    let (x, out) = (d.x, d.out);
    check_format("dequantize", x.format)?;
    check_shapes(
        "dequantize",
        x.shape,
        x.data.len(),
        x.shape.c4(),
        out.shape,
        out.data.len(),
        out.shape.c_padded(),
    )?;
    let p = params(x.shape, x.format, x.format.step());
    dispatch(
        gpu,
        enc,
        Kernel::Dequantize,
        &[x.data.bind(), out.data.bind()],
        &p,
    )
}

/// Record a requantization into `enc`.
pub fn record_requantize(gpu: &Gpu, enc: &mut Encoder, r: &Requantize<'_>) -> Result<()> {
    let (x, out) = (r.x, r.out);
    let shift = requantize_shift("requantize", x.fl, out.format, r.clamp)?;
    check_shapes(
        "requantize",
        x.shape,
        x.data.len(),
        x.shape.c_padded(),
        out.shape,
        out.data.len(),
        out.shape.c4(),
    )?;
    let (clamp_lo, clamp_hi) = r.clamp.unwrap_or((-i32::MAX, i32::MAX));
    let p = QuantizeParams {
        shift,
        clamp_lo,
        clamp_hi,
        ..params(out.shape, out.format, 1.0)
    };
    dispatch(
        gpu,
        enc,
        Kernel::Requantize,
        &[x.data.bind(), out.data.bind()],
        &p,
    )
}
