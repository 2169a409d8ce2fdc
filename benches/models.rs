//! Whole-model benchmarks (criterion): every model of `f8net::bench::models::MODEL_NAMES`
//! (EfficientNet-Lite0, and ResNet-18 and MobileNet-V2 in ImageNet form with seeded random
//! weights: speed, not accuracy) in F8Net int8 (`GpuModel`) against the same network in f32
//! (`GpuFloatModel`), one forward pass per iteration, at batch 1
//! and 32, with the device's ceilings measured in the same run. Models, recorders, timing and
//! table come from `f8net::bench` (shared with `f8net bench`). GPU time from timestamp queries
//! where the adapter has them, wall time otherwise (said in the table); criterion's throughput is
//! images. At the end a markdown table (images/s, int8/f32, GOPS and fractions of the ceilings)
//! is printed and written to `target/f8net-models.md`.
//!
//! `F8NET_BENCH_BATCHES=1,32` (default) picks the batch sizes; on lavapipe batch 32 takes
//! seconds per forward pass, so `F8NET_BENCH_BATCHES=1` keeps a run to a few minutes.
//! `F8NET_BENCH_FILTER=resnet` keeps only matching models.

use criterion::{Criterion, SamplingMode, Throughput};
use f8net::bench::ceiling::{self, CeilingSize};
use f8net::bench::models::{self, UploadedPair};
use f8net::bench::timing::Clock;
use f8net::bench::{env_batches, BenchConfig, ModelRow, Report};
use f8net::gpu::Gpu;
use std::time::{Duration, Instant};

fn main() {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e})");
            return;
        }
    };
    let start = Instant::now();
    let clock = Clock::new(&gpu).expect("timer");
    let cfg = BenchConfig::full();
    let ceilings =
        ceiling::measure(&clock, CeilingSize::for_gpu(&gpu), &cfg.rounds).expect("ceilings");
    let filter = std::env::var("F8NET_BENCH_FILTER").unwrap_or_default();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut rows = Vec::new();
    for name in models::MODEL_NAMES.iter().filter(|n| n.contains(&filter)) {
        let pair = models::pair(name, None).expect("model");
        let up = UploadedPair::upload(&gpu, &pair).expect("upload");
        for batch in env_batches("F8NET_BENCH_BATCHES", &[1, 32]) {
            let (int8, f32) = up.recorders(&gpu, batch).expect("recorders");
            let mut group = c.benchmark_group(format!("{} b{batch}", up.name));
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(Throughput::Elements(batch as u64));
            for (kind, rec) in [("int8", &int8), ("f32", &f32)] {
                group.bench_function(kind, |b| {
                    b.iter_custom(|iters| {
                        Duration::from_secs_f64(clock.time(iters, rec.as_ref()).expect("run"))
                    })
                });
            }
            group.finish();
            let (ti, tf) = clock
                .pair(int8.as_ref(), f32.as_ref(), &cfg.rounds)
                .expect("timing");
            rows.push(ModelRow::new(&up, batch, ti, tf, &ceilings));
        }
    }
    let report = Report {
        adapter: gpu.adapter().to_string(),
        software: gpu.is_software(),
        clock: clock.kind(),
        rounds: cfg.rounds.rounds,
        quick: false,
        ceilings,
        kernels: Vec::new(),
        models: rows,
        train: Vec::new(),
        todo: models::TODO_MODELS.iter().map(|s| s.to_string()).collect(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let table = report.to_markdown();
    println!("\n{table}");
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/f8net-models.md"),
        &table,
    );
}
