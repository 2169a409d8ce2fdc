//! One F8Net QAT training step (criterion): ResNet-20 (small form, width 0.5, batch 64, real
//! Fashion-MNIST images) in F8Net fixed point (fake quantization, FLs from statistics every step)
//! against the same network in float, on the CPU reference (wall clock). The step and its
//! timing come from `f8net::bench::train` (shared with `f8net bench`); at the end the markdown
//! row (images/s, F8Net/float) is printed. `F8NET_BENCH_BATCHES=16` changes the batch.

use criterion::{Criterion, Throughput};
use f8net::arch::ArchConfig;
use f8net::bench::{env_batches, TrainCase};
use f8net::data::{self, Loader, LoaderConfig, Split};
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::conv_bn::Precision;
use f8net::train::from_arch::net_from_arch;
use std::time::Duration;

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let data = data::fashion_mnist(Split::Train).expect("Fashion-MNIST");
    for batch in env_batches("F8NET_BENCH_BATCHES", &[64]) {
        let case = TrainCase {
            batch,
            ..TrainCase::full()
        };
        let arch = ArchConfig::small(case.family)
            .with_width(case.width)
            .build()
            .expect("arch");
        let mut loader = Loader::new(&data, LoaderConfig::train(batch, 1995, 2)).expect("loader");
        let b = loader.next_batch().expect("a batch");
        let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
        let mut group = c.benchmark_group(format!("{} b{batch}", case.name()));
        group.throughput(Throughput::Elements(batch as u64));
        for (kind, precision) in [("f8net", Precision::Fixed), ("float", Precision::Float)] {
            let mut net = net_from_arch(&arch, 1995, precision).expect("net");
            group.bench_function(kind, |bench| {
                bench.iter(|| {
                    net.train_step(&b.inputs, &labels, 0.01, 4e-5, WeightDecayScheme::All)
                        .expect("step")
                })
            });
        }
        group.finish();
        let row = f8net::bench::train::measure_cpu(&case).expect("row");
        println!("{}", row.summary());
    }
}
