//! The eval side of a conv + BN unit (`ConvBn`): the forward with running statistics and the
//! rounded running input FL, the y0 statistics the start re-states (`bn_stats::restate`), and the
//! unit's integer form for the export. Layouts as in the parent module: NHWC activations, dense
//! weights OHWI, depthwise `[c][kh][kw]`.

use super::{ConvBn, Folded, InputQuant, Precision, BN_EPS, IMAGE_FL};
use crate::error::Result;
use crate::fixed::{bias_on_grid, Format};
use crate::reference::batchnorm::batch_stats;
use crate::reference::fold::{fold_stats, FoldStats};
use crate::tensor::Shape;

/// A unit in integer form (see `ConvBn::integer_eval`).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerUnit {
    /// The input format (None: the fixed 8-bit image, uint8 at FL 8).
    pub input: Option<Format>,
    /// int8 weight codes, the unit's weight layout.
    pub codes: Vec<i32>,
    /// Weight FL per output channel.
    pub weight_fl: Vec<i32>,
    /// The folded bias b̃ in the output's units (float; the export rounds it at FL_x + FL_w).
    pub bias: Vec<f32>,
}

impl ConvBn {
    /// Eval forward: running statistics and the rounded running FL.
    pub fn forward_eval(
        &self,
        x: &[f32],
        shape: Shape,
        s_in: f32,
        s_out: f32,
        precision: Precision,
    ) -> Result<Vec<f32>> {
        self.check(shape)?;
        let fl = self.eval_input().map(|f| f.fl);
        let x_q = self.quantize_input(x, precision, fl)?.values;
        let f = self.fold_eval(s_in, s_out, precision)?;
        // Fixed point adds the bias as the integer model does: int32 at FL_x + FL_w (§2.4).
        let b: Vec<f32> = match precision {
            Precision::Fixed => {
                let x_fl = fl.unwrap_or(IMAGE_FL);
                f.b_eff
                    .iter()
                    .zip(&f.w_fl)
                    .map(|(&b, w_fl)| bias_on_grid(b, x_fl + w_fl))
                    .collect()
            }
            Precision::Float => f.b_eff,
        };
        Ok(Self::add_bias(self.conv(&x_q, shape, &f.w_q)?, &b))
    }

    /// The statistics of y0 = conv(x_q, W) at eval, with the input quantized as `forward_eval`
    /// quantizes it, in the units the fold reads, and the pixels they were taken over.
    pub fn eval_y0_stats(
        &self,
        x: &[f32],
        shape: Shape,
        s_in: f32,
        precision: Precision,
    ) -> Result<(FoldStats, usize)> {
        let out_shape = self.check(shape)?;
        let fl = self.eval_input().map(|f| f.fl);
        let x_q = self.quantize_input(x, precision, fl)?.values;
        let y0r = self.conv(&x_q, shape, &self.weight)?;
        let stats = fold_stats(&batch_stats(&y0r, out_shape)?, s_in, BN_EPS)?;
        Ok((stats, out_shape.pixels()))
    }

    /// BN folded with the running statistics and the weights quantized, as at eval.
    fn fold_eval(&self, s_in: f32, s_out: f32, precision: Precision) -> Result<Folded> {
        let x_fl = self.eval_input().map_or(IMAGE_FL, |f| f.fl);
        self.fold(&self.running_stats(), (s_in, s_out), precision, x_fl)
    }

    /// The input format at eval: the rounded running FL (None: the fixed 8-bit image).
    fn eval_input(&self) -> Option<Format> {
        match self.input {
            InputQuant::Quantized(s) => Some(Format {
                signedness: s,
                fl: self.running_fl.current(s),
            }),
            InputQuant::Fixed => None,
        }
    }

    /// The BN running statistics as the fold reads them (σ = √(var + eps)).
    pub fn running_stats(&self) -> FoldStats {
        FoldStats {
            mean: self.running_mean.clone(),
            var: self.running_var.clone(),
            sigma: self
                .running_var
                .iter()
                .map(|v| (v + BN_EPS).sqrt())
                .collect(),
        }
    }

    /// The integer form of this unit at eval (the export to the F8Net integer model): the input
    /// format, the int8 weight codes, their FL, and the folded bias in the output's units — the
    /// very numbers `forward_eval` computes with.
    pub fn integer_eval(&self, s_in: f32, s_out: f32) -> Result<IntegerUnit> {
        let f = self.fold_eval(s_in, s_out, Precision::Fixed)?;
        let per = self.per_out();
        let codes = f
            .w_q
            .chunks(per)
            .zip(&f.w_fl)
            .flat_map(|(row, &fl)| {
                let step = (fl as f32).exp2();
                row.iter().map(move |v| (v * step).round_ties_even() as i32)
            })
            .collect();
        let x = self.eval_input();
        Ok(IntegerUnit {
            input: x,
            codes,
            weight_fl: f.w_fl,
            bias: f.b_eff,
        })
    }
}
