//! The CPU reference: the specification of every kernel, written for obviousness (plain loops,
//! exact integer arithmetic in i64 before saturation). Integer GPU kernels must equal it bit for
//! bit. It is also the backend when no GPU adapter exists.
//!
//! Host tensors are NHWC with logical channels (no padding); weights are OHWI codes.

pub mod activation;
pub mod batchnorm;
pub mod blas;
pub mod conv;
pub mod conv_f32;
pub mod depthwise;
pub mod depthwise_f32;
pub mod fake_quant;
pub mod fold;
pub mod gemm;
pub mod gemm_f32;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod pool_f32;
pub mod quantize;
pub mod residual;
pub mod sum_pool;

use crate::error::{Error, Result};
use crate::fixed::{check_shift, saturate_i32, shift_round, Signedness};

/// What a conv/linear/depthwise layer writes after accumulating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// 8-bit codes of the given signedness (saturated to −127..=127 or 0..=255).
    Codes(Signedness),
    /// Raw int32 (residual streams, logits), saturated to ±(2^31 − 1).
    Int32,
}

/// The fused epilogue of conv/linear/depthwise kernels, per output channel:
/// `clamp(shift_round(sat(acc + bias[c]), shift[c]), clamp_lo, clamp_hi)`, then the code range.
/// `shift[c] = FL_x + FL_w[c] − FL_out` (> 0 right with half-to-even, < 0 left, saturating).
/// `clamp_lo/hi` are in output units: ReLU is `clamp_lo = 0`, ReLU6 `clamp_hi = 6·2^FL_out`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpilogueSpec {
    pub bias: Vec<i32>,
    pub shift: Vec<i32>,
    pub output: OutputKind,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
}

impl EpilogueSpec {
    /// No bias, one shift for all `n` channels, no extra clamp.
    pub fn plain(n: usize, shift: i32, output: OutputKind) -> EpilogueSpec {
        EpilogueSpec {
            bias: vec![0; n],
            shift: vec![shift; n],
            output,
            clamp_lo: -i32::MAX,
            clamp_hi: i32::MAX,
        }
    }

    /// Check lengths against `n` output channels and every shift's range.
    pub fn validate(&self, op: &'static str, n: usize) -> Result<()> {
        if self.bias.len() != n || self.shift.len() != n {
            return Err(Error::shape(
                op,
                format!(
                    "{} biases and {} shifts for {n} output channels",
                    self.bias.len(),
                    self.shift.len()
                ),
            ));
        }
        for &s in &self.shift {
            check_shift(op, s)?;
        }
        if self.clamp_lo > self.clamp_hi {
            return Err(Error::range(
                op,
                format!("clamp {}..{} is empty", self.clamp_lo, self.clamp_hi),
            ));
        }
        Ok(())
    }

    /// Apply the epilogue to the exact accumulator of output channel `c`.
    pub fn apply(&self, acc: i64, c: usize) -> i32 {
        let v = saturate_i32(acc + self.bias[c] as i64);
        let v = shift_round(v, self.shift[c]).clamp(self.clamp_lo, self.clamp_hi);
        match self.output {
            OutputKind::Codes(Signedness::Signed) => v.clamp(-127, 127),
            OutputKind::Codes(Signedness::Unsigned) => v.clamp(0, 255),
            OutputKind::Int32 => v,
        }
    }
}

/// Largest reduction length (codes per output) for which |Σ x·w| < 2^31 is guaranteed:
/// 255 · 127 · K plus the uint8 correction term stays inside int32.
pub const MAX_REDUCTION: usize = 65_000;

/// Refuse reductions whose accumulators could overflow int32.
pub fn check_reduction(op: &'static str, k: usize) -> Result<()> {
    if k > MAX_REDUCTION {
        return Err(Error::range(
            op,
            format!(
                "reduction length {k} exceeds {MAX_REDUCTION}: int32 accumulators could overflow"
            ),
        ));
    }
    Ok(())
}

/// Window geometry of conv, depthwise and pooling: kernel, stride and (possibly asymmetric)
/// zero padding. `out = (in + pad_before + pad_after − k) / stride + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
}

impl Window {
    /// Square kernel, equal stride, the same padding on every side.
    pub fn symmetric(k: usize, stride: usize, pad: usize) -> Window {
        Window {
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            pad_top: pad,
            pad_left: pad,
            pad_bottom: pad,
            pad_right: pad,
        }
    }

    /// TensorFlow "SAME" padding for an input of h×w: out = ceil(in/stride); the odd extra pixel
    /// goes bottom/right.
    pub fn same(k: usize, stride: usize, h: usize, w: usize) -> Window {
        let pad = |len: usize| {
            let out = len.div_ceil(stride.max(1));
            let total = ((out.max(1) - 1) * stride + k).saturating_sub(len);
            (total / 2, total - total / 2)
        };
        let (pad_top, pad_bottom) = pad(h);
        let (pad_left, pad_right) = pad(w);
        Window {
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
        }
    }

    /// Output height and width for an h×w input, or an error naming `op` if the window does not fit.
    pub fn out_hw(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        let ph = h + self.pad_top + self.pad_bottom;
        let pw = w + self.pad_left + self.pad_right;
        if self.kh == 0 || self.kw == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err(Error::shape(
                op,
                format!("empty kernel or zero stride in {self:?}"),
            ));
        }
        if ph < self.kh || pw < self.kw {
            return Err(Error::shape(
                op,
                format!(
                    "{}x{} kernel does not fit a padded {ph}x{pw} input",
                    self.kh, self.kw
                ),
            ));
        }
        Ok((
            (ph - self.kh) / self.stride_h + 1,
            (pw - self.kw) / self.stride_w + 1,
        ))
    }
}
