//! `f8net eval`, and the evaluation `f8net train` runs after every epoch: top-1 accuracy of a
//! training network (`Net::forward_eval`, float or fake-quant F8Net, rebuilt from a checkpoint's
//! metadata) and of an integer model (`model::run_cpu`, or `model::run_gpu` — bit-identical) on a
//! test set, and the top-1 agreement of the two.
//!
//! Test images go in batches of [`EVAL_BATCH`] in data set order: NHWC, pixel byte k → k/256 for
//! the network, k/256 in the model's input format (uint8 FL 8: the byte itself) for the integer
//! model. Logits are `[n][classes]`; the top-1 of a row is its first largest entry.

use super::bn_stats::{self, BnEstimate};
use super::checkpoint;
use super::conv_bn::Precision;
use super::export::export;
use super::net::Net;
use super::rebuild::{self, NetSpec};
use super::weight_format::WeightFormat;
use crate::data::{self, Dataset, FolderOptions, Loader, LoaderConfig, Split};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::int::IntModel;
use crate::model::run_gpu::GpuModel;
use crate::model::{file, run_cpu};
use std::path::{Path, PathBuf};

/// Images per evaluation batch (train and eval use the same, so their numbers are the same).
pub const EVAL_BATCH: usize = 100;

/// Options of `f8net eval`.
#[derive(Clone, Debug, clap::Args)]
pub struct EvalArgs {
    /// A training checkpoint written by `f8net train` (float or F8Net fake quant).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// An integer model (`.f8.safetensors`, e.g. the `model.f8.safetensors` of `f8net train`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// IDX files or an image-folder data set (default: Fashion-MNIST); its test split is used.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Architecture of a checkpoint that does not record it (older files).
    #[arg(long)]
    pub arch: Option<String>,
    /// Width multiplier of such a checkpoint [default: 0.25, as `f8net train`].
    #[arg(long)]
    pub width: Option<f32>,
    /// Run the integer model on the CPU reference instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the integer model of the F8Net --checkpoint here (atomically) and evaluate it as
    /// the model (instead of --model).
    #[arg(long, conflicts_with = "model", requires = "checkpoint")]
    pub export: Option<PathBuf>,
    /// Re-estimate the --checkpoint's BN statistics on this many training images first
    /// (`train::bn_stats`; 0: as saved). `f8net train` does it after every epoch.
    #[arg(long, default_value_t = 0, requires = "checkpoint")]
    pub bn_images: usize,
    /// Batch size of the BN re-estimation (large batches matter; see `train::bn_stats`).
    #[arg(long, default_value_t = BnEstimate::DEFAULT.batch)]
    pub bn_batch: usize,
}

/// `split` of `--data DIR` (IDX pair or image folders resized to 28×28), or Fashion-MNIST.
pub fn load_data(dir: Option<&Path>, split: Split) -> Result<Dataset> {
    match dir {
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

/// `right` of `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Score {
    pub right: usize,
    pub total: usize,
}

impl Score {
    pub fn rate(&self) -> f64 {
        self.right as f64 / self.total.max(1) as f64
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.4} ({}/{})", self.rate(), self.right, self.total)
    }
}

/// Index of the first largest entry of each `classes`-long row.
pub fn top1<T: PartialOrd + Copy>(logits: &[T], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes.max(1))
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// How many of `pred` equal `truth` (element by element).
pub fn score<T: PartialEq + Copy>(pred: &[usize], truth: &[T], to: impl Fn(T) -> usize) -> Score {
    Score {
        right: pred
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == to(**t))
            .count(),
        total: pred.len(),
    }
}

/// Top-1 accuracy of `pred` against `labels`.
pub fn accuracy(pred: &[usize], labels: &[u8]) -> Score {
    score(pred, labels, usize::from)
}

/// Top-1 class of every test image under the network's evaluation forward.
pub fn net_predictions(net: &Net, test: &Dataset) -> Result<Vec<usize>> {
    let mut loader = Loader::new(test, LoaderConfig::eval(EVAL_BATCH))?;
    let mut out = Vec::with_capacity(test.len());
    while let Some(b) = loader.next_batch() {
        out.extend(top1(&net.forward_eval(&b.inputs, b.n)?, test.classes));
    }
    Ok(out)
}

/// The class count of an integer model's logits.
pub fn model_classes(model: &IntModel) -> Result<usize> {
    model
        .infer_tensors()?
        .last()
        .map(|t| t.h * t.w * t.c)
        .ok_or_else(|| Error::range("eval", "the model has no output"))
}

/// Top-1 class of every test image under the integer model, on `gpu` or the CPU reference.
pub fn int_predictions(model: &IntModel, gpu: Option<&Gpu>, test: &Dataset) -> Result<Vec<usize>> {
    let classes = model_classes(model)?;
    let uploaded = match gpu {
        Some(g) => Some((g, GpuModel::upload(g, model)?)),
        None => None,
    };
    let code: Vec<i32> = (0..=255u8)
        .map(|k| model.input_format.quantize(f32::from(k) / 256.0))
        .collect();
    let mut loader = Loader::new(test, LoaderConfig::eval(EVAL_BATCH))?;
    let mut out = Vec::with_capacity(test.len());
    while let Some(b) = loader.next_batch() {
        let codes: Vec<i32> = b.bytes.iter().map(|&k| code[usize::from(k)]).collect();
        let logits = match &uploaded {
            Some((g, m)) => m.forward(g, &codes, b.n)?,
            None => run_cpu::forward(model, &codes, b.n)?,
        };
        out.extend(top1(&logits, classes));
    }
    Ok(out)
}

/// Accuracy of the network and, given one, of the integer model on the CPU reference (what
/// `f8net train` reports per epoch).
pub fn evaluate(net: &Net, test: &Dataset, model: Option<&IntModel>) -> Result<(f64, Option<f64>)> {
    let acc = accuracy(&net_predictions(net, test)?, &test.labels).rate();
    let int = match model {
        Some(m) => Some(accuracy(&int_predictions(m, None, test)?, &test.labels).rate()),
        None => None,
    };
    Ok((acc, int))
}

fn size_text(h: usize, w: usize, c: usize, classes: usize) -> String {
    format!("{h}x{w}x{c} inputs and {classes} classes")
}

fn check_fits(
    path: &Path,
    what: &str,
    got: (usize, usize, usize, usize),
    test: &Dataset,
) -> Result<()> {
    let want = (test.h, test.w, test.c, test.classes);
    if got != want {
        return Err(Error::file(
            path.display(),
            format!(
                "{what} is for {}; the test set has {}",
                size_text(got.0, got.1, got.2, got.3),
                size_text(want.0, want.1, want.2, want.3)
            ),
        ));
    }
    Ok(())
}

/// Rebuild and load a training checkpoint (`rebuild::load_net`; `arch`/`width` for checkpoints
/// that do not record them) and check it fits the test set; returns it, what it was rebuilt as,
/// and a description.
pub fn load_checkpoint(
    path: &Path,
    arch: Option<&str>,
    width: Option<f32>,
    test: &Dataset,
) -> Result<(Net, NetSpec, String)> {
    let (net, spec) = rebuild::load_net(path, arch, width)?;
    let (h, w) = spec.input_hw;
    check_fits(
        path,
        "the checkpoint",
        (h, w, spec.in_channels, spec.classes),
        test,
    )?;
    let weights = match (spec.precision, net.weight_format()) {
        (Precision::Fixed, WeightFormat::PerChannel) => " (per-channel weight FLs)",
        _ => "",
    };
    let desc = format!(
        "{} width {}, {}{weights}, step {}",
        spec.family.name(),
        spec.width,
        checkpoint::mode_name(spec.precision),
        net.step
    );
    Ok((net, spec, desc))
}

/// One evaluated model.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub path: PathBuf,
    /// What it is (architecture, mode, step; or the model's name and the device).
    pub about: String,
    pub score: Score,
}

/// What `f8net eval` found.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// The test set's origin and size.
    pub data: String,
    pub checkpoint: Option<Evaluated>,
    pub model: Option<Evaluated>,
    /// Top-1 agreement of the two, when both were given.
    pub agreement: Option<Score>,
}

impl EvalReport {
    /// One line per model and the agreement line.
    pub fn text(&self) -> String {
        let mut s = format!("test set {}\n", self.data);
        for (kind, e) in [("checkpoint", &self.checkpoint), ("model", &self.model)] {
            if let Some(e) = e {
                s += &format!(
                    "{kind} {} ({}): accuracy {}\n",
                    e.path.display(),
                    e.about,
                    e.score
                );
            }
        }
        if let Some(a) = self.agreement {
            s += &format!("top-1 agreement {a}\n");
        }
        s
    }

    /// One JSON object.
    pub fn json(&self) -> serde_json::Value {
        let one = |e: &Option<Evaluated>| {
            e.as_ref().map(|e| {
                serde_json::json!({
                    "path": e.path.display().to_string(),
                    "about": e.about,
                    "accuracy": e.score.rate(),
                    "correct": e.score.right,
                    "total": e.score.total,
                })
            })
        };
        serde_json::json!({
            "data": self.data,
            "checkpoint": one(&self.checkpoint),
            "model": one(&self.model),
            "agreement": self.agreement.map(|a| serde_json::json!({
                "rate": a.rate(), "agree": a.right, "total": a.total,
            })),
        })
    }
}

/// Run `f8net eval`: the integer model on `gpu` when given, else on the CPU reference.
pub fn run(args: &EvalArgs, gpu: Option<&Gpu>) -> Result<EvalReport> {
    if args.checkpoint.is_none() && args.model.is_none() {
        return Err(Error::range(
            "eval",
            "nothing to evaluate: give --checkpoint FILE and/or --model FILE",
        ));
    }
    let bn = BnEstimate::new(args.bn_images, args.bn_batch)?;
    // Models first: a bad file fails before the data set is read.
    let model = match &args.model {
        Some(p) => Some((p, file::load(p)?)),
        None => None,
    };
    let test = load_data(args.data.as_deref(), Split::Test)?;
    let data = match &args.data {
        Some(d) => d.display().to_string(),
        None => match data::fashion_mnist_dir(Split::Test) {
            Ok((d, _)) => format!("Fashion-MNIST {}", d.display()),
            Err(_) => "Fashion-MNIST".into(),
        },
    };
    let data = format!("{data} ({} images, {} classes)", test.len(), test.classes);
    let mut report = EvalReport {
        data,
        checkpoint: None,
        model: None,
        agreement: None,
    };
    let mut preds = Vec::new();
    let mut model = model;
    if let Some(path) = &args.checkpoint {
        let (mut net, spec, mut about) =
            load_checkpoint(path, args.arch.as_deref(), args.width, &test)?;
        if bn.images > 0 {
            let train = load_data(args.data.as_deref(), Split::Train)?;
            let used = bn_stats::reestimate(&mut net, &train, bn)?;
            about += &format!(", BN statistics re-estimated on {used} training images");
        }
        if let Some(out) = &args.export {
            model = Some((out, export_checkpoint(&net, &spec, path, out)?));
        }
        let p = net_predictions(&net, &test)?;
        report.checkpoint = Some(Evaluated {
            path: path.clone(),
            about,
            score: accuracy(&p, &test.labels),
        });
        preds.push(p);
    }
    if let Some((path, m)) = &model {
        let (h, w) = m.input_hw;
        check_fits(
            path,
            "the model",
            (h, w, m.input_c, model_classes(m)?),
            &test,
        )?;
        let p = int_predictions(m, gpu, &test)?;
        let device = gpu.map_or("CPU reference".to_string(), |g| {
            format!("GPU {}", g.adapter())
        });
        report.model = Some(Evaluated {
            path: path.to_path_buf(),
            about: format!("{} on {device}", m.name),
            score: accuracy(&p, &test.labels),
        });
        preds.push(p);
    }
    if let [a, b] = preds.as_slice() {
        report.agreement = Some(score(a, b, |v| v));
    }
    Ok(report)
}

/// The integer model of an F8Net checkpoint's network, written to `out` (`train::export`).
fn export_checkpoint(net: &Net, spec: &NetSpec, path: &Path, out: &Path) -> Result<IntModel> {
    if spec.precision != Precision::Fixed {
        return Err(Error::file(
            path.display(),
            "--export needs an F8Net checkpoint (--mode f8net); quantize an FP one with `f8net quantize`",
        ));
    }
    let model = export(net, &spec.config().build()?.name)?;
    file::save(&model, out)?;
    Ok(model)
}
