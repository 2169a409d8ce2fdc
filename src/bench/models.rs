//! Whole-model benchmarks: a network in F8Net int8 (`GpuModel`) against the same network in f32
//! (`GpuFloatModel`), one forward pass per recorded run, activations allocated once per batch
//! size ([`MODEL_NAMES`]).
//!
//! - `efficientnet_lite0`: the built-in model. The f32 network is the float checkpoint
//!   (`assets/models/efficientnet_lite0.f32.safetensors`, found next to the working folder or the
//!   source tree, or `--float`); without it, the float twin of the integer graph (same nodes and
//!   shapes, weights dequantized), which does exactly the same work.
//! - `resnet18`, `mobilenet_v2`: the ImageNet forms of `crate::arch` (224×224, width 1, 1000
//!   classes) with **seeded random weights** (F8NET.md §6 init, BN statistics calibrated on
//!   [`CALIB_IMAGES`] random images), quantized with the paper's per-layer rule on the same
//!   images, input uint8 at FL 8 (§2.7). The weights are random, so these rows measure speed,
//!   not accuracy; the work per image is the real network's.

use super::timing::Recorder;
use crate::arch::{ArchConfig, Family};
use crate::builtin;
use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::gpu::{Encoder, Gpu};
use crate::model::efficientnet;
use crate::model::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode};
use crate::model::int::{IntModel, IntNode, TensorType};
use crate::model::run_gpu::GpuModel;
use crate::model::run_gpu_f32::GpuFloatModel;
use crate::quantize::{self, QuantizeOptions};
use crate::reference::{residual, OutputKind};
use std::path::{Path, PathBuf};

/// Models not benchmarked yet, printed under the table (no numbers are made up for them).
pub const TODO_MODELS: &[&str] = &[];

/// The benchmarked models, in table order (`f8net bench --filter` matches these names).
pub const MODEL_NAMES: [&str; 3] = ["efficientnet_lite0", "resnet18", "mobilenet_v2"];

/// Random calibration images for the random-weight architectures, and the weights' seed.
pub const CALIB_IMAGES: usize = 2;
const SEED: u64 = 1995;

/// Batch sizes of model `name`: the configured ones; under `--quick` the random-weight
/// architectures (seconds per forward pass on lavapipe) run the first batch size only.
pub fn batches_for(name: &str, configured: &[usize], quick: bool) -> Vec<usize> {
    if quick && name != "efficientnet_lite0" {
        configured.iter().take(1).copied().collect()
    } else {
        configured.to_vec()
    }
}

/// Model `name` of [`MODEL_NAMES`] in both forms (`float_path`: EfficientNet-Lite0's checkpoint).
pub fn pair(name: &str, float_path: Option<&Path>) -> Result<ModelPair> {
    match name {
        "efficientnet_lite0" => efficientnet_lite0(float_path),
        "resnet18" => arch_pair("resnet18", Family::ResNet18),
        "mobilenet_v2" => arch_pair("mobilenet_v2", Family::MobileNetV2),
        _ => Err(Error::range(
            "bench",
            format!("unknown model {name:?} (known: {})", MODEL_NAMES.join(", ")),
        )),
    }
}

/// `family` in its ImageNet form with seeded random weights, and its F8Net int8 conversion
/// (see the module docs: these rows measure speed, not accuracy).
pub fn arch_pair(name: &'static str, family: Family) -> Result<ModelPair> {
    let arch = ArchConfig::imagenet(family).build()?;
    let (h, w) = arch.config.input_hw;
    let len = CALIB_IMAGES * h * w * arch.config.in_channels;
    // Pixel bytes k → k/256: F8Net's 8-bit image input (uint8, FL 8).
    let mut state = SEED;
    let calib: Vec<f32> = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as f32 / 256.0
        })
        .collect();
    let float = arch.to_float_model_calibrated(SEED, &calib, CALIB_IMAGES)?;
    let input = Format {
        signedness: Signedness::Unsigned,
        fl: 8,
    };
    let opts = QuantizeOptions::paper();
    let int = quantize::quantize(&float, &calib, CALIB_IMAGES, input, &opts)?;
    Ok(ModelPair {
        name,
        int,
        float,
        float_source: format!("random weights (seed {SEED}): speed only"),
    })
}

/// Where the float checkpoint is looked for when `--float` is not given.
const FLOAT_FILE: &str = "assets/models/efficientnet_lite0.f32.safetensors";

/// A model in both forms.
pub struct ModelPair {
    pub name: &'static str,
    pub int: IntModel,
    pub float: FloatModel,
    /// Where the float weights came from (a path, or "float twin of the int8 model").
    pub float_source: String,
}

/// The built-in EfficientNet-Lite0 with its float counterpart (see the module docs).
pub fn efficientnet_lite0(float_path: Option<&Path>) -> Result<ModelPair> {
    let int = builtin::model()?;
    let candidates: Vec<PathBuf> = match float_path {
        Some(p) => vec![p.to_path_buf()],
        None => vec![
            PathBuf::from(FLOAT_FILE),
            Path::new(env!("CARGO_MANIFEST_DIR")).join(FLOAT_FILE),
        ],
    };
    let found = candidates
        .iter()
        .find(|p| float_path.is_some() || p.is_file());
    let (float, float_source) = match found {
        Some(p) => (efficientnet::load_float(p)?, p.display().to_string()),
        None => (
            float_twin(&int)?,
            "float twin of the int8 model".to_string(),
        ),
    };
    Ok(ModelPair {
        name: "efficientnet_lite0",
        int,
        float,
        float_source,
    })
}

/// The float graph that does the int8 model's work: every conv, linear, add and pool with the
/// same shapes, weights dequantized (`code · 2^-FL_w`, bias `b · 2^-(FL_x + FL_w)`);
/// requantizations vanish (their clamp becomes the producer's ReLU6 where the codes are
/// unsigned).
pub fn float_twin(m: &IntModel) -> Result<FloatModel> {
    let info = m.infer_tensors()?;
    let fl_of = |t: usize| match info[t].ty {
        TensorType::Codes(f) => f.fl,
        TensorType::Int32 { fl } => fl,
    };
    // Float tensor index of every int tensor (requantize outputs alias their input).
    let mut map = vec![0usize; info.len()];
    let mut nodes = Vec::new();
    let deq = |codes: &[i32], per: usize, fl: &[i32]| -> Vec<f32> {
        codes
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * (-fl[i / per.max(1)] as f32).exp2())
            .collect()
    };
    for (j, node) in m.nodes.iter().enumerate() {
        let next = nodes.len() + 1;
        let new = match node {
            IntNode::Conv {
                input,
                kind,
                cout,
                cin,
                window,
                layer,
            } => {
                let per = match kind {
                    ConvKind::Dense => window.kh * window.kw * cin,
                    ConvKind::Depthwise => window.kh * window.kw,
                };
                let fx = fl_of(*input);
                let bias = (0..*cout)
                    .map(|c| layer.ep.bias[c] as f32 * (-(fx + layer.weight_fl[c]) as f32).exp2())
                    .collect();
                let act = match layer.ep.output {
                    OutputKind::Codes(crate::fixed::Signedness::Unsigned) => Activation::Relu6,
                    _ => Activation::None,
                };
                Some(FloatNode::Conv {
                    input: map[*input],
                    conv: FloatConv {
                        name: layer.name.clone(),
                        kind: *kind,
                        cout: *cout,
                        cin: *cin,
                        kh: window.kh,
                        kw: window.kw,
                        window: *window,
                        weight: deq(&layer.weight, per, &layer.weight_fl),
                        bias,
                        act,
                    },
                })
            }
            IntNode::Linear { input, n, k, layer } => {
                let fx = fl_of(*input);
                Some(FloatNode::Linear {
                    input: map[*input],
                    name: layer.name.clone(),
                    n: *n,
                    k: *k,
                    weight: deq(&layer.weight, *k, &layer.weight_fl),
                    bias: (0..*n)
                        .map(|c| {
                            layer.ep.bias[c] as f32 * (-(fx + layer.weight_fl[c]) as f32).exp2()
                        })
                        .collect(),
                })
            }
            IntNode::Requantize { input, .. } => {
                map[j + 1] = map[*input];
                None
            }
            IntNode::Add { a, b, act } => Some(FloatNode::Add {
                a: map[*a],
                b: map[*b],
                act: match act {
                    residual::Activation::Relu => Activation::Relu,
                    _ => Activation::None,
                },
            }),
            IntNode::GlobalAvgPool { input, .. } => {
                Some(FloatNode::GlobalAvgPool { input: map[*input] })
            }
            IntNode::MaxPool { input, window } => Some(FloatNode::MaxPool {
                input: map[*input],
                window: *window,
            }),
        };
        if let Some(n) = new {
            nodes.push(n);
            map[j + 1] = next;
        }
    }
    let twin = FloatModel {
        name: format!("{} (float twin)", m.name),
        input_hw: m.input_hw,
        input_c: m.input_c,
        nodes,
    };
    twin.tensor_shapes()?;
    Ok(twin)
}

/// Multiply-accumulates of one image through `m` (conv and linear layers).
pub fn macs_per_image(m: &FloatModel) -> Result<u64> {
    let shapes = m.tensor_shapes()?;
    let mut macs = 0u64;
    for (i, node) in m.nodes.iter().enumerate() {
        let [oh, ow, _] = shapes[i + 1];
        macs += match node {
            FloatNode::Conv { conv, .. } => {
                let per = match conv.kind {
                    ConvKind::Dense => conv.kh * conv.kw * conv.cin,
                    ConvKind::Depthwise => conv.kh * conv.kw,
                };
                (oh * ow * conv.cout * per) as u64
            }
            FloatNode::Linear { n, k, .. } => (n * k) as u64,
            _ => 0,
        };
    }
    Ok(macs)
}

/// Both forms uploaded to one GPU.
pub struct UploadedPair {
    pub name: &'static str,
    pub float_source: String,
    pub macs_per_image: u64,
    int: GpuModel,
    float: GpuFloatModel,
    input_len: usize,
}

impl UploadedPair {
    pub fn upload(gpu: &Gpu, pair: &ModelPair) -> Result<UploadedPair> {
        let (h, w) = pair.int.input_hw;
        Ok(UploadedPair {
            name: pair.name,
            float_source: pair.float_source.clone(),
            macs_per_image: macs_per_image(&pair.float)?,
            int: GpuModel::upload(gpu, &pair.int)?,
            float: GpuFloatModel::upload(gpu, &pair.float)?,
            input_len: h * w * pair.int.input_c,
        })
    }

    /// Recorders of one int8 and one f32 forward pass over a batch of `n` (a fixed synthetic
    /// input in the model's input format, written once; the f32 side gets the same values).
    pub fn recorders<'a>(&'a self, gpu: &'a Gpu, n: usize) -> Result<(Recorder<'a>, Recorder<'a>)> {
        let len = n * self.input_len;
        let f = self.int.model().input_format;
        let codes: Vec<i32> = (0..len)
            .map(|i| match f.signedness {
                Signedness::Signed => ((i * 37 + i / 7) % 255) as i32 - 127,
                Signedness::Unsigned => ((i * 37 + i / 7) % 256) as i32,
            })
            .collect();
        let x: Vec<f32> = codes
            .iter()
            .map(|&q| q as f32 * (-f.fl as f32).exp2())
            .collect();
        let a8 = self.int.alloc_activations(gpu, n)?;
        self.int.write_input(gpu, &a8, &codes)?;
        let a32 = self.float.alloc_activations(gpu, n)?;
        self.float.write_input(gpu, &a32, &x)?;
        let int8 = move |enc: &mut Encoder| self.int.record(gpu, enc, &a8);
        let f32 = move |enc: &mut Encoder| self.float.record(gpu, enc, &a32);
        Ok((Box::new(int8), Box::new(f32)))
    }
}
