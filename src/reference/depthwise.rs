//! CPU spec of the int8 depthwise convolution (`shaders/depthwise.wgsl`, `src/ops/depthwise.rs`).
//!
//! x [n][h][w][c] codes (uint8 or int8; the values are what matter here), w [c][kh][kw] int8
//! codes (PyTorch's `[C, 1, kh, kw]`), out [n][oh][ow][c] after the per-channel fused epilogue,
//! with (oh, ow) from `Window::out_hw`. Padded taps contribute 0.

use super::{check_reduction, EpilogueSpec, Window};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// `out[b][oy][ox][ch] = epilogue(Σ_{ky,kx} x[b][iy][ix][ch] · w[ch][ky][kx], ch)` with
/// `iy = oy·stride_h − pad_top + ky`, `ix = ox·stride_w − pad_left + kx` (taps outside the
/// input are skipped, i.e. read 0).
pub fn depthwise(
    x: &[i32],
    shape: Shape,
    w: &[i32],
    window: &Window,
    ep: &EpilogueSpec,
) -> Result<Vec<i32>> {
    let Shape { n, h, w: wd, c } = shape;
    let (kh, kw) = (window.kh, window.kw);
    let (oh, ow) = window.out_hw("depthwise", h, wd)?;
    if x.len() != shape.len() || w.len() != c * kh * kw {
        return Err(Error::shape(
            "depthwise",
            format!(
                "x has {} codes for {shape}, w has {} for [{c}, {kh}, {kw}]",
                x.len(),
                w.len()
            ),
        ));
    }
    check_reduction("depthwise", kh * kw)?;
    ep.validate("depthwise", c)?;
    let mut out = vec![0; n * oh * ow * c];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut acc: i64 = 0;
                    for ky in 0..kh {
                        let iy = (oy * window.stride_h + ky) as i64 - window.pad_top as i64;
                        if iy < 0 || iy >= h as i64 {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = (ox * window.stride_w + kx) as i64 - window.pad_left as i64;
                            if ix < 0 || ix >= wd as i64 {
                                continue;
                            }
                            let xi = ((b * h + iy as usize) * wd + ix as usize) * c + ch;
                            acc += x[xi] as i64 * w[(ch * kh + ky) * kw + kx] as i64;
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * c + ch] = ep.apply(acc, ch);
                }
            }
        }
    }
    Ok(out)
}
