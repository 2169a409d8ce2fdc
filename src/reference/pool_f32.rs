//! CPU spec of f32 pooling for training (`shaders/pool_f32.wgsl`, `src/ops/pool_f32.rs`).
//!
//! x [n][h][w][c] f32 NHWC → y [n][oh][ow][c]; the window (`Window`: kernel, stride, asymmetric
//! padding) must fit and every padding must be smaller than the kernel, so each window holds at
//! least one input pixel (`reference::pool::pool_out_hw`). Padded positions are ignored:
//! - Max pool: `y = max` over the window's input pixels; `argmax[b][oy][ox][ch] = iy·w + ix`, the
//!   first maximum in scan order (ky, then kx; strict `>`, as PyTorch). Inputs are finite.
//!   Backward routes dy to the argmax: `dx[i] = Σ dy[o] over outputs o with argmax[o] = i`,
//!   summed in ascending output order (deterministic; the GPU gathers in the same order).
//! - Average pool, `count_include_pad = false`: `y = Σ x / cnt`, cnt the number of input pixels in
//!   the window (PyTorch's default counts padding; TF SAME and global pooling do not). Backward:
//!   `dx[i] = Σ dy[o] / cnt[o]` over the outputs whose window holds i.
//! - Global average pool = average pool with the `global_window` (kernel h×w, no padding).

use super::pool::pool_out_hw;
use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Max pool results: the output shape, values and argmax indices (NHWC, `c` channels).
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPoolOut {
    pub shape: Shape,
    pub y: Vec<f32>,
    pub argmax: Vec<u32>,
}

/// The window of a global average pool over an h×w input.
pub fn global_window(shape: Shape) -> Window {
    Window {
        kh: shape.h,
        kw: shape.w,
        ..Window::symmetric(1, 1, 0)
    }
}

/// The output shape of pooling `shape` with `window` (errors name `op`).
pub fn pool_out_shape(op: &'static str, shape: Shape, window: &Window) -> Result<Shape> {
    let (oh, ow) = pool_out_hw(op, window, shape.h, shape.w)?;
    Ok(Shape::new(shape.n, oh, ow, shape.c))
}

/// The input rows (or columns) `lo..hi` of output position `o` along one axis.
pub fn window_span(o: usize, stride: usize, pad: usize, k: usize, len: usize) -> (usize, usize) {
    let start = (o * stride) as i64 - pad as i64;
    (
        start.max(0) as usize,
        ((start + k as i64).min(len as i64)).max(0) as usize,
    )
}

fn check(op: &'static str, what: &str, len: usize, shape: Shape) -> Result<()> {
    if len != shape.len() {
        return Err(Error::shape(
            op,
            format!(
                "{what} has {len} values, expected {} for {shape}",
                shape.len()
            ),
        ));
    }
    Ok(())
}

/// Max pool forward with argmax.
pub fn max_pool_f32(x: &[f32], shape: Shape, window: &Window) -> Result<MaxPoolOut> {
    let o = pool_out_shape("max_pool_f32", shape, window)?;
    check("max_pool_f32", "x", x.len(), shape)?;
    let (w, c) = (shape.w, shape.c);
    let mut y = vec![0f32; o.len()];
    let mut argmax = vec![0u32; o.len()];
    let mut best = vec![0f32; c];
    let mut at = vec![0u32; c];
    for b in 0..o.n {
        for oy in 0..o.h {
            let (y0, y1) = window_span(oy, window.stride_h, window.pad_top, window.kh, shape.h);
            for ox in 0..o.w {
                let (x0, x1) = window_span(ox, window.stride_w, window.pad_left, window.kw, w);
                best.fill(f32::NEG_INFINITY);
                at.fill(u32::MAX);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let px = &x[((b * shape.h + iy) * w + ix) * c..][..c];
                        let idx = (iy * w + ix) as u32;
                        for ch in 0..c {
                            if at[ch] == u32::MAX || px[ch] > best[ch] {
                                best[ch] = px[ch];
                                at[ch] = idx;
                            }
                        }
                    }
                }
                let base = ((b * o.h + oy) * o.w + ox) * c;
                y[base..base + c].copy_from_slice(&best);
                argmax[base..base + c].copy_from_slice(&at);
            }
        }
    }
    Ok(MaxPoolOut {
        shape: o,
        y,
        argmax,
    })
}

/// Max pool backward: dy [n][oh][ow][c] and the forward's argmax → dx [n][h][w][c].
/// An argmax outside its output's window is an error.
pub fn max_pool_f32_backward(
    dy: &[f32],
    argmax: &[u32],
    in_shape: Shape,
    window: &Window,
) -> Result<Vec<f32>> {
    let op = "max_pool_f32_backward";
    let o = pool_out_shape(op, in_shape, window)?;
    check(op, "dy", dy.len(), o)?;
    check(op, "argmax", argmax.len(), o)?;
    let (w, c) = (in_shape.w, in_shape.c);
    let mut dx = vec![0f32; in_shape.len()];
    for b in 0..o.n {
        for oy in 0..o.h {
            let (y0, y1) = window_span(oy, window.stride_h, window.pad_top, window.kh, in_shape.h);
            for ox in 0..o.w {
                let (x0, x1) = window_span(ox, window.stride_w, window.pad_left, window.kw, w);
                let base = ((b * o.h + oy) * o.w + ox) * c;
                for ch in 0..c {
                    let i = argmax[base + ch] as usize;
                    let (iy, ix) = (i / w.max(1), i % w.max(1));
                    if !(y0..y1).contains(&iy) || !(x0..x1).contains(&ix) {
                        return Err(Error::range(
                            op,
                            format!("argmax {i} of output ({b}, {oy}, {ox}, {ch}) is outside its window"),
                        ));
                    }
                    dx[((b * in_shape.h + iy) * w + ix) * c + ch] += dy[base + ch];
                }
            }
        }
    }
    Ok(dx)
}

/// Average pool forward (count_include_pad = false), summed in f64.
pub fn avg_pool_f32(x: &[f32], shape: Shape, window: &Window) -> Result<(Shape, Vec<f32>)> {
    let o = pool_out_shape("avg_pool_f32", shape, window)?;
    check("avg_pool_f32", "x", x.len(), shape)?;
    let (w, c) = (shape.w, shape.c);
    let mut y = vec![0f32; o.len()];
    let mut acc = vec![0f64; c];
    for b in 0..o.n {
        for oy in 0..o.h {
            let (y0, y1) = window_span(oy, window.stride_h, window.pad_top, window.kh, shape.h);
            for ox in 0..o.w {
                let (x0, x1) = window_span(ox, window.stride_w, window.pad_left, window.kw, w);
                acc.fill(0.0);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let px = &x[((b * shape.h + iy) * w + ix) * c..][..c];
                        for (a, &v) in acc.iter_mut().zip(px) {
                            *a += v as f64;
                        }
                    }
                }
                let cnt = ((y1 - y0) * (x1 - x0)) as f64;
                let base = ((b * o.h + oy) * o.w + ox) * c;
                for (v, a) in y[base..base + c].iter_mut().zip(&acc) {
                    *v = (a / cnt) as f32;
                }
            }
        }
    }
    Ok((o, y))
}

/// Average pool backward: dy [n][oh][ow][c] → dx [n][h][w][c].
pub fn avg_pool_f32_backward(dy: &[f32], in_shape: Shape, window: &Window) -> Result<Vec<f32>> {
    let op = "avg_pool_f32_backward";
    let o = pool_out_shape(op, in_shape, window)?;
    check(op, "dy", dy.len(), o)?;
    let (w, c) = (in_shape.w, in_shape.c);
    let mut dx = vec![0f64; in_shape.len()];
    for b in 0..o.n {
        for oy in 0..o.h {
            let (y0, y1) = window_span(oy, window.stride_h, window.pad_top, window.kh, in_shape.h);
            for ox in 0..o.w {
                let (x0, x1) = window_span(ox, window.stride_w, window.pad_left, window.kw, w);
                let cnt = ((y1 - y0) * (x1 - x0)) as f64;
                let g = &dy[((b * o.h + oy) * o.w + ox) * c..][..c];
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let px = &mut dx[((b * in_shape.h + iy) * w + ix) * c..][..c];
                        for (d, &v) in px.iter_mut().zip(g) {
                            *d += v as f64 / cnt;
                        }
                    }
                }
            }
        }
    }
    Ok(dx.into_iter().map(|v| v as f32).collect())
}
