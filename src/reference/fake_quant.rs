//! CPU spec of F8Net's fake quantization (`shaders/fake_quant.wgsl`, `src/ops/fake_quant.rs`):
//! `fix_quant` forward with its straight-through mask, the masked backward, fixed-point PACT
//! (F8NET.md §1, §4) and the per-tensor statistics behind the FL rule (§3).
//!
//! fix_quant (official `models/fix_quant_ops.py::fix_quant`): `r = round_half_even(x · 2^fl)`;
//! the mask is taken on `r` **before** the clamp with strict bounds (unsigned `0 < r < 255`,
//! signed `|r| < 127`); the value is `Format::fake_quant(x)` (NaN → 0, mask 0). In floating mode
//! (§4.4, the FP baseline) `r = x · 2^fl` is not rounded and the value is `clamp(r)·2^−fl` (NaN
//! stays NaN). Backward: `grad_in = grad_out · mask`. Element-wise, so any layout.

use crate::error::{Error, Result};
use crate::fixed::{FlRange, Format, Signedness};
use crate::reference::quantize::check_format;

/// Fake-quantized values and the straight-through mask (true = the gradient passes).
#[derive(Clone, Debug, PartialEq)]
pub struct FakeQuantOutput {
    pub values: Vec<f32>,
    pub mask: Vec<bool>,
}

/// The STE mask of a (rounded, unclamped) scaled value: strictly inside the code range.
fn ste_mask(r: f32, format: Format) -> bool {
    r > format.min_code() as f32 && r < format.max_code() as f32
}

/// F8Net `fix_quant` of every element: values `Format::fake_quant(x)` and the STE mask.
pub fn fix_quant(x: &[f32], format: Format) -> Result<FakeQuantOutput> {
    check_format("fix_quant", format)?;
    let scale = (format.fl as f32).exp2();
    Ok(FakeQuantOutput {
        values: x.iter().map(|&v| format.fake_quant(v)).collect(),
        mask: x
            .iter()
            .map(|&v| ste_mask((v * scale).round_ties_even(), format))
            .collect(),
    })
}

/// `fix_quant` of signed weights row by row: row `c` (of `x.len() / fls.len()` values) at FL
/// `fls[c]`, FLs in `FlRange::Trained` (per-channel weight formats of training).
pub fn fix_quant_rows(x: &[f32], fls: &[i32]) -> Result<FakeQuantOutput> {
    if fls.is_empty() || x.len() % fls.len() != 0 {
        return Err(Error::shape(
            "fix_quant_rows",
            format!("{} values for {} rows", x.len(), fls.len()),
        ));
    }
    let per = x.len() / fls.len();
    let mut out = FakeQuantOutput {
        values: Vec::with_capacity(x.len()),
        mask: Vec::with_capacity(x.len()),
    };
    for (row, &fl) in x.chunks(per).zip(fls) {
        let format = Format::with_range(Signedness::Signed, fl, FlRange::Trained)
            .map_err(|e| Error::range("fix_quant_rows", e.to_string()))?;
        let scale = (fl as f32).exp2();
        out.values.extend(row.iter().map(|&v| format.fake_quant(v)));
        out.mask.extend(
            row.iter()
                .map(|&v| ste_mask((v * scale).round_ties_even(), format)),
        );
    }
    Ok(out)
}

/// `fix_quant` in floating mode (no rounding, the clamps and masks remain).
pub fn fix_quant_floating(x: &[f32], format: Format) -> Result<FakeQuantOutput> {
    check_format("fix_quant", format)?;
    let (scale, step) = ((format.fl as f32).exp2(), format.step());
    let (lo, hi) = (format.min_code() as f32, format.max_code() as f32);
    Ok(FakeQuantOutput {
        values: x
            .iter()
            .map(|&v| (v * scale).clamp(lo, hi) * step)
            .collect(),
        mask: x.iter().map(|&v| ste_mask(v * scale, format)).collect(),
    })
}

/// The STE backward: `grad_out · mask` (a product, so NaN gradients stay NaN, as in PyTorch).
pub fn fix_quant_backward(grad_out: &[f32], mask: &[bool]) -> Result<Vec<f32>> {
    if grad_out.len() != mask.len() {
        return Err(Error::shape(
            "fix_quant_backward",
            format!(
                "{} gradients for {} mask entries",
                grad_out.len(),
                mask.len()
            ),
        ));
    }
    Ok(grad_out
        .iter()
        .zip(mask)
        .map(|(&g, &m)| g * if m { 1.0 } else { 0.0 })
        .collect())
}

/// `2^(8 − signed) − 1`: 255 for unsigned, 127 for signed.
fn pact_levels(signedness: Signedness) -> f32 {
    match signedness {
        Signedness::Unsigned => 255.0,
        Signedness::Signed => 127.0,
    }
}

/// Fixed-point PACT scale (official `fix_scaling`): `s = 2^F · |α| / (2^(8 − signed) − 1)`.
pub fn fix_scaling(alpha: f32, fl: i32, signedness: Signedness) -> f32 {
    (fl as f32).exp2() * alpha.abs() / pact_levels(signedness)
}

/// Fixed-point PACT of one value: `s · Q_F(y/s)`, `Q_F` the fix_quant of `format`.
pub fn fix_pact(y: f32, alpha: f32, format: Format) -> f32 {
    let s = fix_scaling(alpha, format.fl, format.signedness);
    s * format.fake_quant(y / s)
}

/// PACT itself (for comparison): `round(clip(y, 0, α)·(2^b − 1)/α)·α/(2^b − 1)`, symmetric
/// `[−α, α]` with 127 levels for signed.
pub fn pact(y: f32, alpha: f32, signedness: Signedness) -> f32 {
    let (a, levels) = (alpha.abs(), pact_levels(signedness));
    let lo = match signedness {
        Signedness::Unsigned => 0.0,
        Signedness::Signed => -a,
    };
    (y.clamp(lo, a) * levels / a).round_ties_even() * a / levels
}

/// The gradient of `s · Q(x̃)` with respect to α, `x̃ = y/s` (F8NET.md §4.3, derived, with the STE
/// mask `m` of `x̃`): `(Q(x̃) − m·x̃) · s/α`. It is 1 (signed: ±1) where the clamp saturates, 0 at
/// the low clip and the rounding residual in between.
pub fn fix_pact_alpha_grad(y: f32, alpha: f32, format: Format) -> f32 {
    let s = fix_scaling(alpha, format.fl, format.signedness);
    let xt = y / s;
    let scale = (format.fl as f32).exp2();
    let m = if ste_mask((xt * scale).round_ties_even(), format) {
        1.0
    } else {
        0.0
    };
    (format.fake_quant(xt) - m * xt) * (s / alpha)
}

/// Per-tensor statistics for the FL rule: count, Σx and Σx² (f64), min, max, mean and the
/// unbiased std (`torch.std`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorStatistics {
    pub count: usize,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f32,
    pub max: f32,
    pub mean: f64,
    pub std: f64,
}

impl TensorStatistics {
    /// F8Net's FL from this tensor's std (`fraclen::fl_from_std`).
    pub fn fl(&self, signedness: Signedness) -> i32 {
        crate::fraclen::fl_from_std(self.std as f32, signedness)
    }
}

/// Statistics of `x` in f64 (std by two passes; fewer than two elements give std 0; an empty
/// slice gives min +inf and max −inf).
pub fn tensor_stats(x: &[f32]) -> TensorStatistics {
    let count = x.len();
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let sum_sq: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    let mean = if count == 0 { 0.0 } else { sum / count as f64 };
    let std = if count < 2 {
        0.0
    } else {
        let ss: f64 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
        (ss / (count - 1) as f64).sqrt()
    };
    TensorStatistics {
        count,
        sum,
        sum_sq,
        min: x.iter().copied().fold(f32::INFINITY, f32::min),
        max: x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        mean,
        std,
    }
}
