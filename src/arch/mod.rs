//! Declarative network architectures: ResNet-18/50, a CIFAR-style ResNet-20, MobileNet-V1 and
//! MobileNet-V2, each in an ImageNet form (224×224, torchvision's layer layout and parameter
//! names) and a small-input form (28×28/32×32: stride-1 3×3 stem, no stem max pool), with a
//! width multiplier, a class count and an input channel count.
//!
//! An [`Arch`] is a PyTorch-like layer list: conv (dense or depthwise, symmetric `k/2` padding),
//! BatchNorm, ReLU/ReLU6, residual add, max pool, global average pool, linear. Tensor 0 is the
//! input and layer `i` produces tensor `i + 1`, as in `model::float`. Parameter names are the
//! module paths plus `.weight`/`.bias` (`layer1.0.downsample.0.weight`,
//! `features.1.conv.0.0.weight`), so torchvision state dicts map onto it by name.
//!
//! F8Net wiring comes with it ([`Wiring`], F8NET.md §2.5, §2.7): per conv and linear layer, the
//! kind of its 8-bit input (the image, unsigned after a ReLU, signed otherwise — MobileNet-V2's
//! block inputs after the first stage and its tail conv input) and the "master" conv whose PACT
//! clipping level α it shares along a residual stream. The average pool's
//! `2^round(log2(h·w))/(h·w)` factor (§2.9) is handled by `quantize`, which folds it into the
//! classifier.
//!
//! - [`resnet`], [`mobilenet`]: the builders (on `build::Builder`); [`wiring`]: signedness and
//!   α masters; [`float`]: the `FloatModel` (seeded F8NET.md §6 init, BN calibration, or
//!   torchvision-named tensors).

mod build;
pub mod float;
pub mod mobilenet;
pub mod resnet;
pub mod wiring;

use crate::error::{Error, Result};
use crate::model::float::{ConvKind, Hwc};
use crate::reference::optim::WeightDecayScheme;
use crate::reference::pool::pool_out_hw;
use crate::reference::Window;
use build::Builder;
pub use wiring::{InputKind, Wiring};

const OP: &str = "arch";

/// The network families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    ResNet18,
    ResNet50,
    ResNet20,
    MobileNetV1,
    MobileNetV2,
}

impl Family {
    /// The weight-decay scheme of the paper's config for this family (F8NET.md §6):
    /// `no_depthwise_no_bn` for MobileNet-V2, `all` for the others.
    pub fn weight_decay_scheme(self) -> WeightDecayScheme {
        match self {
            Family::MobileNetV2 => WeightDecayScheme::NoDepthwiseNoBn,
            _ => WeightDecayScheme::All,
        }
    }

    pub const ALL: [Family; 5] = [
        Family::ResNet18,
        Family::ResNet50,
        Family::ResNet20,
        Family::MobileNetV1,
        Family::MobileNetV2,
    ];

    /// The command-line name: `resnet18`, `resnet50`, `resnet20`, `mobilenet_v1`, `mobilenet_v2`.
    pub fn name(self) -> &'static str {
        match self {
            Family::ResNet18 => "resnet18",
            Family::ResNet50 => "resnet50",
            Family::ResNet20 => "resnet20",
            Family::MobileNetV1 => "mobilenet_v1",
            Family::MobileNetV2 => "mobilenet_v2",
        }
    }

    /// Parse a name (case-insensitive; `-` and `_` optional: `MobileNet-V2`, `mbv2` also work).
    pub fn parse(name: &str) -> Result<Family> {
        let key: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        let found = match key.as_str() {
            "resnet18" => Family::ResNet18,
            "resnet50" => Family::ResNet50,
            "resnet20" => Family::ResNet20,
            "mobilenetv1" | "mbv1" => Family::MobileNetV1,
            "mobilenetv2" | "mbv2" => Family::MobileNetV2,
            _ => {
                let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                return Err(Error::range(
                    OP,
                    format!(
                        "unknown architecture {name:?} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        };
        Ok(found)
    }
}

/// ImageNet layout, or the small-input layout (stride-1 3×3 stem, no stem max pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    ImageNet,
    Small,
}

/// Largest accepted width multiplier, class count, input channels and input side (sanity
/// bounds, so a typo cannot ask for terabytes).
pub const MAX_WIDTH: f32 = 4.0;
pub const MAX_CLASSES: usize = 1 << 20;
pub const MAX_IN_CHANNELS: usize = 1024;
pub const MAX_INPUT_SIDE: usize = 8192;

/// Everything that selects one network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchConfig {
    pub family: Family,
    pub form: Form,
    /// Width multiplier in (0, 4]: ResNets use `round(c·width)` channels (zero is an error);
    /// MobileNets torchvision's `_make_divisible(c·width, 8)` (at least 8).
    pub width: f32,
    pub classes: usize,
    pub in_channels: usize,
    pub input_hw: (usize, usize),
}

impl ArchConfig {
    /// The ImageNet form: 224×224 RGB, 1000 classes, width 1.
    pub fn imagenet(family: Family) -> ArchConfig {
        ArchConfig {
            family,
            form: Form::ImageNet,
            width: 1.0,
            classes: 1000,
            in_channels: 3,
            input_hw: (224, 224),
        }
    }

    /// The small-input form: 28×28 grey (Fashion-MNIST), 10 classes, width 1.
    pub fn small(family: Family) -> ArchConfig {
        ArchConfig {
            family,
            form: Form::Small,
            width: 1.0,
            classes: 10,
            in_channels: 1,
            input_hw: (28, 28),
        }
    }

    pub fn with_width(self, width: f32) -> ArchConfig {
        ArchConfig { width, ..self }
    }

    /// The layer list with its F8Net wiring; every shape is checked for the input size.
    pub fn build(&self) -> Result<Arch> {
        let w = self.width;
        if !(w.is_finite() && w > 0.0 && w <= MAX_WIDTH) {
            return Err(Error::range(
                OP,
                format!(
                    "{}: width {w} must be a positive number up to {MAX_WIDTH}",
                    self.family.name()
                ),
            ));
        }
        let (h, wd) = self.input_hw;
        let bad = |v: usize, max: usize| v == 0 || v > max;
        if bad(self.classes, MAX_CLASSES)
            || bad(self.in_channels, MAX_IN_CHANNELS)
            || bad(h, MAX_INPUT_SIDE)
            || bad(wd, MAX_INPUT_SIDE)
        {
            return Err(Error::range(
                OP,
                format!(
                    "{}: {} classes, {} input channels, {h}x{wd} input: each must be at least 1 \
                     (at most {MAX_CLASSES} classes, {MAX_IN_CHANNELS} channels, \
                     {MAX_INPUT_SIDE} pixels a side)",
                    self.family.name(),
                    self.classes,
                    self.in_channels
                ),
            ));
        }
        let mut b = Builder::new(self.in_channels);
        match self.family {
            Family::ResNet18 | Family::ResNet50 | Family::ResNet20 => resnet::build(self, &mut b)?,
            Family::MobileNetV1 => mobilenet::build_v1(self, &mut b)?,
            Family::MobileNetV2 => mobilenet::build_v2(self, &mut b)?,
        }
        let form = match self.form {
            Form::ImageNet => "",
            Form::Small => "-small",
        };
        let width = if w == 1.0 {
            String::new()
        } else {
            format!("-w{w}")
        };
        let mut arch = Arch {
            name: format!("{}{form}{width}", self.family.name()),
            config: *self,
            layers: b.layers,
            wiring: Vec::new(),
        };
        arch.tensor_shapes()?;
        arch.wiring = wiring::compute(&arch.layers);
        Ok(arch)
    }

    /// `round(c·width)` (half to even), an error when that is zero (the ResNets).
    pub(crate) fn scaled(&self, c: usize, what: &str) -> Result<usize> {
        let v = (c as f64 * self.width as f64).round_ties_even();
        if v < 1.0 {
            return Err(Error::range(
                OP,
                format!(
                    "{}: width {} gives {what} {v} channels ({c} x {}); use a larger width",
                    self.family.name(),
                    self.width,
                    self.width
                ),
            ));
        }
        Ok(v as usize)
    }
}

/// torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8, at least 8, and never
/// more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let new = d.max(((v + d / 2.0) / d).floor() * d);
    let new = if new < 0.9 * v { new + d } else { new };
    new as usize
}

/// A convolution (no bias: BatchNorm follows), PyTorch padding `k/2` on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOp {
    pub kind: ConvKind,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvOp {
    pub fn window(&self) -> Window {
        Window::symmetric(self.k, self.stride, self.pad)
    }

    /// PyTorch weight shape `[cout, cin/groups, k, k]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        let per = match self.kind {
            ConvKind::Dense => self.cin,
            ConvKind::Depthwise => 1,
        };
        vec![self.cout, per, self.k, self.k]
    }
}

/// One layer's operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(ConvOp),
    /// BatchNorm over `c` channels (γ, β; running mean and variance are buffers), eps 1e-5.
    BatchNorm {
        c: usize,
    },
    Relu,
    Relu6,
    /// Sum of the two inputs: `[body, shortcut]`.
    Add,
    MaxPool {
        k: usize,
        stride: usize,
        pad: usize,
    },
    GlobalAvgPool,
    /// `x·weightᵀ + bias`, weight `[n, k]`.
    Linear {
        k: usize,
        n: usize,
    },
}

/// A layer: its module path (parameter names are `{name}.weight`, ...), op and input tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
}

/// A named parameter (or buffer) and its PyTorch shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Param {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A network: layers in topological order and the F8Net wiring of its conv/linear layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// e.g. `resnet18`, `resnet20-small-w0.25`.
    pub name: String,
    pub config: ArchConfig,
    pub layers: Vec<Layer>,
    /// One entry per conv and linear layer, in layer order.
    pub wiring: Vec<Wiring>,
}

impl Arch {
    /// Parameters in state-dict order: conv weights, BN γ (`.weight`) and β (`.bias`), linear
    /// weight and bias. BN running statistics are buffers ([`Arch::buffers`]).
    pub fn parameters(&self) -> Vec<Param> {
        let p = |name: &str, suffix: &str, shape: Vec<usize>| Param {
            name: format!("{name}.{suffix}"),
            shape,
        };
        let mut out = Vec::new();
        for l in &self.layers {
            match &l.op {
                Op::Conv(c) => out.push(p(&l.name, "weight", c.weight_shape())),
                Op::BatchNorm { c } => {
                    out.push(p(&l.name, "weight", vec![*c]));
                    out.push(p(&l.name, "bias", vec![*c]));
                }
                Op::Linear { k, n } => {
                    out.push(p(&l.name, "weight", vec![*n, *k]));
                    out.push(p(&l.name, "bias", vec![*n]));
                }
                _ => {}
            }
        }
        out
    }

    /// BN running mean and variance (f32; PyTorch's `num_batches_tracked` counters are left out).
    pub fn buffers(&self) -> Vec<Param> {
        let mut out = Vec::new();
        for l in &self.layers {
            if let Op::BatchNorm { c } = l.op {
                for s in ["running_mean", "running_var"] {
                    out.push(Param {
                        name: format!("{}.{s}", l.name),
                        shape: vec![c],
                    });
                }
            }
        }
        out
    }

    /// Number of trainable parameters (what torchvision's `sum(p.numel())` counts).
    pub fn param_count(&self) -> usize {
        self.parameters().iter().map(Param::len).sum()
    }

    /// The layer producing tensor `t` (`None` for the input).
    pub fn producer(&self, t: usize) -> Option<&Layer> {
        t.checked_sub(1).and_then(|i| self.layers.get(i))
    }

    /// The wiring of the conv or linear layer `name`.
    pub fn wiring_of(&self, name: &str) -> Option<&Wiring> {
        self.wiring.iter().find(|w| w.name == name)
    }

    /// `[h, w, c]` of every tensor (0 = input), checking channels and that every window fits.
    pub fn tensor_shapes(&self) -> Result<Vec<Hwc>> {
        let (h, w) = self.config.input_hw;
        let mut s: Vec<Hwc> = vec![[h, w, self.config.in_channels]];
        for l in &self.layers {
            let get = |j: usize| -> Result<Hwc> {
                s.get(j).copied().ok_or_else(|| {
                    Error::shape(
                        OP,
                        format!("{}: reads tensor {j}, not produced yet", l.name),
                    )
                })
            };
            let x = get(*l.inputs.first().unwrap_or(&usize::MAX))?;
            let bad = |msg: String| Error::shape(OP, format!("{} {}: {msg}", self.name, l.name));
            let out = match &l.op {
                Op::Conv(c) => {
                    if x[2] != c.cin {
                        return Err(bad(format!("input has {} channels, not {}", x[2], c.cin)));
                    }
                    let (oh, ow) = c.window().out_hw(OP, x[0], x[1]).map_err(|_| {
                        bad(format!(
                            "a {}x{} input is too small for a {k}x{k} window (input {}x{})",
                            x[0],
                            x[1],
                            self.config.input_hw.0,
                            self.config.input_hw.1,
                            k = c.k
                        ))
                    })?;
                    [oh, ow, c.cout]
                }
                Op::BatchNorm { c } if *c != x[2] => {
                    return Err(bad(format!("BN of {c} channels on {}", x[2])))
                }
                Op::BatchNorm { .. } | Op::Relu | Op::Relu6 => x,
                Op::Add => {
                    let y = get(*l.inputs.get(1).unwrap_or(&usize::MAX))?;
                    if x != y {
                        return Err(bad(format!("adds {x:?} and {y:?}")));
                    }
                    x
                }
                Op::MaxPool { k, stride, pad } => {
                    let win = Window::symmetric(*k, *stride, *pad);
                    let (oh, ow) = pool_out_hw(OP, &win, x[0], x[1])
                        .map_err(|_| bad(format!("a {}x{} input is too small", x[0], x[1])))?;
                    [oh, ow, x[2]]
                }
                Op::GlobalAvgPool => [1, 1, x[2]],
                Op::Linear { k, n } => {
                    if x[0] * x[1] * x[2] != *k {
                        return Err(bad(format!("input {x:?} for {k} features")));
                    }
                    [1, 1, *n]
                }
            };
            s.push(out);
        }
        Ok(s)
    }
}
