//! Launchers of `shaders/ceiling.wgsl`: the device-ceiling microkernels of `f8net bench` — a
//! register-only `dot4I8Packed` chain (int8 TOPS), an f32 FMA chain (TFLOPS) and a buffer copy
//! (GB/s) — and their CPU twins.
//!
//! CPU-side note: these kernels are yardsticks, not model operations, so they have no entry in
//! `src/reference/`. The twins below (`dp4a_chain`, `fma_chain`) compute what one invocation of
//! the chain kernels writes, only so a test can check on a tiny dispatch that the chains really
//! run (and are not folded away); the copy is checked by reading the destination back.
//!
//! Layouts: `seeds` vec4 words as `[4 · seed_words]` u32; chain output `[4 · invocations]` u32
//! (one vec4 per invocation); copy source and destination `[4 · words]` u32, equal lengths.

use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};

/// Uniforms of ceiling.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CeilingParams {
    pub iters: u32,
    pub seed_words: u32,
    pub total: u32,
    pub salt: u32,
    pub fa: f32,
    pub fb: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Invocations per workgroup (`WG`).
pub const WORKGROUP: usize = 256;
/// Independent chains per invocation (`a0..a7`, `f0..f7`).
pub const CHAINS: usize = 8;
/// vec4 words per copy invocation (`PER`).
const COPY_PER: usize = 4;
/// The FMA chains' multiplier and addend (fixed point 1: bounded, never denormal).
pub const FMA_A: f32 = 0.999;
pub const FMA_B: f32 = 0.001;

/// Which arithmetic chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// `a = dot4I8Packed(a, w) + a`: 4 MACs = 8 ops per step.
    Dp4a,
    /// `f = fma(f, fa, fb)`: 2 flops per step.
    Fma,
}

impl Chain {
    /// Arithmetic operations per chain step (2 per multiply-accumulate).
    pub fn ops_per_step(self) -> u64 {
        match self {
            Chain::Dp4a => 8,
            Chain::Fma => 2,
        }
    }

    /// Operations of one dispatch of `invocations` × `iters` steps of every chain.
    pub fn ops(self, invocations: usize, iters: u32) -> f64 {
        invocations as f64 * iters as f64 * CHAINS as f64 * self.ops_per_step() as f64
    }
}

/// One dispatch of a chain kernel.
pub struct ChainRun<'a> {
    pub chain: Chain,
    pub seeds: &'a GpuBuffer<u32>,
    pub out: &'a GpuBuffer<u32>,
    pub invocations: usize,
    pub iters: u32,
    pub salt: u32,
}

/// Record one chain dispatch into `enc`.
pub fn record_chain(gpu: &Gpu, enc: &mut Encoder, c: &ChainRun<'_>) -> Result<()> {
    let op = "ceiling";
    if c.seeds.is_empty() || c.seeds.len() % 4 != 0 {
        return Err(Error::shape(
            op,
            format!(
                "{} seed values, need a non-zero multiple of 4",
                c.seeds.len()
            ),
        ));
    }
    if c.out.len() != 4 * c.invocations {
        return Err(Error::shape(
            op,
            format!(
                "out has {} values, {} invocations need {}",
                c.out.len(),
                c.invocations,
                4 * c.invocations
            ),
        ));
    }
    let params = CeilingParams {
        iters: c.iters,
        seed_words: to_u32(op, c.seeds.len() / 4)?,
        total: to_u32(op, c.invocations)?,
        salt: c.salt,
        fa: FMA_A,
        fb: FMA_B,
        ..CeilingParams::default()
    };
    let groups = to_u32(op, c.invocations.div_ceil(WORKGROUP))?;
    let kernel = match c.chain {
        Chain::Dp4a => Kernel::CeilingDp4a,
        Chain::Fma => Kernel::CeilingFma,
    };
    enc.dispatch(
        gpu,
        kernel,
        &[c.seeds.bind(), c.out.bind()],
        &params,
        grid_1d(groups, gpu.max_workgroups_per_dim()),
    )
}

/// Record `dst = src` through the copy kernel (lengths equal, a multiple of 4 values).
pub fn record_copy(
    gpu: &Gpu,
    enc: &mut Encoder,
    src: &GpuBuffer<u32>,
    dst: &GpuBuffer<u32>,
) -> Result<()> {
    let op = "ceiling_copy";
    if src.len() != dst.len() || src.len() % 4 != 0 {
        return Err(Error::shape(
            op,
            format!(
                "src {} and dst {} values: need equal multiples of 4",
                src.len(),
                dst.len()
            ),
        ));
    }
    let words = src.len() / 4;
    let params = CeilingParams {
        total: to_u32(op, words)?,
        ..CeilingParams::default()
    };
    let groups = to_u32(op, words.div_ceil(WORKGROUP * COPY_PER))?;
    enc.dispatch(
        gpu,
        Kernel::CeilingCopy,
        &[src.bind(), dst.bind()],
        &params,
        grid_1d(groups, gpu.max_workgroups_per_dim()),
    )
}

/// `dot4I8Packed`: the sum of the four signed byte products.
pub fn dot4_i8_packed(a: u32, b: u32) -> i32 {
    (0..4)
        .map(|l| ((a >> (8 * l)) as u8 as i8 as i32) * ((b >> (8 * l)) as u8 as i8 as i32))
        .sum()
}

/// CPU twin of one `ceiling_dp4a` invocation with seed word `s`: the vec4 it writes.
pub fn dp4a_chain(s: [u32; 4], salt: u32, iters: u32) -> [u32; 4] {
    let w = s[1] ^ salt;
    let mut a = [
        s[0],
        s[1],
        s[2],
        s[3],
        s[0] ^ salt,
        s[1] ^ 0x5a5a_5a5a,
        s[2] ^ salt,
        s[3] ^ 0x5a5a_5a5a,
    ];
    for _ in 0..iters {
        for v in &mut a {
            *v = dot4_i8_packed(*v, w).wrapping_add(*v as i32) as u32;
        }
    }
    [a[0] ^ a[4], a[1] ^ a[5], a[2] ^ a[6], a[3] ^ a[7]]
}

/// CPU twin of one `ceiling_fma` invocation with seed word `s` (fused multiply-add, like WGSL
/// `fma` on hardware with FMA; a GPU without it may differ in the last bits).
pub fn fma_chain(s: [u32; 4], iters: u32) -> [f32; 4] {
    let scale = 1.0 / 65536.0;
    let mut f = [0f32; 8];
    for l in 0..4 {
        f[l] = (s[l] & 0xffff) as f32 * scale;
        f[l + 4] = (s[l] >> 16) as f32 * scale;
    }
    for _ in 0..iters {
        for v in &mut f {
            *v = v.mul_add(FMA_A, FMA_B);
        }
    }
    [f[0] + f[4], f[1] + f[5], f[2] + f[6], f[3] + f[7]]
}
