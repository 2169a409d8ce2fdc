//! CPU spec of the int8 conv2d (`shaders/conv.wgsl`, `src/ops/conv.rs`).
//!
//! x: NHWC codes `[n][h][w][cin]` (uint8 or int8, logical channels, no padding);
//! w: OHWI int8 codes `[cout][kh][kw][cin]`; out: NHWC `[n][oh][ow][cout]` after the epilogue
//! (8-bit codes or int32, per `EpilogueSpec::output`). Geometry is a `Window`; taps that fall in
//! the zero padding read code 0 and so contribute nothing.

use super::{check_reduction, EpilogueSpec, Window};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// `out[b][oy][ox][o] = epilogue(Σ_{ky,kx,c} x[b][oy·sh − pt + ky][ox·sw − pl + kx][c] ·
/// w[o][ky][kx][c], o)`, accumulated exactly in i64. Returns the output and its shape.
pub fn conv2d(
    x: &[i32],
    shape: Shape,
    w: &[i32],
    cout: usize,
    win: &Window,
    ep: &EpilogueSpec,
) -> Result<(Vec<i32>, Shape)> {
    let Shape {
        n,
        h,
        w: width,
        c: cin,
    } = shape;
    let (kh, kw) = (win.kh, win.kw);
    if x.len() != shape.len()
        || w.len() != cout * kh * kw * cin
        || h == 0
        || width == 0
        || cin == 0
        || cout == 0
    {
        return Err(Error::shape(
            "conv",
            format!(
                "x has {} codes for input {shape}, w has {} for OHWI [{cout}, {kh}, {kw}, {cin}]",
                x.len(),
                w.len()
            ),
        ));
    }
    let (oh, ow) = win.out_hw("conv", h, width)?;
    check_reduction("conv", kh * kw * cin)?;
    ep.validate("conv", cout)?;
    let out_shape = Shape::new(n, oh, ow, cout);
    let mut out = Vec::with_capacity(out_shape.len());
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..cout {
                    let mut acc: i64 = 0;
                    for ky in 0..kh {
                        // Input row of this tap; `None` (above) or past `h` is zero padding.
                        let iy = (oy * win.stride_h + ky).checked_sub(win.pad_top);
                        let Some(iy) = iy.filter(|&iy| iy < h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let ix = (ox * win.stride_w + kx).checked_sub(win.pad_left);
                            let Some(ix) = ix.filter(|&ix| ix < width) else {
                                continue;
                            };
                            let xp = &x[((b * h + iy) * width + ix) * cin..][..cin];
                            let wp = &w[((o * kh + ky) * kw + kx) * cin..][..cin];
                            acc += xp
                                .iter()
                                .zip(wp)
                                .map(|(&a, &c)| a as i64 * c as i64)
                                .sum::<i64>();
                        }
                    }
                    out.push(ep.apply(acc, o));
                }
            }
        }
    }
    Ok((out, out_shape))
}
