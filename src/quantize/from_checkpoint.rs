//! `f8net quantize CHECKPOINT`: post-training quantization of an f8net training checkpoint
//! (usually `f8net train --mode fp`, the float baseline), with no fine-tuning.
//!
//! 1. The file is recognized by its safetensors metadata `f8net.checkpoint` (read from the header
//!    alone). The network is rebuilt from what `f8net train` records (`checkpoint::recorded`:
//!    `f8net.arch`, `f8net.width`, the precision, `f8net.input_{h,w,c}`, `f8net.classes`), with
//!    `--arch`/`--width` for checkpoints that lack them and the input shape and class count of
//!    the architecture signature `f8net.architecture` as fallback; the rebuilt network's
//!    signature must equal the recorded one (`train::rebuild`). Then its state is loaded.
//! 2. `train::to_float` turns it into a float model that computes the net's eval exactly (BN
//!    folded with the running statistics, the PACT clips as ReLU6 in rescaled units; see there).
//! 3. Calibration: a data set (`fashion-mnist`: `data::fashion_mnist(Split::Train)`; or a folder,
//!    `data::load_dir`: IDX files or one folder per class) whose images have the network's input
//!    shape; `count` images spread evenly over its training split (class-sorted folders would
//!    give one class if the first ones were taken), in the network's own input convention: byte k
//!    → k/256, the integer model's input codes (uint8, FL 8).
//! 4. `quantize::quantize` with the chosen options; the integer model reads the raw bytes, as
//!    the export of `f8net train` does (`run_cpu::forward(model, bytes as i32, n)`).

use super::args::QuantizeArgs;
use super::{quantize, QuantizeOptions};
use crate::data::{self, ColorMode, Dataset, FolderOptions, Split};
use crate::error::{Error, Result};
use crate::fixed::input_byte_format;
use crate::model::file;
use crate::model::int::IntModel;
pub use crate::train::rebuild::{is_checkpoint, load_net, NetSpec, CHECKPOINT_KEY};
use crate::train::to_float::to_float;
use std::path::Path;

/// The calibration source that names the default Fashion-MNIST training set.
pub const FASHION_MNIST: &str = "fashion-mnist";

/// Up to `count` calibration images of `source` (see the module docs) as bytes, NHWC, checked
/// against the network's input shape; returns the bytes and the image count.
pub fn calibration_bytes(source: &Path, count: usize, spec: &NetSpec) -> Result<(Vec<u8>, usize)> {
    let set: Dataset = if source == Path::new(FASHION_MNIST) {
        data::fashion_mnist(Split::Train)?
    } else {
        let color = match spec.in_channels {
            1 => ColorMode::Gray,
            3 => ColorMode::Rgb,
            _ => ColorMode::Auto,
        };
        let opts = FolderOptions {
            size: Some(spec.input_hw),
            color,
        };
        data::load_dir(source, Split::Train, &opts)?
    };
    let (h, w) = spec.input_hw;
    if (set.h, set.w, set.c) != (h, w, spec.in_channels) {
        return Err(Error::shape(
            "quantize",
            format!(
                "calibration images in {} are {}x{}x{}, the checkpoint's network reads {h}x{w}x{}",
                source.display(),
                set.h,
                set.w,
                set.c,
                spec.in_channels
            ),
        ));
    }
    let n = count.min(set.len());
    if n == 0 {
        return Err(Error::range(
            "quantize",
            format!(
                "no calibration images ({} has {}, --calib-count {count})",
                source.display(),
                set.len()
            ),
        ));
    }
    let bytes = (0..n)
        .flat_map(|i| set.image(i * set.len() / n).iter().copied())
        .collect();
    Ok((bytes, n))
}

/// The result of [`quantize_checkpoint`].
#[derive(Clone, Debug)]
pub struct Quantized {
    pub model: IntModel,
    pub spec: NetSpec,
    /// Calibration images used.
    pub images: usize,
    /// Input clips of the net that its float model leaves out (`to_float`), and weights its
    /// quantizer clamped, of all weights.
    pub dropped_clips: usize,
    pub clamped_weights: (usize, usize),
}

/// Post-training quantization of the checkpoint at `path` (see the module docs).
pub fn quantize_checkpoint(
    path: &Path,
    calib: &Path,
    count: usize,
    arch: Option<&str>,
    width: Option<f32>,
    opts: &QuantizeOptions,
) -> Result<Quantized> {
    let (net, spec) = load_net(path, arch, width)?;
    let (bytes, n) = calibration_bytes(calib, count, &spec)?;
    let name = spec.config().build()?.name;
    let conv = to_float(&net, &name)?;
    let x = data::loader::to_inputs(&bytes);
    let mut model = quantize(&conv.model, &x, n, input_byte_format(), opts)?;
    model.notes += &format!(
        "; post-training quantization of {} (step {}, {:?} precision)",
        path.display(),
        net.step,
        spec.precision
    );
    Ok(Quantized {
        model,
        spec,
        images: n,
        dropped_clips: conv.dropped_clips.len(),
        clamped_weights: (conv.clamped_weights, conv.weights),
    })
}

/// `f8net quantize CHECKPOINT`: quantize and write `args.out` (atomically).
pub fn run(args: &QuantizeArgs) -> Result<Quantized> {
    let q = quantize_checkpoint(
        &args.input,
        &args.calib,
        args.calib_count,
        args.arch.as_deref(),
        args.width,
        &args.options(),
    )?;
    file::save(&q.model, &args.out)?;
    Ok(q)
}
