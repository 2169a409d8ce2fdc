//! CPU float benchmarks: the threaded `blas::sgemm` at ResNet-like GEMM shapes, and the CPU
//! training backend's conv forward, input gradient and weight gradient (im2col / col2im + sgemm)
//! and depthwise forward/backward at batch-32 layer shapes. Criterion reports each measurement;
//! at the end a markdown table of GFLOPS (2 flops per multiply-add, copies not counted) is
//! printed and written to `target/f8net-cpu.md` for docs/PERF.md.
//!
//! Threads: matrixmultiply uses `MATMUL_NUM_THREADS` or the physical core count (read once per
//! process); the copy and depthwise loops use `available_parallelism`. Run with
//! `MATMUL_NUM_THREADS=1` to compare one core. `F8NET_BENCH_FILTER=conv` keeps matching rows.

use criterion::{Criterion, SamplingMode, Throughput};
use f8net::reference::blas::{self, sgemm, Mat, MatMut};
use f8net::reference::conv_f32::{self, ConvGeom};
use f8net::reference::depthwise_f32;
use f8net::reference::gemm_f32::Activation;
use f8net::reference::Window;
use f8net::tensor::Shape;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Deterministic values in −1..1.
fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// `C [m][n] = A · B` with A `[m][k]` (or its transpose stored `[k][m]`) and B `[k][n]` (or
/// stored `[n][k]`, as OHWI weights are).
struct GemmCase {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

const GEMMS: &[GemmCase] = &[
    GemmCase {
        name: "resnet18 layer1 fwd (3x3 64->64 @56, b1)",
        m: 3136,
        k: 576,
        n: 64,
        a_t: false,
        b_t: true,
    },
    GemmCase {
        name: "resnet18 layer2 fwd (3x3 128->128 @28, b1)",
        m: 784,
        k: 1152,
        n: 128,
        a_t: false,
        b_t: true,
    },
    GemmCase {
        name: "3x3 64->64 @14 b32 fwd: col·wT",
        m: 6272,
        k: 576,
        n: 64,
        a_t: false,
        b_t: true,
    },
    GemmCase {
        name: "3x3 64->64 @14 b32 dx: dy·w",
        m: 6272,
        k: 64,
        n: 576,
        a_t: false,
        b_t: false,
    },
    GemmCase {
        name: "3x3 64->64 @14 b32 dw: dyT·col",
        m: 64,
        k: 6272,
        n: 576,
        a_t: true,
        b_t: false,
    },
];

/// A batch-32 conv layer (small-input ResNet / MobileNet shapes).
struct ConvCase {
    name: &'static str,
    hw: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
}

const CONVS: &[ConvCase] = &[
    ConvCase {
        name: "conv 3x3 32->32 @28 b32",
        hw: 28,
        cin: 32,
        cout: 32,
        k: 3,
        stride: 1,
        depthwise: false,
    },
    ConvCase {
        name: "conv 3x3 64->64 @14 b32",
        hw: 14,
        cin: 64,
        cout: 64,
        k: 3,
        stride: 1,
        depthwise: false,
    },
    ConvCase {
        name: "conv 3x3 128->128 @7 b32",
        hw: 7,
        cin: 128,
        cout: 128,
        k: 3,
        stride: 1,
        depthwise: false,
    },
    ConvCase {
        name: "conv 3x3 64->128 s2 @14 b32",
        hw: 14,
        cin: 64,
        cout: 128,
        k: 3,
        stride: 2,
        depthwise: false,
    },
    ConvCase {
        name: "conv 1x1 64->256 @14 b32",
        hw: 14,
        cin: 64,
        cout: 256,
        k: 1,
        stride: 1,
        depthwise: false,
    },
    ConvCase {
        name: "depthwise 3x3 c144 @14 b32",
        hw: 14,
        cin: 144,
        cout: 144,
        k: 3,
        stride: 1,
        depthwise: true,
    },
];

const BATCH: usize = 32;

static RESULTS: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn record(id: &str, secs: f64) {
    if let Ok(mut r) = RESULTS.lock() {
        r.push((id.to_string(), secs));
    }
}

fn median(id: &str) -> Option<f64> {
    let mut v: Vec<f64> = RESULTS
        .lock()
        .ok()?
        .iter()
        .filter(|(k, _)| k == id)
        .map(|(_, s)| *s)
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

type Job<'a> = Box<dyn Fn() + 'a>;

/// Time `f` under criterion, recording seconds per call under `id`.
fn bench(c: &mut Criterion, group: &str, id: String, flops: u64, f: &dyn Fn()) {
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(flops));
    g.bench_function(id.clone(), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            let el = t.elapsed();
            record(&id, el.as_secs_f64() / iters as f64);
            el
        })
    });
    g.finish();
}

fn gemm_job(g: &GemmCase) -> (u64, Job<'static>) {
    let a = values(g.m * g.k, 1);
    let b = values(g.k * g.n, 2);
    let c = Mutex::new(vec![0.0f32; g.m * g.n]);
    let (m, k, n, a_t, b_t) = (g.m, g.k, g.n, g.a_t, g.b_t);
    let job = move || {
        let am = if a_t {
            Mat::row_major(&a, k, m).t()
        } else {
            Mat::row_major(&a, m, k)
        };
        let bm = if b_t {
            Mat::row_major(&b, n, k).t()
        } else {
            Mat::row_major(&b, k, n)
        };
        if let Ok(mut c) = c.lock() {
            let r = sgemm(1.0, am, bm, 0.0, MatMut::row_major(&mut c, m, n));
            black_box(r.is_ok());
        }
    };
    (2 * (m * k * n) as u64, Box::new(job))
}

/// (label, flops, job) for forward, input gradient and weight gradient of a conv layer.
fn conv_jobs(l: &ConvCase) -> Vec<(&'static str, u64, Job<'static>)> {
    let s = Shape::new(BATCH, l.hw, l.hw, l.cin);
    let win = Window::same(l.k, l.stride, l.hw, l.hw);
    let Ok((oh, ow)) = win.out_hw("bench", l.hw, l.hw) else {
        return Vec::new();
    };
    let m = BATCH * oh * ow;
    let x = values(s.len(), 3);
    let dy = values(m * l.cout, 4);
    if l.depthwise {
        let w = values(l.cin * l.k * l.k, 5);
        let b = vec![0.0; l.cin];
        let flops = 2 * (m * l.cin * l.k * l.k) as u64;
        let (x1, w1) = (x.clone(), w.clone());
        let (dy2, w2) = (dy.clone(), w);
        return vec![
            (
                "fwd",
                flops,
                Box::new(move || {
                    let r = depthwise_f32::depthwise_f32(&x1, s, &w1, &b, &win, Activation::None);
                    black_box(r.is_ok());
                }),
            ),
            (
                "dx",
                flops,
                Box::new(move || {
                    let r = depthwise_f32::depthwise_f32_backward_input(&dy2, s, &w2, &win);
                    black_box(r.is_ok());
                }),
            ),
            (
                "dw",
                flops,
                Box::new(move || {
                    let r = depthwise_f32::depthwise_f32_backward_weight(&x, s, &dy, &win);
                    black_box(r.is_ok());
                }),
            ),
        ];
    }
    let geom = ConvGeom::dense(s, l.cout, win);
    let w = values(geom.weight_len(), 5);
    let b = vec![0.0; l.cout];
    let flops = 2 * (m * geom.k_g() * l.cout) as u64;
    let (x1, w1) = (x.clone(), w.clone());
    vec![
        (
            "fwd",
            flops,
            Box::new(move || {
                let r = conv_f32::conv_f32_forward(&geom, &x1, &w1, &b, Activation::None);
                black_box(r.is_ok());
            }),
        ),
        (
            "dx",
            flops,
            Box::new({
                let dy = dy.clone();
                move || {
                    let r = conv_f32::conv_f32_backward_input(&geom, &dy, &w);
                    black_box(r.is_ok());
                }
            }),
        ),
        (
            "dw",
            flops,
            Box::new(move || {
                let r = conv_f32::conv_f32_backward_weight(&geom, &x, &dy);
                black_box(r.is_ok());
            }),
        ),
    ]
}

fn main() {
    let filter = std::env::var("F8NET_BENCH_FILTER").unwrap_or_default();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows: Vec<(String, u64)> = Vec::new();
    for g in GEMMS {
        let id = format!("sgemm {} (m {} k {} n {})", g.name, g.m, g.k, g.n);
        if !id.contains(&filter) {
            continue;
        }
        let (flops, job) = gemm_job(g);
        bench(&mut c, "sgemm", id.clone(), flops, job.as_ref());
        rows.push((id, flops));
    }
    for l in CONVS.iter().filter(|l| l.name.contains(&filter)) {
        for (pass, flops, job) in conv_jobs(l) {
            let id = format!("{} {pass}", l.name);
            if !id.contains(&filter) {
                continue;
            }
            bench(&mut c, l.name, id.clone(), flops, job.as_ref());
            rows.push((id, flops));
        }
    }
    let threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    let mut table = format!(
        "CPU: {} threads available, MATMUL_NUM_THREADS={threads}; median per call\n\n\
         | op | GFLOP | ms | GFLOPS |\n|---|---|---|---|\n",
        blas::threads()
    );
    for (id, flops) in rows {
        if let Some(t) = median(&id) {
            table += &format!(
                "| {id} | {:.3} | {:.2} | {:.1} |\n",
                flops as f64 / 1e9,
                t * 1e3,
                flops as f64 / t / 1e9
            );
        }
    }
    println!("\n{table}");
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/f8net-cpu.md"),
        &table,
    );
}
