//! CPU spec and backend of the f32 depthwise convolution, forward and backward
//! (`shaders/depthwise_f32.wgsl`, `src/ops/depthwise_f32.rs`).
//!
//! x NHWC [n][h][w][c], w [c][kh][kw] (one filter per channel), bias [c], zero padding per
//! `Window`, y NHWC [n][oh][ow][c] = act(depthwise(x, w) + bias).
//! - backward input (gather): dx[b][iy][ix][c] = Σ over taps (ky, kx) whose output pixel
//!   oy = (iy + pad_top − ky)/stride_h (exact, in range; same for x) exists of dy[b][oy][ox][c]·w[c][ky][kx]
//! - backward weight: dw[c][ky][kx] = Σ_{b,oy,ox} dy[b][oy][ox][c]·x[b][iy][ix][c], db[c] = Σ dy
//!
//! Direct loops with channels innermost (weights transposed to tap-major `[kh·kw][c]`, so the
//! inner loops run over contiguous channels and vectorize; on x86-64 with AVX2+FMA, detected at
//! run time, they are compiled with fused multiply-adds); f32 accumulation. Output rows are
//! split across threads; the weight gradient sums fixed row chunks (at most `WEIGHT_CHUNKS`,
//! independent of the thread count) into partials that are added in order in f64, so results do
//! not depend on threading.

use super::blas::{par_chunks, tap};
use super::gemm_f32::Activation;
use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Row chunks of the weight gradient (fixed, so the summation order is too).
const WEIGHT_CHUNKS: usize = 8;

/// Check lengths; the output shape.
fn check(
    op: &'static str,
    shape: Shape,
    window: &Window,
    lens: &[(&str, usize, usize)],
) -> Result<Shape> {
    let (oh, ow) = window.out_hw(op, shape.h, shape.w)?;
    let os = Shape::new(shape.n, oh, ow, shape.c);
    for &(what, got, want) in lens {
        if got != want || shape.c == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "{what} has {got} values, expected {want} for input {shape} -> {os}, {}x{} kernel",
                    window.kh, window.kw
                ),
            ));
        }
    }
    Ok(os)
}

/// `[c][taps]` → `[taps][c]`.
fn tap_major(w: &[f32], c: usize, taps: usize) -> Vec<f32> {
    let mut wt = vec![0.0; w.len()];
    for ch in 0..c {
        for t in 0..taps {
            wt[t * c + ch] = w[ch * taps + t];
        }
    }
    wt
}

/// `acc[i] += a[i] · b[i]` (fused when `FMA`).
#[inline(always)]
fn fma<const FMA: bool>(acc: &mut [f32], a: &[f32], b: &[f32]) {
    for (s, (a, b)) in acc.iter_mut().zip(a.iter().zip(b)) {
        *s = if FMA { a.mul_add(*b, *s) } else { *s + a * b };
    }
}

/// A row loop compiled twice: plain, and with AVX2+FMA where the CPU has them.
trait Rows: Sync {
    /// Process items `first..` into `out`.
    fn rows<const FMA: bool>(&self, first: usize, out: &mut [f32]);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_fma<J: Rows>(job: &J, first: usize, out: &mut [f32]) {
    job.rows::<true>(first, out);
}

fn rows<J: Rows>(job: &J, first: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA were just detected on this CPU.
        unsafe { rows_fma(job, first, out) };
        return;
    }
    job.rows::<false>(first, out);
}

/// Forward rows `(b, oy)` of the output.
struct Forward<'a> {
    x: &'a [f32],
    shape: Shape,
    os: Shape,
    wt: Vec<f32>,
    bias: &'a [f32],
    window: &'a Window,
    act: Activation,
}

impl Rows for Forward<'_> {
    #[inline(always)]
    fn rows<const FMA: bool>(&self, first: usize, out: &mut [f32]) {
        let (shape, os, win, c) = (self.shape, self.os, self.window, self.shape.c);
        for (j, yrow) in out.chunks_exact_mut(os.w * c).enumerate() {
            let (b, oy) = ((first + j) / os.h, (first + j) % os.h);
            for (ox, out) in yrow.chunks_exact_mut(c).enumerate() {
                out.copy_from_slice(self.bias);
                for ky in 0..win.kh {
                    let Some(iy) = tap(oy, ky, win.stride_h, win.pad_top, shape.h) else {
                        continue;
                    };
                    for kx in 0..win.kw {
                        let Some(ix) = tap(ox, kx, win.stride_w, win.pad_left, shape.w) else {
                            continue;
                        };
                        let px = ((b * shape.h + iy) * shape.w + ix) * c;
                        let t = (ky * win.kw + kx) * c;
                        fma::<FMA>(out, &self.x[px..px + c], &self.wt[t..t + c]);
                    }
                }
                if self.act != Activation::None {
                    out.iter_mut().for_each(|v| *v = self.act.apply(*v));
                }
            }
        }
    }
}

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
    let lens = [
        ("x", x.len(), shape.len()),
        ("w", w.len(), c * kh * kw),
        ("bias", bias.len(), c),
    ];
    let os = check("depthwise_f32", shape, window, &lens)?;
    let job = Forward {
        x,
        shape,
        os,
        wt: tap_major(w, c, kh * kw),
        bias,
        window,
        act,
    };
    let mut y = vec![0.0; os.len()];
    par_chunks(&mut y, os.w * c, os.len() * kh * kw, |first, out| {
        rows(&job, first, out)
    });
    Ok((os, y))
}

/// The taps `t` (< k) with `(i + pad − t) = o·stride`, `o < out`: `(t, o)` pairs.
fn back_taps(i: usize, k: usize, stride: usize, pad: usize, out: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let q = i + pad;
    let mut t = q % stride;
    while t < k && t <= q {
        let o = (q - t) / stride;
        if o < out {
            v.push((t, o));
        }
        t += stride;
    }
    v
}

/// Input-gradient rows `(b, iy)` of dx (gather over the taps that reach them).
struct BackwardInput<'a> {
    dy: &'a [f32],
    shape: Shape,
    os: Shape,
    wt: Vec<f32>,
    window: &'a Window,
    /// `back_taps` of every input column.
    cols: Vec<Vec<(usize, usize)>>,
}

impl Rows for BackwardInput<'_> {
    #[inline(always)]
    fn rows<const FMA: bool>(&self, first: usize, out: &mut [f32]) {
        let (shape, os, win, c) = (self.shape, self.os, self.window, self.shape.c);
        for (j, dxrow) in out.chunks_exact_mut(shape.w * c).enumerate() {
            let (b, iy) = ((first + j) / shape.h, (first + j) % shape.h);
            let ys = back_taps(iy, win.kh, win.stride_h, win.pad_top, os.h);
            for (ix, out) in dxrow.chunks_exact_mut(c).enumerate() {
                for &(ky, oy) in &ys {
                    for &(kx, ox) in &self.cols[ix] {
                        let px = ((b * os.h + oy) * os.w + ox) * c;
                        let t = (ky * win.kw + kx) * c;
                        fma::<FMA>(out, &self.dy[px..px + c], &self.wt[t..t + c]);
                    }
                }
            }
        }
    }
}

/// Weight-gradient partials: item i sums output rows `i·per..` into `[taps][c]` then `[c]`.
struct BackwardWeight<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    shape: Shape,
    os: Shape,
    window: &'a Window,
    per: usize,
}

impl Rows for BackwardWeight<'_> {
    #[inline(always)]
    fn rows<const FMA: bool>(&self, first: usize, out: &mut [f32]) {
        let (shape, os, win, c) = (self.shape, self.os, self.window, self.shape.c);
        let taps = win.kh * win.kw;
        for (j, part) in out.chunks_exact_mut((taps + 1) * c).enumerate() {
            let (dwp, dbp) = part.split_at_mut(taps * c);
            let first_row = (first + j) * self.per;
            for row in first_row..(first_row + self.per).min(os.n * os.h) {
                let (b, oy) = (row / os.h, row % os.h);
                for ox in 0..os.w {
                    let g = &self.dy[((b * os.h + oy) * os.w + ox) * c..][..c];
                    dbp.iter_mut().zip(g).for_each(|(s, v)| *s += v);
                    for ky in 0..win.kh {
                        let Some(iy) = tap(oy, ky, win.stride_h, win.pad_top, shape.h) else {
                            continue;
                        };
                        for kx in 0..win.kw {
                            let Some(ix) = tap(ox, kx, win.stride_w, win.pad_left, shape.w) else {
                                continue;
                            };
                            let px = ((b * shape.h + iy) * shape.w + ix) * c;
                            let t = (ky * win.kw + kx) * c;
                            fma::<FMA>(&mut dwp[t..t + c], g, &self.x[px..px + c]);
                        }
                    }
                }
            }
        }
    }
}

/// dL/dx of the depthwise convolution given dL/dy (`dy`, the output's shape); `shape` is x's.
pub fn depthwise_f32_backward_input(
    dy: &[f32],
    shape: Shape,
    w: &[f32],
    window: &Window,
) -> Result<Vec<f32>> {
    let (kh, kw, c) = (window.kh, window.kw, shape.c);
    let op = "depthwise_f32_backward_input";
    let (oh, ow) = window.out_hw(op, shape.h, shape.w)?;
    let lens = [
        ("dy", dy.len(), shape.n * oh * ow * c),
        ("w", w.len(), c * kh * kw),
    ];
    let os = check(op, shape, window, &lens)?;
    let job = BackwardInput {
        dy,
        shape,
        os,
        wt: tap_major(w, c, kh * kw),
        window,
        cols: (0..shape.w)
            .map(|ix| back_taps(ix, kw, window.stride_w, window.pad_left, os.w))
            .collect(),
    };
    let mut dx = vec![0.0; shape.len()];
    par_chunks(&mut dx, shape.w * c, os.len() * kh * kw, |first, out| {
        rows(&job, first, out)
    });
    Ok(dx)
}

/// dL/dw (`[c][kh][kw]`, like `w`) and dL/dbias of the depthwise convolution given its input `x`
/// (shape `shape`) and dL/dy.
pub fn depthwise_f32_backward_weight(
    x: &[f32],
    shape: Shape,
    dy: &[f32],
    window: &Window,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (kh, kw, c) = (window.kh, window.kw, shape.c);
    let op = "depthwise_f32_backward_weight";
    let (oh, ow) = window.out_hw(op, shape.h, shape.w)?;
    let lens = [
        ("x", x.len(), shape.len()),
        ("dy", dy.len(), shape.n * oh * ow * c),
    ];
    let os = check(op, shape, window, &lens)?;
    let taps = kh * kw;
    let out_rows = os.n * os.h;
    let chunks = out_rows.clamp(1, WEIGHT_CHUNKS);
    let job = BackwardWeight {
        x,
        dy,
        shape,
        os,
        window,
        per: out_rows.div_ceil(chunks),
    };
    // Partials per chunk: [taps][c] weight sums, then [c] bias sums.
    let item = (taps + 1) * c;
    let mut parts = vec![0.0f32; chunks * item];
    par_chunks(&mut parts, item, os.len() * taps, |first, out| {
        rows(&job, first, out)
    });
    let mut dw = vec![0.0; c * taps];
    let mut db = vec![0.0; c];
    for ch in 0..c {
        for t in 0..=taps {
            let s: f64 = parts.chunks_exact(item).map(|p| p[t * c + ch] as f64).sum();
            if t < taps {
                dw[ch * taps + t] = s as f32;
            } else {
                db[ch] = s as f32;
            }
        }
    }
    Ok((dw, db))
}
