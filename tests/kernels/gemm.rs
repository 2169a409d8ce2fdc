//! int8 GEMM (`shaders/gemm.wgsl`) against `reference::gemm`, bit for bit.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::gpu::Gpu;
use f8net::ops::gemm::{self, Gemm, OutBuffer};
use f8net::ops::{Epilogue, PackedWeights};
use f8net::reference::{gemm::gemm as gemm_ref, EpilogueSpec, OutputKind};
use f8net::tensor::{pack_codes, unpack_codes, unpad_channels};

/// One random GEMM problem.
#[derive(Debug)]
struct GemmProblem {
    m: usize,
    n: usize,
    k: usize,
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

impl GemmProblem {
    fn random(rng: &mut Rng, m: usize, n: usize, k: usize) -> GemmProblem {
        let x_signedness = if rng.int(0, 1) == 0 {
            Signedness::Signed
        } else {
            Signedness::Unsigned
        };
        let (lo, hi) = code_range(x_signedness);
        let output = match rng.int(0, 2) {
            0 => OutputKind::Codes(Signedness::Signed),
            1 => OutputKind::Codes(Signedness::Unsigned),
            _ => OutputKind::Int32,
        };
        let per_channel = rng.int(0, 1) == 1;
        let base_shift = rng.int(-2, 14);
        let (clamp_lo, clamp_hi) = match rng.int(0, 3) {
            0 => (-i32::MAX, i32::MAX),
            1 => (0, i32::MAX),           // ReLU
            2 => (0, 6 << rng.int(0, 4)), // ReLU6 at some output FL
            _ => (-1000, -500),           // entirely below every code range: the code range wins
        };
        let ep = EpilogueSpec {
            bias: (0..n).map(|_| rng.int(-1 << 20, 1 << 20)).collect(),
            shift: (0..n)
                .map(|_| {
                    if per_channel {
                        rng.int(-3, 16)
                    } else {
                        base_shift
                    }
                })
                .collect(),
            output,
            clamp_lo,
            clamp_hi,
        };
        GemmProblem {
            m,
            n,
            k,
            x_signedness,
            x: rng.codes(m * k, lo, hi),
            w: rng.codes(n * k, -127, 127),
            ep,
        }
    }

    fn run(&self, gpu: &Gpu) -> Vec<i32> {
        let x = gpu.upload(&pack_codes(&self.x, self.k)).unwrap();
        let w = PackedWeights::upload(gpu, &self.w, self.n, 1, 1, self.k).unwrap();
        let ep = Epilogue::upload(gpu, &self.ep, self.n).unwrap();
        let mut enc = gpu.encoder();
        let rows = self.m;
        match self.ep.output {
            OutputKind::Codes(s) => {
                let out = gpu
                    .alloc_filled(rows * self.n.div_ceil(4), POISON_U32)
                    .unwrap();
                let g = Gemm {
                    x: &x,
                    x_signedness: self.x_signedness,
                    m: rows,
                    weights: &w,
                    epilogue: &ep,
                    out: OutBuffer::Codes(&out),
                };
                gemm::record(gpu, &mut enc, &g).unwrap();
                gpu.submit(enc).unwrap();
                let words = gpu.read(&out).unwrap();
                // Padding lanes must be written as 0 as well.
                let all = unpack_codes(&words, self.n.div_ceil(4) * 4, s);
                let np = self.n.div_ceil(4) * 4;
                for r in 0..rows {
                    for c in self.n..np {
                        assert_eq!(all[r * np + c], 0, "padding lane {c} of row {r} is not 0");
                    }
                }
                unpack_codes(&words, self.n, s)
            }
            OutputKind::Int32 => {
                let out = gpu
                    .alloc_filled(rows * self.n.div_ceil(4) * 4, POISON_I32)
                    .unwrap();
                let g = Gemm {
                    x: &x,
                    x_signedness: self.x_signedness,
                    m: rows,
                    weights: &w,
                    epilogue: &ep,
                    out: OutBuffer::Int32(&out),
                };
                gemm::record(gpu, &mut enc, &g).unwrap();
                gpu.submit(enc).unwrap();
                unpad_channels(&gpu.read(&out).unwrap(), self.n)
            }
        }
    }

    fn check(&self, gpu: &Gpu, label: &str) {
        let want = gemm_ref(&self.x, &self.w, self.m, self.n, self.k, &self.ep).unwrap();
        let got = self.run(gpu);
        let ctx = format!(
            "{label}: m={} n={} k={} x={:?} out={:?} clamp={}..{}",
            self.m,
            self.n,
            self.k,
            self.x_signedness,
            self.ep.output,
            self.ep.clamp_lo,
            self.ep.clamp_hi
        );
        assert_exact(&got, &want, &ctx);
    }
}

#[test]
fn gemm_matches_reference_on_random_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(0x6e33);
    // Named edge cases first: 1×1, K not a multiple of 4 or of the 32-code slab, N not a
    // multiple of 4 or of the 64 tile, M across tile edges.
    let shapes = [
        (1, 1, 1),
        (1, 4, 4),
        (3, 5, 7),
        (64, 64, 32),
        (65, 63, 33),
        (130, 72, 200),
        (7, 130, 300),
        (200, 10, 1),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        GemmProblem::random(&mut rng, m, n, k).check(gpu, &format!("edge case {i}"));
    }
    for case in 0..24 {
        let (m, n, k) = (rng.usize(1, 150), rng.usize(1, 90), rng.usize(1, 160));
        GemmProblem::random(&mut rng, m, n, k).check(gpu, &format!("random case {case}"));
    }
}

#[test]
fn gemm_saturates_like_reference() {
    let Some(gpu) = gpu_or_skip() else { return };
    // All-extreme codes with a long K push accumulators far past every 8-bit range and, with a
    // left shift, past int32.
    let (m, n, k) = (9, 12, 4096);
    for (xs, out, shift) in [
        (
            Signedness::Unsigned,
            OutputKind::Codes(Signedness::Unsigned),
            0,
        ),
        (Signedness::Signed, OutputKind::Codes(Signedness::Signed), 3),
        (Signedness::Unsigned, OutputKind::Int32, -6),
    ] {
        let (lo, hi) = code_range(xs);
        let x: Vec<i32> = (0..m * k)
            .map(|i| if i % 3 == 0 { lo } else { hi })
            .collect();
        let w: Vec<i32> = (0..n * k)
            .map(|i| if (i / k) % 2 == 0 { 127 } else { -127 })
            .collect();
        let p = GemmProblem {
            m,
            n,
            k,
            x_signedness: xs,
            x,
            w,
            ep: EpilogueSpec::plain(n, shift, out),
        };
        p.check(gpu, "saturation");
    }
}

#[test]
fn gemm_rejects_bad_shapes() {
    let Some(gpu) = gpu_or_skip() else { return };
    let w = PackedWeights::upload(gpu, &[1; 8 * 12], 8, 1, 1, 12).unwrap();
    let ep = Epilogue::upload(gpu, &EpilogueSpec::plain(8, 0, OutputKind::Int32), 8).unwrap();
    let x = gpu.upload(&[0u32; 5 * 2]).unwrap(); // k4 = 2, but weights need 3
    let out = gpu.alloc::<i32>(5 * 8).unwrap();
    let mut enc = gpu.encoder();
    let g = Gemm {
        x: &x,
        x_signedness: Signedness::Signed,
        m: 5,
        weights: &w,
        epilogue: &ep,
        out: OutBuffer::Int32(&out),
    };
    let err = gemm::record(gpu, &mut enc, &g).unwrap_err().to_string();
    assert!(err.contains("gemm") && err.contains("[5, 3]"), "{err}");
    // A buffer over the device's binding limit is refused before any GPU work.
    let too_big = (gpu.max_binding_bytes() / 4 + 1) as usize;
    let msg = gpu.alloc::<u32>(too_big).err().unwrap().to_string();
    assert!(msg.contains("exceeds the device binding limit"), "{msg}");
    // Weight codes outside -127..=127 and shifts outside -31..=31 are refused.
    assert!(PackedWeights::upload(gpu, &[-128; 4], 1, 1, 1, 4).is_err());
    assert!(Epilogue::upload(gpu, &EpilogueSpec::plain(4, 32, OutputKind::Int32), 4).is_err());
}
