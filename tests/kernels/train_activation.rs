//! Float activations (`shaders/activation.wgsl`): ReLU / ReLU6 / PACT backward (and PACT's dα)
//! against central finite differences of the CPU forward; GPU forward, backward, dα and `add_f32`
//! against the CPU reference within `F32_ATOL`/`F32_RTOL` (dα: `f32_reduction_atol(len)`),
//! outputs NaN-poisoned, padding lanes 0; bad inputs give `Err` and record nothing.
//! Also holds the helpers the other `train_*` kernel tests share (`unpad_checked`, `fd_check`).

use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::activation::{
    self as act_ops, ActivationBackward, ActivationForward, AddF32, GpuActivation,
};
use f8net::reference::activation::{activation_backward, activation_forward, add_f32, Activation};
use f8net::tensor::{unpad_channels, GpuF32Tensor, Shape};

/// Check the padding lanes of a padded NHWC readback are exactly 0, then drop them.
pub(crate) fn unpad_checked(raw: &[f32], c: usize, ctx: &str) -> Vec<f32> {
    let cp = c.div_ceil(4) * 4;
    for (p, px) in raw.chunks(cp).enumerate() {
        for (lane, &v) in px.iter().enumerate().skip(c) {
            assert!(
                v == 0.0,
                "padding lane {lane} of pixel {p} is {v}, not 0 ({ctx})"
            );
        }
    }
    unpad_channels(raw, c)
}

/// Read a GPU tensor back, checking its padding lanes.
pub(crate) fn read_tensor(gpu: &Gpu, t: &GpuF32Tensor, ctx: &str) -> Vec<f32> {
    unpad_checked(&gpu.read(&t.data).unwrap(), t.shape.c, ctx)
}

/// Σ w·y in f64: the scalar loss whose gradient with respect to y is w.
pub(crate) fn dot(w: &[f32], y: &[f32]) -> f64 {
    w.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central finite differences of `loss` at `point` (each coordinate moved by ±FD_EPS, then
/// restored) against the analytic gradient `grad`.
pub(crate) fn fd_check(point: &mut [f32], grad: &[f32], loss: impl Fn(&[f32]) -> f64, ctx: &str) {
    assert_eq!(point.len(), grad.len(), "{ctx}");
    for i in 0..point.len() {
        let v = point[i];
        let (hi, lo) = (v + FD_EPS, v - FD_EPS);
        point[i] = hi;
        let l_hi = loss(point);
        point[i] = lo;
        let l_lo = loss(point);
        point[i] = v;
        let numeric = ((l_hi - l_lo) / (hi as f64 - lo as f64)) as f32;
        let tol = FD_ATOL + FD_RTOL * numeric.abs();
        assert!(
            (grad[i] - numeric).abs() <= tol,
            "[{i}] analytic {} vs numeric {numeric} (tol {tol}) at {v}: {ctx}",
            grad[i]
        );
    }
}

/// Values in [lo, hi) at least `margin` away from every kink.
fn away_from(rng: &mut Rng, len: usize, lo: f32, hi: f32, kinks: &[f32], margin: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let v = lo + (rng.f32() + 1.0) * 0.5 * (hi - lo);
        if kinks.iter().all(|k| (v - k).abs() > margin) {
            out.push(v);
        }
    }
    out
}

#[test]
fn activation_backward_matches_finite_differences() {
    let mut rng = Rng::new(0x0ac7_00fd);
    for act in [
        Activation::Relu,
        Activation::Relu6,
        Activation::Pact { alpha: 1.7 },
        Activation::Pact { alpha: -2.3 },
    ] {
        let kinks = [0.0, 6.0, act.hi()];
        let mut x = away_from(&mut rng, 64, -3.0, 8.0, &kinks, 3.0 * FD_EPS);
        let w: Vec<f32> = (0..x.len()).map(|_| rng.f32()).collect();
        let (dx, dalpha) = activation_backward(&w, &x, act).unwrap();
        let ctx = format!("{act:?} dx");
        fd_check(
            &mut x,
            &dx,
            |x| dot(&w, &activation_forward(x, act).unwrap()),
            &ctx,
        );
        if let Activation::Pact { alpha } = act {
            let mut a = [alpha];
            let loss = |a: &[f32]| {
                dot(
                    &w,
                    &activation_forward(&x, Activation::Pact { alpha: a[0] }).unwrap(),
                )
            };
            fd_check(&mut a, &[dalpha], loss, &format!("{act:?} dα"));
            assert!(dalpha != 0.0, "{act:?}: some inputs are clipped high");
        }
    }
}

#[test]
fn add_backward_is_identity() {
    // d(Σ w·(a + b))/da = d/db = w: the residual add passes the gradient unchanged to both.
    let mut rng = Rng::new(0xadd);
    let mut a: Vec<f32> = (0..20).map(|_| rng.f32()).collect();
    let b: Vec<f32> = (0..20).map(|_| rng.f32()).collect();
    let w: Vec<f32> = (0..20).map(|_| rng.f32()).collect();
    fd_check(
        &mut a,
        &w,
        |a| dot(&w, &add_f32(a, &b).unwrap()),
        "add_f32 da",
    );
}

/// Inputs spanning both clips, with about 1 in 8 exactly at 0, 6 or the PACT level (the masks are
/// strict there: the GPU must agree exactly on the boundaries).
fn inputs(rng: &mut Rng, len: usize, alpha: f32) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.next_u64() % 24 {
            0 => 0.0,
            1 => 6.0,
            2 => alpha.abs(),
            _ => 5.0 * rng.f32() + 2.0,
        })
        .collect()
}

fn check_activation(gpu: &Gpu, rng: &mut Rng, shape: Shape, act: Activation) {
    let ctx = format!("{act:?} on {shape}");
    let alpha = match act {
        Activation::Pact { alpha } => alpha,
        _ => 1.0,
    };
    let x = inputs(rng, shape.len(), alpha);
    let dy: Vec<f32> = (0..shape.len()).map(|_| rng.f32()).collect();
    let want_y = activation_forward(&x, act).unwrap();
    let (want_dx, want_dalpha) = activation_backward(&dy, &x, act).unwrap();

    let xt = GpuF32Tensor::upload(gpu, shape, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, shape, &dy).unwrap();
    let y = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
    let dx = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
    let alpha_buf = gpu.upload(&[alpha]).unwrap();
    // dα accumulates onto a previous consumer's 0.25.
    let dalpha = gpu.upload(&[0.25f32]).unwrap();
    let gact = match act {
        Activation::Relu => GpuActivation::Relu,
        Activation::Relu6 => GpuActivation::Relu6,
        Activation::Pact { .. } => GpuActivation::Pact { alpha: &alpha_buf },
    };
    let mut enc = gpu.encoder();
    let fwd = ActivationForward {
        x: &xt,
        activation: gact,
        out: &y,
    };
    act_ops::record_forward(gpu, &mut enc, &fwd).unwrap();
    let bwd = ActivationBackward {
        dy: &dyt,
        x: &xt,
        activation: gact,
        dx: &dx,
        dalpha: Some(&dalpha),
        accumulate: true,
    };
    act_ops::record_backward(gpu, &mut enc, &bwd).unwrap();
    gpu.submit(enc).unwrap();
    assert_close(
        &read_tensor(gpu, &y, &ctx),
        &want_y,
        F32_ATOL,
        F32_RTOL,
        &format!("y: {ctx}"),
    );
    assert_close(
        &read_tensor(gpu, &dx, &ctx),
        &want_dx,
        F32_ATOL,
        F32_RTOL,
        &format!("dx: {ctx}"),
    );
    let got = gpu.read(&dalpha).unwrap()[0];
    let want = match act {
        Activation::Pact { .. } => 0.25 + want_dalpha,
        _ => 0.25, // untouched
    };
    let atol = f32_reduction_atol(shape.len());
    assert_close(&[got], &[want], atol, F32_RTOL, &format!("dα: {ctx}"));
}

const SHAPES: [(usize, usize, usize, usize); 10] = [
    (1, 1, 1, 1),
    (2, 1, 1, 5),
    (2, 3, 5, 7),
    (3, 7, 9, 4),
    (4, 5, 3, 13),
    (2, 17, 17, 3),
    (5, 2, 2, 9),
    (2, 33, 35, 6),
    (1, 64, 64, 8),
    (3, 41, 29, 10),
];

#[test]
fn activation_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x0ac7_069a);
    for (i, &(n, h, w, c)) in SHAPES.iter().enumerate() {
        let shape = Shape::new(n, h, w, c);
        let alpha = [1.5, 2.75, -1.25, 4.0][i % 4];
        for act in [
            Activation::Relu,
            Activation::Relu6,
            Activation::Pact { alpha },
        ] {
            check_activation(gpu, &mut rng, shape, act);
        }
    }
}

#[test]
fn pact_dalpha_overwrites_without_accumulate() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(2, 3, 3, 5);
    let x: Vec<f32> = (0..shape.len()).map(|i| (i % 7) as f32).collect();
    let dy: Vec<f32> = (0..shape.len()).map(|i| 0.5 + (i % 3) as f32).collect();
    let (_, want) = activation_backward(&dy, &x, Activation::Pact { alpha: 3.0 }).unwrap();
    let (xt, dyt) = (
        GpuF32Tensor::upload(gpu, shape, &x).unwrap(),
        GpuF32Tensor::upload(gpu, shape, &dy).unwrap(),
    );
    let dx = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
    let (alpha, dalpha) = (
        gpu.upload(&[3.0f32]).unwrap(),
        gpu.upload(&[POISON_F32]).unwrap(),
    );
    let mut enc = gpu.encoder();
    let bwd = ActivationBackward {
        dy: &dyt,
        x: &xt,
        activation: GpuActivation::Pact { alpha: &alpha },
        dx: &dx,
        dalpha: Some(&dalpha),
        accumulate: false,
    };
    act_ops::record_backward(gpu, &mut enc, &bwd).unwrap();
    gpu.submit(enc).unwrap();
    // Small integers: every partial sum is exact.
    assert_eq!(gpu.read(&dalpha).unwrap(), vec![want]);
}

#[test]
fn add_f32_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x0add_0f32);
    for &(n, h, w, c) in &SHAPES {
        let shape = Shape::new(n, h, w, c);
        let ctx = format!("add_f32 on {shape}");
        let a: Vec<f32> = (0..shape.len()).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..shape.len()).map(|_| rng.f32()).collect();
        let (at, bt) = (
            GpuF32Tensor::upload(gpu, shape, &a).unwrap(),
            GpuF32Tensor::upload(gpu, shape, &b).unwrap(),
        );
        let out = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
        let mut enc = gpu.encoder();
        act_ops::record_add(
            gpu,
            &mut enc,
            &AddF32 {
                a: &at,
                b: &bt,
                out: &out,
            },
        )
        .unwrap();
        gpu.submit(enc).unwrap();
        // One rounding per element, the same on both sides: exact.
        assert_close(
            &read_tensor(gpu, &out, &ctx),
            &add_f32(&a, &b).unwrap(),
            0.0,
            0.0,
            &ctx,
        );
    }
}

#[test]
fn activation_rejects_bad_inputs() {
    assert!(activation_backward(&[1.0; 3], &[1.0; 4], Activation::Relu).is_err());
    assert!(activation_forward(&[1.0], Activation::Pact { alpha: f32::NAN }).is_err());
    assert!(add_f32(&[1.0; 2], &[1.0; 3]).is_err());
    let Some(gpu) = gpu_or_skip() else { return };
    let s = Shape::new(2, 3, 3, 5);
    let x = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let other = GpuF32Tensor::alloc_filled(gpu, Shape::new(2, 3, 3, 6), 0.0).unwrap();
    let out = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let alpha = gpu.upload(&[1.0f32]).unwrap();
    let two = gpu.upload(&[1.0f32, 2.0]).unwrap();
    let lying = GpuF32Tensor {
        shape: s,
        data: gpu.alloc(10).unwrap(),
    };
    let mut enc = gpu.encoder();
    let fwd = |enc: &mut f8net::gpu::Encoder, x, activation, out| {
        let f = ActivationForward { x, activation, out };
        act_ops::record_forward(gpu, enc, &f)
            .unwrap_err()
            .to_string()
    };
    let err = fwd(&mut enc, &x, GpuActivation::Relu, &other);
    assert!(
        err.contains("activation_forward") && err.contains("[2, 3, 3, 6]"),
        "{err}"
    );
    let err = fwd(&mut enc, &x, GpuActivation::Relu, &x);
    assert!(err.contains("same buffer"), "{err}");
    let err = fwd(&mut enc, &x, GpuActivation::Pact { alpha: &two }, &out);
    assert!(err.contains("α buffer has 2"), "{err}");
    let err = fwd(&mut enc, &lying, GpuActivation::Relu, &out);
    assert!(
        err.contains("activation_forward") && err.contains("buffer has 10"),
        "{err}"
    );
    let bwd = |enc: &mut f8net::gpu::Encoder, dx, dalpha| {
        let b = ActivationBackward {
            dy: &out,
            x: &x,
            activation: GpuActivation::Pact { alpha: &alpha },
            dx,
            dalpha,
            accumulate: false,
        };
        act_ops::record_backward(gpu, enc, &b)
            .unwrap_err()
            .to_string()
    };
    let dx = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let err = bwd(&mut enc, &dx, None);
    assert!(
        err.contains("activation_backward") && err.contains("dα"),
        "{err}"
    );
    let err = bwd(&mut enc, &dx, Some(&two));
    assert!(err.contains("dα buffer has 2"), "{err}");
    let err = bwd(&mut enc, &x, Some(&alpha));
    assert!(err.contains("same buffer"), "{err}");
    let err = bwd(&mut enc, &other, Some(&two));
    assert!(err.contains("[2, 3, 3, 6]"), "{err}");
    let add = AddF32 {
        a: &x,
        b: &other,
        out: &out,
    };
    let err = act_ops::record_add(gpu, &mut enc, &add)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("add_f32") && err.contains("[2, 3, 3, 6]"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
}
