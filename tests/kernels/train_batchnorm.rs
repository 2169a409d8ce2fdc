//! Batch normalization (`shaders/batchnorm.wgsl`): the full backward (dx through the batch
//! statistics, dγ, dβ) against central finite differences of the CPU training forward; the
//! running-statistics update exactly against a hand computation; GPU statistics, running update,
//! train and eval forward and backward against the CPU reference (f64 sums) within
//! `f32_reduction_atol(count)` and `F32_RTOL`, outputs NaN-poisoned, padding lanes 0; bad inputs
//! give `Err` and record nothing.

use super::train_activation::{dot, fd_check, read_tensor};
use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::batchnorm::{
    self as ops, BatchNormApply, BatchNormBackward, BatchNormTrain, BatchStats, GpuChannelPair,
};
use f8net::reference::batchnorm::{
    batch_stats, batchnorm_backward, batchnorm_eval, batchnorm_train, RunningStats, BN_EPS,
    BN_MOMENTUM,
};
use f8net::tensor::{GpuF32Tensor, Shape};

fn values(rng: &mut Rng, len: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..len).map(|_| rng.f32() * scale + offset).collect()
}

#[test]
fn batchnorm_backward_matches_finite_differences() {
    let mut rng = Rng::new(0x00b7_00fd);
    for (shape, offset) in [(Shape::new(2, 3, 2, 5), 0.0), (Shape::new(3, 1, 1, 3), 3.0)] {
        let c = shape.c;
        let mut x = values(&mut rng, shape.len(), 2.0, offset);
        let mut gamma = values(&mut rng, c, 1.0, 1.0);
        let mut beta = values(&mut rng, c, 1.0, 0.0);
        let w = values(&mut rng, shape.len(), 1.0, 0.0);
        let f = batchnorm_train(&x, shape, &gamma, &beta, BN_EPS).unwrap();
        let g = batchnorm_backward(&w, &x, shape, &gamma, &f.stats.mean, &f.inv_std).unwrap();
        let ctx = format!("{shape} offset {offset}");
        let (g0, b0) = (gamma.clone(), beta.clone());
        let loss = |x: &[f32]| dot(&w, &batchnorm_train(x, shape, &g0, &b0, BN_EPS).unwrap().y);
        fd_check(&mut x, &g.dx, loss, &format!("dx {ctx}"));
        let loss = |gm: &[f32]| dot(&w, &batchnorm_train(&x, shape, gm, &b0, BN_EPS).unwrap().y);
        fd_check(&mut gamma, &g.dgamma, loss, &format!("dγ {ctx}"));
        let loss = |bt: &[f32]| dot(&w, &batchnorm_train(&x, shape, &g0, bt, BN_EPS).unwrap().y);
        fd_check(&mut beta, &g.dbeta, loss, &format!("dβ {ctx}"));
    }
}

/// Two channels over 5 pixels: [0, 0, 0, 0, 5] (mean 1, biased var 4, unbiased 5) and
/// [1, 3, 1, 3, 2] (mean 2, biased var 0.8, unbiased 1).
const HAND_X: [f32; 10] = [0.0, 1.0, 0.0, 3.0, 0.0, 1.0, 0.0, 3.0, 5.0, 2.0];
const HAND_SHAPE: Shape = Shape {
    n: 1,
    h: 1,
    w: 5,
    c: 2,
};

/// PyTorch's update written out: running·(1 − 0.1) + 0.1·batch, in f32.
/// Running statistics before: mean [0.5, −1], var [2, 1].
fn hand_running() -> ([f32; 2], [f32; 2]) {
    let (m, rm, rv) = (0.1f32, HAND_RUNNING_MEAN, HAND_RUNNING_VAR);
    let keep = 1.0 - m;
    (
        [keep * rm[0] + m * 1.0, keep * rm[1] + m * 2.0],
        [keep * rv[0] + m * 5.0, keep * rv[1] + m * 1.0],
    )
}

const HAND_RUNNING_MEAN: [f32; 2] = [0.5, -1.0];
const HAND_RUNNING_VAR: [f32; 2] = [2.0, 1.0];

#[test]
fn running_stats_update_matches_hand_computation() {
    let stats = batch_stats(&HAND_X, HAND_SHAPE).unwrap();
    assert_eq!(stats.mean, vec![1.0, 2.0]);
    assert_eq!(stats.var, vec![4.0, 0.8]);
    assert_eq!(stats.unbiased_var().unwrap(), vec![5.0, 1.0]);
    let mut running = RunningStats {
        mean: HAND_RUNNING_MEAN.to_vec(),
        var: HAND_RUNNING_VAR.to_vec(),
    };
    running.update(&stats, BN_MOMENTUM).unwrap();
    let (mean, var) = hand_running();
    assert_eq!(running.mean, mean.to_vec());
    assert_eq!(running.var, var.to_vec());
    assert_close(&running.mean, &[0.55, -0.7], 1e-7, 0.0, "decimal mean");
    assert_close(&running.var, &[2.3, 1.0], 1e-7, 0.0, "decimal var");
    assert_eq!(RunningStats::new(2).mean, vec![0.0; 2]);
    assert_eq!(RunningStats::new(2).var, vec![1.0; 2]);

    let Some(gpu) = gpu_or_skip() else { return };
    let x = GpuF32Tensor::upload(gpu, HAND_SHAPE, &HAND_X).unwrap();
    let stats_gpu = GpuChannelPair::alloc_filled(gpu, 2, POISON_F32).unwrap();
    let running_gpu = GpuChannelPair::upload(gpu, &HAND_RUNNING_MEAN, &HAND_RUNNING_VAR).unwrap();
    let mut enc = gpu.encoder();
    let b = BatchStats {
        x: &x,
        stats: &stats_gpu,
        running: Some(&running_gpu),
        momentum: BN_MOMENTUM,
    };
    ops::record_stats(gpu, &mut enc, &b).unwrap();
    gpu.submit(enc).unwrap();
    let (m, v) = stats_gpu.download(gpu).unwrap();
    assert_close(&m, &[1.0, 2.0], F32_ATOL, F32_RTOL, "gpu batch mean");
    assert_close(&v, &[4.0, 0.8], F32_ATOL, F32_RTOL, "gpu batch var");
    let (rm, rv) = running_gpu.download(gpu).unwrap();
    assert_close(&rm, &mean, F32_ATOL, F32_RTOL, "gpu running mean");
    assert_close(&rv, &var, F32_ATOL, F32_RTOL, "gpu running var");
}

fn check_pair(gpu: &Gpu, pair: &GpuChannelPair, want: [&[f32]; 2], atol: f32, ctx: &str) {
    let raw = gpu.read(&pair.data).unwrap();
    let cp = pair.c.div_ceil(4) * 4;
    for half in 0..2 {
        let lanes = &raw[half * cp..(half + 1) * cp];
        assert!(
            lanes[pair.c..].iter().all(|&v| v == 0.0),
            "padding of half {half}: {ctx}"
        );
        let what = format!("half {half}: {ctx}");
        assert_close(&lanes[..pair.c], want[half], atol, F32_RTOL, &what);
    }
}

/// One shape: train forward (stats, running update, y), backward, then eval with the updated
/// running statistics, all in one submit.
fn check_batchnorm(gpu: &Gpu, rng: &mut Rng, shape: Shape, offset: f32) {
    let ctx = format!("{shape} offset {offset}");
    let c = shape.c;
    let x = values(rng, shape.len(), 1.0, offset);
    let dy = values(rng, shape.len(), 1.0, 0.0);
    let gamma = values(rng, c, 0.5, 1.0);
    let beta = values(rng, c, 1.0, 0.0);
    let want = batchnorm_train(&x, shape, &gamma, &beta, BN_EPS).unwrap();
    let grads =
        batchnorm_backward(&dy, &x, shape, &gamma, &want.stats.mean, &want.inv_std).unwrap();
    let mut running = RunningStats {
        mean: values(rng, c, 1.0, 0.0),
        var: values(rng, c, 0.5, 1.0),
    };
    let running_gpu = GpuChannelPair::upload(gpu, &running.mean, &running.var).unwrap();
    running.update(&want.stats, BN_MOMENTUM).unwrap();
    let want_eval = batchnorm_eval(&x, shape, &gamma, &beta, &running, BN_EPS).unwrap();

    let xt = GpuF32Tensor::upload(gpu, shape, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, shape, &dy).unwrap();
    let affine = GpuChannelPair::upload(gpu, &gamma, &beta).unwrap();
    let stats = GpuChannelPair::alloc_filled(gpu, c, POISON_F32).unwrap();
    let stats_only = GpuChannelPair::alloc_filled(gpu, c, POISON_F32).unwrap();
    let grads_gpu = GpuChannelPair::alloc_filled(gpu, c, POISON_F32).unwrap();
    let [y, y_eval, dx] =
        [0; 3].map(|_| GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap());
    let mut enc = gpu.encoder();
    let train = BatchNormTrain {
        x: &xt,
        affine: &affine,
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        stats: &stats,
        running: Some(&running_gpu),
        out: &y,
    };
    ops::record_train(gpu, &mut enc, &train).unwrap();
    let alone = BatchStats {
        x: &xt,
        stats: &stats_only,
        running: None,
        momentum: BN_MOMENTUM,
    };
    ops::record_stats(gpu, &mut enc, &alone).unwrap();
    let bwd = BatchNormBackward {
        dy: &dyt,
        x: &xt,
        stats: &stats,
        affine: &affine,
        eps: BN_EPS,
        grads: &grads_gpu,
        dx: &dx,
    };
    ops::record_backward(gpu, &mut enc, &bwd).unwrap();
    let eval = BatchNormApply {
        x: &xt,
        stats: &running_gpu,
        affine: &affine,
        eps: BN_EPS,
        out: &y_eval,
    };
    ops::record_apply(gpu, &mut enc, &eval).unwrap();
    gpu.submit(enc).unwrap();

    let atol = f32_reduction_atol(shape.pixels());
    let (mean, var) = (&want.stats.mean[..], &want.stats.var[..]);
    check_pair(gpu, &stats, [mean, var], atol, &format!("stats {ctx}"));
    check_pair(
        gpu,
        &stats_only,
        [mean, var],
        atol,
        &format!("stats alone {ctx}"),
    );
    check_pair(
        gpu,
        &running_gpu,
        [&running.mean, &running.var],
        atol,
        &format!("running {ctx}"),
    );
    let (dg, db) = (&grads.dgamma[..], &grads.dbeta[..]);
    check_pair(gpu, &grads_gpu, [dg, db], atol, &format!("[dγ | dβ] {ctx}"));
    let got = read_tensor(gpu, &y, &ctx);
    assert_close(&got, &want.y, atol, F32_RTOL, &format!("y {ctx}"));
    let got = read_tensor(gpu, &y_eval, &ctx);
    assert_close(&got, &want_eval, atol, F32_RTOL, &format!("eval y {ctx}"));
    let got = read_tensor(gpu, &dx, &ctx);
    assert_close(&got, &grads.dx, atol, F32_RTOL, &format!("dx {ctx}"));
}

#[test]
fn batchnorm_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x00b7_069a);
    // 1×1 spatial (2 values per channel), c not a multiple of 4, c4 not a multiple of the
    // workgroup's channel words (37, 33), several chunks (4884 and 9216 pixels, more chunks than
    // merge rows), an offset mean.
    let cases = [
        ((2, 1, 1, 5), 0.0),
        ((1, 2, 3, 1), 0.0),
        ((2, 3, 5, 7), 0.0),
        ((3, 7, 9, 4), 0.0),
        ((4, 5, 3, 13), 0.0),
        ((5, 2, 2, 9), 0.0),
        ((8, 9, 9, 16), 0.0),
        ((2, 16, 16, 37), 0.0),
        ((3, 10, 10, 6), 8.0),
        ((4, 33, 37, 5), 0.5),
        ((2, 64, 72, 33), 0.0),
    ];
    for ((n, h, w, c), offset) in cases {
        check_batchnorm(gpu, &mut rng, Shape::new(n, h, w, c), offset);
    }
}

#[test]
fn batchnorm_rejects_bad_inputs() {
    let s = Shape::new(2, 2, 2, 3);
    let x = vec![0.5; s.len()];
    let one = Shape::new(1, 1, 1, 3);
    let (g, b) = (vec![1.0; 3], vec![0.0; 3]);
    assert!(batchnorm_train(&x[..3], one, &g, &b, BN_EPS).is_err()); // one value per channel
    assert!(batchnorm_train(&x[1..], s, &g, &b, BN_EPS).is_err());
    assert!(batchnorm_train(&x, s, &g[..2], &b, BN_EPS).is_err());
    assert!(batchnorm_train(&x, s, &g, &b, 0.0).is_err());
    assert!(batchnorm_backward(&x, &x, s, &g, &g, &g[..1]).is_err());
    let single = batch_stats(&x[..3], one).unwrap();
    assert!(RunningStats::new(3).update(&single, BN_MOMENTUM).is_err());
    let stats = batch_stats(&x, s).unwrap();
    assert!(RunningStats::new(3).update(&stats, 1.5).is_err());
    assert!(RunningStats::new(4).update(&stats, BN_MOMENTUM).is_err());

    let Some(gpu) = gpu_or_skip() else { return };
    let xt = GpuF32Tensor::upload(gpu, s, &x).unwrap();
    let x1 = GpuF32Tensor::upload(gpu, one, &x[..3]).unwrap();
    let out = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let wrong = GpuF32Tensor::alloc_filled(gpu, Shape::new(2, 2, 3, 3), 0.0).unwrap();
    let pair = |c| GpuChannelPair::alloc_filled(gpu, c, 0.0).unwrap();
    let (stats, running, affine, grads, four) = (pair(3), pair(3), pair(3), pair(3), pair(4));
    let mut enc = gpu.encoder();
    let train = |enc: &mut f8net::gpu::Encoder, x, stats, running, out, eps| {
        let t = BatchNormTrain {
            x,
            affine: &affine,
            eps,
            momentum: BN_MOMENTUM,
            stats,
            running,
            out,
        };
        ops::record_train(gpu, enc, &t).unwrap_err().to_string()
    };
    let err = train(&mut enc, &x1, &stats, Some(&running), &out, BN_EPS);
    assert!(
        err.contains("batchnorm_train") && err.contains("needs 2"),
        "{err}"
    );
    let err = train(&mut enc, &xt, &four, Some(&running), &out, BN_EPS);
    assert!(err.contains("stats has 4 channels"), "{err}");
    let err = train(&mut enc, &xt, &stats, Some(&stats), &out, BN_EPS);
    assert!(err.contains("same buffer"), "{err}");
    let err = train(&mut enc, &xt, &stats, None, &wrong, BN_EPS);
    assert!(err.contains("[2, 2, 3, 3]"), "{err}");
    let err = train(&mut enc, &xt, &stats, None, &xt, BN_EPS);
    assert!(err.contains("same buffer"), "{err}");
    let err = train(&mut enc, &xt, &stats, None, &out, f32::NAN);
    assert!(err.contains("eps"), "{err}");
    let bad_momentum = BatchStats {
        x: &xt,
        stats: &stats,
        running: Some(&running),
        momentum: -0.1,
    };
    let err = ops::record_stats(gpu, &mut enc, &bad_momentum)
        .unwrap_err()
        .to_string();
    assert!(err.contains("momentum"), "{err}");
    let apply = BatchNormApply {
        x: &xt,
        stats: &stats,
        affine: &four,
        eps: BN_EPS,
        out: &out,
    };
    let err = ops::record_apply(gpu, &mut enc, &apply)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batchnorm_apply") && err.contains("affine"),
        "{err}"
    );
    let bwd = |enc: &mut f8net::gpu::Encoder, dy, grads, dx| {
        let b = BatchNormBackward {
            dy,
            x: &xt,
            stats: &stats,
            affine: &affine,
            eps: BN_EPS,
            grads,
            dx,
        };
        ops::record_backward(gpu, enc, &b).unwrap_err().to_string()
    };
    let err = bwd(&mut enc, &wrong, &grads, &out);
    assert!(
        err.contains("batchnorm_backward") && err.contains("dy is [2, 2, 3, 3]"),
        "{err}"
    );
    let dxt = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let err = bwd(&mut enc, &out, &stats, &dxt);
    assert!(err.contains("grads and stats are the same buffer"), "{err}");
    let err = bwd(&mut enc, &out, &grads, &xt);
    assert!(err.contains("dx and x are the same buffer"), "{err}");
    assert_eq!(enc.dispatch_count(), 0);
    assert!(GpuChannelPair::upload(gpu, &[1.0; 3], &[1.0; 2]).is_err());
}
