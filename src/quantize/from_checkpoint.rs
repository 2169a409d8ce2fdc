//! `f8net quantize CHECKPOINT`: post-training quantization of an f8net training checkpoint
//! (usually `f8net train --mode fp`, the float baseline), with no fine-tuning.
//!
//! 1. The file is recognized by its safetensors metadata `f8net.checkpoint` (read from the header
//!    alone). The network is rebuilt from what `f8net train` records (`checkpoint::recorded`:
//!    `f8net.arch`, `f8net.width`, the precision, `f8net.input_{h,w,c}`, `f8net.classes`), with
//!    `--arch`/`--width` for checkpoints that lack them and the input shape and class count of
//!    the architecture signature `f8net.architecture` as fallback; the rebuilt network's
//!    signature must equal the recorded one. Then the weights, BN statistics, running FLs and α
//!    are loaded (`checkpoint::load_init`).
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
use crate::arch::{ArchConfig, Family};
use crate::data::{self, ColorMode, Dataset, FolderOptions, Split};
use crate::error::{Error, Result};
use crate::fixed::input_byte_format;
use crate::model::file;
use crate::model::int::IntModel;
use crate::train::checkpoint;
use crate::train::conv_bn::Precision;
use crate::train::from_arch::net_from_arch;
use crate::train::net::Net;
use crate::train::to_float::to_float;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The metadata key that marks a training checkpoint.
pub const CHECKPOINT_KEY: &str = "f8net.checkpoint";
/// The calibration source that names the default Fashion-MNIST training set.
pub const FASHION_MNIST: &str = "fashion-mnist";
/// Largest safetensors header read (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// The `__metadata__` strings of a safetensors file, reading only its header.
pub fn header_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bad = |m: String| Error::file(path.display(), m);
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(bad(format!("not a safetensors file (header of {n} bytes)")));
    }
    let mut header = Vec::new();
    f.take(n)
        .read_to_end(&mut header)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    Ok(v.get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// Whether `path` is an f8net training checkpoint (false for anything unreadable).
pub fn is_checkpoint(path: &Path) -> bool {
    header_metadata(path).is_ok_and(|m| m.contains_key(CHECKPOINT_KEY))
}

/// The network a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    pub family: Family,
    pub width: f32,
    pub input_hw: (usize, usize),
    pub in_channels: usize,
    pub classes: usize,
    pub precision: Precision,
}

impl NetSpec {
    pub fn describe(&self) -> String {
        format!(
            "{} width {} ({}x{}x{} -> {} classes, {:?} precision)",
            self.family.name(),
            self.width,
            self.input_hw.0,
            self.input_hw.1,
            self.in_channels,
            self.classes,
            self.precision
        )
    }

    /// The small-input architecture config `f8net train` builds for this network.
    pub fn config(&self) -> ArchConfig {
        let mut cfg = ArchConfig::small(self.family).with_width(self.width);
        cfg.input_hw = self.input_hw;
        cfg.in_channels = self.in_channels;
        cfg.classes = self.classes;
        cfg
    }
}

/// `(h, w, c, classes)` from `checkpoint::signature`: `input HxWxC; …; fc K->CLASSES in …`.
fn parse_signature(sig: &str) -> Option<(usize, usize, usize, usize)> {
    let mut parts = sig.split("; ");
    let dims: Vec<usize> = parts
        .next()?
        .strip_prefix("input ")?
        .split('x')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let fc = parts.find_map(|p| p.strip_prefix("fc "))?;
    let classes = fc.split("->").nth(1)?.split(' ').next()?.parse().ok()?;
    match dims[..] {
        [h, w, c] => Some((h, w, c, classes)),
        _ => None,
    }
}

/// What network the checkpoint at `path` (with metadata `meta`) holds: the fields
/// `checkpoint::recorded` reads; `arch` and `width` stand in for those the checkpoint lacks and
/// must agree with those it has; the input and class count fall back to the signature.
pub fn spec(
    path: &Path,
    meta: &HashMap<String, String>,
    arch: Option<&str>,
    width: Option<f32>,
) -> Result<NetSpec> {
    let bad = |m: String| Error::file(path.display(), m);
    if !meta.contains_key(CHECKPOINT_KEY) {
        return Err(bad("not an f8net training checkpoint".into()));
    }
    let rec = checkpoint::recorded(meta, path)?;
    let family = match (&rec.arch, arch) {
        (Some(m), Some(a)) if Family::parse(m)? != Family::parse(a)? => {
            return Err(bad(format!("the checkpoint is a {m}, not a {a}")))
        }
        (Some(name), _) => Family::parse(name)?,
        (None, Some(a)) => Family::parse(a)?,
        (None, None) => {
            return Err(bad(
                "the checkpoint does not record its architecture; pass --arch and --width".into(),
            ))
        }
    };
    let width = match (rec.width, width) {
        (Some(m), Some(w)) if m != w => {
            return Err(bad(format!("the checkpoint has width {m}, not {w}")))
        }
        (Some(w), _) | (None, Some(w)) => w,
        (None, None) => {
            return Err(bad(
                "the checkpoint does not record its width; pass --width".into(),
            ))
        }
    };
    let signature = meta
        .get("f8net.architecture")
        .and_then(|s| parse_signature(s));
    let (h, w, c, classes) = match (rec.input, rec.classes, signature) {
        (Some((h, w, c)), Some(k), _) => (h, w, c, k),
        (_, _, Some(v)) => v,
        _ => return Err(bad("no readable input shape or class count".into())),
    };
    let precision = rec
        .precision
        .ok_or_else(|| bad("the checkpoint does not record its precision".into()))?;
    Ok(NetSpec {
        family,
        width,
        input_hw: (h, w),
        in_channels: c,
        classes,
        precision,
    })
}

/// Rebuild the network of the checkpoint at `path` and load its state.
pub fn load_net(path: &Path, arch: Option<&str>, width: Option<f32>) -> Result<(Net, NetSpec)> {
    let meta = header_metadata(path)?;
    let spec = spec(path, &meta, arch, width)?;
    let a = spec.config().build()?;
    let mut net = net_from_arch(&a, 0, spec.precision)?;
    if meta.get("f8net.architecture") != Some(&checkpoint::signature(&net)) {
        return Err(Error::file(
            path.display(),
            format!(
                "the checkpoint is not a {} (check --arch and --width)",
                spec.describe()
            ),
        ));
    }
    checkpoint::load_init(&mut net, path)?;
    Ok((net, spec))
}

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
        header_metadata(path)?
            .get("f8net.step")
            .map_or("?", String::as_str),
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
