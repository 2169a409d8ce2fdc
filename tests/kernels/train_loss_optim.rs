//! Training ops on the GPU against their CPU references (`reference.rs` tests those against
//! hand-computed values, finite differences and the F8NET.md §12 vectors): fake quantization and
//! its backward bit for bit for every FL (masks included, T4), softmax cross-entropy, SGD over
//! several steps and tensor statistics within the named f32 tolerances; bad shapes give `Err`.

mod reference;

use crate::common::*;
use f8net::fixed::{Format, Signedness};
use f8net::gpu::{Gpu, GpuBuffer};
use f8net::ops::fake_quant::{
    self as fq_ops, F32Rows, FakeQuant, FakeQuantBackward, TensorStats, STATS_OUT_LEN,
};
use f8net::ops::loss::{self as loss_ops, SoftmaxCrossEntropy};
use f8net::ops::optim::{self as optim_ops, SgdStep};
use f8net::reference::fake_quant::{
    fix_quant, fix_quant_backward, fix_quant_floating, tensor_stats, TensorStatistics,
};
use f8net::reference::loss::softmax_cross_entropy;
use f8net::reference::optim::{sgd_step, SgdHyper};
use f8net::tensor::{pad_channels, unpad_channels, GpuF32Tensor, Shape};

fn all_formats() -> Vec<Format> {
    let unsigned = (0..=8).map(|fl| Format::unsigned(fl).unwrap());
    unsigned
        .chain((0..=7).map(|fl| Format::signed(fl).unwrap()))
        .collect()
}

fn bits(v: &[f32]) -> Vec<i32> {
    v.iter().map(|f| f.to_bits() as i32).collect()
}

fn run_loss(gpu: &Gpu, n: usize, k: usize, rng: &mut Rng) {
    let logits: Vec<f32> = (0..n * k).map(|_| rng.f32() * 6.0).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.int(0, k as i32 - 1) as u32).collect();
    let want = softmax_cross_entropy(&logits, n, k, &labels).unwrap();
    let shape = Shape::matrix(n, k);
    let x = GpuF32Tensor::upload(gpu, shape, &logits).unwrap();
    let d = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
    let lab = gpu.upload(&labels).unwrap();
    let partials = gpu
        .alloc_filled(loss_ops::partials_len(n), POISON_F32)
        .unwrap();
    let mut enc = gpu.encoder();
    let args = SoftmaxCrossEntropy {
        logits: &x,
        labels: &lab,
        dlogits: &d,
        partials: &partials,
    };
    loss_ops::record(gpu, &mut enc, &args).unwrap();
    gpu.submit(enc).unwrap();
    let ctx = format!("loss n {n} k {k}");
    let loss = loss_ops::read_loss(gpu, &partials, n).unwrap();
    assert_close(&[loss], &[want.loss], F32_ATOL, F32_RTOL, &ctx);
    let raw = gpu.read(&d.data).unwrap();
    let cp = shape.c_padded();
    assert!(
        raw.iter().enumerate().all(|(i, &v)| i % cp < k || v == 0.0),
        "{ctx}: padding lanes not 0"
    );
    // dlogits carry the 1/n factor: the absolute tolerance scales with it.
    let atol = F32_ATOL / n as f32;
    assert_close(
        &unpad_channels(&raw, k),
        &want.dlogits,
        atol,
        F32_RTOL,
        &ctx,
    );
}

#[test]
fn train_loss_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x5ce);
    for (n, k) in [
        (1, 1),
        (1, 2),
        (3, 10),
        (7, 5),
        (64, 10),
        (130, 10),
        (257, 3),
        (33, 1000),
    ] {
        run_loss(gpu, n, k, &mut rng);
    }
}

#[test]
fn train_loss_gpu_rejects_bad_labels_and_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::matrix(3, 4);
    let x = GpuF32Tensor::upload(gpu, shape, &[0.5; 12]).unwrap();
    let d = GpuF32Tensor::alloc_filled(gpu, shape, 0.0).unwrap();
    let partials = gpu.alloc_filled(loss_ops::partials_len(3), 0.0).unwrap();
    let bad = gpu.upload(&[0u32, 4, 1]).unwrap();
    let mut enc = gpu.encoder();
    let a = SoftmaxCrossEntropy {
        logits: &x,
        labels: &bad,
        dlogits: &d,
        partials: &partials,
    };
    loss_ops::record(gpu, &mut enc, &a).unwrap();
    gpu.submit(enc).unwrap();
    let e = loss_ops::read_loss(gpu, &partials, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("softmax_cross_entropy") && e.contains("out of range"),
        "{e}"
    );
    let mut enc = gpu.encoder();
    let short = gpu.upload(&[0u32, 1]).unwrap();
    let e = loss_ops::record(
        gpu,
        &mut enc,
        &SoftmaxCrossEntropy {
            labels: &short,
            ..a
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("2 labels"), "{e}");
    let other = GpuF32Tensor::alloc_filled(gpu, Shape::matrix(3, 5), 0.0).unwrap();
    assert!(loss_ops::record(
        gpu,
        &mut enc,
        &SoftmaxCrossEntropy {
            dlogits: &other,
            ..a
        }
    )
    .is_err());
    let image = GpuF32Tensor::alloc_filled(gpu, Shape::new(3, 2, 1, 4), 0.0).unwrap();
    assert!(loss_ops::record(
        gpu,
        &mut enc,
        &SoftmaxCrossEntropy {
            logits: &image,
            ..a
        }
    )
    .is_err());
    let wrong = gpu.alloc_filled(1, 0.0f32).unwrap();
    assert!(loss_ops::record(
        gpu,
        &mut enc,
        &SoftmaxCrossEntropy {
            partials: &wrong,
            ..a
        }
    )
    .is_err());
}

#[test]
fn train_loss_optim_gpu_sgd_matches_reference_over_steps() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x56d);
    for (len, wd, nesterov) in [
        (1, 0.0, true),
        (255, 4e-5, true),
        (1000, 1e-2, false),
        (70_001, 1e-4, true),
    ] {
        let mut w: Vec<f32> = (0..len).map(|_| rng.f32()).collect();
        let mut buf = vec![0.0f32; len];
        let (gw, gb) = (
            gpu.upload(&w).unwrap(),
            gpu.alloc_filled(len, POISON_F32).unwrap(),
        );
        for step in 0..4 {
            let grad: Vec<f32> = (0..len).map(|_| rng.f32() * 0.5).collect();
            let h = SgdHyper {
                lr: 0.1 / (step + 1) as f32,
                momentum: 0.9,
                weight_decay: wd,
                nesterov,
            };
            sgd_step(&mut w, &grad, &mut buf, step == 0, &h).unwrap();
            let gg = gpu.upload(&grad).unwrap();
            let mut enc = gpu.encoder();
            let s = SgdStep {
                w: &gw,
                grad: &gg,
                buf: &gb,
                first: step == 0,
                hyper: h,
            };
            optim_ops::record(gpu, &mut enc, &s).unwrap();
            gpu.submit(enc).unwrap();
            let ctx = format!("sgd len {len} step {step}");
            assert_close(&gpu.read(&gb).unwrap(), &buf, F32_ATOL, F32_RTOL, &ctx);
            assert_close(&gpu.read(&gw).unwrap(), &w, F32_ATOL, F32_RTOL, &ctx);
        }
    }
    let (a, b) = (
        gpu.upload(&[0.0f32; 3]).unwrap(),
        gpu.upload(&[0.0f32; 4]).unwrap(),
    );
    let mut enc = gpu.encoder();
    let h = SgdHyper::f8net(0.1, 0.0);
    let s = SgdStep {
        w: &a,
        grad: &b,
        buf: &a,
        first: true,
        hyper: h,
    };
    let e = optim_ops::record(gpu, &mut enc, &s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sgd_step"), "{e}");
    let nan = SgdHyper::f8net(f32::NAN, 0.0);
    let s = SgdStep {
        w: &a,
        grad: &a,
        buf: &a,
        first: true,
        hyper: nan,
    };
    assert!(optim_ops::record(gpu, &mut enc, &s).is_err());
}

/// Values hitting every rounding tie, both clamps and the specials of `format`.
fn sweep(format: Format, rng: &mut Rng) -> Vec<f32> {
    let step = format.step();
    let mut x = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.3,
        5.0,
        -0.2,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        255.5,
        -127.5,
    ];
    x.extend((-140..=270).map(|k| (k as f32 + 0.5) * step));
    x.extend((-140..=270).map(|k| k as f32 * step));
    x.extend((0..300).map(|_| rng.f32() * 300.0 * step));
    x
}

fn rows_of(x: &[f32], c: usize) -> (usize, Vec<f32>) {
    let rows = x.len().div_ceil(c);
    let mut v = x.to_vec();
    v.resize(rows * c, 0.0);
    (rows, v)
}

#[test]
fn train_loss_fake_quant_gpu_bit_exact_every_fl() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xf9a);
    for (i, format) in all_formats().into_iter().enumerate() {
        for floating in [false, true] {
            let c = [1, 3, 4, 5, 7][i % 5];
            let (rows, x) = rows_of(&sweep(format, &mut rng), c);
            let want = if floating {
                fix_quant_floating(&x, format).unwrap()
            } else {
                fix_quant(&x, format).unwrap()
            };
            // Two spare rows of padding in every buffer (like padded output channels) stay put.
            let mut padded = pad_channels(&x, c);
            padded.resize(padded.len() + 2 * c.div_ceil(4) * 4, 9.0);
            let xg = gpu.upload(&padded).unwrap();
            let out = gpu.alloc_filled(padded.len(), POISON_F32).unwrap();
            let mask = gpu
                .alloc_filled(fq_ops::mask_len(rows + 2, c), POISON_U32)
                .unwrap();
            let xr = F32Rows { data: &xg, rows, c };
            let mut enc = gpu.encoder();
            let a = FakeQuant {
                x: xr,
                format,
                floating,
                out: &out,
                mask: &mask,
            };
            fq_ops::record_fake_quant(gpu, &mut enc, &a).unwrap();
            // Backward of a random gradient through the GPU mask.
            let g: Vec<f32> = (0..x.len()).map(|_| rng.f32()).collect();
            let mut gp = pad_channels(&g, c);
            gp.resize(padded.len(), 1.0);
            let gg = gpu.upload(&gp).unwrap();
            let gi = gpu.alloc_filled(padded.len(), POISON_F32).unwrap();
            let b = FakeQuantBackward {
                grad_out: F32Rows { data: &gg, rows, c },
                mask: &mask,
                grad_in: &gi,
            };
            fq_ops::record_fake_quant_backward(gpu, &mut enc, &b).unwrap();
            gpu.submit(enc).unwrap();
            let ctx = format!("{format:?} floating {floating} c {c}");
            let words = fq_ops::mask_len(rows, c);
            let got_mask = gpu.read(&mask).unwrap();
            assert!(
                got_mask[words..].iter().all(|&w| w == POISON_U32),
                "{ctx}: spare rows"
            );
            let m = fq_ops::unpack_mask(&got_mask[..words], c);
            let as_i = |v: &[bool]| v.iter().map(|&b| b as i32).collect::<Vec<_>>();
            assert_exact(&as_i(&m), &as_i(&want.mask), &format!("{ctx}: mask"));
            let raw = gpu.read(&out).unwrap();
            let vals = unpad_channels(&raw[..words * 4], c);
            assert!(
                raw[words * 4..].iter().all(|v| v.is_nan()),
                "{ctx}: spare rows"
            );
            assert!(
                raw[..words * 4]
                    .iter()
                    .enumerate()
                    .all(|(j, &v)| j % (c.div_ceil(4) * 4) < c || v == 0.0),
                "{ctx}: padding lanes"
            );
            // Floating mode: NaN stays NaN (any payload) and the sign of a clamped zero is free;
            // everything else bit for bit.
            let norm = |v: &[f32]| -> Vec<i32> {
                let canon = |f: f32| match () {
                    _ if f.is_nan() => f32::NAN,
                    _ if floating && f == 0.0 => 0.0,
                    _ => f,
                };
                bits(&v.iter().map(|&f| canon(f)).collect::<Vec<_>>())
            };
            assert_exact(&norm(&vals), &norm(&want.values), &format!("{ctx}: values"));
            let want_g = fix_quant_backward(&g, &want.mask).unwrap();
            let got_g = unpad_channels(&gpu.read(&gi).unwrap()[..words * 4], c);
            assert_exact(&bits(&got_g), &bits(&want_g), &format!("{ctx}: backward"));
        }
    }
}

#[test]
fn train_loss_fake_quant_gpu_t4_and_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::matrix(1, 4);
    let x = GpuF32Tensor::upload(gpu, shape, &[0.004, 0.01, 3.97, 3.98]).unwrap();
    let out = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
    let mask = gpu.alloc_filled(1, POISON_U32).unwrap();
    let mut enc = gpu.encoder();
    let a = FakeQuant {
        x: F32Rows::tensor(&x),
        format: Format::unsigned(6).unwrap(),
        floating: false,
        out: &out.data,
        mask: &mask,
    };
    fq_ops::record_fake_quant(gpu, &mut enc, &a).unwrap();
    gpu.submit(enc).unwrap();
    assert_eq!(
        fq_ops::unpack_mask(&gpu.read(&mask).unwrap(), 4),
        vec![false, true, true, false]
    );
    let mut enc = gpu.encoder();
    let bad = Format {
        signedness: Signedness::Signed,
        fl: 8,
    };
    let e = fq_ops::record_fake_quant(gpu, &mut enc, &FakeQuant { format: bad, ..a })
        .unwrap_err()
        .to_string();
    assert!(e.contains("fake_quant") && e.contains('8'), "{e}");
    let small: GpuBuffer<f32> = gpu.alloc(3).unwrap();
    let e = fq_ops::record_fake_quant(gpu, &mut enc, &FakeQuant { out: &small, ..a })
        .unwrap_err()
        .to_string();
    assert!(e.contains("fake_quant") && e.contains("output"), "{e}");
    let empty = F32Rows {
        data: &x.data,
        rows: 0,
        c: 4,
    };
    assert!(fq_ops::record_fake_quant(gpu, &mut enc, &FakeQuant { x: empty, ..a }).is_err());
    let short_mask: GpuBuffer<u32> = gpu.alloc(0).unwrap();
    let b = FakeQuantBackward {
        grad_out: F32Rows::tensor(&x),
        mask: &short_mask,
        grad_in: &out.data,
    };
    assert!(fq_ops::record_fake_quant_backward(gpu, &mut enc, &b).is_err());
    let partials = gpu.alloc(1).unwrap();
    let o = gpu.alloc(STATS_OUT_LEN).unwrap();
    let s = TensorStats {
        x: F32Rows::tensor(&x),
        partials: &partials,
        out: &o,
    };
    assert!(fq_ops::record_tensor_stats(gpu, &mut enc, &s).is_err());
}

fn gpu_stats(gpu: &Gpu, x: &[f32], c: usize) -> (Vec<f32>, TensorStatistics) {
    let (rows, x) = rows_of(x, c);
    let xg = gpu.upload(&pad_channels(&x, c)).unwrap();
    let partials = gpu
        .alloc_filled(fq_ops::stats_partials_len(rows, c), POISON_F32)
        .unwrap();
    let out = gpu.alloc_filled(STATS_OUT_LEN, POISON_F32).unwrap();
    let mut enc = gpu.encoder();
    let a = TensorStats {
        x: F32Rows { data: &xg, rows, c },
        partials: &partials,
        out: &out,
    };
    fq_ops::record_tensor_stats(gpu, &mut enc, &a).unwrap();
    gpu.submit(enc).unwrap();
    let raw = gpu.read(&out).unwrap();
    (raw.clone(), fq_ops::decode_stats(&raw, rows * c).unwrap())
}

#[test]
fn train_loss_tensor_stats_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x5747);
    // Sizes from one word to past 256 workgroups × 256 words (grid-stride loop); an offset
    // mean (cancellation) and odd channel counts (padding lanes ignored).
    for (len, c, offset, spread) in [
        (1usize, 1usize, 0.0f32, 1.0f32),
        (6, 3, 0.5, 1.0),
        (1000, 5, 100.0, 0.01),
        (4096, 4, -3.0, 2.0),
        (70_000, 7, 0.0, 1e-3),
        (300_000, 3, 50.0, 0.2),
    ] {
        let x: Vec<f32> = (0..len).map(|_| offset + spread * rng.f32()).collect();
        let want = tensor_stats(&x);
        let (raw, got) = gpu_stats(gpu, &x, c);
        let ctx = format!("stats len {len} c {c}");
        assert_eq!((got.min, got.max), (want.min, want.max), "{ctx}: min/max");
        let tol = |v: f64| F32_ATOL as f64 * spread as f64 + F32_RTOL as f64 * v.abs();
        assert!(
            (got.mean - want.mean).abs() <= tol(want.mean),
            "{ctx}: mean {} vs {}",
            got.mean,
            want.mean
        );
        assert!(
            (got.std - want.std).abs() <= tol(want.std),
            "{ctx}: std {} vs {}",
            got.std,
            want.std
        );
        assert!(
            (got.sum - want.sum).abs() <= 1e-4 * want.sum.abs().max(len as f64 * spread as f64),
            "{ctx}: sum"
        );
        assert_eq!(
            got.fl(Signedness::Unsigned),
            want.fl(Signedness::Unsigned),
            "{ctx}: FL"
        );
        // Deterministic: the same bits on a second run.
        assert_exact(
            &bits(&gpu_stats(gpu, &x, c).0),
            &bits(&raw),
            &format!("{ctx}: rerun"),
        );
    }
}
