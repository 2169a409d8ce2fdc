//! The `f8net` command line: `infer`, `quantize`, `compare`, `adapters`, `train`, `eval`,
//! `bench`. Every failure prints one line `f8net: <reason>` and exits non-zero.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use f8net::compare::{softmax, top_k, Agreement};
use f8net::gpu::Gpu;
use f8net::model::int::IntModel;
use f8net::model::run_gpu::GpuModel;
use f8net::model::{efficientnet, file, run_cpu};
use f8net::preprocess;
use f8net::quantize::{self, args::QuantizeArgs, from_checkpoint};
use f8net::{builtin, fixed::Format};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "f8net",
    version,
    about = "F8Net fixed-point 8-bit networks on wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify images (files or folders) with the built-in 8-bit model or --model.
    Infer {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// An f8net integer model file (default: the built-in EfficientNet-Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
        /// How many labels to print per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per image instead of text.
        #[arg(long)]
        json: bool,
        /// Run on the CPU reference instead of the GPU.
        #[arg(long)]
        cpu: bool,
        /// Images per GPU submission.
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Convert a float model (EfficientNet-Lite0 safetensors) or an FP training checkpoint
    /// (post-training quantization) to an F8Net integer model.
    Quantize(QuantizeArgs),
    /// Agreement between a float model and an integer model on a folder of images.
    Compare {
        /// Folder (or files) of images.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        float: PathBuf,
        /// Integer model (default: the built-in one).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        cpu: bool,
    },
    /// List the GPU adapters.
    Adapters,
    /// F8Net quantization-aware training (CPU) on Fashion-MNIST or a folder data set.
    Train(f8net::train::run::TrainArgs),
    /// Accuracy of a training checkpoint and/or an integer model on a test set, and their
    /// top-1 agreement.
    Eval(f8net::train::eval::EvalArgs),
    /// Throughput: the device's ceilings, int8 vs f32 kernels at real layer shapes, whole models.
    Bench {
        /// Fewer rounds and smaller batches (under a minute on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Print JSON instead of the markdown tables.
        #[arg(long)]
        json: bool,
        /// Only kernel and model rows whose name contains this (ceilings always run).
        #[arg(long, default_value = "")]
        filter: String,
        /// Kernel batch sizes, comma-separated [default: 1,32; --quick: 1].
        #[arg(long, value_delimiter = ',')]
        batches: Option<Vec<usize>>,
        /// Model batch sizes, comma-separated [default: 1,32; --quick: 1,4].
        #[arg(long, value_delimiter = ',')]
        model_batches: Option<Vec<usize>>,
        /// Float EfficientNet-Lite0 safetensors for the f32 model rows [default: the one in
        /// assets/models if found, else the float twin of the int8 model].
        #[arg(long)]
        float: Option<PathBuf>,
        /// Also write the markdown tables to this file.
        #[arg(long)]
        md: Option<PathBuf>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("f8net: {e:#}");
        std::process::exit(1);
    }
}

/// Image files named directly or found (sorted) in named folders.
fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot read folder", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let ext = f
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("")
                        .to_lowercase();
                    matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp")
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn load_model(path: &Option<PathBuf>) -> Result<IntModel> {
    Ok(match path {
        Some(p) => file::load(p)?,
        None => builtin::model()?,
    })
}

/// The GPU backend, or `None` (with a note on stderr) when `--cpu` or no adapter.
fn backend(cpu: bool) -> Option<Gpu> {
    if cpu {
        return None;
    }
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("f8net: {e}; running on the CPU reference");
            None
        }
    }
}

struct Runner {
    model: IntModel,
    gpu: Option<(Gpu, GpuModel)>,
}

impl Runner {
    fn new(model: IntModel, cpu: bool) -> Result<Runner> {
        let gpu = match backend(cpu) {
            Some(g) => {
                let m = GpuModel::upload(&g, &model)?;
                Some((g, m))
            }
            None => None,
        };
        Ok(Runner { model, gpu })
    }

    fn device(&self) -> String {
        match &self.gpu {
            Some((g, _)) => format!("GPU {}", g.adapter()),
            None => "CPU reference".into(),
        }
    }

    /// int32 logits for a batch of RGB 224×224 images.
    fn logits(&self, images: &[Vec<u8>]) -> Result<Vec<Vec<i32>>> {
        let n = images.len();
        let codes: Vec<i32> = images
            .iter()
            .flat_map(|rgb| builtin::input_codes(rgb, self.model.input_format))
            .collect();
        let flat = match &self.gpu {
            Some((g, m)) => m.forward(g, &codes, n)?,
            None => run_cpu::forward(&self.model, &codes, n)?,
        };
        let classes = flat.len() / n.max(1);
        Ok(flat.chunks(classes.max(1)).map(|c| c.to_vec()).collect())
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Infer {
            inputs,
            model,
            top,
            json,
            cpu,
            batch,
        } => infer(&inputs, &model, top, json, cpu, batch),
        Command::Quantize(args) if from_checkpoint::is_checkpoint(&args.input) => {
            let start = Instant::now();
            let q = from_checkpoint::run(&args)?;
            let (clamped, all) = q.clamped_weights;
            println!(
                "wrote {}: {} on {} calibration images, {} ({clamped}/{all} weights clamped, \
                 {} clips left out) in {:.1} s",
                args.out.display(),
                q.spec.describe(),
                q.images,
                args.options().describe(),
                q.dropped_clips,
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Quantize(args) => quantize_cmd(&args),
        Command::Compare {
            inputs,
            float,
            model,
            cpu,
        } => compare(&inputs, &float, &model, cpu),
        Command::Adapters => {
            let list = f8net::gpu::list_adapters();
            if list.is_empty() {
                bail!("no Vulkan adapter found (install mesa-vulkan-drivers for a software one)");
            }
            for a in list {
                println!("{}: {a}", a.index);
            }
            Ok(())
        }
        Command::Train(args) => {
            let stop = f8net::train::run::ctrlc_stop_flag()?;
            let s = f8net::train::run::run_until(&args, stop)?;
            if let Some(i) = &s.interrupted {
                eprintln!("f8net: {i}");
                std::process::exit(130);
            }
            print!("{}", s.report(&args));
            Ok(())
        }
        Command::Eval(args) => {
            let gpu = args.model.as_ref().and_then(|_| backend(args.cpu));
            let r = f8net::train::eval::run(&args, gpu.as_ref())?;
            match args.json {
                true => println!("{}", r.json()),
                false => print!("{}", r.text()),
            }
            Ok(())
        }
        Command::Bench {
            quick,
            json,
            filter,
            batches,
            model_batches,
            float,
            md,
        } => {
            let mut cfg = if quick {
                f8net::bench::BenchConfig::quick()
            } else {
                f8net::bench::BenchConfig::full()
            };
            cfg.filter = filter;
            cfg.kernel_batches = batches.unwrap_or(cfg.kernel_batches);
            cfg.model_batches = model_batches.unwrap_or(cfg.model_batches);
            cfg.float_model = float;
            bench(&cfg, json, md.as_deref())
        }
    }
}

fn bench(cfg: &f8net::bench::BenchConfig, json: bool, md: Option<&Path>) -> Result<()> {
    let gpu = Gpu::new().context("f8net bench needs a GPU adapter (`f8net adapters`)")?;
    eprintln!("bench on {}", gpu.adapter());
    let report = f8net::bench::run(&gpu, cfg, &mut |line| eprintln!("  {line}"))?;
    let table = report.to_markdown();
    if let Some(path) = md {
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, &table).with_context(|| format!("{}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    }
    if json {
        println!("{}", report.to_json());
    } else {
        println!("{table}");
    }
    Ok(())
}

fn infer(
    inputs: &[PathBuf],
    model: &Option<PathBuf>,
    top: usize,
    json: bool,
    cpu: bool,
    batch: usize,
) -> Result<()> {
    if top == 0 || batch == 0 {
        bail!("--top and --batch must be at least 1");
    }
    let files = collect_images(inputs)?;
    if files.is_empty() {
        bail!(
            "no images found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let runner = Runner::new(load_model(model)?, cpu)?;
    let labels = builtin::labels();
    let mut failed = 0;
    let mut good: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for f in &files {
        match preprocess::load_image(f) {
            Ok(img) => good.push((f.clone(), img.into_bytes())),
            Err(e) => {
                eprintln!("f8net: {e}");
                failed += 1;
            }
        }
    }
    if !json && !good.is_empty() {
        println!("model {} on {}", runner.model.name, runner.device());
    }
    let fl = runner.model.logits_fl()?;
    for chunk in good.chunks(batch) {
        let images: Vec<Vec<u8>> = chunk.iter().map(|(_, b)| b.clone()).collect();
        let start = Instant::now();
        let logits = runner.logits(&images)?;
        let ms = start.elapsed().as_secs_f64() * 1e3 / chunk.len() as f64;
        for ((path, _), l) in chunk.iter().zip(&logits) {
            let real: Vec<f32> = l.iter().map(|&v| v as f32 * (-fl as f32).exp2()).collect();
            let p = softmax(&real);
            let best = top_k(&p, top);
            if json {
                let obj = serde_json::json!({
                    "path": path.display().to_string(),
                    "top": best,
                    "labels": best.iter().map(|&i| labels.get(i).copied().unwrap_or("?")).collect::<Vec<_>>(),
                    "probabilities": best.iter().map(|&i| p[i]).collect::<Vec<_>>(),
                    "device": runner.device(),
                    "ms_per_image": ms,
                });
                println!("{obj}");
            } else {
                println!("{}  ({ms:.1} ms/image)", path.display());
                for &i in &best {
                    println!(
                        "  {:>3}  {:.4}  {}",
                        i,
                        p[i],
                        labels.get(i).copied().unwrap_or("?")
                    );
                }
            }
        }
    }
    match failed {
        0 => Ok(()),
        // The one input's own error line was already printed.
        _ if files.len() == 1 => std::process::exit(1),
        _ => bail!("{failed} of {} images could not be read", files.len()),
    }
}

fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn load_all(files: &[PathBuf], what: &str) -> Result<Vec<Vec<u8>>> {
    let bar = progress(files.len(), what);
    let mut out = Vec::new();
    for f in files {
        out.push(preprocess::load_image(f)?.into_bytes());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn quantize_cmd(args: &QuantizeArgs) -> Result<()> {
    let (calib, out, opts) = (&args.calib, &args.out, &args.options());
    let fmodel = efficientnet::load_float(&args.input)?;
    let mut files = collect_images(&[calib.to_path_buf()])?;
    files.truncate(args.calib_count);
    if files.is_empty() {
        bail!("{}: no calibration images", calib.display());
    }
    let images = load_all(&files, "calibration images")?;
    let x: Vec<f32> = images.iter().flat_map(|b| builtin::normalize(b)).collect();
    let input_format = Format::signed(7)?;
    let start = Instant::now();
    eprintln!(
        "quantizing {} with {} on {} images ...",
        fmodel.name,
        opts.describe(),
        images.len()
    );
    let model = quantize::quantize(&fmodel, &x, images.len(), input_format, opts)?;
    file::save(&model, out)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({bytes} bytes) in {:.1} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn compare(inputs: &[PathBuf], float: &Path, model: &Option<PathBuf>, cpu: bool) -> Result<()> {
    let fmodel = efficientnet::load_float(float)?;
    let runner = Runner::new(load_model(model)?, cpu)?;
    let files = collect_images(inputs)?;
    if files.is_empty() {
        bail!("no images found");
    }
    let images = load_all(&files, "images")?;
    let mut agree = Agreement::default();
    let bar = progress(images.len(), "comparing");
    for chunk in images.chunks(8) {
        let x: Vec<f32> = chunk.iter().flat_map(|b| builtin::normalize(b)).collect();
        let fl = fmodel.forward(&x, chunk.len())?;
        let il = runner.logits(chunk)?;
        let classes = fl.len() / chunk.len();
        for (f, i) in fl.chunks(classes).zip(&il) {
            agree.add(f, i);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!("model {} on {}", runner.model.name, runner.device());
    println!("{}", agree.report());
    Ok(())
}
