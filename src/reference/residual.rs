//! CPU spec of the residual addition (`shaders/residual.wgsl`, `src/ops/residual.rs`), F8NET.md §2.5.
//!
//! a, b: int32 streams of the same shape at FLs `fl_a`, `fl_b` (NHWC, any layout, element-wise);
//! out: int32 at `max(fl_a, fl_b)`: the addend with the smaller FL is left-shifted (saturating),
//! the two are added with saturation to ±(2^31 − 1), then the activation is applied.

use crate::error::{Error, Result};
use crate::fixed::{align_add, check_shift};

/// What follows the addition: nothing (MobileNetV2) or ReLU (ResNet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Identity,
    Relu,
}

/// Check the FL difference of a residual addition (the alignment shift must be ≤ 31) and return
/// the output FL.
pub fn residual_fl(op: &'static str, fl_a: i32, fl_b: i32) -> Result<i32> {
    check_shift(op, fl_a.saturating_sub(fl_b))
        .map_err(|_| Error::range(op, format!("FLs {fl_a} and {fl_b} differ by more than 31")))?;
    Ok(fl_a.max(fl_b))
}

/// Element-wise `act(align_add(a, fl_a, b, fl_b))`; returns the values and their FL.
pub fn residual_add(
    a: &[i32],
    fl_a: i32,
    b: &[i32],
    fl_b: i32,
    act: Activation,
) -> Result<(Vec<i32>, i32)> {
    if a.len() != b.len() {
        return Err(Error::shape(
            "residual_add",
            format!("a has {} values, b has {}", a.len(), b.len()),
        ));
    }
    let fl = residual_fl("residual_add", fl_a, fl_b)?;
    let out = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (s, _) = align_add(x, fl_a, y, fl_b);
            match act {
                Activation::Identity => s,
                Activation::Relu => s.max(0),
            }
        })
        .collect();
    Ok((out, fl))
}
