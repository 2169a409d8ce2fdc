//! `f8net train` and `f8net eval` at library level, on the committed Fashion-MNIST subset with a
//! tiny ResNet-20 (width 0.25, batch 32, 3 steps per epoch): a run stopped after epoch 1 and
//! resumed ends exactly like one that was not (metrics rows, checkpoint tensors, FL table,
//! integer model); a checkpoint rebuilds its network from its metadata, or from `--arch`/`--width`
//! when it has none; the plots are real PNGs.

use clap::Parser;
use f8net::data::Split;
use f8net::train::eval::{self, EvalArgs};
use f8net::train::run::{self, TrainArgs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Parser)]
struct Cli<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

/// `f8net train` options for the tiny run into `out` (the CLI's defaults for everything else).
pub fn tiny_train(out: &Path, epochs: u64, extra: &[&str]) -> TrainArgs {
    let mut argv: Vec<String> = [
        "train",
        "--width",
        "0.25",
        "--batch",
        "32",
        "--max-steps",
        "3",
    ]
    .map(String::from)
    .to_vec();
    argv.extend([
        "--data".into(),
        f8net::data::SUBSET_DIR.into(),
        "--epochs".into(),
        epochs.to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::<TrainArgs>::parse_from(argv).args
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("f8net-train-eval-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every tensor of a safetensors file: name → (dtype, shape, bytes).
pub fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, t)| {
            let v = (
                format!("{:?}", t.dtype()),
                t.shape().to_vec(),
                t.data().to_vec(),
            );
            (n, v)
        })
        .collect()
}

/// metrics.csv rows without the wall-clock `seconds` column.
pub fn metrics_rows(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let secs = header.iter().position(|h| *h == "seconds").unwrap();
    csv.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(secs);
            f.join(",")
        })
        .collect()
}

/// The two runs in `a` and `b` ended in the same state: metrics (less seconds), checkpoint
/// tensors bit for bit, FL table, integer model.
pub fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(metrics_rows(a), metrics_rows(b));
    let (ta, tb) = (
        tensors(&a.join("checkpoint.safetensors")),
        tensors(&b.join("checkpoint.safetensors")),
    );
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "tensor names differ"
    );
    for (name, t) in &ta {
        assert!(tb[name] == *t, "checkpoint tensor {name} differs");
    }
    let fl = |d: &Path| std::fs::read_to_string(d.join("fl.csv")).unwrap();
    assert_eq!(fl(a), fl(b), "fl.csv differs");
    // The integer model: same tensors and metadata (the header's key order is not fixed).
    let model = |d: &Path| {
        let p = d.join("model.f8.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        (tensors(&p), meta.metadata().clone())
    };
    assert!(model(a) == model(b), "model.f8.safetensors differs");
}

#[test]
fn a_run_stopped_after_epoch_1_and_resumed_ends_like_a_straight_run() {
    let d = tmp_dir("resume");
    let (straight, split) = (d.join("straight"), d.join("split"));
    let s = run::run(&tiny_train(&straight, 2, &[])).unwrap();
    assert_eq!((s.epochs, s.interrupted.clone()), (2, None));
    let first = run::run(&tiny_train(&split, 2, &["--stop-after", "1"])).unwrap();
    assert_eq!(first.epochs, 1);
    assert!(
        first.integer_accuracy.is_none(),
        "the integer model is measured at the end only"
    );
    assert_eq!(metrics_rows(&split).len(), 2, "header and epoch 1");
    let resumed = run::run(&tiny_train(&split, 2, &["--resume"])).unwrap();
    assert_eq!(resumed.epochs, 2);
    assert_eq!(resumed.test_accuracy, s.test_accuracy);
    assert_eq!(resumed.integer_accuracy, s.integer_accuracy);
    assert_same_run(&straight, &split);
    // Both epochs' FLs of every conv unit and the classifier are in fl.csv; the plots decode.
    let fl = std::fs::read_to_string(straight.join("fl.csv")).unwrap();
    let units = fl.lines().filter(|l| l.starts_with("1,")).count();
    assert!(units >= 20, "{fl}");
    assert_eq!(fl.lines().filter(|l| l.starts_with("2,")).count(), units);
    assert!(fl.lines().any(|l| l.starts_with("2,fc,")), "{fl}");
    for (f, w, h) in [("curves.png", 960, 320), ("fl.png", 0, 0)] {
        let img = image::open(straight.join(f)).unwrap().to_rgb8();
        assert!(
            w == 0 || img.dimensions() == (w, h),
            "{f}: {:?}",
            img.dimensions()
        );
        // Drawn, not blank: the first series colour (curves) / some colour key swatch (fl).
        let coloured = img
            .pixels()
            .filter(|p| p[0] != p[1] || p[1] != p[2])
            .count();
        assert!(coloured > 500, "{f}: {coloured} coloured pixels");
    }
    let a = f8net::plot::PALETTE[0];
    let curves = image::open(straight.join("curves.png")).unwrap().to_rgb8();
    assert!(curves.pixels().any(|p| p.0 == a), "no first-series line");

    // A checkpoint rebuilds its network from its metadata: eval's accuracies are the run's.
    let ckpt = straight.join("checkpoint.safetensors");
    let model = straight.join("model.f8.safetensors");
    let args = EvalArgs {
        checkpoint: Some(ckpt.clone()),
        model: Some(model),
        data: Some(f8net::data::SUBSET_DIR.into()),
        arch: None,
        width: None,
        cpu: true,
        json: false,
        export: None,
        bn_images: 0,
        bn_batch: 250,
    };
    let r = eval::run(&args, None).unwrap();
    assert_eq!(r.checkpoint.as_ref().unwrap().score.rate(), s.test_accuracy);
    assert_eq!(
        Some(r.model.as_ref().unwrap().score.rate()),
        s.integer_accuracy
    );
    // The run re-estimated its BN statistics after the last epoch; doing it again in eval
    // (same images, same batches) finds the same statistics, so the same accuracy.
    let again = EvalArgs {
        bn_images: 10_000,
        ..args.clone()
    };
    let r2 = eval::run(&again, None).unwrap();
    let c2 = r2.checkpoint.as_ref().unwrap();
    assert!(c2.about.contains("re-estimated on 500"), "{}", c2.about);
    assert_eq!(c2.score.rate(), s.test_accuracy);
    // The statistics themselves: re-estimating the saved network changes nothing.
    let (saved, _) = f8net::train::rebuild::load_net(&ckpt, None, None).unwrap();
    let mut again = saved.clone();
    let train = eval::load_data(Some(Path::new(f8net::data::SUBSET_DIR)), Split::Train).unwrap();
    let how = f8net::train::bn_stats::BnEstimate::DEFAULT;
    f8net::train::bn_stats::reestimate(&mut again, &train, how).unwrap();
    assert_eq!(
        again, saved,
        "the checkpoint's BN statistics are not the re-estimated ones"
    );
    assert_eq!(r.agreement.unwrap().total, 200);

    // Without the rebuild metadata (an older checkpoint), --arch and --width are needed.
    let old = d.join("old.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut info = meta.metadata().clone().unwrap();
    info.retain(|k, _| !is_run_info(k));
    std::fs::write(
        &old,
        safetensors::serialize(st.tensors(), Some(info)).unwrap(),
    )
    .unwrap();
    let test = eval::load_data(
        Some(Path::new(f8net::data::SUBSET_DIR)),
        f8net::data::Split::Test,
    )
    .unwrap();
    let e = eval::load_checkpoint(&old, None, None, &test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--arch"), "{e}");
    let e = eval::load_checkpoint(&old, Some("resnet20"), Some(0.5), &test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another architecture"), "{e}");
    let (net, _, about) = eval::load_checkpoint(&old, Some("resnet20"), Some(0.25), &test).unwrap();
    assert!(about.contains("resnet20 width 0.25, f8net"), "{about}");
    let acc = eval::accuracy(&eval::net_predictions(&net, &test).unwrap(), &test.labels);
    assert_eq!(acc.rate(), s.test_accuracy);
    // With only some fields (arch and width, as other tools write them) no flags are needed.
    let partial = d.join("partial.safetensors");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut info = meta.metadata().clone().unwrap();
    info.retain(|k, _| !is_run_info(k) || k == "f8net.arch" || k == "f8net.width");
    std::fs::write(
        &partial,
        safetensors::serialize(st.tensors(), Some(info)).unwrap(),
    )
    .unwrap();
    let (net, _, _) = eval::load_checkpoint(&partial, None, None, &test).unwrap();
    let acc = eval::accuracy(&eval::net_predictions(&net, &test).unwrap(), &test.labels);
    assert_eq!(acc.rate(), s.test_accuracy);
    // Flags that contradict the metadata are refused.
    let e = eval::load_checkpoint(&ckpt, Some("mobilenet_v2"), None, &test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a resnet20, not a mobilenet_v2"), "{e}");
}

fn is_run_info(key: &str) -> bool {
    [
        "f8net.arch",
        "f8net.width",
        "f8net.mode",
        "f8net.input_h",
        "f8net.input_w",
        "f8net.input_c",
        "f8net.classes",
    ]
    .contains(&key)
}

#[test]
fn plots_draw_lines_and_heat_maps() {
    use f8net::plot::{heat_maps_png, line_charts_png, HeatMap, LineChart, Series};
    let chart = LineChart {
        title: "loss".into(),
        x_label: "epoch".into(),
        series: vec![Series {
            name: "a".into(),
            points: vec![(1.0, 2.0), (2.0, 1.0), (3.0, f64::NAN), (4.0, 0.5)],
        }],
        y_clamp: None,
        integer_x: true,
    };
    let png = line_charts_png(&[chart.clone(), chart], 300, 200).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (600, 200));
    let blue = f8net::plot::PALETTE[0];
    let left = img
        .enumerate_pixels()
        .filter(|(x, _, p)| *x < 300 && p.0 == blue)
        .count();
    let right = img
        .enumerate_pixels()
        .filter(|(x, _, p)| *x >= 300 && p.0 == blue)
        .count();
    assert!(left > 100 && left == right, "{left} {right}");
    let map = HeatMap {
        title: "fl".into(),
        row_labels: vec!["conv1".into(), "fc".into()],
        column_labels: vec!["1".into(), "2".into()],
        x_label: "epoch".into(),
        values: vec![vec![Some(8), Some(8)], vec![Some(5), None]],
    };
    let img = image::load_from_memory(&heat_maps_png(&[map]).unwrap())
        .unwrap()
        .to_rgb8();
    // The lowest value gets the first colour of the map, the highest the last.
    for c in [f8net::plot::colour(0.0), f8net::plot::colour(1.0)] {
        assert!(
            img.pixels().filter(|p| **p == c).count() > 100,
            "{c:?} missing"
        );
    }
    assert_eq!(f8net::plot::ticks(0.0, 1.0, 5).0.len(), 6);
}

#[test]
fn weight_decay_scheme_follows_the_paper_per_architecture_unless_given() {
    use f8net::arch::Family;
    use f8net::reference::optim::WeightDecayScheme;
    for family in Family::ALL {
        let want = if family == Family::MobileNetV2 {
            WeightDecayScheme::NoDepthwiseNoBn
        } else {
            WeightDecayScheme::All
        };
        assert_eq!(family.weight_decay_scheme(), want, "{family:?}");
    }
    let out = tmp_dir("wd-scheme");
    assert_eq!(tiny_train(&out, 1, &[]).wd_scheme, None);
    for (flag, scheme) in [
        ("all", WeightDecayScheme::All),
        ("no-depthwise-no-bn", WeightDecayScheme::NoDepthwiseNoBn),
    ] {
        let given = tiny_train(&out, 1, &["--wd-scheme", flag]);
        assert_eq!(given.wd_scheme, Some(scheme));
    }
}

#[test]
fn a_zero_bn_batch_is_refused_before_any_work() {
    let out = tmp_dir("bn-batch");
    // A missing data folder would be the first error if the settings were checked later.
    let missing = out.join("no-such-data");
    let train = tiny_train(&out, 1, &["--bn-batch", "0"]);
    let train = TrainArgs {
        data: Some(missing.clone()),
        ..train
    };
    let e = run::run(&train).unwrap_err().to_string();
    assert!(e.contains("--bn-batch must be at least 1"), "{e}");
    assert!(!out.join("checkpoint.safetensors").exists());
    let eval_args = EvalArgs {
        checkpoint: Some(out.join("missing.safetensors")),
        model: None,
        data: Some(missing),
        arch: None,
        width: None,
        cpu: true,
        json: false,
        export: None,
        bn_images: 100,
        bn_batch: 0,
    };
    let e = eval::run(&eval_args, None).unwrap_err().to_string();
    assert!(e.contains("--bn-batch must be at least 1"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}
