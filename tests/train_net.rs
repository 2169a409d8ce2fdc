//! The CPU F8Net training network (`train::net`): the gradients of the clipping levels α through
//! every unit's scales against finite differences (clipped-float precision), and a few SGD steps
//! on a small separable task lower the loss in both precisions.

use crate::common::*;
use f8net::fixed::Signedness;
use f8net::model::float::ConvKind;
use f8net::reference::optim::WeightDecayScheme;
use f8net::reference::residual::Activation;
use f8net::reference::Window;
use f8net::tensor::Shape;
use f8net::train::conv_bn::{ConvBn, InputQuant, Precision};
use f8net::train::linear::Classifier;
use f8net::train::net::{Net, Node};
use f8net::train::weight_format::WeightFormat;

fn kaiming(rng: &mut Rng, n: usize, fan: usize) -> Vec<f32> {
    let s = (2.0 / fan as f32).sqrt();
    (0..n).map(|_| rng.f32() * s * 1.7).collect()
}

/// conv(fixed 8-bit input) → conv s2 → conv + skip (add, ReLU) → pool → classifier.
pub(crate) fn tiny(precision: Precision) -> Net {
    let mut rng = Rng::new(3);
    let w3 = |s| Window::symmetric(3, s, 1);
    let unit = |rng: &mut Rng, name, cin, cout, s, input| {
        ConvBn::new(
            name,
            ConvKind::Dense,
            cin,
            cout,
            w3(s),
            input,
            kaiming(rng, cout * 9 * cin, 9 * cout),
        )
    };
    let u = InputQuant::Quantized(Signedness::Unsigned);
    let c1 = unit(&mut rng, "c1", 1, 4, 1, InputQuant::Fixed);
    let c2 = unit(&mut rng, "c2", 4, 8, 2, u);
    let c3 = unit(&mut rng, "c3", 8, 8, 1, u);
    let fc = Classifier::new(8, 2, (0..16).map(|_| rng.f32() * 0.3).collect());
    Net {
        input: Shape::new(0, 8, 8, 1),
        // α 0: c2's; α 1: the residual stream (c3, and the classifier reads it too).
        nodes: vec![
            Node::Conv {
                input: 0,
                unit: c1,
                alpha: 0,
                next: Some(1),
                act: Activation::Identity,
            },
            Node::Conv {
                input: 1,
                unit: c2,
                alpha: 0,
                next: Some(2),
                // Read by the residual add as well: the ReLU is applied to the unit output.
                act: Activation::Relu,
            },
            Node::Conv {
                input: 2,
                unit: c3,
                alpha: 1,
                next: Some(5),
                act: Activation::Identity,
            },
            Node::Add {
                a: 3,
                b: 2,
                relu: true,
            },
            Node::GlobalAvgPool { input: 4 },
            Node::Classifier {
                input: 5,
                fc,
                alpha: 1,
            },
        ],
        alphas: vec![8.0, 8.0],
        precision,
        momentum: Vec::new(),
        step: 0,
    }
}

/// Images whose top or bottom half is bright, labelled by which.
pub(crate) fn batch(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..n {
        let label = rng.int(0, 1) as u32;
        for r in 0..8 {
            for _ in 0..8 {
                let bright = (r < 4) == (label == 0);
                let v = if bright { 0.6 } else { 0.1 } + 0.05 * rng.f32();
                x.push((v * 256.0).round() / 256.0);
            }
        }
        y.push(label);
    }
    (x, y)
}

#[test]
fn alpha_gradients_match_finite_differences() {
    let net = tiny(Precision::Float);
    let mut rng = Rng::new(8);
    let (x, y) = batch(&mut rng, 6);
    let loss = |n: &Net| n.clone().forward(&x, &y).unwrap().loss as f64;
    let mut base = net.clone();
    let f = base.forward(&x, &y).unwrap();
    let grads = base.backward(&f).unwrap();
    let dalpha = grads.last().unwrap().clone();
    for (a, analytic) in dalpha.iter().enumerate() {
        let e = 1e-2f32;
        let (mut p, mut m) = (net.clone(), net.clone());
        p.alphas[a] += e;
        m.alphas[a] -= e;
        let num = (loss(&p) - loss(&m)) / (2.0 * e as f64);
        let tol = FD_ATOL as f64 + FD_RTOL as f64 * num.abs();
        assert!(
            (*analytic as f64 - num).abs() <= tol,
            "dα[{a}]: analytic {analytic} numeric {num}"
        );
    }
    // One weight of the first unit, through the whole network.
    let (mut p, mut m) = (net.clone(), net.clone());
    for (net, sign) in [(&mut p, 1.0), (&mut m, -1.0)] {
        if let Node::Conv { unit, .. } = &mut net.nodes[0] {
            unit.weight[5] += sign * FD_EPS;
        }
    }
    let num = (loss(&p) - loss(&m)) / (2.0 * FD_EPS as f64);
    let tol = FD_ATOL as f64 + FD_RTOL as f64 * num.abs();
    assert!(
        (grads[0][5] as f64 - num).abs() <= tol,
        "dw: analytic {} numeric {num}",
        grads[0][5]
    );
}

#[test]
fn sgd_steps_lower_the_loss() {
    for precision in [Precision::Float, Precision::Fixed] {
        let mut net = tiny(precision);
        let mut rng = Rng::new(21);
        let (x, y) = batch(&mut rng, 32);
        let first = net.forward(&x, &y).unwrap().loss;
        for _ in 0..40 {
            let f = net.forward(&x, &y).unwrap();
            let g = net.backward(&f).unwrap();
            net.sgd(&g, 0.05, 4e-5, WeightDecayScheme::All).unwrap();
        }
        let last = net.forward(&x, &y).unwrap().loss;
        assert!(
            last.is_finite() && last < 0.5 * first,
            "{precision:?}: loss {first} -> {last}"
        );
        assert_eq!(net.step, 40);
    }
}

#[test]
fn exported_integer_model_reproduces_the_fake_quant_evaluation() {
    for format in [WeightFormat::PerLayer, WeightFormat::PerChannel] {
        export_agrees(format);
    }
}

/// Per-channel units whose output only quantizers read (c1 → c2) may reach a larger
/// accumulator FL than those a residual add reads (c2, c3).
#[test]
fn per_channel_accumulator_caps_follow_the_graph() {
    use f8net::train::weight_format::{ACC_FL_QUANTIZED, ACC_FL_SHARED};
    let mut net = tiny(Precision::Fixed);
    net.set_weight_format(WeightFormat::PerChannel);
    let caps: Vec<i32> = net
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Conv { unit, .. } => Some(unit.max_acc_fl),
            _ => None,
        })
        .collect();
    assert_eq!(caps, [ACC_FL_QUANTIZED, ACC_FL_SHARED, ACC_FL_SHARED]);
}

fn export_agrees(format: WeightFormat) {
    use f8net::model::{file, run_cpu, run_gpu::GpuModel};
    let mut net = tiny(Precision::Fixed);
    net.set_weight_format(format);
    let mut rng = Rng::new(5);
    for _ in 0..30 {
        let (x, y) = batch(&mut rng, 16);
        let f = net.forward(&x, &y).unwrap();
        let g = net.backward(&f).unwrap();
        net.sgd(&g, 0.05, 4e-5, WeightDecayScheme::All).unwrap();
    }
    if format == WeightFormat::PerChannel {
        // Half of c2's channels 2^9 larger: their W̃ needs negative FLs (steps of 2^k).
        if let Node::Conv { unit, .. } = &mut net.nodes[1] {
            unit.gamma.iter_mut().step_by(2).for_each(|g| *g *= 512.0);
        }
    }
    let model = f8net::train::export::export(&net, "tiny").unwrap();
    if let f8net::model::int::IntNode::Conv { layer, .. } = &model.nodes[1] {
        let negative = layer.weight_fl.iter().any(|&f| f < 0);
        assert_eq!(
            negative,
            format == WeightFormat::PerChannel,
            "{:?}",
            layer.weight_fl
        );
    }
    // The per-channel export keeps one FL per channel (the trained units differ across channels).
    let distinct = |l: &f8net::model::int::IntLayer| {
        let mut v = l.weight_fl.clone();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let most = model
        .nodes
        .iter()
        .filter_map(|n| match n {
            f8net::model::int::IntNode::Conv { layer, .. } => Some(distinct(layer)),
            _ => None,
        })
        .max()
        .unwrap();
    match format {
        WeightFormat::PerLayer => assert_eq!(most, 1),
        WeightFormat::PerChannel => assert!(most > 1, "{format:?}: one FL per layer"),
    }
    let bytes = file::to_bytes(&model).unwrap();
    // Saved again, the model is the same file (each save builds its metadata map afresh).
    for _ in 0..8 {
        assert!(file::to_bytes(&model).unwrap() == bytes);
    }
    let model = file::from_bytes(&bytes).unwrap();
    // A test set of 400 fresh images: the integer model's top-1 equals the fake-quant eval's.
    let n = 400;
    let (x, _) = batch(&mut rng, n);
    let eval = net.forward_eval(&x, n).unwrap();
    let codes: Vec<i32> = x.iter().map(|v| (v * 256.0) as i32).collect();
    let int = run_cpu::forward(&model, &codes, n).unwrap();
    let fl = model.logits_fl().unwrap();
    let mut same = 0;
    let mut max_diff = 0f32;
    for r in 0..n {
        let (e, i) = (&eval[2 * r..2 * r + 2], &int[2 * r..2 * r + 2]);
        same += ((e[1] > e[0]) == (i[1] > i[0])) as usize;
        for c in 0..2 {
            max_diff = max_diff.max((e[c] - i[c] as f32 * (-fl as f32).exp2()).abs());
        }
    }
    eprintln!(
        "{format:?} export agreement: {same}/{n} same top-1, max logit difference {max_diff}"
    );
    assert!(same as f64 >= 0.995 * n as f64, "{same}/{n}");
    // Only rounding of the int32 biases and of activations on a rounding boundary may differ.
    assert!(max_diff < 0.05, "max logit difference {max_diff}");
    // The GPU runs the exported model bit for bit like the CPU reference.
    if let Some(gpu) = gpu_or_skip() {
        let on_gpu = GpuModel::upload(gpu, &model).unwrap();
        assert_exact(
            &on_gpu.forward(gpu, &codes[..64 * 64], 64).unwrap(),
            &int[..128],
            "exported model, GPU vs CPU",
        );
    }
}

mod checkpoints {
    use super::*;
    use f8net::train::checkpoint;
    use std::collections::HashMap;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("f8net-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn steps(net: &mut Net, rng: &mut Rng, k: usize) -> Vec<f32> {
        (0..k)
            .map(|_| {
                let (x, y) = batch(rng, 16);
                net.train_step(&x, &y, 0.05, 4e-5, WeightDecayScheme::All)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn resume_equals_uninterrupted_training() {
        resume_equals_uninterrupted(WeightFormat::PerLayer);
        // The checkpoint records the weight format: a per-layer network loading it takes it.
        resume_equals_uninterrupted(WeightFormat::PerChannel);
    }

    fn resume_equals_uninterrupted(format: WeightFormat) {
        let d = dir(&format!("resume-{}", format.name()));
        let path = d.join("ckpt.safetensors");
        let tiny = |p| {
            let mut n = super::tiny(p);
            n.set_weight_format(format);
            n
        };
        // Uninterrupted: 6 steps.
        let mut a = tiny(Precision::Fixed);
        let mut rng_a = Rng::new(77);
        let all = steps(&mut a, &mut rng_a, 6);
        // Interrupted after 3 steps: save, rebuild from scratch, load, continue.
        let mut b = tiny(Precision::Fixed);
        let mut rng_b = Rng::new(77);
        let first = steps(&mut b, &mut rng_b, 3);
        let extra = HashMap::from([("data.rng".to_string(), "kept by the caller".to_string())]);
        checkpoint::save(&b, &extra, &path).unwrap();
        // The same state saved again (a fresh metadata map, another hash order) is the same file.
        let again = d.join("again.safetensors");
        checkpoint::save(&b, &extra.clone().into_iter().collect(), &again).unwrap();
        assert!(std::fs::read(&path).unwrap() == std::fs::read(&again).unwrap());
        let mut c = super::tiny(Precision::Fixed);
        let meta = checkpoint::load(&mut c, &path).unwrap();
        assert_eq!(meta["data.rng"], "kept by the caller");
        assert_eq!(c.weight_format(), format);
        assert_eq!(c, b);
        let rest = steps(&mut c, &mut rng_b, 3);
        assert_eq!([first, rest].concat(), all, "losses after resuming");
        assert_eq!(c, a);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_checkpoints_are_refused_and_change_nothing() {
        let d = dir("bad");
        let path = d.join("ckpt.safetensors");
        let mut net = tiny(Precision::Fixed);
        let mut rng = Rng::new(1);
        steps(&mut net, &mut rng, 2);
        checkpoint::save(&net, &HashMap::new(), &path).unwrap();
        // Another architecture (a different classifier width).
        let mut other = tiny(Precision::Fixed);
        if let Node::Classifier { fc, .. } = &mut other.nodes[5] {
            *fc = Classifier::new(8, 3, vec![0.0; 24]);
        }
        let before = other.clone();
        let e = checkpoint::load(&mut other, &path).unwrap_err().to_string();
        assert!(e.contains("another architecture"), "{e}");
        assert_eq!(other, before);
        // Truncated.
        let bytes = std::fs::read(&path).unwrap();
        let cut = d.join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let mut fresh = tiny(Precision::Fixed);
        let e = checkpoint::load(&mut fresh, &cut).unwrap_err().to_string();
        assert!(e.contains("cut.safetensors"), "{e}");
        assert_eq!(fresh, tiny(Precision::Fixed));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_fp_checkpoint_initializes_an_f8net_network() {
        let d = dir("init");
        let path = d.join("fp.safetensors");
        let mut fp = tiny(Precision::Float);
        let mut rng = Rng::new(4);
        steps(&mut fp, &mut rng, 2);
        checkpoint::save(&fp, &HashMap::new(), &path).unwrap();
        // Resuming an F8Net run from a float checkpoint is refused; initializing from it is not.
        let mut q = tiny(Precision::Fixed);
        let e = checkpoint::load(&mut q, &path).unwrap_err().to_string();
        assert!(e.contains("--init"), "{e}");
        checkpoint::load_init(&mut q, &path).unwrap();
        assert_eq!(
            (q.step, q.precision, q.momentum.len()),
            (0, Precision::Fixed, 0)
        );
        assert_eq!(q.alphas, fp.alphas);
        assert_eq!(q.nodes, fp.nodes);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_nan_loss_stops_training_with_the_step_named() {
        let mut net = tiny(Precision::Fixed);
        let mut rng = Rng::new(2);
        steps(&mut net, &mut rng, 2);
        let good = net.clone();
        if let Node::Classifier { fc, .. } = &mut net.nodes[5] {
            fc.bias[0] = f32::NAN;
        }
        let (x, y) = batch(&mut rng, 16);
        let e = net
            .train_step(&x, &y, 0.05, 4e-5, WeightDecayScheme::All)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at step 3"), "{e}");
        // Nothing was updated by the failed step (only the corrupted bias differs).
        assert_eq!(net.step, good.step);
        assert_eq!(net.momentum, good.momentum);
    }
}

mod from_arch {
    use f8net::arch::{ArchConfig, Family};
    use f8net::data::{load_idx, Loader, LoaderConfig, Split};
    use f8net::model::run_cpu;
    use f8net::reference::optim::WeightDecayScheme;
    use f8net::train::conv_bn::Precision;
    use f8net::train::from_arch::net_from_arch;

    /// Small-input ResNet-20 and MobileNet-V2 (width 0.25) train on real Fashion-MNIST images
    /// (the committed subset) and export to integer models that agree with the fake-quant eval.
    #[test]
    fn small_networks_train_on_fashion_mnist_and_export() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/data/fashion-mnist-subset"
        );
        let train = load_idx(std::path::Path::new(dir), Split::Train).unwrap();
        let test = load_idx(std::path::Path::new(dir), Split::Test).unwrap();
        for family in [Family::ResNet20, Family::MobileNetV2] {
            let arch = ArchConfig::small(family).with_width(0.25).build().unwrap();
            let mut net = net_from_arch(&arch, 7, Precision::Fixed).unwrap();
            let mut loader = Loader::new(&train, LoaderConfig::train(32, 1, 2)).unwrap();
            let mut losses = Vec::new();
            for _ in 0..6 {
                let b = loader.next_batch().unwrap();
                let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
                losses.push(
                    net.train_step(&b.inputs, &labels, 0.05, 4e-5, WeightDecayScheme::All)
                        .unwrap(),
                );
            }
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "{family:?}: {losses:?}"
            );
            let model = f8net::train::export::export(&net, arch.name.as_str()).unwrap();
            let mut eval = Loader::new(&test, LoaderConfig::eval(100)).unwrap();
            let b = eval.next_batch().unwrap();
            let fq = net.forward_eval(&b.inputs, b.n).unwrap();
            let codes: Vec<i32> = b.bytes.iter().map(|&v| v as i32).collect();
            let int = run_cpu::forward(&model, &codes, b.n).unwrap();
            let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
            let same = (0..b.n)
                .filter(|&r| {
                    let f = argmax(&fq[r * 10..r * 10 + 10]);
                    let i: Vec<f32> = int[r * 10..r * 10 + 10].iter().map(|&v| v as f32).collect();
                    argmax(&i) == f
                })
                .count();
            eprintln!(
                "{family:?}: losses {losses:?}; export agreement {same}/{}",
                b.n
            );
            assert!(same * 100 >= 95 * b.n, "{family:?}: {same}/{}", b.n);
        }
    }
}
