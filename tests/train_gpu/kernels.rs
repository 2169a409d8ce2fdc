//! The fold kernels (`shaders/fold.wgsl`, `shaders/fold_linear.wgsl`) and the training pool
//! (`shaders/sum_pool.wgsl`) against their CPU specs (`reference::fold`, `reference::sum_pool`): dense (odd channel counts,
//! padded lanes), depthwise and 1×1 weight layouts, outputs poisoned with NaN. Element-wise
//! results within F32_ATOL + F32_RTOL·|ref|; per-channel reductions over K weights (dγ, dμ, dv,
//! the scale terms) and over channels (dα) within f32_reduction_atol(K) of the vector's largest
//! magnitude.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::gpu::{Gpu, GpuBuffer};
use f8net::ops::batchnorm::GpuChannelPair;
use f8net::ops::depthwise_f32::F32DepthwiseWeights;
use f8net::ops::fold::{self, encode_scales, ScaleEntry, ScaleRefs, WeightLayout};
use f8net::ops::gemm_f32::F32Weights;
use f8net::ops::sum_pool::{self, SumPool};
use f8net::reference::batchnorm::BatchStats;
use f8net::reference::fake_quant::fix_scaling;
use f8net::reference::fold as spec;
use f8net::reference::sum_pool as pool_spec;
use f8net::tensor::{unpad_channels, GpuF32Tensor, Shape};

fn values(rng: &mut Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.f32() * scale).collect()
}

/// Within f32_reduction_atol(k) of the largest |want| (at least 1), and F32_RTOL.
fn close_reduced(got: &[f32], want: &[f32], k: usize, what: &str) {
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    assert_close(got, want, f32_reduction_atol(k) * scale, F32_RTOL, what);
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_close(got, want, F32_ATOL, F32_RTOL, what);
}

/// α, the scale table and the scales buffer after `fold_scales`: s[0] = 2^5·|α0|/255 (the unit's
/// input), s[1] = 2^4·|α1|/127 (its output's consumer), then the final 1.
struct Scales {
    alpha: GpuBuffer<f32>,
    scales: GpuBuffer<f32>,
    host: Vec<f32>,
}

fn scales(gpu: &Gpu, alphas: &[f32]) -> Scales {
    let entries = [
        ScaleEntry::Pact {
            alpha: 0,
            fl: 5,
            signedness: Signedness::Unsigned,
        },
        ScaleEntry::Pact {
            alpha: 1,
            fl: 4,
            signedness: Signedness::Signed,
        },
        ScaleEntry::One,
    ];
    let table = gpu
        .upload(&encode_scales(&entries, alphas.len()).unwrap())
        .unwrap();
    let alpha = gpu.upload(alphas).unwrap();
    let out = gpu.alloc_filled(table.len(), POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = fold::FoldScales {
        alpha: &alpha,
        table: &table,
        scales: &out,
    };
    fold::record_scales(gpu, &mut enc, &a).unwrap();
    gpu.submit(enc).unwrap();
    let host = vec![
        fix_scaling(alphas[0], 5, Signedness::Unsigned),
        fix_scaling(alphas[1], 4, Signedness::Signed),
        1.0,
        1.0,
    ];
    close(&gpu.read(&out).unwrap(), &host, "fold_scales");
    Scales {
        alpha,
        scales: out,
        host,
    }
}

const REFS: ScaleRefs = ScaleRefs {
    node_in: 0,
    node_out: 1,
    alpha_in: Some(0),
    alpha_out: Some(1),
};

/// A weight layout: host `[c][per]` values to the GPU buffer and back.
enum Layout {
    Dense { cin: usize, taps: usize },
    Depthwise { taps: usize },
}

impl Layout {
    fn per(&self) -> usize {
        match self {
            Layout::Dense { cin, taps } => cin * taps,
            Layout::Depthwise { taps } => *taps,
        }
    }

    fn upload(&self, gpu: &Gpu, w: &[f32], c: usize) -> (GpuBuffer<f32>, WeightLayout) {
        match *self {
            Layout::Dense { cin, taps } => {
                let k = if taps == 9 { 3 } else { 1 };
                let f = F32Weights::upload(gpu, w, &vec![0.0; c], c, k, k, cin).unwrap();
                let per = f.k4() * 4;
                (f.w, WeightLayout::Rows { per })
            }
            Layout::Depthwise { taps } => {
                let k = if taps == 9 { 3 } else { 1 };
                let f = F32DepthwiseWeights::upload(gpu, w, &vec![0.0; c], c, k, k).unwrap();
                (f.w, WeightLayout::Depthwise { taps })
            }
        }
    }

    fn download(&self, raw: &[f32], c: usize) -> Vec<f32> {
        match *self {
            Layout::Dense { cin, taps } => {
                unpad_channels(&raw[..c * taps * cin.div_ceil(4) * 4], cin)
            }
            Layout::Depthwise { taps } => {
                let cp = c.div_ceil(4) * 4;
                (0..c * taps)
                    .map(|i| raw[(i % taps) * cp + i / taps])
                    .collect()
            }
        }
    }
}

fn block(raw: &[f32], c: usize, k: usize) -> Vec<f32> {
    let cp = c.div_ceil(4) * 4;
    raw[k * cp..k * cp + c].to_vec()
}

fn fold_case(gpu: &Gpu, label: &str, layout: Layout, c: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let per = layout.per();
    let s = scales(gpu, &[7.5, -9.0]);
    let (s_in, s_out) = (s.host[0], s.host[1]);
    let w = values(&mut rng, c * per, 0.5);
    let gamma: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * rng.f32()).collect();
    let beta = values(&mut rng, c, 0.3);
    let raw_mean = values(&mut rng, c, 2.0);
    let raw_var: Vec<f32> = (0..c).map(|_| 1.1 + rng.f32()).collect();
    let (run_mean, run_var) = (values(&mut rng, c, 1.0), vec![1.0; c]);
    let count = 24;
    let (w_buf, wl) = layout.upload(gpu, &w, c);
    let affine = GpuChannelPair::upload(gpu, &gamma, &beta).unwrap();
    let raw = GpuChannelPair::upload(gpu, &raw_mean, &raw_var).unwrap();
    let running = GpuChannelPair::upload(gpu, &run_mean, &run_var).unwrap();
    let cp = c.div_ceil(4) * 4;
    let w_eff = gpu.alloc_filled(w_buf.len(), POISON_F32).unwrap();
    let b_eff = gpu.alloc_filled(cp, POISON_F32).unwrap();
    let state = gpu.alloc_filled(4 * cp, POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let f = fold::FoldConv {
        w: &w_buf,
        layout: wl,
        affine: &affine,
        raw: &raw,
        count,
        scales: &s.scales,
        refs: REFS,
        eps: 1e-5,
        momentum: 0.1,
        w_eff: &w_eff,
        b_eff: &b_eff,
        state: &state,
        running: &running,
    };
    fold::record_conv(gpu, &mut enc, &f).unwrap();
    gpu.submit(enc).unwrap();
    // The spec.
    let raw_stats = BatchStats {
        count,
        mean: raw_mean.clone(),
        var: raw_var.clone(),
    };
    let st = spec::fold_stats(&raw_stats, s_in, 1e-5).unwrap();
    let want = spec::fold_forward(&w, &gamma, &beta, &st, s_in, s_out).unwrap();
    let (mut rm, mut rv) = (run_mean.clone(), run_var.clone());
    spec::update_running(&mut rm, &mut rv, &st, count, 0.1).unwrap();
    let ctx = |what: &str| format!("{label}: {what}");
    let got_w = layout.download(&gpu.read(&w_eff).unwrap(), c);
    close(&got_w, &want.w_eff, &ctx("W̃"));
    close(&gpu.read(&b_eff).unwrap()[..c], &want.b_eff, &ctx("b̃"));
    let st_raw = gpu.read(&state).unwrap();
    for (k, (what, v)) in [
        ("μ", &st.mean),
        ("σ", &st.sigma),
        ("v", &st.var),
        ("b̃ (state)", &want.b_eff),
    ]
    .into_iter()
    .enumerate()
    {
        close(&block(&st_raw, c, k), v, &ctx(what));
    }
    let (gm, gv) = running.download(gpu).unwrap();
    close(&gm, &rm, &ctx("running mean"));
    close(&gv, &rv, &ctx("running var"));

    // Backward: per-channel terms, the weight gradient, the statistics' gradient, dα.
    let dw_eff = values(&mut rng, c * per, 1.0);
    let db = values(&mut rng, c, 2.0);
    let (dw_eff_buf, _) = layout.upload(gpu, &dw_eff, c);
    let mut db_pad = db.clone();
    db_pad.resize(cp, 0.0);
    let db_buf = gpu.upload(&db_pad).unwrap();
    let d_affine = GpuChannelPair::alloc_filled(gpu, c, POISON_F32).unwrap();
    let terms = gpu.alloc_filled(4 * cp, POISON_F32).unwrap();
    let dw_stats = values(&mut rng, c * per, 0.5);
    let (dw_stats_buf, _) = layout.upload(gpu, &dw_stats, c);
    let dw = gpu.alloc_filled(w_buf.len(), POISON_F32).unwrap();
    let y_shape = Shape::new(2, 3, 4, c);
    let y0r = values(&mut rng, y_shape.len(), 3.0);
    let y0r_t = GpuF32Tensor::upload(gpu, y_shape, &y0r).unwrap();
    let e = GpuF32Tensor::alloc_filled(gpu, y_shape, POISON_F32).unwrap();
    let dalpha0 = [0.5f32, -0.25];
    let dalpha = gpu.upload(&dalpha0).unwrap();
    let mut enc = gpu.encoder();
    let fb = fold::FoldConvBackward {
        w: &w_buf,
        layout: wl,
        affine: &affine,
        state: &state,
        scales: &s.scales,
        refs: REFS,
        dw_eff: &dw_eff_buf,
        db_eff: &db_buf,
        d_affine: &d_affine,
        terms: &terms,
    };
    fold::record_conv_backward(gpu, &mut enc, &fb).unwrap();
    let fw = fold::FoldConvBackwardWeight {
        dw_eff: &dw_eff_buf,
        dw_stats: &dw_stats_buf,
        layout: wl,
        affine: &affine,
        state: &state,
        scales: &s.scales,
        refs: REFS,
        dw: &dw,
    };
    fold::record_conv_backward_weight(gpu, &mut enc, &fw).unwrap();
    let fs = fold::FoldConvBackwardStats {
        y0r: &y0r_t,
        state: &state,
        terms: &terms,
        scales: &s.scales,
        refs: REFS,
        e: &e,
    };
    fold::record_conv_backward_stats(gpu, &mut enc, &fs).unwrap();
    let ga = fold::FoldAlphaGrad {
        terms: &terms,
        offset: 2 * cp,
        c,
        scales: &s.scales,
        alpha: &s.alpha,
        refs: REFS,
        dalpha: &dalpha,
    };
    fold::record_alpha_grad(gpu, &mut enc, &ga).unwrap();
    gpu.submit(enc).unwrap();
    let fb_in = spec::FoldBackward {
        stats: &st,
        b_eff: &want.b_eff,
        dw_eff: &dw_eff,
        db_eff: &db,
        s_in,
        s_out,
    };
    let g = spec::fold_backward(&w, &gamma, &fb_in).unwrap();
    let (dg, dbeta) = d_affine.download(gpu).unwrap();
    close_reduced(&dg, &g.dgamma, per, &ctx("dγ"));
    close(&dbeta, &g.dbeta, &ctx("dβ"));
    let t = gpu.read(&terms).unwrap();
    close_reduced(&block(&t, c, 0), &g.dmean, per, &ctx("dμ"));
    close_reduced(&block(&t, c, 1), &g.dvar, per, &ctx("dv"));
    close_reduced(&block(&t, c, 2), &g.ds_in, per, &ctx("ds_in terms"));
    close_reduced(&block(&t, c, 3), &g.ds_out, per, &ctx("ds_out terms"));
    let want_dw: Vec<f32> = g.dw.iter().zip(&dw_stats).map(|(a, b)| a + b).collect();
    let raw_dw = gpu.read(&dw).unwrap();
    close(&layout.download(&raw_dw, c), &want_dw, &ctx("dW"));
    assert!(
        raw_dw.iter().all(|v| v.is_finite()),
        "{label}: dW padding must be written (0)"
    );
    let want_e = spec::fold_stats_backward(&y0r, &st, &g.dmean, &g.dvar, s_in).unwrap();
    close_reduced(&e.download(gpu).unwrap(), &want_e, per, &ctx("e"));
    let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>();
    let want_da = [
        dalpha0[0] + spec::alpha_grad(sum(&g.ds_in), s_in, 7.5) as f32,
        dalpha0[1] + spec::alpha_grad(sum(&g.ds_out), s_out, -9.0) as f32,
    ];
    close_reduced(&gpu.read(&dalpha).unwrap(), &want_da, c * per, &ctx("dα"));
}

#[test]
fn fold_conv_forward_and_backward_match_the_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    fold_case(
        gpu,
        "dense 3x3 cin 5 cout 7",
        Layout::Dense { cin: 5, taps: 9 },
        7,
        1,
    );
    fold_case(
        gpu,
        "dense 1x1 cin 12 cout 4",
        Layout::Dense { cin: 12, taps: 1 },
        4,
        2,
    );
    fold_case(
        gpu,
        "depthwise 3x3 c 6",
        Layout::Depthwise { taps: 9 },
        6,
        3,
    );
    fold_case(
        gpu,
        "dense 3x3 cin 16 cout 70",
        Layout::Dense { cin: 16, taps: 9 },
        70,
        4,
    );
}

#[test]
fn fold_linear_matches_the_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(9);
    let (rows, k) = (10, 13);
    let s = scales(gpu, &[6.0, 8.0]);
    let ws = 1.7;
    let w_q = values(&mut rng, rows * k, 0.5);
    let g = values(&mut rng, rows * k, 2.0);
    let up = |v: &[f32]| {
        F32Weights::upload(gpu, v, &vec![0.0; rows], rows, 1, 1, k)
            .unwrap()
            .w
    };
    let (w_q_buf, g_buf) = (up(&w_q), up(&g));
    let w_s = gpu.alloc_filled(w_q_buf.len(), POISON_F32).unwrap();
    let dw = gpu.alloc_filled(w_q_buf.len(), POISON_F32).unwrap();
    let terms = gpu.alloc(2 * rows.div_ceil(4) * 4).unwrap();
    let mut enc = gpu.encoder();
    let fl = fold::FoldLinear {
        w_q: &w_q_buf,
        scales: &s.scales,
        node: 0,
        ws,
        w_s: &w_s,
    };
    fold::record_linear(gpu, &mut enc, &fl).unwrap();
    let fb = fold::FoldLinearBackward {
        g: &g_buf,
        w_q: &w_q_buf,
        rows,
        per: k.div_ceil(4) * 4,
        scales: &s.scales,
        node: 0,
        ws,
        dw: &dw,
        terms: &terms,
    };
    fold::record_linear_backward(gpu, &mut enc, &fb).unwrap();
    gpu.submit(enc).unwrap();
    let a = s.host[0] * ws;
    let rows_of = |raw: &[f32]| unpad_channels(&raw[..rows * k.div_ceil(4) * 4], k);
    close(
        &rows_of(&gpu.read(&w_s).unwrap()),
        &spec::fold_linear(&w_q, a),
        "W_s",
    );
    let (want_dw, want_ds) = spec::fold_linear_backward(&g, &w_q, rows, a, ws).unwrap();
    close(&rows_of(&gpu.read(&dw).unwrap()), &want_dw, "dW_q");
    close_reduced(
        &gpu.read(&terms).unwrap()[..rows],
        &want_ds,
        k,
        "ds_fc terms",
    );
}

#[test]
fn fold_launchers_refuse_bad_input() {
    let Some(gpu) = gpu_or_skip() else { return };
    let bad_fl = ScaleEntry::Pact {
        alpha: 0,
        fl: 200,
        signedness: Signedness::Unsigned,
    };
    assert!(encode_scales(&[bad_fl], 1).is_err());
    let bad_alpha = ScaleEntry::Pact {
        alpha: 2,
        fl: 3,
        signedness: Signedness::Signed,
    };
    assert!(encode_scales(&[bad_alpha], 2).is_err());
    let s = scales(gpu, &[8.0, 8.0]);
    let c = 4;
    let w = gpu.alloc::<f32>(c * 12).unwrap();
    let pair = GpuChannelPair::alloc_filled(gpu, c, 1.0).unwrap();
    let other = GpuChannelPair::alloc_filled(gpu, c, 1.0).unwrap();
    let (b_eff, state) = (gpu.alloc(c).unwrap(), gpu.alloc(4 * c).unwrap());
    let w_eff = gpu.alloc::<f32>(c * 12).unwrap();
    let mut enc = gpu.encoder();
    let mut f = fold::FoldConv {
        w: &w,
        layout: WeightLayout::Rows { per: 12 },
        affine: &pair,
        raw: &pair,
        count: 8,
        scales: &s.scales,
        refs: REFS,
        eps: 1e-5,
        momentum: 0.1,
        w_eff: &w_eff,
        b_eff: &b_eff,
        state: &state,
        running: &other,
    };
    assert!(fold::record_conv(gpu, &mut enc, &f).is_ok());
    f.layout = WeightLayout::Rows { per: 16 };
    let e = fold::record_conv(gpu, &mut enc, &f)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fold_conv") && e.contains("expected"), "{e}");
    f.layout = WeightLayout::Rows { per: 12 };
    f.w_eff = &w;
    assert!(
        fold::record_conv(gpu, &mut enc, &f).is_err(),
        "aliased output"
    );
    f.w_eff = &w_eff;
    f.refs.node_out = 9;
    assert!(fold::record_conv(gpu, &mut enc, &f).is_err(), "scale slot");
    f.refs.node_out = 1;
    f.count = 0;
    assert!(fold::record_conv(gpu, &mut enc, &f).is_err(), "no pixels");
}

#[test]
fn sum_pool_matches_the_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(17);
    for s in [
        Shape::new(2, 7, 7, 6),
        Shape::new(3, 5, 3, 9),
        Shape::new(1, 1, 1, 4),
    ] {
        let x = values(&mut rng, s.len(), 2.0);
        let y_shape = sum_pool::output_shape(s);
        let dy = values(&mut rng, y_shape.len(), 1.0);
        let xt = GpuF32Tensor::upload(gpu, s, &x).unwrap();
        let yt = GpuF32Tensor::alloc_filled(gpu, y_shape, POISON_F32).unwrap();
        let dyt = GpuF32Tensor::upload(gpu, y_shape, &dy).unwrap();
        let dxt = GpuF32Tensor::alloc_filled(gpu, s, POISON_F32).unwrap();
        let mut enc = gpu.encoder();
        sum_pool::record(gpu, &mut enc, &SumPool { x: &xt, y: &yt }).unwrap();
        sum_pool::record_backward(gpu, &mut enc, &SumPool { x: &dxt, y: &dyt }).unwrap();
        gpu.submit(enc).unwrap();
        let ctx = format!("sum_pool {s}");
        // The same additions in the same order: equal.
        assert_eq!(
            yt.download(gpu).unwrap(),
            pool_spec::sum_pool(&x, s).unwrap(),
            "{ctx}"
        );
        assert_eq!(
            dxt.download(gpu).unwrap(),
            pool_spec::sum_pool_backward(&dy, s).unwrap(),
            "{ctx} backward"
        );
        let raw = gpu.read(&yt.data).unwrap();
        assert!(
            raw.iter().all(|v| v.is_finite()),
            "{ctx}: padding lanes written"
        );
    }
    let s = Shape::new(2, 4, 4, 4);
    let x = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let wrong = GpuF32Tensor::alloc_filled(gpu, Shape::new(2, 1, 1, 5), 0.0).unwrap();
    let mut enc = gpu.encoder();
    assert!(sum_pool::record(gpu, &mut enc, &SumPool { x: &x, y: &wrong }).is_err());
}
