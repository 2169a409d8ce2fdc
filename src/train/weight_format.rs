//! Weight formats of F8Net training (F8NET.md §3.3, §3.5): the paper's one weight FL per layer
//! from σ(W̃), or one FL per output channel (the official code's `format_type: per_channel`,
//! wider FL range), and the accumulator FL caps that keep the exported integer model exact.
//! `ConvBn::fold` (CPU) and `train::gpu::unit::weight_quant` (GPU) quantize W̃ with these rules;
//! W̃ is `cout` rows, one per output channel (dense OHWI rows, depthwise `[c][kh][kw]` on the CPU).

use super::net::{Net, Node};
use crate::fixed::{FlRange, Signedness, MIN_TRAINED_FL};
use crate::fraclen::{fl_from_std, fl_from_std_in, unbiased_std};

/// How the folded weight W̃ gets its fractional length (F8NET.md §3.3, §3.5 `format_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightFormat {
    /// The paper's rule: one FL per layer from σ(W̃), FL in 0..=7.
    #[default]
    PerLayer,
    /// One FL per output channel from the σ of that channel's row of W̃ (the official code's
    /// `format_type: per_channel`), in −8..=15 (`FlRange::Trained`: a negative FL keeps a
    /// channel whose W̃ is far above ±127 from clipping) and at most
    /// `ConvBn::max_acc_fl − FL_x`. Still int8 codes and shifts only: the export writes the
    /// unit's int32 output at `FL_x + max FL_w` by exact left shifts, and the cap keeps that
    /// int32 value exact wherever it matters (`ACC_FL_SHARED`, `ACC_FL_QUANTIZED`).
    PerChannel,
}

/// Accumulator FL cap (`FL_x + FL_w`) of a per-channel unit whose output a residual add or the
/// global pool reads: values up to 2^15 in the output's units (2^9 after a pool of 64 pixels)
/// stay exact, far beyond any consumer's clip.
pub const ACC_FL_SHARED: i32 = 16;
/// Cap of a unit whose output only quantizers read (the next units, the classifier): an int32
/// that saturates at FL ≤ 23 is ≥ 256 in the output's units, so it clips to the same 8-bit code
/// as the exact value.
pub const ACC_FL_QUANTIZED: i32 = 23;

impl WeightFormat {
    /// The command-line and metadata name.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::PerLayer => "per-layer",
            WeightFormat::PerChannel => "per-channel",
        }
    }

    pub fn parse(name: &str) -> Option<WeightFormat> {
        [WeightFormat::PerLayer, WeightFormat::PerChannel]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The per-channel FL of a row of σ `sd` for an input at FL `x_fl`, at most
    /// `max_acc_fl − x_fl`.
    pub fn channel_fl(sd: f32, x_fl: i32, max_acc_fl: i32) -> i32 {
        fl_from_std_in(sd, Signedness::Signed, FlRange::Trained)
            .min(max_acc_fl - x_fl)
            .max(MIN_TRAINED_FL)
    }

    /// The weight FL of every output channel of `w_eff` (`cout` rows of equal length) for an
    /// input at FL `x_fl` (per-channel FLs capped by `max_acc_fl`).
    pub fn fls(self, w_eff: &[f32], cout: usize, x_fl: i32, max_acc_fl: i32) -> Vec<i32> {
        match self {
            WeightFormat::PerLayer => {
                vec![fl_from_std(unbiased_std(w_eff), Signedness::Signed); cout]
            }
            WeightFormat::PerChannel => w_eff
                .chunks(w_eff.len() / cout.max(1))
                .map(|row| WeightFormat::channel_fl(unbiased_std(row), x_fl, max_acc_fl))
                .collect(),
        }
    }
}

impl Net {
    /// The weight format of the conv units (all share one).
    pub fn weight_format(&self) -> WeightFormat {
        self.nodes
            .iter()
            .find_map(|n| match n {
                Node::Conv { unit, .. } => Some(unit.weight_format),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Set every conv unit's weight format, and its accumulator FL cap from what reads its
    /// output (tensor i + 1 of node i): `ACC_FL_QUANTIZED` when only units and the classifier
    /// (quantizers) do, else `ACC_FL_SHARED`.
    pub fn set_weight_format(&mut self, format: WeightFormat) {
        let only_quantizers: Vec<bool> = (0..self.nodes.len())
            .map(|i| {
                self.nodes.iter().all(|n| match n {
                    Node::Conv { .. } | Node::Classifier { .. } => true,
                    Node::Add { a, b, .. } => *a != i + 1 && *b != i + 1,
                    Node::GlobalAvgPool { input } => *input != i + 1,
                })
            })
            .collect();
        for (n, quantized) in self.nodes.iter_mut().zip(only_quantizers) {
            if let Node::Conv { unit, .. } = n {
                unit.weight_format = format;
                unit.max_acc_fl = if quantized {
                    ACC_FL_QUANTIZED
                } else {
                    ACC_FL_SHARED
                };
            }
        }
    }
}
