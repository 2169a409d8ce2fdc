//! One F8Net quantization-aware training step, timed in F8Net fixed point
//! (`Precision::Fixed`: fake-quantized inputs and weights, FLs from statistics every step) and in
//! float (`Precision::Float`, the same network, data and batch: the work a plain f32 step does
//! plus the clamps of F8NET.md §4.4). A step is forward, softmax cross-entropy, backward through
//! the folded BN and both PACT scales, and Nesterov SGD on every parameter.
//!
//! Backends: the CPU reference (`train::net::Net`, im2col + threaded sgemm) and the GPU recording
//! of the same step (`train::gpu::GpuNet`), both timed by wall clock — a training step ends on the
//! host anyway (the loss and the FL statistics are read back; in fixed point two small readbacks
//! per unit on the longest chain, in float two per step).
//! Rounds alternate fixed/float; the median per-step time of each is reported. Inputs are real
//! Fashion-MNIST images (`data::fashion_mnist`: the Debian package or the committed subset),
//! NHWC `[batch][28][28][1]`, pixel k as k/256.

use crate::arch::{ArchConfig, Family};
use crate::data::{self, Loader, LoaderConfig, Split};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::reference::optim::WeightDecayScheme;
use crate::train::conv_bn::Precision;
use crate::train::from_arch::net_from_arch;
use crate::train::gpu::GpuNet;
use crate::train::net::Net;
use serde::Serialize;
use std::time::Instant;

/// The network and batch of a training-step row.
#[derive(Clone, Copy, Debug)]
pub struct TrainCase {
    pub family: Family,
    pub width: f32,
    pub batch: usize,
    /// Steps per timed round.
    pub steps: usize,
    pub rounds: usize,
}

impl TrainCase {
    /// `f8net bench`: ResNet-20 (small form) width 0.5, batch 64 — the `f8net train` setting.
    pub fn full() -> TrainCase {
        TrainCase {
            family: Family::ResNet20,
            width: 0.5,
            batch: 64,
            steps: 2,
            rounds: 5,
        }
    }

    /// `--quick`: width 0.25, batch 16.
    pub fn quick() -> TrainCase {
        TrainCase {
            width: 0.25,
            batch: 16,
            steps: 2,
            rounds: 3,
            ..TrainCase::full()
        }
    }

    pub fn name(&self) -> String {
        format!("train step {} w{}", self.family.name(), self.width)
    }
}

/// One training step at one batch size, fixed point and float.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRow {
    pub name: String,
    pub backend: String,
    pub batch: usize,
    /// Median seconds per step.
    pub fixed_s: f64,
    pub float_s: f64,
    pub fixed_images_per_s: f64,
    pub float_images_per_s: f64,
    /// float time / fixed time (below 1: fake quantization costs time in training).
    pub fixed_speedup: f64,
}

impl TrainRow {
    pub fn summary(&self) -> String {
        format!(
            "{} b{} ({}): F8Net {:.1} images/s, float {:.1} images/s ({:.2}x)",
            self.name,
            self.batch,
            self.backend,
            self.fixed_images_per_s,
            self.float_images_per_s,
            self.fixed_speedup
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The case's seeded networks (fixed point, float) and its real batches.
type Setup = ([Net; 2], Vec<(Vec<f32>, Vec<u32>)>);

fn setup(case: &TrainCase) -> Result<Setup> {
    let data = data::fashion_mnist(Split::Train)?;
    let mut cfg = ArchConfig::small(case.family).with_width(case.width);
    cfg.in_channels = data.c;
    cfg.input_hw = (data.h, data.w);
    cfg.classes = data.classes;
    let arch = cfg.build()?;
    let mut loader = Loader::new(&data, LoaderConfig::train(case.batch, 1995, 2))?;
    let mut batches = Vec::with_capacity(case.steps);
    for _ in 0..case.steps {
        match loader.next_batch() {
            Some(b) => batches.push((b.inputs, b.labels.iter().map(|&l| l as u32).collect())),
            None => break,
        }
    }
    if batches.is_empty() {
        return Err(Error::range("bench", "no training batch in the data set"));
    }
    let nets = [
        net_from_arch(&arch, 1995, Precision::Fixed)?,
        net_from_arch(&arch, 1995, Precision::Float)?,
    ];
    Ok((nets, batches))
}

/// Time `case` on the CPU reference.
pub fn measure_cpu(case: &TrainCase) -> Result<TrainRow> {
    let (mut nets, batches) = setup(case)?;
    // One untimed step each warms caches and allocates the momentum buffers.
    for net in nets.iter_mut() {
        steps(net, &batches[..1])?;
    }
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..case.rounds {
        for (net, t) in nets.iter_mut().zip(&mut times) {
            t.push(steps(net, &batches)? / batches.len() as f64);
        }
    }
    Ok(row(case, "CPU reference, wall clock".into(), times))
}

/// Time `case` on `gpu` (each step waits for its update, so a step is all of its work).
pub fn measure_gpu(gpu: &Gpu, case: &TrainCase) -> Result<TrainRow> {
    let (nets, batches) = setup(case)?;
    let mut gpu_nets = [GpuNet::new(gpu, &nets[0])?, GpuNet::new(gpu, &nets[1])?];
    let run = |g: &mut GpuNet, batches: &[(Vec<f32>, Vec<u32>)]| -> Result<f64> {
        let t = Instant::now();
        for (x, y) in batches {
            g.train_step(x, y, 0.01, 4e-5, WeightDecayScheme::All)?;
            g.wait()?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    for g in gpu_nets.iter_mut() {
        run(g, &batches[..1])?;
    }
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..case.rounds {
        for (g, t) in gpu_nets.iter_mut().zip(&mut times) {
            t.push(run(g, &batches)? / batches.len() as f64);
        }
    }
    Ok(row(case, "GPU, wall clock".into(), times))
}

fn row(case: &TrainCase, backend: String, times: [Vec<f64>; 2]) -> TrainRow {
    let [fixed_s, float_s] = times.map(median);
    let b = case.batch as f64;
    TrainRow {
        name: case.name(),
        backend,
        batch: case.batch,
        fixed_s,
        float_s,
        fixed_images_per_s: b / fixed_s,
        float_images_per_s: b / float_s,
        fixed_speedup: float_s / fixed_s,
    }
}

/// Seconds for one training step per batch of `batches`.
fn steps(net: &mut Net, batches: &[(Vec<f32>, Vec<u32>)]) -> Result<f64> {
    let t = Instant::now();
    for (x, y) in batches {
        net.train_step(x, y, 0.01, 4e-5, WeightDecayScheme::All)?;
    }
    Ok(t.elapsed().as_secs_f64())
}
