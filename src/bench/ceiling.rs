//! The device's own ceilings, measured in the same run as the kernels (WGPU.md §7.3): a
//! register-only `dot4I8Packed` chain (int8 ops/s), an f32 FMA chain (flops/s) and a large
//! kernel copy (bytes/s, read + write), each timed over at least 20 dispatches after a warm-up.
//! Sizes: a real GPU gets ~1M invocations × 1024 steps per chain dispatch (enough to fill an H200)
//! and a 256 MiB copy (beyond its 50 MB L2); a software adapter a size that takes milliseconds.

use super::timing::{Clock, Rounds};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::ceiling::{self, Chain, ChainRun};
use serde::Serialize;

/// Dispatch sizes of the ceiling kernels.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CeilingSize {
    /// Invocations of a chain dispatch.
    pub invocations: usize,
    /// Steps of every chain per invocation.
    pub iters: u32,
    /// Bytes of the copy's source (the same again is written).
    pub copy_bytes: usize,
}

impl CeilingSize {
    /// The default for `gpu`: large on hardware, small on a software adapter.
    pub fn for_gpu(gpu: &Gpu) -> CeilingSize {
        let size = if gpu.is_software() {
            CeilingSize {
                invocations: 16 * 1024,
                iters: 64,
                copy_bytes: 16 << 20,
            }
        } else {
            CeilingSize {
                invocations: 1 << 20,
                iters: 1024,
                copy_bytes: 256 << 20,
            }
        };
        size.clamped(gpu)
    }

    /// A tiny size (tests).
    pub fn tiny(gpu: &Gpu) -> CeilingSize {
        CeilingSize {
            invocations: 1024,
            iters: 16,
            copy_bytes: 1 << 20,
        }
        .clamped(gpu)
    }

    fn clamped(mut self, gpu: &Gpu) -> CeilingSize {
        let limit = (gpu.max_binding_bytes() as usize / 16) * 16;
        self.copy_bytes = self.copy_bytes.min(limit).max(16);
        self
    }
}

/// One measured ceiling.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    /// "dp4a", "fma" or "copy".
    pub name: &'static str,
    /// Operations (or bytes moved, for the copy) per second.
    pub per_s: f64,
    /// "ops/s", "flop/s" or "B/s".
    pub unit: &'static str,
    /// Seconds per dispatch (median).
    pub seconds: f64,
    /// Work per dispatch (ops or bytes).
    pub work: f64,
}

/// The three ceilings; fractions are reported against these.
#[derive(Clone, Debug, Serialize)]
pub struct Ceilings {
    pub size: CeilingSize,
    pub dp4a: Ceiling,
    pub fma: Ceiling,
    pub copy: Ceiling,
}

impl Ceilings {
    pub fn all(&self) -> [&Ceiling; 3] {
        [&self.dp4a, &self.fma, &self.copy]
    }
}

/// Seed words of the chain kernels (xorshift; any values work, none may be folded in).
fn seeds(words: usize) -> Vec<u32> {
    let mut s = 0x9E37_79B9u32;
    (0..4 * words)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        })
        .collect()
}

/// Measure the three ceilings on `clock`'s GPU.
pub fn measure(clock: &Clock<'_>, size: CeilingSize, rounds: &Rounds) -> Result<Ceilings> {
    let gpu = clock.gpu();
    let r = Rounds {
        min_iters: rounds.min_iters.max(20),
        max_iters: rounds.max_iters.max(20),
        ..*rounds
    };
    let seed_buf = gpu.upload(&seeds(1024))?;
    let out = gpu.alloc::<u32>(4 * size.invocations)?;
    let chain = |c: Chain| -> Result<Ceiling> {
        let run = ChainRun {
            chain: c,
            seeds: &seed_buf,
            out: &out,
            invocations: size.invocations,
            iters: size.iters,
            salt: 0x0123_4567,
        };
        let t = clock.single(&|enc| ceiling::record_chain(gpu, enc, &run), &r)?;
        let work = c.ops(size.invocations, size.iters);
        Ok(match c {
            Chain::Dp4a => Ceiling {
                name: "dp4a",
                per_s: work / t,
                unit: "ops/s",
                seconds: t,
                work,
            },
            Chain::Fma => Ceiling {
                name: "fma",
                per_s: work / t,
                unit: "flop/s",
                seconds: t,
                work,
            },
        })
    };
    let dp4a = chain(Chain::Dp4a)?;
    let fma = chain(Chain::Fma)?;
    let src = gpu.alloc::<u32>(size.copy_bytes / 4)?;
    let dst = gpu.alloc::<u32>(size.copy_bytes / 4)?;
    let t = clock.single(&|enc| ceiling::record_copy(gpu, enc, &src, &dst), &r)?;
    let work = 2.0 * size.copy_bytes as f64;
    let copy = Ceiling {
        name: "copy",
        per_s: work / t,
        unit: "B/s",
        seconds: t,
        work,
    };
    Ok(Ceilings {
        size,
        dp4a,
        fma,
        copy,
    })
}
