//! The F8Net conv + BN training unit (`train::conv_bn`): its full backward — through the
//! quantizer masks, the batch statistics of the two-convolution BN folding and both PACT scales —
//! against central finite differences in the clipped-float precision (no rounding, so the unit
//! is differentiable), for dense and depthwise convolutions, unsigned and signed inputs.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::model::float::ConvKind;
use f8net::reference::Window;
use f8net::tensor::Shape;
use f8net::train::conv_bn::{ConvBn, InputQuant, Precision};

struct Case {
    unit: ConvBn,
    x: Vec<f32>,
    shape: Shape,
    r: Vec<f32>,
    s_in: f32,
    s_out: f32,
}

impl Case {
    fn new(seed: u64, kind: ConvKind, input: InputQuant, window: Window) -> Case {
        let mut rng = Rng::new(seed);
        let (cin, cout) = match kind {
            ConvKind::Dense => (3, 5),
            ConvKind::Depthwise => (6, 6),
        };
        let per = match kind {
            ConvKind::Dense => window.kh * window.kw * cin,
            ConvKind::Depthwise => window.kh * window.kw,
        };
        let w: Vec<f32> = (0..cout * per).map(|_| rng.f32() * 0.3).collect();
        let mut unit = ConvBn::new("unit", kind, cin, cout, window, input, w);
        unit.gamma = (0..cout).map(|_| 0.2 + 0.1 * rng.f32()).collect();
        unit.beta = (0..cout).map(|_| rng.f32() * 0.5).collect();
        let shape = Shape::new(2, 5, 6, cin);
        // Inside the clipped-float input ranges (FL 6: 0..3.98 unsigned, ±1.98 signed), away
        // from the clamps by more than FD_EPS.
        let x = (0..shape.len())
            .map(|_| match input {
                InputQuant::Quantized(Signedness::Unsigned) => 0.3 + 1.6 * (rng.f32() + 1.0),
                _ => 1.7 * rng.f32(),
            })
            .collect();
        let (oh, ow) = window.out_hw("test", 5, 6).unwrap();
        let r = (0..2 * oh * ow * cout).map(|_| rng.f32()).collect();
        Case {
            unit,
            x,
            shape,
            r,
            s_in: 0.8,
            s_out: 1.3,
        }
    }

    /// L = Σ r · out for a fresh copy of the unit (running statistics must not leak between
    /// evaluations).
    fn loss(&self, unit: &ConvBn, x: &[f32], s_in: f32, s_out: f32) -> f64 {
        let mut u = unit.clone();
        let (out, _) = u
            .forward_train(x, self.shape, s_in, s_out, Precision::Float)
            .unwrap();
        out.iter()
            .zip(&self.r)
            .map(|(o, r)| *o as f64 * *r as f64)
            .sum()
    }

    fn check(&self, label: &str) {
        let mut u = self.unit.clone();
        let (_, saved) = u
            .forward_train(&self.x, self.shape, self.s_in, self.s_out, Precision::Float)
            .unwrap();
        let (dx, g) = u.backward(&saved, &self.r).unwrap();
        let eps = FD_EPS as f64;
        let close = |analytic: f32, numeric: f64, what: String| {
            let tol = FD_ATOL as f64 + FD_RTOL as f64 * numeric.abs();
            assert!(
                (analytic as f64 - numeric).abs() <= tol,
                "{label} {what}: analytic {analytic} numeric {numeric}"
            );
        };
        let mut rng = Rng::new(99);
        for _ in 0..12 {
            let i = rng.usize(0, self.x.len() - 1);
            let (mut a, mut b) = (self.x.clone(), self.x.clone());
            a[i] += FD_EPS;
            b[i] -= FD_EPS;
            let num = (self.loss(&self.unit, &a, self.s_in, self.s_out)
                - self.loss(&self.unit, &b, self.s_in, self.s_out))
                / (2.0 * eps);
            close(dx[i], num, format!("dx[{i}]"));
        }
        for _ in 0..12 {
            let i = rng.usize(0, self.unit.weight.len() - 1);
            let (mut a, mut b) = (self.unit.clone(), self.unit.clone());
            a.weight[i] += FD_EPS;
            b.weight[i] -= FD_EPS;
            let num = (self.loss(&a, &self.x, self.s_in, self.s_out)
                - self.loss(&b, &self.x, self.s_in, self.s_out))
                / (2.0 * eps);
            close(g.weight[i], num, format!("dw[{i}]"));
        }
        for c in 0..self.unit.cout {
            for (which, grad) in [("gamma", &g.gamma), ("beta", &g.beta)] {
                let (mut a, mut b) = (self.unit.clone(), self.unit.clone());
                let (pa, pb) = if which == "gamma" {
                    (&mut a.gamma, &mut b.gamma)
                } else {
                    (&mut a.beta, &mut b.beta)
                };
                pa[c] += FD_EPS;
                pb[c] -= FD_EPS;
                let num = (self.loss(&a, &self.x, self.s_in, self.s_out)
                    - self.loss(&b, &self.x, self.s_in, self.s_out))
                    / (2.0 * eps);
                close(grad[c], num, format!("d{which}[{c}]"));
            }
        }
        let e = 1e-3f32; // the scales are O(1) and the loss is smooth in them
        let num_in = (self.loss(&self.unit, &self.x, self.s_in + e, self.s_out)
            - self.loss(&self.unit, &self.x, self.s_in - e, self.s_out))
            / (2.0 * e as f64);
        close(g.s_in, num_in, "ds_in".into());
        let num_out = (self.loss(&self.unit, &self.x, self.s_in, self.s_out + e)
            - self.loss(&self.unit, &self.x, self.s_in, self.s_out - e))
            / (2.0 * e as f64);
        close(g.s_out, num_out, "ds_out".into());
    }
}

#[test]
fn conv_bn_backward_matches_finite_differences() {
    let same3 = Window::same(3, 1, 5, 6);
    let s2 = Window::same(3, 2, 5, 6);
    Case::new(
        1,
        ConvKind::Dense,
        InputQuant::Quantized(Signedness::Unsigned),
        same3,
    )
    .check("dense unsigned");
    Case::new(
        2,
        ConvKind::Dense,
        InputQuant::Quantized(Signedness::Signed),
        s2,
    )
    .check("dense signed stride 2");
    Case::new(3, ConvKind::Dense, InputQuant::Fixed, same3).check("first layer (fixed input)");
    Case::new(
        4,
        ConvKind::Depthwise,
        InputQuant::Quantized(Signedness::Unsigned),
        s2,
    )
    .check("depthwise stride 2");
}

#[test]
fn conv_bn_fixed_point_forward_uses_f8net_formats() {
    let mut case = Case::new(
        5,
        ConvKind::Dense,
        InputQuant::Quantized(Signedness::Unsigned),
        Window::same(3, 1, 5, 6),
    );
    let before = case.unit.running_fl.value;
    let (out, saved) = case
        .unit
        .forward_train(&case.x, case.shape, 1.0, 1.0, Precision::Fixed)
        .unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    // The batch FL follows the σ rule on the raw input; the running FL moved towards it.
    let sigma = f8net::fraclen::unbiased_std(&case.x);
    let fl = f8net::fraclen::fl_from_std(sigma, Signedness::Unsigned);
    assert_eq!(saved.x_fl, Some(fl));
    assert!((case.unit.running_fl.value - (0.9 * before + 0.1 * fl as f32)).abs() < 1e-6);
    assert_eq!(saved.w_fl.len(), 5);
    assert!(saved
        .w_fl
        .iter()
        .all(|&f| f == saved.w_fl[0] && (0..=7).contains(&f)));
    // Eval mode reproduces the folded BN with running statistics (finite, same shape).
    let eval = case
        .unit
        .forward_eval(&case.x, case.shape, 1.0, 1.0, Precision::Fixed)
        .unwrap();
    assert_eq!(eval.len(), out.len());
}

/// `WeightFormat::PerChannel`: every output channel's FL is the σ rule on its own row of W̃, in
/// 0..=15 and capped at `max_acc_fl − FL_x`; the integer codes are that row at that FL.
#[test]
fn per_channel_weight_formats_follow_each_rows_sigma() {
    use f8net::fixed::Format;
    use f8net::reference::fold::fold_forward;
    use f8net::train::weight_format::{WeightFormat, ACC_FL_QUANTIZED, ACC_FL_SHARED};
    for (kind, x_fl, cap) in [
        (ConvKind::Dense, 8.0, ACC_FL_SHARED),
        (ConvKind::Depthwise, 3.0, ACC_FL_SHARED),
        (ConvKind::Dense, 0.0, ACC_FL_SHARED),
        (ConvKind::Dense, 8.0, ACC_FL_QUANTIZED),
    ] {
        let input = InputQuant::Quantized(Signedness::Unsigned);
        let mut case = Case::new(9, kind, input, Window::same(3, 1, 5, 6));
        // Rows 2^-c apart in scale, so the channels want different FLs.
        let cout = case.unit.cout;
        case.unit.gamma = (0..cout)
            .map(|c| 4000.0 * (-(c as f32) * 2.5).exp2())
            .collect();
        case.unit.running_fl.value = x_fl;
        case.unit.weight_format = WeightFormat::PerChannel;
        case.unit.max_acc_fl = cap;
        let (s_in, s_out) = (0.7, 1.3);
        let u = case.unit.integer_eval(s_in, s_out).unwrap();
        let w_eff = fold_forward(
            &case.unit.weight,
            &case.unit.gamma,
            &case.unit.beta,
            &case.unit.running_stats(),
            s_in,
            s_out,
        )
        .unwrap()
        .w_eff;
        let per = w_eff.len() / cout;
        let want: Vec<i32> = w_eff
            .chunks(per)
            .map(|row| {
                let sd = f8net::fraclen::unbiased_std(row);
                let fl = (40.0 / sd).log2().floor() as i32;
                fl.clamp(-8, 15).min(cap - x_fl as i32).max(-8)
            })
            .collect();
        assert_eq!(u.weight_fl, want, "{kind:?} x_fl {x_fl} cap {cap}");
        let mut distinct = want.clone();
        distinct.dedup();
        assert!(distinct.len() > 2, "{kind:?}: {want:?}");
        assert!(
            want.iter().any(|&f| f < 0),
            "{kind:?}: no negative FL in {want:?}"
        );
        for (c, row) in w_eff.chunks(per).enumerate() {
            let f = Format::with_range(Signedness::Signed, want[c], f8net::fixed::FlRange::Trained)
                .unwrap();
            let codes: Vec<i32> = row.iter().map(|&v| f.quantize(v)).collect();
            assert_eq!(u.codes[c * per..(c + 1) * per], codes[..], "channel {c}");
        }
    }
}

mod classifier {
    use crate::common::*;
    use f8net::train::conv_bn::Precision;
    use f8net::train::linear::Classifier;

    fn setup() -> (Classifier, Vec<f32>, Vec<f32>) {
        let mut rng = Rng::new(11);
        let (n, k, classes) = (3, 7, 4);
        let mut fc = Classifier::new(
            k,
            classes,
            (0..classes * k).map(|_| rng.f32() * 0.6).collect(),
        );
        fc.bias = (0..classes).map(|_| rng.f32()).collect();
        let x = (0..n * k).map(|_| 0.3 + 1.6 * (rng.f32() + 1.0)).collect();
        let r = (0..n * classes).map(|_| rng.f32()).collect();
        (fc, x, r)
    }

    fn loss(fc: &Classifier, x: &[f32], s: f32, r: &[f32], ws: f32) -> f64 {
        // ws is detached in the official code: hold it at the base point's value.
        let (logits, saved) = fc.clone().forward_train(x, 3, s, Precision::Float).unwrap();
        let scale = ws / saved.ws;
        logits
            .iter()
            .zip(r)
            .enumerate()
            .map(|(i, (l, r))| ((l - fc.bias[i % 4]) * scale + fc.bias[i % 4]) as f64 * *r as f64)
            .sum()
    }

    #[test]
    fn classifier_backward_matches_finite_differences() {
        let (fc, x, r) = setup();
        let s = 0.9;
        let (_, saved) = fc
            .clone()
            .forward_train(&x, 3, s, Precision::Float)
            .unwrap();
        let (dx, g) = fc.backward(&saved, &r).unwrap();
        let eps = FD_EPS as f64;
        let close = |a: f32, num: f64, what: &str| {
            assert!(
                (a as f64 - num).abs() <= FD_ATOL as f64 + FD_RTOL as f64 * num.abs(),
                "{what}: {a} vs {num}"
            );
        };
        for i in [0, 5, 11, 20] {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += FD_EPS;
            b[i] -= FD_EPS;
            close(
                dx[i],
                (loss(&fc, &a, s, &r, saved.ws) - loss(&fc, &b, s, &r, saved.ws)) / (2.0 * eps),
                "dx",
            );
        }
        for i in [0, 9, 17, 27] {
            let (mut a, mut b) = (fc.clone(), fc.clone());
            a.weight[i] += FD_EPS;
            b.weight[i] -= FD_EPS;
            close(
                g.weight[i],
                (loss(&a, &x, s, &r, saved.ws) - loss(&b, &x, s, &r, saved.ws)) / (2.0 * eps),
                "dw",
            );
        }
        for c in 0..4 {
            let (mut a, mut b) = (fc.clone(), fc.clone());
            a.bias[c] += FD_EPS;
            b.bias[c] -= FD_EPS;
            close(
                g.bias[c],
                (loss(&a, &x, s, &r, saved.ws) - loss(&b, &x, s, &r, saved.ws)) / (2.0 * eps),
                "db",
            );
        }
        let e = 1e-3;
        close(
            g.s_fc,
            (loss(&fc, &x, s + e, &r, saved.ws) - loss(&fc, &x, s - e, &r, saved.ws))
                / (2.0 * e as f64),
            "ds",
        );
    }

    #[test]
    fn inference_drops_the_positive_rescale() {
        let (fc, x, _) = setup();
        let s = 0.9;
        let (train, saved) = fc
            .clone()
            .forward_train(&x, 3, s, Precision::Float)
            .unwrap();
        let eval = fc
            .forward_eval(&x, 3, s, saved.ws, Precision::Float)
            .unwrap();
        for (t, e) in train.iter().zip(&eval) {
            assert!((t / (s * saved.ws) - e).abs() < 1e-4, "{t} vs {e}");
        }
    }
}

/// A dead channel (zero input, so its batch and running variance are 0) does not change the
/// unit's output whatever its weights are; clearing it keeps both forwards bit for bit and stops
/// its W̃ = γ/√eps·W from setting the layer's weight FL.
#[test]
fn clearing_dead_channels_keeps_the_function_and_frees_the_weight_fl() {
    let mut case = Case::new(
        21,
        ConvKind::Depthwise,
        InputQuant::Quantized(Signedness::Unsigned),
        Window::same(3, 1, 5, 6),
    );
    let dead = 2;
    let c = case.shape.c;
    for (i, v) in case.x.iter_mut().enumerate() {
        if i % c == dead {
            *v = 0.0;
        }
    }
    case.unit.running_var[dead] = 0.0;
    case.unit.running_mean[dead] = 0.0;
    let run = |u: &mut ConvBn, p: Precision| {
        let (train, saved) = u.forward_train(&case.x, case.shape, 1.0, 1.0, p).unwrap();
        // forward_train moved the running statistics; evaluate a copy with the same ones.
        let eval = u.forward_eval(&case.x, case.shape, 1.0, 1.0, p).unwrap();
        (train, eval, saved.w_fl)
    };
    let mut cleared = case.unit.clone();
    assert_eq!(cleared.clear_dead_channels(), 1);
    assert!(cleared.weight[dead * 9..(dead + 1) * 9]
        .iter()
        .all(|&w| w == 0.0));
    let (t0, e0, _) = run(&mut case.unit.clone(), Precision::Float);
    let (t1, e1, _) = run(&mut cleared.clone(), Precision::Float);
    assert_eq!(t0, t1, "training forward");
    assert_eq!(e0, e1, "eval forward");
    let (_, _, fl0) = run(&mut case.unit.clone(), Precision::Fixed);
    let (_, _, fl1) = run(&mut cleared, Precision::Fixed);
    assert!(
        fl1[0] > fl0[0],
        "weight FL {fl0:?} with the dead channel, {fl1:?} without"
    );
}
