//! The f32 depthwise kernel (`shaders/depthwise_f32.wgsl`) against its f64-accumulating CPU
//! reference, element-wise within `f32_reduction_atol(K)` and `F32_RTOL`; outputs poisoned with
//! NaN before each run, padding lanes must come back 0. Helpers: `f32_kernels.rs`.

use super::f32_kernels::{random_activation, unpad_checked, values, window};
use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::depthwise_f32::{self, DepthwiseF32, F32DepthwiseWeights};
use f8net::reference::depthwise_f32::depthwise_f32 as depthwise_ref;
use f8net::reference::gemm_f32::Activation;
use f8net::reference::Window;
use f8net::tensor::{GpuF32Tensor, Shape};

#[derive(Debug)]
struct DepthwiseProblem {
    shape: Shape,
    win: Window,
    act: Activation,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl DepthwiseProblem {
    fn random(rng: &mut Rng, shape: Shape, win: Window) -> DepthwiseProblem {
        // Scaled up so Relu6 clamps some outputs of short reductions too.
        let scale = 4.0;
        DepthwiseProblem {
            shape,
            win,
            act: random_activation(rng),
            x: values(rng, shape.len()).iter().map(|v| v * scale).collect(),
            w: values(rng, shape.c * win.kh * win.kw),
            bias: values(rng, shape.c),
        }
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let ctx = format!(
            "{label}: input {} {:?} act={:?}",
            self.shape, self.win, self.act
        );
        let (os, want) = depthwise_ref(
            &self.x, self.shape, &self.w, &self.bias, &self.win, self.act,
        )
        .unwrap();
        let input = GpuF32Tensor::upload(gpu, self.shape, &self.x).unwrap();
        let (c, kh, kw) = (self.shape.c, self.win.kh, self.win.kw);
        let w = F32DepthwiseWeights::upload(gpu, &self.w, &self.bias, c, kh, kw).unwrap();
        assert_eq!(
            depthwise_f32::output_shape(self.shape, &w, &self.win).unwrap(),
            os,
            "{ctx}"
        );
        let out = GpuF32Tensor::alloc_filled(gpu, os, POISON_F32).unwrap();
        let mut enc = gpu.encoder();
        let d = DepthwiseF32 {
            input: &input,
            weights: &w,
            window: self.win,
            activation: self.act,
            out: &out,
        };
        depthwise_f32::record(gpu, &mut enc, &d).unwrap();
        gpu.submit(enc).unwrap();
        let got = unpad_checked(&gpu.read(&out.data).unwrap(), c, &ctx);
        assert_close(&got, &want, f32_reduction_atol(kh * kw), F32_RTOL, &ctx);
    }
}

#[test]
fn depthwise_f32_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xf32_00d3);
    let asym = Window {
        kh: 3,
        kw: 5,
        stride_h: 1,
        stride_w: 2,
        pad_top: 2,
        pad_left: 1,
        pad_bottom: 0,
        pad_right: 2,
    };
    let edges: [(&str, Shape, Window); 10] = [
        (
            "1x1 spatial, 3x3 SAME",
            Shape::new(1, 1, 1, 8),
            Window::same(3, 1, 1, 1),
        ),
        (
            "c = 6, odd 15x15, 5x5 stride 2 SAME",
            Shape::new(1, 15, 15, 6),
            Window::same(5, 2, 15, 15),
        ),
        (
            "batch 3, c = 9, tiles across 16",
            Shape::new(3, 20, 19, 9),
            Window::same(3, 1, 20, 19),
        ),
        (
            "33x35 3x3 stride 2 SAME",
            Shape::new(1, 33, 35, 4),
            Window::same(3, 2, 33, 35),
        ),
        (
            "asymmetric window and padding",
            Shape::new(2, 9, 11, 5),
            asym,
        ),
        (
            "9x9 stride 3: tile shrinks to 10",
            Shape::new(1, 40, 40, 3),
            Window::same(9, 3, 40, 40),
        ),
        (
            "30x30 kernel: tile shrinks to 3",
            Shape::new(1, 32, 32, 2),
            Window::symmetric(30, 1, 0),
        ),
        ("c = 1", Shape::new(2, 7, 7, 1), Window::symmetric(3, 1, 1)),
        (
            "kernel larger than the image",
            Shape::new(1, 2, 3, 5),
            Window::symmetric(5, 1, 2),
        ),
        (
            "7x7 output (last EfficientNet stage)",
            Shape::new(1, 7, 7, 20),
            Window::same(5, 1, 7, 7),
        ),
    ];
    for (label, shape, win) in edges {
        DepthwiseProblem::random(&mut rng, shape, win).check(gpu, label);
    }
    for case in 0..15 {
        let k = [3, 5][rng.usize(0, 1)];
        let stride = rng.usize(1, 2);
        let (h, w) = (rng.usize(1, 36), rng.usize(1, 36));
        let same = rng.int(0, 1) == 1;
        let win = window(k, stride, same, k / 2, h, w);
        let shape = Shape::new(rng.usize(1, 3), h, w, rng.usize(1, 20));
        DepthwiseProblem::random(&mut rng, shape, win).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn depthwise_f32_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(1, 8, 8, 6);
    let input = GpuF32Tensor::upload(gpu, shape, &vec![0.0; shape.len()]).unwrap();
    let w = F32DepthwiseWeights::upload(gpu, &[0.5; 6 * 9], &[0.0; 6], 6, 3, 3).unwrap();
    let win = Window::symmetric(3, 2, 1);
    let mut enc = gpu.encoder();
    let record = |enc: &mut f8net::gpu::Encoder, input, weights, window, out| {
        let d = DepthwiseF32 {
            input,
            weights,
            window,
            activation: Activation::Relu6,
            out,
        };
        depthwise_f32::record(gpu, enc, &d).unwrap_err().to_string()
    };
    let good = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 4, 4, 6), 0.0).unwrap();
    let bad_out = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 8, 8, 6), 0.0).unwrap();
    let err = record(&mut enc, &input, &w, win, &bad_out);
    assert!(
        err.contains("depthwise_f32") && err.contains("[1, 4, 4, 6]"),
        "{err}"
    );
    let other = Shape::new(1, 8, 8, 5);
    let wrong_c = GpuF32Tensor::upload(gpu, other, &vec![0.0; other.len()]).unwrap();
    let err = record(&mut enc, &wrong_c, &w, win, &good);
    assert!(
        err.contains("depthwise_f32") && err.contains("channels"),
        "{err}"
    );
    let err = record(&mut enc, &input, &w, Window::symmetric(5, 2, 2), &good);
    assert!(
        err.contains("depthwise_f32") && err.contains("5x5"),
        "{err}"
    );
    // A kernel whose staged tile cannot fit the shader's workgroup buffer is refused.
    let big = Shape::new(1, 37, 37, 1);
    let big_in = GpuF32Tensor::upload(gpu, big, &vec![0.0; big.len()]).unwrap();
    let wb = F32DepthwiseWeights::upload(gpu, &vec![0.5; 37 * 37], &[0.0], 1, 37, 37).unwrap();
    let big_out = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 1, 1, 1), 0.0).unwrap();
    let err = record(
        &mut enc,
        &big_in,
        &wb,
        Window::symmetric(37, 1, 0),
        &big_out,
    );
    assert!(
        err.contains("depthwise_f32") && err.contains("37x37"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
    assert!(F32DepthwiseWeights::upload(gpu, &[0.5; 8], &[0.0; 1], 1, 3, 3).is_err());
    assert!(F32DepthwiseWeights::upload(gpu, &[0.5; 9], &[0.0; 2], 1, 3, 3).is_err());
}
