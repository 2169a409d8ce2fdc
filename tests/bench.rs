//! Benchmarks and the GPU float executor: the ceiling kernels compute their chains (CPU twins),
//! a tiny `bench::run` gives positive finite rows and valid JSON, the float twin of the built-in
//! model does the float model's work, and the float EfficientNet-Lite0 on the GPU matches the CPU
//! float forward on the sample photos (one pass, and a batch split into sub-batches).

use crate::common::*;
use f8net::bench::ceiling::CeilingSize;
use f8net::bench::timing::Rounds;
use f8net::bench::{models, BenchConfig, TrainCase};
use f8net::model::efficientnet::{self, input_from_rgb, NUM_CLASSES};
use f8net::model::float::FloatModel;
use f8net::model::run_gpu_f32::GpuFloatModel;
use f8net::ops::ceiling::{self, Chain, ChainRun};
use std::sync::OnceLock;

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn float_model() -> &'static FloatModel {
    static M: OnceLock<FloatModel> = OnceLock::new();
    M.get_or_init(|| {
        efficientnet::load_float(root("assets/models/efficientnet_lite0.f32.safetensors")).unwrap()
    })
}

#[test]
fn ceiling_chains_match_their_cpu_twins() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = Rng::new(6);
    let seeds: Vec<u32> = (0..4 * 37).map(|_| rng.next_u64() as u32).collect();
    let seed_buf = gpu.upload(&seeds).unwrap();
    let invocations = 300; // two workgroups, the second one partly idle
    let (iters, salt) = (9, 0xA5A5_0F0F);
    for chain in [Chain::Dp4a, Chain::Fma] {
        let out = gpu.alloc_filled(4 * invocations + 4, POISON_U32).unwrap();
        let tight = gpu.alloc_filled(4 * invocations, POISON_U32).unwrap();
        let run = |out| ChainRun {
            chain,
            seeds: &seed_buf,
            out,
            invocations,
            iters,
            salt,
        };
        let mut enc = gpu.encoder();
        // A buffer of the wrong length is refused; the right one is written.
        assert!(ceiling::record_chain(gpu, &mut enc, &run(&out)).is_err());
        ceiling::record_chain(gpu, &mut enc, &run(&tight)).unwrap();
        gpu.submit(enc).unwrap();
        let got = gpu.read(&tight).unwrap();
        for i in 0..invocations {
            let s: [u32; 4] = seeds[4 * (i % 37)..][..4].try_into().unwrap();
            let g = &got[4 * i..4 * i + 4];
            match chain {
                Chain::Dp4a => {
                    let want = ceiling::dp4a_chain(s, salt, iters);
                    assert_exact(
                        &g.iter().map(|&v| v as i32).collect::<Vec<_>>(),
                        &want.iter().map(|&v| v as i32).collect::<Vec<_>>(),
                        &format!("dp4a chain, invocation {i}"),
                    );
                }
                Chain::Fma => {
                    let want = ceiling::fma_chain(s, iters);
                    let g: Vec<f32> = g.iter().map(|&v| f32::from_bits(v)).collect();
                    let ctx = format!("fma chain, invocation {i}");
                    assert_close(&g, &want, F32_ATOL, F32_RTOL, &ctx);
                }
            }
        }
    }
    // The copy kernel copies every word, including a tail that does not fill a workgroup.
    let words = 4 * (256 * 4 * 3 + 5);
    let src: Vec<u32> = (0..words).map(|_| rng.next_u64() as u32).collect();
    let (src_buf, dst) = (
        gpu.upload(&src).unwrap(),
        gpu.alloc_filled(words, POISON_U32).unwrap(),
    );
    let mut enc = gpu.encoder();
    ceiling::record_copy(gpu, &mut enc, &src_buf, &dst).unwrap();
    gpu.submit(enc).unwrap();
    assert!(gpu.read(&dst).unwrap() == src, "copy kernel");
}

/// A configuration that runs in a few seconds on lavapipe.
fn tiny_config() -> BenchConfig {
    BenchConfig {
        quick: true,
        filter: "block16.dw".into(),
        kernel_batches: vec![1],
        model_batches: vec![1],
        kernels: true,
        models: false,
        train: None,
        rounds: Rounds {
            rounds: 1,
            target_s: 0.0,
            min_iters: 1,
            max_iters: 1,
        },
        ceiling_size: None,
        float_model: None,
    }
}

#[test]
fn tiny_bench_rows_are_positive_and_json_is_valid() {
    let Some(gpu) = gpu_or_skip() else { return };
    let cfg = BenchConfig {
        ceiling_size: Some(CeilingSize::tiny(gpu)),
        ..tiny_config()
    };
    let mut lines = Vec::new();
    let report = f8net::bench::run(gpu, &cfg, &mut |l| lines.push(l.to_string())).unwrap();
    let good = |v: f64| v.is_finite() && v > 0.0;
    for c in report.ceilings.all() {
        assert!(good(c.per_s) && good(c.seconds) && good(c.work), "{c:?}");
    }
    assert_eq!(report.kernels.len(), 1, "the filter keeps one layer");
    let k = &report.kernels[0];
    for v in [
        k.int8_gops,
        k.f32_gops,
        k.int8_speedup,
        k.int8_of_dp4a,
        k.f32_of_fma,
    ] {
        assert!(good(v), "{k:?}");
    }
    assert!(report.models.is_empty() && report.train.is_empty() && report.todo.is_empty());
    assert_eq!(lines.len(), 4, "3 ceilings and 1 kernel: {lines:?}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["kernels"][0]["batch"], 1);
    assert_eq!(json["kernels"][0]["op"], "depthwise");
    assert!(json["ceilings"]["dp4a"]["per_s"].as_f64().unwrap() > 0.0);
    let md = report.to_markdown();
    assert!(md.contains("| mbv2.block16.dw 3x3 960 @7 | 1 |"));
    // Bad configurations are errors, not panics.
    let bad = BenchConfig {
        kernel_batches: vec![0],
        ..tiny_config()
    };
    assert!(f8net::bench::run(gpu, &bad, &mut |_| {}).is_err());
}

#[test]
fn model_bench_row_is_positive() {
    let Some(gpu) = gpu_or_skip() else { return };
    let cfg = BenchConfig {
        filter: "efficientnet".into(),
        kernels: false,
        models: true,
        ceiling_size: Some(CeilingSize::tiny(gpu)),
        ..tiny_config()
    };
    let report = f8net::bench::run(gpu, &cfg, &mut |_| {}).unwrap();
    assert_eq!(report.models.len(), 1);
    let m = &report.models[0];
    let good = |v: f64| v.is_finite() && v > 0.0;
    assert!(good(m.int8_images_per_s) && good(m.f32_images_per_s) && good(m.int8_speedup));
    assert!(m.macs_per_image > 300_000_000, "{}", m.macs_per_image);
    eprintln!("{}", m.summary());
}

#[test]
fn float_twin_does_the_float_models_work() {
    let int = f8net::builtin::model().unwrap();
    let twin = models::float_twin(&int).unwrap();
    let float = float_model();
    assert_eq!(
        models::macs_per_image(&twin).unwrap(),
        models::macs_per_image(float).unwrap()
    );
    assert_eq!(twin.nodes.len(), float.nodes.len());
    assert_eq!(
        twin.tensor_shapes().unwrap(),
        float.tensor_shapes().unwrap()
    );
}

fn photos() -> Vec<f32> {
    ["chelsea_224.rgb", "coffee_224.rgb"]
        .iter()
        .flat_map(|f| input_from_rgb(&std::fs::read(root(&format!("tests/fixtures/{f}"))).unwrap()))
        .collect()
}

#[test]
fn gpu_float_logits_match_cpu_float_forward() {
    let Some(gpu) = gpu_or_skip() else { return };
    let model = float_model();
    let x = photos();
    let want = model.forward(&x, 2).unwrap();
    let mut on_gpu = GpuFloatModel::upload(gpu, model).unwrap();
    eprintln!(
        "{} nodes, {} activation slots",
        model.nodes.len(),
        on_gpu.slot_count()
    );
    assert!(
        on_gpu.slot_count() < model.nodes.len() * 3 / 4,
        "slots are reused"
    );
    let got = on_gpu.forward(gpu, &x, 2).unwrap();
    assert_eq!(got.len(), 2 * NUM_CLASSES);
    // Every logit is the reduction of a 1280-term dot product (the classifier) over a deep
    // chain of f32 layers: the reduction tolerance of tests/common at k = 1280.
    let atol = f32_reduction_atol(1280);
    let max = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    eprintln!(
        "GPU vs CPU float logits: max |Δ| {:.3e} (atol {atol:.3e})",
        max(&got, &want)
    );
    assert_close(&got, &want, atol, F32_RTOL, "gpu f32 vs cpu f32 logits");
    // Three images in sub-batches of at most 2 (2 + a partial 1, copies in and out inside one
    // submission) give the same logits as one pass.
    on_gpu.set_max_chunk(2);
    let x3: Vec<f32> = x.iter().chain(&x[..x.len() / 2]).copied().collect();
    let chunked = on_gpu.forward(gpu, &x3, 3).unwrap();
    let want3: Vec<f32> = got.iter().chain(&got[..NUM_CLASSES]).copied().collect();
    assert_close(
        &chunked,
        &want3,
        F32_ATOL,
        F32_RTOL,
        "sub-batches vs one pass",
    );
    assert!(
        on_gpu.forward(gpu, &x[1..], 2).is_err(),
        "wrong input length"
    );
}

#[test]
fn cli_bench_prints_json_and_writes_markdown() {
    if gpu_or_skip().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("f8net-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let md = dir.join("bench.md");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_f8net"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let md_arg = md.to_str().unwrap();
    let out = run(&[
        "bench",
        "--quick",
        "--json",
        "--filter",
        "block16.dw",
        "--md",
        md_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kernels"].as_array().unwrap().len(), 1);
    assert!(json["models"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("| kernel | batch |"));
    let bad = run(&["bench", "--quick", "--batches", "0"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("f8net: bench") && !err.contains("panicked"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_step_row_times_both_precisions() {
    let case = TrainCase {
        batch: 8,
        steps: 1,
        rounds: 1,
        ..TrainCase::quick()
    };
    let mut rows = vec![f8net::bench::train::measure_cpu(&case).unwrap()];
    if let Some(gpu) = gpu_or_skip() {
        rows.push(f8net::bench::train::measure_gpu(gpu, &case).unwrap());
    }
    let good = |v: f64| v.is_finite() && v > 0.0;
    for row in &rows {
        for v in [
            row.fixed_s,
            row.float_s,
            row.fixed_images_per_s,
            row.float_images_per_s,
            row.fixed_speedup,
        ] {
            assert!(good(v), "{row:?}");
        }
        assert_eq!(row.batch, 8);
        assert!((row.fixed_images_per_s * row.fixed_s - 8.0).abs() < 1e-9);
        assert!(row.summary().contains("train step resnet20 w0.25 b8"));
    }
}
