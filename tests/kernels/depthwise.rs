//! int8 depthwise convolution (`shaders/depthwise.wgsl`) against `reference::depthwise`, bit for
//! bit: 3×3 and 5×5, stride 1 and 2, symmetric / TF-SAME / no padding, both input signednesses,
//! packed and int32 outputs, channel counts across the 4-lane and 8-word tile edges.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::gpu::Gpu;
use f8net::ops::depthwise::{self, Depthwise, DepthwiseWeights};
use f8net::ops::gemm::OutBuffer;
use f8net::ops::Epilogue;
use f8net::reference::{depthwise::depthwise as depthwise_ref, EpilogueSpec, OutputKind, Window};
use f8net::tensor::{pack_codes, unpack_codes, unpad_channels, Shape};

/// One depthwise problem.
#[derive(Debug)]
struct DwProblem {
    shape: Shape,
    window: Window,
    x_signedness: Signedness,
    x: Vec<i32>,
    w: Vec<i32>,
    ep: EpilogueSpec,
}

fn code_range(s: Signedness) -> (i32, i32) {
    match s {
        Signedness::Signed => (-127, 127),
        Signedness::Unsigned => (0, 255),
    }
}

fn random_epilogue(rng: &mut Rng, c: usize) -> EpilogueSpec {
    let output = match rng.int(0, 2) {
        0 => OutputKind::Codes(Signedness::Signed),
        1 => OutputKind::Codes(Signedness::Unsigned),
        _ => OutputKind::Int32,
    };
    let per_channel = rng.int(0, 1) == 1;
    let base_shift = rng.int(-2, 10);
    let (clamp_lo, clamp_hi) = match rng.int(0, 2) {
        0 => (-i32::MAX, i32::MAX),
        1 => (0, i32::MAX),
        _ => (0, 6 << rng.int(0, 4)),
    };
    EpilogueSpec {
        bias: (0..c).map(|_| rng.int(-1 << 14, 1 << 14)).collect(),
        shift: (0..c)
            .map(|_| {
                if per_channel {
                    rng.int(-3, 12)
                } else {
                    base_shift
                }
            })
            .collect(),
        output,
        clamp_lo,
        clamp_hi,
    }
}

impl DwProblem {
    fn random(rng: &mut Rng, shape: Shape, window: Window) -> DwProblem {
        let x_signedness = if rng.int(0, 1) == 0 {
            Signedness::Signed
        } else {
            Signedness::Unsigned
        };
        let (lo, hi) = code_range(x_signedness);
        DwProblem {
            shape,
            window,
            x_signedness,
            x: rng.codes(shape.len(), lo, hi),
            w: rng.codes(shape.c * window.kh * window.kw, -127, 127),
            ep: random_epilogue(rng, shape.c),
        }
    }

    /// Run on the GPU; returns logical-channel outputs after checking the padding lanes are 0.
    fn run(&self, gpu: &Gpu) -> Vec<i32> {
        let s = self.shape;
        let x = gpu.upload(&pack_codes(&self.x, s.c)).unwrap();
        let w =
            DepthwiseWeights::upload(gpu, &self.w, s.c, self.window.kh, self.window.kw).unwrap();
        let ep = Epilogue::upload(gpu, &self.ep, s.c).unwrap();
        let (oh, ow) = self.window.out_hw("test", s.h, s.w).unwrap();
        let rows = s.n * oh * ow;
        let np = s.c_padded();
        let mut enc = gpu.encoder();
        let d = |out| Depthwise {
            x: &x,
            x_signedness: self.x_signedness,
            shape: s,
            window: self.window,
            weights: &w,
            epilogue: &ep,
            out,
        };
        let all = match self.ep.output {
            OutputKind::Codes(sg) => {
                let out = gpu.alloc_filled(rows * s.c4(), POISON_U32).unwrap();
                depthwise::record(gpu, &mut enc, &d(OutBuffer::Codes(&out))).unwrap();
                gpu.submit(enc).unwrap();
                unpack_codes(&gpu.read(&out).unwrap(), np, sg)
            }
            OutputKind::Int32 => {
                let out = gpu.alloc_filled(rows * np, POISON_I32).unwrap();
                depthwise::record(gpu, &mut enc, &d(OutBuffer::Int32(&out))).unwrap();
                gpu.submit(enc).unwrap();
                gpu.read(&out).unwrap()
            }
        };
        for r in 0..rows {
            for c in s.c..np {
                assert_eq!(all[r * np + c], 0, "padding lane {c} of pixel {r} is not 0");
            }
        }
        unpad_channels(&all, s.c)
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let want = depthwise_ref(&self.x, self.shape, &self.w, &self.window, &self.ep).unwrap();
        let got = self.run(gpu);
        let ctx = format!(
            "{label}: {} window={:?} x={:?} out={:?} clamp={}..{}",
            self.shape,
            self.window,
            self.x_signedness,
            self.ep.output,
            self.ep.clamp_lo,
            self.ep.clamp_hi
        );
        assert_exact(&got, &want, &ctx);
    }
}

#[test]
fn depthwise_matches_reference_on_named_cases() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xd3_0001);
    let sym = Window::symmetric;
    let cases = [
        (
            "1x1 spatial, 3x3 pad 1",
            Shape::new(1, 1, 1, 4),
            sym(3, 1, 1),
        ),
        (
            "1x1 spatial, 5x5 SAME stride 2",
            Shape::new(2, 1, 1, 3),
            Window::same(5, 2, 1, 1),
        ),
        ("c = 1", Shape::new(1, 5, 6, 1), sym(3, 1, 1)),
        ("c = 7", Shape::new(1, 6, 5, 7), sym(3, 1, 1)),
        (
            "c = 33 crosses the 8-word tile",
            Shape::new(1, 4, 4, 33),
            sym(3, 1, 1),
        ),
        (
            "c = 70, 3 channel groups",
            Shape::new(1, 3, 9, 70),
            sym(3, 2, 1),
        ),
        (
            "odd 7x9 stride 2 SAME (asymmetric)",
            Shape::new(1, 7, 9, 6),
            Window::same(3, 2, 7, 9),
        ),
        (
            "odd 11x13 5x5 stride 2 SAME",
            Shape::new(1, 11, 13, 5),
            Window::same(5, 2, 11, 13),
        ),
        (
            "even 8x8 3x3 stride 2 SAME",
            Shape::new(1, 8, 8, 8),
            Window::same(3, 2, 8, 8),
        ),
        ("5x5 stride 1 pad 2", Shape::new(1, 9, 10, 12), sym(5, 1, 2)),
        ("no padding (valid)", Shape::new(1, 6, 7, 4), sym(3, 1, 0)),
        (
            "batch 3, several tiles",
            Shape::new(3, 13, 19, 9),
            sym(3, 1, 1),
        ),
        (
            "tall input, many row tiles",
            Shape::new(1, 21, 3, 2),
            Window::same(3, 1, 21, 3),
        ),
        (
            "7x7 stride 2, largest tile",
            Shape::new(1, 9, 17, 10),
            sym(7, 2, 3),
        ),
    ];
    for (label, shape, window) in cases {
        DwProblem::random(&mut rng, shape, window).check(gpu, label);
    }
    // A non-square kernel with different strides per axis.
    let win = Window {
        kh: 1,
        kw: 3,
        stride_h: 2,
        stride_w: 1,
        pad_top: 0,
        pad_left: 1,
        pad_bottom: 0,
        pad_right: 1,
    };
    DwProblem::random(&mut rng, Shape::new(2, 5, 6, 5), win).check(gpu, "1x3 kernel, stride 2x1");
    // Kernel rows of exactly 4 and 8 taps (one and two full dot-product words) and stride 3,
    // so the unaligned row words start at every byte offset.
    for (kw, stride_w) in [(4, 1), (8, 3), (2, 3)] {
        let win = Window {
            kh: 2,
            kw,
            stride_h: 1,
            stride_w,
            pad_top: 1,
            pad_left: kw / 2,
            pad_bottom: 0,
            pad_right: kw / 2,
        };
        let label = format!("2x{kw} kernel, stride 1x{stride_w}");
        DwProblem::random(&mut rng, Shape::new(1, 6, 19, 9), win).check(gpu, &label);
    }
}

#[test]
fn depthwise_matches_reference_on_random_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xd3_0002);
    for case in 0..20 {
        let k = if rng.int(0, 1) == 0 { 3 } else { 5 };
        let stride = rng.usize(1, 2);
        let (h, w) = (rng.usize(1, 17), rng.usize(1, 17));
        let shape = Shape::new(rng.usize(1, 2), h, w, rng.usize(1, 40));
        let window = match rng.int(0, 2) {
            0 => Window::same(k, stride, h, w),
            1 => Window::symmetric(k, stride, k / 2),
            _ if h >= k && w >= k => Window::symmetric(k, stride, 0),
            _ => Window::symmetric(k, stride, k / 2),
        };
        DwProblem::random(&mut rng, shape, window).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn depthwise_saturates_like_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(1, 6, 7, 6);
    let window = Window::symmetric(5, 1, 2);
    for (xs, output, shift, bias, clamp) in [
        // 255·127·25 overflows every 8-bit range.
        (
            Signedness::Unsigned,
            OutputKind::Codes(Signedness::Unsigned),
            0,
            0,
            (-i32::MAX, i32::MAX),
        ),
        (
            Signedness::Signed,
            OutputKind::Codes(Signedness::Signed),
            2,
            0,
            (-i32::MAX, i32::MAX),
        ),
        // A left shift and a huge bias push int32 to ±(2^31 − 1).
        (
            Signedness::Unsigned,
            OutputKind::Int32,
            -20,
            0,
            (-i32::MAX, i32::MAX),
        ),
        (
            Signedness::Signed,
            OutputKind::Int32,
            0,
            i32::MAX - 1000,
            (-i32::MAX, i32::MAX),
        ),
        (
            Signedness::Signed,
            OutputKind::Int32,
            0,
            -i32::MAX + 1000,
            (-i32::MAX, i32::MAX),
        ),
        // A clamp entirely outside the code range still ends inside it, as the reference does.
        (
            Signedness::Signed,
            OutputKind::Codes(Signedness::Signed),
            0,
            0,
            (-1000, -500),
        ),
        (
            Signedness::Unsigned,
            OutputKind::Codes(Signedness::Unsigned),
            0,
            0,
            (300, 400),
        ),
    ] {
        let (lo, hi) = code_range(xs);
        let x: Vec<i32> = (0..shape.len())
            .map(|i| if i % 5 == 0 { lo } else { hi })
            .collect();
        let w: Vec<i32> = (0..shape.c * 25)
            .map(|i| if (i / 25) % 2 == 0 { 127 } else { -127 })
            .collect();
        let mut ep = EpilogueSpec::plain(shape.c, shift, output);
        ep.bias = vec![bias; shape.c];
        (ep.clamp_lo, ep.clamp_hi) = clamp;
        let p = DwProblem {
            shape,
            window,
            x_signedness: xs,
            x,
            w,
            ep,
        };
        p.check(
            gpu,
            &format!("saturation shift {shift} bias {bias} clamp {clamp:?}"),
        );
    }
}

#[test]
fn depthwise_rejects_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(1, 5, 5, 6);
    let win = Window::symmetric(3, 1, 1);
    let w = DepthwiseWeights::upload(gpu, &[1; 6 * 9], 6, 3, 3).unwrap();
    let ep = Epilogue::upload(gpu, &EpilogueSpec::plain(6, 0, OutputKind::Int32), 6).unwrap();
    let x = gpu.upload(&[0u32; 25 * 2]).unwrap();
    let out = gpu.alloc::<i32>(25 * 8).unwrap();
    let short = gpu.upload(&[0u32; 24 * 2]).unwrap();
    let err = |x, shape, window, weights, epilogue, out| {
        let d = Depthwise {
            x,
            x_signedness: Signedness::Unsigned,
            shape,
            window,
            weights,
            epilogue,
            out,
        };
        let mut enc = gpu.encoder();
        depthwise::record(gpu, &mut enc, &d)
            .unwrap_err()
            .to_string()
    };
    let good = err(&x, shape, win, &w, &ep, OutBuffer::Codes(&x)); // wrong output kind
    assert!(
        good.contains("depthwise") && good.contains("output"),
        "{good}"
    );
    let e = err(&short, shape, win, &w, &ep, OutBuffer::Int32(&out));
    assert!(e.contains("depthwise") && e.contains("[1, 5, 5, 6]"), "{e}");
    let e = err(
        &x,
        shape,
        Window::symmetric(5, 1, 2),
        &w,
        &ep,
        OutBuffer::Int32(&out),
    );
    assert!(e.contains("depthwise") && e.contains("5x5"), "{e}");
    let e = err(
        &x,
        Shape::new(1, 5, 5, 7),
        win,
        &w,
        &ep,
        OutBuffer::Int32(&out),
    );
    assert!(e.contains("depthwise"), "{e}");
    let e = err(
        &x,
        shape,
        Window::symmetric(3, 0, 1),
        &w,
        &ep,
        OutBuffer::Int32(&out),
    );
    assert!(e.contains("depthwise") && e.contains("stride"), "{e}");
    let e = err(
        &x,
        shape,
        Window::symmetric(7, 1, 0),
        &w,
        &ep,
        OutBuffer::Int32(&out),
    );
    assert!(e.contains("depthwise") && e.contains("does not fit"), "{e}");
    // A window whose staged tile exceeds workgroup memory is refused, not truncated.
    let w13 = DepthwiseWeights::upload(gpu, &[1; 6 * 169], 6, 13, 13).unwrap();
    let big = gpu.upload(&vec![0u32; 400 * 2]).unwrap();
    let big_out = gpu.alloc::<i32>(100 * 8).unwrap();
    let e = err(
        &big,
        Shape::new(1, 20, 20, 6),
        Window::symmetric(13, 2, 6),
        &w13,
        &ep,
        OutBuffer::Int32(&big_out),
    );
    assert!(e.contains("depthwise") && e.contains("workgroup"), "{e}");
    // Weights: wrong count, code −128; epilogue shift out of range.
    assert!(DepthwiseWeights::upload(gpu, &[1; 10], 6, 3, 3).is_err());
    assert!(DepthwiseWeights::upload(gpu, &[-128; 9], 1, 3, 3).is_err());
    assert!(Epilogue::upload(gpu, &EpilogueSpec::plain(6, -32, OutputKind::Int32), 6).is_err());
    // The reference refuses the same shapes.
    assert!(depthwise_ref(
        &[0; 10],
        shape,
        &[0; 54],
        &win,
        &EpilogueSpec::plain(6, 0, OutputKind::Int32)
    )
    .is_err());
}
