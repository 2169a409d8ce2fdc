//! GPU backward kernels against the CPU reference (part (b) of `train_conv.rs`; bad input in
//! `gpu_bad_input.rs`): outputs poisoned with NaN, every padding lane and padded weight row checked
//! to be exactly 0, values within f32_reduction_atol(K) and F32_RTOL, K the reduction length
//! (kh·kw·cout for dx, the pixel count for dw and db).

use super::{values, win};
use crate::common::*;
use f8net::gpu::{Encoder, Gpu, GpuBuffer};
use f8net::ops::conv_f32::{self, ConvF32BackwardInput, ConvF32BackwardWeight};
use f8net::ops::depthwise_f32::F32DepthwiseWeights;
use f8net::ops::depthwise_f32::{self, DepthwiseF32BackwardInput, DepthwiseF32BackwardWeight};
use f8net::ops::gemm_f32::{self, F32Weights, GemmF32BackwardInput, GemmF32BackwardWeight};
use f8net::reference::conv_f32::{self as conv_ref, ConvGeom};
use f8net::reference::depthwise_f32 as dw_ref;
use f8net::reference::gemm_f32 as gemm_ref;
use f8net::reference::Window;
use f8net::tensor::{pad_channels, GpuF32Tensor, Shape};

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
