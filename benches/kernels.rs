//! Kernel benchmarks: the int8 GEMM, conv (implicit GEMM) and depthwise kernels at real layer
//! shapes (ResNet-18 and MobileNet-V2, batch 1 and 32) next to the same work in the f32 kernels
//! of the same tiling. Time is GPU time from timestamp queries where the adapter has them (wall
//! time otherwise, said in the table). Criterion reports each measurement; at the end a markdown
//! table of GOPS (2 ops per MAC) and int8/f32 ratios is printed and written to
//! `target/f8net-kernels.md` for docs/PERF.md.
//!
//! `F8NET_BENCH_BATCHES=1,32` (default) picks the batch sizes; `F8NET_BENCH_FILTER=mbv2` keeps
//! only matching shapes. Napkin math: dp4a does 4 MACs per instruction, so on hardware with
//! native dp4a the int8 kernels have up to 4× the MAC rate of the f32 FMA kernels.

use criterion::{Criterion, SamplingMode, Throughput};
use f8net::fixed::Signedness;
use f8net::gpu::{Encoder, Gpu, GpuTimer};
use f8net::ops::conv::{self, Conv2d};
use f8net::ops::conv_f32::{self, ConvF32};
use f8net::ops::depthwise::{self, Depthwise, DepthwiseWeights};
use f8net::ops::depthwise_f32::{self, DepthwiseF32, F32DepthwiseWeights};
use f8net::ops::gemm::OutBuffer;
use f8net::ops::gemm_f32::F32Weights;
use f8net::ops::{Epilogue, PackedWeights};
use f8net::reference::gemm_f32::Activation;
use f8net::reference::{EpilogueSpec, OutputKind, Window};
use f8net::tensor::{GpuF32Tensor, Shape};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Op {
    Conv,
    Depthwise,
}

/// One layer shape from a real network.
struct Layer {
    name: &'static str,
    op: Op,
    hw: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "resnet18.layer1.conv 3x3 64->64 @56",
        op: Op::Conv,
        hw: 56,
        cin: 64,
        cout: 64,
        k: 3,
        stride: 1,
    },
    Layer {
        name: "resnet18.layer2.conv 3x3 128->128 @28",
        op: Op::Conv,
        hw: 28,
        cin: 128,
        cout: 128,
        k: 3,
        stride: 1,
    },
    Layer {
        name: "resnet18.layer3.conv 3x3 256->256 @14",
        op: Op::Conv,
        hw: 14,
        cin: 256,
        cout: 256,
        k: 3,
        stride: 1,
    },
    Layer {
        name: "resnet18.layer4.conv 3x3 512->512 @7",
        op: Op::Conv,
        hw: 7,
        cin: 512,
        cout: 512,
        k: 3,
        stride: 1,
    },
    Layer {
        name: "resnet18.layer2.downsample 1x1/2 64->128 @56",
        op: Op::Conv,
        hw: 56,
        cin: 64,
        cout: 128,
        k: 1,
        stride: 2,
    },
    Layer {
        name: "resnet18.fc 512->1000 (gemm)",
        op: Op::Conv,
        hw: 1,
        cin: 512,
        cout: 1000,
        k: 1,
        stride: 1,
    },
    Layer {
        name: "mbv2.block2.expand 1x1 24->144 @56 (gemm)",
        op: Op::Conv,
        hw: 56,
        cin: 24,
        cout: 144,
        k: 1,
        stride: 1,
    },
    Layer {
        name: "mbv2.block2.project 1x1 144->24 @56 (gemm)",
        op: Op::Conv,
        hw: 56,
        cin: 144,
        cout: 24,
        k: 1,
        stride: 1,
    },
    Layer {
        name: "mbv2.block2.dw 3x3 144 @56",
        op: Op::Depthwise,
        hw: 56,
        cin: 144,
        cout: 144,
        k: 3,
        stride: 1,
    },
    Layer {
        name: "mbv2.block3.dw 3x3/2 144 @56",
        op: Op::Depthwise,
        hw: 56,
        cin: 144,
        cout: 144,
        k: 3,
        stride: 2,
    },
    Layer {
        name: "mbv2.block16.dw 3x3 960 @7",
        op: Op::Depthwise,
        hw: 7,
        cin: 960,
        cout: 960,
        k: 3,
        stride: 1,
    },
];

impl Layer {
    fn window(&self) -> Window {
        Window::symmetric(self.k, self.stride, self.k / 2)
    }
    fn macs(&self, batch: usize) -> u64 {
        let (oh, ow) = self
            .window()
            .out_hw("bench", self.hw, self.hw)
            .unwrap_or((0, 0));
        let per_out = match self.op {
            Op::Conv => self.k * self.k * self.cin,
            Op::Depthwise => self.k * self.k,
        };
        (batch * oh * ow * self.cout * per_out) as u64
    }
}

/// Seconds per run of int8 and f32, measured alternately (7 rounds, medians) so that load
/// changes on a shared machine hit both sides alike.
fn interleaved(
    gpu: &Gpu,
    timer: &GpuTimer,
    int8: &dyn Fn(&mut Encoder),
    f32: &dyn Fn(&mut Encoder),
) -> (f64, f64) {
    let probe = time_runs(gpu, timer, 1, f32).as_secs_f64();
    let iters = ((0.02 / probe.max(1e-6)).ceil() as u64).clamp(1, 64);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        a.push(time_runs(gpu, timer, iters, int8).as_secs_f64() / iters as f64);
        b.push(time_runs(gpu, timer, iters, f32).as_secs_f64() / iters as f64);
    }
    (median(&a), median(&b))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

/// Time `iters` runs of `rec` (each recording one dispatch) in one submission, GPU time if the
/// device has timestamps.
fn time_runs(gpu: &Gpu, timer: &GpuTimer, iters: u64, rec: &dyn Fn(&mut Encoder)) -> Duration {
    let mut enc = gpu.encoder();
    enc.timestamp(timer, 0);
    for _ in 0..iters {
        rec(&mut enc);
    }
    enc.timestamp(timer, 1);
    let start = Instant::now();
    gpu.submit(enc).expect("submit");
    gpu.wait().expect("wait");
    let wall = start.elapsed();
    match timer.read_ns(gpu).expect("timestamps") {
        Some(ns) => Duration::from_nanos(ns as u64),
        None => wall,
    }
}

fn values(len: usize, seed: u32, lo: i32, hi: i32) -> Vec<i32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            lo + (s % (hi - lo + 1) as u32) as i32
        })
        .collect()
}

/// Recorders for the int8 and f32 versions of one layer at one batch size.
type Recorder<'a> = Box<dyn Fn(&mut Encoder) + 'a>;

fn recorders<'a>(gpu: &'a Gpu, l: &Layer, batch: usize) -> (Recorder<'a>, Recorder<'a>) {
    let shape = Shape::new(batch, l.hw, l.hw, l.cin);
    let win = l.window();
    let (oh, ow) = win.out_hw("bench", l.hw, l.hw).expect("window");
    let out_shape = Shape::new(batch, oh, ow, l.cout);
    let x8 = gpu
        .upload(&vec![0x4080_20ffu32; shape.pixels() * shape.c4()])
        .expect("x");
    let out8 = gpu
        .alloc::<u32>(out_shape.pixels() * out_shape.c4())
        .expect("out");
    let ep = Epilogue::upload(
        gpu,
        &EpilogueSpec::plain(l.cout, 9, OutputKind::Codes(Signedness::Unsigned)),
        l.cout,
    )
    .expect("ep");
    let x32 = GpuF32Tensor::upload(gpu, shape, &vec![0.25; shape.len()]).expect("x32");
    let out32 = GpuF32Tensor::alloc_filled(gpu, out_shape, 0.0).expect("out32");
    match l.op {
        Op::Conv => {
            let per = l.k * l.k * l.cin;
            let w8 = PackedWeights::upload(
                gpu,
                &values(l.cout * per, 7, -127, 127),
                l.cout,
                l.k,
                l.k,
                l.cin,
            )
            .expect("w8");
            let wf: Vec<f32> = values(l.cout * per, 7, -127, 127)
                .iter()
                .map(|&v| v as f32 / 128.0)
                .collect();
            let w32 = F32Weights::upload(gpu, &wf, &vec![0.0; l.cout], l.cout, l.k, l.k, l.cin)
                .expect("w32");
            let int8 = move |enc: &mut Encoder| {
                let c = Conv2d {
                    x: &x8,
                    x_signedness: Signedness::Unsigned,
                    shape,
                    weights: &w8,
                    window: win,
                    epilogue: &ep,
                    out: OutBuffer::Codes(&out8),
                };
                conv::record(gpu, enc, &c).expect("conv");
            };
            let f32 = move |enc: &mut Encoder| {
                let c = ConvF32 {
                    input: &x32,
                    weights: &w32,
                    window: win,
                    activation: Activation::Relu,
                    out: &out32,
                };
                conv_f32::record(gpu, enc, &c).expect("conv_f32");
            };
            (Box::new(int8), Box::new(f32))
        }
        Op::Depthwise => {
            let per = l.k * l.k;
            let w8 = DepthwiseWeights::upload(
                gpu,
                &values(l.cout * per, 9, -127, 127),
                l.cout,
                l.k,
                l.k,
            )
            .expect("w8");
            let wf: Vec<f32> = values(l.cout * per, 9, -127, 127)
                .iter()
                .map(|&v| v as f32 / 128.0)
                .collect();
            let w32 = F32DepthwiseWeights::upload(gpu, &wf, &vec![0.0; l.cout], l.cout, l.k, l.k)
                .expect("w32");
            let int8 = move |enc: &mut Encoder| {
                let d = Depthwise {
                    x: &x8,
                    x_signedness: Signedness::Unsigned,
                    shape,
                    window: win,
                    weights: &w8,
                    epilogue: &ep,
                    out: OutBuffer::Codes(&out8),
                };
                depthwise::record(gpu, enc, &d).expect("depthwise");
            };
            let f32 = move |enc: &mut Encoder| {
                let d = DepthwiseF32 {
                    input: &x32,
                    weights: &w32,
                    window: win,
                    activation: Activation::Relu,
                    out: &out32,
                };
                depthwise_f32::record(gpu, enc, &d).expect("depthwise_f32");
            };
            (Box::new(int8), Box::new(f32))
        }
    }
}

fn main() {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e})");
            return;
        }
    };
    let timer = GpuTimer::new(&gpu).expect("timer");
    let batches: Vec<usize> = std::env::var("F8NET_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let filter = std::env::var("F8NET_BENCH_FILTER").unwrap_or_default();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows = Vec::new();
    for l in LAYERS.iter().filter(|l| l.name.contains(&filter)) {
        for &batch in &batches {
            let (int8, f32) = recorders(&gpu, l, batch);
            let mut group = c.benchmark_group(format!("{} b{batch}", l.name));
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(Throughput::Elements(l.macs(batch)));
            for (kind, rec) in [("int8", &int8), ("f32", &f32)] {
                group.bench_function(kind, |b| {
                    b.iter_custom(|iters| time_runs(&gpu, &timer, iters, rec.as_ref()))
                });
            }
            group.finish();
            let (ti, tf) = interleaved(&gpu, &timer, int8.as_ref(), f32.as_ref());
            rows.push((l.name, batch, l.macs(batch), ti, tf));
        }
    }
    let clock = if timer.is_gpu() {
        "GPU timestamps"
    } else {
        "wall clock"
    };
    let mut table = format!(
        "adapter: {}\ntime: {clock}, median of 7 alternating int8/f32 rounds\n\n| layer | batch | MACs | int8 GOPS | f32 GOPS | int8/f32 |\n|---|---|---|---|---|---|\n",
        gpu.adapter()
    );
    for (name, batch, macs, ti, tf) in rows {
        let gops = |t: f64| 2.0 * macs as f64 / t / 1e9;
        table += &format!(
            "| {name} | {batch} | {:.1} M | {:.2} | {:.2} | {:.2}× |\n",
            macs as f64 / 1e6,
            gops(ti),
            gops(tf),
            tf / ti
        );
    }
    println!("\n{table}");
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/f8net-kernels.md"),
        &table,
    );
}
