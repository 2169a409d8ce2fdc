//! Builds an F8Net training network (`train::net::Net`) from an architecture description
//! (`arch::Arch`) with the seeded F8NET.md §6 initialization: every conv + BN pair becomes one
//! conv + BN unit whose input quantizer follows the arch's wiring (image / unsigned / signed),
//! clipping levels are shared along residual streams as the wiring's α masters say, each unit
//! divides by the scale of the first quantizing layer downstream, ReLU after a residual add
//! becomes the add's ReLU, and ReLU/ReLU6 before a unit is the unit's unsigned input quantizer
//! (PACT clip); a ReLU after a unit that a residual add reads is applied to the unit output. Max pooling is not in the training network yet (the ImageNet ResNet stems).

use super::conv_bn::{ConvBn, InputQuant, Precision};
use super::linear::Classifier;
use super::net::{Net, Node};
use crate::arch::{float::ohwi, Arch, InputKind, Op};
use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::fraclen::unbiased_std;
use crate::reference::residual::Activation;
use crate::tensor::Shape;
use std::collections::HashMap;

fn unsupported(msg: String) -> Error {
    Error::range("train", msg)
}

/// The classifier's initial weight scaled to the SAT target σ = 1/√classes (F8NET.md §2.8), so
/// the constant rescale `ws` starts at 1. The rescale makes the logits independent of the weight's
/// scale, but not its gradient: from torchvision's N(0, 0.01) and 10 classes, `ws` ≈ 31
/// multiplies the first steps' weight updates and throws the classifier far off (measured on
/// ResNet-20 w0.5, Fashion-MNIST, lr 0.05: train accuracy over steps 76–100 0.47 → 0.72).
fn sat_init(mut w: Vec<f32>, classes: usize) -> Vec<f32> {
    let sd = unbiased_std(&w);
    if sd > 0.0 {
        let k = (1.0 / (classes as f32).sqrt()) / sd;
        w.iter_mut().for_each(|v| *v *= k);
    }
    w
}

/// The training network of `arch` (weights seeded by `seed`).
pub fn net_from_arch(arch: &Arch, seed: u64, precision: Precision) -> Result<Net> {
    let init = arch.init_tensors(seed);
    let take = |name: &str| -> Result<Vec<f32>> {
        init.get(name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::shape("train", format!("no initial tensor {name}")))
    };
    let mut alpha_of: HashMap<String, usize> = HashMap::new();
    let mut alpha = |wiring_name: &str, master: &Option<String>| -> usize {
        let key = master.clone().unwrap_or_else(|| wiring_name.to_string());
        let next = alpha_of.len();
        *alpha_of.entry(key).or_insert(next)
    };
    let mut nodes: Vec<Node> = Vec::new();
    // Net tensor of every arch tensor (arch layer i writes tensor i + 1).
    let mut map: Vec<usize> = vec![0];
    let mut skip_bn = None;
    for (i, layer) in arch.layers.iter().enumerate() {
        let input = |k: usize| -> Result<usize> {
            let t = *layer
                .inputs
                .get(k)
                .ok_or_else(|| Error::shape("train", format!("{} has no input {k}", layer.name)))?;
            map.get(t)
                .copied()
                .ok_or_else(|| Error::shape("train", format!("{} reads tensor {t}", layer.name)))
        };
        let mapped = match &layer.op {
            Op::Conv(c) => {
                let bn = arch
                    .layers
                    .get(i + 1)
                    .filter(|l| matches!(l.op, Op::BatchNorm { .. }) && l.inputs == [i + 1]);
                let bn = bn.ok_or_else(|| {
                    unsupported(format!(
                        "{}: a conv must be followed by its BatchNorm",
                        layer.name
                    ))
                })?;
                let wiring = arch
                    .wiring_of(&layer.name)
                    .ok_or_else(|| Error::shape("train", format!("{}: no wiring", layer.name)))?;
                let quant = match wiring.input {
                    InputKind::Image => InputQuant::Fixed,
                    InputKind::Unsigned => InputQuant::Quantized(Signedness::Unsigned),
                    InputKind::Signed => InputQuant::Quantized(Signedness::Signed),
                };
                let weight = ohwi(
                    &take(&format!("{}.weight", layer.name))?,
                    c.kind,
                    c.cout,
                    c.cin,
                    c.k,
                );
                let mut unit = ConvBn::new(
                    &layer.name,
                    c.kind,
                    c.cin,
                    c.cout,
                    c.window(),
                    quant,
                    weight,
                );
                unit.gamma = take(&format!("{}.weight", bn.name))?;
                unit.beta = take(&format!("{}.bias", bn.name))?;
                let a = alpha(&wiring.name, &wiring.alpha_master);
                nodes.push(Node::Conv {
                    input: input(0)?,
                    unit,
                    alpha: a,
                    next: None,
                    act: Activation::Identity,
                });
                skip_bn = Some(i + 1);
                nodes.len()
            }
            Op::BatchNorm { .. } if skip_bn == Some(i) => map[i],
            Op::BatchNorm { .. } => {
                return Err(unsupported(format!(
                    "{}: BatchNorm without its conv",
                    layer.name
                )))
            }
            Op::Relu | Op::Relu6 => {
                let t = input(0)?;
                match nodes.get_mut(t.wrapping_sub(1)) {
                    Some(Node::Add { relu, .. }) if layer.op == Op::Relu => *relu = true,
                    Some(Node::Add { .. }) => {
                        return Err(unsupported(format!(
                            "{}: ReLU6 after a residual add",
                            layer.name
                        )))
                    }
                    // A ReLU after a unit is applied to its output (a residual add may read
                    // the activated tensor); before a unit the unsigned input quantizer is the
                    // ReLU/PACT clip anyway. ReLU6's clip is the next unit's PACT α.
                    Some(Node::Conv { act, .. }) if layer.op == Op::Relu => *act = Activation::Relu,
                    _ => {}
                }
                t
            }
            Op::Add => {
                nodes.push(Node::Add {
                    a: input(0)?,
                    b: input(1)?,
                    relu: false,
                });
                nodes.len()
            }
            Op::GlobalAvgPool => {
                nodes.push(Node::GlobalAvgPool { input: input(0)? });
                nodes.len()
            }
            Op::Linear { k, n } => {
                let wiring = arch
                    .wiring_of(&layer.name)
                    .ok_or_else(|| Error::shape("train", format!("{}: no wiring", layer.name)))?;
                let mut fc = Classifier::new(
                    *k,
                    *n,
                    sat_init(take(&format!("{}.weight", layer.name))?, *n),
                );
                fc.bias = take(&format!("{}.bias", layer.name))?;
                let a = alpha(&wiring.name, &wiring.alpha_master);
                nodes.push(Node::Classifier {
                    input: input(0)?,
                    fc,
                    alpha: a,
                });
                nodes.len()
            }
            Op::MaxPool { .. } => {
                return Err(unsupported(format!(
                    "{}: max pooling is not in the training network yet (use the small-input form)",
                    layer.name
                )))
            }
        };
        map.push(mapped);
    }
    // Each unit divides by the scale of the first quantizing layer downstream of its output.
    for j in 0..nodes.len() {
        if !matches!(nodes[j], Node::Conv { .. }) {
            continue;
        }
        let mut reach = vec![j + 1];
        let mut found = None;
        for (k, node) in nodes.iter().enumerate().skip(j + 1) {
            let reads = match node {
                Node::Conv { input, .. }
                | Node::GlobalAvgPool { input }
                | Node::Classifier { input, .. } => vec![*input],
                Node::Add { a, b, .. } => vec![*a, *b],
            };
            if reads.iter().any(|t| reach.contains(t)) {
                if matches!(node, Node::Conv { .. } | Node::Classifier { .. }) {
                    found = Some(k);
                    break;
                }
                reach.push(k + 1);
            }
        }
        if let Node::Conv { next, .. } = &mut nodes[j] {
            *next = found;
        }
    }
    let (h, w) = arch.config.input_hw;
    Ok(Net {
        input: Shape::new(0, h, w, arch.config.in_channels),
        nodes,
        alphas: vec![8.0; alpha_of.len()],
        precision,
        momentum: Vec::new(),
        step: 0,
    })
}
