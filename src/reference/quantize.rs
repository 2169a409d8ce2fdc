//! CPU spec of the format conversions (`shaders/quantize.wgsl`, `src/ops/quantize.rs`).
//!
//! quantize: f32 values → 8-bit codes (`Format::quantize`: half to even, saturate, NaN → 0);
//! dequantize: codes → f32 (`code · 2^−fl`); requantize: int32 at `fl_in` → codes
//! (`fixed::requantize` with an optional clamp in output units, applied before the code range).
//! Element-wise, so any layout; formats must be in the paper's FL range (`Format::new`).

use crate::error::{Error, Result};
use crate::fixed::{check_shift, shift_round, Format};

/// Refuse a format outside the paper's FL range, naming `op`.
pub fn check_format(op: &'static str, f: Format) -> Result<()> {
    Format::new(f.signedness, f.fl)
        .map(|_| ())
        .map_err(|e| Error::range(op, e.to_string()))
}

/// `format.quantize(x)` for every element.
pub fn quantize(x: &[f32], format: Format) -> Result<Vec<i32>> {
    check_format("quantize", format)?;
    Ok(x.iter().map(|&v| format.quantize(v)).collect())
}

/// `code · 2^−fl` for every code; codes outside the format's range are refused.
pub fn dequantize(codes: &[i32], format: Format) -> Result<Vec<f32>> {
    check_format("dequantize", format)?;
    if let Some(bad) = codes.iter().find(|&&q| format.saturate(q) != q) {
        return Err(Error::range(
            "dequantize",
            format!("code {bad} outside the range of {format:?}"),
        ));
    }
    Ok(codes.iter().map(|&q| format.dequantize(q)).collect())
}

/// `out.saturate(clamp(shift_round(acc, fl_in − out.fl), lo, hi))` for every element;
/// `clamp = None` is no extra clamp (the same order as the conv epilogue).
pub fn requantize(
    acc: &[i32],
    fl_in: i32,
    out: Format,
    clamp: Option<(i32, i32)>,
) -> Result<Vec<i32>> {
    let shift = requantize_shift("requantize", fl_in, out, clamp)?;
    let (lo, hi) = clamp.unwrap_or((-i32::MAX, i32::MAX));
    Ok(acc
        .iter()
        .map(|&a| out.saturate(shift_round(a, shift).clamp(lo, hi)))
        .collect())
}

/// Validate a requantization (format, shift range, clamp order) and return its shift.
pub fn requantize_shift(
    op: &'static str,
    fl_in: i32,
    out: Format,
    clamp: Option<(i32, i32)>,
) -> Result<i32> {
    check_format(op, out)?;
    let shift = fl_in.saturating_sub(out.fl);
    check_shift(op, shift)?;
    if let Some((lo, hi)) = clamp {
        if lo > hi {
            return Err(Error::range(op, format!("clamp {lo}..{hi} is empty")));
        }
    }
    Ok(shift)
}
