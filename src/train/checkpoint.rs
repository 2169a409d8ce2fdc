//! Training checkpoints: the full state of a `Net` — weights, BN γ/β and running statistics,
//! running input FLs, clipping levels α, SGD momentum buffers and the step — as safetensors
//! (F32 tensors `node{i}.{weight,gamma,beta,bias,running_mean,running_var,running_fl}`,
//! `alphas`, `momentum.{j}`), with metadata naming the format version, the architecture
//! signature and any caller state (e.g. the data loader's RNG). Saving is atomic (temporary file,
//! then rename); loading checks the version, the architecture and every shape before touching
//! the network, so a bad file leaves it unchanged.

use super::net::{Net, Node};
use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Version written into and required from every checkpoint.
pub const CHECKPOINT_VERSION: u32 = 1;

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
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::file(path.display(), e.to_string()))?;
    crate::io::write_atomic(path, &bytes)
}

/// Load a checkpoint into `net` (same architecture and precision) to resume training; returns
/// the file's metadata (the caller's extra state). Nothing in `net` changes unless the whole file
/// is valid.
pub fn load(net: &mut Net, path: &Path) -> Result<HashMap<String, String>> {
    read(net, path, Purpose::Resume)
}

/// Initialize `net` from a checkpoint of the same architecture in either precision — F8Net
/// trains the 8-bit model from the float one (F8NET.md §6): weights, BN statistics, running FLs
/// and α are taken; the optimizer starts afresh (no momentum, step 0).
pub fn load_init(net: &mut Net, path: &Path) -> Result<()> {
    read(net, path, Purpose::Init).map(|_| ())
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
    match info.get("f8net.checkpoint") {
        Some(v) if *v == CHECKPOINT_VERSION.to_string() => {}
        Some(v) => {
            return Err(bad(format!(
                "checkpoint version {v}, this f8net reads {CHECKPOINT_VERSION}"
            )))
        }
        None => return Err(bad("not an f8net checkpoint".into())),
    }
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
