//! f32 kernels (`shaders/gemm_f32.wgsl`, `conv_f32.wgsl`; `depthwise_f32.wgsl` in
//! `f32_depthwise.rs`) against their f64-accumulating CPU references, element-wise within `f32_reduction_atol(K)` and `F32_RTOL`.
//! Outputs are poisoned with NaN before each run; padding lanes must come back 0.

use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::conv_f32::{self, ConvF32};
use f8net::ops::gemm_f32::{self, F32Weights, GemmF32};
use f8net::reference::conv_f32::conv_f32 as conv_ref;
use f8net::reference::gemm_f32::{gemm_f32 as gemm_ref, Activation};
use f8net::reference::Window;
use f8net::tensor::{pad_channels, unpad_channels, GpuF32Tensor, Shape};

pub(super) fn random_activation(rng: &mut Rng) -> Activation {
    match rng.int(0, 2) {
        0 => Activation::None,
        1 => Activation::Relu,
        _ => Activation::Relu6,
    }
}

pub(super) fn values(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.f32()).collect()
}

/// Check the padding lanes of a padded NHWC readback are exactly 0, then drop them.
pub(super) fn unpad_checked(raw: &[f32], c: usize, ctx: &str) -> Vec<f32> {
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

/// A window with a k×k kernel: TF SAME when `same`, else symmetric padding `pad`.
pub(super) fn window(
    k: usize,
    stride: usize,
    same: bool,
    pad: usize,
    h: usize,
    w: usize,
) -> Window {
    if same {
        Window::same(k, stride, h, w)
    } else {
        Window::symmetric(k, stride, pad)
    }
}

// ---------------------------------------------------------------------------------------------
// gemm_f32

#[derive(Debug)]
struct GemmProblem {
    m: usize,
    n: usize,
    k: usize,
    act: Activation,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl GemmProblem {
    fn random(rng: &mut Rng, m: usize, n: usize, k: usize) -> GemmProblem {
        GemmProblem {
            m,
            n,
            k,
            act: random_activation(rng),
            x: values(rng, m * k),
            w: values(rng, n * k),
            bias: values(rng, n),
        }
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let ctx = format!(
            "{label}: m={} n={} k={} act={:?}",
            self.m, self.n, self.k, self.act
        );
        let want = gemm_ref(
            &self.x, &self.w, &self.bias, self.m, self.n, self.k, self.act,
        )
        .unwrap();
        let x = gpu.upload(&pad_channels(&self.x, self.k)).unwrap();
        let w = F32Weights::upload(gpu, &self.w, &self.bias, self.n, 1, 1, self.k).unwrap();
        let out = gpu
            .alloc_filled(self.m * self.n.div_ceil(4) * 4, POISON_F32)
            .unwrap();
        let mut enc = gpu.encoder();
        let g = GemmF32 {
            x: &x,
            m: self.m,
            weights: &w,
            activation: self.act,
            out: &out,
        };
        gemm_f32::record(gpu, &mut enc, &g).unwrap();
        gpu.submit(enc).unwrap();
        let got = unpad_checked(&gpu.read(&out).unwrap(), self.n, &ctx);
        assert_close(&got, &want, f32_reduction_atol(self.k), F32_RTOL, &ctx);
    }
}

#[test]
fn gemm_f32_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xf32_6e33);
    // 1×1, K and N not multiples of 4, K not a multiple of the 32-element slab, M and N across
    // the 64 tile, long K.
    let shapes = [
        (1, 1, 1),
        (1, 4, 4),
        (3, 5, 7),
        (64, 64, 32),
        (65, 63, 33),
        (130, 72, 200),
        (7, 130, 300),
        (200, 10, 1),
        (5, 9, 1500),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        GemmProblem::random(&mut rng, m, n, k).check(gpu, &format!("edge case {i}"));
    }
    for case in 0..15 {
        let (m, n, k) = (rng.usize(1, 150), rng.usize(1, 90), rng.usize(1, 160));
        GemmProblem::random(&mut rng, m, n, k).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn gemm_f32_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let w = F32Weights::upload(gpu, &[0.5; 8 * 12], &[0.0; 8], 8, 1, 1, 12).unwrap();
    let out = gpu.alloc::<f32>(5 * 8).unwrap();
    let x = gpu.upload(&[0f32; 5 * 8]).unwrap(); // padded k = 8, weights need 12
    let mut enc = gpu.encoder();
    let g = GemmF32 {
        x: &x,
        m: 5,
        weights: &w,
        activation: Activation::None,
        out: &out,
    };
    let err = gemm_f32::record(gpu, &mut enc, &g).unwrap_err().to_string();
    assert!(err.contains("gemm_f32") && err.contains("[5, 12]"), "{err}");
    let x = gpu.upload(&[0f32; 5 * 12]).unwrap();
    let short = gpu.alloc::<f32>(5 * 7).unwrap();
    let g = GemmF32 {
        x: &x,
        m: 5,
        weights: &w,
        activation: Activation::None,
        out: &short,
    };
    let err = gemm_f32::record(gpu, &mut enc, &g).unwrap_err().to_string();
    assert!(err.contains("gemm_f32") && err.contains("[5, 8]"), "{err}");
    let w3 = F32Weights::upload(gpu, &[0.5; 4 * 9 * 12], &[0.0; 4], 4, 3, 3, 12).unwrap();
    let g = GemmF32 {
        x: &x,
        m: 5,
        weights: &w3,
        activation: Activation::None,
        out: &out,
    };
    let err = gemm_f32::record(gpu, &mut enc, &g).unwrap_err().to_string();
    assert!(err.contains("gemm_f32") && err.contains("3x3"), "{err}");
    assert_eq!(enc.dispatch_count(), 0);
    // Weight and bias lengths are checked at upload.
    assert!(F32Weights::upload(gpu, &[0.5; 7], &[0.0; 1], 1, 1, 1, 8).is_err());
    assert!(F32Weights::upload(gpu, &[0.5; 8], &[0.0; 2], 1, 1, 1, 8).is_err());
    assert!(F32Weights::upload(gpu, &[], &[], 0, 1, 1, 8).is_err());
}

// ---------------------------------------------------------------------------------------------
// conv_f32

#[derive(Debug)]
struct ConvProblem {
    shape: Shape,
    cout: usize,
    win: Window,
    act: Activation,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl ConvProblem {
    fn random(rng: &mut Rng, shape: Shape, cout: usize, win: Window) -> ConvProblem {
        ConvProblem {
            shape,
            cout,
            win,
            act: random_activation(rng),
            x: values(rng, shape.len()),
            w: values(rng, cout * win.kh * win.kw * shape.c),
            bias: values(rng, cout),
        }
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let ctx = format!(
            "{label}: input {} cout={} {:?} act={:?}",
            self.shape, self.cout, self.win, self.act
        );
        let (os, want) = conv_ref(
            &self.x, self.shape, &self.w, &self.bias, self.cout, &self.win, self.act,
        )
        .unwrap();
        let input = GpuF32Tensor::upload(gpu, self.shape, &self.x).unwrap();
        let (kh, kw) = (self.win.kh, self.win.kw);
        let w =
            F32Weights::upload(gpu, &self.w, &self.bias, self.cout, kh, kw, self.shape.c).unwrap();
        assert_eq!(
            conv_f32::output_shape(self.shape, &w, &self.win).unwrap(),
            os,
            "{ctx}"
        );
        let out = GpuF32Tensor::alloc_filled(gpu, os, POISON_F32).unwrap();
        let mut enc = gpu.encoder();
        let c = ConvF32 {
            input: &input,
            weights: &w,
            window: self.win,
            activation: self.act,
            out: &out,
        };
        conv_f32::record(gpu, &mut enc, &c).unwrap();
        gpu.submit(enc).unwrap();
        let got = unpad_checked(&gpu.read(&out.data).unwrap(), self.cout, &ctx);
        let k = kh * kw * self.shape.c;
        assert_close(&got, &want, f32_reduction_atol(k), F32_RTOL, &ctx);
    }
}

#[test]
fn conv_f32_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xf32_c0de);
    let asym = Window {
        kh: 3,
        kw: 5,
        stride_h: 2,
        stride_w: 1,
        pad_top: 0,
        pad_left: 2,
        pad_bottom: 2,
        pad_right: 1,
    };
    let edges: [(&str, Shape, usize, Window); 11] = [
        (
            "1x1 spatial, 3x3 SAME",
            Shape::new(1, 1, 1, 8),
            12,
            Window::same(3, 1, 1, 1),
        ),
        (
            "RGB stem, odd 17x17 stride 2 SAME",
            Shape::new(1, 17, 17, 3),
            32,
            Window::same(3, 2, 17, 17),
        ),
        (
            "cin 5: K4 = 18 words, not a slab multiple",
            Shape::new(1, 6, 7, 5),
            7,
            Window::symmetric(3, 1, 1),
        ),
        (
            "batch 3, cout across the 64 tile",
            Shape::new(3, 9, 7, 6),
            70,
            Window::same(3, 1, 9, 7),
        ),
        (
            "pointwise via gemm_f32, batch 2",
            Shape::new(2, 5, 6, 13),
            30,
            Window::symmetric(1, 1, 0),
        ),
        (
            "1x1 stride 2 (implicit GEMM)",
            Shape::new(2, 7, 9, 10),
            9,
            Window::symmetric(1, 2, 0),
        ),
        (
            "asymmetric window and padding",
            Shape::new(2, 8, 9, 4),
            5,
            asym,
        ),
        (
            "7x7 pad 3",
            Shape::new(1, 10, 10, 4),
            8,
            Window::symmetric(7, 1, 3),
        ),
        (
            "M across the 64 tile, 5x5 stride 2 SAME",
            Shape::new(1, 18, 17, 3),
            65,
            Window::same(5, 2, 18, 17),
        ),
        (
            "kernel larger than the image",
            Shape::new(1, 2, 2, 3),
            4,
            Window::symmetric(5, 1, 2),
        ),
        (
            "1x1 spatial output, valid 3x3 on 3x3",
            Shape::new(4, 3, 3, 17),
            3,
            Window::symmetric(3, 1, 0),
        ),
    ];
    for (label, shape, cout, win) in edges {
        ConvProblem::random(&mut rng, shape, cout, win).check(gpu, label);
    }
    for case in 0..15 {
        let k = [1, 3, 5][rng.usize(0, 2)];
        let stride = rng.usize(1, 2);
        let (h, w) = (rng.usize(1, 14), rng.usize(1, 14));
        let same = rng.int(0, 1) == 1;
        let win = window(k, stride, same, k / 2, h, w);
        let shape = Shape::new(rng.usize(1, 2), h, w, rng.usize(1, 24));
        let cout = rng.usize(1, 48);
        ConvProblem::random(&mut rng, shape, cout, win).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn conv_f32_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(1, 6, 6, 5);
    let input = GpuF32Tensor::upload(gpu, shape, &vec![0.0; shape.len()]).unwrap();
    let w = F32Weights::upload(gpu, &vec![0.5; 8 * 9 * 5], &[0.0; 8], 8, 3, 3, 5).unwrap();
    let win = Window::symmetric(3, 1, 1);
    let good = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 6, 6, 8), 0.0).unwrap();
    let mut enc = gpu.encoder();
    let record = |enc: &mut f8net::gpu::Encoder, input, window, out| {
        let c = ConvF32 {
            input,
            weights: &w,
            window,
            activation: Activation::Relu,
            out,
        };
        conv_f32::record(gpu, enc, &c).unwrap_err().to_string()
    };
    // Output shape that the window does not produce.
    let bad_out = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 4, 4, 8), 0.0).unwrap();
    let err = record(&mut enc, &input, win, &bad_out);
    assert!(
        err.contains("conv_f32") && err.contains("[1, 6, 6, 8]"),
        "{err}"
    );
    // Input channels that the weights do not take.
    let other = Shape::new(1, 6, 6, 4);
    let wrong_c = GpuF32Tensor::upload(gpu, other, &vec![0.0; other.len()]).unwrap();
    let err = record(&mut enc, &wrong_c, win, &good);
    assert!(
        err.contains("conv_f32") && err.contains("channels"),
        "{err}"
    );
    // Window kernel that is not the weights' kernel.
    let err = record(&mut enc, &input, Window::symmetric(5, 1, 2), &good);
    assert!(err.contains("conv_f32") && err.contains("5x5"), "{err}");
    // Kernel that does not fit the padded input.
    let tiny = Shape::new(1, 1, 1, 5);
    let tiny_in = GpuF32Tensor::upload(gpu, tiny, &[0.0; 5]).unwrap();
    let err = record(&mut enc, &tiny_in, Window::symmetric(3, 1, 0), &good);
    assert!(
        err.contains("conv_f32") && err.contains("does not fit"),
        "{err}"
    );
    // A tensor whose buffer does not hold its shape.
    let lying = GpuF32Tensor {
        shape: Shape::new(1, 6, 6, 8),
        data: gpu.alloc(10).unwrap(),
    };
    let err = record(&mut enc, &input, win, &lying);
    assert!(
        err.contains("conv_f32") && err.contains("output buffer"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
}
