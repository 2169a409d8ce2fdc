//! The only host readbacks of a GPU training step: the statistics that set the fractional
//! lengths (F8NET.md §3.3–§3.4). A `Site` computes (Σd, Σd², min, max) of one tensor on the GPU
//! (`ops::fake_quant::record_tensor_stats`, 8 floats) and copies them into its slot of one
//! gather buffer; `Readback::flush` submits the recorded work, reads the gather buffer once and
//! turns every pending slot into the unbiased σ (f64 on the host, as `torch.std`).
//!
//! Slots: node i's weight (W̃ of a conv unit, W of the classifier) is slot i, the classifier's
//! W_q slot `nodes`, tensor t slot `nodes + 1 + t` (the logits' statistics only say whether
//! they are finite). After the slots, the gather buffer holds the loss partials of the last
//! readback of the step (`finish`), so the loss costs no readback of its own. Units with
//! per-channel weight formats use a `RowSite` instead of their weight slot: Σ(x − mean)² of each
//! output channel's row of W̃ (`ops::fake_quant_rows`, one float per channel) at their own
//! offset of a row region after the loss partials (empty when no unit is per-channel).

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer};
use crate::ops::fake_quant::{
    decode_stats, record_tensor_stats, stats_partials_len, F32Rows, TensorStats, STATS_OUT_LEN,
};
use crate::ops::fake_quant_rows::{record_row_stats, row_block_len, row_std, RowStats, WeightRows};
use crate::ops::loss;

/// The statistics of one tensor of `rows` rows of `c` channels.
pub(super) struct Site {
    partials: GpuBuffer<f32>,
    out: GpuBuffer<f32>,
    rows: usize,
    c: usize,
    slot: usize,
}

impl Site {
    pub fn new(gpu: &Gpu, rows: usize, c: usize, slot: usize) -> Result<Site> {
        Ok(Site {
            partials: gpu.alloc(stats_partials_len(rows, c))?,
            out: gpu.alloc(STATS_OUT_LEN)?,
            rows,
            c,
            slot,
        })
    }

    pub fn slot(&self) -> usize {
        self.slot
    }
}

/// The per-channel statistics of a unit's W̃: σ of each of `channels` rows, read back into
/// `channels` floats from `at` of the row region, reported under the unit's weight `slot`.
pub(super) struct RowSite {
    out: GpuBuffer<f32>,
    channels: usize,
    slot: usize,
    at: usize,
}

impl RowSite {
    pub fn new(gpu: &Gpu, channels: usize, slot: usize, at: usize) -> Result<RowSite> {
        Ok(RowSite {
            out: gpu.alloc(row_block_len(channels))?,
            channels,
            slot,
            at,
        })
    }

    pub fn slot(&self) -> usize {
        self.slot
    }
}

/// Slots of the weight sites and the tensor sites of a network of `nodes` nodes.
pub(super) fn weight_slot(node: usize) -> usize {
    node
}

pub(super) fn wq_slot(nodes: usize) -> usize {
    nodes
}

pub(super) fn tensor_slot(nodes: usize, t: usize) -> usize {
    nodes + 1 + t
}

/// Most loss partials of a batch (`ops::loss` uses at most 64 workgroups of two values).
const MAX_LOSS_PARTIALS: usize = 128;

/// Pending statistics, the σ read so far this step, and the readback count.
pub(super) struct Readback {
    gather: GpuBuffer<f32>,
    slots: usize,
    pending: Vec<(usize, usize)>,
    /// (slot, offset, channels, values per channel) of requested rows.
    pending_rows: Vec<(usize, usize, usize, usize)>,
    std: Vec<Option<f32>>,
    /// Per-channel σ of a `RowSite`'s slot.
    row_std: Vec<Option<Vec<f32>>>,
    rows_at: usize,
    /// Whether a slot's sums were finite (NaN or ∞ in the tensor make them not).
    finite: Vec<bool>,
    flushes: usize,
}

impl Readback {
    /// Room for `slots` slots and a row region of `rows` floats (`RowSite`s).
    pub fn new(gpu: &Gpu, slots: usize, rows: usize) -> Result<Readback> {
        let rows_at = slots * STATS_OUT_LEN + MAX_LOSS_PARTIALS;
        Ok(Readback {
            gather: gpu.alloc(rows_at + rows)?,
            slots,
            pending: Vec::new(),
            pending_rows: Vec::new(),
            std: vec![None; slots],
            row_std: vec![None; slots],
            rows_at,
            finite: vec![true; slots],
            flushes: 0,
        })
    }

    /// Forget the last step's values.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.pending_rows.clear();
        self.std.iter_mut().for_each(|s| *s = None);
        self.row_std.iter_mut().for_each(|s| *s = None);
        self.finite.iter_mut().for_each(|f| *f = true);
        self.flushes = 0;
    }

    /// Record the statistics of `data` (the site's rows) and their copy into the gather buffer.
    pub fn request(
        &mut self,
        gpu: &Gpu,
        enc: &mut Encoder,
        site: &Site,
        data: &GpuBuffer<f32>,
    ) -> Result<()> {
        let x = F32Rows {
            data,
            rows: site.rows,
            c: site.c,
        };
        let a = TensorStats {
            x,
            partials: &site.partials,
            out: &site.out,
        };
        record_tensor_stats(gpu, enc, &a)?;
        let at = site.slot * STATS_OUT_LEN;
        enc.copy_range(&site.out, 0, &self.gather, at, STATS_OUT_LEN)?;
        self.pending.push((site.slot, site.rows * site.c));
        Ok(())
    }

    /// Record the per-channel statistics of W̃ (`w`, the site's channels) and their copy into the
    /// row region.
    pub fn request_rows(
        &mut self,
        gpu: &Gpu,
        enc: &mut Encoder,
        site: &RowSite,
        w: WeightRows<'_>,
    ) -> Result<()> {
        let (c, at) = (site.channels, self.rows_at + site.at);
        if w.channels != c || at + c > self.gather.len() {
            return Err(Error::shape(
                "gpu train",
                format!("{} weight rows for a row site of {c}", w.channels),
            ));
        }
        record_row_stats(gpu, enc, &RowStats { w, out: &site.out })?;
        let ss_at = row_block_len(c) / 2;
        enc.copy_range(&site.out, ss_at, &self.gather, at, c)?;
        self.pending_rows.push((site.slot, at, c, w.count()));
        Ok(())
    }

    /// The per-channel σ of a `RowSite`'s slot, once read back.
    pub fn row_std(&self, slot: usize) -> Option<&[f32]> {
        self.row_std[slot].as_deref()
    }

    /// The σ of `slot`, once read back.
    pub fn std(&self, slot: usize) -> Option<f32> {
        self.std[slot]
    }

    /// Submit `enc`, read every pending σ (one readback) and return a fresh encoder.
    pub fn flush(&mut self, gpu: &Gpu, enc: Encoder) -> Result<Encoder> {
        if self.pending.is_empty() && self.pending_rows.is_empty() {
            return Err(Error::shape(
                "gpu train",
                "the step waits on statistics that were never recorded",
            ));
        }
        self.read(gpu, enc)?;
        Ok(gpu.encoder())
    }

    /// The last readback of a step: submit `enc` with a copy of the loss `partials` of a batch of
    /// `n`, read them with every pending σ, and return the mean loss.
    pub fn finish(
        &mut self,
        gpu: &Gpu,
        mut enc: Encoder,
        partials: &GpuBuffer<f32>,
        n: usize,
    ) -> Result<f32> {
        let len = partials.len();
        if len > MAX_LOSS_PARTIALS {
            return Err(Error::shape(
                "gpu train",
                format!("{len} loss partials, room for {MAX_LOSS_PARTIALS}"),
            ));
        }
        let at = self.slots * STATS_OUT_LEN;
        enc.copy_range(partials, 0, &self.gather, at, len)?;
        let raw = self.read(gpu, enc)?;
        loss::loss_from_partials(&raw[at..at + len], n)
    }

    fn read(&mut self, gpu: &Gpu, enc: Encoder) -> Result<Vec<f32>> {
        gpu.submit(enc)?;
        let raw = gpu.read(&self.gather)?;
        for (slot, count) in self.pending.drain(..) {
            let at = slot * STATS_OUT_LEN;
            let s = decode_stats(&raw[at..at + STATS_OUT_LEN], count)?;
            self.std[slot] = Some(s.std as f32);
            self.finite[slot] = s.sum.is_finite() && s.sum_sq.is_finite();
        }
        for (slot, at, c, count) in self.pending_rows.drain(..) {
            let std = raw[at..at + c].iter().map(|&ss| row_std(ss, count));
            self.row_std[slot] = Some(std.collect());
        }
        self.flushes += 1;
        Ok(raw)
    }

    /// Whether the tensor of `slot` was finite (true until read back).
    pub fn finite(&self, slot: usize) -> bool {
        self.finite[slot]
    }

    /// Readbacks so far this step.
    pub fn flushes(&self) -> usize {
        self.flushes
    }
}
