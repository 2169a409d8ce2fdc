//! Timing recorded GPU work: a `Clock` brackets `iters` recordings of the same work in one
//! submission with timestamp queries (GPU time) where the adapter has them, wall time around
//! submit-and-wait otherwise. `pair` alternates two workloads (int8, f32) round by round and
//! takes medians, so load changes on a shared machine hit both sides alike.

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuTimer};
use std::time::Instant;

/// Records one run of a workload (one kernel, or one forward pass) into an encoder.
pub type Recorder<'a> = Box<dyn Fn(&mut Encoder) -> Result<()> + 'a>;

/// How many runs to time per submission and how many alternating rounds to take.
#[derive(Clone, Copy, Debug)]
pub struct Rounds {
    /// Alternating rounds; the median is reported.
    pub rounds: usize,
    /// Aim for at least this much time per timed submission (more runs per submission).
    pub target_s: f64,
    /// At least / at most this many runs per timed submission.
    pub min_iters: u64,
    pub max_iters: u64,
}

/// The timestamp timer of one GPU.
pub struct Clock<'g> {
    gpu: &'g Gpu,
    timer: GpuTimer,
}

impl<'g> Clock<'g> {
    pub fn new(gpu: &'g Gpu) -> Result<Clock<'g>> {
        Ok(Clock {
            gpu,
            timer: GpuTimer::new(gpu)?,
        })
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// What the times are: "GPU timestamps" or "wall clock".
    pub fn kind(&self) -> &'static str {
        if self.timer.is_gpu() {
            "GPU timestamps"
        } else {
            "wall clock"
        }
    }

    /// Seconds for `iters` runs of `rec` recorded into one submission.
    pub fn time(&self, iters: u64, rec: &dyn Fn(&mut Encoder) -> Result<()>) -> Result<f64> {
        let gpu = self.gpu;
        let mut enc = gpu.encoder();
        enc.timestamp(&self.timer, 0);
        for _ in 0..iters {
            rec(&mut enc)?;
        }
        enc.timestamp(&self.timer, 1);
        let start = Instant::now();
        gpu.submit(enc)?;
        gpu.wait()?;
        let wall = start.elapsed().as_secs_f64();
        Ok(match self.timer.read_ns(gpu)? {
            Some(ns) if ns > 0.0 => ns * 1e-9,
            _ => wall,
        })
    }

    /// Runs per submission for a workload that took `probe_s` once.
    fn iters_for(probe_s: f64, r: &Rounds) -> u64 {
        let want = (r.target_s / probe_s.max(1e-7)).ceil();
        (want as u64).clamp(r.min_iters.max(1), r.max_iters.max(r.min_iters).max(1))
    }

    /// Seconds per run of one workload: a warm-up run, a probe, then the median of
    /// `rounds` timed submissions.
    pub fn single(&self, rec: &dyn Fn(&mut Encoder) -> Result<()>, r: &Rounds) -> Result<f64> {
        self.time(1, rec)?;
        let iters = Self::iters_for(self.time(1, rec)?, r);
        let mut v = Vec::with_capacity(r.rounds);
        for _ in 0..r.rounds.max(1) {
            v.push(self.time(iters, rec)? / iters as f64);
        }
        median(&v)
    }

    /// Seconds per run of `a` and of `b`, measured in alternating rounds (medians).
    pub fn pair(
        &self,
        a: &dyn Fn(&mut Encoder) -> Result<()>,
        b: &dyn Fn(&mut Encoder) -> Result<()>,
        r: &Rounds,
    ) -> Result<(f64, f64)> {
        self.time(1, a)?;
        self.time(1, b)?;
        let ia = Self::iters_for(self.time(1, a)?, r);
        let ib = Self::iters_for(self.time(1, b)?, r);
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        for _ in 0..r.rounds.max(1) {
            va.push(self.time(ia, a)? / ia as f64);
            vb.push(self.time(ib, b)? / ib as f64);
        }
        Ok((median(&va)?, median(&vb)?))
    }
}

/// The median (upper median for even lengths) of finite positive times.
pub fn median(v: &[f64]) -> Result<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return Err(Error::gpu("bench", "no finite time measured"));
    }
    s.sort_by(f64::total_cmp);
    Ok(s[s.len() / 2])
}
