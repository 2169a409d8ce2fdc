//! The F8Net fixed-point number format (F8NET.md §1, §2.2, §2.5): the CPU truth for every kernel.
//!
//! A value is an integer `q` with a fractional length `fl`: `value = q · 2^(−fl)`.
//! 8-bit codes are symmetric int8 (−127..=127, −128 is never produced) or uint8 (0..=255).
//! Accumulators, biases and residual streams are int32, saturated symmetrically to ±(2^31 − 1).
//! Rounding is half to even everywhere (`f32::round_ties_even`, and an explicit tie rule for shifts).

use crate::error::{Error, Result};

/// Largest magnitude of an int32 stream (F8Net clamps symmetrically).
pub const I32_SAT: i32 = i32::MAX;

/// Whether an 8-bit code is signed (int8, symmetric) or unsigned (uint8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signedness {
    Signed,
    Unsigned,
}

/// Which fractional lengths a format may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlRange {
    /// The paper's range: 0..=8 unsigned, 0..=7 signed.
    Paper,
    /// Per-output-channel weight formats of converted networks: 0..=15 (still shift-only).
    Wide,
    /// Per-output-channel weight formats of F8Net training: −8..=15. A negative FL is a step of
    /// 2^−FL (int8 codes times a power of two; the shifts absorb it).
    Trained,
}

/// The smallest FL of `FlRange::Trained`.
pub const MIN_TRAINED_FL: i32 = -8;

impl FlRange {
    pub fn max_fl(self, signedness: Signedness) -> i32 {
        match (self, signedness) {
            (FlRange::Paper, Signedness::Unsigned) => 8,
            (FlRange::Paper, Signedness::Signed) => 7,
            (FlRange::Wide | FlRange::Trained, _) => 15,
        }
    }

    pub fn min_fl(self) -> i32 {
        match self {
            FlRange::Paper | FlRange::Wide => 0,
            FlRange::Trained => MIN_TRAINED_FL,
        }
    }
}

/// An 8-bit fixed-point format: signedness and fractional length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Format {
    pub signedness: Signedness,
    pub fl: i32,
}

impl Format {
    /// A format in the paper's FL range; an FL outside it is an error.
    pub fn new(signedness: Signedness, fl: i32) -> Result<Format> {
        Format::with_range(signedness, fl, FlRange::Paper)
    }

    pub fn with_range(signedness: Signedness, fl: i32, range: FlRange) -> Result<Format> {
        let (min, max) = (range.min_fl(), range.max_fl(signedness));
        if !(min..=max).contains(&fl) {
            return Err(Error::range(
                "format",
                format!("fractional length {fl} out of range {min}..={max} for {signedness:?}"),
            ));
        }
        Ok(Format { signedness, fl })
    }

    pub fn signed(fl: i32) -> Result<Format> {
        Format::new(Signedness::Signed, fl)
    }

    pub fn unsigned(fl: i32) -> Result<Format> {
        Format::new(Signedness::Unsigned, fl)
    }

    /// Smallest code (−127 or 0).
    pub fn min_code(self) -> i32 {
        match self.signedness {
            Signedness::Signed => -127,
            Signedness::Unsigned => 0,
        }
    }

    /// Largest code (127 or 255).
    pub fn max_code(self) -> i32 {
        match self.signedness {
            Signedness::Signed => 127,
            Signedness::Unsigned => 255,
        }
    }

    /// The value of one code step, 2^(−fl).
    pub fn step(self) -> f32 {
        (-self.fl as f32).exp2()
    }

    /// F8Net `fix_quant`: round half to even of `x · 2^fl`, then saturate.
    pub fn quantize(self, x: f32) -> i32 {
        let q = (x * (self.fl as f32).exp2()).round_ties_even();
        // NaN maps to 0 (f32 -> i32 casts saturate; NaN casts to 0).
        (q.clamp(self.min_code() as f32, self.max_code() as f32)) as i32
    }

    /// `q · 2^(−fl)`.
    pub fn dequantize(self, q: i32) -> f32 {
        q as f32 * self.step()
    }

    /// Quantize then dequantize (the fake-quant forward).
    pub fn fake_quant(self, x: f32) -> f32 {
        self.dequantize(self.quantize(x))
    }

    /// Saturate an integer to this format's code range.
    pub fn saturate(self, v: i32) -> i32 {
        v.clamp(self.min_code(), self.max_code())
    }
}

/// Saturate a wide integer to the symmetric int32 range ±(2^31 − 1).
pub fn saturate_i32(v: i64) -> i32 {
    v.clamp(-(I32_SAT as i64), I32_SAT as i64) as i32
}

/// Arithmetic shift with F8Net rounding: `shift > 0` divides by 2^shift rounding half to even,
/// `shift < 0` multiplies by 2^(−shift) saturating to ±(2^31 − 1), `shift == 0` only saturates.
/// Valid shifts are −31..=31 (WGSL masks shift amounts modulo 32).
pub fn shift_round(acc: i32, shift: i32) -> i32 {
    debug_assert!((-31..=31).contains(&shift));
    if shift > 0 {
        let floor = acc >> shift;
        let rem = acc & ((1i32 << shift) - 1);
        let half = 1i32 << (shift - 1);
        if rem > half || (rem == half && (floor & 1) == 1) {
            floor + 1
        } else {
            floor
        }
    } else if shift < 0 {
        let s = -shift;
        let limit = I32_SAT >> s;
        if acc > limit {
            I32_SAT
        } else if acc < -limit {
            -I32_SAT
        } else {
            acc << s
        }
    } else {
        acc.max(-I32_SAT)
    }
}

/// F8Net `int_op_only_fix_quant`: requantize an int32 accumulator at `fl_in` to the 8-bit `out`
/// format (shift by `fl_in − out.fl`, round half to even, saturate).
pub fn requantize(acc: i32, fl_in: i32, out: Format) -> i32 {
    out.saturate(shift_round(acc, fl_in - out.fl))
}

/// Check that a shift amount is in the range every kernel supports.
pub fn check_shift(op: &'static str, shift: i32) -> Result<()> {
    if (-31..=31).contains(&shift) {
        Ok(())
    } else {
        Err(Error::range(
            op,
            format!("shift {shift} out of range -31..=31"),
        ))
    }
}

/// Residual alignment (F8NET.md §2.5): left-shift the addend with the smaller FL to the larger
/// FL, add, saturate to ±(2^31 − 1). Returns the sum and its FL.
pub fn align_add(a: i32, fl_a: i32, b: i32, fl_b: i32) -> (i32, i32) {
    let fl = fl_a.max(fl_b);
    let a = shift_round(a, fl_a - fl);
    let b = shift_round(b, fl_b - fl);
    (saturate_i32(a as i64 + b as i64), fl)
}

/// Integer code of a first-layer input byte (F8NET.md §2.7): byte k means k/256, uint8 at FL 8.
pub fn input_byte_format() -> Format {
    Format {
        signedness: Signedness::Unsigned,
        fl: 8,
    }
}

/// A float bias as the int32 code at the accumulator's FL (F8NET.md §2.4: `clamp(round_half_even
/// (b·2^fl), ±(2^31 − 1))`), as the export writes it and the fixed-point evaluation adds it.
pub fn bias_code(b: f32, fl: i32) -> i32 {
    saturate_i32((b as f64 * (fl as f64).exp2()).round_ties_even() as i64)
}

/// `b` rounded to the int32 bias grid at `fl` and back: the value the integer model adds.
pub fn bias_on_grid(b: f32, fl: i32) -> f32 {
    (bias_code(b, fl) as f64 / (fl as f64).exp2()) as f32
}
