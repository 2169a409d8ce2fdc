//! Bad-input tests of the GPU backward kernels (part (b) of `train_conv.rs`): shapes,
//! windows and channel counts that do not fit are one clear error, never a panic or a
//! wrong-sized write. Layouts as in `gpu.rs`: NHWC activations, OHWI weights.

use crate::common::*;
use f8net::gpu::Encoder;
use f8net::ops::conv_f32::{self, ConvF32BackwardInput, ConvF32BackwardWeight};
use f8net::ops::depthwise_f32::F32DepthwiseWeights;
use f8net::ops::depthwise_f32::{self, DepthwiseF32BackwardInput, DepthwiseF32BackwardWeight};
use f8net::ops::gemm_f32::{self, F32Weights, GemmF32BackwardInput, GemmF32BackwardWeight};
use f8net::reference::Window;
use f8net::tensor::{GpuF32Tensor, Shape};

#[test]
fn gpu_backward_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut enc = gpu.encoder();
    let s = Shape::new(1, 6, 6, 5);
    let window = Window::symmetric(3, 2, 1); // 6x6 -> 3x3
    let w = F32Weights::upload(gpu, &vec![0.5; 8 * 9 * 5], &[0.0; 8], 8, 3, 3, 5).unwrap();
    let x = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let dy = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 3, 3, 8), 0.0).unwrap();
    let bad_dy = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 6, 6, 8), 0.0).unwrap();
    let other_c = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 6, 6, 4), 0.0).unwrap();

    let bi = |enc: &mut Encoder, dy, window, dx| {
        let a = ConvF32BackwardInput {
            dy,
            weights: &w,
            window,
            dx,
        };
        conv_f32::record_backward_input(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = bi(&mut enc, &bad_dy, window, &x);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("[1, 3, 3, 8]"),
        "{err}"
    );
    let err = bi(&mut enc, &dy, window, &other_c);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("channels"),
        "{err}"
    );
    let err = bi(&mut enc, &dy, Window::symmetric(5, 2, 2), &x);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("5x5"),
        "{err}"
    );
    let lying = GpuF32Tensor {
        shape: s,
        data: gpu.alloc(10).unwrap(),
    };
    let err = bi(&mut enc, &dy, window, &lying);
    assert!(
        err.contains("conv_f32_backward_input") && err.contains("dx buffer"),
        "{err}"
    );

    let (dw, db) = (
        gpu.alloc::<f32>(w.w.len()).unwrap(),
        gpu.alloc::<f32>(8).unwrap(),
    );
    let short = gpu.alloc::<f32>(w.w.len() - 4).unwrap();
    let bw = |enc: &mut Encoder, dy, dw, db| {
        let a = ConvF32BackwardWeight {
            input: &x,
            dy,
            window,
            dw,
            db,
        };
        conv_f32::record_backward_weight(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = bw(&mut enc, &bad_dy, &dw, &db);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("dy is"),
        "{err}"
    );
    let err = bw(&mut enc, &dy, &short, &db);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    let err = bw(&mut enc, &dy, &dw, &short);
    assert!(
        err.contains("conv_f32_backward_weight") && err.contains("db has"),
        "{err}"
    );

    // Linear: 1x1 weights only, buffer lengths checked.
    let lin = F32Weights::upload(gpu, &[0.5; 8 * 12], &[0.0; 8], 8, 1, 1, 12).unwrap();
    let buf = |len| gpu.alloc::<f32>(len).unwrap();
    let (dy5, dx5) = (buf(5 * 8), buf(5 * 12));
    let gi = |enc: &mut Encoder, dy, weights, dx| {
        let a = GemmF32BackwardInput {
            dy,
            m: 5,
            weights,
            dx,
        };
        gemm_f32::record_backward_input(gpu, enc, &a)
            .unwrap_err()
            .to_string()
    };
    let err = gi(&mut enc, &dy5, &w, &dx5);
    assert!(
        err.contains("gemm_f32_backward_input") && err.contains("3x3"),
        "{err}"
    );
    let err = gi(&mut enc, &dx5, &lin, &dx5);
    assert!(
        err.contains("gemm_f32_backward_input") && err.contains("dy has"),
        "{err}"
    );
    let a = GemmF32BackwardWeight {
        x: &dx5,
        dy: &dy5,
        m: 5,
        n: 8,
        k: 12,
        dw: &buf(8 * 11),
        db: &buf(8),
    };
    let err = gemm_f32::record_backward_weight(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gemm_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    let a = GemmF32BackwardWeight { n: 0, ..a };
    assert!(gemm_f32::record_backward_weight(gpu, &mut enc, &a).is_err());

    // Depthwise: weights must match the window and channels.
    let dww = F32DepthwiseWeights::upload(gpu, &[0.5; 5 * 9], &[0.0; 5], 5, 3, 3).unwrap();
    let dy5c = GpuF32Tensor::alloc_filled(gpu, Shape::new(1, 3, 3, 5), 0.0).unwrap();
    let a = DepthwiseF32BackwardInput {
        dy: &dy5c,
        weights: &dww,
        window: Window::symmetric(5, 2, 2),
        dx: &x,
    };
    let err = depthwise_f32::record_backward_input(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_input") && err.contains("5x5"),
        "{err}"
    );
    let a = DepthwiseF32BackwardInput {
        dy: &dy,
        window,
        ..a
    };
    let err = depthwise_f32::record_backward_input(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_input") && err.contains("dy is"),
        "{err}"
    );
    let a = DepthwiseF32BackwardWeight {
        input: &x,
        dy: &dy5c,
        window,
        dw: &buf(9 * 7),
        db: &buf(8),
    };
    let err = depthwise_f32::record_backward_weight(gpu, &mut enc, &a)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("depthwise_f32_backward_weight") && err.contains("dw has"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
}
