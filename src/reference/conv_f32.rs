//! CPU spec and backend of the f32 convolution, forward and backward
//! (`shaders/conv_f32.wgsl`, `src/ops/conv_f32.rs`; the GPU kernels are dense, groups = 1).
//!
//! x NHWC [n][h][w][cin], w OHWI [cout][kh][kw][cin/groups], bias [cout], zero padding per
//! `Window`, y NHWC [n][oh][ow][cout] = act(conv(x, w) + bias). Group g maps input channels
//! `g·cin_g..` to output channels `g·cout_g..` (dense: groups = 1; depthwise has its own direct
//! functions in `depthwise_f32.rs`).
//!
//! Everything goes through `blas`: the im2col matrix of group g (rows = output pixels M = n·oh·ow,
//! columns K_g = kh·kw·cin_g) is built in row chunks of about 8 MiB, then
//! - forward:         y_g  [M][cout_g]  = col_g · w_gᵀ            (+ bias, act)
//! - backward input:  dx  += col2im(dy_g · w_g)                    (dcol_g [M][K_g])
//! - backward weight: dw_g [cout_g][K_g] = Σ_chunks dy_gᵀ · col_g,  db = Σ_rows dy (f64)
//!
//! 1×1 stride-1 unpadded convs skip the copy (the GEMM reads x through strides). Accumulation is
//! f32 in the GEMM (matrixmultiply, threaded); summation orders are fixed, so results are
//! deterministic on a machine.

use super::blas::{sgemm, Mat, MatMut, Patches};
use super::gemm_f32::Activation;
use super::Window;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The geometry of a (possibly grouped) convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub input: Shape,
    pub cout: usize,
    pub window: Window,
    pub groups: usize,
}

impl ConvGeom {
    /// A dense convolution (groups = 1).
    pub fn dense(input: Shape, cout: usize, window: Window) -> ConvGeom {
        ConvGeom {
            input,
            cout,
            window,
            groups: 1,
        }
    }

    /// Check channel counts against the groups and the window against the input; the output shape.
    pub fn output(&self, op: &'static str) -> Result<Shape> {
        let (cin, cout, g) = (self.input.c, self.cout, self.groups);
        if g == 0 || cin == 0 || cout == 0 || cin % g != 0 || cout % g != 0 {
            return Err(Error::shape(
                op,
                format!("{cin} input and {cout} output channels in {g} groups"),
            ));
        }
        let (oh, ow) = self.window.out_hw(op, self.input.h, self.input.w)?;
        Ok(Shape::new(self.input.n, oh, ow, cout))
    }

    pub fn cin_g(&self) -> usize {
        self.input.c / self.groups.max(1)
    }

    pub fn cout_g(&self) -> usize {
        self.cout / self.groups.max(1)
    }

    /// Reduction length of one output: kh·kw·cin_g.
    pub fn k_g(&self) -> usize {
        self.window.kh * self.window.kw * self.cin_g()
    }

    /// Weight count: cout·kh·kw·cin_g.
    pub fn weight_len(&self) -> usize {
        self.cout * self.k_g()
    }

    fn pointwise(&self) -> bool {
        let w = &self.window;
        (w.kh, w.kw, w.stride_h, w.stride_w) == (1, 1, 1, 1)
            && (w.pad_top, w.pad_left, w.pad_bottom, w.pad_right) == (0, 0, 0, 0)
    }

    /// The im2col matrix of group `g`.
    fn patches(&self, op: &'static str, g: usize) -> Result<Patches> {
        let c = self.cin_g();
        Patches::new(op, self.input, self.window, g * c, c)
    }

    /// Check slice lengths; returns the output shape.
    fn check(&self, op: &'static str, lens: &[(&str, usize, usize)]) -> Result<Shape> {
        let os = self.output(op)?;
        for &(what, got, want) in lens {
            if got != want {
                return Err(Error::shape(
                    op,
                    format!(
                        "{what} has {got} values, expected {want} for input {} -> {os}, \
                         {}x{} kernel, {} groups",
                        self.input, self.window.kh, self.window.kw, self.groups
                    ),
                ));
            }
        }
        Ok(os)
    }
}

/// Group g's columns of a `[rows][cout]` matrix starting at row `r0`.
fn block(data: &[f32], r0: usize, rows: usize, g: usize, width: usize, stride: usize) -> Mat<'_> {
    Mat {
        data: &data[(r0 * stride + g * width).min(data.len())..],
        rows,
        cols: width,
        rs: stride,
        cs: 1,
    }
}

fn block_mut(
    data: &mut [f32],
    r0: usize,
    rows: usize,
    g: usize,
    width: usize,
    stride: usize,
) -> MatMut<'_> {
    let start = (r0 * stride + g * width).min(data.len());
    MatMut {
        data: &mut data[start..],
        rows,
        cols: width,
        rs: stride,
    }
}

/// The dense convolution; returns the output shape and values.
pub fn conv_f32(
    x: &[f32],
    shape: Shape,
    w: &[f32],
    bias: &[f32],
    cout: usize,
    window: &Window,
    act: Activation,
) -> Result<(Shape, Vec<f32>)> {
    let g = ConvGeom::dense(shape, cout, *window);
    let y = conv_f32_forward(&g, x, w, bias, act)?;
    Ok((g.output("conv_f32")?, y))
}

/// The (grouped) convolution `y = act(conv(x, w) + bias)`.
pub fn conv_f32_forward(
    geom: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act: Activation,
) -> Result<Vec<f32>> {
    let op = "conv_f32";
    let os = geom.check(
        op,
        &[
            ("x", x.len(), geom.input.len()),
            ("w", w.len(), geom.weight_len()),
            ("bias", bias.len(), geom.cout),
        ],
    )?;
    let (m, cout, cout_g, cin_g, k) = (
        os.pixels(),
        geom.cout,
        geom.cout_g(),
        geom.cin_g(),
        geom.k_g(),
    );
    let mut y = Vec::with_capacity(os.len());
    for _ in 0..m {
        y.extend_from_slice(bias);
    }
    let w_g = |g: usize| Mat::row_major(&w[g * cout_g * k..], cout_g, k).t();
    if geom.pointwise() {
        for g in 0..geom.groups {
            let a = block(x, 0, m, g, cin_g, geom.input.c);
            sgemm(
                1.0,
                a,
                w_g(g),
                1.0,
                block_mut(&mut y, 0, m, g, cout_g, cout),
            )?;
        }
    } else {
        let patches: Vec<Patches> = (0..geom.groups)
            .map(|g| geom.patches(op, g))
            .collect::<Result<_>>()?;
        let chunk = patches[0].chunk_rows();
        let mut cols = vec![0.0; chunk.min(m) * k];
        for r0 in (0..m).step_by(chunk) {
            let rows = chunk.min(m - r0);
            let cols = &mut cols[..rows * k];
            for (g, p) in patches.iter().enumerate() {
                p.im2col(x, r0..r0 + rows, cols)?;
                let a = Mat::row_major(cols, rows, k);
                sgemm(
                    1.0,
                    a,
                    w_g(g),
                    1.0,
                    block_mut(&mut y, r0, rows, g, cout_g, cout),
                )?;
            }
        }
    }
    if act != Activation::None {
        y.iter_mut().for_each(|v| *v = act.apply(*v));
    }
    Ok(y)
}

/// dL/dx of the convolution given dL/dy (`dy`, the output's shape): `col2im(dy · w)` per group.
pub fn conv_f32_backward_input(geom: &ConvGeom, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    let op = "conv_f32_backward_input";
    let os = geom.output(op)?;
    geom.check(
        op,
        &[
            ("dy", dy.len(), os.len()),
            ("w", w.len(), geom.weight_len()),
        ],
    )?;
    let (m, cout, cout_g, cin_g, k) = (
        os.pixels(),
        geom.cout,
        geom.cout_g(),
        geom.cin_g(),
        geom.k_g(),
    );
    let mut dx = vec![0.0; geom.input.len()];
    let w_g = |g: usize| Mat::row_major(&w[g * cout_g * k..], cout_g, k);
    if geom.pointwise() {
        for g in 0..geom.groups {
            let a = block(dy, 0, m, g, cout_g, cout);
            let c = block_mut(&mut dx, 0, m, g, cin_g, geom.input.c);
            sgemm(1.0, a, w_g(g), 0.0, c)?;
        }
        return Ok(dx);
    }
    let patches: Vec<Patches> = (0..geom.groups)
        .map(|g| geom.patches(op, g))
        .collect::<Result<_>>()?;
    let chunk = patches[0].chunk_rows();
    let mut dcol = vec![0.0; chunk.min(m) * k];
    for r0 in (0..m).step_by(chunk) {
        let rows = chunk.min(m - r0);
        let dcol = &mut dcol[..rows * k];
        for (g, p) in patches.iter().enumerate() {
            let a = block(dy, r0, rows, g, cout_g, cout);
            sgemm(1.0, a, w_g(g), 0.0, MatMut::row_major(dcol, rows, k))?;
            p.col2im_add(dcol, r0..r0 + rows, &mut dx)?;
        }
    }
    Ok(dx)
}

/// dL/dw (OHWI, like `w`) and dL/dbias of the convolution given its input `x` and dL/dy.
pub fn conv_f32_backward_weight(
    geom: &ConvGeom,
    x: &[f32],
    dy: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let op = "conv_f32_backward_weight";
    let os = geom.output(op)?;
    geom.check(
        op,
        &[("x", x.len(), geom.input.len()), ("dy", dy.len(), os.len())],
    )?;
    let (m, cout, cout_g, cin_g, k) = (
        os.pixels(),
        geom.cout,
        geom.cout_g(),
        geom.cin_g(),
        geom.k_g(),
    );
    let mut dw = vec![0.0; geom.weight_len()];
    fn dw_g(dw: &mut [f32], g: usize, cout_g: usize, k: usize) -> MatMut<'_> {
        let start = (g * cout_g * k).min(dw.len());
        let end = (start + cout_g * k).min(dw.len());
        MatMut::row_major(&mut dw[start..end], cout_g, k)
    }
    if geom.pointwise() {
        for g in 0..geom.groups {
            let a = block(dy, 0, m, g, cout_g, cout).t();
            let b = block(x, 0, m, g, cin_g, geom.input.c);
            sgemm(1.0, a, b, 0.0, dw_g(&mut dw, g, cout_g, k))?;
        }
    } else {
        let patches: Vec<Patches> = (0..geom.groups)
            .map(|g| geom.patches(op, g))
            .collect::<Result<_>>()?;
        // Longer chunks than the forward's: each chunk re-reads and re-writes all of dw.
        let chunk = patches[0].chunk_rows() * 2;
        let mut cols = vec![0.0; chunk.min(m) * k];
        for r0 in (0..m).step_by(chunk) {
            let rows = chunk.min(m - r0);
            let cols = &mut cols[..rows * k];
            for (g, p) in patches.iter().enumerate() {
                p.im2col(x, r0..r0 + rows, cols)?;
                let a = block(dy, r0, rows, g, cout_g, cout).t();
                let beta = if r0 == 0 { 0.0 } else { 1.0 };
                sgemm(
                    1.0,
                    a,
                    Mat::row_major(cols, rows, k),
                    beta,
                    dw_g(&mut dw, g, cout_g, k),
                )?;
            }
        }
    }
    Ok((dw, bias_grad(dy, cout)))
}

/// Σ over rows of a `[rows][c]` gradient, accumulated in f64.
pub fn bias_grad(dy: &[f32], c: usize) -> Vec<f32> {
    let mut acc = vec![0.0f64; c];
    for row in dy.chunks_exact(c.max(1)) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += *v as f64);
    }
    acc.iter().map(|&a| a as f32).collect()
}
