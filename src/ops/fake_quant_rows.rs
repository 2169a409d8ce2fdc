//! Launcher of `shaders/fake_quant_rows.wgsl`: per-channel weight formats in training
//! (`WeightFormat::PerChannel`) — the σ of each output channel's row of W̃ and `fix_quant` of
//! each row at its own FL with the STE mask. Spec: `reference::fake_quant::fix_quant_rows`,
//! `fraclen::unbiased_std`.
//!
//! Weights are padded f32 rows (`F32Rows`: dense OHWI rows = cout·kh·kw of cin, or depthwise
//! rows = kh·kw of c) in a `WeightLayout` (dense: channel c's values contiguous; depthwise:
//! value j of channel c at `j·CP + c`), `CP = 4·ceil(channels/4)`. Statistics out: f32
//! `[Σx | Σ(x − mean)²]`, `2·CP`; per-channel scales in: f32 `[2^fl | 2^−fl]`, `2·CP`
//! (`row_scales`); masks as `ops::fake_quant` (u32 `[rows][ceil(c/4)]`, so its backward applies).

use crate::error::{Error, Result};
use crate::fixed::{FlRange, Format, Signedness};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};
use crate::ops::fake_quant::F32Rows;
use crate::ops::fold::WeightLayout;
use crate::ops::gemm_f32::to_u32;

/// Uniforms of fake_quant_rows.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FakeQuantRowsParams {
    pub words: u32,
    pub c4: u32,
    pub c: u32,
    pub channels: u32,
    pub cp: u32,
    pub per: u32,
    pub arrangement: u32,
    pub count: u32,
}

/// Invocations per workgroup of `fake_quant_rows` (`WG` in the shader).
const WG: usize = 256;

fn cp(channels: usize) -> usize {
    channels.div_ceil(4) * 4
}

/// Weights of `channels` output channels: `x`'s rows in `layout`.
#[derive(Clone, Copy)]
pub struct WeightRows<'a> {
    pub x: F32Rows<'a>,
    pub layout: WeightLayout,
    pub channels: usize,
}

impl WeightRows<'_> {
    /// Live values per channel.
    pub fn count(&self) -> usize {
        self.x.len() / self.channels.max(1)
    }

    fn params(&self, op: &'static str) -> Result<FakeQuantRowsParams> {
        let (x, ch) = (&self.x, self.channels);
        let fits = match self.layout {
            WeightLayout::Rows { per } => per * ch == x.words() * 4 && x.rows % ch.max(1) == 0,
            WeightLayout::Depthwise { taps } => x.rows == taps && x.c == ch,
        };
        if ch == 0 || x.is_empty() || !fits || x.data.len() < self.layout.len(ch) {
            return Err(Error::shape(
                op,
                format!(
                    "{} rows of {} in a buffer of {} do not hold {ch} channels in {:?}",
                    x.rows,
                    x.c,
                    x.data.len(),
                    self.layout
                ),
            ));
        }
        let (per, arrangement) = match self.layout {
            WeightLayout::Rows { per } => (per, 0),
            WeightLayout::Depthwise { taps } => (taps, 1),
        };
        Ok(FakeQuantRowsParams {
            words: to_u32(op, x.words())?,
            c4: to_u32(op, x.c.div_ceil(4))?,
            c: to_u32(op, x.c)?,
            channels: to_u32(op, ch)?,
            cp: to_u32(op, cp(ch))?,
            per: to_u32(op, per)?,
            arrangement,
            count: to_u32(op, self.count())?,
        })
    }
}

fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(Error::shape(
            op,
            format!("{what} holds {have} values, {want} needed"),
        ));
    }
    Ok(())
}

/// Length of the `out` buffer of `record_row_stats` and of the scales of `record_fake_quant_rows`.
pub fn row_block_len(channels: usize) -> usize {
    2 * cp(channels)
}

/// Per-channel statistics of W̃: `out` gets `[Σx | Σ(x − mean)²]` (`row_block_len`).
pub struct RowStats<'a> {
    pub w: WeightRows<'a>,
    pub out: &'a GpuBuffer<f32>,
}

/// Record the statistics (one dispatch, one workgroup per channel) into `enc`.
pub fn record_row_stats(gpu: &Gpu, enc: &mut Encoder, a: &RowStats<'_>) -> Result<()> {
    const OP: &str = "row_stats";
    let p = a.w.params(OP)?;
    need(OP, "out", a.out.len(), row_block_len(a.w.channels))?;
    let binds = [a.w.x.data.bind(), a.out.bind()];
    enc.dispatch(gpu, Kernel::RowStats, &binds, &p, [p.channels, 1, 1])
}

/// The unbiased σ of a row of `count` values from its Σ(x − mean)² (f64, as `unbiased_std`).
pub fn row_std(ss: f32, count: usize) -> f32 {
    if count < 2 {
        return 0.0;
    }
    (ss as f64 / (count - 1) as f64).sqrt() as f32
}

/// The scales buffer of `record_fake_quant_rows` for per-channel FLs (`FlRange::Trained`):
/// `[2^fl | 2^−fl]`, padding channels 1.
pub fn row_scales(fls: &[i32]) -> Result<Vec<f32>> {
    let n = cp(fls.len());
    let mut v = vec![1.0; 2 * n];
    for (c, &fl) in fls.iter().enumerate() {
        let f = Format::with_range(Signedness::Signed, fl, FlRange::Trained)
            .map_err(|e| Error::range("fake_quant_rows", e.to_string()))?;
        v[c] = (fl as f32).exp2();
        v[n + c] = f.step();
    }
    Ok(v)
}

/// `fix_quant_rows` of W̃: row c at the FL of `scales` (`row_scales`), values into `out` (same
/// layout), the STE mask into `mask`.
pub struct FakeQuantRows<'a> {
    pub w: WeightRows<'a>,
    pub scales: &'a GpuBuffer<f32>,
    pub out: &'a GpuBuffer<f32>,
    pub mask: &'a GpuBuffer<u32>,
}

/// Record the per-channel fake quantization into `enc`.
pub fn record_fake_quant_rows(gpu: &Gpu, enc: &mut Encoder, a: &FakeQuantRows<'_>) -> Result<()> {
    const OP: &str = "fake_quant_rows";
    let p = a.w.params(OP)?;
    let words = a.w.x.words();
    need(OP, "scales", a.scales.len(), row_block_len(a.w.channels))?;
    need(OP, "output", a.out.len(), words * 4)?;
    need(OP, "mask", a.mask.len(), words)?;
    let binds = [
        a.w.x.data.bind(),
        a.scales.bind(),
        a.out.bind(),
        a.mask.bind(),
    ];
    let groups = grid_1d(
        to_u32(OP, words.div_ceil(WG))?,
        gpu.max_workgroups_per_dim(),
    );
    enc.dispatch(gpu, Kernel::FakeQuantRows, &binds, &p, groups)
}
