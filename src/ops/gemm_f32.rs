//! Launchers of `shaders/gemm_f32.wgsl`: f32 GEMM / linear / 1×1 stride-1 conv with bias and a
//! fused activation clamp, tiled exactly like the int8 GEMM, and its backward passes (input
//! gradient; split-K weight and bias gradients with the partial-sum pass that conv and depthwise
//! weight gradients share). Spec: `src/reference/gemm_f32.rs`.
//!
//! x, dx: f32 [m][4·ceil(k/4)] (padding 0); weights: `F32Weights` with kh = kw = 1;
//! out, dy: f32 [m][4·ceil(n/4)] (padding lanes 0); dw, db: the layout of `F32Weights::w` and
//! `F32Weights::bias` ([4·ceil(n/4)][4·ceil(k/4)] and [4·ceil(n/4)], padding written 0).

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::gemm_f32::Activation;

/// Uniforms of gemm_f32.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmF32Params {
    pub m: u32,
    pub n: u32,
    pub k4: u32,
    pub splits: u32,
    pub lo: f32,
    pub hi: f32,
    pub split_rows: u32,
    pub len_a: u32,
    pub len_b: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl GemmF32Params {
    fn new(m: u32, n: u32, k4: u32) -> GemmF32Params {
        GemmF32Params {
            m,
            n,
            k4,
            splits: 1,
            lo: -f32::MAX,
            hi: f32::MAX,
            split_rows: 0,
            len_a: 0,
            len_b: 0,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

const TILE: usize = 64;
/// Words per side of a weight-gradient tile (`TW` in the shaders).
pub(crate) const GRAD_TILE_WORDS: usize = 16;
/// Rows per weight-gradient slab (`BP` in the shaders).
pub(crate) const GRAD_SLAB: usize = 32;

/// f32 weights in OHWI order for gemm_f32 and conv_f32: `[4·ceil(n/4)][kh][kw][4·ceil(cin/4)]`
/// (input channels and output channels padded with zeros), and the bias `[4·ceil(n/4)]`.
/// A linear layer is `kh = kw = 1`. Uploaded once per layer.
pub struct F32Weights {
    pub n: usize,
    pub kh: usize,
    pub kw: usize,
    pub cin: usize,
    pub w: GpuBuffer<f32>,
    pub bias: GpuBuffer<f32>,
}

impl F32Weights {
    /// `w_ohwi`: host OHWI weights with logical `cin`, `n · kh · kw · cin` of them; `bias`: `n`.
    pub fn upload(
        gpu: &Gpu,
        w_ohwi: &[f32],
        bias: &[f32],
        n: usize,
        kh: usize,
        kw: usize,
        cin: usize,
    ) -> Result<F32Weights> {
        if w_ohwi.len() != n * kh * kw * cin || n == 0 || kh == 0 || kw == 0 || cin == 0 {
            return Err(Error::shape(
                "f32 weights",
                format!("{} values for OHWI [{n}, {kh}, {kw}, {cin}]", w_ohwi.len()),
            ));
        }
        if bias.len() != n {
            return Err(Error::shape(
                "f32 weights",
                format!("{} biases for {n} output channels", bias.len()),
            ));
        }
        let np = n.div_ceil(4) * 4;
        let mut w = crate::tensor::pad_channels(w_ohwi, cin);
        w.resize(np * kh * kw * cin.div_ceil(4) * 4, 0.0);
        let mut b = bias.to_vec();
        b.resize(np, 0.0);
        Ok(F32Weights {
            n,
            kh,
            kw,
            cin,
            w: gpu.upload(&w)?,
            bias: gpu.upload(&b)?,
        })
    }

    /// vec4 words per output channel (the GEMM's K4).
    pub fn k4(&self) -> usize {
        self.kh * self.kw * self.cin.div_ceil(4)
    }

    /// Output channels padded to a multiple of 4.
    pub fn n_padded(&self) -> usize {
        self.n.div_ceil(4) * 4
    }

    /// Gradient buffers of this layer's weights and bias (same layouts), zeroed.
    pub fn alloc_grads(&self, gpu: &Gpu) -> Result<(GpuBuffer<f32>, GpuBuffer<f32>)> {
        Ok((gpu.alloc(self.w.len())?, gpu.alloc(self.bias.len())?))
    }
}

/// One f32 GEMM: `out = act(x · wᵀ + bias)` for `m` rows of `x`.
pub struct GemmF32<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub m: usize,
    pub weights: &'a F32Weights,
    pub activation: Activation,
    pub out: &'a GpuBuffer<f32>,
}

/// Record one f32 GEMM into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, g: &GemmF32<'_>) -> Result<()> {
    let (x, m, weights) = (g.x, g.m, g.weights);
    if weights.kh != 1 || weights.kw != 1 {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "weights are {}x{}, gemm_f32 needs 1x1",
                weights.kh, weights.kw
            ),
        ));
    }
    let k4 = weights.k4();
    if x.len() != m * k4 * 4 {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "x has {} values, expected [{m}, {}] for k = {}",
                x.len(),
                k4 * 4,
                weights.cin
            ),
        ));
    }
    let n_pad = weights.n_padded();
    if g.out.len() != m * n_pad {
        return Err(Error::shape(
            "gemm_f32",
            format!(
                "out has {} values, expected [{m}, {n_pad}] for n = {}",
                g.out.len(),
                weights.n
            ),
        ));
    }
    let (lo, hi) = g.activation.bounds();
    let u = |v: usize| to_u32("gemm_f32", v);
    let params = GemmF32Params {
        lo,
        hi,
        ..GemmF32Params::new(u(m)?, u(n_pad)?, u(k4)?)
    };
    let groups = [n_pad.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1];
    enc.dispatch(
        gpu,
        Kernel::GemmF32,
        &[
            x.bind(),
            weights.w.bind(),
            weights.bias.bind(),
            g.out.bind(),
        ],
        &params,
        groups,
    )
}

/// A size as a shader `u32`, or an error naming `op`.
pub(crate) fn to_u32(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::range(op, format!("size {v} does not fit in u32")))
}

/// dL/dx of a linear layer: `dx = dy · w`.
pub struct GemmF32BackwardInput<'a> {
    /// `[m][4·ceil(n/4)]`.
    pub dy: &'a GpuBuffer<f32>,
    pub m: usize,
    pub weights: &'a F32Weights,
    /// `[m][4·ceil(k/4)]`, fully written.
    pub dx: &'a GpuBuffer<f32>,
}

/// Record `dx = dy · w` into `enc`.
pub fn record_backward_input(
    gpu: &Gpu,
    enc: &mut Encoder,
    g: &GemmF32BackwardInput<'_>,
) -> Result<()> {
    let op = "gemm_f32_backward_input";
    let (m, weights) = (g.m, g.weights);
    if weights.kh != 1 || weights.kw != 1 {
        return Err(Error::shape(
            op,
            format!("weights are {}x{}, needs 1x1", weights.kh, weights.kw),
        ));
    }
    let (np, kp) = (weights.n_padded(), weights.k4() * 4);
    check_len(op, "dy", g.dy.len(), m, np, weights.n)?;
    check_len(op, "dx", g.dx.len(), m, kp, weights.cin)?;
    let u = |v: usize| to_u32(op, v);
    let params = GemmF32Params::new(u(m)?, u(kp)?, u(np / 4)?);
    let groups = [u(kp.div_ceil(TILE))?, u(m.div_ceil(TILE))?, 1];
    let binds = [g.dy.bind(), weights.w.bind(), g.dx.bind()];
    enc.dispatch(gpu, Kernel::GemmF32BackwardInput, &binds, &params, groups)
}

/// dL/dw and dL/dbias of a linear layer `y = x · wᵀ + b` with `n` outputs and `k` inputs.
pub struct GemmF32BackwardWeight<'a> {
    /// `[m][4·ceil(k/4)]`.
    pub x: &'a GpuBuffer<f32>,
    /// `[m][4·ceil(n/4)]`.
    pub dy: &'a GpuBuffer<f32>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `[4·ceil(n/4)][4·ceil(k/4)]` (the layout of `F32Weights::w`), fully written.
    pub dw: &'a GpuBuffer<f32>,
    /// `[4·ceil(n/4)]`, fully written.
    pub db: &'a GpuBuffer<f32>,
}

/// Record `dw = dyᵀ · x`, `db = Σ_rows dy` into `enc` (split-K partials, then their sum).
pub fn record_backward_weight(
    gpu: &Gpu,
    enc: &mut Encoder,
    g: &GemmF32BackwardWeight<'_>,
) -> Result<()> {
    let op = "gemm_f32_backward_weight";
    let (m, n, k) = (g.m, g.n, g.k);
    if n == 0 || k == 0 {
        return Err(Error::shape(op, format!("n = {n}, k = {k}")));
    }
    let (np, k4) = (n.div_ceil(4) * 4, k.div_ceil(4));
    check_len(op, "x", g.x.len(), m, k4 * 4, k)?;
    check_len(op, "dy", g.dy.len(), m, np, n)?;
    check_len(op, "dw", g.dw.len(), np, k4 * 4, k)?;
    check_len(op, "db", g.db.len(), 1, np, n)?;
    let u = |v: usize| to_u32(op, v);
    let tiles = [k4.div_ceil(GRAD_TILE_WORDS), np.div_ceil(TILE)];
    let split = Split::plan(m, tiles[0] * tiles[1], GRAD_SLAB);
    let params = GemmF32Params {
        splits: u(split.splits)?,
        split_rows: u(split.rows)?,
        ..GemmF32Params::new(u(m)?, u(np)?, u(k4)?)
    };
    let groups = [u(tiles[0])?, u(tiles[1])?, u(split.splits)?];
    split.record(
        gpu,
        enc,
        Kernel::GemmF32BackwardWeight,
        [g.x, g.dy],
        [g.dw, g.db],
        (&params, groups),
    )
}

/// Check a padded `[rows][cols]` buffer length, naming the op and the logical width.
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    len: usize,
    rows: usize,
    cols: usize,
    logical: usize,
) -> Result<()> {
    if len != rows * cols {
        return Err(Error::shape(
            op,
            format!("{what} has {len} values, expected [{rows}, {cols}] for {logical} channels"),
        ));
    }
    Ok(())
}

/// How a weight gradient's reduction over `rows` is split across workgroups: `splits` slices of
/// `rows` rows each (the last may be shorter). Depends only on the shape, so results are
/// reproducible on any device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub splits: usize,
    pub rows: usize,
}

/// Workgroups a split weight gradient aims for (enough to fill a large GPU).
const SPLIT_TARGET_GROUPS: usize = 512;
/// Most slices per reduction (bounds the partial buffers).
const MAX_SPLITS: usize = 64;

impl Split {
    /// Split `rows` for `tiles` output tiles, slices a multiple of `align` rows and at least
    /// 8·`align` long.
    pub fn plan(rows: usize, tiles: usize, align: usize) -> Split {
        let want = SPLIT_TARGET_GROUPS.div_ceil(tiles.max(1)).min(MAX_SPLITS);
        let most = rows.div_ceil(8 * align).max(1);
        let splits = want.min(most).max(1);
        let per = rows.div_ceil(splits).next_multiple_of(align).max(align);
        Split {
            splits: rows.div_ceil(per).max(1),
            rows: per,
        }
    }

    /// Record the partial kernel writing `[splits][len]` partials of `outs` (or `outs` directly
    /// when there is one split), then their sum. `ins`: the kernel's two inputs.
    pub fn record<P: bytemuck::Pod>(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        kernel: Kernel,
        ins: [&GpuBuffer<f32>; 2],
        outs: [&GpuBuffer<f32>; 2],
        (params, groups): (&P, [u32; 3]),
    ) -> Result<()> {
        if self.splits == 1 {
            let binds = [ins[0].bind(), ins[1].bind(), outs[0].bind(), outs[1].bind()];
            return enc.dispatch(gpu, kernel, &binds, params, groups);
        }
        let parts = [
            gpu.alloc::<f32>(self.splits * outs[0].len())?,
            gpu.alloc::<f32>(self.splits * outs[1].len())?,
        ];
        let binds = [
            ins[0].bind(),
            ins[1].bind(),
            parts[0].bind(),
            parts[1].bind(),
        ];
        enc.dispatch(gpu, kernel, &binds, params, groups)?;
        let op = kernel.name();
        let (len_a, len_b) = (outs[0].len() / 4, outs[1].len() / 4);
        let sum = GemmF32Params {
            splits: to_u32(op, self.splits)?,
            len_a: to_u32(op, len_a)?,
            len_b: to_u32(op, len_b)?,
            ..GemmF32Params::new(0, 0, 0)
        };
        let groups = crate::gpu::grid_1d(
            to_u32(op, (len_a + len_b).div_ceil(64))?,
            gpu.max_workgroups_per_dim(),
        );
        let binds = [
            parts[0].bind(),
            parts[1].bind(),
            outs[0].bind(),
            outs[1].bind(),
        ];
        enc.dispatch(gpu, Kernel::GemmF32SumPartials, &binds, &sum, groups)
    }
}
