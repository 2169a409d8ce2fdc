//! Residual addition (`shaders/residual.wgsl`) against `reference::residual`, bit for bit.

use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::residual::{self, Activation, ResidualAdd};
use f8net::reference::residual::residual_add as residual_ref;
use f8net::tensor::{GpuI32Tensor, Shape};

/// One residual problem.
#[derive(Debug)]
struct ResProblem {
    shape: Shape,
    fl_a: i32,
    fl_b: i32,
    a: Vec<i32>,
    b: Vec<i32>,
    act: Activation,
}

/// int32 values of mixed magnitude, with about 1 in 8 at ±(2^31 − 1) or i32::MIN.
fn stream(rng: &mut Rng, len: usize) -> Vec<i32> {
    (0..len)
        .map(|_| match rng.next_u64() % 24 {
            0 => i32::MAX,
            1 => -i32::MAX,
            2 => i32::MIN,
            3..=8 => rng.int(-(1 << 30), 1 << 30),
            9..=16 => rng.int(-(1 << 16), 1 << 16),
            _ => rng.int(-300, 300),
        })
        .collect()
}

impl ResProblem {
    fn random(rng: &mut Rng, shape: Shape, fl_a: i32, fl_b: i32) -> ResProblem {
        let act = if rng.int(0, 1) == 0 {
            Activation::Identity
        } else {
            Activation::Relu
        };
        ResProblem {
            shape,
            fl_a,
            fl_b,
            a: stream(rng, shape.len()),
            b: stream(rng, shape.len()),
            act,
        }
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let (want, fl) = residual_ref(&self.a, self.fl_a, &self.b, self.fl_b, self.act).unwrap();
        let a = GpuI32Tensor::upload(gpu, self.shape, self.fl_a, &self.a).unwrap();
        let b = GpuI32Tensor::upload(gpu, self.shape, self.fl_b, &self.b).unwrap();
        let out = GpuI32Tensor::alloc_filled(gpu, self.shape, fl, POISON_I32).unwrap();
        let mut enc = gpu.encoder();
        let r = ResidualAdd {
            a: &a,
            b: &b,
            activation: self.act,
            out: &out,
        };
        residual::record(gpu, &mut enc, &r).unwrap();
        gpu.submit(enc).unwrap();
        let cp = self.shape.c_padded();
        for (i, &v) in out.download_padded(gpu).unwrap().iter().enumerate() {
            assert!(
                i % cp < self.shape.c || v == 0,
                "{label}: padding value {i} is {v}"
            );
        }
        let ctx = format!(
            "{label}: {} fl_a={} fl_b={} {:?}",
            self.shape, self.fl_a, self.fl_b, self.act
        );
        assert_exact(&out.download(gpu).unwrap(), &want, &ctx);
    }
}

#[test]
fn residual_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x7e5);
    let named = [
        ("1 element", Shape::new(1, 1, 1, 1), 13, 11),
        ("equal FLs, c = 5", Shape::new(1, 3, 3, 5), 9, 9),
        ("b has the larger FL, c = 7", Shape::new(2, 2, 3, 7), 4, 12),
        ("a has the larger FL", Shape::new(1, 4, 4, 8), 20, 3),
        ("FL difference 31 (largest)", Shape::new(1, 2, 2, 6), 0, 31),
        (
            "several workgroups, batch 2",
            Shape::new(2, 17, 19, 37),
            14,
            13,
        ),
    ];
    for (label, shape, fl_a, fl_b) in named {
        for act in [Activation::Identity, Activation::Relu] {
            let p = ResProblem {
                act,
                ..ResProblem::random(&mut rng, shape, fl_a, fl_b)
            };
            p.check(gpu, label);
        }
    }
    for case in 0..20 {
        let shape = Shape::new(
            rng.usize(1, 3),
            rng.usize(1, 12),
            rng.usize(1, 12),
            rng.usize(1, 50),
        );
        let (fl_a, fl_b) = (rng.int(0, 24), rng.int(0, 24));
        ResProblem::random(&mut rng, shape, fl_a, fl_b).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn residual_saturates_and_aligns_like_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(1, 1, 2, 7);
    let m = i32::MAX;
    // F8NET.md T7: 12345 @ FL 13 + (−4000 @ FL 11) = −3655 @ FL 13; then sums at the edges.
    let a = vec![
        12345,
        m,
        -m,
        m,
        i32::MIN,
        1 << 20,
        -(1 << 20),
        5,
        -5,
        m - 3,
        0,
        2,
        -2,
        7,
    ];
    let b = vec![
        -4000,
        1,
        -1,
        m,
        i32::MIN,
        1 << 20,
        -(1 << 20),
        -m,
        m,
        1,
        1 << 29,
        -(1 << 29),
        3,
        -3,
    ];
    for (fl_a, fl_b) in [(13, 11), (0, 0), (5, 2), (2, 5), (0, 31), (31, 0)] {
        for act in [Activation::Identity, Activation::Relu] {
            let p = ResProblem {
                shape,
                fl_a,
                fl_b,
                a: a.clone(),
                b: b.clone(),
                act,
            };
            p.check(gpu, "edges");
        }
    }
    let (t7, fl) = residual_ref(&[12345], 13, &[-4000], 11, Activation::Identity).unwrap();
    assert_eq!((t7[0], fl), (-3655, 13));
}

#[test]
fn residual_large_tensor_folds_the_grid() {
    let Some(gpu) = gpu_or_skip() else { return };
    // More than 65535 workgroups of 256 words: the dispatch is folded to 2-D by grid_1d.
    let shape = Shape::new(1, 4100, 4100, 4);
    if (shape.len() * 4) as u64 > gpu.max_binding_bytes() {
        eprintln!("skipped: a {shape} int32 tensor exceeds this device's binding limit");
        return;
    }
    let mut rng = Rng::new(0x7e6);
    ResProblem::random(&mut rng, shape, 7, 9).check(gpu, "folded grid");
}

#[test]
fn residual_rejects_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let s = Shape::new(1, 2, 2, 5);
    let t = |shape, fl| GpuI32Tensor::alloc_filled(gpu, shape, fl, 0).unwrap();
    let run = |a: &GpuI32Tensor, b: &GpuI32Tensor, out: &GpuI32Tensor| {
        let mut enc = gpu.encoder();
        residual::record(
            gpu,
            &mut enc,
            &ResidualAdd {
                a,
                b,
                activation: Activation::Relu,
                out,
            },
        )
        .map_err(|e| e.to_string())
    };
    assert!(run(&t(s, 3), &t(s, 5), &t(s, 5)).is_ok());
    let e = run(&t(s, 3), &t(Shape::new(1, 2, 2, 6), 5), &t(s, 5)).unwrap_err();
    assert!(
        e.contains("residual_add") && e.contains("[1, 2, 2, 6]"),
        "{e}"
    );
    let e = run(&t(s, 3), &t(s, 5), &t(s, 3)).unwrap_err();
    assert!(e.contains("residual_add") && e.contains("FL"), "{e}");
    let e = run(&t(s, 0), &t(s, 32), &t(s, 32)).unwrap_err();
    assert!(e.contains("residual_add") && e.contains("31"), "{e}");
    assert!(residual_ref(&[1, 2], 0, &[1], 0, Activation::Identity).is_err());
    assert!(residual_ref(&[1], -20, &[1], 20, Activation::Identity).is_err());
}
