//! CPU spec of pooling (`shaders/pool.wgsl`, `src/ops/pool.rs`).
//!
//! Max pool: x [n][h][w][c] 8-bit codes → out [n][oh][ow][c] codes of the same format (max is
//! monotonic, so no rescale); padded positions are ignored, as in PyTorch.
//! Global average pool (F8NET.md §2.9): x [n][h][w][c] codes or int32 → out [n][c] int32 sums,
//! no division: the sum's FL is `fl_in + avgpool_shift(h·w)`, and the factor
//! `avgpool_compensation(h·w) = 2^shift / (h·w)` is folded into the next layer's weights.

use super::Window;
use crate::error::{Error, Result};
use crate::fixed::saturate_i32;
use crate::tensor::Shape;

/// The FL increase of a global average pool over `hw` pixels: `round(log2(hw))` (7×7 → 6).
pub fn avgpool_shift(hw: usize) -> i32 {
    (hw.max(1) as f64).log2().round() as i32
}

/// The factor `2^shift / hw` that turns the pool's `Σ / 2^shift` into the true mean
/// (7×7 → 64/49); folded into the next layer's float weights before quantization.
pub fn avgpool_compensation(hw: usize) -> f64 {
    (avgpool_shift(hw) as f64).exp2() / hw.max(1) as f64
}

/// Check a pooling window: the input must be non-empty, the window must fit, and every padding
/// must be smaller than the kernel, so no window lies entirely in the padding. Returns (oh, ow).
pub fn pool_out_hw(
    op: &'static str,
    window: &Window,
    h: usize,
    w: usize,
) -> Result<(usize, usize)> {
    if h == 0 || w == 0 {
        return Err(Error::shape(op, format!("empty {h}x{w} input")));
    }
    let (oh, ow) = window.out_hw(op, h, w)?;
    let pads = [
        window.pad_top,
        window.pad_bottom,
        window.pad_left,
        window.pad_right,
    ];
    let ks = [window.kh, window.kh, window.kw, window.kw];
    if pads.iter().zip(ks).any(|(&p, k)| p >= k) {
        return Err(Error::shape(
            op,
            format!(
                "padding {pads:?} (top, bottom, left, right) must be smaller than the {}x{} kernel",
                window.kh, window.kw
            ),
        ));
    }
    Ok((oh, ow))
}

/// `out[b][oy][ox][ch] = max over the window's positions inside the input`.
pub fn max_pool(x: &[i32], shape: Shape, window: &Window) -> Result<Vec<i32>> {
    let Shape { n, h, w, c } = shape;
    let (oh, ow) = pool_out_hw("max_pool", window, h, w)?;
    if x.len() != shape.len() {
        return Err(Error::shape(
            "max_pool",
            format!("x has {} codes for {shape}", x.len()),
        ));
    }
    let mut out = vec![0; n * oh * ow * c];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut m = i32::MIN;
                    for ky in 0..window.kh {
                        let iy = (oy * window.stride_h + ky) as i64 - window.pad_top as i64;
                        for kx in 0..window.kw {
                            let ix = (ox * window.stride_w + kx) as i64 - window.pad_left as i64;
                            if iy >= 0 && iy < h as i64 && ix >= 0 && ix < w as i64 {
                                m = m.max(x[((b * h + iy as usize) * w + ix as usize) * c + ch]);
                            }
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * c + ch] = m;
                }
            }
        }
    }
    Ok(out)
}

/// `out[b][ch] = saturate_i32(Σ_{y,x} x[b][y][x][ch])`, summed exactly in i64 (codes or int32).
pub fn global_avg_pool(x: &[i32], shape: Shape) -> Result<Vec<i32>> {
    let Shape { n, h, w, c } = shape;
    if x.len() != shape.len() || h * w == 0 {
        return Err(Error::shape(
            "global_avg_pool",
            format!("x has {} values for {shape}", x.len()),
        ));
    }
    let mut out = vec![0; n * c];
    for b in 0..n {
        for ch in 0..c {
            let sum: i64 = (0..h * w).map(|p| x[(b * h * w + p) * c + ch] as i64).sum();
            out[b * c + ch] = saturate_i32(sum);
        }
    }
    Ok(out)
}
