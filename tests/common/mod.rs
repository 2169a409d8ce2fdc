//! Shared test helpers: the GPU (or a printed skip), seeded random data, poison values, and
//! exact comparison with located failure messages. Tolerances for float kernels live here, once.

use f8net::gpu::Gpu;
use std::sync::OnceLock;

/// Word every packed output is filled with before a run: an unwritten element cannot pass.
pub const POISON_U32: u32 = 0xDEAD_BEEF;
/// Value every int32 output is filled with before a run.
pub const POISON_I32: i32 = -0x2152_4111;
/// Value every f32 output is filled with before a run.
pub const POISON_F32: f32 = f32::NAN;

/// f32 kernels: |gpu − ref| ≤ F32_ATOL + F32_RTOL·|ref| (element-wise ops).
pub const F32_RTOL: f32 = 1e-4;
pub const F32_ATOL: f32 = 1e-5;
/// f32 reductions over K terms: the absolute tolerance grows with √K.
pub fn f32_reduction_atol(k: usize) -> f32 {
    F32_ATOL * (k as f32).sqrt() * 4.0
}

static GPU: OnceLock<Option<Gpu>> = OnceLock::new();

/// The shared GPU, or `None` after printing why the test is skipped.
/// With `F8NET_REQUIRE_GPU=1` a missing adapter fails the test instead.
pub fn gpu_or_skip() -> Option<&'static Gpu> {
    let gpu = GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => {
            eprintln!("GPU tests run on adapter: {}", g.adapter());
            Some(g)
        }
        Err(e) => {
            eprintln!("GPU unavailable: {e}");
            None
        }
    });
    if gpu.is_none() {
        if std::env::var("F8NET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("F8NET_REQUIRE_GPU=1 but no GPU adapter could be created");
        }
        eprintln!("skipped: no GPU adapter");
    }
    gpu.as_ref()
}

/// A small seeded generator (SplitMix64), so failures reproduce from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform integer in lo..=hi.
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % ((hi - lo) as u64 + 1)) as i32
    }
    pub fn usize(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % ((hi - lo) as u64 + 1)) as usize
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Codes in lo..=hi, with about 1 in 8 at an extreme (to hit saturation paths).
    pub fn codes(&mut self, len: usize, lo: i32, hi: i32) -> Vec<i32> {
        (0..len)
            .map(|_| match self.next_u64() % 16 {
                0 => lo,
                1 => hi,
                _ => self.int(lo, hi),
            })
            .collect()
    }
}

/// Assert two integer slices are equal; on failure print the first mismatches and `context`.
pub fn assert_exact(got: &[i32], want: &[i32], context: &str) {
    assert_eq!(got.len(), want.len(), "length differs: {context}");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    if !bad.is_empty() {
        let shown: Vec<String> = bad
            .iter()
            .take(8)
            .map(|&i| format!("[{i}] got {} want {}", got[i], want[i]))
            .collect();
        panic!(
            "{} of {} elements differ ({context}): {}",
            bad.len(),
            got.len(),
            shown.join(", ")
        );
    }
}

/// Assert f32 slices agree within |a − b| ≤ atol + rtol·|b|.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, context: &str) {
    assert_eq!(got.len(), want.len(), "length differs: {context}");
    let mut bad = Vec::new();
    for i in 0..got.len() {
        let tol = atol + rtol * want[i].abs();
        // NaN (a poisoned, unwritten element) must fail too.
        let ok = (got[i] - want[i]).abs() <= tol;
        if !ok {
            bad.push(format!(
                "[{i}] got {} want {} diff {} tol {tol}",
                got[i],
                want[i],
                (got[i] - want[i]).abs()
            ));
        }
    }
    if !bad.is_empty() {
        panic!(
            "{} of {} elements out of tolerance ({context}): {}",
            bad.len(),
            got.len(),
            bad.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

/// Finite-difference gradient checks (float ops, quantization off): central differences with
/// step FD_EPS; an analytic gradient g passes against the numeric one d when
/// |g − d| ≤ FD_ATOL + FD_RTOL·|d|. Ops are linear or piecewise linear away from kinks, so
/// test points keep a margin of more than FD_EPS from kinks (ReLU at 0, clip at α, max ties).
pub const FD_EPS: f32 = 1e-2;
pub const FD_RTOL: f32 = 2e-2;
pub const FD_ATOL: f32 = 2e-3;
