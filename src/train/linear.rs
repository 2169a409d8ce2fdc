//! The last fully connected layer of an F8Net network in training (`ReLUClipFXQLinear`,
//! F8NET.md §2.8): unsigned 8-bit input with a PACT scale `s_fc`, 8-bit weights with the FL from
//! σ of the raw weight, and the SAT rescale `ws = (1/√n) / σ(W_q)` (detached) in training:
//! `logits = (s_fc·x_q) · (ws·W_q)ᵀ + b`. Inference drops the positive factor `s_fc·ws`
//! (`x_q·W_qᵀ + b/(s_fc·ws)`): arg-max and top-k are unchanged and no rescale multiply is left.
//!
//! x `[n][k]`, weight `[classes][k]`, logits `[n][classes]`.

use super::conv_bn::Precision;
use crate::error::{Error, Result};
use crate::fixed::{bias_on_grid, Format, Signedness};
use crate::fraclen::{fl_from_std, unbiased_std, RunningFl};
use crate::reference::fake_quant::{fix_quant, fix_quant_backward, fix_quant_floating};

/// The classifier: parameters and the running input FL.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    pub k: usize,
    pub classes: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub running_fl: RunningFl,
}

/// What the backward pass needs.
#[derive(Clone, Debug)]
pub struct Saved {
    n: usize,
    x_q: Vec<f32>,
    x_mask: Vec<bool>,
    w_q: Vec<f32>,
    w_mask: Vec<bool>,
    /// The SAT factor `ws` (a constant for the backward pass).
    pub ws: f32,
    s_fc: f32,
    pub x_fl: i32,
    pub w_fl: i32,
}

/// Gradients of the classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// dL/ds_fc, turned into dL/dα by the caller.
    pub s_fc: f32,
}

/// SAT's constant rescale of quantized FC weights: `(1/√classes) / σ(W_q)` (1 if σ is 0).
fn sat_factor(w_q: &[f32], classes: usize) -> f32 {
    sat_factor_from_std(unbiased_std(w_q), classes)
}

/// SAT's rescale from the unbiased σ of W_q (the GPU step reads σ back).
pub(crate) fn sat_factor_from_std(sd: f32, classes: usize) -> f32 {
    if sd > 0.0 {
        (1.0 / (classes as f32).sqrt()) / sd
    } else {
        1.0
    }
}

fn quantize(x: &[f32], format: Format, precision: Precision) -> Result<(Vec<f32>, Vec<bool>)> {
    let q = match precision {
        Precision::Float => fix_quant_floating(x, format)?,
        Precision::Fixed => fix_quant(x, format)?,
    };
    Ok((q.values, q.mask))
}

impl Classifier {
    pub fn new(k: usize, classes: usize, weight: Vec<f32>) -> Classifier {
        Classifier {
            k,
            classes,
            weight,
            bias: vec![0.0; classes],
            running_fl: RunningFl::default(),
        }
    }

    fn check(&self, x: &[f32], n: usize) -> Result<()> {
        if x.len() != n * self.k || self.weight.len() != self.classes * self.k {
            return Err(Error::shape(
                "classifier",
                format!(
                    "{} inputs for [{n}, {}] and {} weights for [{}, {}]",
                    x.len(),
                    self.k,
                    self.weight.len(),
                    self.classes,
                    self.k
                ),
            ));
        }
        Ok(())
    }

    /// `a·(x·wᵀ) + b` for `[n][k]` and `[classes][k]`.
    fn affine(&self, x: &[f32], w: &[f32], a: f32, b: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n * self.classes];
        for r in 0..n {
            let xr = &x[r * self.k..(r + 1) * self.k];
            for c in 0..self.classes {
                let dot: f64 = xr
                    .iter()
                    .zip(&w[c * self.k..(c + 1) * self.k])
                    .map(|(p, q)| *p as f64 * *q as f64)
                    .sum();
                out[r * self.classes + c] = (a as f64 * dot) as f32 + b[c];
            }
        }
        out
    }

    /// The SAT factor `ws = (1/√classes) / σ(W_q)` of the current weights (1 if σ is 0).
    pub fn sat_scale(&self, precision: Precision) -> f32 {
        let w_q = match quantize(&self.weight, self.weight_format(precision), precision) {
            Ok((w, _)) => w,
            Err(_) => return 1.0,
        };
        sat_factor(&w_q, self.classes)
    }

    /// The weight format: FL from σ of the raw weight (F8NET.md §2.8), or FL 7 in float mode.
    pub fn weight_format(&self, precision: Precision) -> Format {
        let fl = match precision {
            Precision::Float => 7,
            Precision::Fixed => fl_from_std(unbiased_std(&self.weight), Signedness::Signed),
        };
        Format {
            signedness: Signedness::Signed,
            fl,
        }
    }

    /// Training forward with the SAT rescale; updates the running input FL.
    pub fn forward_train(
        &mut self,
        x: &[f32],
        n: usize,
        s_fc: f32,
        precision: Precision,
    ) -> Result<(Vec<f32>, Saved)> {
        self.check(x, n)?;
        let x_fl = match precision {
            Precision::Float => 6,
            Precision::Fixed => fl_from_std(unbiased_std(x), Signedness::Unsigned),
        };
        if precision == Precision::Fixed {
            self.running_fl.update(x_fl);
        }
        let (x_q, x_mask) = quantize(
            x,
            Format {
                signedness: Signedness::Unsigned,
                fl: x_fl,
            },
            precision,
        )?;
        let wf = self.weight_format(precision);
        let (w_q, w_mask) = quantize(&self.weight, wf, precision)?;
        let ws = sat_factor(&w_q, self.classes);
        let logits = self.affine(&x_q, &w_q, s_fc * ws, &self.bias, n);
        let saved = Saved {
            n,
            x_q,
            x_mask,
            w_q,
            w_mask,
            ws,
            s_fc,
            x_fl,
            w_fl: wf.fl,
        };
        Ok((logits, saved))
    }

    /// Backward of `forward_train` (ws held constant, as the official code detaches it).
    pub fn backward(&self, saved: &Saved, d_logits: &[f32]) -> Result<(Vec<f32>, Grads)> {
        let (n, k, classes) = (saved.n, self.k, self.classes);
        if d_logits.len() != n * classes {
            return Err(Error::shape(
                "classifier backward",
                format!("{} gradients for [{n}, {classes}]", d_logits.len()),
            ));
        }
        let a = (saved.s_fc * saved.ws) as f64;
        let mut dx_q = vec![0f32; n * k];
        let mut dw_q = vec![0f64; classes * k];
        let mut bias = vec![0f32; classes];
        let mut ds = 0f64;
        for r in 0..n {
            for c in 0..classes {
                let g = d_logits[r * classes + c] as f64;
                bias[c] += g as f32;
                let (xr, wc) = (
                    &saved.x_q[r * k..(r + 1) * k],
                    &saved.w_q[c * k..(c + 1) * k],
                );
                let dot: f64 = xr.iter().zip(wc).map(|(p, q)| *p as f64 * *q as f64).sum();
                ds += g * dot * saved.ws as f64;
                for i in 0..k {
                    dx_q[r * k + i] += (g * a * wc[i] as f64) as f32;
                    dw_q[c * k + i] += g * a * xr[i] as f64;
                }
            }
        }
        let dw_q: Vec<f32> = dw_q.iter().map(|&v| v as f32).collect();
        Ok((
            fix_quant_backward(&dx_q, &saved.x_mask)?,
            Grads {
                weight: fix_quant_backward(&dw_q, &saved.w_mask)?,
                bias,
                s_fc: ds as f32,
            },
        ))
    }

    /// Inference logits: the SAT factor and `s_fc` dropped (a positive scale: same arg-max).
    pub fn forward_eval(
        &self,
        x: &[f32],
        n: usize,
        s_fc: f32,
        ws: f32,
        precision: Precision,
    ) -> Result<Vec<f32>> {
        self.check(x, n)?;
        let x_fl = match precision {
            Precision::Float => 6,
            Precision::Fixed => self.running_fl.current(Signedness::Unsigned),
        };
        let (x_q, _) = quantize(
            x,
            Format {
                signedness: Signedness::Unsigned,
                fl: x_fl,
            },
            precision,
        )?;
        let wf = self.weight_format(precision);
        let (w_q, _) = quantize(&self.weight, wf, precision)?;
        // Fixed point adds the bias as the integer model does: int32 at FL_x + FL_w (§2.4).
        let b: Vec<f32> = self
            .bias
            .iter()
            .map(|v| v / (s_fc * ws))
            .map(|b| match precision {
                Precision::Fixed => bias_on_grid(b, x_fl + wf.fl),
                Precision::Float => b,
            })
            .collect();
        Ok(self.affine(&x_q, &w_q, 1.0, &b, n))
    }
}
