//! `f8net train`: F8Net quantization-aware training (or the clipped float baseline) of an
//! architecture on Fashion-MNIST or a folder data set, on the CPU reference backend (the GPU
//! recording of the training step is still to come). Per epoch: a progress bar with rate, ETA,
//! loss and accuracy; test accuracy; a row in `metrics.csv`; an atomic checkpoint
//! (`checkpoint.safetensors`, with the data loader's state, so `--resume` continues exactly).
//! In F8Net mode the network is exported to the integer model (`model.f8.safetensors`, the file
//! `f8net infer --model` and `f8net eval` read) and its integer accuracy is measured too.

use super::checkpoint;
use super::conv_bn::Precision;
use super::export::export;
use super::from_arch::net_from_arch;
use super::net::Net;
use crate::arch::{ArchConfig, Family};
use crate::data::{self, Dataset, FolderOptions, Loader, LoaderConfig, LoaderState, Split};
use crate::error::{Error, Result};
use crate::model::{file, run_cpu};
use crate::reference::optim::{LrSchedule, WeightDecayScheme};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Float baseline or F8Net fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The clipped float baseline of F8NET.md §4.4.
    Fp,
    /// Full F8Net 8-bit fixed point.
    F8net,
}

/// Options of `f8net train`.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// resnet20, resnet18, resnet50, mobilenet_v1 or mobilenet_v2 (small-input form).
    #[arg(long, default_value = "resnet20")]
    pub arch: String,
    /// Width multiplier.
    #[arg(long, default_value_t = 0.25)]
    pub width: f32,
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Base learning rate (F8Net scaling and warm-up above batch 256, cosine decay). 0.02 was the
    /// best of 0.005 / 0.02 / 0.1 for a 200-step FP ResNet-20 (width 0.5, batch 64) run.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    #[arg(long, default_value_t = 4e-5)]
    pub wd: f32,
    #[arg(long, value_enum, default_value = "f8net")]
    pub mode: Mode,
    /// IDX files or an image-folder data set (default: Fashion-MNIST, see `data::fashion_mnist`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue from `OUT/checkpoint.safetensors`.
    #[arg(long)]
    pub resume: bool,
    /// Start from this checkpoint's weights (F8Net trains the 8-bit model from the FP one).
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 1995)]
    pub seed: u64,
    /// Stop each epoch after this many steps (quick runs and tests).
    #[arg(long)]
    pub max_steps: Option<usize>,
}

/// What a finished run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub epochs: u64,
    pub test_accuracy: f64,
    pub integer_accuracy: Option<f64>,
    pub images_per_second: f64,
}

fn load(args: &TrainArgs, split: Split) -> Result<Dataset> {
    match &args.data {
        Some(dir) => data::load_dir(
            dir,
            split,
            &FolderOptions {
                size: Some((28, 28)),
                ..Default::default()
            },
        ),
        None => data::fashion_mnist(split),
    }
}

fn accuracy(pred: &[f32], labels: &[u8], classes: usize) -> usize {
    labels
        .iter()
        .enumerate()
        .filter(|(r, &l)| {
            let row = &pred[r * classes..(r + 1) * classes];
            (0..classes).max_by(|&i, &j| row[i].total_cmp(&row[j])) == Some(l as usize)
        })
        .count()
}

/// Accuracy of the fake-quant (or float) evaluation and, given a model, of the integer model.
fn evaluate(
    net: &Net,
    test: &Dataset,
    model: Option<&crate::model::int::IntModel>,
) -> Result<(f64, Option<f64>)> {
    let mut loader = Loader::new(test, LoaderConfig::eval(100))?;
    let (mut right, mut right_int, mut total) = (0, 0, 0);
    while let Some(b) = loader.next_batch() {
        right += accuracy(&net.forward_eval(&b.inputs, b.n)?, &b.labels, test.classes);
        if let Some(m) = model {
            let codes: Vec<i32> = b.bytes.iter().map(|&v| v as i32).collect();
            let logits: Vec<f32> = run_cpu::forward(m, &codes, b.n)?
                .iter()
                .map(|&v| v as f32)
                .collect();
            right_int += accuracy(&logits, &b.labels, test.classes);
        }
        total += b.n;
    }
    let t = total.max(1) as f64;
    Ok((right as f64 / t, model.map(|_| right_int as f64 / t)))
}

/// Run the training described by `args`.
pub fn run(args: &TrainArgs) -> Result<Summary> {
    let family = Family::parse(&args.arch)?;
    let train = load(args, Split::Train)?;
    let test = load(args, Split::Test)?;
    let mut cfg = ArchConfig::small(family).with_width(args.width);
    cfg.in_channels = train.c;
    cfg.input_hw = (train.h, train.w);
    cfg.classes = train.classes;
    let arch = cfg.build()?;
    let precision = match args.mode {
        Mode::Fp => Precision::Float,
        Mode::F8net => Precision::Fixed,
    };
    let mut net = net_from_arch(&arch, args.seed, precision)?;
    if let Some(init) = &args.init {
        checkpoint::load_init(&mut net, init)?;
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::file(args.out.display(), e.to_string()))?;
    let ckpt = args.out.join("checkpoint.safetensors");
    let loader_cfg = LoaderConfig::train(args.batch, args.seed, 2);
    let mut loader = Loader::new(&train, loader_cfg)?;
    let mut metrics =
        String::from("epoch,step,lr,train_loss,train_accuracy,test_accuracy,seconds\n");
    if args.resume {
        let meta = checkpoint::load(&mut net, &ckpt)?;
        let state: LoaderState = meta
            .get("loader")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::file(ckpt.display(), "no data loader state"))?;
        loader = Loader::from_state(&train, loader_cfg, state)?;
        metrics = std::fs::read_to_string(args.out.join("metrics.csv")).unwrap_or(metrics);
    }
    let per_epoch = args.max_steps.map_or(loader.batches_per_epoch(), |m| {
        m.min(loader.batches_per_epoch())
    });
    let schedule = LrSchedule::f8net(args.lr, args.batch, args.epochs, per_epoch as u64)?;
    let start = std::time::Instant::now();
    let (mut seen, mut last) = (0usize, (0.0, None));
    while loader.epoch() < args.epochs {
        let epoch = loader.epoch();
        let bar = indicatif::ProgressBar::new(per_epoch as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:25}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let (mut loss_sum, mut right, mut count) = (0.0, 0, 0);
        while let Some(b) = loader.next_batch() {
            let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
            let lr = schedule.lr(net.step);
            let f = net.forward(&b.inputs, &labels)?;
            if !f.loss.is_finite() {
                return Err(Error::range(
                    "train",
                    format!(
                        "loss is {} at step {}; the last checkpoint is {}",
                        f.loss,
                        net.step + 1,
                        ckpt.display()
                    ),
                ));
            }
            right += accuracy(&f.logits, &b.labels, train.classes);
            let g = net.backward(&f)?;
            net.sgd(&g, lr, args.wd, WeightDecayScheme::All)?;
            loss_sum += f.loss as f64 * b.n as f64;
            count += b.n;
            seen += b.n;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.3} acc {:.3}",
                loss_sum / count as f64,
                right as f64 / count as f64
            ));
            if loader.state().position >= per_epoch * args.batch {
                break;
            }
        }
        bar.finish();
        loader.next_epoch();
        let model = match args.mode {
            Mode::F8net => Some(export(&net, &arch.name)?),
            Mode::Fp => None,
        };
        let final_epoch = loader.epoch() >= args.epochs;
        let (acc, int_acc) = evaluate(&net, &test, model.as_ref().filter(|_| final_epoch))?;
        last = (acc, int_acc);
        metrics += &format!(
            "{},{},{:.6},{:.5},{:.5},{:.5},{:.1}\n",
            epoch + 1,
            net.step,
            schedule.lr(net.step.saturating_sub(1)),
            loss_sum / count.max(1) as f64,
            right as f64 / count.max(1) as f64,
            acc,
            start.elapsed().as_secs_f64()
        );
        crate::io::write_atomic(&args.out.join("metrics.csv"), metrics.as_bytes())?;
        let state = serde_json::to_string(&loader.state())
            .map_err(|e| Error::file(ckpt.display(), e.to_string()))?;
        checkpoint::save(&net, &HashMap::from([("loader".to_string(), state)]), &ckpt)?;
        if let Some(m) = &model {
            file::save(m, &args.out.join("model.f8.safetensors"))?;
        }
        eprintln!(
            "epoch {}: test accuracy {acc:.4}{}",
            epoch + 1,
            int_acc.map_or(String::new(), |a| format!(", integer model {a:.4}"))
        );
    }
    Ok(Summary {
        epochs: loader.epoch(),
        test_accuracy: last.0,
        integer_accuracy: last.1,
        images_per_second: seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
    })
}

/// The output folder's files (for messages).
pub fn outputs(out: &Path) -> [PathBuf; 3] {
    [
        out.join("metrics.csv"),
        out.join("checkpoint.safetensors"),
        out.join("model.f8.safetensors"),
    ]
}
