//! `f8net train`: F8Net quantization-aware training (or the clipped float baseline) of an
//! architecture on Fashion-MNIST or a folder data set, on a hardware GPU or the CPU reference
//! (`backend`).
//!
//! Per step: a progress bar on a terminal, else (logs, nohup) one plain line every ~10 % of an
//! epoch (step, images/s, ETA, loss, accuracy); a stop request (Ctrl-C, see [`ctrlc_stop_flag`])
//! is honoured between steps by saving the checkpoint at the current position and returning
//! `Summary::interrupted`. Per epoch, every file written atomically into `--out`: test accuracy
//! (`eval::evaluate`); a row in `metrics.csv`; `checkpoint.safetensors` (network, data loader
//! position and RNG, the epoch's running loss/accuracy sums and the `RunInfo` that rebuilds the
//! network, so `--resume` continues exactly, even mid-epoch, and `f8net eval` needs no flags);
//! `curves.png` (loss, train/test accuracy per epoch, from two epochs on). In F8Net mode also the
//! integer model `model.f8.safetensors` (its accuracy measured after the last epoch), `fl.csv`
//! (epoch, layer, input FL, weight FL, running input FL) and `fl.png` (the FLs as layers × epochs
//! heat maps). In FP mode the FLs are fixed (input 6, weight 7), so neither FL file is written.
//! Those files are made in `train::outputs`; the progress display is `train::progress`.

use super::backend::{self, Backend, Stepper};
use super::bn_stats::{self, BnEstimate};
use super::checkpoint::{self, RunInfo};
use super::conv_bn::Precision;
use super::eval::{accuracy, evaluate, load_data, top1};
use super::export::export;
use super::fp_start::{Source, FL_WALK_BATCHES};
use super::from_arch::net_from_arch;
use super::net::Net;
use super::outputs::{columns, fl_rows, keep_epochs, write_plots, FL_HEADER, METRICS_HEADER};
use super::progress::Progress;
use super::weight_format::WeightFormat;
use crate::arch::{ArchConfig, Family};
use crate::data::{Dataset, Loader, LoaderConfig, LoaderState, Split};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::file;
use crate::reference::optim::{LrSchedule, WeightDecayScheme};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

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
    /// After every epoch, re-estimate the BN statistics on this many training images
    /// (`train::bn_stats`; 0: keep the running averages of training).
    #[arg(long, default_value_t = BnEstimate::DEFAULT.images)]
    pub bn_images: usize,
    /// Batch size of the BN re-estimation (large batches matter; see `train::bn_stats`).
    #[arg(long, default_value_t = BnEstimate::DEFAULT.batch)]
    pub bn_batch: usize,
    /// Which tensors --wd applies to [default: the paper's scheme for --arch, no-depthwise-no-bn
    /// for MobileNet-V2 and all for the others].
    #[arg(long, value_enum)]
    pub wd_scheme: Option<WeightDecayScheme>,
    #[arg(long, value_enum, default_value = "f8net")]
    pub mode: Mode,
    /// Weight FLs of the conv units: one per layer (the paper) or one per output channel (the
    /// official code's `per_channel`, FL −8..=15) [default: per-layer; --resume: the checkpoint's].
    #[arg(long, value_enum)]
    pub weight_format: Option<WeightFormat>,
    /// IDX files or an image-folder data set (default: Fashion-MNIST, see `data::fashion_mnist`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue from `OUT/checkpoint.safetensors` (also mid-epoch, after Ctrl-C).
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
    /// End this invocation after epoch N of the --epochs schedule (checkpoint written; continue
    /// with --resume): splits a long run into jobs.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Where the steps run: a hardware GPU when there is one (auto), the CPU, or the GPU even
    /// when it is a software one.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Shorthand for --backend cpu.
    #[arg(long)]
    pub cpu: bool,
}

/// Where a stopped run stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Interrupted {
    /// Epoch (1-based) and step reached; images of that epoch already used.
    pub epoch: u64,
    pub step: u64,
    pub position: usize,
    /// The checkpoint written (None when stopped before the first step: nothing was saved).
    pub checkpoint: Option<PathBuf>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted in epoch {} after step {} ({} images into the epoch); ",
            self.epoch, self.step, self.position
        )?;
        match &self.checkpoint {
            Some(p) => write!(f, "saved {}: continue with --resume", p.display()),
            None => write!(f, "stopped before the first step, nothing saved"),
        }
    }
}

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Epochs completed.
    pub epochs: u64,
    pub test_accuracy: f64,
    pub integer_accuracy: Option<f64>,
    pub images_per_second: f64,
    /// Set when a stop request ended the run between steps.
    pub interrupted: Option<Interrupted>,
}

impl Summary {
    /// What the CLI prints on stdout for a run that was not interrupted.
    pub fn report(&self, args: &TrainArgs) -> String {
        let int = self
            .integer_accuracy
            .map_or(String::new(), |a| format!(", integer model {a:.4}"));
        let mut s = format!(
            "{} epochs: test accuracy {:.4}{int}; {:.1} images/s\n",
            self.epochs, self.test_accuracy, self.images_per_second
        );
        if self.epochs < args.epochs {
            s += &format!(
                "stopped after epoch {} of {}; continue with --resume\n",
                self.epochs, args.epochs
            );
        }
        let names: Vec<String> = outputs(&args.out)
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        s + &format!("wrote {}\n", names.join(", "))
    }
}

/// The output folder's files: metrics, checkpoint, integer model, plots, FL table.
pub fn outputs(out: &Path) -> [PathBuf; 6] {
    [
        "metrics.csv",
        "checkpoint.safetensors",
        "model.f8.safetensors",
        "curves.png",
        "fl.png",
        "fl.csv",
    ]
    .map(|f| out.join(f))
}

static STOP: AtomicBool = AtomicBool::new(false);
static HANDLER: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Install the Ctrl-C (SIGINT) handler once per process and return the flag it sets: the
/// first Ctrl-C asks the run to save and stop after the current step, a second one exits at once
/// with status 130 (files are written atomically, so none is left half-written).
pub fn ctrlc_stop_flag() -> Result<&'static AtomicBool> {
    let installed = HANDLER.get_or_init(|| {
        ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("f8net: interrupted again; quitting without saving");
                std::process::exit(130);
            }
            eprintln!("f8net: stopping after this step (Ctrl-C again to quit at once)");
        })
        .map_err(|e| e.to_string())
    });
    match installed {
        Ok(()) => Ok(&STOP),
        Err(e) => Err(Error::range("train", format!("cannot catch Ctrl-C: {e}"))),
    }
}

/// Running sums of the current epoch (saved with a checkpoint, so a resumed epoch reports the
/// same loss and accuracy; the f64 as its bits, exact through JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    loss_sum_bits: u64,
    right: usize,
    count: usize,
}

impl EpochStats {
    pub fn loss(&self) -> f64 {
        f64::from_bits(self.loss_sum_bits) / self.count.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.right as f64 / self.count.max(1) as f64
    }
}

/// The F8Net start from a loaded checkpoint (`train::fp_start`): dead channels and, for an FP
/// source, the FP weight clamp, the running FLs walked (per-channel weight formats) and the BN
/// statistics re-stated to the 8-bit network's own (`bn_stats::restate`).
fn fixed_start(
    net: &mut Net,
    source: Option<Precision>,
    train: &Dataset,
    bn: BnEstimate,
    batch: usize,
) -> Result<()> {
    let source = match source {
        Some(Precision::Fixed) => Source::Fixed,
        _ => Source::Float,
    };
    let r = net.prepare_fixed_start(source);
    eprintln!(
        "F8Net start: cleared {} dead channels, clamped {} of {} weights to the FP range \
         |W̃| ≤ 127/128 (train::fp_start)",
        r.dead_channels, r.clamped_weights, r.weights
    );
    if source == Source::Fixed {
        return Ok(());
    }
    if net.weight_format() == WeightFormat::PerChannel {
        let moved = net.walk_fls(train, FL_WALK_BATCHES, batch)?;
        eprintln!("F8Net start: {moved} running FLs walked to F8Net's rule ({FL_WALK_BATCHES} batches, no update)");
    }
    let used = bn_stats::restate(net, train, bn)?;
    eprintln!("F8Net start: BN statistics re-stated to the 8-bit network's on {used} images, eval function kept");
    Ok(())
}

/// Run the training described by `args` to the end.
pub fn run(args: &TrainArgs) -> Result<Summary> {
    run_until(args, &AtomicBool::new(false))
}

/// Run the training, checking `stop` before every step: once set, the checkpoint is saved at
/// the current position and the summary says where the run stopped.
pub fn run_until(args: &TrainArgs, stop: &AtomicBool) -> Result<Summary> {
    let family = Family::parse(&args.arch)?;
    let wd_scheme = args
        .wd_scheme
        .unwrap_or_else(|| family.weight_decay_scheme());
    if args.stop_after == Some(0) {
        return Err(Error::range("train", "--stop-after must be at least 1"));
    }
    if args.mode == Mode::Fp && args.weight_format == Some(WeightFormat::PerChannel) {
        return Err(Error::range(
            "train",
            "--weight-format per-channel applies to --mode f8net (the FP baseline keeps FL 7)",
        ));
    }
    let bn = BnEstimate::new(args.bn_images, args.bn_batch)?;
    let train = load_data(args.data.as_deref(), Split::Train)?;
    let test = load_data(args.data.as_deref(), Split::Test)?;
    let mut cfg = ArchConfig::small(family).with_width(args.width);
    cfg.in_channels = train.c;
    cfg.input_hw = (train.h, train.w);
    cfg.classes = train.classes;
    let arch = cfg.build()?;
    let precision = match args.mode {
        Mode::Fp => Precision::Float,
        Mode::F8net => Precision::Fixed,
    };
    let info = RunInfo {
        arch: family.name().to_string(),
        width: args.width,
        precision,
        input: (train.h, train.w, train.c),
        classes: train.classes,
    };
    let mut net = net_from_arch(&arch, args.seed, precision)?;
    net.set_weight_format(args.weight_format.unwrap_or_default());
    if let Some(init) = &args.init {
        let source = checkpoint::load_init(&mut net, init)?;
        if precision == Precision::Fixed {
            fixed_start(&mut net, source, &train, bn, args.batch)?;
        }
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::file(args.out.display(), e.to_string()))?;
    let ckpt = args.out.join("checkpoint.safetensors");
    let loader_cfg = LoaderConfig::train(args.batch, args.seed, 2);
    let mut loader = Loader::new(&train, loader_cfg)?;
    let (mut metrics, mut fls) = (METRICS_HEADER.to_string(), FL_HEADER.to_string());
    let mut stats = EpochStats::default();
    if args.resume {
        let meta = checkpoint::load(&mut net, &ckpt)?;
        if let Some(f) = args.weight_format.filter(|&f| f != net.weight_format()) {
            return Err(Error::file(
                ckpt.display(),
                format!(
                    "the run was trained with --weight-format {}, not {}",
                    net.weight_format().name(),
                    f.name()
                ),
            ));
        }
        let state: LoaderState = meta
            .get("loader")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::file(ckpt.display(), "no data loader state"))?;
        loader = Loader::from_state(&train, loader_cfg, state)?;
        stats = match meta.get("epoch_stats") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| Error::file(ckpt.display(), format!("epoch_stats: {e}")))?,
            None => EpochStats::default(),
        };
        let read = |f: &str, header: &str| {
            let csv = std::fs::read_to_string(args.out.join(f)).unwrap_or_default();
            keep_epochs(&csv, header, loader.epoch())
        };
        (metrics, fls) = (
            read("metrics.csv", METRICS_HEADER),
            read("fl.csv", FL_HEADER),
        );
    }
    let save = |net: &Net, loader: &Loader, stats: &EpochStats| -> Result<()> {
        let json = |v: serde_json::Result<String>| {
            v.map_err(|e| Error::file(ckpt.display(), e.to_string()))
        };
        let mut meta = info.to_metadata();
        meta.insert(
            "loader".into(),
            json(serde_json::to_string(&loader.state()))?,
        );
        meta.insert("epoch_stats".into(), json(serde_json::to_string(stats))?);
        checkpoint::save(net, &meta, &ckpt)
    };
    let backend = if args.cpu { Backend::Cpu } else { args.backend };
    let (gpu, line) = backend::choose(backend)?;
    eprintln!("{line}");
    let mut stepper = Stepper::new(gpu.as_ref(), &net)?;
    let per_epoch = args.max_steps.map_or(loader.batches_per_epoch(), |m| {
        m.min(loader.batches_per_epoch())
    });
    let schedule = LrSchedule::f8net(args.lr, args.batch, args.epochs, per_epoch as u64)?;
    let start = Instant::now();
    let earlier = columns(&metrics);
    let offset = earlier
        .last()
        .and_then(|r| r.get(6))
        .copied()
        .filter(|s| s.is_finite());
    let mut last = (
        earlier
            .last()
            .and_then(|r| r.get(5))
            .copied()
            .unwrap_or(0.0),
        None,
    );
    let mut seen = 0usize;
    let end = args.stop_after.map_or(args.epochs, |s| s.min(args.epochs));
    while loader.epoch() < end {
        let epoch = loader.epoch();
        let progress = Progress::new(
            epoch,
            args.epochs,
            per_epoch,
            loader.position() / args.batch,
        );
        loop {
            if stop.load(Ordering::SeqCst) {
                progress.finish();
                // Before this invocation's first step there is nothing new to save (and a fresh
                // run must not replace an older checkpoint with an untrained network).
                if seen > 0 {
                    stepper.sync(&mut net)?;
                    save(&net, &loader, &stats)?;
                }
                return Ok(Summary {
                    epochs: epoch,
                    test_accuracy: last.0,
                    integer_accuracy: last.1,
                    images_per_second: seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
                    interrupted: Some(Interrupted {
                        epoch: epoch + 1,
                        step: stepper.steps(&net),
                        position: loader.position(),
                        checkpoint: (seen > 0).then(|| ckpt.clone()),
                    }),
                });
            }
            if loader.position() >= per_epoch * args.batch {
                break;
            }
            let Some(b) = loader.next_batch() else { break };
            let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
            let lr = schedule.lr(stepper.steps(&net));
            let (loss, logits) =
                stepper.step(&mut net, &b.inputs, &labels, lr, args.wd, wd_scheme)?;
            let right = accuracy(&top1(&logits, train.classes), &b.labels).right;
            let loss_sum = f64::from_bits(stats.loss_sum_bits) + loss as f64 * b.n as f64;
            stats = EpochStats {
                loss_sum_bits: loss_sum.to_bits(),
                right: stats.right + right,
                count: stats.count + b.n,
            };
            seen += b.n;
            let done = loader.position() / args.batch;
            progress.step((epoch, args.epochs), (done, per_epoch, args.batch), &stats);
        }
        progress.finish();
        stepper.sync(&mut net)?;
        let bn_start = Instant::now();
        let used = bn_stats::reestimate(&mut net, &train, bn)?;
        if used > 0 {
            eprintln!(
                "BN statistics re-estimated on {used} training images ({:.1} s)",
                bn_start.elapsed().as_secs_f64()
            );
        }
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
            stats.loss(),
            stats.accuracy(),
            acc,
            offset.unwrap_or(0.0) + start.elapsed().as_secs_f64()
        );
        stats = EpochStats::default();
        write_atomic(&args.out.join("metrics.csv"), metrics.as_bytes())?;
        if model.is_some() {
            fls += &fl_rows(&net, epoch + 1)?;
            write_atomic(&args.out.join("fl.csv"), fls.as_bytes())?;
        }
        let format = net.weight_format();
        write_plots(
            &args.out,
            &metrics,
            model.as_ref().map(|_| (fls.as_str(), format)),
        )?;
        save(&net, &loader, &stats)?;
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
        interrupted: None,
    })
}
