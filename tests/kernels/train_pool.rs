//! f32 pooling (`shaders/pool_f32.wgsl`): max and average pool backward against central finite
//! differences of the CPU forward (max-pool inputs spaced > FD_EPS apart, so no tie flips);
//! GPU forward, argmax (exact, including ties: first maximum in scan order) and backward against
//! the CPU reference (`F32_RTOL`, `f32_reduction_atol(window)`), outputs NaN-poisoned, padding
//! lanes 0; bad inputs give `Err` and record nothing.

use super::train_activation::{dot, fd_check, read_tensor};
use crate::common::*;
use f8net::gpu::Gpu;
use f8net::ops::pool_f32::{
    self as ops, AvgPoolF32, AvgPoolF32Backward, MaxPoolF32, MaxPoolF32Backward,
};
use f8net::reference::pool_f32::{
    avg_pool_f32, avg_pool_f32_backward, global_window, max_pool_f32, max_pool_f32_backward,
};
use f8net::reference::Window;
use f8net::tensor::{unpad_channels, GpuF32Tensor, Shape};

#[test]
fn pool_backward_matches_finite_differences() {
    let mut rng = Rng::new(0x9001_00fd);
    let shape = Shape::new(2, 5, 6, 3);
    let windows = [
        Window::symmetric(3, 2, 1),
        Window::symmetric(3, 1, 1), // overlapping: one input is the max of several windows
        Window::same(2, 2, 5, 6),
        global_window(shape),
    ];
    // Distinct values 0.05 apart (> FD_EPS): a ±FD_EPS step never changes an argmax.
    let mut order: Vec<usize> = (0..shape.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.usize(0, i));
    }
    let base: Vec<f32> = order.iter().map(|&k| k as f32 * 0.05 - 4.0).collect();
    for win in windows {
        let o = max_pool_f32(&base, shape, &win).unwrap();
        let w: Vec<f32> = (0..o.y.len()).map(|_| rng.f32()).collect();
        let dx = max_pool_f32_backward(&w, &o.argmax, shape, &win).unwrap();
        let loss = |x: &[f32]| dot(&w, &max_pool_f32(x, shape, &win).unwrap().y);
        fd_check(&mut base.clone(), &dx, loss, &format!("max pool {win:?}"));
        let dx = avg_pool_f32_backward(&w, shape, &win).unwrap();
        let loss = |x: &[f32]| dot(&w, &avg_pool_f32(x, shape, &win).unwrap().1);
        fd_check(&mut base.clone(), &dx, loss, &format!("avg pool {win:?}"));
    }
}

#[test]
fn avg_pool_excludes_padding() {
    // A 3x3 window with padding 1 at a corner of a 2x2 image of ones averages 4 pixels: 1, not 4/9.
    let shape = Shape::new(1, 2, 2, 1);
    let (o, y) = avg_pool_f32(&[1.0, 2.0, 3.0, 6.0], shape, &Window::symmetric(3, 1, 1)).unwrap();
    assert_eq!(o, Shape::new(1, 2, 2, 1));
    assert_eq!(y, vec![3.0; 4]);
}

fn window(kh: usize, kw: usize, sh: usize, sw: usize, pads: [usize; 4]) -> Window {
    Window {
        kh,
        kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pads[0],
        pad_left: pads[1],
        pad_bottom: pads[2],
        pad_right: pads[3],
    }
}

fn cases() -> Vec<(Shape, Window)> {
    let s = Shape::new;
    vec![
        (s(2, 1, 1, 5), Window::symmetric(1, 1, 0)),
        (s(2, 1, 1, 5), Window::symmetric(3, 1, 1)),
        (s(2, 7, 9, 5), Window::symmetric(3, 2, 1)),
        (s(3, 8, 8, 4), Window::symmetric(2, 2, 0)),
        (s(1, 13, 11, 7), Window::symmetric(3, 1, 1)),
        (s(2, 6, 7, 3), window(3, 2, 2, 1, [0, 1, 2, 1])),
        (s(2, 15, 15, 9), Window::same(5, 2, 15, 15)),
        (s(4, 7, 7, 6), global_window(s(4, 7, 7, 6))),
        (s(2, 8, 8, 10), global_window(s(2, 8, 8, 10))),
        (s(2, 33, 31, 6), Window::symmetric(3, 2, 1)),
        (s(2, 1, 9, 5), window(1, 3, 1, 2, [0, 1, 0, 1])),
    ]
}

fn upload_filled(gpu: &Gpu, shape: Shape) -> GpuF32Tensor {
    GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap()
}

fn check_max(gpu: &Gpu, rng: &mut Rng, shape: Shape, win: Window, coarse: bool) {
    let ctx = format!("max pool {shape} {win:?} coarse={coarse}");
    // Coarse inputs (multiples of 1/4) make ties common: the argmax must still agree exactly.
    let x: Vec<f32> = (0..shape.len())
        .map(|_| {
            if coarse {
                (rng.f32() * 4.0).round() / 4.0
            } else {
                rng.f32()
            }
        })
        .collect();
    let want = max_pool_f32(&x, shape, &win).unwrap();
    let dy: Vec<f32> = (0..want.y.len()).map(|_| rng.f32()).collect();
    let want_dx = max_pool_f32_backward(&dy, &want.argmax, shape, &win).unwrap();
    let o = want.shape;
    let xt = GpuF32Tensor::upload(gpu, shape, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, o, &dy).unwrap();
    let (y, dx) = (upload_filled(gpu, o), upload_filled(gpu, shape));
    let argmax = gpu
        .alloc_filled(o.pixels() * o.c_padded(), 0xDEAD_BEEFu32)
        .unwrap();
    assert_eq!(ops::output_shape(shape, &win).unwrap(), o, "{ctx}");
    let mut enc = gpu.encoder();
    let fwd = MaxPoolF32 {
        x: &xt,
        window: win,
        out: &y,
        argmax: &argmax,
    };
    ops::record_max_pool(gpu, &mut enc, &fwd).unwrap();
    // Backward reads the reference's argmax (identical, checked below) through the GPU's buffer.
    let bwd = MaxPoolF32Backward {
        dy: &dyt,
        argmax: &argmax,
        window: win,
        dx: &dx,
    };
    ops::record_max_pool_backward(gpu, &mut enc, &bwd).unwrap();
    gpu.submit(enc).unwrap();
    assert_close(
        &read_tensor(gpu, &y, &ctx),
        &want.y,
        0.0,
        0.0,
        &format!("y: {ctx}"),
    );
    let raw = gpu.read(&argmax).unwrap();
    let cp = o.c_padded();
    assert!(
        raw.chunks(cp).all(|px| px[o.c..].iter().all(|&v| v == 0)),
        "argmax padding: {ctx}"
    );
    let got: Vec<i32> = unpad_channels(&raw, o.c)
        .iter()
        .map(|&v| v as i32)
        .collect();
    let want_arg: Vec<i32> = want.argmax.iter().map(|&v| v as i32).collect();
    assert_exact(&got, &want_arg, &format!("argmax: {ctx}"));
    assert_close(
        &read_tensor(gpu, &dx, &ctx),
        &want_dx,
        F32_ATOL,
        F32_RTOL,
        &format!("dx: {ctx}"),
    );
}

fn check_avg(gpu: &Gpu, rng: &mut Rng, shape: Shape, win: Window) {
    let ctx = format!("avg pool {shape} {win:?}");
    let x: Vec<f32> = (0..shape.len()).map(|_| rng.f32()).collect();
    let (o, want_y) = avg_pool_f32(&x, shape, &win).unwrap();
    let dy: Vec<f32> = (0..o.len()).map(|_| rng.f32()).collect();
    let want_dx = avg_pool_f32_backward(&dy, shape, &win).unwrap();
    let xt = GpuF32Tensor::upload(gpu, shape, &x).unwrap();
    let dyt = GpuF32Tensor::upload(gpu, o, &dy).unwrap();
    let (y, dx) = (upload_filled(gpu, o), upload_filled(gpu, shape));
    let mut enc = gpu.encoder();
    ops::record_avg_pool(
        gpu,
        &mut enc,
        &AvgPoolF32 {
            x: &xt,
            window: win,
            out: &y,
        },
    )
    .unwrap();
    let bwd = AvgPoolF32Backward {
        dy: &dyt,
        window: win,
        dx: &dx,
    };
    ops::record_avg_pool_backward(gpu, &mut enc, &bwd).unwrap();
    gpu.submit(enc).unwrap();
    let atol = f32_reduction_atol(win.kh * win.kw);
    assert_close(
        &read_tensor(gpu, &y, &ctx),
        &want_y,
        atol,
        F32_RTOL,
        &format!("y: {ctx}"),
    );
    assert_close(
        &read_tensor(gpu, &dx, &ctx),
        &want_dx,
        atol,
        F32_RTOL,
        &format!("dx: {ctx}"),
    );
}

#[test]
fn max_pool_f32_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x9001_003a);
    for (i, (shape, win)) in cases().into_iter().enumerate() {
        check_max(gpu, &mut rng, shape, win, i % 2 == 0);
    }
}

#[test]
fn avg_pool_f32_gpu_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x9001_00a6);
    for (shape, win) in cases() {
        check_avg(gpu, &mut rng, shape, win);
    }
}

#[test]
fn pool_f32_rejects_bad_inputs() {
    let s = Shape::new(1, 4, 4, 3);
    let x = vec![0.0; s.len()];
    // Padding not smaller than the kernel; kernel larger than the padded input; wrong lengths.
    assert!(max_pool_f32(&x, s, &Window::symmetric(2, 2, 2)).is_err());
    assert!(avg_pool_f32(&x, s, &Window::symmetric(7, 1, 1)).is_err());
    assert!(avg_pool_f32(&x[1..], s, &Window::symmetric(2, 2, 0)).is_err());
    // An argmax outside its window.
    let o = max_pool_f32(&x, s, &Window::symmetric(2, 2, 0)).unwrap();
    let mut bad = o.argmax.clone();
    bad[0] = 15;
    let err = max_pool_f32_backward(&o.y, &bad, s, &Window::symmetric(2, 2, 0)).unwrap_err();
    assert!(err.to_string().contains("outside its window"), "{err}");

    let Some(gpu) = gpu_or_skip() else { return };
    let win = Window::symmetric(2, 2, 0);
    let xt = GpuF32Tensor::upload(gpu, s, &x).unwrap();
    let good = upload_filled(gpu, Shape::new(1, 2, 2, 3));
    let wrong = upload_filled(gpu, Shape::new(1, 3, 3, 3));
    let arg = gpu.alloc::<u32>(16).unwrap();
    let short_arg = gpu.alloc::<u32>(12).unwrap();
    let mut enc = gpu.encoder();
    let max = |enc: &mut f8net::gpu::Encoder, out, argmax, window| {
        let m = MaxPoolF32 {
            x: &xt,
            window,
            out,
            argmax,
        };
        ops::record_max_pool(gpu, enc, &m).unwrap_err().to_string()
    };
    let err = max(&mut enc, &wrong, &arg, win);
    assert!(
        err.contains("max_pool_f32") && err.contains("[1, 2, 2, 3]"),
        "{err}"
    );
    let err = max(&mut enc, &good, &short_arg, win);
    assert!(err.contains("argmax has 12"), "{err}");
    let err = max(&mut enc, &good, &arg, Window::symmetric(2, 2, 2));
    assert!(err.contains("padding"), "{err}");
    let err = max(&mut enc, &good, &arg, Window::symmetric(9, 1, 0));
    assert!(err.contains("does not fit"), "{err}");
    let same = AvgPoolF32 {
        x: &xt,
        window: Window::symmetric(1, 1, 0),
        out: &xt,
    };
    let err = ops::record_avg_pool(gpu, &mut enc, &same)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("avg_pool_f32") && err.contains("same buffer"),
        "{err}"
    );
    let lying = GpuF32Tensor {
        shape: s,
        data: gpu.alloc(7).unwrap(),
    };
    let bwd = AvgPoolF32Backward {
        dy: &good,
        window: win,
        dx: &lying,
    };
    let err = ops::record_avg_pool_backward(gpu, &mut enc, &bwd)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("avg_pool_f32_backward") && err.contains("buffer has 7"),
        "{err}"
    );
    let bwd = MaxPoolF32Backward {
        dy: &wrong,
        argmax: &arg,
        window: win,
        dx: &xt,
    };
    let err = ops::record_max_pool_backward(gpu, &mut enc, &bwd)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_pool_f32_backward") && err.contains("[1, 3, 3, 3]"),
        "{err}"
    );
    assert_eq!(enc.dispatch_count(), 0);
}
