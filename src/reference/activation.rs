//! CPU spec of the float activations and the residual add (`shaders/activation.wgsl`,
//! `src/ops/activation.rs`), F8NET.md §4.
//!
//! Element-wise over any layout (the GPU runs them on padded NHWC f32 tensors):
//! - ReLU `max(x, 0)`, ReLU6 `clamp(x, 0, 6)`, PACT `clamp(x, 0, |α|)` with α a trained scalar
//!   (F8Net uses |α|, §2.1; α is initialized to 8).
//! - Backward `dx = dy·mask`: mask `x > 0` (ReLU), `0 < x < 6` (ReLU6), `0 < x < |α|` (PACT);
//!   PACT's `dα = sign(α)·Σ dy over x ≥ |α|` (one float, summed in f64; sign(0) = 0).
//! - `add_f32`: `out = a + b` (residual). Its backward is the identity to both inputs: the
//!   gradient of the sum goes unchanged to each addend, and where one tensor feeds two consumers
//!   their gradients are accumulated with the same add (`dx_total = dx1 + dx2`).

use crate::error::{Error, Result};

/// The float activation of training kernels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Relu6,
    /// PACT clip at `|alpha|`.
    Pact {
        alpha: f32,
    },
}

impl Activation {
    /// The upper clip (`f32::MAX` for ReLU).
    pub fn hi(self) -> f32 {
        match self {
            Activation::Relu => f32::MAX,
            Activation::Relu6 => 6.0,
            Activation::Pact { alpha } => alpha.abs(),
        }
    }

    pub fn apply(self, x: f32) -> f32 {
        x.clamp(0.0, self.hi())
    }

    /// Whether the gradient passes at x (strictly inside the clip range).
    pub fn passes(self, x: f32) -> bool {
        x > 0.0 && x < self.hi()
    }
}

/// sign(α) with sign(0) = 0 (the derivative of |α|; WGSL's `sign`).
pub fn alpha_sign(alpha: f32) -> f32 {
    if alpha > 0.0 {
        1.0
    } else if alpha < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn check_alpha(op: &'static str, act: Activation) -> Result<()> {
    if let Activation::Pact { alpha } = act {
        if !alpha.is_finite() {
            return Err(Error::range(op, format!("PACT α = {alpha} is not finite")));
        }
    }
    Ok(())
}

fn check_len(op: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::shape(op, format!("inputs have {a} and {b} values")));
    }
    Ok(())
}

/// `y = act(x)`.
pub fn activation_forward(x: &[f32], act: Activation) -> Result<Vec<f32>> {
    check_alpha("activation_forward", act)?;
    Ok(x.iter().map(|&v| act.apply(v)).collect())
}

/// `(dx, dα)`: `dx = dy·mask(x)`; dα is PACT's gradient (0 for ReLU and ReLU6).
pub fn activation_backward(dy: &[f32], x: &[f32], act: Activation) -> Result<(Vec<f32>, f32)> {
    check_alpha("activation_backward", act)?;
    check_len("activation_backward", dy.len(), x.len())?;
    let dx = dy
        .iter()
        .zip(x)
        .map(|(&g, &v)| if act.passes(v) { g } else { 0.0 })
        .collect();
    let dalpha = match act {
        Activation::Pact { alpha } => {
            let hi = alpha.abs();
            let s: f64 = dy
                .iter()
                .zip(x)
                .filter(|(_, &v)| v >= hi)
                .map(|(&g, _)| g as f64)
                .sum();
            (s * alpha_sign(alpha) as f64) as f32
        }
        _ => 0.0,
    };
    Ok((dx, dalpha))
}

/// `out = a + b` element-wise.
pub fn add_f32(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    check_len("add_f32", a.len(), b.len())?;
    Ok(a.iter().zip(b).map(|(&x, &y)| x + y).collect())
}
