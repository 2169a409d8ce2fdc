//! CPU references of the training ops against hand-computed values, finite differences and the
//! F8NET.md §12 vectors: softmax cross-entropy, SGD (Nesterov) with the weight-decay schemes and
//! the LR schedule, fix_quant and its STE masks (T4), fix_scaling (T8), fixed-point PACT (T9) and
//! its α gradient, tensor statistics (T2).

use crate::common::*;
use f8net::fixed::{Format, Signedness};
use f8net::reference::fake_quant::{
    fix_pact, fix_pact_alpha_grad, fix_quant, fix_quant_backward, fix_quant_floating, fix_scaling,
    pact, tensor_stats,
};
use f8net::reference::loss::softmax_cross_entropy;
use f8net::reference::optim::{sgd_step, LrSchedule, ParamKind, SgdHyper, WeightDecayScheme};

// ---------------------------------------------------------------- loss (CPU)

#[test]
fn train_loss_reference_hand_example_and_finite_differences() {
    let logits = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
    let out = softmax_cross_entropy(&logits, 2, 3, &[2, 1]).unwrap();
    let want = (0.4076059644443804 + 1.0986122886681098) / 2.0;
    assert_close(&[out.loss], &[want as f32], 0.0, 1e-6, "hand loss");
    let (e1, e2) = ((-2.0f64).exp(), (-1.0f64).exp());
    let z = 1.0 + e1 + e2;
    let want_g = [
        e1 / z,
        e2 / z,
        1.0 / z - 1.0,
        1.0 / 3.0,
        1.0 / 3.0 - 1.0,
        1.0 / 3.0,
    ]
    .map(|v| (v / 2.0) as f32);
    assert_close(&out.dlogits, &want_g, 1e-7, 1e-6, "hand dlogits");

    // dlogits against central differences of the mean loss.
    let mut rng = Rng::new(0x1055);
    let (n, k) = (4, 7);
    let x: Vec<f32> = (0..n * k).map(|_| rng.f32() * 3.0).collect();
    let labels = [0u32, 6, 3, 3];
    let g = softmax_cross_entropy(&x, n, k, &labels).unwrap().dlogits;
    let fd: Vec<f32> = (0..x.len())
        .map(|i| {
            let mut xp = x.clone();
            xp[i] += FD_EPS;
            let mut xm = x.clone();
            xm[i] -= FD_EPS;
            let lp = softmax_cross_entropy(&xp, n, k, &labels).unwrap().loss;
            let lm = softmax_cross_entropy(&xm, n, k, &labels).unwrap().loss;
            (lp - lm) / (2.0 * FD_EPS)
        })
        .collect();
    assert_close(&g, &fd, FD_ATOL, FD_RTOL, "dlogits vs finite differences");

    // Stable for huge logits; shifting a row leaves everything unchanged.
    let big = softmax_cross_entropy(&[1e4, -1e4, 0.0], 1, 3, &[1]).unwrap();
    assert_close(&[big.loss], &[2e4], 0.0, 1e-6, "huge logits");
    let shifted = softmax_cross_entropy(&logits.map(|v| v + 50.0), 2, 3, &[2, 1]).unwrap();
    assert_close(
        &shifted.dlogits,
        &out.dlogits,
        1e-6,
        1e-4,
        "shift invariance",
    );
}

#[test]
fn train_loss_reference_rejects_bad_input() {
    let e = softmax_cross_entropy(&[0.0; 6], 2, 3, &[0, 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 3") && e.contains("row 1"), "{e}");
    assert!(softmax_cross_entropy(&[0.0; 6], 2, 3, &[0]).is_err());
    assert!(softmax_cross_entropy(&[0.0; 5], 2, 3, &[0, 1]).is_err());
    assert!(softmax_cross_entropy(&[], 0, 3, &[]).is_err());
    let nan = softmax_cross_entropy(&[f32::NAN, 0.0], 1, 2, &[0]).unwrap();
    assert!(nan.loss.is_nan(), "a NaN logit must give a NaN loss");
}

// ---------------------------------------------------------------- optimizer (CPU)

#[test]
fn train_loss_optim_sgd_three_steps_by_hand() {
    // g + wd·w; buf = g, then 0.9·buf + g; d = g + 0.9·buf; w −= lr·d (lr 0.1, wd 0.01).
    let h = SgdHyper::f8net(0.1, 0.01);
    let (mut w, mut buf) = (vec![1.0f32], vec![0.0f32]);
    let want = [
        (0.9031, 0.51),
        (0.907_574_1, 0.218_031),
        (0.698_189_2, 1.205_303_6),
    ];
    for (step, (g, (ww, bb))) in [0.5f32, -0.25, 1.0].iter().zip(want).enumerate() {
        sgd_step(&mut w, &[*g], &mut buf, step == 0, &h).unwrap();
        assert_close(&w, &[ww], 0.0, 1e-6, &format!("w after step {}", step + 1));
        assert_close(
            &buf,
            &[bb],
            0.0,
            1e-6,
            &format!("buf after step {}", step + 1),
        );
    }
    // Without Nesterov the update is the buffer itself.
    let plain = SgdHyper {
        nesterov: false,
        weight_decay: 0.0,
        ..h
    };
    let (mut w, mut buf) = (vec![1.0f32], vec![7.0f32]);
    sgd_step(&mut w, &[0.5], &mut buf, true, &plain).unwrap();
    sgd_step(&mut w, &[0.5], &mut buf, false, &plain).unwrap();
    assert_close(&w, &[1.0 - 0.05 - 0.095], 0.0, 1e-6, "plain momentum");
    assert!(sgd_step(&mut [0.0; 2], &[0.0; 2], &mut [0.0; 3], false, &h).is_err());
}

#[test]
fn train_loss_optim_weight_decay_schemes() {
    use ParamKind::*;
    let kinds = [
        ConvWeight,
        DepthwiseWeight,
        LinearWeight,
        BnGamma,
        BnBeta,
        Bias,
        Alpha,
    ];
    for k in kinds {
        assert!(WeightDecayScheme::All.applies(k), "{k:?} under all");
        let want = matches!(k, ConvWeight | LinearWeight);
        assert_eq!(
            WeightDecayScheme::NoDepthwiseNoBn.applies(k),
            want,
            "{k:?} under no_depthwise_no_bn"
        );
    }
    assert_eq!(WeightDecayScheme::NoDepthwiseNoBn.decay(Alpha, 4e-5), 0.0);
    assert_eq!(WeightDecayScheme::All.decay(Alpha, 4e-5), 4e-5);
    // The official rule looks at dim 1 of the weight: one input channel per group = depthwise.
    assert_eq!(ParamKind::conv(1), DepthwiseWeight);
    assert_eq!(ParamKind::conv(3), ConvWeight);
}

#[test]
fn train_loss_optim_lr_schedule_follows_the_recipe() {
    // ResNet-18 8-bit: yml lr 0.1, batch 2048 → peak 0.8, 5 warm-up epochs from 256/2048.
    let ipe = 640;
    let s = LrSchedule::f8net(0.1, 2048, 150, ipe).unwrap();
    let (w, n) = (5 * ipe, 150 * ipe);
    assert_eq!((s.warmup_iters, s.total_iters), (w, n));
    let close = |got: f32, want: f64, what: &str| {
        assert_close(&[got], &[want as f32], 1e-9, 1e-6, what);
    };
    close(s.lr(0), 0.1, "start of warm-up");
    close(
        s.lr(w / 2),
        0.8 * ((1.0 - 0.125) / w as f64 * (w / 2) as f64 + 0.125),
        "mid warm-up",
    );
    close(
        s.lr(w - 1),
        0.8 * (1.0 - 0.875 / w as f64),
        "end of warm-up",
    );
    close(s.lr(w), 0.8, "peak");
    close(s.lr((w + n) / 2), 0.4, "half-way down the cosine");
    close(
        s.lr(n - 1),
        0.8 * (1.0 + (std::f64::consts::PI * (n - 1 - w) as f64 / (n - w) as f64).cos()) / 2.0,
        "last",
    );
    close(s.lr(n), 0.0, "end");
    close(s.lr(n + 10), 0.0, "after the end");
    // Monotone up, then monotone down.
    for i in 1..w {
        assert!(s.lr(i) >= s.lr(i - 1), "warm-up not increasing at {i}");
    }
    for i in (w + 1..=n).step_by(97) {
        assert!(s.lr(i) <= s.lr(i - 1), "cosine not decreasing at {i}");
    }
    // Batch ≤ 256: no scaling, no warm-up.
    let small = LrSchedule::f8net(0.05, 128, 2, 10).unwrap();
    close(small.lr(0), 0.05, "no warm-up at batch 128");
    close(small.lr(10), 0.025, "cosine half-way at batch 128");
    close(LrSchedule::constant(1e-4).lr(12345), 1e-4, "constant");
    assert!(LrSchedule::f8net(0.1, 0, 1, 1).is_err());
    assert!(LrSchedule::f8net(f64::NAN, 64, 1, 1).is_err());
}

// ---------------------------------------------------------------- fake quantization (CPU)

#[test]
fn train_loss_fake_quant_t4_ste_masks() {
    let u6 = Format::unsigned(6).unwrap();
    let out = fix_quant(&[0.004, 0.01, 3.97, 3.98], u6).unwrap();
    assert_eq!(out.mask, vec![false, true, true, false], "T4 unsigned FL 6");
    let codes: Vec<f32> = out.values.iter().map(|v| v * 64.0).collect();
    assert_eq!(codes, vec![0.0, 1.0, 254.0, 255.0]);
    let s7 = Format::signed(7).unwrap();
    let out = fix_quant(&[0.98, 0.99, -0.99], s7).unwrap();
    assert_eq!(out.mask, vec![true, false, false], "T4 signed FL 7");
    let codes: Vec<f32> = out.values.iter().map(|v| v * 128.0).collect();
    assert_eq!(codes, vec![125.0, 127.0, -127.0]);
    // Backward is grad · mask.
    let g = fix_quant_backward(&[2.0, -3.0, 5.0], &out.mask).unwrap();
    assert_eq!(g, vec![2.0, 0.0, 0.0]);
    assert!(fix_quant_backward(&[1.0], &[true, false]).is_err());
    // Floating mode keeps the clamp and mask, without rounding.
    let f = fix_quant_floating(&[0.004, 5.0, -1.0], u6).unwrap();
    assert_eq!(f.values, vec![0.004f32 * 64.0 / 64.0, 255.0 / 64.0, 0.0]);
    assert_eq!(f.mask, vec![true, false, false]);
}

#[test]
fn train_loss_fake_quant_t8_fix_scaling_and_t9_pact() {
    use Signedness::{Signed, Unsigned};
    for (alpha, fl, sg, want) in [
        (12.114248f32, 8, Unsigned, 12.1618f32),
        (17.634539, 1, Unsigned, 0.1383),
        (9.664641, 4, Unsigned, 0.6064),
        (22.902142, 7, Signed, 23.0825),
        (9.285588, 6, Signed, 4.6794),
        (11.333997, 8, Unsigned, 11.3784),
    ] {
        let got = fix_scaling(alpha, fl, sg);
        assert_close(&[got], &[want], 0.0, 1e-4, &format!("T8 α {alpha} F {fl}"));
        assert_eq!(fix_scaling(-alpha, fl, sg), got, "|α| is used");
    }
    let u5 = Format::unsigned(5).unwrap();
    assert_close(
        &[fix_scaling(6.0, 5, Unsigned)],
        &[0.752_941_2],
        0.0,
        1e-6,
        "T9 s",
    );
    for (y, want) in [
        (2.0f32, 2.0f32),
        (7.0, 6.0),
        (1.0, 0.988_235_3),
        (-0.3, 0.0),
    ] {
        let got = fix_pact(y, 6.0, u5);
        assert_close(
            &[got],
            &[want],
            1e-7,
            1e-6,
            &format!("T9 fixed-point PACT y {y}"),
        );
        assert_close(&[pact(y, 6.0, Unsigned)], &[want], 1e-7, 1e-6, "T9 PACT");
    }
    // Equal over a sweep, unsigned and signed, whenever the FL cancels (§3.6).
    let mut rng = Rng::new(0x7a9);
    for _ in 0..2000 {
        let y = rng.f32() * 9.0;
        let alpha = 4.0 + 3.0 * rng.f32();
        for f in [u5, Format::signed(4).unwrap()] {
            // The two roundings see y·255/α through different f32 paths: skip near-ties.
            let levels = if f.signedness == Signedness::Signed {
                127.0
            } else {
                255.0
            };
            let u = y as f64 * levels / alpha as f64;
            if (u - u.floor() - 0.5).abs() < 1e-3 {
                continue;
            }
            let (a, b) = (fix_pact(y, alpha, f), pact(y, alpha, f.signedness));
            assert_close(
                &[a],
                &[b],
                1e-6,
                1e-5,
                &format!("PACT y {y} α {alpha} {f:?}"),
            );
        }
    }
}

#[test]
fn train_loss_fake_quant_alpha_gradient_vs_finite_differences() {
    let fd = |y: f32, a: f32, f: Format| {
        (fix_pact(y, a + FD_EPS, f) - fix_pact(y, a - FD_EPS, f)) / (2.0 * FD_EPS)
    };
    let alpha = 6.0f32;
    for f in [Format::unsigned(5).unwrap(), Format::signed(3).unwrap()] {
        let levels = if f.signedness == Signedness::Signed {
            127.0
        } else {
            255.0
        };
        // Clipped regions (m = 0): the formula is the derivative itself (±1 at the clamp).
        let mut clipped = vec![7.0f32, 9.5, 30.0];
        if f.signedness == Signedness::Signed {
            clipped.extend([-7.0f32, -12.0]);
        } else {
            clipped.extend([-0.3f32, -5.0]);
        }
        for y in clipped {
            let g = fix_pact_alpha_grad(y, alpha, f);
            assert_close(
                &[g],
                &[fd(y, alpha, f)],
                FD_ATOL,
                FD_RTOL,
                &format!("clipped y {y} {f:?}"),
            );
        }
        assert_close(
            &[fix_pact_alpha_grad(7.0, alpha, f)],
            &[1.0],
            0.0,
            1e-6,
            "high clip",
        );
        // Pass-through: between rounding boundaries s·Q is linear in α (slope Q·s/α); the STE
        // adds −m·x̃·s/α = −y/α. Codes k + 0.25 stay clear of a boundary over ±FD_EPS.
        for k in [1.0f32, 3.0, 17.0, -5.0, 40.0] {
            if k < 0.0 && f.signedness == Signedness::Unsigned {
                continue;
            }
            let y = (k + 0.25) * alpha / levels;
            let g = fix_pact_alpha_grad(y, alpha, f);
            let want = fd(y, alpha, f) - y / alpha;
            assert_close(
                &[g],
                &[want],
                FD_ATOL,
                FD_RTOL,
                &format!("pass-through y {y} {f:?}"),
            );
            // … which is the rounding residual (Q(x̃) − x̃)·s/α.
            let s = fix_scaling(alpha, f.fl, f.signedness);
            let r = (f.fake_quant(y / s) - y / s) * s / alpha;
            assert_close(&[g], &[r], 1e-6, 1e-4, "residual form");
        }
    }
}

#[test]
fn train_loss_tensor_stats_reference() {
    let s = tensor_stats(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        (s.count, s.sum, s.sum_sq, s.min, s.max),
        (4, 10.0, 30.0, 1.0, 4.0)
    );
    assert!(
        (s.std - 1.2909944).abs() < 1e-6,
        "T2 unbiased std {}",
        s.std
    );
    assert_eq!(s.fl(Signedness::Signed), 4, "T2: signed FL 4");
    let mut rng = Rng::new(0x57a7);
    let x: Vec<f32> = (0..1000).map(|_| 3.0 + rng.f32()).collect();
    let s = tensor_stats(&x);
    let want = f8net::fraclen::unbiased_std(&x) as f64;
    assert!((s.std - want).abs() <= 1e-6 * want, "{} vs {want}", s.std);
    assert_eq!(tensor_stats(&[5.0]).std, 0.0);
}
