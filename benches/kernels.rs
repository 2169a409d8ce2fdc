//! Kernel benchmarks (criterion): the int8 conv (implicit GEMM, 1×1 as GEMM) and depthwise
//! kernels at real layer shapes (ResNet-18 and MobileNet-V2, batch 1 and 32) next to the same work
//! in the f32 kernels of the same tiling, with the device's ceilings measured in the same run.
//! The shapes, recorders, timing and table come from `f8net::bench` (shared with `f8net bench`).
//! Time is GPU time from timestamp queries where the adapter has them (wall time otherwise, said
//! in the table). Criterion reports each measurement; at the end a markdown table (GOPS at 2 ops
//! per MAC, int8/f32 ratios, fractions of the ceilings) is printed and written to
//! `target/f8net-kernels.md` for docs/PERF.md.
//!
//! `F8NET_BENCH_BATCHES=1,32` (default) picks the batch sizes; `F8NET_BENCH_FILTER=mbv2` keeps
//! only matching shapes.

use criterion::{Criterion, SamplingMode, Throughput};
use f8net::bench::ceiling::{self, CeilingSize};
use f8net::bench::timing::Clock;
use f8net::bench::{env_batches, layers, BenchConfig, KernelRow, Report};
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
    let filter = std::env::var("F8NET_BENCH_FILTER").unwrap_or_default();
    let ceilings =
        ceiling::measure(&clock, CeilingSize::for_gpu(&gpu), &cfg.rounds).expect("ceilings");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows = Vec::new();
    for l in layers::LAYERS.iter().filter(|l| l.name.contains(&filter)) {
        for batch in env_batches("F8NET_BENCH_BATCHES", &[1, 32]) {
            let (int8, f32) = layers::recorders(&gpu, l, batch).expect("recorders");
            let mut group = c.benchmark_group(format!("{} b{batch}", l.name));
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(Throughput::Elements(l.macs(batch)));
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
            rows.push(KernelRow::new(l, batch, ti, tf, &ceilings));
        }
    }
    let report = Report {
        adapter: gpu.adapter().to_string(),
        software: gpu.is_software(),
        clock: clock.kind(),
        rounds: cfg.rounds.rounds,
        quick: false,
        ceilings,
        kernels: rows,
        models: Vec::new(),
        train: Vec::new(),
        todo: Vec::new(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let table = report.to_markdown();
    println!("\n{table}");
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/f8net-kernels.md"),
        &table,
    );
}
