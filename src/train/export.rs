//! Export of a trained F8Net network (`train::net::Net`) to the integer model
//! (`model::int::IntModel`, the file format and executors of `f8net infer`), F8NET.md §2.4,
//! §2.8–§2.10: every unit's BN folded with its running statistics and its scales, int8 weights at
//! the unit's weight FL (one per output channel with `WeightFormat::PerChannel`), int32 biases
//! at FL_x + FL_w, each unit writing its int32 accumulator (shift 0; per-channel FLs: left shifts
//! to FL_x + max FL_w, exact within `weight_format`'s caps) that every 8-bit consumer requantizes
//! to its own running input FL (the consumer side, as the official int model); residual adds
//! align int32 streams; the pool is a sum with an FL change; the classifier's positive rescale is
//! dropped (its bias divided by `s_fc·ws`).

use super::net::{Net, Node};
use crate::error::{Error, Result};
use crate::fixed::{bias_code, Format, Signedness};
use crate::model::int::{IntLayer, IntModel, IntNode};
use crate::reference::pool::avgpool_shift;
use crate::reference::residual::Activation;
use crate::reference::{EpilogueSpec, OutputKind};

/// An int32-output layer with weight FLs `weight_fl` (one per channel): biases at
/// `FL_x + FL_w[c]`, the output at `FL_x + max FL_w` (left shifts, exact; 0 for one FL).
fn layer(name: &str, codes: Vec<i32>, weight_fl: Vec<i32>, bias: &[f32], x_fl: i32) -> IntLayer {
    let top = weight_fl.iter().copied().max().unwrap_or(0);
    IntLayer {
        name: name.to_string(),
        weight: codes,
        ep: EpilogueSpec {
            bias: bias
                .iter()
                .zip(&weight_fl)
                .map(|(&b, fl)| bias_code(b, x_fl + fl))
                .collect(),
            shift: weight_fl.iter().map(|fl| fl - top).collect(),
            output: OutputKind::Int32,
            clamp_lo: -i32::MAX,
            clamp_hi: i32::MAX,
        },
        weight_fl,
    }
}

/// The FL of a `layer`'s int32 output.
fn out_fl(l: &IntLayer, x_fl: i32) -> i32 {
    x_fl + l.weight_fl[0] - l.ep.shift[0]
}

/// The integer model of `net` (trained in `Precision::Fixed`).
pub fn export(net: &Net, name: &str) -> Result<IntModel> {
    let image = Format {
        signedness: Signedness::Unsigned,
        fl: 8,
    };
    let mut nodes: Vec<IntNode> = Vec::new();
    // Int tensor of each network tensor, and its codes per requested format.
    let mut native = vec![0usize];
    let mut codes: Vec<Vec<(Format, usize)>> = vec![vec![(image, 0)]];
    let mut fl = vec![image.fl];
    let ensure = |t: usize,
                  f: Format,
                  nodes: &mut Vec<IntNode>,
                  codes: &mut Vec<Vec<(Format, usize)>>,
                  native: &[usize]|
     -> Result<usize> {
        if let Some(&(_, j)) = codes[t].iter().find(|(g, _)| *g == f) {
            return Ok(j);
        }
        if t == 0 {
            return Err(Error::range(
                "export",
                format!("the image input is uint8 FL 8, a unit wants {f:?}"),
            ));
        }
        nodes.push(IntNode::Requantize {
            input: native[t],
            out: f,
            clamp_lo: -i32::MAX,
            clamp_hi: i32::MAX,
        });
        codes[t].push((f, nodes.len()));
        Ok(nodes.len())
    };
    for (i, node) in net.nodes.iter().enumerate() {
        let (new, out_fl) = match node {
            Node::Conv {
                input,
                unit,
                next,
                act,
                ..
            } => {
                let s_out = next.map_or(1.0, |j| net.node_scale(j));
                let u = unit.integer_eval(net.node_scale(i), s_out)?;
                let x_format = u.input.unwrap_or(image);
                let x = ensure(*input, x_format, &mut nodes, &mut codes, &native)?;
                let mut l = layer(&unit.name, u.codes, u.weight_fl, &u.bias, x_format.fl);
                if *act == Activation::Relu {
                    l.ep.clamp_lo = 0;
                }
                let fl = out_fl(&l, x_format.fl);
                let node = IntNode::Conv {
                    input: x,
                    kind: unit.kind,
                    cout: unit.cout,
                    cin: unit.cin,
                    window: unit.window,
                    layer: l,
                };
                (node, fl)
            }
            Node::Add { a, b, relu } => {
                let act = if *relu {
                    Activation::Relu
                } else {
                    Activation::Identity
                };
                (
                    IntNode::Add {
                        a: native[*a],
                        b: native[*b],
                        act,
                    },
                    fl[*a].max(fl[*b]),
                )
            }
            Node::GlobalAvgPool { input } => {
                let hw = net_hw(net, *input)?;
                let shift = avgpool_shift(hw);
                (
                    IntNode::GlobalAvgPool {
                        input: native[*input],
                        shift,
                    },
                    fl[*input] + shift,
                )
            }
            Node::Classifier { input, fc, .. } => {
                let x_format = Format {
                    signedness: Signedness::Unsigned,
                    fl: fc.running_fl.current(Signedness::Unsigned),
                };
                let x = ensure(*input, x_format, &mut nodes, &mut codes, &native)?;
                let wf = fc.weight_format(super::conv_bn::Precision::Fixed);
                let weight = fc.weight.iter().map(|&w| wf.quantize(w)).collect();
                let div = net.node_scale(i) * fc.sat_scale(super::conv_bn::Precision::Fixed);
                let bias: Vec<f32> = fc.bias.iter().map(|b| b / div).collect();
                let l = layer(
                    "classifier",
                    weight,
                    vec![wf.fl; fc.classes],
                    &bias,
                    x_format.fl,
                );
                (
                    IntNode::Linear {
                        input: x,
                        n: fc.classes,
                        k: fc.k,
                        layer: l,
                    },
                    x_format.fl + wf.fl,
                )
            }
        };
        nodes.push(new);
        native.push(nodes.len());
        codes.push(Vec::new());
        fl.push(out_fl);
    }
    let model = IntModel {
        name: name.to_string(),
        input_hw: (net.input.h, net.input.w),
        input_c: net.input.c,
        input_format: image,
        nodes,
        notes: format!(
            "exported from an F8Net QAT network after {} steps",
            net.step
        ),
    };
    model.infer_tensors()?;
    Ok(model)
}

/// h·w of network tensor `t` for a batch of one.
fn net_hw(net: &Net, t: usize) -> Result<usize> {
    let shapes = net.tensor_shapes(1)?;
    shapes
        .get(t)
        .map(|s| s.h * s.w)
        .ok_or_else(|| Error::shape("export", format!("no tensor {t}")))
}
