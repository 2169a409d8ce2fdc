//! Per-channel weight formats on the GPU (`shaders/fake_quant_rows.wgsl`) against their CPU
//! specs: `fake_quant_rows` bit for bit against `reference::fake_quant::fix_quant_rows` (values
//! and STE masks, every FL −8..=15, rounding ties, clamps, NaN, ±∞, −0), and `row_stats` σ against
//! `fraclen::unbiased_std` within F32_RTOL with the same FLs as `WeightFormat::fls`; both weight
//! layouts (dense OHWI rows with padded input lanes, depthwise `[kh][kw][CP]`), padding lanes of
//! the input nonzero; outputs NaN-poisoned, padded output channels of dense weights untouched;
//! bad input gives `Err`.

use crate::common::*;
use f8net::fixed::{FlRange, Format, Signedness};
use f8net::fraclen::{fl_from_std_in, unbiased_std};
use f8net::gpu::{Gpu, GpuBuffer};
use f8net::ops::depthwise_f32::F32DepthwiseWeights;
use f8net::ops::fake_quant::{self as fq, F32Rows, FakeQuantBackward};
use f8net::ops::fake_quant_rows::{self as rows, FakeQuantRows, RowStats, WeightRows};
use f8net::ops::fold::WeightLayout;
use f8net::ops::gemm_f32::F32Weights;
use f8net::reference::fake_quant::{fix_quant_backward, fix_quant_rows};
use f8net::tensor::unpad_channels;
use f8net::train::weight_format::{WeightFormat, ACC_FL_QUANTIZED, ACC_FL_SHARED};

/// A unit's weights: host `[cout][per]` values uploaded in the GPU layout of its kind.
#[derive(Clone, Copy)]
enum Kind {
    /// OHWI with `cin` input channels.
    Dense {
        cin: usize,
    },
    Depthwise,
}

struct Weights {
    kind: Kind,
    cout: usize,
    taps: usize,
    data: GpuBuffer<f32>,
}

impl Weights {
    /// Upload with every padding lane and padded channel 0.75 (a value the kernels would quantize
    /// to a nonzero code with a passing mask, and count in σ, unless they skip it).
    fn upload(gpu: &Gpu, kind: Kind, cout: usize, taps: usize, host: &[f32]) -> Weights {
        let bias = vec![0.0; cout];
        let data = match kind {
            Kind::Dense { cin } => {
                F32Weights::upload(gpu, host, &bias, cout, taps, 1, cin)
                    .unwrap()
                    .w
            }
            Kind::Depthwise => {
                F32DepthwiseWeights::upload(gpu, host, &bias, cout, taps, 1)
                    .unwrap()
                    .w
            }
        };
        let mut w = Weights {
            kind,
            cout,
            taps,
            data,
        };
        let (words, lane_w) = (w.rows(&w.data).x.words(), w.lanes().div_ceil(4) * 4);
        let mut raw = gpu.read(&w.data).unwrap();
        for (j, v) in raw.iter_mut().enumerate() {
            if j >= words * 4 || j % lane_w >= w.lanes() {
                *v = 0.75;
            }
        }
        w.data = gpu.upload(&raw).unwrap();
        w
    }

    /// The rows of `buf` (a buffer in this layout).
    fn rows<'a>(&self, buf: &'a GpuBuffer<f32>) -> WeightRows<'a> {
        let (x, layout) = match self.kind {
            Kind::Dense { cin } => (
                F32Rows {
                    data: buf,
                    rows: self.cout * self.taps,
                    c: cin,
                },
                WeightLayout::Rows {
                    per: self.taps * cin.div_ceil(4) * 4,
                },
            ),
            Kind::Depthwise => (
                F32Rows {
                    data: buf,
                    rows: self.taps,
                    c: self.cout,
                },
                WeightLayout::Depthwise { taps: self.taps },
            ),
        };
        WeightRows {
            x,
            layout,
            channels: self.cout,
        }
    }

    /// Logical values in layout order (rows of `lanes()`) in host `[cout][per]` order.
    fn to_host<T: Copy>(&self, v: &[T]) -> Vec<T> {
        match self.kind {
            Kind::Dense { .. } => v.to_vec(),
            Kind::Depthwise => (0..self.cout * self.taps)
                .map(|i| v[(i % self.taps) * self.cout + i / self.taps])
                .collect(),
        }
    }

    /// Row lanes of the F32Rows (`c`).
    fn lanes(&self) -> usize {
        match self.kind {
            Kind::Dense { cin } => cin,
            Kind::Depthwise => self.cout,
        }
    }
}

fn bits(v: &[f32]) -> Vec<i32> {
    v.iter().map(|f| f.to_bits() as i32).collect()
}

/// A row at FL `fl`: rounding ties, grid points, both clamps, specials and random values.
fn row_values(rng: &mut Rng, per: usize, fl: i32) -> Vec<f32> {
    let step = (-fl as f32).exp2();
    let specials = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30];
    (0..per)
        .map(|_| match rng.usize(0, 9) {
            0 => specials[rng.usize(0, specials.len() - 1)],
            1..=3 => (rng.int(-130, 130) as f32 + 0.5) * step,
            4 | 5 => rng.int(-128, 128) as f32 * step,
            _ => rng.f32() * 140.0 * step,
        })
        .collect()
}

fn cases() -> Vec<(&'static str, Kind, usize, usize)> {
    vec![
        ("dense 9 taps cin 3", Kind::Dense { cin: 3 }, 17, 9),
        ("dense 1x1 cin 5", Kind::Dense { cin: 5 }, 16, 1),
        ("dense 9 taps cin 8", Kind::Dense { cin: 8 }, 6, 9),
        ("depthwise 9 taps", Kind::Depthwise, 18, 9),
        ("depthwise 25 taps", Kind::Depthwise, 16, 25),
    ]
}

#[test]
fn train_fake_quant_rows_gpu_bit_exact_both_layouts() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0xfa4c);
    for (label, kind, cout, taps) in cases() {
        let per = taps
            * match kind {
                Kind::Dense { cin } => cin,
                Kind::Depthwise => 1,
            };
        // Every FL −8..=15 across the channels, a row's values on its own FL's grid.
        let fls: Vec<i32> = (0..cout).map(|c| ((c * 7 + 3) % 24) as i32 - 8).collect();
        let host: Vec<f32> = fls
            .iter()
            .flat_map(|&fl| row_values(&mut rng, per, fl))
            .collect();
        let want = fix_quant_rows(&host, &fls).unwrap();
        let w = Weights::upload(gpu, kind, cout, taps, &host);
        let len = w.data.len();
        let out = gpu.alloc_filled(len, POISON_F32).unwrap();
        let mask = gpu.alloc_filled(len / 4, POISON_U32).unwrap();
        let scales = gpu.upload(&rows::row_scales(&fls).unwrap()).unwrap();
        let mut enc = gpu.encoder();
        let q = FakeQuantRows {
            w: w.rows(&w.data),
            scales: &scales,
            out: &out,
            mask: &mask,
        };
        rows::record_fake_quant_rows(gpu, &mut enc, &q).unwrap();
        // The STE backward of a random gradient through the GPU mask (`fake_quant_backward`).
        let g_host: Vec<f32> = (0..host.len()).map(|_| rng.f32()).collect();
        let g = Weights::upload(gpu, kind, cout, taps, &g_host);
        let grad_in = gpu.alloc_filled(len, POISON_F32).unwrap();
        let b = FakeQuantBackward {
            grad_out: g.rows(&g.data).x,
            mask: &mask,
            grad_in: &grad_in,
        };
        fq::record_fake_quant_backward(gpu, &mut enc, &b).unwrap();
        gpu.submit(enc).unwrap();

        let x = w.rows(&w.data).x;
        let (words, c) = (x.words(), w.lanes());
        let raw_mask = gpu.read(&mask).unwrap();
        assert!(
            raw_mask[words..].iter().all(|&m| m == POISON_U32),
            "{label}: mask past the used rows"
        );
        let lane_w = c.div_ceil(4) * 4;
        let padding_bits = (0..words * 4)
            .filter(|j| j % lane_w >= c)
            .any(|j| (raw_mask[j / 4] >> (8 * (j % 4))) & 0xff != 0);
        assert!(!padding_bits, "{label}: mask bytes of padding lanes are 0");
        let got_mask = w.to_host(&fq::unpack_mask(&raw_mask[..words], c));
        let as_i = |v: &[bool]| v.iter().map(|&b| b as i32).collect::<Vec<_>>();
        assert_exact(
            &as_i(&got_mask),
            &as_i(&want.mask),
            &format!("{label}: mask"),
        );
        let raw = gpu.read(&out).unwrap();
        assert!(
            raw[..words * 4]
                .iter()
                .enumerate()
                .all(|(j, &v)| j % lane_w < c || v.to_bits() == 0),
            "{label}: padding lanes are +0"
        );
        assert!(
            raw[words * 4..].iter().all(|v| v.is_nan()),
            "{label}: padded output channels untouched"
        );
        let got = w.to_host(&unpad_channels(&raw[..words * 4], c));
        assert_exact(
            &bits(&got),
            &bits(&want.values),
            &format!("{label}: values"),
        );
        let want_g = fix_quant_backward(&g_host, &want.mask).unwrap();
        let got_g = gpu.read(&grad_in).unwrap();
        let got_g = w.to_host(&unpad_channels(&got_g[..words * 4], c));
        assert_exact(&bits(&got_g), &bits(&want_g), &format!("{label}: backward"));
    }
}

/// `row_stats` σ per channel, and the FLs they give, for an input at FL `x_fl`.
#[test]
fn train_row_stats_gpu_matches_unbiased_std_and_fls() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x5ad0);
    for (label, kind, cout, taps) in cases() {
        let per = taps
            * match kind {
                Kind::Dense { cin } => cin,
                Kind::Depthwise => 1,
            };
        // Spreads from 2^-13 to 2^2 and offset means (the two-pass sum keeps σ exact).
        let host: Vec<f32> = (0..cout)
            .flat_map(|ch| {
                let spread = (2 - (ch as i32 % 16)) as f32;
                let (s, m) = (spread.exp2(), rng.f32() * spread.exp2() * 4.0);
                (0..per).map(|_| m + s * rng.f32()).collect::<Vec<_>>()
            })
            .collect();
        let w = Weights::upload(gpu, kind, cout, taps, &host);
        let read = || {
            let out = gpu
                .alloc_filled(rows::row_block_len(cout), POISON_F32)
                .unwrap();
            let mut enc = gpu.encoder();
            let a = RowStats {
                w: w.rows(&w.data),
                out: &out,
            };
            rows::record_row_stats(gpu, &mut enc, &a).unwrap();
            gpu.submit(enc).unwrap();
            gpu.read(&out).unwrap()
        };
        let raw = read();
        let cp = cout.div_ceil(4) * 4;
        let pad = raw[cout..cp].iter().chain(&raw[cp + cout..]);
        assert!(pad.clone().all(|v| v.is_nan()), "{label}: padding channels");
        let count = w.rows(&w.data).count();
        assert_eq!(count, per, "{label}: count");
        let got: Vec<f32> = raw[cp..cp + cout]
            .iter()
            .map(|&ss| rows::row_std(ss, count))
            .collect();
        let want: Vec<f32> = host.chunks(per).map(unbiased_std).collect();
        assert_close(&got, &want, 0.0, F32_RTOL, &format!("{label}: σ"));
        let sums: Vec<f32> = host.chunks(per).map(|r| r.iter().sum()).collect();
        let scale = host.iter().fold(0f32, |m, v| m.max(v.abs()));
        let atol = f32_reduction_atol(per) * scale;
        assert_close(&raw[..cout], &sums, atol, F32_RTOL, &format!("{label}: Σx"));
        for x_fl in [0, 6, 8] {
            for cap in [ACC_FL_SHARED, ACC_FL_QUANTIZED] {
                let fl = |sd: f32| {
                    fl_from_std_in(sd, Signedness::Signed, FlRange::Trained)
                        .min(cap - x_fl)
                        .max(-8)
                };
                let fls: Vec<i32> = got.iter().map(|&sd| fl(sd)).collect();
                let spec = WeightFormat::PerChannel.fls(&host, cout, x_fl, cap);
                assert_eq!(fls, spec, "{label}: FLs at input FL {x_fl}, cap {cap}");
            }
        }
        assert_exact(&bits(&read()), &bits(&raw), &format!("{label}: rerun"));
    }
}

#[test]
fn train_fake_quant_rows_gpu_refuses_bad_input() {
    let Some(gpu) = gpu_or_skip() else { return };
    assert!(rows::row_scales(&[3, 16]).is_err());
    assert!(rows::row_scales(&[-9]).is_err());
    let step = |fl| {
        Format::with_range(Signedness::Signed, fl, FlRange::Trained)
            .unwrap()
            .step()
    };
    let want = [1.0, 32768.0, 1.0 / 256.0, 1.0, 1.0, step(15), 256.0, 1.0];
    assert_eq!(rows::row_scales(&[0, 15, -8]).unwrap(), want);
    let w = Weights::upload(gpu, Kind::Dense { cin: 3 }, 5, 9, &vec![0.5; 5 * 27]);
    let scales = gpu.upload(&rows::row_scales(&[1; 5]).unwrap()).unwrap();
    let out = gpu.alloc(w.data.len()).unwrap();
    let mask = gpu.alloc(w.data.len() / 4).unwrap();
    let good = FakeQuantRows {
        w: w.rows(&w.data),
        scales: &scales,
        out: &out,
        mask: &mask,
    };
    let mut enc = gpu.encoder();
    rows::record_fake_quant_rows(gpu, &mut enc, &good).unwrap();
    let wrong_channels = WeightRows {
        channels: 4,
        ..good.w
    };
    let e = rows::record_fake_quant_rows(
        gpu,
        &mut enc,
        &FakeQuantRows {
            w: wrong_channels,
            ..good
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fake_quant_rows"), "{e}");
    let short: GpuBuffer<f32> = gpu.alloc(3).unwrap();
    let bad = FakeQuantRows {
        scales: &short,
        ..good
    };
    assert!(rows::record_fake_quant_rows(gpu, &mut enc, &bad).is_err());
    let bad = FakeQuantRows {
        out: &short,
        ..good
    };
    assert!(rows::record_fake_quant_rows(gpu, &mut enc, &bad).is_err());
    let depthwise = WeightRows {
        layout: WeightLayout::Depthwise { taps: 9 },
        ..good.w
    };
    let a = RowStats {
        w: depthwise,
        out: &out,
    };
    assert!(rows::record_row_stats(gpu, &mut enc, &a).is_err());
    let a = RowStats {
        w: good.w,
        out: &short,
    };
    assert!(rows::record_row_stats(gpu, &mut enc, &a).is_err());
}
