//! Backward passes of the float conv, linear and depthwise ops (issue 4).
//!
//! (a) Every CPU backward (`reference::{conv_f32, gemm_f32, depthwise_f32}`) against central
//!     finite differences of its forward: L = Σ r·y for a random r, numeric dL/dθ at ≥ 20 sampled
//!     coordinates of x and of w (all of them when fewer) and at every bias, within FD_*.
//!     Covers dense, grouped (2 groups), depthwise, linear, stride 1/2, TF SAME (asymmetric)
//!     padding, 1×1 spatial inputs, pointwise convs and channel counts not multiple of 4.
//! (b) Every GPU backward against the CPU one within f32_reduction_atol(K) and F32_RTOL, outputs
//!     poisoned with NaN, padding lanes (and padded weight rows) checked to be exactly 0.
//! (c) Bad shapes give an Err naming the op, and record nothing.
//!
//! GPU layouts: activations NHWC with channels padded to 4; dense dw/db like `F32Weights`
//! ([4·ceil(n/4)][kh][kw][4·ceil(cin/4)], [4·ceil(n/4)]); depthwise dw/db like
//! `F32DepthwiseWeights` ([kh][kw][4·ceil(c/4)], [4·ceil(c/4)]).

use crate::common::*;
use f8net::gpu::{Encoder, Gpu, GpuBuffer};
use f8net::ops::conv_f32::{self, ConvF32BackwardInput, ConvF32BackwardWeight};
use f8net::ops::depthwise_f32::F32DepthwiseWeights;
use f8net::ops::depthwise_f32::{self, DepthwiseF32BackwardInput, DepthwiseF32BackwardWeight};
use f8net::ops::gemm_f32::{self, F32Weights, GemmF32BackwardInput, GemmF32BackwardWeight};
use f8net::reference::conv_f32::{self as conv_ref, ConvGeom};
use f8net::reference::depthwise_f32 as dw_ref;
use f8net::reference::gemm_f32::{self as gemm_ref, Activation};
use f8net::reference::Window;
use f8net::tensor::{pad_channels, GpuF32Tensor, Shape};

fn values(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.f32()).collect()
}

/// Σ r·y in f64.
fn dot(r: &[f32], y: &[f32]) -> f64 {
    r.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Compare `analytic` = dL/dθ with central differences of L(θ) = Σ r·f(θ) at ≥ 20 sampled
/// coordinates of θ (all when fewer).
fn fd_check(
    rng: &mut Rng,
    ctx: &str,
    theta: &[f32],
    analytic: &[f32],
    r: &[f32],
    f: impl Fn(&[f32]) -> Vec<f32>,
) {
    assert_eq!(theta.len(), analytic.len(), "{ctx}");
    let coords: Vec<usize> = if theta.len() <= 24 {
        (0..theta.len()).collect()
    } else {
        (0..24).map(|_| rng.usize(0, theta.len() - 1)).collect()
    };
    for i in coords {
        let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
        plus[i] += FD_EPS;
        minus[i] -= FD_EPS;
        let h = plus[i] as f64 - minus[i] as f64;
        let numeric = ((dot(r, &f(&plus)) - dot(r, &f(&minus))) / h) as f32;
        let g = analytic[i];
        assert!(
            (g - numeric).abs() <= FD_ATOL + FD_RTOL * numeric.abs(),
            "{ctx}: coordinate {i}: analytic {g}, numeric {numeric}"
        );
    }
}

fn win(kh: usize, kw: usize, stride: (usize, usize), pads: [usize; 4]) -> Window {
    Window {
        kh,
        kw,
        stride_h: stride.0,
        stride_w: stride.1,
        pad_top: pads[0],
        pad_left: pads[1],
        pad_bottom: pads[2],
        pad_right: pads[3],
    }
}

// ---------------------------------------------------------------------------------------------
// (a) finite differences of the CPU reference

fn fd_conv(rng: &mut Rng, label: &str, geom: ConvGeom) {
    let ctx = format!("{label}: {geom:?}");
    let os = geom.output("test").unwrap();
    let x = values(rng, geom.input.len());
    let w = values(rng, geom.weight_len());
    let b = values(rng, geom.cout);
    let r = values(rng, os.len());
    let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
        conv_ref::conv_f32_forward(&geom, x, w, b, Activation::None).unwrap()
    };
    let dx = conv_ref::conv_f32_backward_input(&geom, &r, &w).unwrap();
    let (dw, db) = conv_ref::conv_f32_backward_weight(&geom, &x, &r).unwrap();
    fd_check(rng, &format!("{ctx} dx"), &x, &dx, &r, |t| fwd(t, &w, &b));
    fd_check(rng, &format!("{ctx} dw"), &w, &dw, &r, |t| fwd(&x, t, &b));
    fd_check(rng, &format!("{ctx} db"), &b, &db, &r, |t| fwd(&x, &w, t));
}

#[test]
fn conv_backward_matches_finite_differences() {
    let mut rng = Rng::new(0xfd_c0);
    let g = |n, h, w, c, cout, window, groups| ConvGeom {
        input: Shape::new(n, h, w, c),
        cout,
        window,
        groups,
    };
    let cases = [
        (
            "3x3 pad 1, cin 5 cout 3",
            g(2, 5, 6, 5, 3, Window::symmetric(3, 1, 1), 1),
        ),
        (
            "3x3 stride 2 SAME (asymmetric)",
            g(1, 7, 8, 3, 6, Window::same(3, 2, 7, 8), 1),
        ),
        (
            "groups 2, 3x3 SAME",
            g(2, 5, 5, 6, 4, Window::same(3, 1, 5, 5), 2),
        ),
        (
            "groups 2, 3x5 stride (2, 1)",
            g(1, 7, 6, 4, 6, win(3, 5, (2, 1), [0, 2, 2, 1]), 2),
        ),
        (
            "1x1 spatial, 3x3 SAME",
            g(2, 1, 1, 7, 5, Window::same(3, 1, 1, 1), 1),
        ),
        ("pointwise", g(2, 3, 4, 6, 5, Window::symmetric(1, 1, 0), 1)),
        (
            "pointwise, groups 2",
            g(1, 3, 3, 6, 4, Window::symmetric(1, 1, 0), 2),
        ),
        (
            "1x1 stride 2",
            g(1, 5, 6, 3, 5, Window::symmetric(1, 2, 0), 1),
        ),
        (
            "5x5 stride 2 SAME, odd 9x7",
            g(1, 9, 7, 2, 3, Window::same(5, 2, 9, 7), 1),
        ),
    ];
    for (label, geom) in cases {
        fd_conv(&mut rng, label, geom);
    }
}

#[test]
fn depthwise_backward_matches_finite_differences() {
    let mut rng = Rng::new(0xfd_d3);
    let cases = [
        (
            "3x3 pad 1, c 5",
            Shape::new(2, 5, 6, 5),
            Window::symmetric(3, 1, 1),
        ),
        (
            "5x5 stride 2 SAME",
            Shape::new(1, 9, 8, 6),
            Window::same(5, 2, 9, 8),
        ),
        (
            "3x3 stride 2 SAME, c 3",
            Shape::new(2, 6, 7, 3),
            Window::same(3, 2, 6, 7),
        ),
        (
            "asymmetric 3x5 stride (1, 2)",
            Shape::new(1, 6, 9, 4),
            win(3, 5, (1, 2), [2, 1, 0, 2]),
        ),
        (
            "1x1 spatial",
            Shape::new(2, 1, 1, 7),
            Window::same(3, 1, 1, 1),
        ),
    ];
    for (label, shape, window) in cases {
        let ctx = format!("{label}: {shape} {window:?}");
        let (c, taps) = (shape.c, window.kh * window.kw);
        let x = values(&mut rng, shape.len());
        let w = values(&mut rng, c * taps);
        let b = values(&mut rng, c);
        let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
            dw_ref::depthwise_f32(x, shape, w, b, &window, Activation::None)
                .unwrap()
                .1
        };
        let r = values(&mut rng, fwd(&x, &w, &b).len());
        let dx = dw_ref::depthwise_f32_backward_input(&r, shape, &w, &window).unwrap();
        let (dw, db) = dw_ref::depthwise_f32_backward_weight(&x, shape, &r, &window).unwrap();
        fd_check(&mut rng, &format!("{ctx} dx"), &x, &dx, &r, |t| {
            fwd(t, &w, &b)
        });
        fd_check(&mut rng, &format!("{ctx} dw"), &w, &dw, &r, |t| {
            fwd(&x, t, &b)
        });
        fd_check(&mut rng, &format!("{ctx} db"), &b, &db, &r, |t| {
            fwd(&x, &w, t)
        });
    }
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut rng = Rng::new(0xfd_9e);
    for (m, n, k) in [(7, 5, 9), (1, 3, 2), (4, 10, 33)] {
        let ctx = format!("linear m={m} n={n} k={k}");
        let x = values(&mut rng, m * k);
        let w = values(&mut rng, n * k);
        let b = values(&mut rng, n);
        let r = values(&mut rng, m * n);
        let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
            gemm_ref::gemm_f32(x, w, b, m, n, k, Activation::None).unwrap()
        };
        let dx = gemm_ref::gemm_f32_backward_input(&r, &w, m, n, k).unwrap();
        let (dw, db) = gemm_ref::gemm_f32_backward_weight(&x, &r, m, n, k).unwrap();
        fd_check(&mut rng, &format!("{ctx} dx"), &x, &dx, &r, |t| {
            fwd(t, &w, &b)
        });
        fd_check(&mut rng, &format!("{ctx} dw"), &w, &dw, &r, |t| {
            fwd(&x, t, &b)
        });
        fd_check(&mut rng, &format!("{ctx} db"), &b, &db, &r, |t| {
            fwd(&x, &w, t)
        });
    }
}

#[test]
fn grouped_conv_equals_per_group_dense_convs() {
    // The grouped forward and backward are the dense ones applied to channel slices.
    let mut rng = Rng::new(0x6_7009);
    let (s, cout, groups) = (Shape::new(2, 6, 5, 6), 4, 2);
    let window = Window::same(3, 2, 6, 5);
    let geom = ConvGeom {
        input: s,
        cout,
        window,
        groups,
    };
    let (x, w) = (
        values(&mut rng, s.len()),
        values(&mut rng, geom.weight_len()),
    );
    let os = geom.output("t").unwrap();
    let dy = values(&mut rng, os.len());
    let y = conv_ref::conv_f32_forward(&geom, &x, &w, &[0.0; 4], Activation::None).unwrap();
    let dx = conv_ref::conv_f32_backward_input(&geom, &dy, &w).unwrap();
    let (dw, _) = conv_ref::conv_f32_backward_weight(&geom, &x, &dy).unwrap();
    let (cg, og, k) = (3, 2, 27);
    for g in 0..groups {
        let slice = |v: &[f32], c: usize, off: usize, len: usize| -> Vec<f32> {
            v.chunks(c)
                .flat_map(|p| p[off..off + len].to_vec())
                .collect()
        };
        let xg = slice(&x, 6, g * cg, cg);
        let dyg = slice(&dy, 4, g * og, og);
        let wg = &w[g * og * k..(g + 1) * og * k];
        let dense = ConvGeom::dense(Shape::new(2, 6, 5, cg), og, window);
        let yg = conv_ref::conv_f32_forward(&dense, &xg, wg, &[0.0; 2], Activation::None).unwrap();
        let dxg = conv_ref::conv_f32_backward_input(&dense, &dyg, wg).unwrap();
        let (dwg, _) = conv_ref::conv_f32_backward_weight(&dense, &xg, &dyg).unwrap();
        let tol = f32_reduction_atol(k);
        assert_close(&slice(&y, 4, g * og, og), &yg, tol, F32_RTOL, "grouped y");
        assert_close(
            &slice(&dx, 6, g * cg, cg),
            &dxg,
            tol,
            F32_RTOL,
            "grouped dx",
        );
        let tol = f32_reduction_atol(os.pixels());
        assert_close(
            &dw[g * og * k..(g + 1) * og * k],
            &dwg,
            tol,
            F32_RTOL,
            "grouped dw",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) GPU against the CPU reference

/// Padded NHWC readback: padding lanes must be exactly 0; returns the logical values.
fn unpad_checked(raw: &[f32], c: usize, ctx: &str) -> Vec<f32> {
    unpad_rows(
        raw,
        c.div_ceil(4) * 4,
        c,
        raw.len() / (c.div_ceil(4) * 4).max(1),
        ctx,
    )
}

/// `[rows_padded][cp]` values whose logical part is `[rows][c]` (rows = len / cp unless fewer
/// are logical): everything else must be exactly 0.
fn unpad_rows(raw: &[f32], cp: usize, c: usize, rows: usize, ctx: &str) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * c);
    for (i, row) in raw.chunks(cp).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if i < rows && j < c {
                out.push(v);
            } else {
                assert!(v == 0.0, "padding [{i}][{j}] is {v}, not 0 ({ctx})");
            }
        }
    }
    out
}

/// Submit `enc` and read `buf`.
fn run(gpu: &Gpu, enc: Encoder, buf: &GpuBuffer<f32>) -> Vec<f32> {
    gpu.submit(enc).unwrap();
    gpu.read(buf).unwrap()
}

fn gpu_conv(gpu: &Gpu, rng: &mut Rng, label: &str, s: Shape, cout: usize, window: Window) {
    let geom = ConvGeom::dense(s, cout, window);
    let os = geom.output("t").unwrap();
    let ctx = format!("{label}: input {s} cout {cout} {window:?}");
    let (x, w, dy) = (
        values(rng, s.len()),
        values(rng, geom.weight_len()),
        values(rng, os.len()),
    );
    let want_dx = conv_ref::conv_f32_backward_input(&geom, &dy, &w).unwrap();
    let (want_dw, want_db) = conv_ref::conv_f32_backward_weight(&geom, &x, &dy).unwrap();
    let weights =
        F32Weights::upload(gpu, &w, &vec![0.0; cout], cout, window.kh, window.kw, s.c).unwrap();
    let xt = GpuF32Tensor::upload(gpu, s, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, os, &dy).unwrap();
    let dx = GpuF32Tensor::alloc_filled(gpu, s, POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = ConvF32BackwardInput {
        dy: &dyt,
        weights: &weights,
        window,
        dx: &dx,
    };
    conv_f32::record_backward_input(gpu, &mut enc, &a).unwrap();
    let got = unpad_checked(&run(gpu, enc, &dx.data), s.c, &ctx);
    let k = window.kh * window.kw * cout;
    assert_close(
        &got,
        &want_dx,
        f32_reduction_atol(k),
        F32_RTOL,
        &format!("{ctx} dx"),
    );

    let dw = gpu.alloc_filled(weights.w.len(), POISON_F32).unwrap();
    let db = gpu.alloc_filled(weights.bias.len(), POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = ConvF32BackwardWeight {
        input: &xt,
        dy: &dyt,
        window,
        dw: &dw,
        db: &db,
    };
    conv_f32::record_backward_weight(gpu, &mut enc, &a).unwrap();
    let (raw_w, raw_b) = (run(gpu, enc, &dw), gpu.read(&db).unwrap());
    let taps = window.kh * window.kw;
    let got_w = unpad_rows(&raw_w, s.c_padded(), s.c, cout * taps, &format!("{ctx} dw"));
    let got_b = unpad_rows(&raw_b, 1, 1, cout, &format!("{ctx} db"));
    let tol = f32_reduction_atol(os.pixels());
    assert_close(&got_w, &want_dw, tol, F32_RTOL, &format!("{ctx} dw"));
    assert_close(&got_b, &want_db, tol, F32_RTOL, &format!("{ctx} db"));
}

#[test]
fn conv_backward_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xb_c0de);
    let edges = [
        (
            "3x3 SAME, cin 5 cout 7",
            Shape::new(2, 6, 7, 5),
            7,
            Window::same(3, 1, 6, 7),
        ),
        (
            "3x3 stride 2 SAME odd",
            Shape::new(1, 9, 11, 6),
            70,
            Window::same(3, 2, 9, 11),
        ),
        (
            "asymmetric 3x5 stride (2, 1)",
            Shape::new(2, 8, 9, 4),
            5,
            win(3, 5, (2, 1), [0, 2, 2, 1]),
        ),
        (
            "1x1 spatial",
            Shape::new(3, 1, 1, 9),
            6,
            Window::same(3, 1, 1, 1),
        ),
        (
            "pointwise via gemm",
            Shape::new(2, 5, 6, 13),
            30,
            Window::symmetric(1, 1, 0),
        ),
        (
            "1x1 stride 2: phases without taps",
            Shape::new(2, 7, 9, 10),
            9,
            Window::symmetric(1, 2, 0),
        ),
        (
            "7x7 stride 2 pad 3, 3 channels",
            Shape::new(1, 20, 18, 3),
            16,
            Window::symmetric(7, 2, 3),
        ),
        (
            "split weight gradient, M = 2048",
            Shape::new(8, 16, 16, 8),
            12,
            Window::same(3, 1, 16, 16),
        ),
        (
            "stride 3 > kernel 2",
            Shape::new(1, 10, 8, 4),
            4,
            Window::symmetric(2, 3, 0),
        ),
    ];
    for (label, s, cout, window) in edges {
        gpu_conv(gpu, &mut rng, label, s, cout, window);
    }
    for case in 0..4 {
        let k = [1, 3, 5][rng.usize(0, 2)];
        let stride = rng.usize(1, 2);
        let (h, w) = (rng.usize(1, 12), rng.usize(1, 12));
        let window = Window::same(k, stride, h, w);
        let s = Shape::new(rng.usize(1, 3), h, w, rng.usize(1, 20));
        let cout = rng.usize(1, 40);
        gpu_conv(
            gpu,
            &mut rng,
            &format!("random case {case}"),
            s,
            cout,
            window,
        );
    }
}

fn gpu_linear(gpu: &Gpu, rng: &mut Rng, m: usize, n: usize, k: usize) {
    let ctx = format!("linear m={m} n={n} k={k}");
    let (x, w, dy) = (values(rng, m * k), values(rng, n * k), values(rng, m * n));
    let want_dx = gemm_ref::gemm_f32_backward_input(&dy, &w, m, n, k).unwrap();
    let (want_dw, want_db) = gemm_ref::gemm_f32_backward_weight(&x, &dy, m, n, k).unwrap();
    let weights = F32Weights::upload(gpu, &w, &vec![0.0; n], n, 1, 1, k).unwrap();
    let xb = gpu.upload(&pad_channels(&x, k)).unwrap();
    let dyb = gpu.upload(&pad_channels(&dy, n)).unwrap();
    let dx = gpu.alloc_filled(m * k.div_ceil(4) * 4, POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = GemmF32BackwardInput {
        dy: &dyb,
        m,
        weights: &weights,
        dx: &dx,
    };
    gemm_f32::record_backward_input(gpu, &mut enc, &a).unwrap();
    let got = unpad_checked(&run(gpu, enc, &dx), k, &ctx);
    assert_close(
        &got,
        &want_dx,
        f32_reduction_atol(n),
        F32_RTOL,
        &format!("{ctx} dx"),
    );

    let dw = gpu.alloc_filled(weights.w.len(), POISON_F32).unwrap();
    let db = gpu.alloc_filled(weights.bias.len(), POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = GemmF32BackwardWeight {
        x: &xb,
        dy: &dyb,
        m,
        n,
        k,
        dw: &dw,
        db: &db,
    };
    gemm_f32::record_backward_weight(gpu, &mut enc, &a).unwrap();
    let (raw_w, raw_b) = (run(gpu, enc, &dw), gpu.read(&db).unwrap());
    let got_w = unpad_rows(&raw_w, k.div_ceil(4) * 4, k, n, &format!("{ctx} dw"));
    let got_b = unpad_rows(&raw_b, 1, 1, n, &format!("{ctx} db"));
    let tol = f32_reduction_atol(m);
    assert_close(&got_w, &want_dw, tol, F32_RTOL, &format!("{ctx} dw"));
    assert_close(&got_b, &want_db, tol, F32_RTOL, &format!("{ctx} db"));
}

#[test]
fn linear_backward_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xb_9e33);
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 7),
        (65, 63, 33),
        (130, 72, 200),
        (3000, 10, 20),
    ] {
        gpu_linear(gpu, &mut rng, m, n, k);
    }
    for _ in 0..5 {
        let (m, n, k) = (rng.usize(1, 300), rng.usize(1, 90), rng.usize(1, 160));
        gpu_linear(gpu, &mut rng, m, n, k);
    }
}

fn gpu_depthwise(gpu: &Gpu, rng: &mut Rng, label: &str, s: Shape, window: Window) {
    let ctx = format!("{label}: input {s} {window:?}");
    let (c, taps) = (s.c, window.kh * window.kw);
    let (oh, ow) = window.out_hw("t", s.h, s.w).unwrap();
    let os = Shape::new(s.n, oh, ow, c);
    let (x, w, dy) = (
        values(rng, s.len()),
        values(rng, c * taps),
        values(rng, os.len()),
    );
    let want_dx = dw_ref::depthwise_f32_backward_input(&dy, s, &w, &window).unwrap();
    let (want_dw, want_db) = dw_ref::depthwise_f32_backward_weight(&x, s, &dy, &window).unwrap();
    let weights =
        F32DepthwiseWeights::upload(gpu, &w, &vec![0.0; c], c, window.kh, window.kw).unwrap();
    let xt = GpuF32Tensor::upload(gpu, s, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, os, &dy).unwrap();
    let dx = GpuF32Tensor::alloc_filled(gpu, s, POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = DepthwiseF32BackwardInput {
        dy: &dyt,
        weights: &weights,
        window,
        dx: &dx,
    };
    depthwise_f32::record_backward_input(gpu, &mut enc, &a).unwrap();
    let got = unpad_checked(&run(gpu, enc, &dx.data), c, &ctx);
    assert_close(
        &got,
        &want_dx,
        f32_reduction_atol(taps),
        F32_RTOL,
        &format!("{ctx} dx"),
    );

    let dw = gpu.alloc_filled(weights.w.len(), POISON_F32).unwrap();
    let db = gpu.alloc_filled(weights.bias.len(), POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = DepthwiseF32BackwardWeight {
        input: &xt,
        dy: &dyt,
        window,
        dw: &dw,
        db: &db,
    };
    depthwise_f32::record_backward_weight(gpu, &mut enc, &a).unwrap();
    let (raw_w, raw_b) = (run(gpu, enc, &dw), gpu.read(&db).unwrap());
    // [taps][cp] → [c][taps].
    let tap_major = unpad_checked(&raw_w, c, &format!("{ctx} dw"));
    let got_w: Vec<f32> = (0..c * taps)
        .map(|i| tap_major[(i % taps) * c + i / taps])
        .collect();
    let got_b = unpad_checked(&raw_b, c, &format!("{ctx} db"));
    let tol = f32_reduction_atol(os.pixels());
    assert_close(&got_w, &want_dw, tol, F32_RTOL, &format!("{ctx} dw"));
    assert_close(&got_b, &want_db, tol, F32_RTOL, &format!("{ctx} db"));
}

#[test]
fn depthwise_backward_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xb_00d3);
    let edges = [
        (
            "3x3 SAME, c 5",
            Shape::new(2, 7, 6, 5),
            Window::same(3, 1, 7, 6),
        ),
        (
            "5x5 stride 2 SAME, c 70",
            Shape::new(1, 15, 13, 70),
            Window::same(5, 2, 15, 13),
        ),
        (
            "asymmetric 3x5 stride (1, 2)",
            Shape::new(2, 9, 11, 5),
            win(3, 5, (1, 2), [2, 1, 0, 2]),
        ),
        (
            "1x1 spatial",
            Shape::new(3, 1, 1, 8),
            Window::same(3, 1, 1, 1),
        ),
        (
            "split weight gradient, M = 4096",
            Shape::new(4, 32, 32, 6),
            Window::same(3, 1, 32, 32),
        ),
        (
            "kernel larger than the image",
            Shape::new(1, 2, 3, 3),
            Window::symmetric(5, 1, 2),
        ),
    ];
    for (label, s, window) in edges {
        gpu_depthwise(gpu, &mut rng, label, s, window);
    }
    for case in 0..4 {
        let k = [3, 5][rng.usize(0, 1)];
        let stride = rng.usize(1, 2);
        let (h, w) = (rng.usize(1, 20), rng.usize(1, 20));
        let window = Window::same(k, stride, h, w);
        let s = Shape::new(rng.usize(1, 3), h, w, rng.usize(1, 40));
        gpu_depthwise(gpu, &mut rng, &format!("random case {case}"), s, window);
    }
}

// ---------------------------------------------------------------------------------------------
// (c) bad input

#[test]
fn cpu_backward_rejects_bad_shapes() {
    let s = Shape::new(1, 4, 4, 6);
    let geom = ConvGeom {
        input: s,
        cout: 4,
        window: Window::symmetric(3, 1, 1),
        groups: 4, // 6 input channels do not split into 4 groups
    };
    let err = conv_ref::conv_f32_backward_input(&geom, &[0.0; 64], &[0.0; 36])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("groups"),
        "{err}"
    );
    let geom = ConvGeom { groups: 2, ..geom };
    let err = conv_ref::conv_f32_backward_weight(&geom, &[0.0; 96], &[0.0; 63])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("dy"),
        "{err}"
    );
    let err = conv_ref::conv_f32_forward(&geom, &[0.0; 96], &[0.0; 5], &[0.0; 4], Activation::None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv_f32") && err.contains("w has 5"), "{err}");
    let tiny = ConvGeom::dense(Shape::new(1, 1, 1, 2), 2, Window::symmetric(3, 1, 0));
    assert!(conv_ref::conv_f32_backward_input(&tiny, &[], &[0.0; 36]).is_err());
    let err = gemm_ref::gemm_f32_backward_input(&[0.0; 6], &[0.0; 6], 2, 3, 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gemm_f32_backward_input") && err.contains("w has 6"),
        "{err}"
    );
    assert!(gemm_ref::gemm_f32_backward_weight(&[0.0; 6], &[0.0; 5], 2, 3, 3).is_err());
    let win3 = Window::symmetric(3, 2, 1);
    let err = dw_ref::depthwise_f32_backward_input(&[0.0; 24], s, &[0.0; 53], &win3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_input") && err.contains("w has 53"),
        "{err}"
    );
    let err = dw_ref::depthwise_f32_backward_weight(&[0.0; 96], s, &[0.0; 23], &win3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_weight") && err.contains("dy"),
        "{err}"
    );
}

#[test]
fn gpu_backward_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut enc = gpu.encoder();
    let s = Shape::new(1, 6, 6, 5);
    let window = Window::symmetric(3, 2, 1); // 6x6 -> 3x3
    let w = F32Weights::upload(gpu, &vec![0.5; 8 * 9 * 5], &[0.0; 8], 8, 3, 3, 5).unwrap();
    let x = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let dy = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 3, 3, 8), 0.0).unwrap();
    let bad_dy = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 6, 6, 8), 0.0).unwrap();
    let other_c = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 6, 6, 4), 0.0).unwrap();

    let bi = |enc: &mut Encoder, dy, window, dx| {
        let a = ConvF32BackwardInput {
            dy,
            weights: &w,
            window,
            dx,
        };
        conv_f32::record_backward_input(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = bi(&mut enc, &bad_dy, window, &x);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("[1, 3, 3, 8]"),
        "{err}"
    );
    let err = bi(&mut enc, &dy, window, &other_c);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("channels"),
        "{err}"
    );
    let err = bi(&mut enc, &dy, Window::symmetric(5, 2, 2), &x);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("5x5"),
        "{err}"
    );
    let lying = GpuF32Tensor {
        shape: s,
        data: gpu.alloc(10).unwrap(),
    };
    let err = bi(&mut enc, &dy, window, &lying);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("dx buffer"),
        "{err}"
    );

    let (dw, db) = (
        gpu.alloc::<f32>(w.w.len()).unwrap(),
        gpu.alloc::<f32>(8).unwrap(),
    );
    let short = gpu.alloc::<f32>(w.w.len() - 4).unwrap();
    let bw = |enc: &mut Encoder, dy, dw, db| {
        let a = ConvF32BackwardWeight {
            input: &x,
            dy,
            window,
            dw,
            db,
        };
        conv_f32::record_backward_weight(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = bw(&mut enc, &bad_dy, &dw, &db);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("dy is"),
        "{err}"
    );
    let err = bw(&mut enc, &dy, &short, &db);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    let err = bw(&mut enc, &dy, &dw, &short);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("db has"),
        "{err}"
    );

    // Linear: 1x1 weights only, buffer lengths checked.
    let lin = F32Weights::upload(gpu, &[0.5; 8 * 12], &[0.0; 8], 8, 1, 1, 12).unwrap();
    let buf = |len| gpu.alloc::<f32>(len).unwrap();
    let (dy5, dx5) = (buf(5 * 8), buf(5 * 12));
    let gi = |enc: &mut Encoder, dy, weights, dx| {
        let a = GemmF32BackwardInput {
            dy,
            m: 5,
            weights,
            dx,
        };
        gemm_f32::record_backward_input(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = gi(&mut enc, &dy5, &w, &dx5);
    assert!(
        err.contains("gemm_f32_backward_input") && err.contains("3x3"),
        "{err}"
    );
    let err = gi(&mut enc, &dx5, &lin, &dx5);
    assert!(
        err.contains("gemm_f32_backward_input") && err.contains("dy has"),
        "{err}"
    );
    let a = GemmF32BackwardWeight {
        x: &dx5,
        dy: &dy5,
        m: 5,
        n: 8,
        k: 12,
        dw: &buf(8 * 11),
        db: &buf(8),
    };
    let err = gemm_f32::record_backward_weight(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gemm_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    let a = GemmF32BackwardWeight { n: 0, ..a };
    assert!(gemm_f32::record_backward_weight(gpu, &mut enc, &a).is_err());

    // Depthwise: weights must match the window and channels.
    let dww = F32DepthwiseWeights::upload(gpu, &[0.5; 5 * 9], &[0.0; 5], 5, 3, 3).unwrap();
    let dy5c = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 3, 3, 5), 0.0).unwrap();
    let a = DepthwiseF32BackwardInput {
        dy: &dy5c,
        weights: &dww,
        window: Window::symmetric(5, 2, 2),
        dx: &x,
    };
    let err = depthwise_f32::record_backward_input(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_input") && err.contains("5x5"),
        "{err}"
    );
    let a = DepthwiseF32BackwardInput {
        dy: &dy,
        window,
        ..a
    };
    let err = depthwise_f32::record_backward_input(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_input") && err.contains("dy is"),
        "{err}"
    );
    let a = DepthwiseF32BackwardWeight {
        input: &x,
        dy: &dy5c,
        window,
        dw: &buf(9 * 7),
        db: &buf(8),
    };
    let err = depthwise_f32::record_backward_weight(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
}
