//! CPU spec of the f32 depthwise convolution (`shaders/depthwise_f32.wgsl`,
//! `src/ops/depthwise_f32.rs`).
//!
//! x NHWC [n][h][w][c], w [c][kh][kw] (one filter per channel), bias [c], zero padding per
//! `Window`, out NHWC [n][oh][ow][c] = act(depthwise(x, w) + bias). Accumulation in f64.

use super::gemm_f32::Activation;
use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The depthwise convolution; returns the output shape and values.
pub fn depthwise_f32(
    x: &[f32],
    shape: Shape,
    w: &[f32],
    bias: &[f32],
    window: &Window,
    act: Activation,
) -> Result<(Shape, Vec<f32>)> {
    let (kh, kw, c) = (window.kh, window.kw, shape.c);
    if x.len() != shape.len() || w.len() != c * kh * kw || bias.len() != c {
        return Err(Error::shape(
            "depthwise_f32",
            format!(
                "x has {} values for {shape}, w has {} for [{c}, {kh}, {kw}], bias has {} for {c}",
                x.len(),
                w.len(),
                bias.len()
            ),
        ));
    }
    let (oh, ow) = window.out_hw("depthwise_f32", shape.h, shape.w)?;
    let os = Shape::new(shape.n, oh, ow, c);
    let mut out = vec![0.0; os.len()];
    for b in 0..shape.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut acc = bias[ch] as f64;
                    for ky in 0..kh {
                        let iy = (oy * window.stride_h + ky) as isize - window.pad_top as isize;
                        if iy < 0 || iy >= shape.h as isize {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix =
                                (ox * window.stride_w + kx) as isize - window.pad_left as isize;
                            if ix < 0 || ix >= shape.w as isize {
                                continue;
                            }
                            let xv =
                                x[((b * shape.h + iy as usize) * shape.w + ix as usize) * c + ch];
                            acc += xv as f64 * w[(ch * kh + ky) * kw + kx] as f64;
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * c + ch] = act.apply(acc as f32);
                }
            }
        }
    }
    Ok((os, out))
}
