//! Fractional-length selection (F8NET.md §3): the FL-from-σ rule, min-RMSE grid search, the
//! running average of the activation FL, and the Gaussian error analysis behind the coefficients.

use crate::fixed::{FlRange, Format, Signedness};

/// Coefficient of the std rule: 40 for signed tensors, 70 for unsigned (σ of the pre-ReLU tensor).
pub fn std_coefficient(signedness: Signedness) -> f32 {
    match signedness {
        Signedness::Signed => 40.0,
        Signedness::Unsigned => 70.0,
    }
}

/// Unbiased (N − 1) standard deviation over the whole tensor, as `torch.std`.
/// Fewer than two elements give 0.
pub fn unbiased_std(xs: &[f32]) -> f32 {
    let n = xs.len();
    if n < 2 {
        return 0.0;
    }
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let ss = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>();
    (ss / (n - 1) as f64).sqrt() as f32
}

/// F8Net `metric2fraclen` with the std metric: `clamp(floor(log2(coeff / σ)), 0, 8 − signed)`.
/// σ = 0 (or NaN-free underflow) gives the largest FL.
pub fn fl_from_std(std: f32, signedness: Signedness) -> i32 {
    fl_from_std_in(std, signedness, FlRange::Paper)
}

/// `fl_from_std` clamped to `range` instead of the paper's (per-channel weight formats).
pub fn fl_from_std_in(std: f32, signedness: Signedness, range: FlRange) -> i32 {
    let max = range.max_fl(signedness);
    if std <= 0.0 || std.is_nan() {
        return max;
    }
    let fl = (std_coefficient(signedness) / std).log2().floor();
    if fl.is_nan() {
        return max;
    }
    (fl.clamp(range.min_fl() as f32, max as f32)) as i32
}

/// Root-mean-square quantization error of `xs` in `format`.
pub fn quant_rmse(xs: &[f32], format: Format) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let ss: f64 = xs
        .iter()
        .map(|&x| (x as f64 - format.fake_quant(x) as f64).powi(2))
        .sum();
    (ss / xs.len() as f64).sqrt()
}

/// F8Net `fraclen_gridsearch`: the FL with the smallest RMSE, first minimum on ties.
pub fn fl_grid_search(xs: &[f32], signedness: Signedness, range: FlRange) -> i32 {
    let mut best = (f64::INFINITY, 0);
    for fl in range.min_fl()..=range.max_fl(signedness) {
        let err = quant_rmse(xs, Format { signedness, fl });
        if err < best.0 {
            best = (err, fl);
        }
    }
    best.1
}

/// The running average of an activation FL (§3.4): an EMA of the integer batch FL,
/// momentum 0.1, starting at 6, rounded half to even at use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunningFl {
    pub value: f32,
}

impl Default for RunningFl {
    fn default() -> Self {
        RunningFl { value: 6.0 }
    }
}

impl RunningFl {
    pub const MOMENTUM: f32 = 0.1;

    /// `r ← 0.1 · batch_fl + 0.9 · r` (float32, as the reference buffer).
    pub fn update(&mut self, batch_fl: i32) {
        self.value = Self::MOMENTUM * batch_fl as f32 + (1.0 - Self::MOMENTUM) * self.value;
    }

    /// The FL used for the scale and at eval: `clamp(round_half_even(r), 0, 8 − signed)`.
    pub fn current(&self, signedness: Signedness) -> i32 {
        let max = FlRange::Paper.max_fl(signedness) as f32;
        self.value.round_ties_even().clamp(0.0, max) as i32
    }
}

/// §3.1 analysis: relative RMSE `sqrt(E[(x − Q(x))²]) / σ` of quantizing x ~ N(0, σ²) (signed)
/// or x = ReLU(N(0, σ²)) (unsigned) in `format`, by numerical integration (Simpson per cell).
pub fn gaussian_relative_error(sigma: f64, format: Format) -> f64 {
    let step = (-format.fl as f64).exp2();
    let pdf = |x: f64| {
        (-(x * x) / (2.0 * sigma * sigma)).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt())
    };
    let lo_code = format.min_code() as f64;
    let hi_code = format.max_code() as f64;
    // Error of x given its nearest code (ties have zero measure).
    let err = |x: f64| {
        let q = (x / step).round().clamp(lo_code, hi_code);
        (x - q * step).powi(2)
    };
    let reach = 12.0 * sigma;
    let start = match format.signedness {
        Signedness::Signed => -reach,
        Signedness::Unsigned => 0.0, // x < 0 becomes 0, which quantizes exactly
    };
    // Integrate over quantization cells (boundaries at half steps) so the integrand is smooth.
    let mut total = 0.0;
    let mut a = start;
    while a < reach {
        let next_boundary = ((a / step - 0.5).floor() + 1.0 + 0.5) * step;
        let b = next_boundary.min(reach);
        if b <= a {
            a += step;
            continue;
        }
        let n = 32;
        let h = (b - a) / n as f64;
        let mut s = 0.0;
        for i in 0..=n {
            let x = a + h * i as f64;
            // Evaluate just inside the cell so the code is the cell's code.
            let xe = x.clamp(a + 1e-12 * step, b - 1e-12 * step);
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            s += w * err(xe) * pdf(x);
        }
        total += s * h / 3.0;
        a = b;
    }
    total.sqrt() / sigma
}
