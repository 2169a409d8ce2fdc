//! Launcher of `shaders/batchnorm.wgsl`: batch normalization over NHWC per channel — batch
//! statistics (also alone, for F8Net's BN folding, F8NET.md §2.3), the running-statistics update
//! (momentum 0.1, unbiased variance), the train/eval forward and the full backward.
//! Spec: `src/reference/batchnorm.rs`.
//!
//! x, y, dy, dx: `GpuF32Tensor` (NHWC, channels padded to 4, padding 0; padding written 0).
//! Per-channel vectors come in pairs, `GpuChannelPair` = `[first | second]`, each half padded to
//! `4·ceil(c/4)` with zeros: stats `[mean | biased var]`, running `[mean | unbiased var]`, affine
//! `[γ | β]`, grads `[dγ | dβ]`. Backward recomputes `inv_std = 1/√(var + eps)` from the stats.
//! Reductions are two dispatches (per-chunk partials, then a fixed-order merge): deterministic,
//! no atomics; the partials live in a scratch buffer allocated per record.

use super::conv_f32::check_tensor;
use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};
use crate::tensor::GpuF32Tensor;

pub use crate::reference::batchnorm::{BN_EPS, BN_MOMENTUM};

/// Uniforms of batchnorm.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchnormParams {
    pub pixels: u32,
    pub c4: u32,
    pub c: u32,
    pub gcw: u32,
    pub rows: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub update_running: u32,
    pub eps: f32,
    pub momentum: f32,
    pub words: u32,
    pub _pad0: u32,
}

/// Invocations per workgroup, and vec4 words per element-wise workgroup (× 4 per invocation).
const WG: usize = 256;
const WORDS_PER_GROUP: usize = WG * 4;
/// Pixels each reduction invocation walks per chunk (before the tree).
const PIXELS_PER_INVOCATION: usize = 8;
/// Counts are f32 in the shader: exact below 2^24.
const MAX_PIXELS: usize = 1 << 24;

/// Two per-channel vectors in one buffer, `[first | second]`, each `4·ceil(c/4)` values.
pub struct GpuChannelPair {
    pub c: usize,
    pub data: GpuBuffer<f32>,
}

impl GpuChannelPair {
    pub fn padded(c: usize) -> usize {
        c.div_ceil(4) * 4
    }

    pub fn upload(gpu: &Gpu, first: &[f32], second: &[f32]) -> Result<GpuChannelPair> {
        let c = first.len();
        if second.len() != c || c == 0 {
            return Err(Error::shape(
                "channel pair",
                format!("{c} and {} values", second.len()),
            ));
        }
        let cp = Self::padded(c);
        let mut v = vec![0f32; 2 * cp];
        v[..c].copy_from_slice(first);
        v[cp..cp + c].copy_from_slice(second);
        Ok(GpuChannelPair {
            c,
            data: gpu.upload(&v)?,
        })
    }

    /// PyTorch's initial running statistics: mean 0, variance 1.
    pub fn running(gpu: &Gpu, c: usize) -> Result<GpuChannelPair> {
        Self::upload(gpu, &vec![0.0; c], &vec![1.0; c])
    }

    /// Every value (padding included) set to `fill` (tests poison outputs with NaN).
    pub fn alloc_filled(gpu: &Gpu, c: usize, fill: f32) -> Result<GpuChannelPair> {
        Ok(GpuChannelPair {
            c,
            data: gpu.alloc_filled(2 * Self::padded(c), fill)?,
        })
    }

    /// The two halves with logical channels.
    pub fn download(&self, gpu: &Gpu) -> Result<(Vec<f32>, Vec<f32>)> {
        let v = gpu.read(&self.data)?;
        let cp = Self::padded(self.c);
        Ok((v[..self.c].to_vec(), v[cp..cp + self.c].to_vec()))
    }

    fn check(&self, op: &'static str, what: &str, c: usize) -> Result<()> {
        if self.c != c || self.data.len() != 2 * Self::padded(c) {
            return Err(Error::shape(
                op,
                format!(
                    "{what} has {} channels in {} values, the input has {c} channels",
                    self.c,
                    self.data.len()
                ),
            ));
        }
        Ok(())
    }
}

fn distinct<T: bytemuck::Pod>(
    op: &'static str,
    what: &str,
    a: &GpuBuffer<T>,
    b: &GpuBuffer<T>,
) -> Result<()> {
    if std::ptr::eq(a, b) {
        return Err(Error::shape(op, format!("{what} are the same buffer")));
    }
    Ok(())
}

fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::range(
            op,
            format!("eps {eps} must be finite and > 0"),
        ));
    }
    Ok(())
}

/// Uniforms and grids for a tensor: (params, element-wise grid, reduction grid (x, chunks)).
fn plan(
    gpu: &Gpu,
    op: &'static str,
    x: &GpuF32Tensor,
    min_pixels: usize,
) -> Result<(BatchnormParams, [u32; 3], [u32; 2])> {
    check_tensor(op, "x", x)?;
    let s = x.shape;
    let pixels = s.pixels();
    if pixels < min_pixels || pixels >= MAX_PIXELS || s.c == 0 {
        return Err(Error::shape(
            op,
            format!("{s}: needs {min_pixels}..{MAX_PIXELS} pixels (values per channel) and c > 0"),
        ));
    }
    let c4 = s.c4();
    let gcw = [8, 4, 2, 1].into_iter().find(|&g| g <= c4).unwrap_or(1);
    let rows = WG / gcw;
    let chunk =
        (rows * PIXELS_PER_INVOCATION).max(pixels.div_ceil(gpu.max_workgroups_per_dim() as usize));
    let chunks = pixels.div_ceil(chunk);
    let words = pixels * c4;
    let u = |v: usize| to_u32(op, v);
    let params = BatchnormParams {
        pixels: u(pixels)?,
        c4: u(c4)?,
        c: u(s.c)?,
        gcw: u(gcw)?,
        rows: u(rows)?,
        chunk: u(chunk)?,
        chunks: u(chunks)?,
        words: u(words)?,
        ..BatchnormParams::default()
    };
    let grid = grid_1d(
        u(words.div_ceil(WORDS_PER_GROUP))?,
        gpu.max_workgroups_per_dim(),
    );
    Ok((params, grid, [u(c4.div_ceil(gcw))?, u(chunks)?]))
}

/// Per-channel batch mean and biased variance of x into `stats`; with `running`, also
/// `running = (1 − momentum)·running + momentum·(mean, unbiased var)` (needs ≥ 2 pixels).
pub struct BatchStats<'a> {
    pub x: &'a GpuF32Tensor,
    pub stats: &'a GpuChannelPair,
    pub running: Option<&'a GpuChannelPair>,
    pub momentum: f32,
}

/// Record the batch statistics (two dispatches) into `enc`.
pub fn record_stats(gpu: &Gpu, enc: &mut Encoder, b: &BatchStats<'_>) -> Result<()> {
    let op = "batchnorm_stats";
    let min = if b.running.is_some() { 2 } else { 1 };
    let (mut params, _, [gx, chunks]) = plan(gpu, op, b.x, min)?;
    let c = b.x.shape.c;
    b.stats.check(op, "stats", c)?;
    if !(0.0..=1.0).contains(&b.momentum) {
        return Err(Error::range(
            op,
            format!("momentum {} outside 0..=1", b.momentum),
        ));
    }
    let dummy;
    let running = match b.running {
        Some(r) => {
            r.check(op, "running stats", c)?;
            distinct(op, "stats and running stats", &b.stats.data, &r.data)?;
            params.update_running = 1;
            r
        }
        None => {
            dummy = GpuChannelPair::alloc_filled(gpu, c, 0.0)?;
            &dummy
        }
    };
    params.momentum = b.momentum;
    let part = gpu.alloc::<f32>(chunks as usize * 2 * b.x.shape.c_padded())?;
    enc.dispatch(
        gpu,
        Kernel::BatchnormStats,
        &[b.x.data.bind(), part.bind()],
        &params,
        [gx, chunks, 1],
    )?;
    enc.dispatch(
        gpu,
        Kernel::BatchnormStatsMerge,
        &[part.bind(), b.stats.data.bind(), running.data.bind()],
        &params,
        [gx, 1, 1],
    )
}

/// `out = γ·(x − mean)/√(var + eps) + β` with `stats` = [mean | var]: the batch statistics in
/// training, the running statistics in eval.
pub struct BatchNormApply<'a> {
    pub x: &'a GpuF32Tensor,
    pub stats: &'a GpuChannelPair,
    pub affine: &'a GpuChannelPair,
    pub eps: f32,
    pub out: &'a GpuF32Tensor,
}

/// Record the affine apply (one dispatch) into `enc`.
pub fn record_apply(gpu: &Gpu, enc: &mut Encoder, a: &BatchNormApply<'_>) -> Result<()> {
    let op = "batchnorm_apply";
    let (mut params, grid, _) = plan(gpu, op, a.x, 1)?;
    check_eps(op, a.eps)?;
    check_tensor(op, "out", a.out)?;
    if a.out.shape != a.x.shape {
        return Err(Error::shape(
            op,
            format!("x is {}, out is {}", a.x.shape, a.out.shape),
        ));
    }
    distinct(op, "x and out", &a.x.data, &a.out.data)?;
    a.stats.check(op, "stats", a.x.shape.c)?;
    a.affine.check(op, "affine [γ | β]", a.x.shape.c)?;
    params.eps = a.eps;
    enc.dispatch(
        gpu,
        Kernel::BatchnormApply,
        &[
            a.x.data.bind(),
            a.stats.data.bind(),
            a.affine.data.bind(),
            a.out.data.bind(),
        ],
        &params,
        grid,
    )
}

/// Training forward: batch statistics into `stats` (saved for backward), the running update
/// when `running` is given, then the apply into `out`.
pub struct BatchNormTrain<'a> {
    pub x: &'a GpuF32Tensor,
    pub affine: &'a GpuChannelPair,
    pub eps: f32,
    pub momentum: f32,
    pub stats: &'a GpuChannelPair,
    pub running: Option<&'a GpuChannelPair>,
    pub out: &'a GpuF32Tensor,
}

/// Record the training forward (three dispatches) into `enc`.
pub fn record_train(gpu: &Gpu, enc: &mut Encoder, t: &BatchNormTrain<'_>) -> Result<()> {
    let op = "batchnorm_train";
    plan(gpu, op, t.x, 2)?;
    let apply = BatchNormApply {
        x: t.x,
        stats: t.stats,
        affine: t.affine,
        eps: t.eps,
        out: t.out,
    };
    // Validate everything before recording anything.
    check_eps(op, t.eps)?;
    check_tensor(op, "out", t.out)?;
    t.affine.check(op, "affine [γ | β]", t.x.shape.c)?;
    let stats = BatchStats {
        x: t.x,
        stats: t.stats,
        running: t.running,
        momentum: t.momentum,
    };
    if t.out.shape != t.x.shape {
        return Err(Error::shape(
            op,
            format!("x is {}, out is {}", t.x.shape, t.out.shape),
        ));
    }
    distinct(op, "x and out", &t.x.data, &t.out.data)?;
    record_stats(gpu, enc, &stats)?;
    record_apply(gpu, enc, &apply)
}

/// Backward of the training forward: `grads = [dγ | dβ]` and dx, from dy, x, the saved batch
/// `stats`, `affine` and eps.
pub struct BatchNormBackward<'a> {
    pub dy: &'a GpuF32Tensor,
    pub x: &'a GpuF32Tensor,
    pub stats: &'a GpuChannelPair,
    pub affine: &'a GpuChannelPair,
    pub eps: f32,
    pub grads: &'a GpuChannelPair,
    pub dx: &'a GpuF32Tensor,
}

/// Record the backward (three dispatches) into `enc`.
pub fn record_backward(gpu: &Gpu, enc: &mut Encoder, b: &BatchNormBackward<'_>) -> Result<()> {
    let op = "batchnorm_backward";
    let (mut params, grid, [gx, chunks]) = plan(gpu, op, b.x, 1)?;
    check_eps(op, b.eps)?;
    let s = b.x.shape;
    for (what, t) in [("dy", b.dy), ("dx", b.dx)] {
        check_tensor(op, what, t)?;
        if t.shape != s {
            return Err(Error::shape(op, format!("x is {s}, {what} is {}", t.shape)));
        }
    }
    distinct(op, "dx and x", &b.dx.data, &b.x.data)?;
    distinct(op, "dx and dy", &b.dx.data, &b.dy.data)?;
    b.stats.check(op, "stats", s.c)?;
    b.affine.check(op, "affine [γ | β]", s.c)?;
    b.grads.check(op, "grads [dγ | dβ]", s.c)?;
    distinct(op, "grads and stats", &b.grads.data, &b.stats.data)?;
    distinct(op, "grads and affine", &b.grads.data, &b.affine.data)?;
    params.eps = b.eps;
    let part = gpu.alloc::<f32>(chunks as usize * 2 * s.c_padded())?;
    enc.dispatch(
        gpu,
        Kernel::BatchnormBackwardReduce,
        &[
            b.dy.data.bind(),
            b.x.data.bind(),
            b.stats.data.bind(),
            part.bind(),
        ],
        &params,
        [gx, chunks, 1],
    )?;
    enc.dispatch(
        gpu,
        Kernel::BatchnormBackwardMerge,
        &[part.bind(), b.stats.data.bind(), b.grads.data.bind()],
        &params,
        [gx, 1, 1],
    )?;
    enc.dispatch(
        gpu,
        Kernel::BatchnormBackwardApply,
        &[
            b.dy.data.bind(),
            b.x.data.bind(),
            b.stats.data.bind(),
            b.affine.data.bind(),
            b.grads.data.bind(),
            b.dx.data.bind(),
        ],
        &params,
        grid,
    )
}
