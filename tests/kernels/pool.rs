//! Max pool and global average pool (`shaders/pool.wgsl`) against `reference::pool`, bit for bit.

use crate::common::*;
use f8net::fixed::{Format, Signedness};
use f8net::gpu::Gpu;
use f8net::ops::pool::{self, GlobalAvgPool, MaxPool, PoolInput};
use f8net::reference::pool::{
    avgpool_compensation, avgpool_shift, global_avg_pool as gap_ref, max_pool as max_pool_ref,
};
use f8net::reference::Window;
use f8net::tensor::{unpack_codes, GpuI32Tensor, GpuQTensor, QTensor, Shape};

fn code_range(s: Signedness) -> (i32, i32) {
    match s {
        Signedness::Signed => (-127, 127),
        Signedness::Unsigned => (0, 255),
    }
}

fn random_format(rng: &mut Rng) -> Format {
    let s = if rng.int(0, 1) == 0 {
        Signedness::Signed
    } else {
        Signedness::Unsigned
    };
    Format::new(s, rng.int(0, 7)).unwrap()
}

/// Check every padding lane of packed words with `c` logical channels is 0.
fn assert_padding_lanes_zero(words: &[u32], c: usize) {
    let np = c.div_ceil(4) * 4;
    let all = unpack_codes(words, np, Signedness::Unsigned);
    for (i, &v) in all.iter().enumerate() {
        assert!(
            i % np < c || v == 0,
            "padding lane {} of pixel {} is {v}",
            i % np,
            i / np
        );
    }
}

/// Run a max pool on the GPU and compare with the reference.
fn check_max_pool(gpu: &Gpu, x: &QTensor, window: Window, label: &str) {
    let want = max_pool_ref(&x.codes, x.shape, &window).unwrap();
    let xg = GpuQTensor::upload(gpu, x).unwrap();
    let o = pool::max_pool_out_shape(x.shape, &window).unwrap();
    let out = GpuQTensor::alloc_filled(gpu, o, x.format, POISON_U32).unwrap();
    let mut enc = gpu.encoder();
    pool::record_max_pool(
        gpu,
        &mut enc,
        &MaxPool {
            x: &xg,
            window,
            out: &out,
        },
    )
    .unwrap();
    gpu.submit(enc).unwrap();
    assert_padding_lanes_zero(&gpu.read(&out.data).unwrap(), o.c);
    let got = out.download(gpu).unwrap().codes;
    assert_exact(
        &got,
        &want,
        &format!("{label}: {} {window:?} {:?}", x.shape, x.format),
    );
}

fn random_codes(rng: &mut Rng, shape: Shape, format: Format) -> QTensor {
    let (lo, hi) = code_range(format.signedness);
    QTensor::new(shape, format, rng.codes(shape.len(), lo, hi)).unwrap()
}

#[test]
fn max_pool_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x9001);
    let sym = Window::symmetric;
    let named = [
        (
            "1x1 spatial, 3x3 pad 1",
            Shape::new(1, 1, 1, 4),
            sym(3, 1, 1),
        ),
        (
            "ResNet stem 3x3/2 pad 1, odd 9x11",
            Shape::new(1, 9, 11, 6),
            sym(3, 2, 1),
        ),
        ("2x2/2 no padding", Shape::new(2, 8, 6, 5), sym(2, 2, 0)),
        (
            "SAME 3x3/2 asymmetric, 8x7",
            Shape::new(1, 8, 7, 3),
            Window::same(3, 2, 8, 7),
        ),
        ("c = 1", Shape::new(1, 5, 5, 1), sym(3, 1, 1)),
        ("c = 33, batch 3", Shape::new(3, 6, 5, 33), sym(3, 2, 1)),
        (
            "5x5/1 pad 2, width past one invocation",
            Shape::new(1, 4, 13, 7),
            sym(5, 1, 2),
        ),
    ];
    for (label, shape, window) in named {
        let f = random_format(&mut rng);
        check_max_pool(gpu, &random_codes(&mut rng, shape, f), window, label);
    }
    for case in 0..16 {
        let (h, w) = (rng.usize(1, 14), rng.usize(1, 14));
        let (k, s) = (rng.usize(2, 3), rng.usize(1, 2));
        let window = if rng.int(0, 1) == 0 {
            Window::same(k, s, h, w)
        } else {
            sym(k, s, rng.usize(0, 1))
        };
        if window.out_hw("test", h, w).is_err() {
            continue;
        }
        let shape = Shape::new(rng.usize(1, 2), h, w, rng.usize(1, 20));
        let f = random_format(&mut rng);
        check_max_pool(
            gpu,
            &random_codes(&mut rng, shape, f),
            window,
            &format!("random case {case}"),
        );
    }
    // Extremes: all −127 (the max must not come from the padding or an initial 0), all 255.
    let shape = Shape::new(1, 5, 6, 5);
    let neg = QTensor::new(shape, Format::signed(3).unwrap(), vec![-127; shape.len()]).unwrap();
    check_max_pool(gpu, &neg, sym(3, 2, 1), "all -127");
    let top = QTensor::new(shape, Format::unsigned(8).unwrap(), vec![255; shape.len()]).unwrap();
    check_max_pool(gpu, &top, sym(3, 2, 1), "all 255");
}

#[test]
fn max_pool_large_tensor_folds_the_grid() {
    let Some(gpu) = gpu_or_skip() else { return };
    // 4.3 M invocations > 65535 workgroups of 64: grid_1d folds the dispatch to 2-D (17 MB).
    let shape = Shape::new(1, 4_300_000, 1, 4);
    let window = Window {
        kh: 3,
        kw: 1,
        stride_h: 1,
        stride_w: 1,
        pad_top: 1,
        pad_left: 0,
        pad_bottom: 1,
        pad_right: 0,
    };
    let mut rng = Rng::new(0x9003);
    let x = random_codes(&mut rng, shape, Format::signed(5).unwrap());
    check_max_pool(gpu, &x, window, "folded grid");
}

/// Run a global average pool on the GPU (codes or int32 input) and compare with the reference.
fn check_gap(gpu: &Gpu, shape: Shape, values: &[i32], codes: Option<Format>, label: &str) {
    let want = gap_ref(values, shape).unwrap();
    let mut enc = gpu.encoder();
    let (xq, xi);
    let input = match codes {
        Some(f) => {
            xq =
                GpuQTensor::upload(gpu, &QTensor::new(shape, f, values.to_vec()).unwrap()).unwrap();
            PoolInput::Codes(&xq)
        }
        None => {
            xi = GpuI32Tensor::upload(gpu, shape, 11, values).unwrap();
            PoolInput::Int32(&xi)
        }
    };
    let (o, fl) = pool::global_avg_pool_out(&input);
    assert_eq!(fl, input.fl() + avgpool_shift(shape.h * shape.w));
    let out = GpuI32Tensor::alloc_filled(gpu, o, fl, POISON_I32).unwrap();
    pool::record_global_avg_pool(
        gpu,
        &mut enc,
        &GlobalAvgPool {
            x: input,
            out: &out,
        },
    )
    .unwrap();
    gpu.submit(enc).unwrap();
    let padded = out.download_padded(gpu).unwrap();
    for (i, &v) in padded.iter().enumerate() {
        assert!(i % o.c_padded() < o.c || v == 0, "padding value {i} is {v}");
    }
    let got = out.download(gpu).unwrap();
    assert_exact(&got, &want, &format!("{label}: {shape} codes={codes:?}"));
}

#[test]
fn global_avg_pool_matches_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x9002);
    let shapes = [
        Shape::new(1, 7, 7, 10),
        Shape::new(1, 1, 1, 3),
        Shape::new(2, 7, 7, 33),  // two workgroups of channel words
        Shape::new(1, 40, 37, 5), // many pixels per reducing invocation
        Shape::new(3, 3, 5, 1),
        Shape::new(1, 2, 3, 64),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        let f = random_format(&mut rng);
        let (lo, hi) = code_range(f.signedness);
        check_gap(
            gpu,
            shape,
            &rng.codes(shape.len(), lo, hi),
            Some(f),
            &format!("codes case {i}"),
        );
        let wide: Vec<i32> = (0..shape.len())
            .map(|_| rng.int(-1 << 24, 1 << 24))
            .collect();
        check_gap(gpu, shape, &wide, None, &format!("int32 case {i}"));
    }
    for case in 0..10 {
        let shape = Shape::new(
            rng.usize(1, 3),
            rng.usize(1, 16),
            rng.usize(1, 16),
            rng.usize(1, 40),
        );
        let f = random_format(&mut rng);
        let (lo, hi) = code_range(f.signedness);
        check_gap(
            gpu,
            shape,
            &rng.codes(shape.len(), lo, hi),
            Some(f),
            &format!("random codes {case}"),
        );
        let wide: Vec<i32> = (0..shape.len())
            .map(|_| rng.int(-i32::MAX, i32::MAX))
            .collect();
        check_gap(gpu, shape, &wide, None, &format!("random int32 {case}"));
    }
}

#[test]
fn global_avg_pool_sums_exactly_then_saturates() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(2, 9, 9, 6);
    let m = i32::MAX;
    // Partial sums leave int32 and come back: only an exact wide sum gives the reference.
    let back: Vec<i32> = (0..shape.len())
        .map(|i| [m, m, m, -m, -m, -m, 7][(i / 6) % 7])
        .collect();
    check_gap(gpu, shape, &back, None, "overflow and back");
    check_gap(gpu, shape, &vec![m; shape.len()], None, "saturates high");
    check_gap(gpu, shape, &vec![-m; shape.len()], None, "saturates low");
    let edge: Vec<i32> = (0..shape.len())
        .map(|i| if i % 6 < 3 { m / 81 + 1 } else { -(m / 81) - 1 })
        .collect();
    check_gap(gpu, shape, &edge, None, "just past the range");
    // Exact sums of −2^31 and 2^31 (one step past the symmetric range on each side).
    let two = Shape::new(1, 1, 2, 6);
    check_gap(
        gpu,
        two,
        &[-m, m, -m, m, -m, m, -1, 1, 0, 0, -1, 0],
        None,
        "exact boundaries",
    );
    let c = Shape::new(1, 7, 7, 4);
    check_gap(
        gpu,
        c,
        &vec![255; c.len()],
        Some(Format::unsigned(8).unwrap()),
        "all 255",
    );
    check_gap(
        gpu,
        c,
        &vec![-127; c.len()],
        Some(Format::signed(0).unwrap()),
        "all -127",
    );
}

#[test]
fn avgpool_shift_and_compensation() {
    // F8NET.md §2.9 / T11: 7×7 → shift 6, 64/49.
    assert_eq!(avgpool_shift(49), 6);
    assert!((avgpool_compensation(49) - 64.0 / 49.0).abs() < 1e-12);
    for (hw, s) in [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 2),
        (6, 3),
        (16, 4),
        (196, 8),
        (0, 0),
    ] {
        assert_eq!(avgpool_shift(hw), s, "hw = {hw}");
    }
    assert_eq!(avgpool_compensation(64), 1.0);
}

#[test]
fn pools_reject_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let f = Format::unsigned(4).unwrap();
    let shape = Shape::new(1, 6, 6, 5);
    let x =
        GpuQTensor::upload(gpu, &QTensor::new(shape, f, vec![1; shape.len()]).unwrap()).unwrap();
    let good = pool::max_pool_out_shape(shape, &Window::symmetric(3, 2, 1)).unwrap();
    let run = |window, out: &GpuQTensor| {
        let mut enc = gpu.encoder();
        pool::record_max_pool(gpu, &mut enc, &MaxPool { x: &x, window, out }).map(|_| ())
    };
    let out = GpuQTensor::alloc_filled(gpu, good, f, 0).unwrap();
    // Padding as large as the kernel could leave a window with no input pixel.
    let e = run(Window::symmetric(3, 2, 3), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_pool") && e.contains("padding"), "{e}");
    let e = run(Window::symmetric(9, 1, 1), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_pool"), "{e}");
    let wrong_fmt = GpuQTensor::alloc_filled(gpu, good, Format::signed(4).unwrap(), 0).unwrap();
    let e = run(Window::symmetric(3, 2, 1), &wrong_fmt)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_pool") && e.contains("[1, 6, 6, 5]"), "{e}");
    let wrong_shape = GpuQTensor::alloc_filled(gpu, shape, f, 0).unwrap();
    assert!(run(Window::symmetric(3, 2, 1), &wrong_shape).is_err());
    assert!(max_pool_ref(&[0; 7], shape, &Window::symmetric(3, 2, 1)).is_err());
    // An empty input would leave windows with no pixel at all.
    assert!(max_pool_ref(&[], Shape::new(1, 0, 4, 5), &Window::symmetric(2, 1, 1)).is_err());
    // Global average pool: output shape and FL must be [n, 1, 1, c] at fl_in + shift.
    let gap = |out: &GpuI32Tensor| {
        let mut enc = gpu.encoder();
        pool::record_global_avg_pool(
            gpu,
            &mut enc,
            &GlobalAvgPool {
                x: PoolInput::Codes(&x),
                out,
            },
        )
        .map(|_| ())
    };
    let o = Shape::new(1, 1, 1, 5);
    let fl = 4 + avgpool_shift(36);
    assert!(gap(&GpuI32Tensor::alloc_filled(gpu, o, fl, 0).unwrap()).is_ok());
    let e = gap(&GpuI32Tensor::alloc_filled(gpu, o, 4, 0).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("global_avg_pool") && e.contains("FL"), "{e}");
    assert!(gap(&GpuI32Tensor::alloc_filled(gpu, Shape::new(1, 1, 1, 4), fl, 0).unwrap()).is_err());
    assert!(gap_ref(&[0; 5], Shape::new(1, 0, 3, 5)).is_err());
}
