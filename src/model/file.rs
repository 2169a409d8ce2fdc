//! The integer model file: safetensors holding, per conv/linear layer, `<name>.weight` (I8, the
//! layer's layout), `<name>.bias` (I32, at FL_x + FL_w), `<name>.shift` (I32) and
//! `<name>.weight_fl` (I8); the graph, every format and clamp live in the metadata as JSON under
//! `f8net.graph`, versioned by `f8net.version`. Loading checks everything (version, dtypes,
//! shapes, FL and shift ranges, the whole graph) before any GPU work. Saving writes a temporary
//! file and renames it, so an existing model is never half-overwritten.

use super::int::{ConvKind, IntLayer, IntModel, IntNode};
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::reference::{residual::Activation, EpilogueSpec, OutputKind, Window};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Version written into and required from every model file.
pub const FORMAT_VERSION: u32 = 1;

fn fmt_json(f: Format) -> Value {
    json!({"signed": f.signedness == Signedness::Signed, "fl": f.fl})
}

fn window_json(w: &Window) -> Value {
    json!([
        w.kh,
        w.kw,
        w.stride_h,
        w.stride_w,
        w.pad_top,
        w.pad_left,
        w.pad_bottom,
        w.pad_right
    ])
}

fn output_json(o: OutputKind) -> Value {
    match o {
        OutputKind::Codes(Signedness::Signed) => json!("int8"),
        OutputKind::Codes(Signedness::Unsigned) => json!("uint8"),
        OutputKind::Int32 => json!("int32"),
    }
}

fn layer_json(l: &IntLayer) -> Value {
    json!({"name": l.name, "output": output_json(l.ep.output), "clamp": [l.ep.clamp_lo, l.ep.clamp_hi]})
}

/// Serialize a model to safetensors bytes.
pub fn to_bytes(model: &IntModel) -> Result<Vec<u8>> {
    model.infer_tensors()?;
    let mut nodes = Vec::new();
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add_layer = |l: &IntLayer, shape: Vec<usize>| {
        let w: Vec<u8> = l.weight.iter().map(|&q| q as i8 as u8).collect();
        let i32s = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let n = l.ep.bias.len();
        blobs.push((format!("{}.weight", l.name), Dtype::I8, shape, w));
        blobs.push((
            format!("{}.bias", l.name),
            Dtype::I32,
            vec![n],
            i32s(&l.ep.bias),
        ));
        blobs.push((
            format!("{}.shift", l.name),
            Dtype::I32,
            vec![n],
            i32s(&l.ep.shift),
        ));
        let fl: Vec<u8> = l.weight_fl.iter().map(|&f| f as i8 as u8).collect();
        blobs.push((format!("{}.weight_fl", l.name), Dtype::I8, vec![n], fl));
    };
    for node in &model.nodes {
        nodes.push(match node {
            IntNode::Conv { input, kind, cout, cin, window, layer } => {
                let shape = match kind {
                    ConvKind::Dense => vec![*cout, window.kh, window.kw, *cin],
                    ConvKind::Depthwise => vec![*cout, window.kh, window.kw],
                };
                add_layer(layer, shape);
                let kind = match kind {
                    ConvKind::Dense => "dense",
                    ConvKind::Depthwise => "depthwise",
                };
                json!({"op": "conv", "input": input, "kind": kind, "cout": cout, "cin": cin,
                       "window": window_json(window), "layer": layer_json(layer)})
            }
            IntNode::Linear { input, n, k, layer } => {
                add_layer(layer, vec![*n, *k]);
                json!({"op": "linear", "input": input, "n": n, "k": k, "layer": layer_json(layer)})
            }
            IntNode::Requantize { input, out, clamp_lo, clamp_hi } => {
                json!({"op": "requantize", "input": input, "out": fmt_json(*out), "clamp": [clamp_lo, clamp_hi]})
            }
            IntNode::Add { a, b, act } => {
                json!({"op": "add", "a": a, "b": b, "relu": *act == Activation::Relu})
            }
            IntNode::GlobalAvgPool { input, shift } => {
                json!({"op": "global_avg_pool", "input": input, "shift": shift})
            }
            IntNode::MaxPool { input, window } => {
                json!({"op": "max_pool", "input": input, "window": window_json(window)})
            }
        });
    }
    let graph = json!({
        "name": model.name, "input_hw": [model.input_hw.0, model.input_hw.1],
        "input_c": model.input_c, "input_format": fmt_json(model.input_format),
        "notes": model.notes, "nodes": nodes,
    });
    let mut meta = HashMap::new();
    meta.insert("f8net.version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("f8net.graph".to_string(), graph.to_string());
    let views: Vec<(String, TensorView)> = blobs
        .iter()
        .map(|(name, dt, shape, data)| {
            TensorView::new(*dt, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::file(name, e.to_string()))
        })
        .collect::<Result<_>>()?;
    super::st::serialize_sorted(views, meta).map_err(|e| Error::file(&model.name, e))
}

/// Write a model atomically (temporary file in the same folder, then rename).
pub fn save(model: &IntModel, path: &Path) -> Result<()> {
    let bytes = to_bytes(model)?;
    crate::io::write_atomic(path, &bytes)
}

/// Read and fully validate a model file.
pub fn load(path: &Path) -> Result<IntModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path.display(), e.to_string()))?;
    from_bytes(&bytes).map_err(|e| match e {
        Error::File { msg, .. } => Error::file(path.display(), msg),
        other => Error::file(path.display(), other.to_string()),
    })
}

struct Reader<'a> {
    st: SafeTensors<'a>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::file("model", msg)
}

impl Reader<'_> {
    fn tensor(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<i32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            return Err(bad(format!(
                "tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(match dtype {
            Dtype::I8 => t.data().iter().map(|&b| b as i8 as i32).collect(),
            _ => t
                .data()
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }

    fn layer(&self, v: &Value, shape: Vec<usize>, n: usize) -> Result<IntLayer> {
        let name = str_of(v, "name")?;
        let output = match str_of(v, "output")?.as_str() {
            "int8" => OutputKind::Codes(Signedness::Signed),
            "uint8" => OutputKind::Codes(Signedness::Unsigned),
            "int32" => OutputKind::Int32,
            other => return Err(bad(format!("{name}: unknown output kind {other}"))),
        };
        let clamp = ints(v, "clamp", 2)?;
        Ok(IntLayer {
            weight: self.tensor(&format!("{name}.weight"), Dtype::I8, &shape)?,
            weight_fl: self.tensor(&format!("{name}.weight_fl"), Dtype::I8, &[n])?,
            ep: EpilogueSpec {
                bias: self.tensor(&format!("{name}.bias"), Dtype::I32, &[n])?,
                shift: self.tensor(&format!("{name}.shift"), Dtype::I32, &[n])?,
                output,
                clamp_lo: clamp[0] as i32,
                clamp_hi: clamp[1] as i32,
            },
            name,
        })
    }
}

fn field<'v>(v: &'v Value, key: &str) -> Result<&'v Value> {
    v.get(key)
        .ok_or_else(|| bad(format!("graph: missing field {key}")))
}

fn int_of(v: &Value, key: &str) -> Result<i64> {
    field(v, key)?
        .as_i64()
        .ok_or_else(|| bad(format!("graph: field {key} is not an integer")))
}

fn usize_of(v: &Value, key: &str) -> Result<usize> {
    usize::try_from(int_of(v, key)?).map_err(|_| bad(format!("graph: field {key} is negative")))
}

fn str_of(v: &Value, key: &str) -> Result<String> {
    Ok(field(v, key)?
        .as_str()
        .ok_or_else(|| bad(format!("graph: field {key} is not a string")))?
        .to_string())
}

fn ints(v: &Value, key: &str, len: usize) -> Result<Vec<i64>> {
    let a = field(v, key)?
        .as_array()
        .ok_or_else(|| bad(format!("graph: field {key} is not a list")))?;
    let out: Vec<i64> = a.iter().filter_map(Value::as_i64).collect();
    if out.len() != len || a.len() != len {
        return Err(bad(format!("graph: field {key} needs {len} integers")));
    }
    Ok(out)
}

fn format_of(v: &Value, key: &str) -> Result<Format> {
    let f = field(v, key)?;
    let signed = field(f, "signed")?
        .as_bool()
        .ok_or_else(|| bad("graph: format.signed is not a bool"))?;
    let s = if signed {
        Signedness::Signed
    } else {
        Signedness::Unsigned
    };
    Format::new(s, int_of(f, "fl")? as i32)
}

fn window_of(v: &Value) -> Result<Window> {
    let w = ints(v, "window", 8)?;
    if w.iter().any(|&x| !(0..=4096).contains(&x)) {
        return Err(bad("graph: window value out of range"));
    }
    let u = |i: usize| w[i] as usize;
    Ok(Window {
        kh: u(0),
        kw: u(1),
        stride_h: u(2),
        stride_w: u(3),
        pad_top: u(4),
        pad_left: u(5),
        pad_bottom: u(6),
        pad_right: u(7),
    })
}

/// Parse and validate model bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<IntModel> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors model file ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let version = info
        .get("f8net.version")
        .ok_or_else(|| bad("not an f8net model (no f8net.version in metadata)"))?;
    if version != &FORMAT_VERSION.to_string() {
        return Err(bad(format!(
            "model format version {version}, this f8net reads version {FORMAT_VERSION}"
        )));
    }
    let graph: Value = serde_json::from_str(info.get("f8net.graph").map_or("", |s| s))
        .map_err(|e| bad(format!("graph metadata is not valid JSON ({e})")))?;
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupt tensor data ({e})")))?;
    let r = Reader { st };
    let hw = ints(&graph, "input_hw", 2)?;
    let mut nodes = Vec::new();
    let list = field(&graph, "nodes")?
        .as_array()
        .ok_or_else(|| bad("graph: nodes is not a list"))?;
    for v in list {
        let input = || usize_of(v, "input");
        nodes.push(match str_of(v, "op")?.as_str() {
            "conv" => {
                let (cout, cin, window) =
                    (usize_of(v, "cout")?, usize_of(v, "cin")?, window_of(v)?);
                let (kind, shape) = match str_of(v, "kind")?.as_str() {
                    "dense" => (ConvKind::Dense, vec![cout, window.kh, window.kw, cin]),
                    "depthwise" => (ConvKind::Depthwise, vec![cout, window.kh, window.kw]),
                    other => return Err(bad(format!("graph: unknown conv kind {other}"))),
                };
                let layer = r.layer(field(v, "layer")?, shape, cout)?;
                IntNode::Conv {
                    input: input()?,
                    kind,
                    cout,
                    cin,
                    window,
                    layer,
                }
            }
            "linear" => {
                let (n, k) = (usize_of(v, "n")?, usize_of(v, "k")?);
                let layer = r.layer(field(v, "layer")?, vec![n, k], n)?;
                IntNode::Linear {
                    input: input()?,
                    n,
                    k,
                    layer,
                }
            }
            "requantize" => {
                let clamp = ints(v, "clamp", 2)?;
                IntNode::Requantize {
                    input: input()?,
                    out: format_of(v, "out")?,
                    clamp_lo: clamp[0] as i32,
                    clamp_hi: clamp[1] as i32,
                }
            }
            "add" => IntNode::Add {
                a: usize_of(v, "a")?,
                b: usize_of(v, "b")?,
                act: if field(v, "relu")?.as_bool() == Some(true) {
                    Activation::Relu
                } else {
                    Activation::Identity
                },
            },
            "global_avg_pool" => IntNode::GlobalAvgPool {
                input: input()?,
                shift: int_of(v, "shift")? as i32,
            },
            "max_pool" => IntNode::MaxPool {
                input: input()?,
                window: window_of(v)?,
            },
            other => return Err(bad(format!("graph: unknown op {other}"))),
        });
    }
    let model = IntModel {
        name: str_of(&graph, "name")?,
        input_hw: (hw[0].max(0) as usize, hw[1].max(0) as usize),
        input_c: usize_of(&graph, "input_c")?,
        input_format: format_of(&graph, "input_format")?,
        nodes,
        notes: str_of(&graph, "notes")?,
    };
    model.infer_tensors()?;
    Ok(model)
}
