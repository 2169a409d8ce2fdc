//! int8 conv2d (`shaders/conv.wgsl`, `ops::conv`) against `reference::conv`, bit for bit.
//!
//! Host layouts: input NHWC codes `[n][h][w][cin]`, weights OHWI codes `[cout][kh][kw][cin]`
//! (logical channels). GPU output: NHWC with channels padded to 4 (packed codes or int32),
//! poisoned before every run; its padding lanes must come back 0.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::gpu::{Gpu, GpuBuffer};
use f8net::ops::conv::{self, Conv2d};
use f8net::ops::gemm::OutBuffer;
use f8net::ops::{Epilogue, PackedWeights};
use f8net::reference::{conv::conv2d as conv_ref, EpilogueSpec, OutputKind, Window};
use f8net::tensor::{pack_codes, unpack_codes, unpad_channels, Shape};

const U8: Signedness = Signedness::Unsigned;
const I8: Signedness = Signedness::Signed;
const CODES_I8: OutputKind = OutputKind::Codes(Signedness::Signed);
const CODES_U8: OutputKind = OutputKind::Codes(Signedness::Unsigned);
const INT32: OutputKind = OutputKind::Int32;

/// One conv problem: input, weights, geometry and epilogue.
#[derive(Debug)]
struct ConvProblem {
    shape: Shape,
    cout: usize,
    win: Window,
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

/// A window with independent padding on each side.
fn asym(kh: usize, kw: usize, stride: usize, pads: [usize; 4]) -> Window {
    let [pad_top, pad_left, pad_bottom, pad_right] = pads;
    Window {
        kh,
        kw,
        stride_h: stride,
        stride_w: stride,
        pad_top,
        pad_left,
        pad_bottom,
        pad_right,
    }
}

fn random_epilogue(rng: &mut Rng, n: usize, output: OutputKind) -> EpilogueSpec {
    let per_channel = rng.int(0, 1) == 1;
    let base_shift = rng.int(-2, 12);
    let (clamp_lo, clamp_hi) = match rng.int(0, 3) {
        0 => (-i32::MAX, i32::MAX),
        1 => (0, i32::MAX),           // ReLU
        2 => (0, 6 << rng.int(0, 4)), // ReLU6 at some output FL
        _ => (-1000, -500),           // entirely below every code range: the code range wins
    };
    EpilogueSpec {
        bias: (0..n).map(|_| rng.int(-1 << 18, 1 << 18)).collect(),
        shift: (0..n)
            .map(|_| {
                if per_channel {
                    rng.int(-3, 14)
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

impl ConvProblem {
    fn random(
        rng: &mut Rng,
        shape: Shape,
        cout: usize,
        win: Window,
        xs: Signedness,
        output: OutputKind,
    ) -> ConvProblem {
        let (lo, hi) = code_range(xs);
        let k = win.kh * win.kw * shape.c;
        ConvProblem {
            shape,
            cout,
            win,
            x_signedness: xs,
            x: rng.codes(shape.len(), lo, hi),
            w: rng.codes(cout * k, -127, 127),
            ep: random_epilogue(rng, cout, output),
        }
    }

    /// Record, submit and read back; returns logical outputs and the dispatch count.
    fn run(&self, gpu: &Gpu) -> (Vec<i32>, usize) {
        let (s, win) = (self.shape, self.win);
        let x = gpu.upload(&pack_codes(&self.x, s.c)).unwrap();
        let w = PackedWeights::upload(gpu, &self.w, self.cout, win.kh, win.kw, s.c).unwrap();
        let ep = Epilogue::upload(gpu, &self.ep, self.cout).unwrap();
        let (oh, ow) = win.out_hw("test", s.h, s.w).unwrap();
        let (rows, cp) = (s.n * oh * ow, self.cout.div_ceil(4) * 4);
        let launch = |out: OutBuffer<'_>| {
            let mut enc = gpu.encoder();
            let c = Conv2d {
                x: &x,
                x_signedness: self.x_signedness,
                shape: s,
                weights: &w,
                window: win,
                epilogue: &ep,
                out,
            };
            assert_eq!(c.out_shape().unwrap(), Shape::new(s.n, oh, ow, self.cout));
            conv::record(gpu, &mut enc, &c).unwrap();
            let dispatches = enc.dispatch_count();
            gpu.submit(enc).unwrap();
            dispatches
        };
        let (all, got, dispatches) = match self.ep.output {
            OutputKind::Codes(sg) => {
                let out: GpuBuffer<u32> = gpu.alloc_filled(rows * cp / 4, POISON_U32).unwrap();
                let d = launch(OutBuffer::Codes(&out));
                let words = gpu.read(&out).unwrap();
                (
                    unpack_codes(&words, cp, sg),
                    unpack_codes(&words, self.cout, sg),
                    d,
                )
            }
            OutputKind::Int32 => {
                let out: GpuBuffer<i32> = gpu.alloc_filled(rows * cp, POISON_I32).unwrap();
                let d = launch(OutBuffer::Int32(&out));
                let vals = gpu.read(&out).unwrap();
                let got = unpad_channels(&vals, self.cout);
                (vals, got, d)
            }
        };
        for r in 0..rows {
            for c in self.cout..cp {
                assert_eq!(all[r * cp + c], 0, "padding lane {c} of pixel {r} is not 0");
            }
        }
        (got, dispatches)
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let (want, _) =
            conv_ref(&self.x, self.shape, &self.w, self.cout, &self.win, &self.ep).unwrap();
        let (got, dispatches) = self.run(gpu);
        let ctx = format!(
            "{label}: x {} {:?} cout {} {:?} out {:?} clamp {}..{}",
            self.shape,
            self.x_signedness,
            self.cout,
            self.win,
            self.ep.output,
            self.ep.clamp_lo,
            self.ep.clamp_hi
        );
        assert_eq!(dispatches, 1, "{ctx}");
        assert_exact(&got, &want, &ctx);
    }
}

#[test]
fn conv_reference_small_example() {
    // 3×3 ones over a 3×3 image of ones, padding 1: each output counts its in-image taps.
    let shape = Shape::new(1, 3, 3, 1);
    let ep = EpilogueSpec::plain(1, 0, INT32);
    let win = Window::symmetric(3, 1, 1);
    let (out, s) = conv_ref(&[1; 9], shape, &[1; 9], 1, &win, &ep).unwrap();
    assert_eq!(s, Shape::new(1, 3, 3, 1));
    assert_eq!(out, vec![4, 6, 4, 6, 9, 6, 4, 6, 4]);
    // Stride 2 with asymmetric padding (top/left 0, bottom/right 1) on a 4×4 ramp, 2 channels.
    let x: Vec<i32> = (0..32).collect();
    let w = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]; // x[0][0].c0 + x[2][2].c1
    let win = asym(3, 3, 2, [0, 0, 1, 1]);
    let (out, s) = conv_ref(&x, Shape::new(1, 4, 4, 2), &w, 1, &win, &ep).unwrap();
    assert_eq!(s, Shape::new(1, 2, 2, 1));
    assert_eq!(out, vec![21, 4, 16, 20]); // the second tap is in the image only at (0, 0)
}

#[test]
fn conv_matches_reference_on_named_cases() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xc0417);
    #[rustfmt::skip]
    let cases: [(&str, Shape, usize, Window, Signedness, OutputKind); 20] = [
        ("3x3 s1 p1", Shape::new(1, 8, 8, 16), 16, Window::symmetric(3, 1, 1), U8, CODES_U8),
        ("3x3 s2 same odd", Shape::new(2, 9, 7, 5), 7, Window::same(3, 2, 9, 7), I8, CODES_I8),
        ("5x5 s1 same", Shape::new(1, 10, 11, 6), 9, Window::same(5, 1, 10, 11), U8, INT32),
        ("5x5 s2 same odd", Shape::new(2, 11, 9, 3), 5, Window::same(5, 2, 11, 9), U8, CODES_I8),
        ("7x7 s2 p3 stem", Shape::new(1, 17, 17, 3), 8, Window::symmetric(7, 2, 3), U8, CODES_U8),
        ("7x7 s1 valid", Shape::new(2, 9, 8, 4), 6, Window::symmetric(7, 1, 0), I8, INT32),
        ("1x3 asym", Shape::new(2, 6, 9, 7), 10, asym(1, 3, 1, [0, 2, 0, 0]), U8, CODES_U8),
        ("3x1 s2", Shape::new(1, 9, 5, 9), 3, asym(3, 1, 2, [1, 0, 1, 0]), I8, CODES_I8),
        ("1x1 image 3x3 p1", Shape::new(3, 1, 1, 12), 5, Window::symmetric(3, 1, 1), U8, INT32),
        ("1x1 image 5x5 same", Shape::new(2, 1, 1, 40), 13, Window::same(5, 1, 1, 1), I8, CODES_U8),
        ("1x1 s2", Shape::new(2, 7, 7, 6), 9, Window::symmetric(1, 2, 0), U8, CODES_U8),
        ("1x1 s1 padded", Shape::new(1, 5, 6, 5), 4, Window::symmetric(1, 1, 1), U8, INT32),
        ("asym pads", Shape::new(1, 7, 8, 10), 11, asym(3, 3, 1, [0, 2, 1, 0]), U8, CODES_I8),
        ("pad wider than kernel", Shape::new(1, 4, 3, 2), 3, Window::symmetric(3, 1, 3), U8, INT32),
        ("kernel > input", Shape::new(2, 3, 3, 8), 6, Window::symmetric(5, 1, 2), I8, CODES_I8),
        ("K tail (cin 5)", Shape::new(1, 6, 6, 5), 4, Window::symmetric(3, 1, 1), U8, CODES_U8),
        ("cin 1", Shape::new(2, 8, 8, 1), 2, Window::symmetric(3, 2, 1), U8, INT32),
        ("cout 72 > tile", Shape::new(1, 5, 5, 9), 72, Window::symmetric(3, 1, 1), I8, CODES_U8),
        ("rows > tiles", Shape::new(3, 17, 13, 4), 5, Window::same(3, 1, 17, 13), U8, CODES_I8),
        ("odd s2 valid", Shape::new(1, 15, 13, 11), 7, Window::symmetric(5, 2, 0), I8, INT32),
    ];
    for (label, shape, cout, win, xs, out) in cases {
        ConvProblem::random(&mut rng, shape, cout, win, xs, out).check(gpu, label);
    }
}

#[test]
fn conv_matches_reference_on_random_problems() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x005e_edc0);
    for case in 0..20 {
        let shape = Shape::new(
            rng.usize(1, 3),
            rng.usize(1, 17),
            rng.usize(1, 17),
            rng.usize(1, 40),
        );
        let cout = rng.usize(1, 40);
        let k = [1, 3, 5, 7][rng.usize(0, 3)];
        let (kh, kw) = match rng.int(0, 3) {
            0 => (1, k), // non-square
            1 => (k, 1),
            _ => (k, k),
        };
        let stride = rng.usize(1, 2);
        let pads = match rng.int(0, 2) {
            0 => {
                let same = Window::same(k, stride, shape.h, shape.w);
                [same.pad_top, same.pad_left, same.pad_bottom, same.pad_right]
            }
            1 => [kh / 2, kw / 2, kh / 2, kw / 2],
            _ => [0, 1, 2, 3].map(|_| rng.usize(0, 3)),
        };
        let mut win = asym(kh, kw, stride, pads);
        if win.out_hw("test", shape.h, shape.w).is_err() {
            // Too small for the window: pad bottom/right until it fits.
            win.pad_bottom += kh.saturating_sub(shape.h + win.pad_top + win.pad_bottom);
            win.pad_right += kw.saturating_sub(shape.w + win.pad_left + win.pad_right);
        }
        let xs = if rng.int(0, 1) == 0 { I8 } else { U8 };
        let out = [CODES_I8, CODES_U8, INT32][rng.usize(0, 2)];
        let p = ConvProblem::random(&mut rng, shape, cout, win, xs, out);
        p.check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn conv_saturates_like_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    // All-extreme codes over K = 3·3·40 = 360 push accumulators far past the 8-bit ranges and,
    // with a left shift, past int32.
    let (shape, cout, win) = (Shape::new(2, 6, 5, 40), 12, Window::symmetric(3, 1, 1));
    for (xs, out, shift) in [
        (U8, CODES_U8, 0),
        (I8, CODES_I8, 3),
        (U8, INT32, -8),
        (I8, INT32, -12),
    ] {
        let (lo, hi) = code_range(xs);
        let k = 9 * shape.c;
        let x: Vec<i32> = (0..shape.len())
            .map(|i| if i % 5 == 0 { lo } else { hi })
            .collect();
        let w: Vec<i32> = (0..cout * k)
            .map(|i| if (i / k) % 2 == 0 { 127 } else { -127 })
            .collect();
        let ep = EpilogueSpec::plain(cout, shift, out);
        let p = ConvProblem {
            shape,
            cout,
            win,
            x_signedness: xs,
            x,
            w,
            ep,
        };
        p.check(gpu, &format!("saturation {xs:?} {out:?} shift {shift}"));
    }
}

#[test]
fn conv_1x1_stride1_goes_through_gemm() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x1a1);
    let pointwise = Window::symmetric(1, 1, 0);
    for (shape, cout, xs, out) in [
        (Shape::new(2, 9, 7, 13), 21, U8, CODES_U8),
        (Shape::new(1, 3, 5, 40), 6, I8, INT32),
        (Shape::new(3, 1, 1, 7), 70, U8, CODES_I8),
    ] {
        let p = ConvProblem::random(&mut rng, shape, cout, pointwise, xs, out);
        p.check(gpu, &format!("pointwise {shape}"));
    }
    // The route itself: only 1×1, stride 1, no padding is a GEMM.
    let w = PackedWeights::upload(gpu, &[1; 4 * 8], 4, 1, 1, 8).unwrap();
    let ep = Epilogue::upload(gpu, &EpilogueSpec::plain(4, 0, INT32), 4).unwrap();
    let x = gpu.upload(&[0u32; 2 * 3 * 3 * 2]).unwrap();
    let out = gpu.alloc::<i32>(2 * 3 * 3 * 4).unwrap();
    for (win, gemm) in [
        (pointwise, true),
        (Window::symmetric(1, 2, 0), false),
        (Window::symmetric(1, 1, 1), false),
        (asym(1, 1, 1, [0, 0, 0, 1]), false),
    ] {
        let c = Conv2d {
            x: &x,
            x_signedness: U8,
            shape: Shape::new(2, 3, 3, 8),
            weights: &w,
            window: win,
            epilogue: &ep,
            out: OutBuffer::Int32(&out),
        };
        assert_eq!(c.is_pointwise(), gemm, "{win:?}");
    }
}

#[test]
fn conv_rejects_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let shape = Shape::new(2, 5, 5, 8);
    let w3 = PackedWeights::upload(gpu, &[1; 6 * 9 * 8], 6, 3, 3, 8).unwrap();
    let w_cin = PackedWeights::upload(gpu, &[1; 6 * 9 * 7], 6, 3, 3, 7).unwrap();
    let w1 = PackedWeights::upload(gpu, &[1; 6 * 8], 6, 1, 1, 8).unwrap();
    let ep = Epilogue::upload(gpu, &EpilogueSpec::plain(6, 0, INT32), 6).unwrap();
    let ep4 = Epilogue::upload(gpu, &EpilogueSpec::plain(4, 0, INT32), 4).unwrap();
    let x = gpu.upload(&vec![0u32; 2 * 5 * 5 * 2]).unwrap();
    let x_short = gpu.upload(&vec![0u32; 2 * 5 * 5 * 2 - 1]).unwrap();
    let out = gpu.alloc::<i32>(2 * 5 * 5 * 8).unwrap();
    let out_small = gpu.alloc::<i32>(2 * 5 * 5 * 4).unwrap();
    let out_codes = gpu.alloc::<u32>(2 * 5 * 5 * 2).unwrap();
    let same = Window::symmetric(3, 1, 1);
    let base = Conv2d {
        x: &x,
        x_signedness: U8,
        shape,
        weights: &w3,
        window: same,
        epilogue: &ep,
        out: OutBuffer::Int32(&out),
    };
    let (pw, w5, valid3) = (
        Window::symmetric(1, 1, 0),
        Window::symmetric(5, 1, 2),
        Window::symmetric(3, 1, 0),
    );
    let tall = Shape::new(2, 2, 25, 8); // 2 rows: a 3x3 valid window does not fit
    #[rustfmt::skip]
    let bad: [(&str, Conv2d, &str); 9] = [
        ("short x", Conv2d { x: &x_short, ..base }, "[2, 5, 5, 8]"),
        ("short x, 1x1", Conv2d { x: &x_short, weights: &w1, window: pw, ..base }, "[2, 5, 5, 8]"),
        ("weights cin", Conv2d { weights: &w_cin, ..base }, "[6, 3, 3, 7]"),
        ("weights vs window", Conv2d { window: w5, ..base }, "5x5"),
        ("window does not fit", Conv2d { window: valid3, shape: tall, ..base }, "does not fit"),
        ("zero stride", Conv2d { window: Window::symmetric(3, 0, 1), ..base }, "stride"),
        ("epilogue channels", Conv2d { epilogue: &ep4, ..base }, "4 channels"),
        ("output size", Conv2d { out: OutBuffer::Int32(&out_small), ..base }, "200 elements"),
        ("output kind", Conv2d { out: OutBuffer::Codes(&out_codes), ..base }, "kind"),
    ];
    for (label, c, needle) in bad {
        let mut enc = gpu.encoder();
        let err = conv::record(gpu, &mut enc, &c).unwrap_err().to_string();
        assert!(
            err.contains("conv") && err.contains(needle),
            "{label}: {err}"
        );
        assert_eq!(enc.dispatch_count(), 0, "{label}");
    }
    let mut enc = gpu.encoder();
    conv::record(gpu, &mut enc, &base).unwrap();
}

#[test]
fn conv_reference_rejects_bad_inputs() {
    let shape = Shape::new(1, 4, 4, 3);
    let ep = EpilogueSpec::plain(2, 0, INT32);
    let (x, w) = (vec![0; shape.len()], vec![0; 2 * 9 * 3]);
    let win = Window::symmetric(3, 1, 1);
    let err = |r: f8net::Result<(Vec<i32>, Shape)>| r.unwrap_err().to_string();
    let e = err(conv_ref(&x[1..], shape, &w, 2, &win, &ep));
    assert!(e.contains("conv") && e.contains("[1, 4, 4, 3]"), "{e}");
    let e = err(conv_ref(&x, shape, &w[1..], 2, &win, &ep));
    assert!(e.contains("conv") && e.contains("[2, 3, 3, 3]"), "{e}");
    let tiny = Shape::new(1, 2, 2, 3);
    let e = err(conv_ref(
        &x[..12],
        tiny,
        &w,
        2,
        &Window::symmetric(3, 1, 0),
        &ep,
    ));
    assert!(e.contains("conv") && e.contains("does not fit"), "{e}");
    let e = err(conv_ref(
        &x,
        shape,
        &w,
        2,
        &win,
        &EpilogueSpec::plain(3, 0, INT32),
    ));
    assert!(e.contains("conv") && e.contains("3 biases"), "{e}");
}
