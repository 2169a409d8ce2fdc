//! The CPU float workhorse: a bounds-checked `sgemm` over `matrixmultiply` (threaded over the
//! physical cores; `MATMUL_NUM_THREADS` overrides) and im2col / col2im for NHWC tensors under a
//! `Window` (stride, asymmetric zero padding) and a channel slice (one group of a grouped conv).
//!
//! Layouts: matrices are strided views (`Mat`: row stride, column stride), so transposes cost
//! nothing; outputs (`MatMut`) are row-major with a row stride (a column block of a wider matrix).
//! `Patches` is the im2col matrix of an NHWC input `[n][h][w][c]`: row `r` = output pixel
//! `(b, oy, ox)` (r = (b·oh + oy)·ow + ox), column `(ky·kw + kx)·cs + j` = input channel `c0 + j`
//! at tap `(ky, kx)`, zero where the tap falls in the padding. Its rows are built (and scattered
//! back) in bounded chunks by the callers; copying is split across threads.

use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;
use std::ops::Range;

/// A read-only strided matrix view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Mat<'a> {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside `data` (no overflow).
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1)
                .checked_mul(self.rs)
                .zip((self.cols - 1).checked_mul(self.cs))
                .and_then(|(p, q)| p.checked_add(q))
                .is_some_and(|last| last < self.data.len())
    }
}

/// A writable row-major matrix view with row stride `rs` ≥ `cols` (column stride 1).
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
}

impl<'a> MatMut<'a> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
        }
    }
}

/// `C = α·A·B + β·C` (β = 0 ignores C's old contents, NaN included), every bound checked.
pub fn sgemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let c_fits = c.rows == 0
        || c.cols == 0
        || (c.rs >= c.cols
            && (c.rows - 1)
                .checked_mul(c.rs)
                .and_then(|v| v.checked_add(c.cols))
                .is_some_and(|end| end <= c.data.len()));
    let strides_ok = [a.rs, a.cs, b.rs, b.cs, c.rs]
        .iter()
        .all(|&s| s <= isize::MAX as usize);
    if b.rows != k || c.rows != m || c.cols != n || !strides_ok || !a.fits() || !b.fits() || !c_fits
    {
        return Err(Error::shape(
            "sgemm",
            format!(
                "A [{m}x{k}] ({} values, strides {},{}), B [{}x{n}] ({} values, strides {},{}), \
                 C [{}x{}] ({} values, row stride {})",
                a.data.len(),
                a.rs,
                a.cs,
                b.rows,
                b.data.len(),
                b.rs,
                b.cs,
                c.rows,
                c.cols,
                c.data.len(),
                c.rs
            ),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == 0.0 {
        for row in c.data.chunks_mut(c.rs).take(m) {
            row[..n]
                .iter_mut()
                .for_each(|v| *v = if beta == 0.0 { 0.0 } else { *v * beta });
        }
        return Ok(());
    }
    // SAFETY: every element read, A[i·rsa + p·csa] and B[p·rsb + j·csb] for i < m, p < k, j < n,
    // lies inside `a.data` and `b.data`, and every element written, C[i·rs + j], inside `c.data`
    // (checked above without overflow). C is exclusively borrowed and its rows (rs ≥ n) do not
    // overlap. matrixmultiply treats β = 0 as "C is not read".
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            1,
        );
    }
    Ok(())
}

/// Threads for the copy loops: the available parallelism (matrixmultiply threads its own GEMMs).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// Below this many elements per thread a copy loop runs on the calling thread.
const PAR_MIN: usize = 1 << 16;

/// Run `f(first_item, chunk)` over `data` split into chunks of whole items (`item` elements
/// each), one chunk per thread; `work` (about the number of multiply-adds or copies) decides
/// whether threads pay off. Each item is processed by exactly one call, in item order.
pub fn par_chunks<F>(data: &mut [f32], item: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let items = data.len().checked_div(item).unwrap_or(0);
    let t = threads().min(items).min(work / PAR_MIN).max(1);
    if t <= 1 {
        f(0, data);
        return;
    }
    let per = items.div_ceil(t);
    std::thread::scope(|s| {
        let mut chunks = data.chunks_mut(per * item).enumerate();
        let first = chunks.next();
        for (i, chunk) in chunks {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
        if let Some((_, chunk)) = first {
            f(0, chunk);
        }
    });
}

/// The input coordinate of output position `o` at tap `t`, or `None` in the padding.
#[inline]
pub fn tap(o: usize, t: usize, stride: usize, pad: usize, len: usize) -> Option<usize> {
    (o * stride + t).checked_sub(pad).filter(|&v| v < len)
}

/// The im2col matrix of an NHWC input (see the module docs) restricted to channels `c0..c0 + cs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patches {
    pub input: Shape,
    pub window: Window,
    pub out_h: usize,
    pub out_w: usize,
    pub c0: usize,
    pub cs: usize,
}

impl Patches {
    pub fn new(
        op: &'static str,
        input: Shape,
        window: Window,
        c0: usize,
        cs: usize,
    ) -> Result<Self> {
        let (out_h, out_w) = window.out_hw(op, input.h, input.w)?;
        if cs == 0 || c0 + cs > input.c {
            return Err(Error::shape(
                op,
                format!("channel slice {c0}..{} of input {input}", c0 + cs),
            ));
        }
        Ok(Patches {
            input,
            window,
            out_h,
            out_w,
            c0,
            cs,
        })
    }

    /// Rows: output pixels `n·oh·ow`.
    pub fn rows(&self) -> usize {
        self.input.n * self.out_h * self.out_w
    }

    /// Columns: `kh·kw·cs`.
    pub fn cols(&self) -> usize {
        self.window.kh * self.window.kw * self.cs
    }

    /// A chunk length (rows) whose im2col fits about 8 MiB, at least 256 rows.
    pub fn chunk_rows(&self) -> usize {
        ((1usize << 21) / self.cols().max(1)).max(256)
    }

    /// Whether the matrix is the input itself (1×1, stride 1, no padding, all channels), so
    /// callers can skip the copy.
    pub fn is_identity(&self) -> bool {
        let w = &self.window;
        (w.kh, w.kw, w.stride_h, w.stride_w) == (1, 1, 1, 1)
            && (w.pad_top, w.pad_left, w.pad_bottom, w.pad_right) == (0, 0, 0, 0)
            && self.cs == self.input.c
    }

    /// (input pixel offset in elements, column offset) of every tap of row `r` inside the image.
    fn taps(&self, r: usize, out: &mut Vec<(usize, usize)>) {
        let (s, w) = (self.input, &self.window);
        let (b, oy, ox) = (
            r / (self.out_h * self.out_w),
            r / self.out_w % self.out_h,
            r % self.out_w,
        );
        out.clear();
        for ky in 0..w.kh {
            let Some(iy) = tap(oy, ky, w.stride_h, w.pad_top, s.h) else {
                continue;
            };
            for kx in 0..w.kw {
                if let Some(ix) = tap(ox, kx, w.stride_w, w.pad_left, s.w) {
                    let px = ((b * s.h + iy) * s.w + ix) * s.c + self.c0;
                    out.push((px, (ky * w.kw + kx) * self.cs));
                }
            }
        }
    }

    /// Rows `rows` of the matrix into `cols` (`rows.len() × cols()`, row-major; padding taps 0).
    pub fn im2col(&self, x: &[f32], rows: Range<usize>, cols: &mut [f32]) -> Result<()> {
        let k = self.cols();
        if x.len() != self.input.len() || rows.end > self.rows() || cols.len() != rows.len() * k {
            return Err(Error::shape(
                "im2col",
                format!(
                    "x {} values for {}, rows {rows:?} of {}, out {} values",
                    x.len(),
                    self.input,
                    self.rows(),
                    cols.len()
                ),
            ));
        }
        let cs = self.cs;
        let work = cols.len();
        par_chunks(cols, k, work, |first, chunk| {
            let mut taps = Vec::with_capacity(self.window.kh * self.window.kw);
            for (i, row) in chunk.chunks_exact_mut(k).enumerate() {
                self.taps(rows.start + first + i, &mut taps);
                if taps.len() * cs < k {
                    row.fill(0.0);
                }
                for &(px, col) in &taps {
                    row[col..col + cs].copy_from_slice(&x[px..px + cs]);
                }
            }
        });
        Ok(())
    }

    /// Scatter-add rows `rows` of a column matrix back into `dx` (the adjoint of `im2col`).
    /// Images are disjoint in `dx`, so they are split across threads; inside an image rows are
    /// added in order, so the summation order is fixed.
    pub fn col2im_add(&self, cols: &[f32], rows: Range<usize>, dx: &mut [f32]) -> Result<()> {
        let k = self.cols();
        if dx.len() != self.input.len() || rows.end > self.rows() || cols.len() != rows.len() * k {
            return Err(Error::shape(
                "col2im",
                format!(
                    "dx {} values for {}, rows {rows:?} of {}, cols {} values",
                    dx.len(),
                    self.input,
                    self.rows(),
                    cols.len()
                ),
            ));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let (cs, img_rows) = (self.cs, self.out_h * self.out_w);
        let img_len = self.input.h * self.input.w * self.input.c;
        let (b0, b1) = (rows.start / img_rows, (rows.end - 1) / img_rows + 1);
        let dx = &mut dx[b0 * img_len..b1 * img_len];
        par_chunks(dx, img_len, cols.len(), |first, dxs| {
            let base = (b0 + first) * img_len;
            let r0 = ((b0 + first) * img_rows).max(rows.start);
            let r1 =
                ((b0 + first) * img_rows + dxs.len() / img_len.max(1) * img_rows).min(rows.end);
            let mut taps = Vec::with_capacity(self.window.kh * self.window.kw);
            for r in r0..r1 {
                let row = &cols[(r - rows.start) * k..(r - rows.start + 1) * k];
                self.taps(r, &mut taps);
                for &(px, col) in &taps {
                    let d = &mut dxs[px - base..px - base + cs];
                    d.iter_mut()
                        .zip(&row[col..col + cs])
                        .for_each(|(d, v)| *d += *v);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let s: f64 = (0..a.cols)
                    .map(|p| {
                        a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64
                    })
                    .sum();
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn sgemm_matches_naive_with_transposes_and_row_stride() -> Result<()> {
        let a: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..28).map(|i| (i as f32 * 0.11).cos()).collect();
        // A^T (7x5 stored) · B (7x4): 5x4, written into columns 2..6 of a 5x9 matrix.
        let at = Mat::row_major(&a, 7, 5).t();
        let bm = Mat::row_major(&b, 7, 4);
        let want = naive(at, bm);
        let mut c = [f32::NAN; 45];
        let cm = MatMut {
            data: &mut c[2..],
            rows: 5,
            cols: 4,
            rs: 9,
        };
        sgemm(1.0, at, bm, 0.0, cm)?;
        for i in 0..5 {
            for j in 0..4 {
                assert!((c[2 + i * 9 + j] - want[i * 4 + j]).abs() < 1e-5);
            }
            assert!(c[i * 9].is_nan() && c[i * 9 + 1].is_nan());
        }
        Ok(())
    }

    #[test]
    fn sgemm_checks_bounds() {
        let a = [1.0; 6];
        let b = [1.0; 6];
        let mut c = [0.0; 4];
        let ok = sgemm(
            1.0,
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&b, 3, 2),
            0.0,
            MatMut::row_major(&mut c, 2, 2),
        );
        assert!(ok.is_ok() && c == [3.0; 4]);
        let bad_k = sgemm(
            1.0,
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&b, 2, 3),
            0.0,
            MatMut::row_major(&mut c, 2, 2),
        );
        assert!(bad_k.is_err());
        let mut a_long = Mat::row_major(&a, 2, 3);
        a_long.rs = 4;
        let bad = sgemm(
            1.0,
            a_long,
            Mat::row_major(&b, 3, 2),
            0.0,
            MatMut::row_major(&mut c, 2, 2),
        );
        assert!(bad.is_err());
        let mut huge = Mat::row_major(&a, 2, 3);
        huge.rs = usize::MAX;
        let bad = sgemm(
            1.0,
            huge,
            Mat::row_major(&b, 3, 2),
            0.0,
            MatMut::row_major(&mut c, 2, 2),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() -> Result<()> {
        // <im2col(x), y> == <x, col2im(y)> for a strided, asymmetrically padded window and a
        // channel slice.
        let input = Shape::new(2, 5, 4, 6);
        let win = Window {
            kh: 3,
            kw: 2,
            stride_h: 2,
            stride_w: 1,
            pad_top: 1,
            pad_left: 0,
            pad_bottom: 2,
            pad_right: 1,
        };
        let p = Patches::new("t", input, win, 2, 3)?;
        let x: Vec<f32> = (0..input.len()).map(|i| (i as f32 * 0.3).sin()).collect();
        let y: Vec<f32> = (0..p.rows() * p.cols())
            .map(|i| (i as f32 * 0.7).cos())
            .collect();
        let mut cols = vec![f32::NAN; y.len()];
        p.im2col(&x, 0..p.rows(), &mut cols)?;
        let mut dx = vec![0.0; x.len()];
        p.col2im_add(&y, 0..p.rows(), &mut dx)?;
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
        // Channels outside the slice get no gradient.
        for (i, v) in dx.iter().enumerate() {
            if !(2..5).contains(&(i % 6)) {
                assert_eq!(*v, 0.0);
            }
        }
        Ok(())
    }
}
