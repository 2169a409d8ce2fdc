//! CPU kernels of the float forward pass (`model::float`): a bounds-checked wrapper around
//! `matrixmultiply::sgemm`, dense conv as im2col + GEMM, depthwise conv as a direct loop, and
//! global average pooling.
//!
//! Layouts: activations NHWC `[n][h][w][c]`; dense weights OHWI `[cout][kh][kw][cin]`, read by the
//! GEMM as a `[kh·kw·cin][cout]` matrix through strides (no copy); depthwise weights `[c][kh][kw]`,
//! transposed per call to tap-major `[kh][kw][c]` so the inner loop runs over contiguous channels.
//!
//! Threads: the GEMM uses matrixmultiply's pool (physical cores; `MATMUL_NUM_THREADS` overrides);
//! depthwise splits output rows over `available_parallelism` scoped threads and, on x86-64 with
//! AVX2+FMA (detected at run time), uses fused multiply-adds.

use super::float::{FloatConv, Hwc};
use crate::error::{Error, Result};
use crate::reference::Window;

/// `rows` copies of `bias`, the initial C of a GEMM with β = 1.
pub(crate) fn broadcast_bias(bias: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * bias.len());
    for _ in 0..rows {
        out.extend_from_slice(bias);
    }
    out
}

/// Safe `matrixmultiply::sgemm`: `C = A·B + β·C`, C row-major contiguous `[m][n]`; A `[m][k]` and
/// B `[k][n]` given by (row stride, column stride) into their slices. Checks every bound.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
) -> Result<()> {
    // Largest offset read: (rows − 1)·rs + (cols − 1)·cs, which must be < len.
    let fits = |len: usize, rows: usize, cols: usize, rs: usize, cs: usize| {
        rows == 0
            || cols == 0
            || (rows - 1)
                .checked_mul(rs)
                .zip((cols - 1).checked_mul(cs))
                .and_then(|(p, q)| p.checked_add(q))
                .is_some_and(|last| last < len)
    };
    let strides_ok = [rsa, csa, rsb, csb, n]
        .iter()
        .all(|&s| s <= isize::MAX as usize);
    if !strides_ok
        || !fits(a.len(), m, k, rsa, csa)
        || !fits(b.len(), k, n, rsb, csb)
        || Some(c.len()) != m.checked_mul(n)
    {
        return Err(Error::shape(
            "sgemm",
            format!(
                "m {m} k {k} n {n}: A {} values (strides {rsa},{csa}), B {} (strides {rsb},{csb}), \
                 C {}",
                a.len(),
                b.len(),
                c.len()
            ),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.iter_mut().for_each(|v| *v *= beta);
        return Ok(());
    }
    // SAFETY: every element sgemm reads, A[i·rsa + p·csa] and B[p·rsb + j·csb] for i < m, p < k,
    // j < n, lies inside `a` and `b` (checked above, without overflow); C is the contiguous m×n
    // `c`, exclusively borrowed, whose strides (n, 1) do not alias.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    Ok(())
}

/// Input row/column for output position `o` and kernel tap `t`, or `None` in the padding.
fn tap(o: usize, t: usize, stride: usize, pad: usize, len: usize) -> Option<usize> {
    (o * stride + t).checked_sub(pad).filter(|&v| v < len)
}

/// Dense conv: im2col in row chunks (bounded memory), then one GEMM per chunk; 1×1 stride-1
/// unpadded convs are a GEMM on the input itself.
pub(crate) fn conv_dense(
    x: &[f32],
    n: usize,
    [h, w, cin]: Hwc,
    [oh, ow, cout]: Hwc,
    conv: &FloatConv,
) -> Result<Vec<f32>> {
    let win = &conv.window;
    let kk = win.kh * win.kw * cin;
    let rows = n * oh * ow;
    let mut out = broadcast_bias(&conv.bias, rows);
    let pointwise = (win.kh, win.kw, win.stride_h, win.stride_w) == (1, 1, 1, 1)
        && (win.pad_top, win.pad_left, win.pad_bottom, win.pad_right) == (0, 0, 0, 0);
    if pointwise {
        sgemm(
            rows,
            cin,
            cout,
            x,
            (cin, 1),
            &conv.weight,
            (1, kk),
            1.0,
            &mut out,
        )?;
    } else {
        let chunk = ((1usize << 21) / kk.max(1)).max(256);
        let mut cols = Vec::new();
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + chunk).min(rows);
            cols.clear();
            cols.resize((r1 - r0) * kk, 0.0);
            for (r, col) in (r0..r1).zip(cols.chunks_exact_mut(kk)) {
                let (b, oy, ox) = (r / (oh * ow), r / ow % oh, r % ow);
                for ky in 0..win.kh {
                    let Some(iy) = tap(oy, ky, win.stride_h, win.pad_top, h) else {
                        continue;
                    };
                    for kx in 0..win.kw {
                        let Some(ix) = tap(ox, kx, win.stride_w, win.pad_left, w) else {
                            continue;
                        };
                        let src = ((b * h + iy) * w + ix) * cin;
                        let dst = (ky * win.kw + kx) * cin;
                        col[dst..dst + cin].copy_from_slice(&x[src..src + cin]);
                    }
                }
            }
            let c = &mut out[r0 * cout..r1 * cout];
            sgemm(
                r1 - r0,
                kk,
                cout,
                &cols,
                (kk, 1),
                &conv.weight,
                (1, kk),
                1.0,
                c,
            )?;
            r0 = r1;
        }
    }
    conv.act.apply_slice(&mut out);
    Ok(out)
}

/// What one depthwise row job needs.
struct Depthwise<'a> {
    x: &'a [f32],
    in_hwc: Hwc,
    out_hw: (usize, usize),
    win: Window,
    /// Tap-major weights `[kh·kw][c]`.
    wt: Vec<f32>,
    conv: &'a FloatConv,
}

/// Channels per register block (accumulators kept in registers across taps).
const BLOCK: usize = 32;
const SMALL_BLOCK: usize = 8;

impl Depthwise<'_> {
    /// Output rows `first_row..` (row = image·oh + oy) into `chunk`.
    #[inline(always)]
    fn rows<const FMA: bool>(&self, first_row: usize, chunk: &mut [f32]) {
        let ([h, w, c], (oh, ow), win) = (self.in_hwc, self.out_hw, &self.win);
        let mut taps: Vec<(usize, usize)> = Vec::with_capacity(win.kh * win.kw);
        for (j, orow) in chunk.chunks_exact_mut(ow * c).enumerate() {
            let (b, oy) = ((first_row + j) / oh, (first_row + j) % oh);
            for (ox, out) in orow.chunks_exact_mut(c).enumerate() {
                // (input offset, weight offset) of every tap inside the image.
                taps.clear();
                for ky in 0..win.kh {
                    let Some(iy) = tap(oy, ky, win.stride_h, win.pad_top, h) else {
                        continue;
                    };
                    for kx in 0..win.kw {
                        if let Some(ix) = tap(ox, kx, win.stride_w, win.pad_left, w) {
                            taps.push((((b * h + iy) * w + ix) * c, (ky * win.kw + kx) * c));
                        }
                    }
                }
                let mut c0 = 0;
                while c0 + BLOCK <= c {
                    self.block::<BLOCK, FMA>(&taps, c0, out);
                    c0 += BLOCK;
                }
                while c0 + SMALL_BLOCK <= c {
                    self.block::<SMALL_BLOCK, FMA>(&taps, c0, out);
                    c0 += SMALL_BLOCK;
                }
                while c0 < c {
                    self.block::<1, FMA>(&taps, c0, out);
                    c0 += 1;
                }
            }
        }
    }

    /// Channels `c0..c0 + L` of one output pixel.
    #[inline(always)]
    fn block<const L: usize, const FMA: bool>(
        &self,
        taps: &[(usize, usize)],
        c0: usize,
        out: &mut [f32],
    ) {
        let mut acc = [0.0f32; L];
        acc.copy_from_slice(&self.conv.bias[c0..c0 + L]);
        for &(xo, wo) in taps {
            let (Some(xv), Some(wv)) = (
                self.x[xo + c0..].first_chunk::<L>(),
                self.wt[wo + c0..].first_chunk::<L>(),
            ) else {
                continue;
            };
            for j in 0..L {
                acc[j] = if FMA {
                    xv[j].mul_add(wv[j], acc[j])
                } else {
                    acc[j] + xv[j] * wv[j]
                };
            }
        }
        for (o, a) in out[c0..c0 + L].iter_mut().zip(acc) {
            *o = self.conv.act.apply(a);
        }
    }

    fn rows_plain(&self, first_row: usize, chunk: &mut [f32]) {
        self.rows::<false>(first_row, chunk);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_fma(&self, first_row: usize, chunk: &mut [f32]) {
        self.rows::<true>(first_row, chunk);
    }

    fn rows_dispatch(&self, first_row: usize, chunk: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were just detected on this CPU.
            unsafe { self.rows_fma(first_row, chunk) };
            return;
        }
        self.rows_plain(first_row, chunk);
    }
}

/// Depthwise conv, direct: each output pixel accumulates kh·kw channel vectors. Output rows are
/// split across threads.
pub(crate) fn conv_depthwise(
    x: &[f32],
    n: usize,
    in_hwc: Hwc,
    [oh, ow, c]: Hwc,
    conv: &FloatConv,
) -> Vec<f32> {
    let taps = conv.window.kh * conv.window.kw;
    let mut wt = vec![0.0f32; taps * c];
    for ch in 0..c {
        for t in 0..taps {
            wt[t * c + ch] = conv.weight[ch * taps + t];
        }
    }
    let job = Depthwise {
        x,
        in_hwc,
        out_hw: (oh, ow),
        win: conv.window,
        wt,
        conv,
    };
    let row_len = ow * c;
    let mut out = vec![0.0f32; n * oh * row_len];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    // Below ~64k multiply-adds per thread, spawning costs more than it saves.
    if threads <= 1 || n * oh < 2 || out.len() * taps < threads << 16 {
        job.rows_dispatch(0, &mut out);
        return out;
    }
    let rows_per = (n * oh).div_ceil(threads);
    std::thread::scope(|s| {
        let mut chunks = out.chunks_mut(rows_per * row_len).enumerate();
        let first = chunks.next();
        for (i, chunk) in chunks {
            let job = &job;
            s.spawn(move || job.rows_dispatch(i * rows_per, chunk));
        }
        if let Some((_, chunk)) = first {
            job.rows_dispatch(0, chunk);
        }
    });
    out
}

/// Mean over h and w, accumulated in f64: `[n][h][w][c]` → `[n][c]`.
pub(crate) fn global_avg_pool(x: &[f32], [h, w, c]: Hwc) -> Vec<f32> {
    let hw = h * w;
    let mut out = Vec::with_capacity(x.len() / hw.max(1));
    for img in x.chunks_exact(hw * c) {
        let mut acc = vec![0.0f64; c];
        for px in img.chunks_exact(c) {
            acc.iter_mut().zip(px).for_each(|(a, v)| *a += *v as f64);
        }
        out.extend(acc.iter().map(|a| (a / hw as f64) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::float::{Activation, ConvKind};

    /// Deterministic values in about −1..1.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Plain nested loops in f64: x NHWC, weights OHWI (dense) or [c][kh][kw] (depthwise).
    fn naive(x: &[f32], n: usize, [h, w, cin]: Hwc, conv: &FloatConv) -> Result<Vec<f32>> {
        let win = &conv.window;
        let (oh, ow) = win.out_hw("naive", h, w)?;
        let (k2, mut out) = (win.kh * win.kw, Vec::new());
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..conv.cout {
                        let mut acc = conv.bias[o] as f64;
                        for ky in 0..win.kh {
                            for kx in 0..win.kw {
                                let iy = (oy * win.stride_h + ky) as isize - win.pad_top as isize;
                                let ix = (ox * win.stride_w + kx) as isize - win.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let px = ((b * h + iy as usize) * w + ix as usize) * cin;
                                let t = ky * win.kw + kx;
                                let (xs, ws) = match conv.kind {
                                    ConvKind::Dense => (px..px + cin, (o * k2 + t) * cin),
                                    ConvKind::Depthwise => (px + o..px + o + 1, o * k2 + t),
                                };
                                for (xv, wv) in x[xs].iter().zip(&conv.weight[ws..]) {
                                    acc += *xv as f64 * *wv as f64;
                                }
                            }
                        }
                        out.push(conv.act.apply(acc as f32));
                    }
                }
            }
        }
        Ok(out)
    }

    fn check(kind: ConvKind, k: usize, stride: usize, hw: (usize, usize), c: (usize, usize)) {
        let (h, w, n) = (hw.0, hw.1, 2);
        let (cin, cout) = c;
        let per_out = if kind == ConvKind::Dense {
            k * k * cin
        } else {
            k * k
        };
        let window = Window::same(k, stride, h, w);
        let conv = FloatConv {
            name: "t".into(),
            kind,
            cout,
            cin,
            kh: k,
            kw: k,
            window,
            weight: values(cout * per_out, 1),
            bias: values(cout, 2),
            act: Activation::Relu6,
        };
        let x = values(n * h * w * cin, 3);
        let Ok(want) = naive(&x, n, [h, w, cin], &conv) else {
            unreachable!("window does not fit")
        };
        let Ok((oh, ow)) = window.out_hw("t", h, w) else {
            unreachable!("window does not fit")
        };
        let dims = ([h, w, cin], [oh, ow, cout]);
        let mut variants = vec![match kind {
            ConvKind::Dense => conv_dense(&x, n, dims.0, dims.1, &conv).unwrap_or_default(),
            ConvKind::Depthwise => conv_depthwise(&x, n, dims.0, dims.1, &conv),
        }];
        if kind == ConvKind::Depthwise {
            // The portable path too, whatever the CPU.
            let wt = (0..k * k * cin)
                .map(|i| conv.weight[i % cin * k * k + i / cin])
                .collect();
            let (x, win) = (&x, window);
            let job = Depthwise {
                x,
                in_hwc: dims.0,
                out_hw: (oh, ow),
                win,
                wt,
                conv: &conv,
            };
            let mut plain = vec![0.0f32; n * oh * ow * cout];
            job.rows_plain(0, &mut plain);
            variants.push(plain);
        }
        let tol = 1e-5 * (1.0 + per_out as f32).sqrt();
        for got in variants {
            assert_eq!(
                got.len(),
                want.len(),
                "{kind:?} k{k} s{stride} {hw:?} {c:?}"
            );
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - r).abs() <= tol,
                    "{kind:?} k{k} s{stride} {hw:?} {c:?} [{i}]: {g}, {r}"
                );
            }
        }
    }

    #[test]
    fn depthwise_matches_naive() {
        // Channel counts hitting the 32-block, the 8-block and the scalar tail.
        for (k, s, hw, c) in [
            (3, 1, (7, 9), 37),
            (5, 2, (11, 8), 48),
            (3, 2, (4, 4), 5),
            (5, 1, (3, 2), 64),
        ] {
            check(ConvKind::Depthwise, k, s, hw, (c, c));
        }
    }

    #[test]
    fn dense_conv_matches_naive() {
        for (k, s, hw, c) in [
            (3, 2, (9, 7), (3, 8)),
            (1, 1, (5, 5), (16, 7)),
            (1, 2, (6, 5), (4, 4)),
            (5, 1, (4, 6), (5, 3)),
        ] {
            check(ConvKind::Dense, k, s, hw, c);
        }
    }

    #[test]
    fn sgemm_checks_bounds() {
        let (a, b) = (vec![1.0f32; 6], vec![1.0f32; 6]);
        let mut c = vec![0.0f32; 4];
        assert!(sgemm(2, 3, 2, &a, (3, 1), &b, (2, 1), 0.0, &mut c).is_ok());
        assert_eq!(c, vec![3.0; 4]);
        assert!(sgemm(2, 4, 2, &a, (3, 1), &b, (2, 1), 0.0, &mut c).is_err());
        assert!(sgemm(2, 3, 2, &a, (4, 1), &b, (2, 1), 0.0, &mut c).is_err());
        assert!(sgemm(2, 3, 2, &a, (3, 1), &b, (2, 1), 0.0, &mut c[..3]).is_err());
        assert!(sgemm(2, 3, 2, &a, (usize::MAX, 1), &b, (2, 1), 0.0, &mut c).is_err());
    }
}
