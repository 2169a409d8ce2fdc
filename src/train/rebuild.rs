//! Rebuilding the network a training checkpoint holds, from its metadata alone (read from the
//! safetensors header): what `f8net train` records (`checkpoint::recorded`: `f8net.arch`,
//! `f8net.width`, the precision, `f8net.input_{h,w,c}`, `f8net.classes`), with `--arch`/`--width`
//! for checkpoints that lack them (they must agree with what is recorded) and the input shape and
//! class count of the architecture signature `f8net.architecture` as fallback; the rebuilt
//! network's signature must equal the recorded one. Used by `f8net eval` and `f8net quantize`.

use super::checkpoint;
use super::conv_bn::Precision;
use super::from_arch::net_from_arch;
use super::net::Net;
use crate::arch::{ArchConfig, Family};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The metadata key that marks a training checkpoint.
pub const CHECKPOINT_KEY: &str = "f8net.checkpoint";
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

/// Rebuild the network of the checkpoint at `path` and load its whole state (`checkpoint::load`).
pub fn load_net(path: &Path, arch: Option<&str>, width: Option<f32>) -> Result<(Net, NetSpec)> {
    let meta = header_metadata(path)?;
    let spec = spec(path, &meta, arch, width)?;
    let a = spec.config().build()?;
    let mut net = net_from_arch(&a, 0, spec.precision)?;
    if meta.get("f8net.architecture") != Some(&checkpoint::signature(&net)) {
        return Err(Error::file(
            path.display(),
            format!(
                "the checkpoint holds another architecture, not a {} (check --arch and --width)",
                spec.describe()
            ),
        ));
    }
    checkpoint::load(&mut net, path)?;
    Ok((net, spec))
}
