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

//! The GPU tests (b) live in `train_conv/gpu.rs`, their bad-input tests in
//! `train_conv/gpu_bad_input.rs`.

mod gpu;
mod gpu_bad_input;

use crate::common::*;
use f8net::reference::conv_f32::{self as conv_ref, ConvGeom};
use f8net::reference::depthwise_f32 as dw_ref;
use f8net::reference::gemm_f32::{self as gemm_ref, Activation};
use f8net::reference::Window;
use f8net::tensor::Shape;

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
