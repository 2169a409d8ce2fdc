//! Post-training quantization of FP training checkpoints: `train::to_float` (a trained `Net` as
//! a float model in real units) against `Net::forward_eval`, `quantize::from_checkpoint` end to
//! end (the integer model runs on the raw bytes), the `f8net quantize CHECKPOINT` command on
//! good and bad input, and (ignored, for the results table) PTQ vs FP accuracy of a real run.

use f8net::arch::{ArchConfig, Family};
use f8net::data::{load_idx, Dataset, Loader, LoaderConfig, Split, SUBSET_DIR};
use f8net::model::{file, run_cpu};
use f8net::quantize::from_checkpoint::{self, quantize_checkpoint};
use f8net::quantize::QuantizeOptions;
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::checkpoint::{self, RunInfo};
use f8net::train::conv_bn::Precision;
use f8net::train::from_arch::net_from_arch;
use f8net::train::net::Net;
use f8net::train::to_float::to_float;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Float-model logits divided by `logit_scale` vs `forward_eval` logits, per image:
/// `|a − b| ≤ LOGIT_RTOL · max_j |b_j| + LOGIT_ATOL` (f32 summation order and the scale
/// factors applied in a different order; measured worst case ~1e-6 relative).
const LOGIT_RTOL: f32 = 1e-4;
const LOGIT_ATOL: f32 = 1e-5;

fn subset(split: Split) -> Dataset {
    load_idx(Path::new(SUBSET_DIR), split).unwrap()
}

fn arch(family: Family) -> f8net::arch::Arch {
    ArchConfig::small(family).with_width(0.25).build().unwrap()
}

/// A small FP network trained `steps` SGD steps (batch 32) on the committed subset.
fn trained(family: Family, steps: usize) -> Net {
    let train = subset(Split::Train);
    let mut net = net_from_arch(&arch(family), 7, Precision::Float).unwrap();
    let mut loader = Loader::new(&train, LoaderConfig::train(32, 1, 2)).unwrap();
    for _ in 0..steps {
        let b = match loader.next_batch() {
            Some(b) => b,
            None => {
                loader.next_epoch();
                loader.next_batch().unwrap()
            }
        };
        let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
        let loss = net
            .train_step(&b.inputs, &labels, 0.05, 4e-5, WeightDecayScheme::All)
            .unwrap();
        assert!(loss.is_finite(), "{family:?}: loss {loss}");
    }
    net
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap()
}

fn to_f32(v: &[i32]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Logits of an integer model on data set bytes, 100 images at a time.
fn int_logits(model: &f8net::model::int::IntModel, set: &Dataset) -> Vec<f32> {
    let size = set.image_size();
    let mut out = Vec::new();
    for chunk in set.images.chunks(100 * size) {
        let codes: Vec<i32> = chunk.iter().map(|&b| b as i32).collect();
        out.extend(to_f32(
            &run_cpu::forward(model, &codes, chunk.len() / size).unwrap(),
        ));
    }
    out
}

fn accuracy(logits: &[f32], labels: &[u8]) -> f64 {
    let k = logits.len() / labels.len();
    let right = labels
        .iter()
        .enumerate()
        .filter(|(r, &l)| argmax(&logits[r * k..(r + 1) * k]) == l as usize)
        .count();
    right as f64 / labels.len() as f64
}

fn agreement(a: &[f32], b: &[f32], k: usize) -> f64 {
    let n = a.len() / k;
    let same = (0..n)
        .filter(|&r| argmax(&a[r * k..(r + 1) * k]) == argmax(&b[r * k..(r + 1) * k]))
        .count();
    same as f64 / n as f64
}

/// `forward_eval` of `net` on every image of `set`, 100 at a time.
fn eval_logits(net: &Net, set: &Dataset) -> Vec<f32> {
    let mut loader = Loader::new(set, LoaderConfig::eval(100)).unwrap();
    let mut out = Vec::new();
    while let Some(b) = loader.next_batch() {
        out.extend(net.forward_eval(&b.inputs, b.n).unwrap());
    }
    out
}

/// Compare the float model of `net` with its eval on the test images (see `LOGIT_RTOL`);
/// returns the worst relative logit difference of the same model with its clips (ReLU6) made
/// plain ReLUs, i.e. how much the PACT clips matter.
fn check_float_model(net: &Net, test: &Dataset, what: &str) -> f32 {
    use f8net::model::float::{Activation, FloatNode};
    let x: Vec<f32> = f8net::data::loader::to_inputs(&test.images);
    let conv = to_float(net, "t").unwrap();
    assert!(
        conv.dropped_clips.is_empty(),
        "{what}: {:?}",
        conv.dropped_clips
    );
    let want = eval_logits(net, test);
    let all = conv.model.forward_all(&x, test.len()).unwrap();
    let got = all.last().unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for r in 0..test.len() {
        let (g, w) = (&got[r * 10..r * 10 + 10], &want[r * 10..r * 10 + 10]);
        let top = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(top > 0.0, "{what}: image {r} has zero logits");
        for j in 0..10 {
            let d = (g[j] / conv.logit_scale - w[j]).abs();
            worst = worst.max(d / top);
            assert!(
                d <= LOGIT_RTOL * top + LOGIT_ATOL,
                "{what}: image {r} logit {j}: float {} / {} vs eval {}, diff {d}",
                g[j],
                conv.logit_scale,
                w[j]
            );
        }
    }
    let agree = agreement(got, &want, 10);
    let mut unclipped = conv.model.clone();
    for node in &mut unclipped.nodes {
        if let FloatNode::Conv { conv, .. } = node {
            if conv.act == Activation::Relu6 {
                conv.act = Activation::Relu;
            }
        }
    }
    let loose = unclipped.forward(&x, test.len()).unwrap();
    let mut worst_unclipped = 0f32;
    for r in 0..test.len() {
        let (g, w) = (&loose[r * 10..r * 10 + 10], &want[r * 10..r * 10 + 10]);
        let top = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        for j in 0..10 {
            worst_unclipped = worst_unclipped.max((g[j] / conv.logit_scale - w[j]).abs() / top);
        }
    }
    eprintln!(
        "{what}: worst relative logit difference {worst:.2e} ({worst_unclipped:.2e} with ReLU \
         for the clips), top-1 agreement {agree}, {} / {} weights clamped, logit scale {}",
        conv.clamped_weights, conv.weights, conv.logit_scale
    );
    assert!(agree >= 0.99, "{what}: top-1 agreement {agree}");
    worst_unclipped
}

/// The float model computes the FP net's eval logits (times `logit_scale`) on the test images:
/// ResNet-20 (unsigned inputs, residual ReLUs) and MobileNet-V2 (signed block inputs, PACT
/// clips for ReLU6, depthwise, the classifier's clip after the pool); as trained, and with every
/// α set to 1 so that the clips bind.
#[test]
fn float_model_computes_the_fp_network() {
    let test = subset(Split::Test);
    for family in [Family::ResNet20, Family::MobileNetV2] {
        let net = trained(family, 6);
        check_float_model(&net, &test, &format!("{family:?}"));
        let mut tight = net.clone();
        tight.alphas.iter_mut().for_each(|a| *a = 1.0);
        let loose = check_float_model(&tight, &test, &format!("{family:?}, α = 1"));
        // The clips matter there: without them the logits would be far off.
        assert!(
            loose > 100.0 * LOGIT_RTOL,
            "{family:?}: clips change {loose}"
        );
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("f8net-ptq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Save `net` as a checkpoint, with the metadata `f8net train` records when `family` is given.
fn save(net: &Net, path: &Path, family: Option<Family>) {
    let meta = match family {
        Some(f) => RunInfo {
            arch: f.name().to_string(),
            width: 0.25,
            precision: net.precision,
            input: (net.input.h, net.input.w, net.input.c),
            classes: 10,
        }
        .to_metadata(),
        None => HashMap::new(),
    };
    checkpoint::save(net, &meta, path).unwrap();
}

/// PTQ of an FP checkpoint: the integer model runs on the test bytes and agrees with the FP net.
#[test]
fn an_fp_checkpoint_quantizes_to_an_integer_model_that_runs_on_bytes() {
    // Enough for both nets to predict most classes (MobileNet-V2 after 30 steps predicts 2).
    const STEPS: usize = 60;
    let d = tmp_dir("lib");
    let test = subset(Split::Test);
    for family in [Family::ResNet20, Family::MobileNetV2] {
        let net = trained(family, STEPS);
        let ckpt = d.join(format!("{}.safetensors", family.name()));
        save(&net, &ckpt, Some(family));
        assert!(from_checkpoint::is_checkpoint(&ckpt));
        let q = quantize_checkpoint(
            &ckpt,
            Path::new(SUBSET_DIR),
            128,
            None,
            None,
            &QuantizeOptions::builtin(),
        )
        .unwrap();
        assert_eq!(q.images, 128);
        assert_eq!(q.spec.precision, Precision::Float);
        // Written and read back, as the command does.
        let path = d.join("m.f8.safetensors");
        file::save(&q.model, &path).unwrap();
        let model = file::load(&path).unwrap();
        let fp = eval_logits(&net, &test);
        let int = int_logits(&model, &test);
        let (acc_fp, acc_int) = (accuracy(&fp, &test.labels), accuracy(&int, &test.labels));
        let agree = agreement(&fp, &int, 10);
        eprintln!(
            "{family:?} ({STEPS} steps): FP accuracy {acc_fp:.3}, PTQ {acc_int:.3}, top-1 agreement \
             {agree:.3} on {} test images",
            test.len()
        );
        // Not a constant predictor (else agreement would say little).
        let mut classes: Vec<usize> = fp.chunks(10).map(argmax).collect();
        classes.sort();
        classes.dedup();
        assert!(
            classes.len() >= 3,
            "{family:?}: FP net predicts only {classes:?}"
        );
        assert!(agree >= 0.9, "{family:?}: PTQ agrees on {agree}");
        assert!(
            acc_int >= acc_fp - 0.03,
            "{family:?}: {acc_int} vs {acc_fp}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

fn f8net(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_f8net"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run f8net")
}

/// A failed run: non-zero exit, one `f8net:` line naming `needle`, no panic, no output file.
fn assert_refused(r: &Output, needle: &str, out: &Path) {
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("f8net: "), "{err}");
    assert!(err.contains(needle), "{needle} not in: {err}");
    assert!(!out.exists(), "{} written", out.display());
    eprintln!("refused: {}", err.trim());
}

/// `f8net quantize CHECKPOINT`: with and without the architecture metadata; bad input gives
/// one line and no file.
#[test]
fn quantize_command_takes_checkpoints_and_refuses_bad_input() {
    let d = tmp_dir("cli");
    let net = trained(Family::ResNet20, 2);
    let (with, without) = (d.join("with.safetensors"), d.join("without.safetensors"));
    save(&net, &with, Some(Family::ResNet20));
    save(&net, &without, None);
    let out = d.join("m.f8.safetensors");
    let o = out.to_str().unwrap();
    let run = |ckpt: &Path, extra: &[&str]| {
        let mut a = vec!["quantize", ckpt.to_str().unwrap(), "--out", o];
        if !extra.contains(&"--calib") {
            a.extend(["--calib", SUBSET_DIR]);
        }
        if !extra.contains(&"--calib-count") {
            a.extend(["--calib-count", "32"]);
        }
        a.extend_from_slice(extra);
        f8net(&a)
    };
    for (ckpt, extra) in [
        (&with, vec![]),
        (&without, vec!["--arch", "resnet20", "--width", "0.25"]),
    ] {
        let r = run(ckpt, &extra);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.contains("on 32 calibration images"), "{text}");
        let model = file::load(&out).unwrap();
        assert_eq!(model.input_hw, (28, 28));
        std::fs::remove_file(&out).unwrap();
    }

    // A corrupt checkpoint: the header is intact, the data cut short.
    let bytes = std::fs::read(&with).unwrap();
    let corrupt = d.join("corrupt.safetensors");
    std::fs::write(&corrupt, &bytes[..bytes.len() - 100]).unwrap();
    // A checkpoint of a network for 32×32 RGB images.
    let mut cfg = ArchConfig::small(Family::ResNet20).with_width(0.25);
    cfg.input_hw = (32, 32);
    cfg.in_channels = 3;
    let rgb = d.join("rgb.safetensors");
    let rgb_net = net_from_arch(&cfg.build().unwrap(), 7, Precision::Float).unwrap();
    save(&rgb_net, &rgb, Some(Family::ResNet20));
    let empty = d.join("empty");
    std::fs::create_dir_all(empty.join("train")).unwrap();
    let e = empty.to_str().unwrap();
    let cases: Vec<(&Path, Vec<&str>, &str)> = vec![
        (&corrupt, vec![], "corrupt.safetensors"),
        (&rgb, vec![], "32x32x3"),
        (&without, vec![], "--arch"),
        (
            &without,
            vec!["--arch", "mobilenet_v2", "--width", "0.25"],
            "not a mobilenet_v2",
        ),
        (
            &without,
            vec!["--arch", "resnet20", "--width", "0.5"],
            "width 0.5",
        ),
        (&with, vec!["--arch", "resnet18"], "not a resnet18"),
        (&with, vec!["--calib-count", "0"], "no calibration images"),
        (&with, vec!["--calib", e], "subfolder"),
        (&with, vec!["--calib", "/no/such/folder"], "/no/such/folder"),
    ];
    for (ckpt, extra, needle) in cases {
        assert_refused(&run(ckpt, &extra), needle, &out);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The float-model path of `f8net quantize` still makes the built-in model from its float
/// model and `assets/calib`: the same graph, formats and tensors (compared parsed: the file's
/// metadata keys are written in a `HashMap`'s order, so the bytes of two runs differ in it).
#[test]
fn quantize_still_reproduces_the_builtin_model() {
    let d = tmp_dir("builtin");
    let out = d.join("m.f8.safetensors");
    let r = f8net(&[
        "quantize",
        "assets/models/efficientnet_lite0.f32.safetensors",
        "--calib",
        "assets/calib",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let want = file::load(&root.join("assets/models/efficientnet_lite0.f8.safetensors")).unwrap();
    assert!(
        file::load(&out).unwrap() == want,
        "the built-in model is not reproduced"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Float-model logits (divided by the logit scale) on every image of `set`, 500 at a time.
fn float_logits(m: &f8net::model::float::FloatModel, scale: f32, set: &Dataset) -> Vec<f32> {
    let x = f8net::data::loader::to_inputs(&set.images);
    let mut out = Vec::new();
    for chunk in x.chunks(500 * set.image_size()) {
        let n = chunk.len() / set.image_size();
        out.extend(m.forward(chunk, n).unwrap().iter().map(|v| v / scale));
    }
    out
}

/// For the results table: FP vs PTQ accuracy of a real run's checkpoint on the full test set
/// (`data::fashion_mnist(Split::Test)`), what the FP net's clips and weight clamps do, and
/// several conversion schemes. Run with
/// `F8NET_PTQ_CHECKPOINT=runs/x/checkpoint.safetensors [F8NET_PTQ_ARCH=resnet20
/// F8NET_PTQ_WIDTH=0.5 F8NET_PTQ_CALIB=512] cargo test --release ptq_accuracy -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn ptq_accuracy_of_a_run() {
    use f8net::model::float::{Activation, FloatNode};
    use f8net::quantize::{BiasCorrection, Pact, WeightFl};
    use f8net::train::to_float::{to_float_with, WeightQuant};
    let Ok(ckpt) = std::env::var("F8NET_PTQ_CHECKPOINT") else {
        eprintln!("skipped: set F8NET_PTQ_CHECKPOINT");
        return;
    };
    let ckpt = PathBuf::from(ckpt);
    let arch = std::env::var("F8NET_PTQ_ARCH").ok();
    let width = std::env::var("F8NET_PTQ_WIDTH")
        .ok()
        .map(|w| w.parse::<f32>().unwrap());
    let count: usize = std::env::var("F8NET_PTQ_CALIB").map_or(512, |v| v.parse().unwrap());
    let test = f8net::data::fashion_mnist(Split::Test).unwrap();
    let (net, spec) = from_checkpoint::load_net(&ckpt, arch.as_deref(), width).unwrap();
    let k = test.classes;
    let fp = eval_logits(&net, &test);
    let report = |what: &str, logits: &[f32]| {
        eprintln!(
            "{what}: accuracy {:.4}, top-1 agreement with the FP eval {:.4}",
            accuracy(logits, &test.labels),
            agreement(logits, &fp, k)
        )
    };
    eprintln!("{} on {} test images", spec.describe(), test.len());
    report("FP eval (Net::forward_eval)", &fp);
    let conv = to_float(&net, "run").unwrap();
    eprintln!(
        "float model: {} / {} weights clamped by the FL-7 quantizer, {} clips left out",
        conv.clamped_weights,
        conv.weights,
        conv.dropped_clips.len()
    );
    report(
        "float model",
        &float_logits(&conv.model, conv.logit_scale, &test),
    );
    let mut relu = conv.model.clone();
    for node in &mut relu.nodes {
        if let FloatNode::Conv { conv, .. } = node {
            if conv.act == Activation::Relu6 {
                conv.act = Activation::Relu;
            }
        }
    }
    report(
        "float model, PACT clips as ReLU",
        &float_logits(&relu, conv.logit_scale, &test),
    );
    let open = to_float_with(&net, "run", WeightQuant::Off).unwrap();
    report(
        "float model, weights not clamped",
        &float_logits(&open.model, open.logit_scale, &test),
    );
    let builtin = QuantizeOptions::builtin();
    let schemes = [
        (
            "built-in scheme (per-channel grid, act grid, bias correction)",
            builtin,
        ),
        (
            "per-channel grid, no bias correction",
            QuantizeOptions {
                bias_correction: BiasCorrection::Off,
                ..builtin
            },
        ),
        (
            "per-channel grid, PACT codes on the clipped tensors",
            QuantizeOptions {
                pact: Pact::Relu6,
                ..builtin
            },
        ),
        (
            "per-layer grid, act grid, bias correction",
            QuantizeOptions {
                weight_fl: WeightFl::PerLayerGrid,
                ..builtin
            },
        ),
        ("paper: per-layer σ rule", QuantizeOptions::paper()),
    ];
    for (what, opts) in schemes {
        let t = std::time::Instant::now();
        let calib = Path::new(from_checkpoint::FASHION_MNIST);
        let q = quantize_checkpoint(&ckpt, calib, count, arch.as_deref(), width, &opts).unwrap();
        let int = int_logits(&q.model, &test);
        report(
            &format!(
                "PTQ {what}, {count} calibration images ({:.0} s)",
                t.elapsed().as_secs_f64()
            ),
            &int,
        );
    }
}
