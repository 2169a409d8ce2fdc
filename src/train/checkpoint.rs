//! Training checkpoints: the full state of a `Net` — weights, BN γ/β and running statistics,
//! running input FLs, clipping levels α, SGD momentum buffers and the step — as safetensors
//! (F32 tensors `node{i}.{weight,gamma,beta,bias,running_mean,running_var,running_fl}`,
//! `alphas`, `momentum.{j}`), with metadata naming the format version, the architecture
//! signature and any caller state (e.g. the data loader's RNG). Saving is atomic (temporary file,
//! then rename); loading checks the version, the architecture and every shape before touching
//! the network, so a bad file leaves it unchanged. `f8net train` also records how to rebuild the
//! network ([`RunInfo`]: `f8net.arch`, `f8net.width`, `f8net.mode`, `f8net.input_{h,w,c}`,
//! `f8net.classes`), so `f8net eval --checkpoint` needs no flags.

use super::conv_bn::Precision;
use super::net::{Net, Node};
use super::weight_format::WeightFormat;
use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Version written into and required from every checkpoint.
pub const CHECKPOINT_VERSION: u32 = 1;

/// What rebuilds the network of a checkpoint: the architecture family's command-line name, the
/// width multiplier, the precision (`fp` / `f8net`, the `--mode` names), the input size and the
/// class count.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub arch: String,
    pub width: f32,
    pub precision: Precision,
    /// Input height, width, channels.
    pub input: (usize, usize, usize),
    pub classes: usize,
}

/// The `--mode` name of a precision.
pub fn mode_name(p: Precision) -> &'static str {
    match p {
        Precision::Float => "fp",
        Precision::Fixed => "f8net",
    }
}

impl RunInfo {
    /// The metadata entries (f32 `Display` round-trips exactly).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let (h, w, c) = self.input;
        [
            ("f8net.arch", self.arch.clone()),
            ("f8net.width", self.width.to_string()),
            ("f8net.mode", mode_name(self.precision).to_string()),
            ("f8net.input_h", h.to_string()),
            ("f8net.input_w", w.to_string()),
            ("f8net.input_c", c.to_string()),
            ("f8net.classes", self.classes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The rebuild fields a checkpoint records, each `None` where the file lacks it (older files, or
/// files written with only some of them); the precision falls back to `f8net.precision`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    pub arch: Option<String>,
    pub width: Option<f32>,
    pub precision: Option<Precision>,
    pub input: Option<(usize, usize, usize)>,
    pub classes: Option<usize>,
}

/// Read the rebuild fields of `meta`; one that is present but unreadable is an error.
pub fn recorded(meta: &HashMap<String, String>, path: &Path) -> Result<Recorded> {
    fn num<T: std::str::FromStr>(
        meta: &HashMap<String, String>,
        key: &str,
        path: &Path,
    ) -> Result<Option<T>> {
        meta.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::file(path.display(), format!("metadata {key} = {v:?}")))
            })
            .transpose()
    }
    let precision = match (meta.get("f8net.mode"), meta.get("f8net.precision")) {
        (Some(m), _) if m == "fp" => Some(Precision::Float),
        (Some(m), _) if m == "f8net" => Some(Precision::Fixed),
        (Some(m), _) => {
            return Err(Error::file(
                path.display(),
                format!("metadata f8net.mode = {m:?} (fp or f8net)"),
            ))
        }
        (None, Some(p)) if p == "Float" => Some(Precision::Float),
        (None, Some(p)) if p == "Fixed" => Some(Precision::Fixed),
        _ => None,
    };
    let input = match (
        num(meta, "f8net.input_h", path)?,
        num(meta, "f8net.input_w", path)?,
        num(meta, "f8net.input_c", path)?,
    ) {
        (Some(h), Some(w), Some(c)) => Some((h, w, c)),
        _ => None,
    };
    Ok(Recorded {
        arch: meta.get("f8net.arch").cloned(),
        width: num(meta, "f8net.width", path)?,
        precision,
        input,
        classes: num(meta, "f8net.classes", path)?,
    })
}

fn check_version(info: &HashMap<String, String>, path: &Path) -> Result<()> {
    match info.get("f8net.checkpoint") {
        Some(v) if *v == CHECKPOINT_VERSION.to_string() => Ok(()),
        Some(v) => Err(Error::file(
            path.display(),
            format!("checkpoint version {v}, this f8net reads {CHECKPOINT_VERSION}"),
        )),
        None => Err(Error::file(path.display(), "not an f8net checkpoint")),
    }
}

/// A one-line description of the architecture: node kinds and shapes, and the α count.
pub fn signature(net: &Net) -> String {
    let mut s = format!("input {}x{}x{}", net.input.h, net.input.w, net.input.c);
    for n in &net.nodes {
        s += &match n {
            Node::Conv {
                input,
                unit,
                alpha,
                next,
                act,
            } => format!(
                "; conv {} {:?} {}->{} {:?} in {input} alpha {alpha} next {next:?} {act:?}",
                unit.name, unit.kind, unit.cin, unit.cout, unit.window
            ),
            Node::Add { a, b, relu } => format!("; add {a} {b} relu {relu}"),
            Node::GlobalAvgPool { input } => format!("; pool {input}"),
            Node::Classifier { input, fc, alpha } => {
                format!("; fc {}->{} in {input} alpha {alpha}", fc.k, fc.classes)
            }
        };
    }
    s + &format!("; alphas {}", net.alphas.len())
}

/// Every state tensor of the network by name (mutable), in a fixed order.
fn state(net: &mut Net) -> Vec<(String, &mut Vec<f32>)> {
    let mut out: Vec<(String, &mut Vec<f32>)> = Vec::new();
    for (i, node) in net.nodes.iter_mut().enumerate() {
        match node {
            Node::Conv { unit, .. } => {
                out.push((format!("node{i}.weight"), &mut unit.weight));
                out.push((format!("node{i}.gamma"), &mut unit.gamma));
                out.push((format!("node{i}.beta"), &mut unit.beta));
                out.push((format!("node{i}.running_mean"), &mut unit.running_mean));
                out.push((format!("node{i}.running_var"), &mut unit.running_var));
            }
            Node::Classifier { fc, .. } => {
                out.push((format!("node{i}.weight"), &mut fc.weight));
                out.push((format!("node{i}.bias"), &mut fc.bias));
            }
            _ => {}
        }
    }
    out.push(("alphas".into(), &mut net.alphas));
    for (j, m) in net.momentum.iter_mut().enumerate() {
        out.push((format!("momentum.{j}"), m));
    }
    out
}

/// Running FLs by name (they are scalars inside the units).
fn running_fls(net: &mut Net) -> Vec<(String, &mut f32)> {
    let mut out = Vec::new();
    for (i, node) in net.nodes.iter_mut().enumerate() {
        match node {
            Node::Conv { unit, .. } => {
                out.push((format!("node{i}.running_fl"), &mut unit.running_fl.value))
            }
            Node::Classifier { fc, .. } => {
                out.push((format!("node{i}.running_fl"), &mut fc.running_fl.value))
            }
            _ => {}
        }
    }
    out
}

/// Write the network's state (and `extra` metadata) to `path` atomically.
pub fn save(net: &Net, extra: &HashMap<String, String>, path: &Path) -> Result<()> {
    let mut copy = net.clone();
    let sig = signature(&copy);
    let step = copy.step;
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = state(&mut copy)
        .into_iter()
        .map(|(name, v)| {
            (
                name,
                vec![v.len()],
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    for (name, v) in running_fls(&mut copy) {
        blobs.push((name, vec![1], v.to_le_bytes().to_vec()));
    }
    let mut meta = extra.clone();
    meta.insert("f8net.checkpoint".into(), CHECKPOINT_VERSION.to_string());
    meta.insert("f8net.architecture".into(), sig);
    meta.insert("f8net.step".into(), step.to_string());
    meta.insert("f8net.precision".into(), format!("{:?}", copy.precision));
    meta.insert(
        WEIGHT_FORMAT_KEY.into(),
        copy.weight_format().name().to_string(),
    );
    meta.insert(
        "f8net.momentum_tensors".into(),
        copy.momentum.len().to_string(),
    );
    let views = blobs
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::file(path.display(), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = crate::model::st::serialize_sorted(views, meta)
        .map_err(|e| Error::file(path.display(), e))?;
    crate::io::write_atomic(path, &bytes)
}

/// The metadata key of the weight format (`per-layer` when absent: files before it existed).
pub const WEIGHT_FORMAT_KEY: &str = "f8net.weight_format";

/// The weight format a checkpoint's metadata records.
pub fn weight_format(info: &HashMap<String, String>, path: &Path) -> Result<WeightFormat> {
    match info.get(WEIGHT_FORMAT_KEY) {
        None => Ok(WeightFormat::PerLayer),
        Some(v) => WeightFormat::parse(v).ok_or_else(|| {
            Error::file(
                path.display(),
                format!("metadata {WEIGHT_FORMAT_KEY} = {v:?} (per-layer or per-channel)"),
            )
        }),
    }
}

/// Load a checkpoint into `net` (same architecture and precision, and the weight format it
/// records) to resume training or evaluate; returns
/// the file's metadata (the caller's extra state). Nothing in `net` changes unless the whole file
/// is valid.
pub fn load(net: &mut Net, path: &Path) -> Result<HashMap<String, String>> {
    read(net, path, Purpose::Resume)
}

/// Initialize `net` from a checkpoint of the same architecture in either precision — F8Net
/// trains the 8-bit model from the float one (F8NET.md §6): weights, BN statistics, running FLs
/// and α are taken; the optimizer starts afresh (no momentum, step 0). Returns the checkpoint's
/// precision (None for a file that does not record it).
pub fn load_init(net: &mut Net, path: &Path) -> Result<Option<Precision>> {
    let meta = read(net, path, Purpose::Init)?;
    Ok(recorded(&meta, path)?.precision)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Resume,
    Init,
}

fn read(net: &mut Net, path: &Path, purpose: Purpose) -> Result<HashMap<String, String>> {
    let bad = |m: String| Error::file(path.display(), m);
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a checkpoint ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    check_version(&info, path)?;
    let want = signature(net);
    if info.get("f8net.architecture") != Some(&want) {
        return Err(bad("checkpoint is for another architecture".into()));
    }
    let precision = format!("{:?}", net.precision);
    if purpose == Purpose::Resume && info.get("f8net.precision") != Some(&precision) {
        return Err(bad(format!(
            "checkpoint is not a {precision}-precision run; use it with --init"
        )));
    }
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("corrupt checkpoint ({e})")))?;
    let momentum: usize = info
        .get("f8net.momentum_tensors")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no momentum count".into()))?;
    let step: u64 = info
        .get("f8net.step")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no step".into()))?;
    let mut next = net.clone();
    next.step = step;
    if purpose == Purpose::Resume {
        next.set_weight_format(weight_format(&info, path)?);
    }
    let momentum = if purpose == Purpose::Init {
        0
    } else {
        momentum
    };
    let lens: Vec<usize> = next.params().iter().map(|(p, _)| p.len()).collect();
    next.momentum = if momentum == 0 {
        Vec::new()
    } else {
        lens.iter().map(|&l| vec![0.0; l]).collect()
    };
    if momentum != 0 && momentum != lens.len() {
        return Err(bad(format!(
            "{momentum} momentum tensors for {} parameters",
            lens.len()
        )));
    }
    let read = |name: &str, len: usize| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != [len] {
            return Err(bad(format!(
                "tensor {name} is {:?} {:?}, expected F32 [{len}]",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    for (name, v) in state(&mut next) {
        let loaded = read(&name, v.len())?;
        if loaded.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("tensor {name} holds NaN or infinity")));
        }
        *v = loaded;
    }
    for (name, v) in running_fls(&mut next) {
        *v = read(&name, 1)?[0];
    }
    if purpose == Purpose::Init {
        next.step = 0;
    }
    *net = next;
    Ok(info)
}
