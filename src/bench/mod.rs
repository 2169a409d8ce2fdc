//! Throughput benchmarks shared by `f8net bench` and `cargo bench` (`benches/kernels.rs`,
//! `benches/models.rs`): the device's own ceilings, kernels at real layer shapes and whole models,
//! each in int8 fixed point and in f32 — the same work both ways — in one run.
//!
//! - [`timing`]: GPU timestamps (wall clock where the adapter has none), alternating int8/f32
//!   rounds, medians.
//! - [`ceiling`]: dp4a chain (ops/s), f32 FMA chain (flop/s), copy (B/s) on this device.
//! - [`layers`]: the layer shape table (ResNet-18, MobileNet-V2) and its int8/f32 recorders.
//! - [`models`]: EfficientNet-Lite0, ResNet-18 and MobileNet-V2 (random weights) int8
//!   (`GpuModel`) vs f32 (`GpuFloatModel`).
//! - [`train`]: one QAT training step, F8Net fixed point vs float (GPU and CPU reference, wall
//!   clock).
//! - [`report`]: rows with GOPS, images/s, int8/f32 ratio and fractions of the measured
//!   ceilings; markdown and JSON.
//!
//! Ops are 2 per multiply-accumulate for both int8 and f32. `run` reports progress through a
//! callback (the CLI prints it to stderr).

pub mod ceiling;
pub mod layers;
pub mod models;
pub mod report;
pub mod timing;
pub mod train;

pub use report::{KernelRow, ModelRow, Report};
pub use train::{TrainCase, TrainRow};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use ceiling::CeilingSize;
use std::path::PathBuf;
use std::time::Instant;
use timing::{Clock, Rounds};

/// What to run and how long to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// `--quick`: fewer rounds, smaller batches (under a minute on lavapipe).
    pub quick: bool,
    /// Keep only kernel and model rows whose name contains this (case-insensitive).
    /// Ceilings always run: every fraction needs them.
    pub filter: String,
    pub kernel_batches: Vec<usize>,
    pub model_batches: Vec<usize>,
    pub kernels: bool,
    pub models: bool,
    /// The training-step row (`None`: skipped).
    pub train: Option<TrainCase>,
    pub rounds: Rounds,
    /// Ceiling dispatch sizes (`None`: chosen for the adapter).
    pub ceiling_size: Option<CeilingSize>,
    /// Float EfficientNet-Lite0 checkpoint (`None`: look for it, else the float twin).
    pub float_model: Option<PathBuf>,
}

impl BenchConfig {
    /// The full run: kernels at batch 1 and 32, models at batch 1 and 32, 7 rounds.
    pub fn full() -> BenchConfig {
        BenchConfig {
            quick: false,
            filter: String::new(),
            kernel_batches: vec![1, 32],
            model_batches: vec![1, 32],
            kernels: true,
            models: true,
            train: Some(TrainCase::full()),
            rounds: Rounds {
                rounds: 7,
                target_s: 0.05,
                min_iters: 1,
                max_iters: 256,
            },
            ceiling_size: None,
            float_model: None,
        }
    }

    /// `--quick`: kernels at batch 1, models at batch 1 and 4, 3 rounds.
    pub fn quick() -> BenchConfig {
        BenchConfig {
            quick: true,
            kernel_batches: vec![1],
            model_batches: vec![1, 4],
            train: Some(TrainCase::quick()),
            rounds: Rounds {
                rounds: 3,
                target_s: 0.01,
                min_iters: 1,
                max_iters: 64,
            },
            ..BenchConfig::full()
        }
    }

    fn keeps(&self, name: &str) -> bool {
        name.to_lowercase().contains(&self.filter.to_lowercase())
    }
}

/// Batch sizes from a comma-separated environment variable (`cargo bench` settings), or
/// `default` when it is unset or holds no positive number.
pub fn env_batches(var: &str, default: &[usize]) -> Vec<usize> {
    let parsed: Vec<usize> = std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&b| b > 0)
        .collect();
    if parsed.is_empty() {
        default.to_vec()
    } else {
        parsed
    }
}

/// Run the benchmarks on `gpu`; `log` receives one line per finished measurement.
pub fn run(gpu: &Gpu, cfg: &BenchConfig, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let start = Instant::now();
    if cfg.kernel_batches.contains(&0) || cfg.model_batches.contains(&0) {
        return Err(Error::range("bench", "batch sizes must be at least 1"));
    }
    let clock = Clock::new(gpu)?;
    let size = cfg
        .ceiling_size
        .unwrap_or_else(|| CeilingSize::for_gpu(gpu));
    let ceilings = ceiling::measure(&clock, size, &cfg.rounds)?;
    for c in ceilings.all() {
        log(&format!(
            "ceiling {}: {}",
            c.name,
            report::si(c.per_s, c.unit)
        ));
    }
    let mut kernels = Vec::new();
    let layers = layers::LAYERS.iter().filter(|l| cfg.keeps(l.name));
    for l in layers.filter(|_| cfg.kernels) {
        for &batch in &cfg.kernel_batches {
            let (int8, f32) = layers::recorders(gpu, l, batch)?;
            let (ti, tf) = clock.pair(int8.as_ref(), f32.as_ref(), &cfg.rounds)?;
            let row = KernelRow::new(l, batch, ti, tf, &ceilings);
            log(&row.summary());
            kernels.push(row);
        }
    }
    let mut models = Vec::new();
    for name in models::MODEL_NAMES
        .iter()
        .filter(|n| cfg.models && cfg.keeps(n))
    {
        let pair = models::pair(name, cfg.float_model.as_deref())?;
        log(&format!(
            "model {name}: f32 weights from {}",
            pair.float_source
        ));
        let up = models::UploadedPair::upload(gpu, &pair)?;
        for batch in models::batches_for(name, &cfg.model_batches, cfg.quick) {
            let (int8, f32) = up.recorders(gpu, batch)?;
            let (ti, tf) = clock.pair(int8.as_ref(), f32.as_ref(), &cfg.rounds)?;
            let row = ModelRow::new(&up, batch, ti, tf, &ceilings);
            log(&row.summary());
            models.push(row);
        }
    }
    let mut train = Vec::new();
    if let Some(case) = cfg.train.filter(|c| cfg.keeps(&c.name())) {
        for row in [train::measure_gpu(gpu, &case), train::measure_cpu(&case)] {
            let row = row?;
            log(&row.summary());
            train.push(row);
        }
    }
    Ok(Report {
        adapter: gpu.adapter().to_string(),
        software: gpu.is_software(),
        clock: clock.kind(),
        rounds: cfg.rounds.rounds,
        quick: cfg.quick,
        ceilings,
        kernels,
        models,
        train,
        todo: models::TODO_MODELS.iter().map(|s| s.to_string()).collect(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
