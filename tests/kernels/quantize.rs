//! quantize / dequantize / requantize (`shaders/quantize.wgsl`) against `reference::quantize`,
//! bit for bit (f32 outputs compared by their bits): every FL of both signednesses, exact ties,
//! NaN, ±inf and huge inputs, every shift −31..=31, clamps inside and outside the code range.

use crate::common::*;
use f8net::fixed::{Format, Signedness};
use f8net::gpu::Gpu;
use f8net::ops::quantize::{self, Dequantize, Quantize, Requantize};
use f8net::reference::quantize as reference;
use f8net::tensor::{unpack_codes, GpuF32Tensor, GpuI32Tensor, GpuQTensor, QTensor, Shape};

/// Every format of the paper's FL range.
fn all_formats() -> Vec<Format> {
    let unsigned = (0..=8).map(|fl| Format::unsigned(fl).unwrap());
    unsigned
        .chain((0..=7).map(|fl| Format::signed(fl).unwrap()))
        .collect()
}

/// Lay `values` out as an NHWC tensor with `c` channels (zero-filled to whole pixels).
fn tensor_of<T: Copy + Default>(values: &[T], n: usize, c: usize) -> (Shape, Vec<T>) {
    let pixels = values.len().div_ceil(c).div_ceil(n);
    let shape = Shape::new(n, 1, pixels, c);
    let mut v = values.to_vec();
    v.resize(shape.len(), T::default());
    (shape, v)
}

/// Read packed words, check padding lanes are 0, and return logical codes.
fn read_codes(gpu: &Gpu, out: &GpuQTensor, label: &str) -> Vec<i32> {
    let words = gpu.read(&out.data).unwrap();
    let np = out.shape.c_padded();
    for (i, &v) in unpack_codes(&words, np, Signedness::Unsigned)
        .iter()
        .enumerate()
    {
        assert!(
            i % np < out.shape.c || v == 0,
            "{label}: padding lane {i} is {v}"
        );
    }
    out.download(gpu).unwrap().codes
}

fn run_quantize(gpu: &Gpu, x: &[f32], c: usize, format: Format, label: &str) {
    let want = reference::quantize(x, format).unwrap();
    let (shape, xs) = tensor_of(x, 2, c);
    let xg = GpuF32Tensor::upload(gpu, shape, &xs).unwrap();
    let out = GpuQTensor::alloc_filled(gpu, shape, format, POISON_U32).unwrap();
    let mut enc = gpu.encoder();
    quantize::record_quantize(gpu, &mut enc, &Quantize { x: &xg, out: &out }).unwrap();
    gpu.submit(enc).unwrap();
    let got = read_codes(gpu, &out, label);
    assert_exact(
        &got[..x.len()],
        &want,
        &format!("{label}: quantize {format:?} c={c}"),
    );
}

#[test]
fn quantize_matches_reference_for_every_format() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x9a17);
    let specials = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        1e30,
        -1e30,
        3e38,
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        255.5,
        256.0,
        -127.5,
        -128.0,
        0.3,
        1.0,
        -1.0,
        5.0,
        -0.2,
    ];
    for (i, format) in all_formats().into_iter().enumerate() {
        let step = format.step();
        let mut x: Vec<f32> = specials.to_vec();
        // Exact ties x·2^fl = k + 0.5 over the whole code range and past it on both sides.
        x.extend((-140..=270).map(|k| (k as f32 + 0.5) * step));
        // Exact codes and random values from well below to well above the range.
        x.extend((-140..=270).map(|k| k as f32 * step));
        x.extend((0..400).map(|_| rng.f32() * 300.0 * step));
        run_quantize(gpu, &x, [1, 3, 4, 5, 7][i % 5], format, "sweep");
    }
}

#[test]
fn quantize_matches_section_12_vectors() {
    let Some(gpu) = gpu_or_skip() else { return };
    // F8NET.md T3 (x, fl, signed, q).
    let t3: [(f32, i32, bool, i32); 11] = [
        (0.3, 7, true, 38),
        (1.0, 7, true, 127),
        (-1.0, 7, true, -127),
        (1.5 / 128.0, 7, true, 2),
        (2.5 / 128.0, 7, true, 2),
        (3.5 / 128.0, 7, true, 4),
        (5.0, 6, false, 255),
        (-0.2, 6, false, 0),
        (0.5, 0, true, 0),
        (1.5, 0, true, 2),
        (-2.5, 0, true, -2),
    ];
    for (x, fl, signed, q) in t3 {
        let f = Format::new(
            if signed {
                Signedness::Signed
            } else {
                Signedness::Unsigned
            },
            fl,
        )
        .unwrap();
        assert_eq!(
            reference::quantize(&[x], f).unwrap(),
            vec![q],
            "T3 {x} fl {fl}"
        );
        run_quantize(gpu, &[x], 1, f, "T3");
    }
}

#[test]
fn dequantize_matches_reference_for_every_code() {
    let Some(gpu) = gpu_or_skip() else { return };
    for (i, format) in all_formats().into_iter().enumerate() {
        let codes: Vec<i32> = (format.min_code()..=format.max_code()).collect();
        let c = [5, 2, 8, 3][i % 4];
        let (shape, cs) = tensor_of(&codes, 1, c);
        let want = reference::dequantize(&cs, format).unwrap();
        let x = GpuQTensor::upload(gpu, &QTensor::new(shape, format, cs).unwrap()).unwrap();
        let out = GpuF32Tensor::alloc_filled(gpu, shape, POISON_F32).unwrap();
        let mut enc = gpu.encoder();
        quantize::record_dequantize(gpu, &mut enc, &Dequantize { x: &x, out: &out }).unwrap();
        gpu.submit(enc).unwrap();
        let padded = gpu.read(&out.data).unwrap();
        for (j, v) in padded.iter().enumerate() {
            assert!(
                j % shape.c_padded() < c || v.to_bits() == 0,
                "padding value {j} is {v}"
            );
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits() as i32).collect::<Vec<_>>();
        assert_exact(
            &bits(&out.download(gpu).unwrap()),
            &bits(&want),
            &format!("dequantize {format:?}"),
        );
    }
}

fn run_requantize(
    gpu: &Gpu,
    acc: &[i32],
    fl_in: i32,
    format: Format,
    clamp: Option<(i32, i32)>,
    label: &str,
) {
    let want = reference::requantize(acc, fl_in, format, clamp).unwrap();
    let c = [6, 1, 4, 3][acc.len() % 4];
    let (shape, xs) = tensor_of(acc, 3, c);
    let x = GpuI32Tensor::upload(gpu, shape, fl_in, &xs).unwrap();
    let out = GpuQTensor::alloc_filled(gpu, shape, format, POISON_U32).unwrap();
    let mut enc = gpu.encoder();
    quantize::record_requantize(
        gpu,
        &mut enc,
        &Requantize {
            x: &x,
            clamp,
            out: &out,
        },
    )
    .unwrap();
    gpu.submit(enc).unwrap();
    let got = read_codes(gpu, &out, label);
    let ctx = format!("{label}: requantize fl_in={fl_in} {format:?} clamp={clamp:?} c={c}");
    assert_exact(&got[..acc.len()], &want, &ctx);
}

#[test]
fn requantize_matches_reference_for_every_shift() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x7e9a);
    let m = i32::MAX;
    for shift in -31i32..=31 {
        let format = if shift % 2 == 0 {
            Format::unsigned(3).unwrap()
        } else {
            Format::signed(3).unwrap()
        };
        let mut acc = vec![
            0,
            1,
            -1,
            m,
            -m,
            i32::MIN,
            1 << 30,
            -(1 << 30),
            127,
            -127,
            255,
            256,
        ];
        if shift > 0 {
            // Exact ties k·2^s + 2^(s−1), and one either side of them.
            for k in -300i64..=300 {
                let t = (k << shift) + (1i64 << (shift - 1));
                acc.extend(
                    [t - 1, t, t + 1]
                        .iter()
                        .filter(|v| v.abs() <= m as i64)
                        .map(|&v| v as i32),
                );
            }
        }
        acc.extend((0..200).map(|_| rng.int(-m, m) >> rng.int(0, 31)));
        let clamp = match shift.rem_euclid(4) {
            0 => None,
            1 => Some((0, m)),
            2 => Some((0, 6 << 3)),
            _ => Some((-20, 100)),
        };
        run_requantize(
            gpu,
            &acc,
            shift + format.fl,
            format,
            clamp,
            &format!("shift {shift}"),
        );
    }
    // Every format, clamps entirely outside the code range (the result still lies inside it).
    for format in all_formats() {
        let acc: Vec<i32> = (0..300).map(|_| rng.int(-1 << 20, 1 << 20)).collect();
        for clamp in [None, Some((-1000, -500)), Some((300, 400)), Some((5, 5))] {
            run_requantize(gpu, &acc, 13, format, clamp, "formats");
        }
    }
    // F8NET.md T5 (acc, fl_in, fl_out, signed, result).
    for (acc, fl_in, fl, signed, q) in [
        (1000, 13, 6, false, 8),
        (64, 7, 0, false, 0),
        (192, 7, 0, false, 2),
        (320, 7, 0, false, 2),
        (-64, 7, 0, true, 0),
        (-192, 7, 0, true, -2),
        (-320, 7, 0, true, -2),
        (40000, 13, 5, false, 156),
        (5, 3, 6, false, 40),
        (-16512, 7, 0, true, -127),
        (70000, 8, 0, false, 255),
    ] {
        let f = Format::new(
            if signed {
                Signedness::Signed
            } else {
                Signedness::Unsigned
            },
            fl,
        )
        .unwrap();
        assert_eq!(
            reference::requantize(&[acc], fl_in, f, None).unwrap(),
            vec![q]
        );
        run_requantize(gpu, &[acc], fl_in, f, None, "T5");
    }
}

#[test]
fn quantize_large_tensor_folds_the_grid() {
    let Some(gpu) = gpu_or_skip() else { return };
    // More than 65535 workgroups of 256 words: the dispatch is folded to 2-D by grid_1d.
    let shape = Shape::new(1, 4100, 4100, 4);
    if (shape.len() * 4) as u64 > gpu.max_binding_bytes() {
        eprintln!("skipped: a {shape} f32 tensor exceeds this device's binding limit");
        return;
    }
    let mut rng = Rng::new(0x9a18);
    let x: Vec<f32> = (0..shape.len()).map(|_| rng.f32() * 3.0).collect();
    run_quantize(gpu, &x, 4, Format::signed(6).unwrap(), "folded grid");
}

#[test]
fn conversions_reject_bad_inputs() {
    let Some(gpu) = gpu_or_skip() else { return };
    let s = Shape::new(1, 2, 3, 5);
    let f = Format::unsigned(4).unwrap();
    let xf = GpuF32Tensor::alloc_filled(gpu, s, 0.0).unwrap();
    let xi = GpuI32Tensor::alloc_filled(gpu, s, 20, 0).unwrap();
    let q = |format| GpuQTensor::alloc_filled(gpu, s, format, 0).unwrap();
    let mut enc = gpu.encoder();
    let bad_fl = Format {
        signedness: Signedness::Unsigned,
        fl: 9,
    };
    let e = quantize::record_quantize(
        gpu,
        &mut enc,
        &Quantize {
            x: &xf,
            out: &q(bad_fl),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("quantize") && e.contains('9'), "{e}");
    let signed8 = Format {
        signedness: Signedness::Signed,
        fl: 8,
    };
    assert!(quantize::record_dequantize(
        gpu,
        &mut enc,
        &Dequantize {
            x: &q(signed8),
            out: &xf
        }
    )
    .is_err());
    let other = GpuQTensor::alloc_filled(gpu, Shape::new(1, 3, 2, 5), f, 0).unwrap();
    let e = quantize::record_quantize(
        gpu,
        &mut enc,
        &Quantize {
            x: &xf,
            out: &other,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("quantize") && e.contains("[1, 3, 2, 5]"), "{e}");
    // fl_in 40 → shift 36; an empty clamp.
    let far = GpuI32Tensor::alloc_filled(gpu, s, 40, 0).unwrap();
    let e = quantize::record_requantize(
        gpu,
        &mut enc,
        &Requantize {
            x: &far,
            clamp: None,
            out: &q(f),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("requantize") && e.contains("36"), "{e}");
    let r = Requantize {
        x: &xi,
        clamp: Some((5, 4)),
        out: &q(f),
    };
    assert!(quantize::record_requantize(gpu, &mut enc, &r).is_err());
    assert!(quantize::record_requantize(
        gpu,
        &mut enc,
        &Requantize {
            x: &xi,
            clamp: None,
            out: &q(f)
        }
    )
    .is_ok());
    // The reference refuses the same.
    assert!(reference::quantize(&[0.0], bad_fl).is_err());
    assert!(reference::dequantize(&[300], f).is_err());
    assert!(reference::requantize(&[0], 40, f, None).is_err());
}
