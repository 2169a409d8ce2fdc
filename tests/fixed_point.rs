//! The fixed-point format: F8NET.md §12 vectors T3, T5, T6, T7, T12 and exhaustive sweeps
//! against a wide-integer oracle written here, independently of `src/fixed.rs`.

use crate::common::Rng;
use f8net::fixed::{align_add, input_byte_format, requantize, shift_round, Format, Signedness};
use f8net::tensor::{pack_codes, unpack_codes};

fn s(fl: i32) -> Format {
    Format::signed(fl).unwrap()
}
fn u(fl: i32) -> Format {
    Format::unsigned(fl).unwrap()
}

#[test]
fn t3_quantize_half_even() {
    let cases = [
        (0.3, s(7), 38, 0.296875),
        (1.0, s(7), 127, 0.9921875),
        (-1.0, s(7), -127, -0.9921875),
        (1.5 / 128.0, s(7), 2, 0.015625),
        (2.5 / 128.0, s(7), 2, 0.015625),
        (3.5 / 128.0, s(7), 4, 0.03125),
        (5.0, u(6), 255, 3.984375),
        (-0.2, u(6), 0, 0.0),
        (0.5, s(0), 0, 0.0),
        (1.5, s(0), 2, 2.0),
        (-2.5, s(0), -2, -2.0),
    ];
    for (x, f, q, v) in cases {
        assert_eq!(f.quantize(x), q, "quantize({x}) in {f:?}");
        assert_eq!(f.fake_quant(x), v, "value of {x} in {f:?}");
    }
}

#[test]
fn t5_requantize_accumulator() {
    let cases = [
        (1000, 13, u(6), 8),
        (64, 7, u(0), 0),
        (192, 7, u(0), 2),
        (320, 7, u(0), 2),
        (-64, 7, s(0), 0),
        (-192, 7, s(0), -2),
        (-320, 7, s(0), -2),
        (40000, 13, u(5), 156),
        (5, 3, u(6), 40),
        (-16512, 7, s(0), -127),
        (70000, 8, u(0), 255),
    ];
    for (acc, fl_in, out, want) in cases {
        assert_eq!(
            requantize(acc, fl_in, out),
            want,
            "requantize({acc}, FL {fl_in} -> {out:?})"
        );
    }
}

#[test]
fn t6_dot_product_end_to_end() {
    let x: Vec<i32> = [0.5, 1.25, 3.0, 0.0]
        .iter()
        .map(|&v| u(6).quantize(v))
        .collect();
    let w: Vec<i32> = [0.25, 0.5, 0.125, 0.9]
        .iter()
        .map(|&v| s(7).quantize(v))
        .collect();
    assert_eq!(x, [32, 80, 192, 0]);
    assert_eq!(w, [32, 64, 16, 115]);
    let bias = (0.1f32 * 8192.0).round_ties_even() as i32;
    assert_eq!(bias, 819);
    let acc: i32 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<i32>() + bias;
    assert_eq!(acc, 10035);
    assert!((acc as f32 / 8192.0 - 1.2249756).abs() < 1e-6);
    assert_eq!(requantize(acc, 13, u(5)), 39);
    assert_eq!(requantize(acc, 13, u(4)), 20);
    assert_eq!(requantize(acc, 13, u(3)), 10);
    assert_eq!(requantize(acc, 13, u(7)), 157);
    assert_eq!(requantize(-acc, 13, s(5)), -39);
}

#[test]
fn t7_residual_alignment() {
    let (sum, fl) = align_add(12345, 13, -4000, 11);
    assert_eq!((sum, fl), (-3655, 13));
    assert!((sum as f32 / 8192.0 + 0.44617).abs() < 1e-5);
    // Saturation: aligning a large stream clamps to ±(2^31 − 1) instead of wrapping.
    assert_eq!(align_add(i32::MAX, 10, 1 << 30, 8).0, i32::MAX);
    assert_eq!(align_add(-(1 << 30), 8, -5, 10).0, -i32::MAX);
}

#[test]
fn t12_first_layer_input() {
    let f = input_byte_format();
    assert_eq!((f.signedness, f.fl), (Signedness::Unsigned, 8));
    assert_eq!(f.dequantize(128), 0.5);
    assert_eq!(f.dequantize(255), 0.99609375);
    for k in 0..=255 {
        assert_eq!(f.dequantize(k), k as f32 / 256.0);
        assert_eq!(f.quantize(k as f32 / 256.0), k);
    }
}

#[test]
fn fl_out_of_range_is_an_error() {
    assert!(Format::unsigned(9).is_err());
    assert!(Format::signed(8).is_err());
    assert!(Format::signed(-1).is_err());
    let msg = Format::signed(8).unwrap_err().to_string();
    assert!(msg.contains("fractional length 8"), "{msg}");
}

/// Every byte: packing round-trips, and every code survives dequantize → quantize in every FL.
#[test]
fn every_byte_every_format() {
    for signedness in [Signedness::Signed, Signedness::Unsigned] {
        let f0 = Format { signedness, fl: 0 };
        let codes: Vec<i32> = (f0.min_code()..=f0.max_code()).collect();
        for c in [1, 3, 4, 5, 7] {
            let take = codes.len() / c * c;
            let words = pack_codes(&codes[..take], c);
            assert_eq!(
                unpack_codes(&words, c, signedness),
                &codes[..take],
                "pack c={c}"
            );
        }
        for fl in 0..=if signedness == Signedness::Signed {
            7
        } else {
            8
        } {
            let f = Format { signedness, fl };
            for &q in &codes {
                assert_eq!(f.quantize(f.dequantize(q)), q, "{q} in {f:?}");
            }
            // Out-of-range and non-finite inputs saturate (NaN maps to 0).
            assert_eq!(f.quantize(1e30), f.max_code());
            assert_eq!(f.quantize(-1e30), f.min_code());
            assert_eq!(f.quantize(f32::INFINITY), f.max_code());
            assert_eq!(f.quantize(f32::NAN), 0);
        }
    }
}

/// The oracle: exact rational shift in i128 with round half to even, then ±(2^31 − 1).
fn oracle_shift(acc: i32, shift: i32) -> i64 {
    let a = acc as i128;
    let v = if shift >= 0 {
        let d = 1i128 << shift;
        let q = a.div_euclid(d);
        let r = a.rem_euclid(d);
        if 2 * r > d || (2 * r == d && q % 2 != 0) {
            q + 1
        } else {
            q
        }
    } else {
        a << (-shift)
    };
    v.clamp(-(i32::MAX as i128), i32::MAX as i128) as i64
}

fn accumulators() -> Vec<i32> {
    let mut v = vec![i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1, 0, 1, -1];
    for k in 0..31 {
        let p = 1i64 << k;
        for d in [-1i64, 0, 1, p / 2, -(p / 2), p / 2 + 1] {
            for sign in [1i64, -1] {
                let x = sign * (p + d);
                if x >= i32::MIN as i64 && x <= i32::MAX as i64 {
                    v.push(x as i32);
                }
                // Exact ties for every shift below k: odd multiples of half a step.
                let t = sign * (3 * p / 2);
                if t >= i32::MIN as i64 && t <= i32::MAX as i64 {
                    v.push(t as i32);
                }
            }
        }
    }
    let mut rng = Rng::new(0x5eed);
    v.extend((0..20_000).map(|_| rng.next_u64() as i32));
    v.extend((0..5_000).map(|_| rng.int(-70_000, 70_000)));
    v
}

#[test]
fn every_shift_matches_wide_oracle() {
    let accs = accumulators();
    for shift in -31..=31 {
        for &a in &accs {
            assert_eq!(
                shift_round(a, shift) as i64,
                oracle_shift(a, shift),
                "shift_round({a}, {shift})"
            );
        }
    }
}

#[test]
fn requantize_matches_wide_oracle_for_every_shift_and_format() {
    let accs = accumulators();
    for signedness in [Signedness::Signed, Signedness::Unsigned] {
        let (lo, hi) = match signedness {
            Signedness::Signed => (-127i64, 127i64),
            Signedness::Unsigned => (0, 255),
        };
        for fl_out in [0, 3, 7] {
            let out = Format {
                signedness,
                fl: fl_out,
            };
            for fl_in in fl_out..=fl_out + 31 {
                for &a in accs.iter().step_by(7) {
                    let want = oracle_shift(a, fl_in - fl_out).clamp(lo, hi) as i32;
                    assert_eq!(
                        requantize(a, fl_in, out),
                        want,
                        "requantize({a}, {fl_in} -> {out:?})"
                    );
                }
            }
        }
    }
}
