//! Architectures (`f8net::arch`): torchvision parameter counts and names, the F8Net wiring
//! (signed MobileNet-V2 block inputs, α masters along residual streams), float models of every
//! network in both forms (finite logits of the right shape), the seeded init, loading from
//! named tensors, clear errors, and on the GPU: quantized ResNet-18 / MobileNet-V2 (max pool
//! included) bit-exact against the CPU reference, their f32 forward close to the CPU float one.

use crate::common::*;
use f8net::arch::{Arch, ArchConfig, Family, Form, InputKind, Op};
use f8net::bench::models;
use f8net::fixed::{Format, Signedness};
use f8net::model::file;
use f8net::model::float::{FloatModel, FloatNode};
use f8net::model::int::{IntModel, IntNode};
use f8net::model::run_cpu;
use f8net::model::run_gpu::GpuModel;
use f8net::model::run_gpu_f32::GpuFloatModel;
use f8net::quantize::{quantize, QuantizeOptions};

fn imagenet(f: Family) -> Arch {
    ArchConfig::imagenet(f).build().unwrap()
}

#[test]
fn imagenet_parameter_counts_equal_torchvision() {
    // torchvision's sum(p.numel() for p in model.parameters()) and len(list(parameters())).
    for (f, count, tensors) in [
        (Family::ResNet18, 11_689_512, 62),
        (Family::ResNet50, 25_557_032, 161),
        (Family::MobileNetV2, 3_504_872, 158),
        // Standard MobileNet-V1 1.0-224: conv weights, BN γ/β, FC 1024→1000 with bias.
        (Family::MobileNetV1, 4_231_976, 83),
    ] {
        let a = imagenet(f);
        assert_eq!(a.param_count(), count, "{}", a.name);
        assert_eq!(a.parameters().len(), tensors, "{}", a.name);
    }
    // Multiply-accumulates per image (conv + fc), worked out by hand for ResNet-18: 1.814 G.
    let r18 = imagenet(Family::ResNet18).to_float_model(0).unwrap();
    assert_eq!(models::macs_per_image(&r18).unwrap(), 1_814_073_344);
    assert_eq!(models::batches_for("resnet18", &[1, 32], true), [1]);
    assert_eq!(models::batches_for("resnet18", &[1, 32], false), [1, 32]);
    // CIFAR ResNet-20 (10 classes, RGB) with 1×1 projection shortcuts: the paper's 0.27 M.
    let r20 = ArchConfig {
        in_channels: 3,
        input_hw: (32, 32),
        ..ArchConfig::small(Family::ResNet20)
    };
    assert_eq!(r20.build().unwrap().param_count(), 272_474);
}

/// torchvision's ResNet-18 state-dict parameter names, written out independently.
fn torchvision_resnet18_names() -> Vec<String> {
    let mut v = vec!["conv1.weight".to_string()];
    let bn = |v: &mut Vec<String>, p: &str| {
        v.push(format!("{p}.weight"));
        v.push(format!("{p}.bias"));
    };
    bn(&mut v, "bn1");
    for s in 1..=4 {
        for b in 0..2 {
            let p = format!("layer{s}.{b}");
            v.push(format!("{p}.conv1.weight"));
            bn(&mut v, &format!("{p}.bn1"));
            v.push(format!("{p}.conv2.weight"));
            bn(&mut v, &format!("{p}.bn2"));
            if s > 1 && b == 0 {
                v.push(format!("{p}.downsample.0.weight"));
                bn(&mut v, &format!("{p}.downsample.1"));
            }
        }
    }
    v.push("fc.weight".into());
    v.push("fc.bias".into());
    v
}

#[test]
fn parameter_names_and_shapes_follow_torchvision() {
    let r18 = imagenet(Family::ResNet18);
    let names: Vec<String> = r18.parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(names, torchvision_resnet18_names());
    let shape = |a: &Arch, n: &str| {
        a.parameters()
            .into_iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("{}: no {n}", a.name))
            .shape
    };
    assert_eq!(shape(&r18, "conv1.weight"), [64, 3, 7, 7]);
    assert_eq!(
        shape(&r18, "layer3.0.downsample.0.weight"),
        [256, 128, 1, 1]
    );
    assert_eq!(shape(&r18, "fc.weight"), [1000, 512]);
    let r50 = imagenet(Family::ResNet50);
    assert_eq!(shape(&r50, "layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
    assert_eq!(shape(&r50, "layer2.0.conv2.weight"), [128, 128, 3, 3]);
    assert_eq!(shape(&r50, "layer4.2.conv3.weight"), [2048, 512, 1, 1]);
    let mb2 = imagenet(Family::MobileNetV2);
    assert_eq!(shape(&mb2, "features.0.0.weight"), [32, 3, 3, 3]);
    assert_eq!(shape(&mb2, "features.1.conv.0.0.weight"), [32, 1, 3, 3]);
    assert_eq!(shape(&mb2, "features.1.conv.1.weight"), [16, 32, 1, 1]);
    assert_eq!(shape(&mb2, "features.1.conv.2.bias"), [16]);
    assert_eq!(shape(&mb2, "features.2.conv.0.0.weight"), [96, 16, 1, 1]);
    assert_eq!(shape(&mb2, "features.2.conv.1.0.weight"), [96, 1, 3, 3]);
    assert_eq!(shape(&mb2, "features.17.conv.2.weight"), [320, 960, 1, 1]);
    assert_eq!(shape(&mb2, "features.18.0.weight"), [1280, 320, 1, 1]);
    assert_eq!(shape(&mb2, "classifier.1.weight"), [1000, 1280]);
    // BN running statistics are buffers, not parameters.
    assert!(mb2.parameters().iter().all(|p| !p.name.contains("running")));
    assert_eq!(mb2.buffers().len(), 2 * 52);
    // Residual adds where stride is 1 and in == out: 10 blocks in MobileNet-V2.
    let adds = |a: &Arch| a.layers.iter().filter(|l| l.op == Op::Add).count();
    assert_eq!(adds(&mb2), 10);
    assert_eq!(adds(&r18), 8);
    // Width multipliers: torchvision's _make_divisible for MobileNet-V2 0.5 (last stays 1280).
    let half = ArchConfig::imagenet(Family::MobileNetV2).with_width(0.5);
    let half = half.build().unwrap();
    assert_eq!(shape(&half, "features.0.0.weight"), [16, 3, 3, 3]);
    assert_eq!(shape(&half, "features.1.conv.1.weight"), [8, 16, 1, 1]);
    assert_eq!(shape(&half, "features.18.0.weight"), [1280, 160, 1, 1]);
    let r20 = ArchConfig::small(Family::ResNet20).with_width(0.5);
    let r20 = r20.build().unwrap();
    assert_eq!(shape(&r20, "conv1.weight"), [8, 1, 3, 3]);
    assert_eq!(shape(&r20, "layer3.2.conv2.weight"), [32, 32, 3, 3]);
    assert_eq!(shape(&r20, "fc.weight"), [10, 32]);
}

#[test]
fn wiring_marks_signed_inputs_and_alpha_masters() {
    let mb2 = imagenet(Family::MobileNetV2);
    for w in &mb2.wiring {
        // Signed: the first conv of blocks features.2..17 and the tail conv features.18.
        let block_first = (2..=17).any(|f| w.name == format!("features.{f}.conv.0.0"));
        let want = if w.name == "features.0.0" {
            InputKind::Image
        } else if block_first || w.name == "features.18.0" {
            InputKind::Signed
        } else {
            InputKind::Unsigned
        };
        assert_eq!(w.input, want, "{}", w.name);
    }
    let master = |a: &Arch, n: &str| a.wiring_of(n).unwrap().alpha_master.clone();
    let s = |n: &str| Some(n.to_string());
    // As the official code: a stream starts at the first residual block of a stage (its input
    // is the stage's first block's output); the next stage's first block reads it too.
    for (conv, want) in [
        ("features.2.conv.0.0", None),
        ("features.3.conv.0.0", None),
        ("features.4.conv.0.0", s("features.3.conv.0.0")),
        ("features.5.conv.0.0", None),
        ("features.6.conv.0.0", s("features.5.conv.0.0")),
        ("features.7.conv.0.0", s("features.5.conv.0.0")),
        ("features.8.conv.0.0", None),
        ("features.10.conv.0.0", s("features.8.conv.0.0")),
        ("features.11.conv.0.0", s("features.8.conv.0.0")),
        ("features.4.conv.1.0", None),
        ("features.18.0", None),
    ] {
        assert_eq!(master(&mb2, conv), want, "{conv}");
    }

    let r18 = imagenet(Family::ResNet18);
    for w in &r18.wiring {
        let want = if w.name == "conv1" {
            InputKind::Image
        } else {
            InputKind::Unsigned
        };
        assert_eq!(w.input, want, "{}", w.name);
    }
    // As the official code: layer1 and layer2.0 read one stream, mastered by layer1.0.conv1.
    assert_eq!(master(&r18, "conv1"), None);
    assert_eq!(master(&r18, "layer1.0.conv1"), None);
    assert_eq!(master(&r18, "layer1.1.conv1"), s("layer1.0.conv1"));
    assert_eq!(master(&r18, "layer2.0.conv1"), s("layer1.0.conv1"));
    assert_eq!(master(&r18, "layer2.0.downsample.0"), s("layer1.0.conv1"));
    assert_eq!(master(&r18, "layer2.0.conv2"), None);
    assert_eq!(master(&r18, "layer2.1.conv1"), None);
    assert_eq!(master(&r18, "layer3.0.downsample.0"), s("layer2.1.conv1"));
    assert_eq!(master(&r18, "fc"), None);
    let r50 = imagenet(Family::ResNet50);
    assert_eq!(master(&r50, "layer1.0.downsample.0"), s("layer1.0.conv1"));
    assert_eq!(master(&r50, "layer1.2.conv1"), s("layer1.1.conv1"));
    assert_eq!(master(&r50, "layer2.0.downsample.0"), s("layer1.1.conv1"));
}

fn random_input(m: &FloatModel, n: usize, seed: u64) -> Vec<f32> {
    let (h, w) = m.input_hw;
    let mut rng = Rng::new(seed);
    (0..n * h * w * m.input_c)
        .map(|_| (rng.next_u64() >> 56) as f32 / 256.0)
        .collect()
}

fn check_forward(cfg: ArchConfig) {
    let arch = cfg.build().unwrap();
    let m = arch.to_float_model(7).unwrap();
    let y = m.forward(&random_input(&m, 2, 3), 2).unwrap();
    assert_eq!(y.len(), 2 * cfg.classes, "{}", arch.name);
    assert!(y.iter().all(|v| v.is_finite()), "{}: {y:?}", arch.name);
    assert!(
        y.iter().any(|&v| v != 0.0),
        "{}: all-zero logits",
        arch.name
    );
    // The two images give different logits.
    let (a, b) = y.split_at(cfg.classes);
    assert_ne!(a, b, "{}", arch.name);
}

#[test]
fn every_arch_forwards_in_both_forms() {
    for f in Family::ALL {
        for input_hw in [(28, 28), (32, 32)] {
            let cfg = ArchConfig {
                input_hw,
                ..ArchConfig::small(f).with_width(0.25)
            };
            check_forward(cfg);
        }
        check_forward(ArchConfig::imagenet(f).with_width(0.25));
    }
}

#[test]
fn seeded_init_and_named_tensors() {
    let arch = ArchConfig::small(Family::ResNet20).build().unwrap();
    let a = arch.to_float_model(1).unwrap();
    assert_eq!(a, arch.to_float_model(1).unwrap());
    assert_ne!(a, arch.to_float_model(2).unwrap());
    // Loading the init tensors by name is the same model; the conv weight goes OIHW → OHWI
    // with the BN (γ 1, var 1, eps 1e-5) folded in.
    let t = arch.init_tensors(1);
    let (shape, oihw) = t["layer2.0.conv1.weight"].clone();
    assert_eq!(shape, [32, 16, 3, 3]);
    let scale = 1.0 / (1.0f32 + 1e-5).sqrt();
    let conv = a
        .nodes
        .iter()
        .find_map(|n| match n {
            FloatNode::Conv { conv, .. } if conv.name == "layer2.0.conv1" => Some(conv),
            _ => None,
        })
        .unwrap();
    for (o, i, ky, kx) in [(0, 0, 0, 0), (5, 7, 1, 2), (31, 15, 2, 1)] {
        let want = oihw[((o * 16 + i) * 3 + ky) * 3 + kx] * scale;
        assert_eq!(conv.weight[((o * 3 + ky) * 3 + kx) * 16 + i], want);
    }
    // Kaiming-normal: std sqrt(2 / (k²·C_out)); FC N(0, 0.01).
    let std = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let (_, w) = &t["layer3.1.conv2.weight"];
    let want = (2.0f32 / (9.0 * 64.0)).sqrt();
    assert!((std(w) / want - 1.0).abs() < 0.03, "{} vs {want}", std(w));
    assert!((std(&t["fc.weight"].1) / 0.01 - 1.0).abs() < 0.15);
    assert_eq!(a, arch.float_from_tensors(t.clone(), "init").unwrap());
    // A missing, a misshapen and an extra tensor are each one clear error.
    let mut missing = t.clone();
    missing.remove("layer1.1.bn2.running_var");
    let e = arch.float_from_tensors(missing, "ckpt").unwrap_err();
    assert!(
        e.to_string()
            .contains("missing tensor layer1.1.bn2.running_var"),
        "{e}"
    );
    let mut bad = t.clone();
    bad.get_mut("fc.weight").unwrap().0 = vec![64, 10];
    let e = arch.float_from_tensors(bad, "ckpt").unwrap_err();
    assert!(
        e.to_string().contains("fc.weight has shape [64, 10]"),
        "{e}"
    );
    let mut extra = t;
    extra.insert("head.weight".into(), (vec![1], vec![0.0]));
    let e = arch.float_from_tensors(extra, "ckpt").unwrap_err();
    assert!(e.to_string().contains("head.weight"), "{e}");
}

#[test]
fn bad_configurations_are_clear_errors() {
    let msg = |c: ArchConfig| c.build().unwrap_err().to_string();
    let e = msg(ArchConfig::small(Family::ResNet20).with_width(0.02));
    assert!(e.contains("width 0.02") && e.contains("0 channels"), "{e}");
    for w in [0.0, -1.0, f32::NAN, f32::INFINITY, 5.0] {
        let e = msg(ArchConfig::small(Family::MobileNetV2).with_width(w));
        assert!(e.contains("width") && e.contains("positive"), "{e}");
    }
    let e = msg(ArchConfig {
        classes: 0,
        ..ArchConfig::small(Family::ResNet18)
    });
    assert!(e.contains("0 classes"), "{e}");
    let e = Family::parse("resnet34").unwrap_err().to_string();
    assert!(
        e.contains("unknown architecture \"resnet34\"") && e.contains("resnet20"),
        "{e}"
    );
    assert_eq!(Family::parse("MobileNet-V2").unwrap(), Family::MobileNetV2);
    assert_eq!(Family::parse("mbv1").unwrap(), Family::MobileNetV1);
    for f in Family::ALL {
        assert_eq!(Family::parse(f.name()).unwrap(), f);
    }
    // Every message is one line.
    assert!(!e.contains('\n'));
    let small = ArchConfig::small(Family::ResNet18);
    assert_eq!(small.form, Form::Small);
}

/// The ImageNet form at width 0.25 on a 64×64 input, BN-calibrated and quantized (paper rule,
/// input uint8 at FL 8).
fn quantized(family: Family) -> (FloatModel, IntModel) {
    let cfg = ArchConfig {
        input_hw: (64, 64),
        ..ArchConfig::imagenet(family).with_width(0.25)
    };
    let arch = cfg.build().unwrap();
    let calib = random_input(&arch.to_float_model(11).unwrap(), 2, 5);
    let float = arch.to_float_model_calibrated(11, &calib, 2).unwrap();
    let input = Format {
        signedness: Signedness::Unsigned,
        fl: 8,
    };
    let int = quantize(&float, &calib, 2, input, &QuantizeOptions::paper()).unwrap();
    (float, int)
}

#[test]
fn quantized_archs_keep_max_pool_and_round_trip_through_the_model_file() {
    for family in [Family::ResNet18, Family::MobileNetV2] {
        let (float, int) = quantized(family);
        // BN calibration: logits of the random network are not vanishingly small.
        let y = float.forward(&random_input(&float, 2, 9), 2).unwrap();
        let rms = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
        assert!(rms > 0.01, "{family:?}: logits rms {rms}");
        assert_eq!(
            file::from_bytes(&file::to_bytes(&int).unwrap()).unwrap(),
            int
        );
        let pools = int
            .nodes
            .iter()
            .filter(|n| matches!(n, IntNode::MaxPool { .. }))
            .count();
        assert_eq!(pools, usize::from(family == Family::ResNet18), "{family:?}");
    }
    // ResNet-18's pooled stem feeds layer1.0's identity shortcut: widened to int32 by a copy.
    let (_, int) = quantized(Family::ResNet18);
    let widen = int.nodes.iter().find_map(|n| match n {
        IntNode::Conv { layer, input, .. } if layer.name.ends_with(".int32") => {
            Some((layer, input))
        }
        _ => None,
    });
    let (layer, input) = widen.expect("a widening conv");
    assert!(matches!(int.nodes[input - 1], IntNode::MaxPool { .. }));
    assert!(layer.weight.iter().all(|&w| w == 1) && layer.ep.shift.iter().all(|&s| s == 0));
}

/// On the GPU: int8 logits bit-exact against the CPU reference, f32 logits close to the CPU
/// float forward.
fn gpu_matches_cpu(family: Family) {
    let Some(gpu) = gpu_or_skip() else { return };
    let (float, int) = quantized(family);
    let x = random_input(&float, 3, 9);
    let codes: Vec<i32> = x.iter().map(|v| (v * 256.0) as i32).collect();
    let want = run_cpu::forward(&int, &codes, 3).unwrap();
    let got = GpuModel::upload(gpu, &int)
        .unwrap()
        .forward(gpu, &codes, 3)
        .unwrap();
    assert_exact(&got, &want, &format!("{family:?} int8 logits"));
    let want = float.forward(&x, 3).unwrap();
    let got = GpuFloatModel::upload(gpu, &float)
        .unwrap()
        .forward(gpu, &x, 3)
        .unwrap();
    assert_close(&got, &want, 1e-3, 1e-3, &format!("{family:?} f32 logits"));
}

#[test]
fn resnet18_int8_and_f32_on_gpu_match_cpu() {
    gpu_matches_cpu(Family::ResNet18);
}

#[test]
fn mobilenet_v2_int8_and_f32_on_gpu_match_cpu() {
    gpu_matches_cpu(Family::MobileNetV2);
}
