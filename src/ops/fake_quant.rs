//! Launcher of `shaders/fake_quant.wgsl`: F8Net `fix_quant` with its STE mask, the masked
//! backward, and per-tensor statistics (Σx, Σx², min, max) for the FL rule. Spec:
//! `src/reference/fake_quant.rs`.
//!
//! Tensors are padded f32 rows (`F32Rows`): an NHWC `GpuF32Tensor` (rows = pixels) or OHWI f32
//! weights (rows = n·kh·kw, c = cin); buffers may hold more rows than are used (padded output
//! channels), which are left alone. Masks are u32 `[rows][ceil(c/4)]`, byte l of a word = 1 where
//! lane l's gradient passes. Statistics: two dispatches (partials, then one workgroup), no atomics,
//! deterministic; `read_tensor_stats` reads back 8 floats.

use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::fake_quant::TensorStatistics;
use crate::reference::quantize::check_format;
use crate::tensor::{unpack_codes, GpuF32Tensor};

/// Uniforms of fake_quant.wgsl, shared by its three entry points (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FakeQuantParams {
    pub words: u32,
    pub c4: u32,
    pub c: u32,
    pub signed: u32,
    pub scale: f32,
    pub step: f32,
    pub floating: u32,
    pub stage: u32,
}

/// Invocations (words) per workgroup.
const WG: usize = 256;
/// Most workgroups of the first statistics pass (fixed, so results do not depend on the device).
const STATS_GROUPS: usize = 256;
/// Floats written by `record_tensor_stats`: (Σd, Σd², min, max), then (shift, 0, 0, 0).
pub const STATS_OUT_LEN: usize = 8;

/// `rows` rows of `c` logical f32 values, each row stored as 4·ceil(c/4) values.
#[derive(Clone, Copy)]
pub struct F32Rows<'a> {
    pub data: &'a GpuBuffer<f32>,
    pub rows: usize,
    pub c: usize,
}

impl<'a> F32Rows<'a> {
    /// The rows of an NHWC tensor (one per pixel).
    pub fn tensor(t: &'a GpuF32Tensor) -> F32Rows<'a> {
        F32Rows {
            data: &t.data,
            rows: t.shape.pixels(),
            c: t.shape.c,
        }
    }

    /// Packed words (4 lanes each) of the used rows.
    pub fn words(&self) -> usize {
        self.rows * self.c.div_ceil(4)
    }

    /// Logical element count.
    pub fn len(&self) -> usize {
        self.rows * self.c
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.is_empty() {
            return Err(Error::shape(
                op,
                format!("empty tensor of {} rows of {}", self.rows, self.c),
            ));
        }
        check_len(op, "input", self.data.len(), self.words() * 4, self)
    }
}

fn check_len(op: &'static str, what: &str, have: usize, need: usize, x: &F32Rows) -> Result<()> {
    if have < need {
        return Err(Error::shape(
            op,
            format!(
                "{what} holds {have} elements, {need} needed for {} rows of {} channels",
                x.rows, x.c
            ),
        ));
    }
    Ok(())
}

/// Words of the mask of `rows` rows of `c` channels.
pub fn mask_len(rows: usize, c: usize) -> usize {
    rows * c.div_ceil(4)
}

/// The logical mask entries of a mask read back from the GPU.
pub fn unpack_mask(words: &[u32], c: usize) -> Vec<bool> {
    unpack_codes(words, c, Signedness::Unsigned)
        .into_iter()
        .map(|b| b != 0)
        .collect()
}

fn params(x: &F32Rows, format: Format, floating: bool, stage: u32) -> FakeQuantParams {
    FakeQuantParams {
        words: x.words() as u32,
        c4: x.c.div_ceil(4) as u32,
        c: x.c as u32,
        signed: (format.signedness == Signedness::Signed) as u32,
        scale: (format.fl as f32).exp2(),
        step: format.step(),
        floating: floating as u32,
        stage,
    }
}

/// Params of the entry points that take no format (backward, statistics).
fn plain_params(x: &F32Rows, stage: u32) -> FakeQuantParams {
    let none = Format {
        signedness: Signedness::Unsigned,
        fl: 0,
    };
    params(x, none, false, stage)
}

fn groups(gpu: &Gpu, words: usize) -> [u32; 3] {
    grid_1d(words.div_ceil(WG) as u32, gpu.max_workgroups_per_dim())
}

/// `fix_quant` of `x` in `format`: values into `out` (same layout), STE mask into `mask`.
pub struct FakeQuant<'a> {
    pub x: F32Rows<'a>,
    pub format: Format,
    /// Floating mode (§4.4): clamp without rounding.
    pub floating: bool,
    pub out: &'a GpuBuffer<f32>,
    pub mask: &'a GpuBuffer<u32>,
}

/// Record a fake quantization into `enc`.
pub fn record_fake_quant(gpu: &Gpu, enc: &mut Encoder, a: &FakeQuant<'_>) -> Result<()> {
    const OP: &str = "fake_quant";
    check_format(OP, a.format)?;
    a.x.check(OP)?;
    check_len(OP, "output", a.out.len(), a.x.words() * 4, &a.x)?;
    check_len(OP, "mask", a.mask.len(), a.x.words(), &a.x)?;
    let p = params(&a.x, a.format, a.floating, 0);
    let binds = [a.x.data.bind(), a.out.bind(), a.mask.bind()];
    enc.dispatch(gpu, Kernel::FakeQuant, &binds, &p, groups(gpu, a.x.words()))
}

/// The STE backward: `grad_in = grad_out · mask` (same layouts as the forward).
pub struct FakeQuantBackward<'a> {
    pub grad_out: F32Rows<'a>,
    pub mask: &'a GpuBuffer<u32>,
    pub grad_in: &'a GpuBuffer<f32>,
}

/// Record the masked backward into `enc`.
pub fn record_fake_quant_backward(
    gpu: &Gpu,
    enc: &mut Encoder,
    a: &FakeQuantBackward<'_>,
) -> Result<()> {
    const OP: &str = "fake_quant_backward";
    let x = &a.grad_out;
    x.check(OP)?;
    check_len(OP, "mask", a.mask.len(), x.words(), x)?;
    check_len(OP, "grad_in", a.grad_in.len(), x.words() * 4, x)?;
    let p = plain_params(x, 0);
    let binds = [x.data.bind(), a.mask.bind(), a.grad_in.bind()];
    enc.dispatch(
        gpu,
        Kernel::FakeQuantBackward,
        &binds,
        &p,
        groups(gpu, x.words()),
    )
}

fn stats_groups(words: usize) -> usize {
    words.div_ceil(WG).clamp(1, STATS_GROUPS)
}

/// Length of the scratch buffer of `record_tensor_stats` for `rows` rows of `c` channels.
pub fn stats_partials_len(rows: usize, c: usize) -> usize {
    4 * (stats_groups(mask_len(rows, c)) + 1)
}

/// Per-tensor statistics of `x`: `partials` is scratch (`stats_partials_len`), `out` gets
/// `STATS_OUT_LEN` floats for `read_tensor_stats` / `decode_stats`.
pub struct TensorStats<'a> {
    pub x: F32Rows<'a>,
    pub partials: &'a GpuBuffer<f32>,
    pub out: &'a GpuBuffer<f32>,
}

/// Record the two statistics passes into `enc`.
pub fn record_tensor_stats(gpu: &Gpu, enc: &mut Encoder, a: &TensorStats<'_>) -> Result<()> {
    const OP: &str = "tensor_stats";
    a.x.check(OP)?;
    let need = stats_partials_len(a.x.rows, a.x.c);
    if a.partials.len() != need || a.out.len() != STATS_OUT_LEN {
        return Err(Error::shape(
            OP,
            format!(
                "partials and out hold {} and {} floats, expected {need} and {STATS_OUT_LEN}",
                a.partials.len(),
                a.out.len()
            ),
        ));
    }
    let g = stats_groups(a.x.words());
    let p0 = plain_params(&a.x, 0);
    let binds = [a.x.data.bind(), a.partials.bind(), a.out.bind()];
    enc.dispatch(gpu, Kernel::TensorStats, &binds, &p0, [g as u32, 1, 1])?;
    let p1 = FakeQuantParams {
        words: g as u32,
        stage: 1,
        ..p0
    };
    enc.dispatch(gpu, Kernel::TensorStats, &binds, &p1, [1, 1, 1])
}

/// Statistics of `count` elements from the `STATS_OUT_LEN` floats of `record_tensor_stats`
/// (f64 on the host; the unbiased std from the shifted sums, clamped at 0).
pub fn decode_stats(raw: &[f32], count: usize) -> Result<TensorStatistics> {
    if raw.len() != STATS_OUT_LEN || count == 0 {
        return Err(Error::shape(
            "tensor_stats",
            format!("{} floats for {count} elements", raw.len()),
        ));
    }
    let (s1, s2, k) = (raw[0] as f64, raw[1] as f64, raw[4] as f64);
    let n = count as f64;
    let std = if count < 2 {
        0.0
    } else {
        ((s2 - s1 * s1 / n) / (n - 1.0)).max(0.0).sqrt()
    };
    Ok(TensorStatistics {
        count,
        sum: n * k + s1,
        sum_sq: s2 + 2.0 * k * s1 + n * k * k,
        min: raw[2],
        max: raw[3],
        mean: k + s1 / n,
        std,
    })
}

/// Read the statistics of a tensor of `count` logical elements (waits for submitted work).
pub fn read_tensor_stats(
    gpu: &Gpu,
    out: &GpuBuffer<f32>,
    count: usize,
) -> Result<TensorStatistics> {
    decode_stats(&gpu.read(out)?, count)
}
