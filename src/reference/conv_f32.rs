//! CPU spec of the f32 convolution (`shaders/conv_f32.wgsl`, `src/ops/conv_f32.rs`).
//!
//! x NHWC [n][h][w][cin], w OHWI [cout][kh][kw][cin], bias [cout], zero padding per `Window`,
//! out NHWC [n][oh][ow][cout] = act(conv(x, w) + bias). Accumulation in f64.

use super::gemm_f32::Activation;
use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The convolution; returns the output shape and values.
pub fn conv_f32(
    x: &[f32],
    shape: Shape,
    w: &[f32],
    bias: &[f32],
    cout: usize,
    window: &Window,
    act: Activation,
) -> Result<(Shape, Vec<f32>)> {
    let (kh, kw, cin) = (window.kh, window.kw, shape.c);
    if x.len() != shape.len() || w.len() != cout * kh * kw * cin || bias.len() != cout {
        return Err(Error::shape(
            "conv_f32",
            format!(
                "x has {} values for {shape}, w has {} for OHWI [{cout}, {kh}, {kw}, {cin}], \
                 bias has {} for {cout}",
                x.len(),
                w.len(),
                bias.len()
            ),
        ));
    }
    let (oh, ow) = window.out_hw("conv_f32", shape.h, shape.w)?;
    let os = Shape::new(shape.n, oh, ow, cout);
    let mut out = vec![0.0; os.len()];
    for b in 0..shape.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..cout {
                    let mut acc = bias[co] as f64;
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
                            let xi = ((b * shape.h + iy as usize) * shape.w + ix as usize) * cin;
                            let wi = ((co * kh + ky) * kw + kx) * cin;
                            for ci in 0..cin {
                                acc += x[xi + ci] as f64 * w[wi + ci] as f64;
                            }
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * cout + co] = act.apply(acc as f32);
                }
            }
        }
    }
    Ok((os, out))
}
